/* skip.c - decide from a block's summary (levels, times, filters) that no entry of it can
 * match a query, or that all do, so the scan skips or counts the block without reading it.
 *
 * The walk reads the tree only, so any number of threads may run it on one query at once; it
 * does not allocate. The tree's depth is bounded by the parser's nesting limit, so recursion
 * is safe.
 *
 * Token filters (store/tokfilter.h). A keyword is a case-insensitive substring of the message,
 * so what it says about the message's words depends on where it is cut. Split the needle into
 * pieces, maximal runs of word bytes: where a piece has a non-word byte beside it inside the
 * needle, the message has one there too, so the message's word ends there. Hence:
 *   - a piece with such a byte on both sides is a whole word of the message;
 *   - a piece with one only after it (the needle starts inside a word) ends a word, one with
 *     one only before it starts a word; neither says where it sits in the word's windows,
 *     except that a word's start is window-aligned: its windows are known exactly;
 *   - otherwise the piece lies anywhere inside a word: for each of the TOKF_STRIDE alignments
 *     its aligned windows are known, and one alignment must hold.
 * A pair (key:value) starts a space-delimited field, and unless it is a prefix (key:val*) ends
 * one: its edges are word edges too, and its space-separated parts holding '=' are whole
 * fields ("key=value") or, for the open end, a field's "key=" (the filter leaves out "key="
 * when the key is one word: that word, whole, is then the clause that says it). Every clause
 * follows from the
 * needle occurring, so a block without one holds no match: results never change. */
#include <errno.h>
#include <stdlib.h>

#include "query/qry_internal.h"
#include "store/filter.h"
#include "store/tokfilter.h"

/* Add a clause of alts alternatives of per hashes each, the hashes of fold[off(a, j)..+len)
 * for alternative a and index j (off = first + a + j * step). Returns false when full (then
 * nothing is added; leaving clauses out only makes the filter rule out fewer blocks). */
static bool plan_add(struct tok_plan *t, const char *fold, size_t first, unsigned alts,
                     unsigned per, size_t step, size_t len)
{
    if (t->nclause == TOKP_CLAUSES || t->nhash + alts * per > TOKP_HASHES || !alts || !per)
        return false;
    t->clause[t->nclause].at = (uint16_t)t->nhash;
    t->clause[t->nclause].alts = (uint8_t)alts;
    t->clause[t->nclause].per = (uint8_t)per;
    t->nclause++;
    for (unsigned a = 0; a < alts; a++)
        for (unsigned j = 0; j < per; j++)
            t->hash[t->nhash++] = tokf_hash(fold + first + a + j * step, len);
    return true;
}

/* The windows of a piece fold[i..i+p) that starts at a word's start: those at its aligned
 * offsets, most TOKP_WIN_PER of them, spread over the piece. */
#define TOKP_WIN_PER 4

static void plan_piece(struct tok_plan *t, const char *fold, size_t i, size_t p, bool open_l,
                       bool open_r)
{
    if (!open_l && !open_r) {
        plan_add(t, fold, i, 1, 1, 0, p);
        return;
    }
    if (!open_l) { /* Starts a word: windows at offsets 0, S, 2S, ... */
        if (p < TOKF_WIN)
            return;
        size_t n = (p - TOKF_WIN) / TOKF_STRIDE + 1, step = 1;
        while (n > TOKP_WIN_PER) /* Every other aligned window, and so on. */
            n = ((n - 1) / 2) + 1, step *= 2;
        plan_add(t, fold, i, 1, (unsigned)n, step * TOKF_STRIDE, TOKF_WIN);
        return;
    }
    /* Anywhere in a word: alignment a has windows at a, a + S, ...; the alternative with the
     * fewest bounds how many each may test. */
    if (p < TOKF_WIN + TOKF_STRIDE - 1)
        return;
    size_t n = (p - TOKF_WIN - (TOKF_STRIDE - 1)) / TOKF_STRIDE + 1, step = 1;
    while (n > TOKP_WIN_PER)
        n = ((n - 1) / 2) + 1, step *= 2;
    plan_add(t, fold, i, TOKF_STRIDE, (unsigned)n, step * TOKF_STRIDE, TOKF_WIN);
}

/* Whether p[0..n) is one word, non-empty. */
static bool one_word(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tokf_is_word((unsigned char)p[i]))
            return false;
    return n > 0;
}

/* The plan of one keyword; NULL in *out when nothing constrains it. */
static int plan_keyword(struct qnode *n)
{
    size_t len = n->kw.needle.len;
    bool pair = n->kw.pair, open_end = !pair || n->kw.prefix;
    char *fold = malloc(len ? len : 1);
    struct tok_plan *t = calloc(1, sizeof(*t));
    if (!fold || !t) {
        free(fold);
        free(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < len; i++)
        fold[i] = (char)filter_fold((unsigned char)n->kw.text[i]);
    /* Whole fields first: for a pair they are the most selective clauses. */
    for (size_t i = 0; pair && i < len;) {
        if (fold[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i, eq = 0;
        while (j < len && fold[j] != ' ') {
            if (fold[j] == '=' && !eq)
                eq = j + 1;
            j++;
        }
        /* The filter has the whole field, and "key=" unless the key is one word: then that
         * word, whole, is the clause that says it. */
        if (eq && (j < len || !open_end))
            plan_add(t, fold, i, 1, 1, 0, j - i);
        else if (eq && !one_word(fold + i, eq - 1 - i))
            plan_add(t, fold, i, 1, 1, 0, eq - i);
        i = j;
    }
    for (size_t i = 0; i < len;) {
        if (!tokf_is_word((unsigned char)fold[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && tokf_is_word((unsigned char)fold[j]))
            j++;
        plan_piece(t, fold, i, j - i, i == 0 && !pair, j == len && open_end);
        i = j;
    }
    free(fold);
    if (!t->nclause) {
        free(t);
        t = NULL;
    }
    free(n->kw.tok);
    n->kw.tok = t;
    return 0;
}

int skip_prepare(struct qnode *n)
{
    int rc = 0;
    switch (n->kind) {
    case QN_AND:
    case QN_OR:
        for (size_t i = 0; i < n->list.n && rc == 0; i++)
            rc = skip_prepare(n->list.kids[i]);
        return rc;
    case QN_NOT:
        return skip_prepare(n->child);
    case QN_KEYWORD:
        return n->kw.needle.len ? plan_keyword(n) : 0;
    default:
        return 0;
    }
}

/* Whether a block whose token filter is bits[0..nbits) may hold the keyword. */
static bool tokens_may_contain(const struct tok_plan *t, const uint64_t *bits, uint32_t nbits)
{
    for (unsigned c = 0; c < t->nclause; c++) {
        const uint64_t *h = t->hash + t->clause[c].at;
        unsigned per = t->clause[c].per;
        bool any = false;
        for (unsigned a = 0; a < t->clause[c].alts && !any; a++, h += per) {
            unsigned j = 0;
            while (j < per && tokf_may_have(bits, nbits, h[j]))
                j++;
            any = j == per;
        }
        if (!any)
            return false;
    }
    return true;
}

/* What a block's summary tells about a node: no entry matches, some may, or all do. */
enum tri { T_NONE, T_SOME, T_ALL };

static enum tri mask_tri(uint32_t node_mask, uint32_t block_mask)
{
    if ((node_mask & block_mask) == 0)
        return T_NONE;
    return (block_mask & ~node_mask) == 0 ? T_ALL : T_SOME;
}

static bool text_may_contain(const struct qnode *n, const struct lc_block_info *b)
{
    if (b->text)
        return ci_needle_find(&n->kw.needle, b->text, b->text_len) != NULL;
    const uint64_t *tokens = n->kw.tok ? lc_block_tokens(b) : NULL;
    if (tokens && !tokens_may_contain(n->kw.tok, tokens, b->tokens_nbits))
        return false;
    if (b->filter)
        return filter_may_contain(b->filter, b->filter_log2, n->kw.text, n->kw.needle.len);
    return true;
}

static enum tri node_tri(const struct qnode *n, const struct lc_block_info *b)
{
    enum tri t, acc;
    switch (n->kind) {
    case QN_TRUE:
        return T_ALL;
    case QN_AND:
        acc = T_ALL;
        for (size_t i = 0; i < n->list.n && acc != T_NONE; i++)
            if ((t = node_tri(n->list.kids[i], b)) < acc)
                acc = t;
        return acc;
    case QN_OR:
        acc = T_NONE;
        for (size_t i = 0; i < n->list.n && acc != T_ALL; i++)
            if ((t = node_tri(n->list.kids[i], b)) > acc)
                acc = t;
        return acc;
    case QN_NOT:
        t = node_tri(n->child, b);
        return t == T_ALL ? T_NONE : t == T_NONE ? T_ALL : T_SOME;
    case QN_KEYWORD:
        if (n->kw.needle.len == 0)
            return T_ALL;
        t = n->kw.level_mask ? mask_tri(n->kw.level_mask, b->level_mask) : T_NONE;
        if (t == T_ALL)
            return T_ALL;
        return text_may_contain(n, b) ? T_SOME : t;
    case QN_LEVEL:
        return mask_tri(n->level_mask, b->level_mask);
    case QN_TIME:
        if (n->time.from_ms > b->max_ts_ms || n->time.to_ms < b->min_ts_ms)
            return T_NONE;
        return n->time.from_ms <= b->min_ts_ms && n->time.to_ms >= b->max_ts_ms ? T_ALL : T_SOME;
    case QN_SOURCE:
        return n->src.len == 0 ? T_ALL : T_SOME;
    case QN_CMP: /* Its field's "name=" is in every message it matches. */
        if (b->text)
            return ci_needle_find(&n->cmp.needle, b->text, b->text_len) ? T_SOME : T_NONE;
        if (b->filter &&
            !filter_may_contain(b->filter, b->filter_log2, n->cmp.name, n->cmp.needle.len))
            return T_NONE;
        return T_SOME;
    case QN_REGEX:
        return T_SOME;
    }
    return T_SOME;
}

_Static_assert(QRY_ALL_STRIPES == (1u << TOKF_STRIPES) - 1, "a bit per stripe");

/* The stripes of b whose filters may hold what n needs (b has stripes). A node the block's
 * summary rules out needs none: in "user:12345", the OR of the field and the literal word
 * "user:12345", the word has no token to test a stripe by, but the block's trigrams rule it
 * out. */
static uint32_t node_stripes(const struct qnode *n, const struct lc_block_info *b,
                             const uint64_t *tokens)
{
    uint32_t m;
    if (node_tri(n, b) == T_NONE)
        return 0;
    switch (n->kind) {
    case QN_AND:
        m = QRY_ALL_STRIPES;
        for (size_t i = 0; i < n->list.n && m; i++)
            m &= node_stripes(n->list.kids[i], b, tokens);
        return m;
    case QN_OR:
        m = 0;
        for (size_t i = 0; i < n->list.n && m != QRY_ALL_STRIPES; i++)
            m |= node_stripes(n->list.kids[i], b, tokens);
        return m;
    case QN_KEYWORD: /* A keyword that also matches by level may match anywhere. */
        if (!n->kw.tok || n->kw.level_mask)
            return QRY_ALL_STRIPES;
        m = 0;
        for (unsigned s = 0; s < TOKF_STRIPES; s++)
            if (tokens_may_contain(n->kw.tok,
                                   tokf_stripe(tokens, b->tokens_nbits, b->stripe_nbits, s),
                                   b->stripe_nbits))
                m |= 1u << s;
        return m;
    default: /* NOT, and what stripe filters know nothing about. */
        return QRY_ALL_STRIPES;
    }
}

uint32_t qry_block_stripes(const struct qry *q, const struct lc_block_info *b)
{
    const uint64_t *tokens = q ? lc_block_tokens(b) : NULL;
    if (!tokens || !b->stripe_nbits)
        return QRY_ALL_STRIPES;
    return node_stripes(q->root, b, tokens);
}

bool qry_block_may_match(const struct qry *q, const struct lc_block_info *b)
{
    return !q || node_tri(q->root, b) != T_NONE;
}

static int64_t level_sum(uint32_t mask, const struct lc_block_info *b)
{
    int64_t n = 0;
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        if (mask >> l & 1u)
            n += b->level_counts[l];
    return n;
}

int64_t qry_block_count(const struct qry *q, const struct lc_block_info *b)
{
    uint64_t count = b->last_id - b->first_id + 1;
    enum tri t = q ? node_tri(q->root, b) : T_ALL;
    if (t != T_SOME)
        return t == T_ALL ? (int64_t)count : 0;
    if (!b->level_counts)
        return -1;
    const struct qnode *n = q->root;
    if (n->kind == QN_LEVEL)
        return level_sum(n->level_mask, b);
    if (n->kind != QN_AND)
        return -1;
    /* All children but one level filter match every entry: count that level's entries. */
    const struct qnode *lvl = NULL;
    for (size_t i = 0; i < n->list.n; i++) {
        const struct qnode *k = n->list.kids[i];
        if (node_tri(k, b) == T_ALL)
            continue;
        if (k->kind != QN_LEVEL || lvl)
            return -1;
        lvl = k;
    }
    return lvl ? level_sum(lvl->level_mask, b) : (int64_t)count;
}
