/* table.c - the pipes that run after the parts are merged (sort, limit, fields), the answer's
 * table, and how its cells are written.
 *
 * Sorting is total and deterministic, so every split of a run into parts gives the same table:
 * empty values (a missing field) come last in either direction; numbers (val_number) come
 * before other values and compare by value, equal numbers and other values compare bytewise, and
 * rows equal in every key keep their order (a part's pruning, which has no order yet, breaks those
 * ties by entry id, which is the order an entry table starts in). */
#define _GNU_SOURCE /* qsort_r */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/pipe_internal.h"

/* ---- Rows ---- */

struct qrow *qrow_make(uint64_t id, size_t n, const char *const *v, const size_t *len,
                       size_t *bytes)
{
    size_t size = sizeof(struct qrow) + n * (sizeof(char *) + sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        size += len[i] + 1;
    struct qrow *r = malloc(size);
    if (!r)
        return NULL;
    r->id = id;
    r->bytes = size;
    r->v = (char **)(r + 1);
    r->len = (size_t *)(r->v + n);
    char *p = (char *)(r->len + n);
    for (size_t i = 0; i < n; i++) {
        r->v[i] = p;
        r->len[i] = len[i];
        if (len[i])
            memcpy(p, v[i], len[i]);
        p[len[i]] = '\0';
        p += len[i] + 1;
    }
    *bytes = size;
    return r;
}

/* ---- Sorting ---- */

struct sort_ctx {
    const struct qsortspec *spec;
    struct qrow **rows;
    const double *x;   /* rows * keys: the key's number. */
    const bool *isnum; /* rows * keys: the key is a number. */
    bool by_id;        /* Ties by entry id (pruning), else by position (a stable sort). */
};

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : al < bl ? -1 : al > bl ? 1 : 0;
}

static int sort_cmp(const void *pa, const void *pb, void *arg)
{
    const struct sort_ctx *c = arg;
    size_t i = *(const size_t *)pa, j = *(const size_t *)pb, nk = c->spec->nkeys;
    const struct qrow *a = c->rows[i], *b = c->rows[j];
    for (size_t k = 0; k < nk; k++) {
        size_t col = c->spec->col[k];
        bool an = c->isnum[i * nk + k], bn = c->isnum[j * nk + k];
        int r = 0;
        bool ae = a->len[col] == 0, be = b->len[col] == 0;
        if (ae || be) { /* Missing values last, whatever the direction. */
            if (ae != be)
                return ae ? 1 : -1;
            continue;
        }
        if (an && bn) {
            double x = c->x[i * nk + k], y = c->x[j * nk + k];
            r = x < y ? -1 : x > y ? 1 : 0;
        } else if (an != bn) {
            r = an ? -1 : 1;
        }
        if (r == 0)
            r = bytes_cmp(a->v[col], a->len[col], b->v[col], b->len[col]);
        if (r)
            return c->spec->desc[k] ? -r : r;
    }
    if (c->by_id && a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return i < j ? -1 : i > j ? 1 : 0;
}

static int sort_rows(struct qrow **rows, size_t n, const struct qsortspec *spec, bool by_id)
{
    size_t nk = spec->nkeys;
    if (n < 2)
        return 0;
    size_t *idx = malloc(n * sizeof(*idx));
    double *x = malloc(n * nk * sizeof(*x) + 1);
    bool *isnum = malloc(n * nk * sizeof(*isnum) + 1);
    struct qrow **tmp = malloc(n * sizeof(*tmp));
    if (!idx || !x || !isnum || !tmp) {
        free(idx), free(x), free(isnum), free(tmp);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        for (size_t k = 0; k < nk; k++) {
            size_t col = spec->col[k];
            isnum[i * nk + k] =
                val_number(rows[i]->v[col], rows[i]->len[col], &x[i * nk + k], NULL) &&
                !isnan(x[i * nk + k]);
        }
    }
    struct sort_ctx c = {.spec = spec, .rows = rows, .x = x, .isnum = isnum, .by_id = by_id};
    qsort_r(idx, n, sizeof(*idx), sort_cmp, &c);
    for (size_t i = 0; i < n; i++)
        tmp[i] = rows[idx[i]];
    memcpy(rows, tmp, n * sizeof(*rows));
    free(idx), free(x), free(isnum), free(tmp);
    return 0;
}

int qrows_sort(struct qrow **rows, size_t n, const struct qsortspec *spec)
{
    return sort_rows(rows, n, spec, true);
}

/* ---- The pipes after the merge ---- */

long wtable_col(const struct wtable *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->names[i], name) == 0)
            return (long)i;
    return -1;
}

/* Keep only the named columns (a missing one is empty), in that order. */
static int project(struct wtable *t, const char *const *names, size_t n, bool *num)
{
    long col[QP_MAX_COLS];
    bool newnum[QP_MAX_COLS];
    for (size_t i = 0; i < n; i++) {
        col[i] = wtable_col(t, names[i]);
        newnum[i] = col[i] >= 0 && t->num[col[i]];
    }
    for (size_t r = 0; r < t->nrows; r++) {
        const char *v[QP_MAX_COLS];
        size_t len[QP_MAX_COLS], bytes;
        for (size_t i = 0; i < n; i++) {
            v[i] = col[i] >= 0 ? t->rows[r]->v[col[i]] : "";
            len[i] = col[i] >= 0 ? t->rows[r]->len[col[i]] : 0;
        }
        struct qrow *nr = qrow_make(t->rows[r]->id, n, v, len, &bytes);
        if (!nr)
            return -ENOMEM;
        free(t->rows[r]);
        t->rows[r] = nr;
    }
    memcpy(num, newnum, n * sizeof(*num));
    t->num = num;
    t->names = (const char **)names;
    t->ncols = n;
    return 0;
}

static void cut(struct wtable *t, uint64_t n)
{
    if (t->nrows <= n)
        return;
    size_t drop = t->nrows - (size_t)n;
    /* Unsorted entries: limit keeps the newest, the last ones. */
    size_t from = t->sorted ? (size_t)n : 0;
    for (size_t i = from; i < from + drop; i++)
        free(t->rows[i]);
    if (!t->sorted)
        memmove(t->rows, t->rows + drop, (size_t)n * sizeof(*t->rows));
    t->nrows = (size_t)n;
}

static struct qtable *to_qtable(struct wtable *t, size_t mem_limit, char *err)
{
    size_t bytes = 0;
    for (size_t r = 0; r < t->nrows; r++)
        bytes += t->rows[r]->bytes + t->ncols * sizeof(struct qcell);
    if (mem_limit && bytes > mem_limit) {
        if (mem_limit % (1u << 20) == 0)
            qry_errf(err, "query needs more than %zu MiB (--query-memory)", mem_limit >> 20);
        else
            qry_errf(err, "query needs more than %zu bytes (--query-memory)", mem_limit);
        return NULL;
    }
    struct qtable *q = calloc(1, sizeof(*q));
    if (!q)
        goto nomem;
    q->ncols = t->ncols;
    if (!(q->cols = calloc(t->ncols + 1, sizeof(*q->cols))) ||
        !(q->cells = calloc(t->nrows * t->ncols + 1, sizeof(*q->cells))))
        goto nomem;
    for (size_t c = 0; c < t->ncols; c++)
        if (!(q->cols[c] = strdup(t->names[c])))
            goto nomem;
    for (size_t r = 0; r < t->nrows; r++, q->nrows++) {
        for (size_t c = 0; c < t->ncols; c++) {
            struct qcell *cell = &q->cells[r * t->ncols + c];
            char *s = malloc(t->rows[r]->len[c] + 1);
            if (!s)
                goto nomem;
            memcpy(s, t->rows[r]->v[c], t->rows[r]->len[c] + 1);
            cell->s = s;
            cell->len = t->rows[r]->len[c];
            cell->num = t->num[c] && cell->len > 0;
        }
    }
    return q;
nomem:
    if (q) /* Count the partial row so its cells are freed. */
        q->nrows += q->cells && q->nrows < t->nrows ? 1 : 0;
    qtable_free(q);
    qry_errf(err, "out of memory");
    return NULL;
}

struct qtable *wtable_finish(struct wtable *t, const struct qpipes *p, size_t from, bool ecols,
                             size_t mem_limit, char *err)
{
    bool num[QP_MAX_COLS + QP_MAX_BY + QP_MAX_FUNCS];
    bool picked = false;
    struct qtable *q = NULL;
    for (size_t i = from; i < p->n; i++) {
        const struct qpipe *pi = &p->p[i];
        if (pi->kind == QP_SORT) {
            struct qsortspec spec = {.nkeys = pi->nkeys};
            for (size_t k = 0; k < pi->nkeys; k++) {
                long c = wtable_col(t, pi->keys[k].col);
                spec.col[k] = c >= 0 ? (size_t)c : 0;
                spec.desc[k] = pi->keys[k].desc;
            }
            if (sort_rows(t->rows, t->nrows, &spec, false) < 0)
                goto nomem;
            t->sorted = true;
        } else if (pi->kind == QP_LIMIT) {
            cut(t, pi->n);
        } else if (pi->kind == QP_FIELDS) {
            if (project(t, (const char *const *)pi->cols, pi->ncols, num) < 0)
                goto nomem;
            picked = true;
        }
    }
    if (ecols && !picked && project(t, (const char *const *)p->ecols, 4, num) < 0)
        goto nomem;
    q = to_qtable(t, mem_limit, err);
    goto out;
nomem:
    qry_errf(err, "out of memory");
out:
    for (size_t r = 0; r < t->nrows; r++)
        free(t->rows[r]);
    free(t->rows);
    t->rows = NULL;
    t->nrows = 0;
    return q;
}

void qtable_free(struct qtable *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->cols && i < t->ncols; i++)
        free(t->cols[i]);
    for (size_t i = 0; t->cells && i < t->nrows * t->ncols; i++)
        free((char *)t->cells[i].s);
    free(t->cols);
    free(t->cells);
    free(t);
}

/* ---- Writing cells ---- */

size_t qfmt_num(double v, char *out)
{
    if (v == 0)
        return (size_t)snprintf(out, 32, "0");
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return (size_t)snprintf(out, 32, "%.0f", v);
    for (int prec = 15; prec < 17; prec++) {
        int n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return (size_t)n;
    }
    return (size_t)snprintf(out, 32, "%.17g", v);
}

size_t qfmt_time(int64_t ts_ms, bool millis, char *out)
{
    int64_t ms = ts_ms % 1000;
    if (ms < 0)
        ms += 1000;
    time_t secs = (time_t)((ts_ms - ms) / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return (size_t)snprintf(out, 40, "%lld", (long long)ts_ms);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    if (millis)
        n += (size_t)snprintf(out + n, 40 - n, ".%03d", (int)ms);
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

/* Write s[0..len) at out[*n..cap), double-quoted with \" and \\ escapes when it is empty or
 * holds one of the bytes that end a bare word on the wire (space, '"', '=', and for names
 * '|'). */
static void put_word(const char *s, size_t len, bool name, char *out, size_t cap, size_t *n)
{
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (*n < cap)                                                                              \
            out[*n] = (ch);                                                                        \
        (*n)++;                                                                                    \
    } while (0)
    bool quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ' ' || s[i] == '"' || s[i] == '=' || (name && s[i] == '|');
    if (quote)
        PUT('"');
    for (size_t i = 0; i < len; i++) {
        if (quote && (s[i] == '"' || s[i] == '\\'))
            PUT('\\');
        PUT(s[i]);
    }
    if (quote)
        PUT('"');
#undef PUT
}

size_t qtable_row_kv(const struct qtable *t, size_t r, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        const struct qcell *cell = &t->cells[r * t->ncols + c];
        if (c) {
            if (n < cap)
                out[n] = ' ';
            n++;
        }
        put_word(t->cols[c], strlen(t->cols[c]), true, out, cap, &n);
        if (n < cap)
            out[n] = '=';
        n++;
        put_word(cell->s, cell->len, false, out, cap, &n);
    }
    return n;
}
