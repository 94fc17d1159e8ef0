/* agg.c - the parts of a run of the pipes: feed entries, merge parts, hand over to table.c.
 *
 * An entry chain keeps rows (copies of the fields the chain names), pruned to N when a limit
 * allows; an aggregation keeps one group per distinct by-key in an open-addressing map, each
 * with one state per function. Every byte a part holds is counted (qmem_charge/qmem_release)
 * against its limit, so a query that would need too much memory stops with one sentence
 * instead. quantile keeps a sketch per group (sketch.c, within 1%); count_uniq keeps the
 * distinct values themselves: exact. A part's wire form for other nodes is agg_wire.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "query/agg_internal.h"
#include "query/sketch.h"
#include "store/valsum.h"

/* ---- Memory ---- */

bool qmem_charge(struct qmem *m, size_t n)
{
    if (m->rc)
        return false;
    if (m->limit && (n > m->limit || m->used > m->limit - n)) {
        m->rc = -E2BIG;
        if (m->limit % (1u << 20) == 0)
            qry_errf(m->err, "query needs more than %zu MiB (--query-memory)", m->limit >> 20);
        else
            qry_errf(m->err, "query needs more than %zu bytes (--query-memory)", m->limit);
        return false;
    }
    m->used += n;
    return true;
}

void qmem_release(struct qmem *m, size_t n)
{
    m->used -= n < m->used ? n : m->used;
}

void qmem_nomem(struct qmem *m)
{
    m->rc = -ENOMEM;
    qry_errf(m->err, "out of memory");
}

void *qmem_alloc(struct qmem *m, size_t n)
{
    if (!qmem_charge(m, n))
        return NULL;
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        qmem_release(m, n);
        qmem_nomem(m);
    }
    return p;
}

bool qbuf_room(struct qmem *m, struct qbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    if (!qmem_charge(m, cap - b->cap))
        return false;
    char *p = realloc(b->p, cap);
    if (!p) {
        qmem_release(m, cap - b->cap);
        qmem_nomem(m);
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

/* ---- Map ---- */

struct qslot *qmap_get(struct qmem *mem, struct qmap *m, const char *key, size_t klen, uint64_t h,
                       bool *created)
{
    *created = false;
    if ((m->n + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct qslot *s = qmem_alloc(mem, cap * sizeof(*s));
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
        qmem_release(mem, m->cap * sizeof(*s));
        m->s = s;
        m->cap = cap;
    }
    size_t j = h & (m->cap - 1);
    for (; m->s[j].key; j = (j + 1) & (m->cap - 1))
        if (m->s[j].h == h && m->s[j].klen == klen && memcmp(m->s[j].key, key, klen) == 0)
            return &m->s[j];
    char *k = qmem_alloc(mem, klen + 1);
    if (!k)
        return NULL;
    memcpy(k, key, klen);
    m->s[j] = (struct qslot){.key = k, .klen = klen, .h = h};
    m->n++;
    *created = true;
    return &m->s[j];
}

static void fstates_free(struct qmem *mem, struct fstate *f, size_t n);

static void map_free(struct qmem *mem, struct qmap *m, size_t nfuncs)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].key)
            continue;
        free(m->s[i].key);
        qmem_release(mem, m->s[i].klen + 1);
        fstates_free(mem, m->s[i].val, nfuncs);
    }
    free(m->s);
    qmem_release(mem, m->cap * sizeof(*m->s));
    *m = (struct qmap){0};
}

/* ---- Function states ---- */

static void fstates_free(struct qmem *mem, struct fstate *f, size_t n)
{
    if (!f)
        return;
    for (size_t i = 0; i < n; i++) {
        if (f[i].uniq) {
            map_free(mem, f[i].uniq, 0);
            free(f[i].uniq);
            qmem_release(mem, sizeof(struct qmap));
        }
        qsk_free(mem, f[i].sk);
    }
    free(f);
    qmem_release(mem, n * sizeof(*f));
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
static bool append_value(struct qagg *a, struct qbuf *b, const struct lc_entry *e, const char *name,
                         size_t nlen, int64_t step_ms, bool *present)
{
    char tmp[48];
    const char *v = NULL;
    size_t len = 0;
    struct qfield f = {0};
    *present = true;
    if (a->ov_name && nlen == a->ov_nlen && memcmp(name, a->ov_name, nlen) == 0) {
        v = a->ov_v, len = a->ov_len;
    } else if (nlen == 5 && memcmp(name, "_time", 5) == 0) {
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
        if (!f.value_len)
            return true; /* Present and empty: nothing to append (b may have no buffer yet). */
        if (!qbuf_room(&a->mem, b, f.value_len))
            return false;
        b->len += qfield_copy(&f, b->p + b->len);
        return true;
    }
    if (!v || (len == 0 && v != tmp)) {
        *present = false;
        return true;
    }
    if (!qbuf_room(&a->mem, b, len))
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
        if (!st->uniq && !(st->uniq = qmem_alloc(&a->mem, sizeof(*st->uniq))))
            return false;
        return qmap_get(&a->mem, st->uniq, a->vals.p, a->vals.len,
                        XXH3_64bits(a->vals.p, a->vals.len), &created) != NULL;
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
        if (!st->sk && !(st->sk = qsk_new(&a->mem)))
            return false;
        return qsk_add(&a->mem, st->sk, x);
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
    a->mem.limit = mem_limit;
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
        qmem_release(&a->mem, a->rows[i]->bytes);
        free(a->rows[i]);
    }
    a->nrows = keep;
}

bool qagg_push_row(struct qagg *a, struct qrow *r)
{
    if (a->nrows == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        if (!qmem_charge(&a->mem, (cap - a->cap) * sizeof(*a->rows)))
            return false;
        struct qrow **rows = realloc(a->rows, cap * sizeof(*rows));
        if (!rows) {
            qmem_nomem(&a->mem);
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
        qmem_nomem(&a->mem);
        return false;
    }
    if (!qmem_charge(&a->mem, bytes)) {
        free(r);
        return false;
    }
    return qagg_push_row(a, r);
}

static bool add_field_names(struct qagg *a, const struct lc_entry *e)
{
    static const char *const builtin[] = {"_time", "level", "_msg", "source"};
    bool created;
    a->seq++;
    for (size_t i = 0; i < 4; i++) {
        if (i == 3 && e->source_len == 0)
            break;
        struct qslot *s = qmap_get(&a->mem, &a->groups, builtin[i], strlen(builtin[i]),
                                   XXH3_64bits(builtin[i], strlen(builtin[i])), &created);
        if (!s)
            return false;
        s->cnt++;
    }
    struct qfield f;
    size_t pos = 0;
    while (e->msg && qfield_next(e->msg, e->msg_len, &pos, &f)) {
        struct qslot *s = qmap_get(&a->mem, &a->groups, f.name, f.name_len,
                                   XXH3_64bits(f.name, f.name_len), &created);
        if (!s)
            return false;
        if (s->stamp != a->seq)
            s->cnt++, s->stamp = a->seq;
    }
    return true;
}

/* The function states of e's group (its by-values as the key), created when new; NULL when
 * the memory limit or the allocator said no (rc is set). */
static struct fstate *group_states(struct qagg *a, const struct lc_entry *e)
{
    const struct qpipe *g = a->agg;
    a->key.len = 0;
    for (size_t i = 0; i < g->nby; i++) {
        size_t at = a->key.len;
        bool present;
        uint32_t n;
        if (!qbuf_room(&a->mem, &a->key, sizeof(n)))
            return NULL;
        a->key.len += sizeof(n);
        if (!append_value(a, &a->key, e, g->by[i].name, g->by[i].len, g->by[i].step_ms, &present))
            return NULL;
        n = (uint32_t)(a->key.len - at - sizeof(n));
        memcpy(a->key.p + at, &n, sizeof(n));
    }
    bool created;
    const char *k = a->key.p ? a->key.p : "";
    struct qslot *s =
        qmap_get(&a->mem, &a->groups, k, a->key.len, XXH3_64bits(k, a->key.len), &created);
    if (!s || (created && !(s->val = qmem_alloc(&a->mem, g->nfuncs * sizeof(struct fstate)))))
        return NULL;
    return s->val;
}

static bool add_group(struct qagg *a, const struct lc_entry *e)
{
    const struct qpipe *g = a->agg;
    struct fstate *st = group_states(a, e);
    if (!st)
        return false;
    for (size_t i = 0; i < g->nfuncs; i++)
        if (!fstate_add(a, &st[i], &g->funcs[i], e))
            return false;
    return true;
}

bool qagg_add(struct qagg *a, const struct lc_entry *e)
{
    if (a->mem.rc)
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

/* True when the functions of g are all count() and every by-field is level, a _time bucket
 * that holds [min_ts, max_ts] whole, or one other field (not _msg): then *field is the index
 * of that one, else -1. */
static bool summary_answers(const struct qpipe *g, int64_t min_ts, int64_t max_ts, int *field)
{
    *field = -1;
    for (size_t i = 0; i < g->nby; i++) {
        const struct qby *by = &g->by[i];
        if (by->len == 5 && memcmp(by->name, "level", 5) == 0)
            continue;
        if (by->len == 5 && memcmp(by->name, "_time", 5) == 0) {
            if (by->step_ms <= 0)
                return false;
            int64_t rl = min_ts % by->step_ms, rh = max_ts % by->step_ms;
            int64_t bl = min_ts - (rl < 0 ? rl + by->step_ms : rl);
            int64_t bh = max_ts - (rh < 0 ? rh + by->step_ms : rh);
            if (bl != bh)
                return false;
            continue;
        }
        if (*field >= 0 || (by->len == 4 && memcmp(by->name, "_msg", 4) == 0))
            return false;
        *field = (int)i;
    }
    for (size_t i = 0; i < g->nfuncs; i++)
        if (g->funcs[i].kind != QF_COUNT || g->funcs[i].field)
            return false;
    return true;
}

/* Add n entries of level l at time ts whose value of the by-field by (if not NULL) is
 * v[0..len) to their group. False when the memory limit said no (rc is set). */
static bool add_counted(struct qagg *a, unsigned l, int64_t ts, const struct qby *by, const char *v,
                        size_t len, uint64_t n)
{
    /* A stand-in entry with the level and time the whole block shares: its group key is the
     * one each of its entries would have. */
    struct lc_entry e = {.level = (uint8_t)l, .ts_ms = ts, .msg = "", .source = ""};
    a->ov_name = by ? by->name : NULL;
    a->ov_nlen = by ? by->len : 0;
    a->ov_v = v;
    a->ov_len = len;
    struct fstate *st = group_states(a, &e);
    a->ov_name = NULL;
    if (!st)
        return false;
    for (size_t i = 0; i < a->agg->nfuncs; i++)
        st[i].n += n;
    return true;
}

static uint64_t blocks_summarized;

uint64_t qagg_blocks_summarized(void)
{
    return __atomic_load_n(&blocks_summarized, __ATOMIC_RELAXED);
}

bool qagg_add_summary(struct qagg *a, const struct qagg_block *b)
{
    const struct qpipe *g = a->agg;
    int fi;
    if (a->mem.rc || !g || (g->kind != QP_STATS && g->kind != QP_TOP) ||
        !summary_answers(g, b->min_ts, b->max_ts, &fi))
        return false;
    const struct qby *by = fi >= 0 ? &g->by[fi] : NULL;
    const uint8_t *vals = NULL;
    unsigned nvals = 0;
    if (by) {
        if (!b->values || !b->level_counts)
            return false;
        bool source = by->len == 6 && memcmp(by->name, "source", 6) == 0;
        if (valsum_find(b->values, b->values_len, source, by->name, by->len, &vals, &nvals) ==
            VS_UNKNOWN)
            return false;
        /* A level's entries are taken all or none (the values count them all), and a damaged
         * summary must not count more than there are. */
        uint64_t sum[LC_LEVEL_COUNT] = {0};
        const uint8_t *p = vals;
        for (unsigned k = 0; k < nvals; k++) {
            const char *v;
            size_t len;
            uint32_t c[LC_LEVEL_COUNT];
            valsum_value(&p, &v, &len, c);
            for (int l = 0; l < LC_LEVEL_COUNT; l++)
                sum[l] += c[l];
        }
        for (int l = 0; l < LC_LEVEL_COUNT; l++)
            if (b->counts[l] && (b->counts[l] != b->level_counts[l] || sum[l] > b->counts[l]))
                return false;
    }
    __atomic_fetch_add(&blocks_summarized, 1, __ATOMIC_RELAXED);
    for (unsigned l = 0; l < LC_LEVEL_COUNT; l++) {
        uint64_t rest = b->counts[l];
        const uint8_t *p = vals;
        for (unsigned k = 0; rest && k < nvals; k++) {
            const char *v;
            size_t len;
            uint32_t c[LC_LEVEL_COUNT];
            valsum_value(&p, &v, &len, c);
            if (!c[l])
                continue;
            if (!add_counted(a, l, b->min_ts, by, v, len, c[l]))
                return true; /* rc is set: the run ends with the memory error. */
            rest -= c[l];
        }
        if (rest && !add_counted(a, l, b->min_ts, by, "", 0, rest))
            return true;
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
        if (!d->uniq && !(d->uniq = qmem_alloc(&a->mem, sizeof(*d->uniq))))
            return false;
        for (size_t i = 0; i < s->uniq->cap; i++) {
            const struct qslot *u = &s->uniq->s[i];
            if (u->key && !qmap_get(&a->mem, d->uniq, u->key, u->klen, u->h, &created))
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
    if (!d->sk && !(d->sk = qsk_new(&a->mem)))
        return false;
    return qsk_merge(&a->mem, d->sk, s->sk);
}

/* Parts copy what they take from b, so b's books stay b's and b is freed whole. */
int qagg_merge(struct qagg *a, struct qagg *b)
{
    if (!b)
        return a->mem.rc;
    if (b->mem.rc && !a->mem.rc) {
        a->mem.rc = b->mem.rc;
        memcpy(a->mem.err, b->mem.err, sizeof(a->mem.err));
    }
    if (!a->mem.rc && !a->agg) {
        for (size_t i = 0; i < b->nrows && !a->mem.rc; i++) {
            size_t bytes = b->rows[i]->bytes;
            if (!qmem_charge(&a->mem, bytes))
                break;
            if (!qagg_push_row(a, b->rows[i])) {
                qmem_release(&a->mem, bytes);
                break;
            }
            qmem_release(&b->mem, bytes);
            b->rows[i] = NULL;
        }
        prune(a);
    } else if (!a->mem.rc) {
        const struct qpipe *g = a->agg;
        bool names = g->kind == QP_FIELD_NAMES, created;
        for (size_t i = 0; i < b->groups.cap && !a->mem.rc; i++) {
            const struct qslot *s = &b->groups.s[i];
            if (!s->key)
                continue;
            struct qslot *d = qmap_get(&a->mem, &a->groups, s->key, s->klen, s->h, &created);
            if (!d)
                break;
            d->cnt += s->cnt;
            if (names)
                continue;
            if (created && !(d->val = qmem_alloc(&a->mem, g->nfuncs * sizeof(struct fstate))))
                break;
            for (size_t f = 0; f < g->nfuncs; f++)
                if (!fstate_merge(a, (struct fstate *)d->val + f, (const struct fstate *)s->val + f,
                                  &g->funcs[f]))
                    break;
        }
    }
    qagg_free(b);
    return a->mem.rc;
}

const char *qagg_error(const struct qagg *a)
{
    return a && a->mem.rc ? a->mem.err : NULL;
}

void qagg_free(struct qagg *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nrows; i++)
        free(a->rows[i]);
    free(a->rows);
    map_free(&a->mem, &a->groups, a->agg && a->agg->kind != QP_FIELD_NAMES ? a->agg->nfuncs : 0);
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
        return qfmt_num(qsk_quantile(st->sk, fn->phi, st->n, st->min, st->max), out);
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
    size_t limit = a->mem.limit;
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
    if (a->mem.rc) {
        qry_errf(err, "%s", a->mem.err);
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
    size_t limit = a->mem.limit;
    qagg_free(a);
    return wtable_finish(&t, p, 0, true, limit, err);
}
