/* entry.h - the log entry as every module sees it: levels, the entry view, block summaries.
 *
 * An entry view borrows its strings from whoever produced it (a read buffer during ingest, a
 * store block during a query); nothing here owns memory. */
#ifndef LC_ENTRY_H
#define LC_ENTRY_H

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

/* What a store knows about a block of consecutive entries, so a query can skip the block
 * without reading its entries. Fields a store cannot provide are set to "anything". */
struct lc_block_info {
    uint64_t first_id, last_id;   /* Inclusive id range. */
    int64_t min_ts_ms, max_ts_ms; /* Inclusive event-time range. */
    uint32_t level_mask;          /* Bit (1u << level) set for each level present. */
    const char *text;             /* Every message byte of the block, or NULL if unknown. */
    size_t text_len;
    const uint8_t *filter; /* Trigram filter (store/filter.h), or NULL. */
    unsigned filter_log2;
    const uint32_t *level_counts; /* Entries per level (LC_LEVEL_COUNT), or NULL. */
};

/* Level names as printed ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"). */
const char *lc_level_name(int level);

/* Parse a level name case-insensitively. Accepts the canonical names and the aliases
 * WARNING, CRITICAL, CRIT, FATAL, ERR, NOTICE (INFO), EMERG/ALERT (FATAL). Returns the
 * level or -1. */
int lc_level_parse(const char *s, size_t len);

#endif
