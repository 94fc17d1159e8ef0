/* match.c - evaluate a compiled query against one entry (skip.c decides which blocks to skip).
 *
 * The walk reads the tree only, so any number of threads may run it on one query at
 * once; it does not allocate (a regex match uses its thread's match data, created once). The
 * tree's depth is bounded by the parser's nesting limit, so recursion is safe. */
#include <string.h>

#include "query/qry_internal.h"

static inline bool level_in(uint32_t mask, uint8_t level)
{
    return level < 32 && (mask >> level) & 1u;
}

/* ASCII case-insensitive prefix test. */
static bool has_prefix_ci(const char *s, size_t len, const char *prefix, size_t plen)
{
    if (plen > len)
        return false;
    for (size_t i = 0; i < plen; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)prefix[i];
        if (a != b && ((a | 0x20) != (b | 0x20) || (unsigned char)((a | 0x20) - 'a') >= 26))
            return false;
    }
    return true;
}

/* The needle as a whole space-separated "key=value" field of the message. */
static bool pair_find(const struct qnode *n, const char *msg, size_t len)
{
    size_t nl = n->kw.needle.len, off = 0;
    while (off + nl <= len) {
        const char *hit = ci_needle_find(&n->kw.needle, msg + off, len - off);
        if (!hit)
            return false;
        size_t at = (size_t)(hit - msg);
        if ((at == 0 || msg[at - 1] == ' ') &&
            (n->kw.prefix || at + nl == len || msg[at + nl] == ' '))
            return true;
        off = at + 1;
    }
    return false;
}

/* The first field called n's name, read as a number, within n's bounds. */
static bool cmp_match(const struct qnode *n, const struct lc_entry *e)
{
    struct qfield f;
    double x;
    if (!e->msg || !qfield_find(e->msg, e->msg_len, n->cmp.name, n->cmp.name_len, &f) ||
        f.escaped || !val_number(f.value, f.value_len, &x, NULL))
        return false;
    if (n->cmp.lo_open ? !(x > n->cmp.lo) : !(x >= n->cmp.lo))
        return false;
    return n->cmp.hi_open ? x < n->cmp.hi : x <= n->cmp.hi;
}

static bool node_match(const struct qnode *n, const struct lc_entry *e)
{
    switch (n->kind) {
    case QN_TRUE:
        return true;
    case QN_AND:
        for (size_t i = 0; i < n->list.n; i++)
            if (!node_match(n->list.kids[i], e))
                return false;
        return true;
    case QN_OR:
        for (size_t i = 0; i < n->list.n; i++)
            if (node_match(n->list.kids[i], e))
                return true;
        return false;
    case QN_NOT:
        return !node_match(n->child, e);
    case QN_KEYWORD:
        if (n->kw.pair)
            return pair_find(n, e->msg, e->msg_len);
        return n->kw.needle.len == 0 || level_in(n->kw.level_mask, e->level) ||
               ci_needle_find(&n->kw.needle, e->msg, e->msg_len) != NULL;
    case QN_LEVEL:
        return level_in(n->level_mask, e->level);
    case QN_SOURCE:
        return n->src.len == 0 ||
               (e->source && has_prefix_ci(e->source, e->source_len, n->src.prefix, n->src.len));
    case QN_TIME:
        return e->ts_ms >= n->time.from_ms && e->ts_ms <= n->time.to_ms;
    case QN_REGEX:
        return regex_match(n->re, e->msg, e->msg_len);
    case QN_CMP:
        return cmp_match(n, e);
    }
    return false;
}

bool qry_match(const struct qry *q, const struct lc_entry *e)
{
    return !q || node_match(q->root, e);
}

bool qry_matches_all(const struct qry *q)
{
    return q->root->kind == QN_TRUE;
}

/* Words name the needle they search for, unless they also match by level ("error"); regexes
 * their required literal. (A comparison's "name=" rules blocks out, in skip.c, but is no
 * needle: where the field is common, searching for its name costs more than it saves, and
 * where it is rare, skip.c has ruled out most blocks already.) Of an AND's children the longest
 * needle is taken: longer needles are rarer in log text, and the other children are verified on the
 * candidates anyway. An OR or a NOT requires nothing one needle could stand for. */
const struct ci_needle *qnode_required(const struct qnode *n)
{
    const struct ci_needle *best = NULL, *k;
    switch (n->kind) {
    case QN_KEYWORD:
        return n->kw.needle.len && !n->kw.level_mask ? &n->kw.needle : NULL;
    case QN_REGEX:
        return regex_needle(n->re);
    case QN_AND:
        for (size_t i = 0; i < n->list.n; i++)
            if ((k = qnode_required(n->list.kids[i])) && (!best || k->len > best->len))
                best = k;
        return best;
    default:
        return NULL;
    }
}

bool qnode_message_only(const struct qnode *n)
{
    switch (n->kind) {
    case QN_KEYWORD:
        return n->kw.pair || !n->kw.level_mask;
    case QN_REGEX:
    case QN_CMP:
        return true;
    case QN_NOT:
        return qnode_message_only(n->child);
    case QN_AND:
    case QN_OR:
        for (size_t i = 0; i < n->list.n; i++)
            if (!qnode_message_only(n->list.kids[i]))
                return false;
        return true;
    default: /* QN_TRUE is counted from the summaries; level, source and time need more. */
        return false;
    }
}
