/* agg.c - the parts of a run of the pipes: feed entries, merge parts, hand over to table.c.
 *
 * An entry chain keeps rows (copies of the fields the chain names), pruned to N when a limit
 * allows; an aggregation keeps one group per distinct by-key in an open-addressing map, each
 * with one state per function. Every byte a part holds is counted (charge/release) against
 * its limit, so a query that would need too much memory stops with one sentence instead.
 *
 * quantile keeps a log-bucket histogram per group: bucket i holds values in
 * (g^(i-1), g^i] with g = 1.01/0.99, shown as 2g^i/(g+1), so every answer is within 1% of the
 * exact nearest-rank value, the histogram's size grows with the log of the values' spread and
 * merging adds counts. count_uniq keeps the distinct values themselves: exact. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "query/pipe_internal.h"

#define SK_GAMMA 1.0202020202020202 /* 1.01 / 0.99 */

struct qslot {
    char *key; /* Owned (counted); NULL = empty slot. */
    size_t klen;
    uint64_t h;
    uint64_t cnt;   /* field_names: entries having the name. */
    uint64_t stamp; /* field_names: the last entry counted (one count per entry). */
    void *val;      /* Groups: struct fstate[nfuncs]. */
};

struct qmap {
    struct qslot *s;
    size_t cap, n;
};

struct sk_side {
    int32_t lo; /* Index of c[0]. */
    uint32_t len;
    uint64_t *c; /* Counts, counted. */
};

struct sketch {
    uint64_t zero;
    struct sk_side pos, neg; /* neg holds magnitudes. */
};

struct fstate {
    uint64_t n; /* count: entries; others: numbers seen. */
    double sum, min, max;
    struct qmap *uniq;
    struct sketch *sk;
};

struct buf {
    char *p;
    size_t len, cap;
};

struct qagg {
    const struct qpipes *p;
    const struct qpipe *agg; /* NULL: an entry chain. */
    size_t limit, used;
    int rc;
    char err[QRY_ERR_MAX];
    uint64_t seq;       /* Entries added (field_names stamps). */
    struct qrow **rows; /* Entry chain. */
    size_t nrows, cap;
    struct qsortspec spec; /* PRUNE_SORTED. */
    struct qmap groups;    /* Aggregation: by-key -> fstate[], or name -> count. */
    struct buf key, vals;  /* Scratch. */
};

/* ---- Memory ---- */

static bool charge(struct qagg *a, size_t n)
{
    if (a->rc)
        return false;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) {
        a->rc = -E2BIG;
        if (a->limit % (1u << 20) == 0)
            qry_errf(a->err, "query needs more than %zu MiB (--query-memory)", a->limit >> 20);
        else
            qry_errf(a->err, "query needs more than %zu bytes (--query-memory)", a->limit);
        return false;
    }
    a->used += n;
    return true;
}

static void release(struct qagg *a, size_t n)
{
    a->used -= n < a->used ? n : a->used;
}

static void *xalloc(struct qagg *a, size_t n)
{
    if (!charge(a, n))
        return NULL;
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        release(a, n);
        a->rc = -ENOMEM;
        qry_errf(a->err, "out of memory");
    }
    return p;
}

static bool buf_room(struct qagg *a, struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    if (!charge(a, cap - b->cap))
        return false;
    char *p = realloc(b->p, cap);
    if (!p) {
        release(a, cap - b->cap);
        a->rc = -ENOMEM;
        qry_errf(a->err, "out of memory");
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

/* ---- Map ---- */

static struct qslot *map_get(struct qagg *a, struct qmap *m, const char *key, size_t klen,
                             uint64_t h, bool *created)
{
    *created = false;
    if ((m->n + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct qslot *s = xalloc(a, cap * sizeof(*s));
        if (!s)
            return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->s[i].key)
                continue;
            size_t j = m->s[i].h & (cap - 1);
            while (s[j].key)
                j = (j + 1) & (cap - 1);
            s[j] = m->s[i];
        }
        free(m->s);
        release(a, m->cap * sizeof(*s));
        m->s = s;
        m->cap = cap;
    }
    size_t j = h & (m->cap - 1);
    for (; m->s[j].key; j = (j + 1) & (m->cap - 1))
        if (m->s[j].h == h && m->s[j].klen == klen && memcmp(m->s[j].key, key, klen) == 0)
            return &m->s[j];
    char *k = xalloc(a, klen + 1);
    if (!k)
        return NULL;
    memcpy(k, key, klen);
    m->s[j] = (struct qslot){.key = k, .klen = klen, .h = h};
    m->n++;
    *created = true;
    return &m->s[j];
}

static void fstates_free(struct qagg *a, struct fstate *f, size_t n);

static void map_free(struct qagg *a, struct qmap *m, size_t nfuncs)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].key)
            continue;
        free(m->s[i].key);
        release(a, m->s[i].klen + 1);
        fstates_free(a, m->s[i].val, nfuncs);
    }
    free(m->s);
    release(a, m->cap * sizeof(*m->s));
    *m = (struct qmap){0};
}

/* ---- Quantile sketch ---- */

static bool sk_add(struct qagg *a, struct sketch *sk, double v, uint64_t count)
{
    if (v == 0) {
        sk->zero += count;
        return true;
    }
    struct sk_side *s = v > 0 ? &sk->pos : &sk->neg;
    double lg = ceil(log(fabs(v)) / log(SK_GAMMA));
    int32_t i = (int32_t)lg;
    if (s->len == 0 || i < s->lo || i >= s->lo + (int32_t)s->len) {
        int32_t lo = s->len == 0 || i < s->lo ? i : s->lo;
        int32_t hi = s->len == 0 || i >= s->lo + (int32_t)s->len ? i : s->lo + (int32_t)s->len - 1;
        uint32_t len = (uint32_t)(hi - lo + 1);
        uint64_t *c = xalloc(a, len * sizeof(*c));
        if (!c)
            return false;
        if (s->len)
            memcpy(c + (s->lo - lo), s->c, s->len * sizeof(*c));
        free(s->c);
        release(a, s->len * sizeof(*c));
        s->c = c, s->lo = lo, s->len = len;
    }
    s->c[i - s->lo] += count;
    return true;
}

static double sk_value(int32_t i)
{
    return 2 * pow(SK_GAMMA, i) / (SK_GAMMA + 1);
}

/* The nearest-rank phi quantile of n values within [min, max]. */
static double sk_quantile(const struct sketch *sk, double phi, uint64_t n, double min, double max)
{
    uint64_t r = (uint64_t)ceil(phi * (double)n), seen = 0;
    if (r <= 1)
        return min;
    if (r >= n)
        return max;
    double v = max;
    for (uint32_t k = sk->neg.len; k-- > 0;)
        if ((seen += sk->neg.c[k]) >= r) {
            v = -sk_value(sk->neg.lo + (int32_t)k);
            goto found;
        }
    if ((seen += sk->zero) >= r) {
        v = 0;
        goto found;
    }
    for (uint32_t k = 0; k < sk->pos.len; k++)
        if ((seen += sk->pos.c[k]) >= r) {
            v = sk_value(sk->pos.lo + (int32_t)k);
            goto found;
        }
found:
    return v < min ? min : v > max ? max : v;
}

static void sk_free(struct qagg *a, struct sketch *sk)
{
    if (!sk)
        return;
    free(sk->pos.c);
    free(sk->neg.c);
    release(a, (sk->pos.len + sk->neg.len) * sizeof(uint64_t) + sizeof(*sk));
    free(sk);
}

/* ---- Function states ---- */

static void fstates_free(struct qagg *a, struct fstate *f, size_t n)
{
    if (!f)
        return;
    for (size_t i = 0; i < n; i++) {
        if (f[i].uniq) {
            map_free(a, f[i].uniq, 0);
            free(f[i].uniq);
            release(a, sizeof(struct qmap));
        }
        sk_free(a, f[i].sk);
    }
    free(f);
    release(a, n * sizeof(*f));
}

/* The number a function reads from e's field, if it is one. */
static bool entry_number(const struct lc_entry *e, const struct qfunc *fn, double *x)
{
    struct qfield f;
    const char *v;
    size_t len;
    if (fn->field_len == 4 && memcmp(fn->field, "_msg", 4) == 0) {
        v = e->msg, len = e->msg_len;
    } else if (fn->field_len == 6 && memcmp(fn->field, "source", 6) == 0) {
        v = e->source, len = e->source_len;
    } else {
        if (!e->msg || !qfield_find(e->msg, e->msg_len, fn->field, fn->field_len, &f) || f.escaped)
            return false;
        v = f.value, len = f.value_len;
    }
    return v && val_number(v, len, x, NULL) && isfinite(*x);
}

/* Append the value of field name to b; *present false (nothing appended) when e lacks it. */
static bool append_value(struct qagg *a, struct buf *b, const struct lc_entry *e, const char *name,
                         size_t nlen, int64_t step_ms, bool *present)
{
    char tmp[48];
    const char *v = NULL;
    size_t len = 0;
    struct qfield f = {0};
    *present = true;
    if (nlen == 5 && memcmp(name, "_time", 5) == 0) {
        int64_t t = e->ts_ms;
        if (step_ms) {
            int64_t r = t % step_ms;
            t -= r < 0 ? r + step_ms : r;
        }
        v = tmp, len = qfmt_time(t, !step_ms || step_ms % 1000, tmp);
    } else if (nlen == 5 && memcmp(name, "level", 5) == 0) {
        v = lc_level_name(e->level), len = strlen(v);
    } else if (nlen == 6 && memcmp(name, "source", 6) == 0) {
        v = e->source, len = e->source_len;
    } else if (nlen == 4 && memcmp(name, "_msg", 4) == 0) {
        v = e->msg, len = e->msg_len;
    } else if (e->msg && qfield_find(e->msg, e->msg_len, name, nlen, &f)) {
        if (!buf_room(a, b, f.value_len))
            return false;
        b->len += qfield_copy(&f, b->p + b->len);
        return true;
    }
    if (!v || (len == 0 && v != tmp)) {
        *present = false;
        return true;
    }
    if (!buf_room(a, b, len))
        return false;
    memcpy(b->p + b->len, v, len);
    b->len += len;
    return true;
}

static bool fstate_add(struct qagg *a, struct fstate *st, const struct qfunc *fn,
                       const struct lc_entry *e)
{
    double x;
    bool present, created;
    switch (fn->kind) {
    case QF_COUNT:
        if (fn->field) {
            a->vals.len = 0;
            if (!append_value(a, &a->vals, e, fn->field, fn->field_len, 0, &present))
                return false;
            if (!present || a->vals.len == 0)
                return true;
        }
        st->n++;
        return true;
    case QF_COUNT_UNIQ:
        a->vals.len = 0;
        if (!append_value(a, &a->vals, e, fn->field, fn->field_len, 0, &present))
            return false;
        if (!present || a->vals.len == 0)
            return true;
        if (!st->uniq && !(st->uniq = xalloc(a, sizeof(*st->uniq))))
            return false;
        return map_get(a, st->uniq, a->vals.p, a->vals.len, XXH3_64bits(a->vals.p, a->vals.len),
                       &created) != NULL;
    default:
        break;
    }
    if (!entry_number(e, fn, &x))
        return true;
    st->min = st->n == 0 || x < st->min ? x : st->min;
    st->max = st->n == 0 || x > st->max ? x : st->max;
    st->sum += x;
    st->n++;
    if (fn->kind == QF_QUANTILE) {
        if (!st->sk && !(st->sk = xalloc(a, sizeof(*st->sk))))
            return false;
        return sk_add(a, st->sk, x, 1);
    }
    return true;
}

/* ---- Parts ---- */

struct qagg *qagg_new(const struct qpipes *p, size_t mem_limit)
{
    struct qagg *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->p = p;
    a->limit = mem_limit;
    a->agg = p->agg < p->n ? &p->p[p->agg] : NULL;
    if (p->prune == PRUNE_SORTED) {
        const struct qpipe *s = &p->p[p->prune_pipe];
        a->spec.nkeys = s->nkeys;
        for (size_t k = 0; k < s->nkeys; k++) {
            for (size_t c = 0; c < p->necols; c++)
                if (strcmp(p->ecols[c], s->keys[k].col) == 0)
                    a->spec.col[k] = c;
            a->spec.desc[k] = s->keys[k].desc;
        }
    }
    return a;
}

static int id_desc(const void *x, const void *y)
{
    uint64_t a = (*(struct qrow *const *)x)->id, b = (*(struct qrow *const *)y)->id;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Cut the rows to the first `keep` in the chain's prune order. */
static void prune(struct qagg *a)
{
    uint64_t keep = a->p->keep;
    if (a->p->prune == PRUNE_NONE || a->nrows <= keep)
        return;
    if (a->p->prune == PRUNE_NEWEST)
        qsort(a->rows, a->nrows, sizeof(*a->rows), id_desc);
    else if (qrows_sort(a->rows, a->nrows, &a->spec) < 0)
        return; /* Out of memory: keep them all; the limit will tell. */
    for (size_t i = keep; i < a->nrows; i++) {
        release(a, a->rows[i]->bytes);
        free(a->rows[i]);
    }
    a->nrows = keep;
}

static bool add_row(struct qagg *a, struct qrow *r)
{
    if (a->nrows == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        if (!charge(a, (cap - a->cap) * sizeof(*a->rows)))
            return false;
        struct qrow **rows = realloc(a->rows, cap * sizeof(*rows));
        if (!rows) {
            a->rc = -ENOMEM;
            qry_errf(a->err, "out of memory");
            return false;
        }
        a->rows = rows;
        a->cap = cap;
    }
    a->rows[a->nrows++] = r;
    if (a->p->prune != PRUNE_NONE && a->nrows >= 2 * a->p->keep + 64)
        prune(a);
    return true;
}

static bool add_entry_row(struct qagg *a, const struct lc_entry *e)
{
    const struct qpipes *p = a->p;
    size_t off[QP_MAX_COLS + 8], len[QP_MAX_COLS + 8];
    const char *v[QP_MAX_COLS + 8];
    a->vals.len = 0;
    for (size_t c = 0; c < p->necols; c++) {
        bool present;
        off[c] = a->vals.len;
        if (!append_value(a, &a->vals, e, p->ecols[c], strlen(p->ecols[c]), 0, &present))
            return false;
        len[c] = a->vals.len - off[c];
    }
    for (size_t c = 0; c < p->necols; c++)
        v[c] = a->vals.p ? a->vals.p + off[c] : "";
    size_t bytes;
    struct qrow *r = qrow_make(e->id, p->necols, v, len, &bytes);
    if (!r) {
        a->rc = -ENOMEM;
        qry_errf(a->err, "out of memory");
        return false;
    }
    if (!charge(a, bytes)) {
        free(r);
        return false;
    }
    return add_row(a, r);
}

static bool add_field_names(struct qagg *a, const struct lc_entry *e)
{
    static const char *const builtin[] = {"_time", "level", "_msg", "source"};
    bool created;
    a->seq++;
    for (size_t i = 0; i < 4; i++) {
        if (i == 3 && e->source_len == 0)
            break;
        struct qslot *s = map_get(a, &a->groups, builtin[i], strlen(builtin[i]),
                                  XXH3_64bits(builtin[i], strlen(builtin[i])), &created);
        if (!s)
            return false;
        s->cnt++;
    }
    struct qfield f;
    size_t pos = 0;
    while (e->msg && qfield_next(e->msg, e->msg_len, &pos, &f)) {
        struct qslot *s =
            map_get(a, &a->groups, f.name, f.name_len, XXH3_64bits(f.name, f.name_len), &created);
        if (!s)
            return false;
        if (s->stamp != a->seq)
            s->cnt++, s->stamp = a->seq;
    }
    return true;
}

static bool add_group(struct qagg *a, const struct lc_entry *e)
{
    const struct qpipe *g = a->agg;
    a->key.len = 0;
    for (size_t i = 0; i < g->nby; i++) {
        size_t at = a->key.len;
        bool present;
        uint32_t n;
        if (!buf_room(a, &a->key, sizeof(n)))
            return false;
        a->key.len += sizeof(n);
        if (!append_value(a, &a->key, e, g->by[i].name, g->by[i].len, g->by[i].step_ms, &present))
            return false;
        n = (uint32_t)(a->key.len - at - sizeof(n));
        memcpy(a->key.p + at, &n, sizeof(n));
    }
    bool created;
    const char *k = a->key.p ? a->key.p : "";
    struct qslot *s = map_get(a, &a->groups, k, a->key.len, XXH3_64bits(k, a->key.len), &created);
    if (!s)
        return false;
    if (created && !(s->val = xalloc(a, g->nfuncs * sizeof(struct fstate))))
        return false;
    struct fstate *st = s->val;
    for (size_t i = 0; i < g->nfuncs; i++)
        if (!fstate_add(a, &st[i], &g->funcs[i], e))
            return false;
    return true;
}

bool qagg_add(struct qagg *a, const struct lc_entry *e)
{
    if (a->rc)
        return false;
    if (!a->agg) {
        /* limit N: after N entries a caller scanning newest first needs no more; one that
         * goes on anyway still gets the newest N (prune keeps the highest ids). */
        if (a->p->prune == PRUNE_NEWEST && a->p->keep == 0)
            return false;
        return add_entry_row(a, e) && !(a->p->prune == PRUNE_NEWEST && a->nrows >= a->p->keep);
    }
    if (a->agg->kind == QP_FIELD_NAMES)
        return add_field_names(a, e);
    return add_group(a, e);
}

/* ---- Whole blocks from their summaries ---- */

/* True when every by-field of g is level, or _time buckets that put [min_ts, max_ts] in one
 * bucket, and every function is count(): then level counts answer it. */
static bool summary_answers(const struct qpipe *g, int64_t min_ts, int64_t max_ts)
{
    for (size_t i = 0; i < g->nby; i++) {
        const struct qby *by = &g->by[i];
        if (by->len == 5 && memcmp(by->name, "level", 5) == 0)
            continue;
        if (by->len != 5 || memcmp(by->name, "_time", 5) != 0 || by->step_ms <= 0)
            return false;
        int64_t rl = min_ts % by->step_ms, rh = max_ts % by->step_ms;
        int64_t bl = min_ts - (rl < 0 ? rl + by->step_ms : rl);
        int64_t bh = max_ts - (rh < 0 ? rh + by->step_ms : rh);
        if (bl != bh)
            return false;
    }
    for (size_t i = 0; i < g->nfuncs; i++)
        if (g->funcs[i].kind != QF_COUNT || g->funcs[i].field)
            return false;
    return true;
}

bool qagg_add_summary(struct qagg *a, const uint64_t counts[LC_LEVEL_COUNT], int64_t min_ts,
                      int64_t max_ts)
{
    const struct qpipe *g = a->agg;
    if (a->rc || !g || (g->kind != QP_STATS && g->kind != QP_TOP) ||
        !summary_answers(g, min_ts, max_ts))
        return false;
    for (int l = 0; l < LC_LEVEL_COUNT; l++) {
        if (!counts[l])
            continue;
        /* A stand-in entry with the level and time the whole block shares: its group key
         * is the one each of its entries would have. */
        struct lc_entry e = {.level = (uint8_t)l, .ts_ms = min_ts, .msg = "", .source = ""};
        a->key.len = 0;
        for (size_t i = 0; i < g->nby; i++) {
            size_t at = a->key.len;
            bool present;
            uint32_t n;
            if (!buf_room(a, &a->key, sizeof(n)))
                return true; /* rc is set: the run ends with the memory error. */
            a->key.len += sizeof(n);
            if (!append_value(a, &a->key, &e, g->by[i].name, g->by[i].len, g->by[i].step_ms,
                              &present))
                return true;
            n = (uint32_t)(a->key.len - at - sizeof(n));
            memcpy(a->key.p + at, &n, sizeof(n));
        }
        bool created;
        const char *k = a->key.p ? a->key.p : "";
        struct qslot *sl =
            map_get(a, &a->groups, k, a->key.len, XXH3_64bits(k, a->key.len), &created);
        if (!sl || (created && !(sl->val = xalloc(a, g->nfuncs * sizeof(struct fstate)))))
            return true;
        struct fstate *st = sl->val;
        for (size_t i = 0; i < g->nfuncs; i++)
            st[i].n += counts[l];
    }
    return true;
}

/* ---- Merging ---- */

static bool fstate_merge(struct qagg *a, struct fstate *d, const struct fstate *s,
                         const struct qfunc *fn)
{
    bool created;
    if (fn->kind == QF_COUNT) {
        d->n += s->n;
        return true;
    }
    if (fn->kind == QF_COUNT_UNIQ) {
        if (!s->uniq)
            return true;
        if (!d->uniq && !(d->uniq = xalloc(a, sizeof(*d->uniq))))
            return false;
        for (size_t i = 0; i < s->uniq->cap; i++) {
            const struct qslot *u = &s->uniq->s[i];
            if (u->key && !map_get(a, d->uniq, u->key, u->klen, u->h, &created))
                return false;
        }
        return true;
    }
    if (s->n == 0)
        return true;
    d->min = d->n == 0 || s->min < d->min ? s->min : d->min;
    d->max = d->n == 0 || s->max > d->max ? s->max : d->max;
    d->sum += s->sum;
    d->n += s->n;
    if (!s->sk)
        return true;
    if (!d->sk && !(d->sk = xalloc(a, sizeof(*d->sk))))
        return false;
    d->sk->zero += s->sk->zero;
    for (uint32_t k = 0; k < s->sk->pos.len; k++)
        if (s->sk->pos.c[k] &&
            !sk_add(a, d->sk, sk_value(s->sk->pos.lo + (int32_t)k), s->sk->pos.c[k]))
            return false;
    for (uint32_t k = 0; k < s->sk->neg.len; k++)
        if (s->sk->neg.c[k] &&
            !sk_add(a, d->sk, -sk_value(s->sk->neg.lo + (int32_t)k), s->sk->neg.c[k]))
            return false;
    return true;
}

/* Parts copy what they take from b, so b's books stay b's and b is freed whole. */
int qagg_merge(struct qagg *a, struct qagg *b)
{
    if (!b)
        return a->rc;
    if (b->rc && !a->rc) {
        a->rc = b->rc;
        memcpy(a->err, b->err, sizeof(a->err));
    }
    if (!a->rc && !a->agg) {
        for (size_t i = 0; i < b->nrows && !a->rc; i++) {
            size_t bytes = b->rows[i]->bytes;
            if (!charge(a, bytes))
                break;
            if (!add_row(a, b->rows[i])) {
                release(a, bytes);
                break;
            }
            release(b, bytes);
            b->rows[i] = NULL;
        }
        prune(a);
    } else if (!a->rc) {
        const struct qpipe *g = a->agg;
        bool names = g->kind == QP_FIELD_NAMES, created;
        for (size_t i = 0; i < b->groups.cap && !a->rc; i++) {
            const struct qslot *s = &b->groups.s[i];
            if (!s->key)
                continue;
            struct qslot *d = map_get(a, &a->groups, s->key, s->klen, s->h, &created);
            if (!d)
                break;
            d->cnt += s->cnt;
            if (names)
                continue;
            if (created && !(d->val = xalloc(a, g->nfuncs * sizeof(struct fstate))))
                break;
            for (size_t f = 0; f < g->nfuncs; f++)
                if (!fstate_merge(a, (struct fstate *)d->val + f, (const struct fstate *)s->val + f,
                                  &g->funcs[f]))
                    break;
        }
    }
    qagg_free(b);
    return a->rc;
}

const char *qagg_error(const struct qagg *a)
{
    return a && a->rc ? a->err : NULL;
}

void qagg_free(struct qagg *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nrows; i++)
        free(a->rows[i]);
    free(a->rows);
    map_free(a, &a->groups, a->agg && a->agg->kind != QP_FIELD_NAMES ? a->agg->nfuncs : 0);
    free(a->key.p);
    free(a->vals.p);
    free(a);
}

/* ---- Finishing ---- */

static size_t func_cell(const struct fstate *st, const struct qfunc *fn, char *out)
{
    switch (fn->kind) {
    case QF_COUNT:
        return (size_t)snprintf(out, 32, "%llu", (unsigned long long)st->n);
    case QF_COUNT_UNIQ:
        return (size_t)snprintf(out, 32, "%llu", (unsigned long long)(st->uniq ? st->uniq->n : 0));
    case QF_SUM:
        return qfmt_num(st->sum, out);
    default:
        break;
    }
    if (st->n == 0)
        return 0;
    switch (fn->kind) {
    case QF_MIN:
        return qfmt_num(st->min, out);
    case QF_MAX:
        return qfmt_num(st->max, out);
    case QF_AVG:
        return qfmt_num(st->sum / (double)st->n, out);
    default:
        return qfmt_num(sk_quantile(st->sk, fn->phi, st->n, st->min, st->max), out);
    }
}

/* One row of an aggregation's table from a group's key and states (st NULL: no entries). */
static struct qrow *group_row(const struct qpipe *g, const struct qslot *s, char *cells)
{
    const char *v[QP_MAX_BY + QP_MAX_FUNCS];
    size_t len[QP_MAX_BY + QP_MAX_FUNCS], at = 0, bytes;
    static const struct fstate zero[QP_MAX_FUNCS];
    const struct fstate *st = s ? s->val : zero;
    for (size_t i = 0; i < g->nby; i++) {
        uint32_t n;
        memcpy(&n, s->key + at, sizeof(n));
        v[i] = s->key + at + sizeof(n);
        len[i] = n;
        at += sizeof(n) + n;
    }
    for (size_t f = 0; f < g->nfuncs; f++) {
        v[g->nby + f] = cells + 32 * f;
        len[g->nby + f] = func_cell(&st[f], &g->funcs[f], cells + 32 * f);
    }
    return qrow_make(0, g->nby + g->nfuncs, v, len, &bytes);
}

static struct qtable *finish_groups(struct qagg *a, char *err)
{
    const struct qpipe *g = a->agg;
    static const char *const fn_cols[] = {"name", "hits"};
    const char *names[QP_MAX_BY + QP_MAX_FUNCS];
    bool num[QP_MAX_BY + QP_MAX_FUNCS] = {0};
    struct wtable t = {.names = names, .num = num, .sorted = true};
    struct qsortspec spec = {0};
    size_t n = a->groups.n + 1;
    char cells[32 * QP_MAX_FUNCS];
    if (!(t.rows = calloc(n, sizeof(*t.rows))))
        goto nomem;
    if (g->kind == QP_FIELD_NAMES) {
        t.ncols = 2;
        names[0] = fn_cols[0], names[1] = fn_cols[1], num[1] = true;
        for (size_t i = 0; i < a->groups.cap; i++) {
            const struct qslot *s = &a->groups.s[i];
            if (!s->key)
                continue;
            char c[32];
            const char *v[2] = {s->key, c};
            size_t len[2] = {s->klen,
                             (size_t)snprintf(c, sizeof(c), "%llu", (unsigned long long)s->cnt)},
                   bytes;
            if (!(t.rows[t.nrows] = qrow_make(0, 2, v, len, &bytes)))
                goto nomem;
            t.nrows++;
        }
        spec.nkeys = 1;
    } else {
        t.ncols = g->nby + g->nfuncs;
        for (size_t i = 0; i < g->nby; i++)
            names[i] = g->by[i].name;
        for (size_t f = 0; f < g->nfuncs; f++)
            names[g->nby + f] = g->funcs[f].col, num[g->nby + f] = true;
        for (size_t i = 0; i < a->groups.cap; i++) {
            if (!a->groups.s[i].key)
                continue;
            if (!(t.rows[t.nrows] = group_row(g, &a->groups.s[i], cells)))
                goto nomem;
            t.nrows++;
        }
        if (t.nrows == 0 && g->nby == 0 && g->kind == QP_STATS) { /* stats count() of nothing. */
            if (!(t.rows[0] = group_row(g, NULL, cells)))
                goto nomem;
            t.nrows = 1;
        }
        if (g->kind == QP_TOP) {
            spec.col[spec.nkeys] = g->nby, spec.desc[spec.nkeys++] = true;
        }
        for (size_t i = 0; i < g->nby; i++)
            spec.col[spec.nkeys++] = i;
    }
    if (qrows_sort(t.rows, t.nrows, &spec) < 0)
        goto nomem;
    if (g->kind == QP_TOP)
        for (; t.nrows > g->n; t.nrows--)
            free(t.rows[t.nrows - 1]);
    const struct qpipes *p = a->p;
    size_t limit = a->limit;
    qagg_free(a);
    return wtable_finish(&t, p, p->agg + 1, false, limit, err);
nomem:
    for (size_t i = 0; t.rows && i < t.nrows; i++)
        free(t.rows[i]);
    free(t.rows);
    qagg_free(a);
    qry_errf(err, "out of memory");
    return NULL;
}

static int id_asc(const void *x, const void *y)
{
    return -id_desc(x, y);
}

struct qtable *qagg_finish(struct qagg *a, char *err)
{
    if (a->rc) {
        qry_errf(err, "%s", a->err);
        qagg_free(a);
        return NULL;
    }
    if (a->agg)
        return finish_groups(a, err);
    const struct qpipes *p = a->p;
    bool num[QP_MAX_COLS + 8] = {0};
    struct wtable t = {.ncols = p->necols, .names = (const char **)p->ecols, .num = num};
    prune(a);
    if (a->nrows)
        qsort(a->rows, a->nrows, sizeof(*a->rows), id_asc);
    t.rows = a->rows, t.nrows = a->nrows;
    a->rows = NULL, a->nrows = 0;
    size_t limit = a->limit;
    qagg_free(a);
    return wtable_finish(&t, p, 0, true, limit, err);
}
