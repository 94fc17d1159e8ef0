/* ingest_parse.c - the three ingest line forms of the LogCaster protocol. */
#include "proto/ingest_parse.h"

#include <stdbool.h>
#include <string.h>

#include "base/entry.h"

enum ingest_form ingest_form_of(const char *line, size_t len)
{
    if (len >= 4 && memcmp(line, "LOG", 3) == 0) {
        if (line[3] == ':')
            return INGEST_COLON;
        if (line[3] == '|')
            return INGEST_PIPE;
    }
    return INGEST_PLAIN;
}

/* Unix seconds with an optional fraction ("1640995200", "1640995200.250") to milliseconds.
 * Accepts years 1970 to 2286 (10 digits). Returns 0 or -1. */
static int parse_unix_ts(const char *p, size_t n, int64_t *ms)
{
    size_t i = 0;
    int64_t sec = 0;
    if (n == 0)
        return -1;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (i >= 10)
            return -1;
        sec = sec * 10 + (p[i] - '0');
        i++;
    }
    if (i == 0)
        return -1;
    int64_t frac = 0;
    if (i < n && p[i] == '.') {
        i++;
        size_t digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            if (digits < 3) {
                frac = frac * 10 + (p[i] - '0');
                digits++;
            }
            i++;
        }
        if (digits == 0)
            return -1;
        while (digits++ < 3)
            frac *= 10;
    }
    if (i != n)
        return -1;
    *ms = sec * 1000 + frac;
    return 0;
}

/* Split off the field up to the next sep; returns its length or -1 if sep is absent. */
static long field(const char *p, size_t n, char sep)
{
    const char *e = memchr(p, sep, n);
    return e ? (long)(e - p) : -1;
}

static void parse_framed(const char *p, size_t n, char sep, bool level_first,
                         struct ingest_line *out)
{
    /* p is after "LOG" + sep: two fields, then the message (which may contain sep). */
    long a = field(p, n, sep);
    if (a < 0)
        goto missing;
    long b = field(p + a + 1, n - (size_t)a - 1, sep);
    if (b < 0)
        goto missing;
    const char *f1 = p, *f2 = p + a + 1;
    const char *lvl = level_first ? f1 : f2, *ts = level_first ? f2 : f1;
    size_t lvl_len = (size_t)(level_first ? a : b), ts_len = (size_t)(level_first ? b : a);
    out->msg = f2 + b + 1;
    out->msg_len = n - (size_t)a - (size_t)b - 2;
    /* The pipe form lets a sender leave level and time to the server with '-' or nothing. */
    bool pipe = sep == '|';
    if (pipe && (lvl_len == 0 || (lvl_len == 1 && lvl[0] == '-'))) {
        out->level = -1;
    } else {
        out->level = lc_level_parse(lvl, lvl_len);
        if (out->level < 0) {
            out->error = "unknown level";
            return;
        }
    }
    if (pipe && (ts_len == 0 || (ts_len == 1 && ts[0] == '-'))) {
        out->ts_ms = INT64_MIN;
    } else if (parse_unix_ts(ts, ts_len, &out->ts_ms) < 0) {
        out->error = "invalid timestamp";
        return;
    }
    if (out->msg_len == 0)
        out->error = "empty message";
    return;
missing:
    out->error = level_first ? "expected LOG|<level>|<timestamp>|<message>"
                             : "expected LOG:<timestamp>:<level>:<message>";
}

void ingest_parse(const char *line, size_t len, struct ingest_line *out)
{
    memset(out, 0, sizeof(*out));
    out->form = ingest_form_of(line, len);
    out->level = -1;
    out->ts_ms = INT64_MIN;
    switch (out->form) {
    case INGEST_PLAIN:
        out->msg = line;
        out->msg_len = len;
        break;
    case INGEST_COLON:
        parse_framed(line + 4, len - 4, ':', false, out);
        break;
    case INGEST_PIPE:
        parse_framed(line + 4, len - 4, '|', true, out);
        break;
    }
}
