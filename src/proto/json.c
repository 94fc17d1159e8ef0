/* json.c - writing JSON (see json.h). */
#include "proto/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0xC2)
        return 0; /* Continuation byte or overlong lead. */
    if (c < 0xE0)
        len = 2, min = 0x80;
    else if (c < 0xF0)
        len = 3, min = 0x800;
    else if (c < 0xF5)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int json_str(struct buf *b, const char *s, size_t n)
{
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3 bytes). */
    if (buf_reserve(b, n * 6 + 2) < 0)
        return -ENOMEM;
    char *o = b->data + b->end;
    const unsigned char *p = (const unsigned char *)s;
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            switch (c) {
            case '\n':
                *o++ = '\\', *o++ = 'n';
                break;
            case '\r':
                *o++ = '\\', *o++ = 'r';
                break;
            case '\t':
                *o++ = '\\', *o++ = 't';
                break;
            default:
                *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
                *o++ = hex[c >> 4], *o++ = hex[c & 15];
            }
            i++;
        } else {
            size_t len = utf8_seq(p + i, n - i);
            if (len) {
                for (size_t k = 0; k < len; k++)
                    *o++ = (char)p[i + k];
                i += len;
            } else {
                *o++ = (char)0xEF, *o++ = (char)0xBF, *o++ = (char)0xBD;
                i++;
            }
        }
    }
    *o++ = '"';
    b->end = (size_t)(o - b->data);
    return 0;
}

void json_iso_time(int64_t ms, char *out, size_t cap)
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - sec * 1000));
}

int json_entry(struct buf *b, const struct lc_entry *e)
{
    char ts[40];
    json_iso_time(e->ts_ms, ts, sizeof(ts));
    if (buf_printf(b,
                   "{\"id\":%" PRIu64 ",\"ts\":\"%s\",\"ts_ms\":%" PRId64
                   ",\"level\":\"%s\",\"source\":",
                   e->id, ts, e->ts_ms, lc_level_name(e->level)) < 0 ||
        json_str(b, e->source, e->source_len) < 0 || buf_append(b, ",\"message\":", 11) < 0 ||
        json_str(b, e->msg, e->msg_len) < 0)
        return -ENOMEM;
    if (e->flags & LC_ENTRY_TRUNCATED)
        return buf_append(b, ",\"truncated\":true}", 18);
    return buf_append(b, "}", 1);
}
