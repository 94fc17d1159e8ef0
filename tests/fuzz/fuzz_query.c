/* fuzz_query.c - libFuzzer target for the query compiler, matcher and ci_memmem.
 *
 * Each input is compiled as a query text. A compiled query is matched against a few fixed
 * entries and checked against a block summarising exactly those entries: if any entry
 * matches, qry_block_may_match must not rule the block out, and the time bounds must contain
 * every matching entry. A rejected query must leave *out NULL and one line of error text. The
 * same bytes also drive a differential check of ci_memmem against a naive search. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/qry.h"

#define NOW 1700000000000LL

static const struct lc_entry entries[] = {
    {1, NOW - 5000, NOW, LC_ERROR, 0, "127.0.0.1:5000", 14, "disk full on /dev/sda1", 22},
    {2, NOW - 3600000, NOW, LC_INFO, 0, "10.1.2.3:9", 10, "GET /api/v1/users/42 took 12ms", 30},
    {3, NOW, NOW, LC_WARN, 0, "[::1]:7", 7, "user:admin said \"hi\" OR bye", 27},
    {4, 1704164645000LL, NOW, LC_DEBUG, 0, "h", 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", 31},
    {5, 0, 0, LC_FATAL, 0, NULL, 0, NULL, 0},
};
#define N_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static const char *naive(const char *hay, size_t hl, const char *nd, size_t nl)
{
    if (nl == 0)
        return hay;
    for (size_t i = 0; i + nl <= hl; i++) {
        size_t k = 0;
        for (; k < nl; k++) {
            unsigned char a = (unsigned char)hay[i + k], b = (unsigned char)nd[k];
            a = (a >= 'A' && a <= 'Z') ? a + 32 : a;
            b = (b >= 'A' && b <= 'Z') ? b + 32 : b;
            if (a != b)
                break;
        }
        if (k == nl)
            return hay + i;
    }
    return NULL;
}

static void check_query(const struct qry *q)
{
    static char text[256];
    size_t tl = 0;
    struct lc_block_info b = {.first_id = 1,
                              .last_id = N_ENTRIES,
                              .min_ts_ms = INT64_MAX,
                              .max_ts_ms = INT64_MIN,
                              .text = text};
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const struct lc_entry *e = &entries[i];
        memcpy(text + tl, e->msg ? e->msg : "", e->msg_len);
        tl += e->msg_len;
        text[tl++] = '\n';
        b.level_mask |= 1u << e->level;
        b.min_ts_ms = e->ts_ms < b.min_ts_ms ? e->ts_ms : b.min_ts_ms;
        b.max_ts_ms = e->ts_ms > b.max_ts_ms ? e->ts_ms : b.max_ts_ms;
    }
    b.text_len = tl;
    int64_t from, to;
    qry_time_bounds(q, &from, &to);
    bool any = false;
    for (size_t i = 0; i < N_ENTRIES; i++) {
        if (qry_match(q, &entries[i])) {
            any = true;
            if (entries[i].ts_ms < from || entries[i].ts_ms > to)
                __builtin_trap(); /* Time bounds excluded a matching entry. */
        }
    }
    if (any && !qry_block_may_match(q, &b))
        __builtin_trap(); /* A block holding a matching entry was ruled out. */
    (void)qry_limit(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX];
    err[0] = '\0';
    int rc = qry_compile((const char *)data, size, NOW, &q, err);
    if (rc == 0) {
        if (!q)
            __builtin_trap();
        check_query(q);
        qry_free(q);
    } else {
        if (q || err[0] == '\0' || strchr(err, '\n') || strlen(err) >= QRY_ERR_MAX)
            __builtin_trap();
    }

    if (size >= 1) {
        size_t nl = data[0] % 24;
        nl = nl < size - 1 ? nl : size - 1;
        const char *nd = (const char *)data + 1, *hay = nd + nl;
        size_t hl = size - 1 - nl;
        if (ci_memmem(hay, hl, nd, nl) != naive(hay, hl, nd, nl))
            __builtin_trap();
    }
    return 0;
}
