/* agg_wire.c - a part's wire form (pipe.h qagg_encode, qagg_decode): in a cluster every node
 * runs the query over the partitions it holds, merges its parts and sends the one part to the
 * coordinating node, which decodes the parts of all nodes, merges them and finishes the table.
 *
 * The form carries the part's state exactly (numbers as their IEEE bits, sketches bucket by
 * bucket), so merging decoded parts gives the table merging the originals would. It is
 * self-describing enough to be refused clearly: a magic, a version, the kind of state, and a
 * hash of the compiled pipes, which must be the decoder's. Integers are LEB128 varints (u),
 * zigzag for signed ones (s); doubles and the hash are 8 bytes big-endian.
 *
 *     part     := 'Q' 'P' version=1 kind  hash:8  body
 *     ENTRIES  := u nrows  u ncols  ( u id  ( u len  bytes ){ncols} ){nrows}
 *     GROUPS   := u ngroups  u nby  u nfuncs  ( ( u len  bytes ){nby}  state{nfuncs} ){ngroups}
 *     NAMES    := u nnames  ( u len  bytes  u hits ){nnames}
 *     ERROR    := u errno  u len  bytes                    (the sentence that stopped the part)
 *     state    := count: u n | count_uniq: u k ( u len bytes ){k}
 *               | sum, avg: u n [sum] | min: u n [min] | max: u n [max]
 *               | quantile: u n [min max u zeros side side]        ([...] only when n > 0)
 *     side     := u len [ s lo  u count{len} ]                     (positive, then negative)
 *
 * The decoder is a network parser: every length is checked against the bytes left before
 * anything is allocated, every count of items is bounded by the bytes they need, and the
 * memory of what it builds is charged to the part's books like entries fed to it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/buf.h"
#include "query/agg_internal.h"
#include "query/sketch.h"

#define W_VERSION 1
#define W_HEADER  12 /* Magic, version, kind, hash. */

enum wkind { W_ENTRIES = 1, W_GROUPS = 2, W_NAMES = 3, W_ERROR = 4 };

static const char *const kind_names[] = {"", "entries", "groups", "field names", "an error"};

/* ---- The pipes' hash ---- */

/* Each piece seeds the next, so "ab","c" and "a","bc" differ; strings go with their lengths. */
static uint64_t mix_u(uint64_t h, uint64_t v)
{
    uint8_t b[8]; /* Little-endian, so every machine agrees. */
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return XXH3_64bits_withSeed(b, sizeof(b), h);
}

static uint64_t mix_s(uint64_t h, const char *s)
{
    if (!s)
        return mix_u(h, UINT64_MAX);
    size_t n = strlen(s);
    return XXH3_64bits_withSeed(s, n, mix_u(h, n));
}

/* Everything of the compiled pipes that shapes a part's state or the table it finishes into;
 * not the byte positions, so spacing in the query text does not matter. */
static uint64_t pipes_hash(const struct qpipes *p)
{
    uint64_t h = mix_u(W_VERSION, p->n);
    h = mix_u(h, p->agg);
    for (size_t i = 0; i < p->n; i++) {
        const struct qpipe *pi = &p->p[i];
        h = mix_u(mix_u(mix_u(h, pi->kind), pi->n), pi->nby);
        for (size_t k = 0; k < pi->nby; k++)
            h = mix_u(mix_s(h, pi->by[k].name), (uint64_t)pi->by[k].step_ms);
        h = mix_u(h, pi->nfuncs);
        for (size_t k = 0; k < pi->nfuncs; k++) {
            const struct qfunc *f = &pi->funcs[k];
            uint64_t phi;
            memcpy(&phi, &f->phi, sizeof(phi));
            h = mix_s(mix_u(mix_s(mix_u(h, f->kind), f->field), phi), f->col);
        }
        h = mix_u(h, pi->nkeys);
        for (size_t k = 0; k < pi->nkeys; k++)
            h = mix_u(mix_s(h, pi->keys[k].col), pi->keys[k].desc);
        h = mix_u(h, pi->ncols);
        for (size_t k = 0; k < pi->ncols; k++)
            h = mix_s(h, pi->cols[k]);
    }
    h = mix_u(h, p->necols);
    for (size_t i = 0; i < p->necols; i++)
        h = mix_s(h, p->ecols[i]);
    return mix_u(mix_u(mix_u(h, p->prune), p->keep), p->prune_pipe);
}

static enum wkind pipes_kind(const struct qpipes *p)
{
    if (p->agg >= p->n)
        return W_ENTRIES;
    return p->p[p->agg].kind == QP_FIELD_NAMES ? W_NAMES : W_GROUPS;
}

/* ---- Writing ---- */

struct wr {
    struct buf *b;
    int rc; /* The first failure; later writes do nothing. */
};

static void put(struct wr *w, const void *p, size_t n)
{
    if (!w->rc)
        w->rc = buf_append(w->b, p, n);
}

static void put_u(struct wr *w, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(w, t, n);
}

static void put_s(struct wr *w, int64_t v)
{
    put_u(w, v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1);
}

static void put_be64(struct wr *w, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (56 - 8 * i));
    put(w, t, 8);
}

static void put_f64(struct wr *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof(v));
    put_be64(w, v);
}

static void put_str(struct wr *w, const char *s, size_t n)
{
    put_u(w, n);
    put(w, s, n);
}

static void put_side(struct wr *w, const struct qsk_side *s)
{
    put_u(w, s->len);
    if (!s->len)
        return;
    put_s(w, s->lo);
    for (uint32_t k = 0; k < s->len; k++)
        put_u(w, s->c[k]);
}

static void put_state(struct wr *w, const struct fstate *st, const struct qfunc *fn)
{
    static const struct qsketch none;
    if (fn->kind == QF_COUNT_UNIQ) {
        put_u(w, st->uniq ? st->uniq->n : 0);
        for (size_t i = 0; st->uniq && i < st->uniq->cap; i++)
            if (st->uniq->s[i].key)
                put_str(w, st->uniq->s[i].key, st->uniq->s[i].klen);
        return;
    }
    put_u(w, st->n);
    if (fn->kind == QF_COUNT || st->n == 0)
        return;
    switch (fn->kind) {
    case QF_SUM:
    case QF_AVG:
        put_f64(w, st->sum);
        return;
    case QF_MIN:
        put_f64(w, st->min);
        return;
    case QF_MAX:
        put_f64(w, st->max);
        return;
    default:
        break;
    }
    const struct qsketch *sk = st->sk ? st->sk : &none;
    put_f64(w, st->min);
    put_f64(w, st->max);
    put_u(w, sk->zero);
    put_side(w, &sk->pos);
    put_side(w, &sk->neg);
}

static void put_groups(struct wr *w, const struct qagg *a)
{
    const struct qpipe *g = a->agg;
    put_u(w, a->groups.n);
    if (g->kind != QP_FIELD_NAMES)
        put_u(w, g->nby), put_u(w, g->nfuncs);
    for (size_t i = 0; i < a->groups.cap; i++) {
        const struct qslot *s = &a->groups.s[i];
        if (!s->key)
            continue;
        if (g->kind == QP_FIELD_NAMES) {
            put_str(w, s->key, s->klen);
            put_u(w, s->cnt);
            continue;
        }
        size_t at = 0;
        for (size_t k = 0; k < g->nby; k++) {
            uint32_t n;
            memcpy(&n, s->key + at, sizeof(n));
            put_str(w, s->key + at + sizeof(n), n);
            at += sizeof(n) + n;
        }
        for (size_t f = 0; f < g->nfuncs; f++)
            put_state(w, (const struct fstate *)s->val + f, &g->funcs[f]);
    }
}

int qagg_encode(const struct qagg *a, struct buf *out)
{
    struct wr w = {.b = out};
    size_t had = buf_len(out);
    enum wkind kind = a->mem.rc ? W_ERROR : pipes_kind(a->p);
    uint8_t head[4] = {'Q', 'P', W_VERSION, (uint8_t)kind};
    put(&w, head, sizeof(head));
    put_be64(&w, pipes_hash(a->p));
    if (kind == W_ERROR) {
        put_u(&w, (uint64_t) - (int64_t)a->mem.rc);
        put_str(&w, a->mem.err, strlen(a->mem.err));
    } else if (kind == W_ENTRIES) {
        put_u(&w, a->nrows);
        put_u(&w, a->p->necols);
        for (size_t i = 0; i < a->nrows; i++) {
            put_u(&w, a->rows[i]->id);
            for (size_t c = 0; c < a->p->necols; c++)
                put_str(&w, a->rows[i]->v[c], a->rows[i]->len[c]);
        }
    } else {
        put_groups(&w, a);
    }
    if (w.rc) /* Nothing half-written: the buffer is as it was. */
        out->end = out->start + had;
    return w.rc;
}

/* ---- Reading ---- */

struct rd {
    const uint8_t *p;
    size_t len, pos;
    char *err;
    bool bad; /* The bytes are wrong (err says how); else a stop came from the books. */
};

static bool bad(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(struct rd *r, const char *fmt, ...)
{
    char what[QRY_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (!r->bad)
        qry_errf(r->err, "query part: %s", what);
    r->bad = true;
    return false;
}

static size_t left(const struct rd *r)
{
    return r->len - r->pos;
}

static bool get_u(struct rd *r, uint64_t *v)
{
    size_t at = r->pos;
    *v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (r->pos == r->len)
            return bad(r, "truncated at byte %zu", r->pos);
        uint8_t b = r->p[r->pos++];
        if (shift == 63 && b > 1)
            return bad(r, "bad number at byte %zu", at);
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
        if (shift == 63)
            return bad(r, "bad number at byte %zu", at);
    }
}

/* A count of items that need at least `each` bytes apiece: more than the bytes left cannot be
 * true, so no loop or allocation trusts a count the input cannot back. */
static bool get_count(struct rd *r, size_t each, uint64_t *n)
{
    size_t at = r->pos;
    if (!get_u(r, n))
        return false;
    if (*n > left(r) / each)
        return bad(r, "count %llu at byte %zu exceeds the %zu bytes left", (unsigned long long)*n,
                   at, left(r));
    return true;
}

static bool get_bytes(struct rd *r, size_t n, const char **out)
{
    if (n > left(r))
        return bad(r, "truncated at byte %zu", r->len);
    *out = (const char *)r->p + r->pos;
    r->pos += n;
    return true;
}

static bool get_str(struct rd *r, const char **s, size_t *n)
{
    uint64_t len;
    if (!get_u(r, &len))
        return false;
    if (len > left(r))
        return bad(r, "truncated at byte %zu", r->len);
    *n = (size_t)len;
    return get_bytes(r, *n, s);
}

static bool get_f64(struct rd *r, double *d, bool finite)
{
    size_t at = r->pos;
    const char *p = NULL;
    if (!get_bytes(r, 8, &p))
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    memcpy(d, &v, sizeof(*d));
    if (finite && !isfinite(*d))
        return bad(r, "not a finite number at byte %zu", at);
    return true;
}

static bool get_side(struct rd *r, struct qmem *m, struct qsk_side *s)
{
    uint64_t len, z;
    size_t at = r->pos;
    if (!get_count(r, 1, &len))
        return false;
    if (len == 0)
        return true;
    if (!get_u(r, &z))
        return false;
    int64_t lo = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    if (lo < -QSK_INDEX_MAX || lo > QSK_INDEX_MAX || len > (uint64_t)(QSK_INDEX_MAX - lo + 1))
        return bad(r, "sketch buckets out of range at byte %zu", at);
    if (len > left(r))
        return bad(r, "truncated at byte %zu", r->len);
    uint64_t *c = qsk_side_init(m, s, (int32_t)lo, (uint32_t)len);
    for (uint64_t k = 0; c && k < len; k++)
        if (!get_u(r, &c[k]))
            return false;
    return c != NULL;
}

static bool get_state(struct rd *r, struct qmem *m, struct fstate *st, const struct qfunc *fn)
{
    bool created;
    if (fn->kind == QF_COUNT_UNIQ) {
        uint64_t k;
        if (!get_count(r, 1, &k))
            return false;
        if (k && !(st->uniq = qmem_alloc(m, sizeof(*st->uniq))))
            return false;
        for (uint64_t i = 0; i < k; i++) {
            const char *v;
            size_t n, at = r->pos;
            if (!get_str(r, &v, &n))
                return false;
            if (!qmap_get(m, st->uniq, v, n, XXH3_64bits(v, n), &created))
                return false;
            if (!created)
                return bad(r, "a distinct value twice at byte %zu", at);
        }
        return true;
    }
    if (!get_u(r, &st->n))
        return false;
    if (fn->kind == QF_COUNT || st->n == 0)
        return true;
    switch (fn->kind) {
    case QF_SUM:
    case QF_AVG:
        return get_f64(r, &st->sum, false);
    case QF_MIN:
        return get_f64(r, &st->min, true);
    case QF_MAX:
        return get_f64(r, &st->max, true);
    default:
        break;
    }
    if (!get_f64(r, &st->min, true) || !get_f64(r, &st->max, true) || !(st->sk = qsk_new(m)) ||
        !get_u(r, &st->sk->zero))
        return false;
    return get_side(r, m, &st->sk->pos) && get_side(r, m, &st->sk->neg);
}

/* A group's key as agg.c builds it (agg_internal.h) from its nby values. */
static bool get_key(struct rd *r, struct qagg *a)
{
    a->key.len = 0;
    for (size_t i = 0; i < a->agg->nby; i++) {
        const char *v;
        size_t n;
        if (!get_str(r, &v, &n))
            return false;
        if (n > UINT32_MAX)
            return bad(r, "value too long at byte %zu", r->pos);
        uint32_t n32 = (uint32_t)n;
        if (!qbuf_room(&a->mem, &a->key, sizeof(n32) + n))
            return false;
        memcpy(a->key.p + a->key.len, &n32, sizeof(n32));
        memcpy(a->key.p + a->key.len + sizeof(n32), v, n);
        a->key.len += sizeof(n32) + n;
    }
    return true;
}

static bool get_groups(struct rd *r, struct qagg *a)
{
    const struct qpipe *g = a->agg;
    bool names = g->kind == QP_FIELD_NAMES, created;
    uint64_t n, nby = 0, nfuncs = 0;
    /* A group takes a byte per value and per state at least; a name, two. */
    size_t each = names ? 2 : g->nby + g->nfuncs;
    if (!get_count(r, each, &n))
        return false;
    if (!names && (!get_u(r, &nby) || !get_u(r, &nfuncs)))
        return false;
    if (!names && (nby != g->nby || nfuncs != g->nfuncs))
        return bad(r, "groups of %llu values and %llu functions, the pipes have %zu and %zu",
                   (unsigned long long)nby, (unsigned long long)nfuncs, g->nby, g->nfuncs);
    for (uint64_t i = 0; i < n; i++) {
        size_t at = r->pos, klen;
        const char *k;
        if (names ? !get_str(r, &k, &klen) : !get_key(r, a))
            return false;
        if (!names)
            k = a->key.p ? a->key.p : "", klen = a->key.len;
        struct qslot *s = qmap_get(&a->mem, &a->groups, k, klen, XXH3_64bits(k, klen), &created);
        if (!s)
            return false;
        if (!created)
            return bad(r, "a group twice at byte %zu", at);
        if (names) {
            if (!get_u(r, &s->cnt))
                return false;
            continue;
        }
        if (!(s->val = qmem_alloc(&a->mem, g->nfuncs * sizeof(struct fstate))))
            return false;
        for (size_t f = 0; f < g->nfuncs; f++)
            if (!get_state(r, &a->mem, (struct fstate *)s->val + f, &g->funcs[f]))
                return false;
    }
    return true;
}

static bool get_rows(struct rd *r, struct qagg *a)
{
    const struct qpipes *p = a->p;
    uint64_t n, ncols;
    if (!get_count(r, 1 + p->necols, &n) || !get_u(r, &ncols))
        return false;
    if (ncols != p->necols)
        return bad(r, "rows of %llu fields, the pipes keep %zu", (unsigned long long)ncols,
                   p->necols);
    for (uint64_t i = 0; i < n; i++) {
        const char *v[QP_MAX_COLS + 8];
        size_t len[QP_MAX_COLS + 8], bytes;
        uint64_t id;
        if (!get_u(r, &id))
            return false;
        for (size_t c = 0; c < p->necols; c++)
            if (!get_str(r, &v[c], &len[c]))
                return false;
        struct qrow *row = qrow_make(id, p->necols, v, len, &bytes);
        if (!row) {
            qmem_nomem(&a->mem);
            return false;
        }
        if (!qmem_charge(&a->mem, bytes)) {
            free(row);
            return false;
        }
        if (!qagg_push_row(a, row)) {
            qmem_release(&a->mem, bytes);
            free(row);
            return false;
        }
    }
    return true;
}

static bool get_error(struct rd *r, struct qagg *a)
{
    uint64_t e;
    const char *s;
    size_t n, at = r->pos;
    if (!get_u(r, &e))
        return false;
    if (e == 0 || e > 4095)
        return bad(r, "bad error code %llu at byte %zu", (unsigned long long)e, at);
    at = r->pos;
    if (!get_str(r, &s, &n))
        return false;
    bool ok = n > 0 && n < QRY_ERR_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok)
        return bad(r, "bad error sentence at byte %zu", at);
    a->mem.rc = -(int)e;
    memcpy(a->mem.err, s, n);
    a->mem.err[n] = '\0';
    return true;
}

/* The header: magic, version, kind (one the pipes can hold), and the pipes' hash. */
static bool get_header(struct rd *r, const struct qpipes *p, enum wkind *kind)
{
    const uint8_t *h = r->p;
    if ((r->len >= 1 && h[0] != 'Q') || (r->len >= 2 && h[1] != 'P'))
        return bad(r, "not a query part (bad magic)");
    if (r->len < W_HEADER)
        return bad(r, "truncated at byte %zu", r->len);
    if (h[2] != W_VERSION)
        return bad(r, "version %u, this node reads version %d", h[2], W_VERSION);
    if (h[3] < W_ENTRIES || h[3] > W_ERROR)
        return bad(r, "unknown kind %u", h[3]);
    *kind = (enum wkind)h[3];
    if (*kind != W_ERROR && *kind != pipes_kind(p))
        return bad(r, "holds %s, the pipes need %s", kind_names[*kind], kind_names[pipes_kind(p)]);
    uint64_t hash = 0;
    for (int i = 0; i < 8; i++)
        hash = hash << 8 | h[4 + i];
    if (hash != pipes_hash(p))
        return bad(r, "made for other pipes than this query's (a node of another version?)");
    r->pos = W_HEADER;
    return true;
}

struct qagg *qagg_decode(const struct qpipes *p, const void *data, size_t len, size_t mem_limit,
                         char *err)
{
    struct rd r = {.p = data, .len = len, .err = err};
    enum wkind kind = W_ERROR;
    if (!get_header(&r, p, &kind))
        return NULL;
    struct qagg *a = qagg_new(p, mem_limit);
    if (!a) {
        qry_errf(err, "out of memory");
        return NULL;
    }
    bool ok = kind == W_ERROR     ? get_error(&r, a)
              : kind == W_ENTRIES ? get_rows(&r, a)
                                  : get_groups(&r, a);
    if (ok && r.pos != r.len)
        bad(&r, "%zu bytes after the end at byte %zu", r.len - r.pos, r.pos);
    if (r.bad) {
        qagg_free(a);
        return NULL;
    }
    if (ok)
        return a;
    /* The books said no: an empty part that carries their sentence, like a part that stopped
     * while entries were fed to it, and holds no memory meanwhile. */
    struct qagg *stopped = qagg_new(p, mem_limit);
    if (!stopped) {
        qagg_free(a);
        qry_errf(err, "out of memory");
        return NULL;
    }
    stopped->mem.rc = a->mem.rc;
    memcpy(stopped->mem.err, a->mem.err, sizeof(stopped->mem.err));
    qagg_free(a);
    return stopped;
}
