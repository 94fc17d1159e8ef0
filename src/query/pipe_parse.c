/* pipe_parse.c - compile the pipes after a query's filter (README "Pipes").
 *
 *     pipes := pipe ( '|' pipe )*
 *     pipe  := stats [by (by, ...)] func [[as] name], ... [by (by, ...)]
 *            | top [N] [by] (by, ...) | field_names
 *            | sort by (name [asc|desc], ...) [desc] | order ... | limit [N] | head [N]
 *            | fields name, ...
 *     func  := count() | count(f) | count_uniq(f) | sum(f) | min(f) | max(f) | avg(f)
 *            | quantile(phi, f)
 *     by    := name | _time:DURATION
 *
 * Pipe, function and option words are case-insensitive; field and column names are exact.
 * A name may be "quoted". The aggregation (stats, top, field_names) must be the first pipe;
 * sort and fields after it may name only its columns, and after a fields pipe only its names.
 * Every error is one sentence naming the byte position of the offending token. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/pipe_internal.h"

enum ptk { PT_EOF, PT_WORD, PT_LP, PT_RP, PT_COMMA, PT_BAR };

struct ptok {
    enum ptk k;
    size_t pos;
    const char *t; /* PT_WORD: the word, or a quoted body (escapes unresolved). */
    size_t len;
    bool quoted;
};

struct pp {
    const char *s;
    size_t len, pos;
    struct ptok tok;
    char *err;
    /* The columns a pipe may name here: open = any field of an entry (entry chain before a
     * fields pipe), else exactly names[]. */
    bool open;
    const char *names[QP_MAX_COLS + QP_MAX_BY];
    size_t nnames;
};

static const char *const builtin_cols[] = {"_time", "level", "source", "_msg"};

/* ---- Tokens ---- */

static bool pspace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int padvance(struct pp *p)
{
    while (p->pos < p->len && pspace(p->s[p->pos]))
        p->pos++;
    struct ptok *t = &p->tok;
    *t = (struct ptok){.k = PT_EOF, .pos = p->pos};
    if (p->pos >= p->len)
        return 0;
    char c = p->s[p->pos];
    if (c == '(' || c == ')' || c == ',' || c == '|') {
        t->k = c == '(' ? PT_LP : c == ')' ? PT_RP : c == ',' ? PT_COMMA : PT_BAR;
        p->pos++;
        return 0;
    }
    t->k = PT_WORD;
    if (c == '"') {
        size_t i = p->pos + 1;
        while (i < p->len && p->s[i] != '"')
            i += (p->s[i] == '\\' && i + 1 < p->len) ? 2 : 1;
        if (i >= p->len) {
            qry_errf(p->err, "unterminated quote at %zu", p->pos);
            return -EINVAL;
        }
        t->t = p->s + p->pos + 1;
        t->len = i - p->pos - 1;
        t->quoted = true;
        p->pos = i + 1;
        return 0;
    }
    size_t i = p->pos;
    while (i < p->len && !pspace(p->s[i]) && !strchr("(),|\"", p->s[i]))
        i++;
    t->t = p->s + p->pos;
    t->len = i - p->pos;
    p->pos = i;
    return 0;
}

static bool is_word(const struct pp *p, const char *w)
{
    return p->tok.k == PT_WORD && !p->tok.quoted && p->tok.len == strlen(w) &&
           strncasecmp(p->tok.t, w, p->tok.len) == 0;
}

static const char *tok_desc(const struct ptok *t)
{
    switch (t->k) {
    case PT_EOF:
        return "the end";
    case PT_LP:
        return "\"(\"";
    case PT_RP:
        return "\")\"";
    case PT_COMMA:
        return "\",\"";
    case PT_BAR:
        return "\"|\"";
    case PT_WORD:
        break;
    }
    return "a word";
}

static int expect(struct pp *p, enum ptk k, const char *what)
{
    if (p->tok.k != k) {
        qry_errf(p->err, "expected %s at %zu", what, p->tok.pos);
        return -EINVAL;
    }
    return padvance(p);
}

static int nomem(struct pp *p)
{
    qry_errf(p->err, "out of memory");
    return -ENOMEM;
}

/* The current word as an owned string (quotes resolved), then advance. */
static int take_name(struct pp *p, char **out, size_t *out_len, const char *what)
{
    if (p->tok.k != PT_WORD || p->tok.len == 0) {
        qry_errf(p->err, "expected %s at %zu", what, p->tok.pos);
        return -EINVAL;
    }
    char *d = malloc(p->tok.len + 1);
    if (!d)
        return nomem(p);
    size_t n = 0;
    for (size_t i = 0; i < p->tok.len; i++) {
        if (p->tok.quoted && p->tok.t[i] == '\\' && i + 1 < p->tok.len)
            i++;
        d[n++] = p->tok.t[i];
    }
    d[n] = '\0';
    *out = d;
    if (out_len)
        *out_len = n;
    return padvance(p);
}

/* ---- Columns ---- */

static bool has_name(const struct pp *p, const char *name)
{
    for (size_t i = 0; i < p->nnames; i++)
        if (strcmp(p->names[i], name) == 0)
            return true;
    return false;
}

/* A column named by sort or fields: must exist unless any entry field may be named; an entry
 * chain's named fields are collected into ecols. */
static int use_col(struct pp *p, struct qpipes *q, const char *name, size_t pos)
{
    char qb[48];
    if (!p->open) {
        if (has_name(p, name))
            return 0;
        qry_errf(p->err, "unknown column \"%s\" at %zu",
                 err_quote(qb, sizeof(qb), name, strlen(name)), pos);
        return -EINVAL;
    }
    for (size_t i = 0; i < q->necols; i++)
        if (strcmp(q->ecols[i], name) == 0)
            return 0;
    if (q->necols == QP_MAX_COLS) {
        qry_errf(p->err, "too many fields (limit %d) at %zu", QP_MAX_COLS, pos);
        return -EINVAL;
    }
    char **e = realloc(q->ecols, (q->necols + 1) * sizeof(*e));
    if (!e)
        return nomem(p);
    q->ecols = e;
    if (!(e[q->necols] = strdup(name)))
        return nomem(p);
    q->necols++;
    return 0;
}

static int add_name(struct pp *p, const char *name, size_t pos)
{
    char qb[48];
    if (has_name(p, name)) {
        qry_errf(p->err, "duplicate column \"%s\" at %zu",
                 err_quote(qb, sizeof(qb), name, strlen(name)), pos);
        return -EINVAL;
    }
    p->names[p->nnames++] = name;
    return 0;
}

/* ---- Pipes ---- */

/* "(a, _time:5m, ...)" */
static int parse_by(struct pp *p, struct qpipe *pi)
{
    int rc;
    if ((rc = expect(p, PT_LP, "\"(\"")) < 0)
        return rc;
    for (;;) {
        if (pi->nby == QP_MAX_BY) {
            qry_errf(p->err, "too many fields in by (limit %d) at %zu", QP_MAX_BY, p->tok.pos);
            return -EINVAL;
        }
        struct qby *b = &pi->by[pi->nby];
        size_t pos = p->tok.pos;
        if ((rc = take_name(p, &b->name, &b->len, "a field")) < 0)
            return rc;
        pi->nby++;
        if (b->len > 6 && memcmp(b->name, "_time:", 6) == 0) {
            double ns;
            enum qnum_kind k;
            if (!val_number(b->name + 6, b->len - 6, &ns, &k) || k != QNUM_DURATION || ns < 1e6 ||
                ns > 1e20 || fmod(ns, 1e6) != 0) {
                char qb[48];
                qry_errf(p->err, "bad time bucket '%s' (a duration of whole ms, e.g. 5m) at %zu",
                         err_quote(qb, sizeof(qb), b->name + 6, b->len - 6), pos + 6);
                return -EINVAL;
            }
            b->step_ms = (int64_t)(ns / 1e6);
            b->name[5] = '\0';
            b->len = 5;
        }
        if ((rc = add_name(p, b->name, pos)) < 0)
            return rc;
        if (p->tok.k == PT_RP)
            return padvance(p);
        if ((rc = expect(p, PT_COMMA, "\",\" or \")\"")) < 0)
            return rc;
    }
}

static const struct {
    const char *name;
    enum qf_kind kind;
} func_names[] = {
    {"count", QF_COUNT},       {"count_uniq", QF_COUNT_UNIQ},
    {"sum", QF_SUM},           {"min", QF_MIN},
    {"max", QF_MAX},           {"avg", QF_AVG},
    {"quantile", QF_QUANTILE},
};

/* func(args) [[as] name] */
static int parse_func(struct pp *p, struct qfunc *f)
{
    size_t pos = p->tok.pos;
    const char *fname = NULL;
    char qb[48];
    int rc;
    for (size_t i = 0; p->tok.k == PT_WORD && i < sizeof(func_names) / sizeof(func_names[0]); i++)
        if (is_word(p, func_names[i].name))
            fname = func_names[i].name, f->kind = func_names[i].kind;
    if (!fname) {
        if (p->tok.k != PT_WORD) {
            qry_errf(p->err, "expected a function such as count() at %zu", pos);
            return -EINVAL;
        }
        qry_errf(p->err, "unknown function \"%s\" at %zu",
                 err_quote(qb, sizeof(qb), p->tok.t, p->tok.len), pos);
        return -EINVAL;
    }
    if ((rc = padvance(p)) < 0 || (rc = expect(p, PT_LP, "\"(\"")) < 0)
        return rc;
    const char *args_start = p->s + p->tok.pos;
    size_t nargs = 0, phi_pos = 0;
    for (; p->tok.k != PT_RP; nargs++) {
        if (p->tok.k == PT_EOF || p->tok.k == PT_BAR) {
            qry_errf(p->err, "expected \")\" at %zu", p->tok.pos);
            return -EINVAL;
        }
        if (nargs > 0 && (rc = expect(p, PT_COMMA, "\",\" or \")\"")) < 0)
            return rc;
        if (f->kind == QF_QUANTILE && nargs == 0) {
            phi_pos = p->tok.pos;
            double phi;
            if (p->tok.k != PT_WORD || p->tok.quoted ||
                !val_number(p->tok.t, p->tok.len, &phi, NULL) || !(phi >= 0 && phi <= 1)) {
                qry_errf(p->err, "quantile needs phi in [0,1] at %zu", phi_pos);
                return -EINVAL;
            }
            f->phi = phi;
            if ((rc = padvance(p)) < 0)
                return rc;
            continue;
        }
        if (f->field || nargs > 1) {
            qry_errf(p->err, "%s takes %s at %zu", fname,
                     f->kind == QF_QUANTILE ? "phi and one field" : "one field", p->tok.pos);
            return -EINVAL;
        }
        if (f->kind == QF_COUNT && is_word(p, "*")) {
            if ((rc = padvance(p)) < 0)
                return rc;
            continue;
        }
        if ((rc = take_name(p, &f->field, &f->field_len, "a field")) < 0)
            return rc;
    }
    const char *args_end = p->s + p->tok.pos;
    if (f->kind != QF_COUNT && !f->field) {
        qry_errf(p->err, "%s needs %s at %zu", fname,
                 f->kind == QF_QUANTILE ? "phi and a field" : "a field", p->tok.pos);
        return -EINVAL;
    }
    if ((rc = padvance(p)) < 0)
        return rc;
    if (p->tok.k == PT_WORD && !is_word(p, "by")) {
        if (is_word(p, "as") && (rc = padvance(p)) < 0)
            return rc;
        return take_name(p, &f->col, NULL, "a column name after as");
    }
    /* The default name is the call as written, with ", " between arguments. */
    size_t cap = strlen(fname) + 3 + 2 * (size_t)(args_end - args_start), n = 0;
    if (!(f->col = malloc(cap)))
        return nomem(p);
    n = (size_t)snprintf(f->col, cap, "%s(", fname);
    bool sep = false;
    for (const char *c = args_start; c < args_end; c++) {
        if (*c == ',') {
            f->col[n++] = ',', sep = true;
        } else if (!pspace(*c)) {
            if (sep)
                f->col[n++] = ' ', sep = false;
            f->col[n++] = *c;
        }
    }
    f->col[n++] = ')';
    f->col[n] = '\0';
    return 0;
}

static int parse_stats(struct pp *p, struct qpipe *pi)
{
    int rc;
    if (!(pi->by = calloc(QP_MAX_BY, sizeof(*pi->by))) ||
        !(pi->funcs = calloc(QP_MAX_FUNCS, sizeof(*pi->funcs))))
        return nomem(p);
    p->open = false;
    p->nnames = 0;
    if (is_word(p, "by") && ((rc = padvance(p)) < 0 || (rc = parse_by(p, pi)) < 0))
        return rc;
    for (;;) {
        if (pi->nfuncs == QP_MAX_FUNCS) {
            qry_errf(p->err, "too many functions (limit %d) at %zu", QP_MAX_FUNCS, p->tok.pos);
            return -EINVAL;
        }
        struct qfunc *f = &pi->funcs[pi->nfuncs];
        size_t pos = p->tok.pos;
        if ((rc = parse_func(p, f)) < 0) {
            pi->nfuncs++; /* Its strings are freed with the pipe. */
            return rc;
        }
        pi->nfuncs++;
        if ((rc = add_name(p, f->col, pos)) < 0)
            return rc;
        if (p->tok.k != PT_COMMA)
            break;
        if ((rc = padvance(p)) < 0)
            return rc;
    }
    if (is_word(p, "by")) {
        if (pi->nby) {
            qry_errf(p->err, "stats has two by clauses at %zu", p->tok.pos);
            return -EINVAL;
        }
        if ((rc = padvance(p)) < 0 || (rc = parse_by(p, pi)) < 0)
            return rc;
    }
    return 0;
}

/* A count for top, limit, head: digits, or a default when absent. */
static int parse_count(struct pp *p, uint64_t *n, uint64_t dflt)
{
    *n = dflt;
    if (p->tok.k != PT_WORD || is_word(p, "by"))
        return 0;
    if (val_limit(p->tok.t, p->tok.len, n, NULL) < 0) {
        char qb[48];
        qry_errf(p->err, "bad number '%s' at %zu", err_quote(qb, sizeof(qb), p->tok.t, p->tok.len),
                 p->tok.pos);
        return -EINVAL;
    }
    return padvance(p);
}

static int parse_top(struct pp *p, struct qpipe *pi)
{
    int rc;
    if (!(pi->by = calloc(QP_MAX_BY, sizeof(*pi->by))) ||
        !(pi->funcs = calloc(1, sizeof(*pi->funcs))) || !(pi->funcs[0].col = strdup("hits")))
        return nomem(p);
    pi->nfuncs = 1;
    pi->funcs[0].kind = QF_COUNT;
    p->open = false;
    p->nnames = 0;
    if ((rc = parse_count(p, &pi->n, 10)) < 0)
        return rc;
    if (is_word(p, "by") && (rc = padvance(p)) < 0)
        return rc;
    if (p->tok.k != PT_LP) {
        qry_errf(p->err, "top needs by (fields) at %zu", p->tok.pos);
        return -EINVAL;
    }
    if ((rc = parse_by(p, pi)) < 0)
        return rc;
    return add_name(p, "hits", pi->pos);
}

static int parse_sort(struct pp *p, struct qpipes *q, struct qpipe *pi)
{
    int rc;
    if (!is_word(p, "by")) {
        qry_errf(p->err, "expected \"by\" at %zu", p->tok.pos);
        return -EINVAL;
    }
    if ((rc = padvance(p)) < 0 || (rc = expect(p, PT_LP, "\"(\"")) < 0)
        return rc;
    if (!(pi->keys = calloc(QP_MAX_COLS, sizeof(*pi->keys))))
        return nomem(p);
    for (;;) {
        if (pi->nkeys == QP_MAX_COLS) {
            qry_errf(p->err, "too many sort keys (limit %d) at %zu", QP_MAX_COLS, p->tok.pos);
            return -EINVAL;
        }
        struct qsortkey *k = &pi->keys[pi->nkeys];
        size_t pos = p->tok.pos;
        if ((rc = take_name(p, &k->col, NULL, "a column")) < 0)
            return rc;
        pi->nkeys++;
        if ((rc = use_col(p, q, k->col, pos)) < 0)
            return rc;
        if (is_word(p, "desc") || is_word(p, "asc")) {
            k->desc = is_word(p, "desc");
            if ((rc = padvance(p)) < 0)
                return rc;
        }
        if (p->tok.k == PT_RP)
            break;
        if ((rc = expect(p, PT_COMMA, "\",\" or \")\"")) < 0)
            return rc;
    }
    if ((rc = padvance(p)) < 0)
        return rc;
    if (is_word(p, "desc")) { /* sort by (a, b) desc: every key reversed. */
        for (size_t i = 0; i < pi->nkeys; i++)
            pi->keys[i].desc = !pi->keys[i].desc;
        return padvance(p);
    }
    return 0;
}

static int parse_fields(struct pp *p, struct qpipes *q, struct qpipe *pi)
{
    int rc;
    if (!(pi->cols = calloc(QP_MAX_COLS, sizeof(*pi->cols))))
        return nomem(p);
    for (;;) {
        if (pi->ncols == QP_MAX_COLS) {
            qry_errf(p->err, "too many fields (limit %d) at %zu", QP_MAX_COLS, p->tok.pos);
            return -EINVAL;
        }
        size_t pos = p->tok.pos;
        if ((rc = take_name(p, &pi->cols[pi->ncols], NULL, "a field")) < 0)
            return rc;
        pi->ncols++;
        if ((rc = use_col(p, q, pi->cols[pi->ncols - 1], pos)) < 0)
            return rc;
        if (p->tok.k != PT_COMMA)
            break;
        if ((rc = padvance(p)) < 0)
            return rc;
    }
    p->open = false;
    p->nnames = 0;
    for (size_t i = 0; i < pi->ncols; i++)
        if ((rc = add_name(p, pi->cols[i], pi->pos)) < 0)
            return rc;
    return 0;
}

static const struct {
    const char *name;
    enum qp_kind kind;
} pipe_names[] = {
    {"stats", QP_STATS}, {"top", QP_TOP},       {"field_names", QP_FIELD_NAMES},
    {"sort", QP_SORT},   {"order", QP_SORT},    {"limit", QP_LIMIT},
    {"head", QP_LIMIT},  {"fields", QP_FIELDS},
};

static int parse_pipe(struct pp *p, struct qpipes *q, struct qpipe *pi)
{
    char qb[48];
    int rc;
    pi->pos = p->tok.pos;
    if (p->tok.k != PT_WORD) {
        qry_errf(p->err, "expected a pipe at %zu, found %s", p->tok.pos, tok_desc(&p->tok));
        return -EINVAL;
    }
    size_t k = 0, nk = sizeof(pipe_names) / sizeof(pipe_names[0]);
    while (k < nk && !is_word(p, pipe_names[k].name))
        k++;
    if (k == nk) {
        qry_errf(p->err, "unknown pipe \"%s\" at %zu",
                 err_quote(qb, sizeof(qb), p->tok.t, p->tok.len), p->tok.pos);
        return -EINVAL;
    }
    pi->kind = pipe_names[k].kind;
    bool agg = pi->kind == QP_STATS || pi->kind == QP_TOP || pi->kind == QP_FIELD_NAMES;
    if (agg && q->n > 0) {
        qry_errf(p->err, "%s must be the first pipe at %zu", pipe_names[k].name, pi->pos);
        return -EINVAL;
    }
    if ((rc = padvance(p)) < 0)
        return rc;
    switch (pi->kind) {
    case QP_STATS:
        return parse_stats(p, pi);
    case QP_TOP:
        return parse_top(p, pi);
    case QP_FIELD_NAMES:
        p->open = false;
        p->nnames = 0;
        p->names[p->nnames++] = "name";
        p->names[p->nnames++] = "hits";
        return 0;
    case QP_SORT:
        return parse_sort(p, q, pi);
    case QP_LIMIT:
        return parse_count(p, &pi->n, 10);
    case QP_FIELDS:
        return parse_fields(p, q, pi);
    }
    return 0;
}

/* How an entry chain's parts may prune (pipe_internal.h). */
static void set_prune(struct qpipes *q)
{
    size_t i = 0;
    while (i < q->n && q->p[i].kind == QP_FIELDS)
        i++;
    if (q->agg != q->n || i == q->n)
        return;
    if (q->p[i].kind == QP_LIMIT) {
        q->prune = PRUNE_NEWEST;
        q->keep = q->p[i].n;
        return;
    }
    size_t j = i + 1;
    while (j < q->n && q->p[j].kind == QP_FIELDS)
        j++;
    if (q->p[i].kind == QP_SORT && j < q->n && q->p[j].kind == QP_LIMIT) {
        q->prune = PRUNE_SORTED;
        q->keep = q->p[j].n;
        q->prune_pipe = i;
    }
}

int qpipes_parse(const char *text, size_t len, size_t pos, struct qpipes **out, char *err)
{
    struct pp p = {.s = text, .len = len, .pos = pos, .err = err, .open = true};
    struct qpipes *q = calloc(1, sizeof(*q));
    int rc;
    *out = NULL;
    if (!q || !(q->p = calloc(QP_MAX_PIPES, sizeof(*q->p))))
        goto nomem;
    q->bar = pos ? pos - 1 : 0;
    for (size_t i = 0; i < 4; i++)
        if ((rc = use_col(&p, q, builtin_cols[i], 0)) < 0)
            goto fail;
    if ((rc = padvance(&p)) < 0)
        goto fail;
    for (;;) {
        if (q->n == QP_MAX_PIPES) {
            qry_errf(err, "too many pipes (limit %d) at %zu", QP_MAX_PIPES, p.tok.pos);
            rc = -EINVAL;
            goto fail;
        }
        struct qpipe *pi = &q->p[q->n];
        rc = parse_pipe(&p, q, pi);
        q->n++;
        if (rc < 0)
            goto fail;
        if (pi->kind == QP_STATS || pi->kind == QP_TOP || pi->kind == QP_FIELD_NAMES)
            q->agg = q->n - 1;
        if (p.tok.k == PT_EOF)
            break;
        if (p.tok.k != PT_BAR) {
            qry_errf(err, "expected \"|\" or the end at %zu, found %s", p.tok.pos,
                     tok_desc(&p.tok));
            rc = -EINVAL;
            goto fail;
        }
        if ((rc = padvance(&p)) < 0)
            goto fail;
    }
    bool has_agg = false;
    for (size_t i = 0; i < q->n; i++)
        has_agg |=
            q->p[i].kind == QP_STATS || q->p[i].kind == QP_TOP || q->p[i].kind == QP_FIELD_NAMES;
    if (!has_agg)
        q->agg = q->n;
    set_prune(q);
    *out = q;
    return 0;
nomem:
    qry_errf(err, "out of memory");
    rc = -ENOMEM;
fail:
    qpipes_free(q);
    return rc;
}

void qpipes_free(struct qpipes *q)
{
    if (!q)
        return;
    for (size_t i = 0; q->p && i < q->n; i++) {
        struct qpipe *pi = &q->p[i];
        for (size_t k = 0; pi->by && k < QP_MAX_BY; k++)
            free(pi->by[k].name);
        for (size_t k = 0; pi->funcs && k < pi->nfuncs; k++) {
            free(pi->funcs[k].field);
            free(pi->funcs[k].col);
        }
        for (size_t k = 0; pi->keys && k < QP_MAX_COLS; k++)
            free(pi->keys[k].col);
        for (size_t k = 0; pi->cols && k < QP_MAX_COLS; k++)
            free(pi->cols[k]);
        free(pi->by);
        free(pi->funcs);
        free(pi->keys);
        free(pi->cols);
    }
    for (size_t i = 0; i < q->necols; i++)
        free(q->ecols[i]);
    free(q->ecols);
    free(q->p);
    free(q);
}

/* ---- pipe.h: the compiled query's side ---- */

bool qry_has_pipes(const struct qry *q)
{
    return q && q->pipes;
}

const struct qpipes *qry_pipes(const struct qry *q)
{
    return q ? q->pipes : NULL;
}

size_t qpipes_bar(const struct qpipes *p)
{
    return p->bar;
}

bool qpipes_needs_all(const struct qpipes *p)
{
    return !(p->agg == p->n && p->prune == PRUNE_NEWEST);
}
