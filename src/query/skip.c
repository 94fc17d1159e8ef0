/* skip.c - decide from a block's summary (levels, times, filters) that no entry of it can
 * match a query, or that all do, so the scan skips or counts the block without reading it.
 *
 * The walk reads the tree only, so any number of threads may run it on one query at once; it
 * does not allocate. The tree's depth is bounded by the parser's nesting limit, so recursion
 * is safe. */
#include "query/qry_internal.h"
#include "store/filter.h"

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
    case QN_REGEX:
        return T_SOME;
    }
    return T_SOME;
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
