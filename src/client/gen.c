/* gen.c - synthetic log lines for `logcaster bench` (see gen.h).
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

#define MAX_TEMPLATE 512 /* Longest line the templates and padding can produce, plus slack. */

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

int lcc_gen_build(struct lcc_gen *g, size_t lines, size_t line_size, bool framed, int64_t now_s,
                  uint64_t seed)
{
    uint64_t r = seed ? seed : 0x9E3779B97F4A7C15ULL;
    size_t cap, target, rare_at = lines / 2;
    char line[MAX_TEMPLATE + 64], msg[MAX_TEMPLATE];

    memset(g, 0, sizeof(*g));
    if (lines == 0)
        return -EINVAL;
    if (line_size > MAX_TEMPLATE - 100)
        line_size = MAX_TEMPLATE - 100;
    cap = lines * (MAX_TEMPLATE + 64);
    if (cap / (MAX_TEMPLATE + 64) != lines || cap > UINT32_MAX)
        cap = UINT32_MAX;
    g->data = malloc(cap);
    g->off = malloc((lines + 1) * sizeof(*g->off));
    if (!g->data || !g->off) {
        lcc_gen_free(g);
        return -ENOMEM;
    }
    for (size_t i = 0; i < lines; i++) {
        unsigned roll = pick(&r, 100);
        int level = roll < 70 ? 1 : roll < 85 ? 0 : roll < 95 ? 2 : 3;
        int64_t ts = now_s - 3600 + (int64_t)(i * 3600 / lines);
        const char *comp = message(msg, sizeof(msg), level, &r);
        const char *host = hosts[pick(&r, sizeof(hosts) / sizeof(hosts[0]))];
        unsigned pid = 1000 + pick(&r, 30000);
        size_t len;

        if (framed) {
            len = (size_t)snprintf(line, sizeof(line), "LOG|%s|%lld|%s %s[%u]: %s", names[level],
                                   (long long)ts, host, comp, pid, msg);
        } else {
            struct tm tm;
            time_t t = (time_t)ts;
            gmtime_r(&t, &tm);
            len = (size_t)snprintf(
                line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ %s %s %s[%u]: %s",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                pick(&r, 1000), host, names[level], comp, pid, msg);
        }
        if (i == rare_at)
            len += (size_t)snprintf(line + len, sizeof(line) - len, " " LCC_RARE_WORD);
        /* Vary the length +-25% around the requested average. */
        target = line_size * 3 / 4 + pick(&r, (unsigned)(line_size / 2 + 1));
        len = pad(line, len, target, &r);
        if (g->len + len + 1 > cap) {
            lcc_gen_free(g);
            return -EINVAL;
        }
        g->off[i] = (uint32_t)g->len;
        memcpy(g->data + g->len, line, len);
        g->data[g->len + len] = '\n';
        g->len += len + 1;
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
