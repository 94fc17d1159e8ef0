/* nodes.c - the query tree: nodes and their order, leaves decoded from tokens and values,
 * and the builders the older protocol forms use (qry.h). The parser (parse.c) builds with
 * these; nothing here reads query text beyond one token's value. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "query/pipe_internal.h"
#include "query/qry_internal.h"

/* ---- Nodes ---- */

struct qnode *qnode_new(enum qnode_kind kind)
{
    struct qnode *n = calloc(1, sizeof(*n));
    if (n)
        n->kind = kind;
    return n;
}

void qnode_free(struct qnode *n)
{
    if (!n)
        return;
    switch (n->kind) {
    case QN_AND:
    case QN_OR:
        for (size_t i = 0; i < n->list.n; i++)
            qnode_free(n->list.kids[i]);
        free(n->list.kids);
        break;
    case QN_NOT:
        qnode_free(n->child);
        break;
    case QN_KEYWORD:
        free(n->kw.text);
        free(n->kw.tok);
        break;
    case QN_SOURCE:
        free(n->src.prefix);
        break;
    case QN_REGEX:
        regex_free(n->re);
        break;
    case QN_CMP:
        free(n->cmp.name);
        break;
    case QN_TRUE:
    case QN_LEVEL:
    case QN_TIME:
        break;
    }
    free(n);
}

/* Rough relative cost of testing a node against one entry. */
static unsigned node_cost(const struct qnode *n)
{
    switch (n->kind) {
    case QN_TRUE:
        return 0;
    case QN_LEVEL:
    case QN_TIME:
        return 1;
    case QN_SOURCE:
        return 2;
    case QN_KEYWORD:
        return 3;
    case QN_CMP:
        return 4;
    case QN_NOT:
        return node_cost(n->child);
    case QN_AND:
    case QN_OR: {
        unsigned c = 0;
        for (size_t i = 0; i < n->list.n; i++) {
            unsigned k = node_cost(n->list.kids[i]);
            c = k > c ? k : c;
        }
        return c + 1;
    }
    case QN_REGEX:
        return 6;
    }
    return 6;
}

/* Append kid to an AND/OR list, taking ownership; a kid of the same kind is merged. Returns 0
 * or -ENOMEM (kid freed). */
int qnode_list_add(struct qnode *list, struct qnode *kid)
{
    size_t add = kid->kind == list->kind ? kid->list.n : 1;
    struct qnode **k = realloc(list->list.kids, (list->list.n + add) * sizeof(*k));
    if (!k) {
        qnode_free(kid);
        return -ENOMEM;
    }
    list->list.kids = k;
    if (kid->kind == list->kind) {
        memcpy(k + list->list.n, kid->list.kids, add * sizeof(*k));
        free(kid->list.kids);
        free(kid);
    } else {
        k[list->list.n] = kid;
    }
    list->list.n += add;
    return 0;
}

/* Stable insertion sort of a list's children, cheapest first. */
void qnode_list_sort(struct qnode *list)
{
    struct qnode **k = list->list.kids;
    for (size_t i = 1; i < list->list.n; i++) {
        struct qnode *x = k[i];
        unsigned c = node_cost(x);
        size_t j = i;
        for (; j > 0 && node_cost(k[j - 1]) > c; j--)
            k[j] = k[j - 1];
        k[j] = x;
    }
}

/* Combine two owned nodes under kind (QN_AND or QN_OR); NULL when out of memory (both
 * freed). */
struct qnode *qnode_combine(enum qnode_kind kind, struct qnode *a, struct qnode *b)
{
    struct qnode *n = qnode_new(kind);
    if (!n) {
        qnode_free(a);
        qnode_free(b);
        return NULL;
    }
    if (qnode_list_add(n, a) < 0) {
        qnode_free(b);
        qnode_free(n);
        return NULL;
    }
    if (qnode_list_add(n, b) < 0) {
        qnode_free(n);
        return NULL;
    }
    qnode_list_sort(n);
    return n;
}

static void bounds(const struct qnode *n, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MIN, *hi = INT64_MAX;
    if (n->kind == QN_TIME) {
        *lo = n->time.from_ms, *hi = n->time.to_ms;
    } else if (n->kind == QN_AND) {
        for (size_t i = 0; i < n->list.n; i++) {
            int64_t l, h;
            bounds(n->list.kids[i], &l, &h);
            *lo = l > *lo ? l : *lo;
            *hi = h < *hi ? h : *hi;
        }
    } else if (n->kind == QN_OR && n->list.n > 0) {
        /* The hull of the alternatives: an entry outside every one cannot match. */
        *lo = INT64_MAX, *hi = INT64_MIN;
        for (size_t i = 0; i < n->list.n; i++) {
            int64_t l, h;
            bounds(n->list.kids[i], &l, &h);
            *lo = l < *lo ? l : *lo;
            *hi = h > *hi ? h : *hi;
        }
    }
}

struct qry *qry_wrap(struct qnode *root, uint64_t limit)
{
    struct qry *q = root ? calloc(1, sizeof(*q)) : NULL;
    if (!q || skip_prepare(root) < 0) {
        free(q);
        qnode_free(root);
        return NULL;
    }
    q->root = root;
    q->limit = limit;
    bounds(root, &q->from_ms, &q->to_ms);
    q->src.win_from_ms = INT64_MIN;
    q->src.win_to_ms = INT64_MAX;
    return q;
}

/* ---- Leaf construction ---- */

/* Resolve \" and \\ in a quoted body; other backslashes stay literal. Returns an owned,
 * NUL-terminated string and its length in *out_len, or NULL when out of memory. */
char *qry_unescape(const char *s, size_t len, size_t *out_len)
{
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len && (s[i + 1] == '"' || s[i + 1] == '\\'))
            i++;
        d[n++] = s[i];
    }
    d[n] = '\0';
    *out_len = n;
    return d;
}

/* A keyword node; text is owned by the node from here on. level_word: apply the rule that a
 * bare word naming a level also matches that level. */
struct qnode *qnode_keyword(char *text, size_t len, bool level_word)
{
    struct qnode *n = qnode_new(QN_KEYWORD);
    if (!n) {
        free(text);
        return NULL;
    }
    n->kw.text = text;
    ci_needle_init(&n->kw.needle, text, len);
    int lv = level_word ? lc_level_parse(text, len) : -1;
    n->kw.level_mask = lv >= 0 ? 1u << lv : 0;
    return n;
}

/* An owned, NUL-terminated copy of s (which may hold NUL bytes). */
char *qry_memdup0(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        if (len)
            memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* One written form of the field name=value: bare, or in double quotes with '"' and '\'
 * escaped. open: a prefix, so a quoted form has no closing quote and the value may go on. */
static struct qnode *pair_node(const char *name, size_t name_len, const char *value, size_t len,
                               bool quote, bool open)
{
    char *text = malloc(name_len + 1 + 2 * len + 3);
    if (!text)
        return NULL;
    size_t n = 0;
    memcpy(text, name, name_len);
    n += name_len;
    text[n++] = '=';
    if (quote)
        text[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (quote && (value[i] == '"' || value[i] == '\\'))
            text[n++] = '\\';
        text[n++] = value[i];
    }
    if (quote && !open)
        text[n++] = '"';
    text[n] = '\0';
    struct qnode *k = qnode_keyword(text, n, false);
    if (k) {
        k->kw.pair = true;
        k->kw.prefix = open;
    }
    return k;
}

/* Add alternative b to the OR in *acc (NULL at first); false when out of memory (*acc is
 * freed then). */
static bool either(struct qnode **acc, struct qnode *b)
{
    if (!b) {
        qnode_free(*acc);
        *acc = NULL;
        return false;
    }
    *acc = *acc ? qnode_combine(QN_OR, *acc, b) : b;
    return *acc != NULL;
}

/* A name:value pair token: the field name=value as the inputs write it (syslog.c, json_line.c:
 * in quotes when the value holds a space, tab or quote; a value with a backslash is quoted by
 * syslog, bare in JSON, so both forms count; a JSON object or array is bare, quotes and all).
 * Unquoted, the literal word too, as before fields existed, so "user:admin" still finds text that
 * says exactly that. A value ending in '*' matches fields whose value starts with the rest, bare or
 * quoted. */
struct qnode *qnode_pair_term(const struct token *t)
{
    size_t len = t->len;
    char *value = t->quoted ? qry_unescape(t->text, t->len, &len) : qry_memdup0(t->text, t->len);
    if (!value)
        return NULL;
    bool prefix = !t->quoted && len > 1 && value[len - 1] == '*';
    if (prefix)
        len--;
    bool blank = false, quote = false, backslash = false;
    for (size_t i = 0; i < len; i++) {
        blank |= value[i] == ' ' || value[i] == '\t';
        quote |= value[i] == '"';
        backslash |= value[i] == '\\';
    }
    /* JSON lines write nested objects and arrays bare whatever they hold. */
    bool container = len > 0 && (value[0] == '{' || value[0] == '[');
    bool must_quote = len == 0 || blank || (quote && !container);
    struct qnode *n = NULL;
    bool ok = true;
    if (len > 0 && (!blank || container))
        ok = either(&n, pair_node(t->name, t->name_len, value, len, false, prefix));
    if (ok && (must_quote || quote || backslash || prefix))
        ok = either(&n, pair_node(t->name, t->name_len, value, len, true, prefix));
    free(value);
    if (!ok || t->quoted || prefix)
        return n;
    size_t wlen = (size_t)(t->text + t->len - t->name);
    char *word = qry_memdup0(t->name, wlen);
    either(&n, word ? qnode_keyword(word, wlen, false) : NULL);
    return n;
}

/* A comparison: name:>N, :>=N, :<N, :<=N or :[A,B] (inclusive), N as val_number reads it.
 * Returns 1 when the value is no comparison (an equality pair after all: "tags:[a,b]"), 0 with
 * *out set, or -EINVAL / -ENOMEM with err set. */
int qnode_cmp_term(const struct token *t, struct qnode **out, char *err)
{
    const char *v = t->text;
    size_t len = t->len;
    double lo = -__builtin_inf(), hi = __builtin_inf();
    bool lo_open = false, hi_open = false;
    char q[48];
    *out = NULL;
    if (t->quoted || len == 0)
        return 1;
    if (v[0] == '>' || v[0] == '<') {
        bool ge = v[0] == '>', eq = len > 1 && v[1] == '=';
        size_t skip = eq ? 2 : 1;
        double x;
        if (!val_number(v + skip, len - skip, &x, NULL)) {
            qry_errf(err, "bad number '%s' at %zu", err_quote(q, sizeof(q), v + skip, len - skip),
                     (size_t)(v + skip - t->name) + t->pos);
            return -EINVAL;
        }
        if (ge)
            lo = x, lo_open = !eq;
        else
            hi = x, hi_open = !eq;
    } else if (v[0] == '[' && v[len - 1] == ']') {
        const char *comma = memchr(v, ',', len);
        if (!comma)
            return 1;
        const char *a = v + 1, *b = comma + 1, *end = v + len - 1;
        while (a < comma && (*a == ' ' || *a == '\t'))
            a++;
        while (b < end && (*b == ' ' || *b == '\t'))
            b++;
        const char *ae = comma, *be = end;
        while (ae > a && (ae[-1] == ' ' || ae[-1] == '\t'))
            ae--;
        while (be > b && (be[-1] == ' ' || be[-1] == '\t'))
            be--;
        if (!val_number(a, (size_t)(ae - a), &lo, NULL) ||
            !val_number(b, (size_t)(be - b), &hi, NULL))
            return 1;
    } else {
        return 1;
    }
    struct qnode *n = qnode_new(QN_CMP);
    char *name = n ? malloc(t->name_len + 2) : NULL;
    if (!name) {
        free(n);
        qry_errf(err, "out of memory");
        return -ENOMEM;
    }
    memcpy(name, t->name, t->name_len);
    name[t->name_len] = '=';
    name[t->name_len + 1] = '\0';
    n->cmp.name = name;
    n->cmp.name_len = t->name_len;
    ci_needle_init(&n->cmp.needle, name, t->name_len + 1);
    n->cmp.lo = lo, n->cmp.hi = hi;
    n->cmp.lo_open = lo_open, n->cmp.hi_open = hi_open;
    *out = n;
    return 0;
}

struct qnode *qnode_time(int64_t from_ms, int64_t to_ms)
{
    struct qnode *n = qnode_new(QN_TIME);
    if (n)
        n->time.from_ms = from_ms, n->time.to_ms = to_ms;
    return n;
}

struct qnode *qnode_regex(const char *pat, size_t len, bool caseless, char *err, int *rc)
{
    struct qry_regex *re;
    if ((*rc = regex_compile(pat, len, caseless, &re, err)) < 0)
        return NULL;
    struct qnode *n = qnode_new(QN_REGEX);
    if (!n) {
        regex_free(re);
        *rc = -ENOMEM;
        return NULL;
    }
    n->re = re;
    return n;
}

int64_t qry_sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) ? (b > 0 ? INT64_MIN : INT64_MAX) : r;
}

static struct qry *built(struct qnode *n, char *err)
{
    struct qry *q = n ? qry_wrap(n, 0) : NULL;
    if (!q)
        qry_errf(err, "out of memory");
    return q;
}

struct qry *qry_keyword(const char *kw, size_t len, char *err)
{
    if (!kw)
        len = 0;
    char *text = qry_memdup0(kw, len);
    return built(text ? qnode_keyword(text, len, true) : NULL, err);
}

struct qry *qry_level(const char *name, size_t len, char *err)
{
    uint32_t mask;
    if (val_level_mask(name ? name : "", name ? len : 0, &mask, err) < 0)
        return NULL;
    struct qnode *n = qnode_new(QN_LEVEL);
    if (n)
        n->level_mask = mask;
    return built(n, err);
}

struct qry *qry_regex(const char *pat, size_t len, char *err)
{
    int rc;
    struct qnode *n = qnode_regex(pat, len, false, err, &rc);
    return n ? built(n, err) : NULL;
}

struct qry *qry_time_range(int64_t from_ms, int64_t to_ms, char *err)
{
    struct qry *q = built(qnode_time(from_ms, to_ms), err);
    if (q) { /* Portable as an empty text (everything) within the window. */
        q->src = (struct qry_source){true, "", 0, 0, from_ms, to_ms};
    }
    return q;
}

const struct qry_source *qry_source(const struct qry *q)
{
    return &q->src;
}

void qry_set_partial_ok(struct qry *q, bool ok)
{
    if (q)
        q->partial_ok = ok;
}

bool qry_partial_ok(const struct qry *q)
{
    return q && q->partial_ok;
}

/* The source of a AND b: portable when one of them is a bare time window (empty text). */
static struct qry_source join_source(enum qnode_kind kind, struct qry *a, struct qry *b,
                                     char **text)
{
    struct qry_source s = {.win_from_ms = INT64_MIN, .win_to_ms = INT64_MAX};
    *text = NULL;
    if (kind != QN_AND || !a->src.portable || !b->src.portable ||
        (a->src.text_len && b->src.text_len))
        return s;
    struct qry *t = a->src.text_len ? a : b;
    s = t->src;
    *text = t->text;
    t->text = NULL;
    s.win_from_ms =
        a->src.win_from_ms > b->src.win_from_ms ? a->src.win_from_ms : b->src.win_from_ms;
    s.win_to_ms = a->src.win_to_ms < b->src.win_to_ms ? a->src.win_to_ms : b->src.win_to_ms;
    if (!*text) {
        s.text = "";
        s.text_len = 0;
    }
    return s;
}

static struct qry *join(enum qnode_kind kind, struct qry *a, struct qry *b)
{
    if (!a || !b)
        return a ? a : b;
    uint64_t limit = a->limit && b->limit ? (a->limit < b->limit ? a->limit : b->limit)
                                          : (a->limit ? a->limit : b->limit);
    char *text;
    struct qry_source src = join_source(kind, a, b, &text);
    struct qnode *n = qnode_combine(kind, a->root, b->root);
    struct qpipes *pipes = a->pipes ? a->pipes : b->pipes;
    if (a->pipes && b->pipes)
        qpipes_free(b->pipes);
    free(a->text);
    free(b->text);
    free(a);
    free(b);
    struct qry *q = n ? qry_wrap(n, limit) : NULL;
    if (q) {
        q->pipes = pipes;
        q->src = src;
        q->text = text;
    } else {
        qpipes_free(pipes);
        free(text);
    }
    return q;
}

struct qry *qry_and(struct qry *a, struct qry *b)
{
    return join(QN_AND, a, b);
}

struct qry *qry_or(struct qry *a, struct qry *b)
{
    return join(QN_OR, a, b);
}

void qry_set_limit(struct qry *q, uint64_t limit)
{
    if (q)
        q->limit = limit;
}

uint64_t qry_limit(const struct qry *q)
{
    return q ? q->limit : 0;
}

void qry_time_bounds(const struct qry *q, int64_t *from_ms, int64_t *to_ms)
{
    *from_ms = q ? q->from_ms : INT64_MIN;
    *to_ms = q ? q->to_ms : INT64_MAX;
}

void qry_free(struct qry *q)
{
    if (!q)
        return;
    qnode_free(q->root);
    qpipes_free(q->pipes);
    free(q->text);
    free(q);
}
