/* entry.h - the shared vocabulary of server and client: levels and the log entry view.
 *
 * An entry view borrows its strings from whoever produced it (a read buffer during ingest, a
 * store block during a query); nothing here owns memory. Depends on nothing but libc. */
#ifndef LC_BASE_ENTRY_H
#define LC_BASE_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lc_level { LC_TRACE = 0, LC_DEBUG, LC_INFO, LC_WARN, LC_ERROR, LC_FATAL, LC_LEVEL_COUNT };

#define LC_ENTRY_TRUNCATED 0x01 /* The message was cut at the configured line limit. */

struct lc_entry {
    uint64_t id;        /* Unique, increasing; assigned by the store (0 before append). */
    int64_t ts_ms;      /* Event time, milliseconds since the epoch. */
    int64_t recv_ms;    /* Time the server received the line, milliseconds since the epoch. */
    uint8_t level;      /* enum lc_level */
    uint8_t flags;      /* LC_ENTRY_* */
    const char *source; /* "ip:port" of the sender; borrowed. */
    size_t source_len;
    const char *msg; /* Escaped message: printable ASCII and valid UTF-8 only, no '\n'; borrowed. */
    size_t msg_len;
};

/* Level names as printed ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"). */
const char *lc_level_name(int level);

/* Parse a level name case-insensitively. Accepts the canonical names and the aliases
 * WARNING, CRITICAL, CRIT, FATAL, ERR, NOTICE (INFO), EMERG/ALERT (FATAL). Returns the
 * level or -1. */
int lc_level_parse(const char *s, size_t len);

#endif
