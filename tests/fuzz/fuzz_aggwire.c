/* fuzz_aggwire.c - libFuzzer target for a part's wire form (qagg_decode). The first byte picks
 * one of a few fixed queries; the rest is decoded as a part of its pipes twice: as it is, and
 * after the query's own 12-byte header (magic, version, kind, the pipes' hash), so mutations
 * reach the body without guessing the hash. A refused input must leave one line of error; a
 * part must re-encode into bytes that decode again, and merging either into a part fed fixed
 * entries must finish into the same table (or the same error). Everything must be freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "query/pipe.h"
#include "query/qry.h"

#define NOW   1700000000000LL
#define LIMIT (64 * 1024)

static const char *const texts[] = {
    "* | stats by (host, level) count(), count_uniq(user), sum(n), min(n), max(n), avg(n), "
    "quantile(0.5, n), quantile(0.99, latency)",
    "* | stats by (_time:1h) count() as c | sort by (c desc) | limit 2",
    "* | top 2 by (user)",
    "* | field_names | sort by (hits) | limit 3",
    "* | sort by (n desc) | limit 3 | fields n, user",
    "* | limit 2",
    "* | fields user, _msg",
};
#define NQ (sizeof(texts) / sizeof(texts[0]))

static const struct {
    uint8_t level;
    int64_t ts_ms;
    const char *msg;
} fixed[] = {
    {LC_ERROR, NOW - 5000, "host=a user=bob n=1.5 latency=3ms"},
    {LC_INFO, NOW - 3600000, "host=b user=\"x y\" n=-7 latency=1s"},
    {LC_WARN, NOW, "host=a n=0 status=abc"},
    {LC_DEBUG, 0, "user=bob n=1e5 latency=90us"},
};
#define NFIXED (sizeof(fixed) / sizeof(fixed[0]))

static struct qry *qs[NQ];
static uint8_t heads[NQ][12];

static void init(void)
{
    char err[QRY_ERR_MAX];
    for (size_t i = 0; i < NQ; i++) {
        if (qry_compile(texts[i], strlen(texts[i]), NOW, &qs[i], err) != 0)
            __builtin_trap();
        struct qagg *a = qagg_new(qry_pipes(qs[i]), 0);
        struct buf b = {0};
        if (!a || qagg_encode(a, &b) != 0 || buf_len(&b) < 12)
            __builtin_trap();
        memcpy(heads[i], buf_head(&b), 12);
        buf_free(&b);
        qagg_free(a);
    }
}

/* A part fed the fixed entries, merged with d (consumed), finished. */
static struct qtable *finish_with(const struct qry *q, struct qagg *d, char *err)
{
    struct qagg *a = qagg_new(qry_pipes(q), LIMIT);
    if (!a)
        __builtin_trap();
    for (size_t i = 0; i < NFIXED; i++) {
        struct lc_entry e = {.id = i + 1,
                             .ts_ms = fixed[i].ts_ms,
                             .level = fixed[i].level,
                             .source = "s",
                             .source_len = 1,
                             .msg = fixed[i].msg,
                             .msg_len = strlen(fixed[i].msg)};
        qagg_add(a, &e);
    }
    qagg_merge(a, d);
    err[0] = '\0';
    struct qtable *t = qagg_finish(a, err);
    if (!t && (err[0] == '\0' || strchr(err, '\n')))
        __builtin_trap();
    return t;
}

static void check_same(const struct qtable *a, const struct qtable *b, const char *ea,
                       const char *eb)
{
    if (!a || !b) {
        if (a || b || strcmp(ea, eb) != 0)
            __builtin_trap();
        return;
    }
    if (a->ncols != b->ncols || a->nrows != b->nrows)
        __builtin_trap();
    for (size_t i = 0; i < a->nrows * a->ncols; i++)
        if (a->cells[i].len != b->cells[i].len ||
            memcmp(a->cells[i].s, b->cells[i].s, a->cells[i].len) != 0)
            __builtin_trap();
}

static void one(const struct qry *q, const uint8_t *data, size_t size)
{
    const struct qpipes *p = qry_pipes(q);
    char err[QRY_ERR_MAX], e1[QRY_ERR_MAX], e2[QRY_ERR_MAX];
    err[0] = '\0';
    struct qagg *d = qagg_decode(p, data, size, LIMIT, err);
    if (!d) {
        if (err[0] == '\0' || strchr(err, '\n') || strlen(err) >= QRY_ERR_MAX)
            __builtin_trap();
        return;
    }
    struct buf b = {0};
    if (qagg_encode(d, &b) != 0)
        __builtin_trap();
    struct qagg *again = qagg_decode(p, buf_head(&b), buf_len(&b), 0, err);
    buf_free(&b);
    if (!again || (!qagg_error(d) && qagg_error(again)))
        __builtin_trap();
    struct qtable *t1 = finish_with(q, d, e1), *t2 = finish_with(q, again, e2);
    /* The limit may stop one merge and not the other (the re-decoded part had none). */
    if (t1 && t2)
        check_same(t1, t2, e1, e2);
    qtable_free(t1);
    qtable_free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!qs[0])
        init();
    if (size == 0)
        return 0;
    const struct qry *q = qs[data[0] % NQ];
    one(q, data + 1, size - 1);
    if (size > 1 && data[1] == 'Q')
        return 0; /* It brought its own header. */
    uint8_t *with = malloc(size + 11);
    if (!with)
        return 0;
    memcpy(with, heads[data[0] % NQ], 12);
    memcpy(with + 12, data + 1, size - 1);
    one(q, with, size + 11);
    free(with);
    return 0;
}
