/* parse.c - turn a query text (or a builder call) into a compiled query.
 *
 * Recursive descent over the lexer's tokens, one token of lookahead:
 *
 *     or    := and ( OR and )*
 *     and   := unary ( [AND] unary )*
 *     unary := ( NOT | '-' ) unary | primary
 *     primary := '(' or ')' | word | "phrase" | /regex/ | field:value
 *     query := ( '*' | or )? ( '|' pipes )?      (pipes: pipe_parse.c)
 *
 * Every value is decoded here, once, so matching does no parsing and no allocation. A
 * limit:N term sets the query's limit and leaves no node; it may sit anywhere an AND
 * would drop it, but negating it or making it an OR operand is an error because either would
 * give it a meaning it does not have. ANDs and ORs are flattened and their children put
 * cheapest first (time and level tests before substring search before regex). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "query/pipe_internal.h"
#include "query/qry_internal.h"

struct parser {
    struct lexer lx;
    struct token tok; /* Lookahead. */
    int64_t now_ms;
    uint64_t limit;
    unsigned depth, terms;
    char *err;
};

/* ---- Parser ---- */

static int advance(struct parser *p)
{
    return lex_next(&p->lx, &p->tok, p->err);
}

/* Can the current token start a term? */
static bool starts_term(const struct parser *p)
{
    enum tok_kind k = p->tok.kind;
    return k != TK_EOF && k != TK_RPAREN && k != TK_OR && k != TK_AND && k != TK_PIPE;
}

static int nomem(struct parser *p)
{
    qry_errf(p->err, "out of memory");
    return -ENOMEM;
}

static int parse_or(struct parser *p, struct qnode **out);

/* A field:value token. *out is NULL for limit:, which sets p->limit instead. */
static int parse_field(struct parser *p, struct qnode **out)
{
    const struct token *t = &p->tok;
    const char *name = lex_field_name(t->field);
    struct qnode *n = NULL;
    int rc = 0;
    int64_t ms;
    if (!t->quoted && t->len == 0) {
        qry_errf(p->err, "missing value after %s: at %zu", name, t->pos);
        return -EINVAL;
    }
    switch (t->field) {
    case FLD_LEVEL:
        n = qnode_new(QN_LEVEL);
        if (!n)
            return nomem(p);
        rc = val_level_mask(t->text, t->len, &n->level_mask, p->err);
        break;
    case FLD_SOURCE: {
        size_t len;
        char *prefix = qry_unescape(t->text, t->len, &len);
        n = prefix ? qnode_new(QN_SOURCE) : NULL;
        if (!n) {
            free(prefix);
            return nomem(p);
        }
        n->src.prefix = prefix;
        n->src.len = len;
        break;
    }
    case FLD_SINCE:
    case FLD_UNTIL:
        /* A duration back from now; an ISO date is taken as the absolute time. */
        if (t->len > 4 && t->text[4] == '-' &&
            val_time(t->text, t->len, t->field == FLD_UNTIL, &ms, name, NULL) == 0)
            rc = 0;
        else if ((rc = val_duration(t->text, t->len, &ms, name, p->err)) == 0)
            ms = qry_sat_sub(p->now_ms, ms);
        if (rc == 0 &&
            !(n = t->field == FLD_SINCE ? qnode_time(ms, INT64_MAX) : qnode_time(INT64_MIN, ms)))
            return nomem(p);
        break;
    case FLD_FROM:
    case FLD_TO:
        rc = val_time(t->text, t->len, t->field == FLD_TO, &ms, name, p->err);
        if (rc == 0 &&
            !(n = t->field == FLD_FROM ? qnode_time(ms, INT64_MAX) : qnode_time(INT64_MIN, ms)))
            return nomem(p);
        break;
    case FLD_REGEX:
        n = qnode_regex(t->text, t->len, false, p->err, &rc);
        break;
    case FLD_LIMIT:
        rc = val_limit(t->text, t->len, &p->limit, p->err);
        break;
    }
    if (rc < 0) {
        qnode_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* Step past a parsed primary n and hand it to the caller; n is freed if the next token is
 * malformed. */
static int finish(struct parser *p, struct qnode *n, struct qnode **out)
{
    int rc = advance(p);
    if (rc < 0) {
        qnode_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int parse_primary(struct parser *p, struct qnode **out)
{
    struct token t = p->tok;
    struct qnode *n = NULL;
    int rc = 0;
    *out = NULL;
    if (t.kind == TK_LPAREN) {
        if ((rc = advance(p)) < 0)
            return rc;
        if (p->tok.kind == TK_RPAREN) {
            qry_errf(p->err, "empty parentheses at %zu", t.pos);
            return -EINVAL;
        }
        if (p->tok.kind == TK_EOF) {
            qry_errf(p->err, "unbalanced parenthesis at %zu", t.pos);
            return -EINVAL;
        }
        if ((rc = parse_or(p, &n)) < 0)
            return rc;
        if (p->tok.kind != TK_RPAREN) {
            qnode_free(n);
            qry_errf(p->err, "unbalanced parenthesis at %zu", t.pos);
            return -EINVAL;
        }
        return finish(p, n, out);
    }
    switch (t.kind) {
    case TK_RPAREN:
        qry_errf(p->err, "unbalanced parenthesis at %zu", t.pos);
        return -EINVAL;
    case TK_OR:
    case TK_AND:
        qry_errf(p->err, "%s needs a term on both sides", t.kind == TK_OR ? "OR" : "AND");
        return -EINVAL;
    case TK_EOF:
        qry_errf(p->err, "unexpected end of query at %zu", t.pos);
        return -EINVAL;
    case TK_PIPE:
        qry_errf(p->err, "expected a term before \"|\" at %zu", t.pos);
        return -EINVAL;
    default:
        break;
    }
    if (++p->terms > QRY_MAX_TERMS) {
        qry_errf(p->err, "too many terms (limit %d) at %zu", QRY_MAX_TERMS, t.pos);
        return -EINVAL;
    }
    switch (t.kind) {
    case TK_WORD:
    case TK_PHRASE: {
        size_t len = t.len;
        char *text =
            t.kind == TK_PHRASE ? qry_unescape(t.text, t.len, &len) : qry_memdup0(t.text, t.len);
        if (!text || !(n = qnode_keyword(text, len, t.kind == TK_WORD)))
            return nomem(p);
        break;
    }
    case TK_REGEX:
        if (!(n = qnode_regex(t.text, t.len, t.caseless, p->err, &rc)))
            return rc;
        break;
    case TK_FIELD:
        if ((rc = parse_field(p, &n)) < 0)
            return rc;
        break;
    case TK_PAIR:
        if ((rc = qnode_cmp_term(&t, &n, p->err)) < 0)
            return rc;
        if (rc == 1 && !(n = qnode_pair_term(&t)))
            return nomem(p);
        break;
    default:
        qry_errf(p->err, "unexpected token at %zu", t.pos);
        return -EINVAL;
    }
    return finish(p, n, out);
}

static int parse_unary(struct parser *p, struct qnode **out)
{
    int rc;
    *out = NULL;
    if (++p->depth > QRY_MAX_DEPTH) {
        qry_errf(p->err, "query nested too deeply (limit %d) at %zu", QRY_MAX_DEPTH, p->tok.pos);
        return -EINVAL;
    }
    if (p->tok.kind != TK_NOT && p->tok.kind != TK_MINUS) {
        rc = parse_primary(p, out);
        p->depth--;
        return rc;
    }
    size_t pos = p->tok.pos;
    if ((rc = advance(p)) < 0)
        return rc;
    if (!starts_term(p)) {
        qry_errf(p->err, "NOT needs a term after it at %zu", pos);
        return -EINVAL;
    }
    struct qnode *c;
    if ((rc = parse_unary(p, &c)) < 0)
        return rc;
    if (!c) {
        qry_errf(p->err, "limit: cannot be negated at %zu", pos);
        return -EINVAL;
    }
    if (c->kind == QN_NOT) { /* NOT NOT x is x. */
        *out = c->child;
        free(c);
    } else {
        if (!(*out = qnode_new(QN_NOT))) {
            qnode_free(c);
            return nomem(p);
        }
        (*out)->child = c;
    }
    p->depth--;
    return 0;
}

/* Add n (owned, may be NULL for limit:) to the AND or OR *acc of the given kind. */
static int accumulate(struct parser *p, enum qnode_kind kind, struct qnode **acc, struct qnode *n)
{
    if (!n)
        return 0;
    if (!*acc) {
        *acc = n;
        return 0;
    }
    if ((*acc)->kind == kind) {
        if (qnode_list_add(*acc, n) < 0)
            return nomem(p);
        return 0;
    }
    if (!(*acc = qnode_combine(kind, *acc, n)))
        return nomem(p);
    return 0;
}

static int parse_and(struct parser *p, struct qnode **out)
{
    struct qnode *acc = NULL, *n;
    int rc;
    *out = NULL;
    for (;;) {
        if ((rc = parse_unary(p, &n)) < 0 || (rc = accumulate(p, QN_AND, &acc, n)) < 0)
            goto fail;
        if (p->tok.kind == TK_AND) {
            if ((rc = advance(p)) < 0)
                goto fail;
            if (!starts_term(p)) {
                qry_errf(p->err, "AND needs a term on both sides");
                rc = -EINVAL;
                goto fail;
            }
        } else if (!starts_term(p)) {
            break;
        }
    }
    if (acc && acc->kind == QN_AND)
        qnode_list_sort(acc);
    *out = acc;
    return 0;
fail:
    qnode_free(acc);
    return rc;
}

static int parse_or(struct parser *p, struct qnode **out)
{
    struct qnode *acc, *n;
    int rc;
    *out = NULL;
    if ((rc = parse_and(p, &acc)) < 0)
        return rc;
    if (p->tok.kind != TK_OR) {
        *out = acc;
        return 0;
    }
    if (!acc)
        goto limit;
    while (p->tok.kind == TK_OR) {
        if ((rc = advance(p)) < 0)
            goto fail;
        if (!starts_term(p)) {
            qry_errf(p->err, "OR needs a term on both sides");
            rc = -EINVAL;
            goto fail;
        }
        if ((rc = parse_and(p, &n)) < 0)
            goto fail;
        if (!n)
            goto limit;
        if ((rc = accumulate(p, QN_OR, &acc, n)) < 0)
            goto fail;
    }
    if (acc->kind == QN_OR)
        qnode_list_sort(acc);
    *out = acc;
    return 0;
limit:
    qry_errf(p->err, "limit: cannot be an operand of OR");
    rc = -EINVAL;
fail:
    qnode_free(acc);
    return rc;
}

/* ---- Public API ---- */

int qry_compile(const char *text, size_t len, int64_t now_ms, struct qry **out, char *err)
{
    struct parser p = {
        .lx = {.s = text ? text : "", .len = text ? len : 0}, .now_ms = now_ms, .err = err};
    struct qnode *root = NULL;
    int rc;
    *out = NULL;
    if (len > QRY_MAX_TEXT) {
        qry_errf(err, "query longer than %d bytes", QRY_MAX_TEXT);
        return -EINVAL;
    }
    if ((rc = advance(&p)) < 0)
        return rc;
    if (p.tok.kind == TK_WORD && p.tok.len == 1 && p.tok.text[0] == '*') {
        /* '*' as the whole filter: every entry (elsewhere it is the literal word). */
        struct parser look = p;
        if ((rc = advance(&look)) < 0)
            return rc;
        if (look.tok.kind == TK_EOF || look.tok.kind == TK_PIPE)
            p = look;
    }
    if (p.tok.kind != TK_EOF && p.tok.kind != TK_PIPE && (rc = parse_or(&p, &root)) < 0)
        return rc;
    if (p.tok.kind != TK_EOF && p.tok.kind != TK_PIPE) { /* A stray ')' stops parse_or early. */
        qnode_free(root);
        qry_errf(err, "unbalanced parenthesis at %zu", p.tok.pos);
        return -EINVAL;
    }
    struct qpipes *pipes = NULL;
    if (p.tok.kind == TK_PIPE) {
        if (p.limit) {
            qnode_free(root);
            qry_errf(err, "limit: cannot be combined with pipes (use \"| limit N\") at %zu",
                     p.tok.pos);
            return -EINVAL;
        }
        if ((rc = qpipes_parse(p.lx.s, p.lx.len, p.lx.pos, &pipes, err)) < 0) {
            qnode_free(root);
            return rc;
        }
    }
    if (!root && !(root = qnode_new(QN_TRUE))) {
        qpipes_free(pipes);
        return nomem(&p);
    }
    if (!(*out = qry_wrap(root, p.limit))) {
        qpipes_free(pipes);
        return nomem(&p);
    }
    (*out)->pipes = pipes;
    if (((*out)->text = malloc(len + 1))) {
        memcpy((*out)->text, text ? text : "", len);
        (*out)->text[len] = 0;
        (*out)->src = (struct qry_source){true, (*out)->text, len, now_ms, INT64_MIN, INT64_MAX};
    }
    return 0;
}
