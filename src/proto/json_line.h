/* json_line.h - one JSON log line ({"level":..,"message":..,"ts":.., other fields}) into the
 * parts of a log entry. Parsed with yajl's callbacks (Debian's libyajl), without a tree.
 *
 * Field names, the first present wins:
 *   message  message, msg, log   (absent: the whole line is the message)
 *   level    level, severity, lvl (a level name or alias, or a syslog severity number 0-7)
 *   time     ts, time, timestamp, @timestamp (epoch seconds or milliseconds as a number or a
 *            string of digits, or RFC 3339 / ISO-8601)
 * Every other field is kept, appended to the message as ` key=value` (values with spaces
 * quoted, objects and arrays as compact JSON), so it is searchable. */
#ifndef LC_JSON_LINE_H
#define LC_JSON_LINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct json_line {
    int level;               /* enum lc_level, or -1: detect from the message. */
    int64_t ts_ms;           /* INT64_MIN: none given. */
    size_t msg_off, msg_len; /* The composed message, in the output buffer (raw, unescaped). */
};

/* Parse line[0..len) (no newline). The message is appended to out. Returns 0, or -1 with a
 * short reason in err[0..errcap) when the line is not a JSON object. */
int json_line_parse(const char *line, size_t len, struct buf *out, struct json_line *jl, char *err,
                    size_t errcap);

/* True when line[0..len) looks like a JSON object (first non-blank byte is '{'). */
int json_line_looks(const char *line, size_t len);

#endif
