/* fuzz_syslog.c - arbitrary bytes as a syslog message, as octet-counted frames and as
 * STRUCTURED-DATA: the parser's slices stay inside the input and within the RFC 5424 field
 * limits, the fields text stays within its cap and is clean text cut only between fields, and
 * octet framing answers consistently for every prefix. Builds with syslog.c alone. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/entry.h"
#include "proto/syslog.h"

#define fz_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MS_PER_DAY 86400000LL
#define TS_MIN     (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX     253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static bool in(const char *s, size_t len, const char *p, size_t n)
{
    return s >= p && s <= p + n && len <= (size_t)(p + n - s);
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
            return false;
    return true;
}

/* Printable ASCII (space included) and valid UTF-8 only. */
static bool clean(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t k = c >= 0xc2 && c <= 0xdf   ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (k == 0 || n - i < k)
            return false;
        uint32_t cp = c & (0xff >> (k + 1));
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k;
    }
    return true;
}

/* The fields text at a cap is the whole text cut between two fields, and nothing is written
 * past what is returned. */
static void check_fields(const struct syslog_msg *m, const char *full, size_t full_len, size_t cap)
{
    char *out = malloc(cap + 16);
    memset(out, '#', cap + 16);
    size_t n = syslog_fields(m, out, cap);
    fz_assert(n <= cap && n <= full_len);
    fz_assert(memcmp(out, full, n) == 0);
    fz_assert(n == full_len || full[n] == ' ');
    for (size_t i = n; i < cap + 16; i++)
        fz_assert(out[i] == '#');
    free(out);
}

static void check_msg(const char *p, size_t n, int64_t now)
{
    static const int level[8] = {LC_FATAL, LC_FATAL, LC_FATAL, LC_ERROR,
                                 LC_WARN,  LC_INFO,  LC_INFO,  LC_DEBUG};
    struct syslog_msg m;
    int r = syslog_parse(p, n, now, &m);
    fz_assert(r == 0 || r == -1);
    if (r < 0) {
        fz_assert(m.format == SYSLOG_NONE);
        return;
    }
    fz_assert(n >= 3 && p[0] == '<');
    fz_assert(m.format == SYSLOG_5424 || m.format == SYSLOG_3164);
    fz_assert(m.facility >= 0 && m.facility <= 23 && m.severity >= 0 && m.severity <= 7);
    fz_assert(m.level == level[m.severity] && m.level >= 0 && m.level < LC_LEVEL_COUNT);
    /* Every slice inside the input, in order, the message the rest of it. */
    const char *s[6] = {m.host, m.app, m.procid, m.msgid, m.sd, m.msg};
    size_t len[6] = {m.host_len, m.app_len, m.procid_len, m.msgid_len, m.sd_len, m.msg_len};
    const char *prev = p;
    for (int i = 0; i < 6; i++) {
        fz_assert(in(s[i], len[i], p, n));
        if (len[i]) {
            fz_assert(s[i] >= prev);
            prev = s[i] + len[i];
        }
    }
    fz_assert(m.msg + m.msg_len == p + n);
    fz_assert(m.host_len <= 255 && m.app_len <= 48 && m.procid_len <= 128 && m.msgid_len <= 32);
    fz_assert(printable(m.host, m.host_len) && printable(m.app, m.app_len));
    fz_assert(printable(m.procid, m.procid_len) && printable(m.msgid, m.msgid_len));
    if (m.format == SYSLOG_3164)
        fz_assert(m.msgid_len == 0 && m.sd_len == 0);
    else
        fz_assert(memcmp(memchr(p, '>', n), ">1 ", 3) == 0);
    if (m.sd_len)
        fz_assert(m.sd[0] == '[' && m.sd[m.sd_len - 1] == ']');
    fz_assert(m.ts_ms == INT64_MIN ||
              (m.ts_ms >= TS_MIN - MS_PER_DAY && m.ts_ms <= TS_MAX + MS_PER_DAY));
    /* A BSD timestamp (it starts with a month's letter) is at most a day ahead of now. */
    const char *after = (const char *)memchr(p, '>', n) + 1;
    if (m.format == SYSLOG_3164 && m.ts_ms != INT64_MIN && after<p + n && * after> '9')
        fz_assert(m.ts_ms <= now + MS_PER_DAY && m.ts_ms > now - 9 * 366 * MS_PER_DAY);
    /* The fields: clean text, whole or cut between fields. */
    size_t big = 4 * n + 64;
    char *full = malloc(big);
    size_t full_len = syslog_fields(&m, full, big);
    fz_assert(full_len < big);
    fz_assert(clean(full, full_len));
    fz_assert(full_len == 0 || full[0] == ' ');
    check_fields(&m, full, full_len, full_len);
    if (full_len) {
        check_fields(&m, full, full_len, full_len - 1);
        check_fields(&m, full, full_len, (size_t)(unsigned char)p[n - 1] % full_len);
    }
    free(full);
}

/* Octet framing, as the log port calls it (syslog_octet_frame, both first-frame strictness
 * and later frames): a frame's fields lie in the input and agree with its digits; the answer
 * for a prefix is final once it is not 0 (need more); at the end of input it is never 0. */
static void check_frame(const char *p, size_t n, size_t max, bool strict)
{
    size_t off = 0, body = 0;
    long r = syslog_octet_frame(p, n, max, strict, false, &off, &body);
    fz_assert(r >= -1);
    if (r > 0) {
        fz_assert(off >= 2 && off <= 10 && off + body <= n && (size_t)r >= off + body);
        fz_assert(p[0] >= '1' && p[0] <= '9' && p[off - 1] == ' ' && p[off] == '<');
        size_t len = 0;
        for (size_t i = 0; i + 1 < off; i++) {
            fz_assert(p[i] >= '0' && p[i] <= '9');
            len = len * 10 + (size_t)(p[i] - '0');
        }
        fz_assert(len == (size_t)r - off && body == (len < max ? len : max));
        /* The kept part is all it needs (strict may have looked at more to see the header). */
        size_t off2 = 0, body2 = 0;
        if (!strict)
            fz_assert(syslog_octet_frame(p, off + body, max, false, false, &off2, &body2) == r &&
                      off2 == off && body2 == body);
        check_msg(p + off, body, 1764158400000LL);
    }
    long prev = 0;
    for (size_t k = 1; k <= n && k <= 24; k++) {
        long rk = syslog_octet_frame(p, k, max, strict, false, &off, &body);
        fz_assert(syslog_octet_frame(p, k, max, strict, true, &off, &body) != 0);
        if (prev == -1)
            fz_assert(rk == -1);
        if (prev > 0)
            fz_assert(rk == prev);
        prev = rk;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the end. */
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    /* A fixed now, and one anywhere in (and a little beyond) the years 0-9999. */
    check_msg(p, size, 1764158400000LL);
    uint64_t span = (uint64_t)(TS_MAX - TS_MIN) + 4 * (uint64_t)MS_PER_DAY;
    check_msg(p, size, TS_MIN - 2 * MS_PER_DAY + (int64_t)(h % span));
    static const size_t maxes[4] = {0, 64, 8192, (size_t)-1};
    check_frame(p, size, maxes[h >> 62], h & 1);
    /* The bytes as STRUCTURED-DATA and header fields of a struct built by hand. */
    struct syslog_msg m = {.format = SYSLOG_5424,
                           .host = p,
                           .host_len = size < 300 ? size : 300,
                           .sd = p,
                           .sd_len = size};
    size_t big = 4 * size + 4 * 300 + 64;
    char *full = malloc(big);
    size_t full_len = syslog_fields(&m, full, big);
    fz_assert(full_len < big && clean(full, full_len));
    check_fields(&m, full, full_len, (size_t)(h % (full_len + 1)));
    free(full);
    free(p);
    return 0;
}
