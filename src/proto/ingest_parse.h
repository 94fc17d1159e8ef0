/* ingest_parse.h - parse one ingest line in any of its forms. Pure; borrows its input. */
#ifndef LC_INGEST_PARSE_H
#define LC_INGEST_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum ingest_form {
    INGEST_PLAIN, /* Any text line: stored as is, no reply. */
    INGEST_COLON, /* LOG:<unix_ts>:<LEVEL>:<message>  -> ACK | ERROR:<reason> */
    INGEST_PIPE,  /* LOG|<LEVEL>|<unix_ts>|<message>  -> OK|<id> | ERROR|<reason> */
};

struct ingest_line {
    enum ingest_form form;
    int level;       /* enum lc_level, or -1: detect from the message. */
    int64_t ts_ms;   /* INT64_MIN: use the receive time. */
    const char *msg; /* Raw (unescaped) message; borrowed from the input line. */
    size_t msg_len;
    const char *error; /* Non-NULL when a framed line is malformed: the reason (static). */
};

/* The form a line announces by its first bytes (enough to pick the reply style even when the
 * line is too long to parse). */
enum ingest_form ingest_form_of(const char *line, size_t len);

/* Parse line[0..len) (no newline). Always fills out; out->error is set for a malformed framed
 * line. */
void ingest_parse(const char *line, size_t len, struct ingest_line *out);

#endif
