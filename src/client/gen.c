/* gen.c - synthetic log lines for `logcaster bench` (see gen.h), in each wire format the
 * ingest port takes: plain, LOG| framed, octet-counted syslog, JSON lines and binary LOG_MS.
 *
 * Every format carries the same kind of content drawn the same way: a level, a host, an app
 * (component), a pid, a time and a message text. Only the wrapping differs, so the formats'
 * figures compare the cost of each parser, not of different data.
 *
 * Levels are mixed about 70% INFO, 15% DEBUG, 10% WARN, 5% ERROR. Words that name a level
 * (error, warn, ...) appear only in lines of that level, because the query language matches a
 * bare level word against the level too, and a stray "errors=0" in an INFO line would blur
 * what a query benchmark measures. */
#include "client/gen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/binary.h"

#define MAX_TEMPLATE 512 /* Longest line the templates and padding can produce, plus slack. */
#define RECORD_MAX   (MAX_TEMPLATE + 256) /* Longest record: a padded text in any format. */

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: tiny, fast, and good enough to vary log text. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return (unsigned)(next_rand(s) % n);
}

static const char *const hosts[] = {"web-01", "web-02",   "web-03",    "web-04",
                                    "api-01", "api-02",   "api-03",    "db-01",
                                    "db-02",  "cache-01", "worker-07", "edge-11"};
static const char *const users[] = {"alice", "bob",   "carol", "dave", "erin",    "frank",
                                    "grace", "heidi", "ivan",  "judy", "mallory", "oscar"};
static const char *const paths[] = {"/api/v1/users", "/api/v1/orders", "/api/v2/search",
                                    "/login",        "/static/app.js", "/api/v1/invoices",
                                    "/healthz",      "/api/v1/carts"};
static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* The message text after "<component>[pid]: " for a level. Returns the component name. */
static const char *message(char *out, size_t cap, int level, uint64_t *r)
{
    unsigned a = pick(r, 100000), b = pick(r, 1000), c = pick(r, 256), d = pick(r, 256);

    switch (level) {
    case 0: /* DEBUG */
        if (pick(r, 2)) {
            snprintf(out, cap, "sql: SELECT id, total FROM orders WHERE customer_id=%u took %u us",
                     a, b + 40);
            return "db";
        }
        snprintf(out, cap, "queue depth %u, workers %u/%u idle, batch=%u", b, c % 32, 32, d);
        return "queue";
    case 1: /* INFO */
        switch (pick(r, 4)) {
        case 0:
            snprintf(out, cap, "GET %s/%u 200 %ums bytes=%u", paths[pick(r, 8)], a, b % 300 + 1,
                     a % 60000 + 200);
            return "http";
        case 1:
            snprintf(out, cap, "user %s logged in from 10.%u.%u.%u", users[pick(r, 12)], c, d,
                     b % 256);
            return "auth";
        case 2:
            snprintf(out, cap, "job %08x completed in %u ms, %u items processed",
                     (unsigned)a * 7919u, b + 3, c * 10);
            return "scheduler";
        default:
            snprintf(out, cap, "cache hit ratio %u.%u%% for shard %u", 80 + c % 20, d % 10, b % 64);
            return "cache";
        }
    case 2: /* WARN */
        switch (pick(r, 3)) {
        case 0:
            snprintf(out, cap, "slow request: POST %s took %ums (threshold 500ms)",
                     paths[pick(r, 8)], 500 + b * 3);
            return "http";
        case 1:
            snprintf(out, cap, "retrying connection to db-%02u (attempt %u of 5)", c % 8,
                     d % 5 + 1);
            return "db";
        default:
            snprintf(out, cap, "disk usage at %u%% on /var/lib/data%u", 80 + c % 20, d % 4);
            return "storage";
        }
    default: /* ERROR */
        switch (pick(r, 3)) {
        case 0:
            snprintf(out, cap, "upstream timeout after %ums calling payment-svc order=%u",
                     1000 + b * 10, a);
            return "billing";
        case 1:
            snprintf(out, cap, "failed to write segment %u: No space left on device", a);
            return "storage";
        default:
            snprintf(out, cap, "connection reset by peer 10.%u.%u.%u:%u", c, d, b % 256,
                     1024 + a % 60000);
            return "http";
        }
    }
}

/* Append " key=value" fields until the line is about target bytes long. */
static size_t pad(char *line, size_t len, size_t target, uint64_t *r)
{
    while (len + 12 < target && len + 40 < MAX_TEMPLATE) {
        int n;
        switch (pick(r, 5)) {
        case 0:
            n = snprintf(line + len, MAX_TEMPLATE - len, " trace=%016" PRIx64, next_rand(r));
            break;
        case 1:
            n = snprintf(line + len, MAX_TEMPLATE - len, " user=%s", users[pick(r, 12)]);
            break;
        case 2:
            n = snprintf(line + len, MAX_TEMPLATE - len, " region=eu-west-%u", pick(r, 3) + 1);
            break;
        case 3:
            n = snprintf(line + len, MAX_TEMPLATE - len, " dur_us=%u", pick(r, 900000));
            break;
        default:
            n = snprintf(line + len, MAX_TEMPLATE - len, " shard=%u", pick(r, 128));
            break;
        }
        len += (size_t)n;
    }
    return len;
}

static const char *const format_names[] = {"plain", "framed", "syslog", "json", "binary"};

const char *lcc_gen_format_name(enum lcc_gen_format fmt)
{
    return (unsigned)fmt < sizeof(format_names) / sizeof(format_names[0]) ? format_names[fmt] : "?";
}

int lcc_gen_format_parse(const char *s, enum lcc_gen_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
        if (strcmp(s, format_names[i]) == 0) {
            *out = (enum lcc_gen_format)i;
            return 0;
        }
    return -EINVAL;
}

/* "2026-11-26T10:00:00.123Z" into out, which has room for 80 bytes (the compiler cannot
 * know that tm's fields are small); returns its length. */
static size_t rfc3339(char *out, int64_t ts, unsigned ms)
{
    struct tm tm;
    time_t t = (time_t)ts;

    gmtime_r(&t, &tm);
    return (size_t)snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* Copy s as the inside of a JSON string into out (room for cap bytes), cut at a character
 * that would not fit. The templates never produce a quote, backslash or control byte, but
 * the escaping keeps the JSON valid whatever they become. */
static size_t json_str(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 6 <= cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

/* One syslog, JSON or binary record into out (room for RECORD_MAX bytes); returns its
 * length. text is the message, already padded. */
static size_t record(char *out, enum lcc_gen_format fmt, int level, int64_t ts, unsigned ms,
                     const char *host, const char *app, unsigned pid, uint32_t seq,
                     const char *text, size_t tlen)
{
    static const int severity[4] = {7, 6, 4, 3}; /* debug, info, warning, err */
    static const char *const lower[4] = {"debug", "info", "warn", "error"};
    char stamp[80];
    size_t n;

    switch (fmt) {
    case LCC_GEN_SYSLOG: {
        /* The body first, a little further on, then its length in front of it. */
        char *body = out + 16;
        size_t blen;
        rfc3339(stamp, ts, ms);
        blen = (size_t)snprintf(body, RECORD_MAX - 16, "<%d>1 %s %s %s %u - - ",
                                16 * 8 + severity[level], stamp, host, app, pid);
        memcpy(body + blen, text, tlen);
        blen += tlen;
        n = (size_t)snprintf(out, 16, "%zu ", blen);
        memmove(out + n, body, blen);
        return n + blen;
    }
    case LCC_GEN_JSON:
        rfc3339(stamp, ts, ms);
        n = (size_t)snprintf(out, RECORD_MAX,
                             "{\"ts\":\"%s\",\"level\":\"%s\",\"host\":\"%s\",\"app\":\"%s\","
                             "\"pid\":%u,\"msg\":\"",
                             stamp, lower[level], host, app, pid);
        n += json_str(out + n, RECORD_MAX - 3 - n, text, tlen);
        memcpy(out + n, "\"}\n", 3);
        return n + 3;
    default: { /* LCC_GEN_BINARY */
        unsigned char *p = (unsigned char *)out;
        size_t plen = 1 + 8 + tlen;
        p[0] = BIN_VERSION;
        p[1] = BIN_LOG_MS;
        p[2] = (unsigned char)(plen >> 8);
        p[3] = (unsigned char)plen;
        bin_put32(p + 4, seq);
        p[BIN_HEADER] = (unsigned char)(level + 1); /* 1 DEBUG .. 4 ERROR */
        bin_put64(p + BIN_HEADER + 1, (uint64_t)(ts * 1000 + ms));
        memcpy(p + BIN_HEADER + 9, text, tlen);
        return BIN_HEADER + plen;
    }
    }
}

int lcc_gen_build(struct lcc_gen *g, size_t lines, size_t line_size, enum lcc_gen_format fmt,
                  int64_t now_s, uint64_t seed)
{
    uint64_t r = seed ? seed : 0x9E3779B97F4A7C15ULL;
    size_t cap, target, rare_at = lines / 2;
    char line[RECORD_MAX], msg[MAX_TEMPLATE], text[MAX_TEMPLATE + 64];

    memset(g, 0, sizeof(*g));
    if (lines == 0 || (unsigned)fmt > LCC_GEN_BINARY)
        return -EINVAL;
    if (line_size > MAX_TEMPLATE - 100)
        line_size = MAX_TEMPLATE - 100;
    cap = lines * RECORD_MAX;
    if (cap / RECORD_MAX != lines || cap > UINT32_MAX)
        cap = UINT32_MAX;
    g->data = malloc(cap);
    g->off = malloc((lines + 1) * sizeof(*g->off));
    if (!g->data || !g->off) {
        lcc_gen_free(g);
        return -ENOMEM;
    }
    g->fmt = fmt;
    for (size_t i = 0; i < lines; i++) {
        unsigned roll = pick(&r, 100);
        int level = roll < 70 ? 1 : roll < 85 ? 0 : roll < 95 ? 2 : 3;
        int64_t ts = now_s - 3600 + (int64_t)(i * 3600 / lines);
        const char *comp = message(msg, sizeof(msg), level, &r);
        const char *host = hosts[pick(&r, sizeof(hosts) / sizeof(hosts[0]))];
        unsigned pid = 1000 + pick(&r, 30000);
        size_t len;

        if (fmt == LCC_GEN_PLAIN || fmt == LCC_GEN_FRAMED) {
            if (fmt == LCC_GEN_FRAMED) {
                len = (size_t)snprintf(line, sizeof(line), "LOG|%s|%lld|%s %s[%u]: %s",
                                       names[level], (long long)ts, host, comp, pid, msg);
            } else {
                char stamp[80];
                rfc3339(stamp, ts, pick(&r, 1000));
                len = (size_t)snprintf(line, sizeof(line), "%s %s %s %s[%u]: %s", stamp, host,
                                       names[level], comp, pid, msg);
            }
            if (i == rare_at)
                len += (size_t)snprintf(line + len, sizeof(line) - len, " " LCC_RARE_WORD);
            /* Vary the length +-25% around the requested average. */
            target = line_size * 3 / 4 + pick(&r, (unsigned)(line_size / 2 + 1));
            len = pad(line, len, target, &r);
            line[len++] = '\n';
        } else {
            /* The other formats carry host, app, pid, time and level in their own fields, so
             * the padding makes the message text alone about line_size long. */
            unsigned ms = pick(&r, 1000);
            size_t tlen = (size_t)snprintf(text, sizeof(text), "%s", msg);
            if (i == rare_at)
                tlen += (size_t)snprintf(text + tlen, sizeof(text) - tlen, " " LCC_RARE_WORD);
            target = line_size * 3 / 4 + pick(&r, (unsigned)(line_size / 2 + 1));
            tlen = pad(text, tlen, target, &r);
            len = record(line, fmt, level, ts, ms, host, comp, pid, (uint32_t)(i + 1), text, tlen);
        }
        if (g->len + len > cap) {
            lcc_gen_free(g);
            return -EINVAL;
        }
        g->off[i] = (uint32_t)g->len;
        memcpy(g->data + g->len, line, len);
        g->len += len;
        g->levels[level]++;
    }
    g->off[lines] = (uint32_t)g->len;
    g->lines = lines;
    /* Give back the worst-case reserve; shrinking in place cannot fail in practice. */
    char *shrunk = realloc(g->data, g->len);
    if (shrunk)
        g->data = shrunk;
    return 0;
}

void lcc_gen_free(struct lcc_gen *g)
{
    free(g->data);
    free(g->off);
    memset(g, 0, sizeof(*g));
}

size_t lcc_gen_line_at(const struct lcc_gen *g, size_t off)
{
    size_t lo = 0, hi = g->lines;

    /* Smallest i in [0, lines] with off[i] >= off. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->off[mid] >= off)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
