/* query_parse.c - the query port's command forms: the seed's QUERY:<kw> and QUERY|<type>|..,
 * the reference implementation's QUERY key=value, and the query language (SEARCH, COUNT). */
#include "proto/query_parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/line.h"

#define MAX_EXPR     8192
#define MAX_KEYWORDS 64

static bool word_is(const char *p, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n == wl && strncasecmp(p, w, wl) == 0;
}

static void fail(struct qcmd *out, enum qstyle style, const char *why)
{
    out->kind = QCMD_ERROR;
    out->style = style;
    /* Reasons may quote user input: keep the reply one clean line. */
    size_t n = strlen(why);
    if (n > QRY_ERR_MAX)
        n = QRY_ERR_MAX;
    out->err[line_escape(why, n, out->err)] = 0;
}

static void run(struct qcmd *out, enum qstyle style, struct qry *q)
{
    out->kind = QCMD_RUN;
    out->style = style;
    out->q = q;
}

static void expr(struct qcmd *out, const char *p, size_t n, int64_t now, enum qstyle style)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(p, n, now, &q, err) < 0)
        fail(out, style, err);
    else
        run(out, style, q);
}

/* Unix seconds (a plain integer, as in the reference) to milliseconds. */
static int parse_secs(const char *p, size_t n, int64_t *ms)
{
    char tmp[24];
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end || v < 0 || v > 100000000000LL)
        return -1;
    *ms = v * 1000;
    return 0;
}

/* QUERY|<TYPE>|<param>: KEYWORD, LEVEL, REGEX, TIME|<from>|<to>, SINCE, SOURCE, EXPR. */
static void pipe_form(const char *p, size_t n, int64_t now, struct qcmd *out)
{
    const char *bar = memchr(p, '|', n);
    size_t tlen = bar ? (size_t)(bar - p) : n;
    const char *arg = bar ? bar + 1 : p + n;
    size_t alen = bar ? n - tlen - 1 : 0;
    char err[QRY_ERR_MAX] = "";
    struct qry *q = NULL;
    if (word_is(p, tlen, "KEYWORD")) {
        if (alen == 0) {
            fail(out, QSTYLE_PIPE, "KEYWORD needs a keyword");
            return;
        }
        q = qry_keyword(arg, alen, err);
    } else if (word_is(p, tlen, "LEVEL")) {
        q = qry_level(arg, alen, err);
    } else if (word_is(p, tlen, "REGEX")) {
        q = qry_regex(arg, alen, err);
    } else if (word_is(p, tlen, "TIME")) {
        const char *sep = memchr(arg, '|', alen);
        if (!sep)
            sep = memchr(arg, ',', alen);
        int64_t from = INT64_MIN, to = INT64_MAX;
        size_t flen = sep ? (size_t)(sep - arg) : alen;
        size_t tolen = sep ? alen - flen - 1 : 0;
        if ((flen && parse_secs(arg, flen, &from) < 0) ||
            (tolen && parse_secs(sep + 1, tolen, &to) < 0) || (!flen && !tolen)) {
            fail(out, QSTYLE_PIPE, "TIME takes <from>|<to> in unix seconds");
            return;
        }
        if (to != INT64_MAX)
            to += 999; /* The whole last second. */
        q = qry_time_range(from, to, err);
    } else if (word_is(p, tlen, "SOURCE") || word_is(p, tlen, "SINCE")) {
        /* One term of the query language: a value with spaces, quotes or parentheses could
         * smuggle in more terms, so it is refused. */
        char text[256];
        if (alen == 0 || alen > 200 || memchr(arg, '"', alen) || memchr(arg, ' ', alen) ||
            memchr(arg, '\t', alen) || memchr(arg, '(', alen) || memchr(arg, ')', alen)) {
            fail(out, QSTYLE_PIPE, "invalid parameter");
            return;
        }
        int m = snprintf(text, sizeof(text), "%s:%.*s",
                         word_is(p, tlen, "SOURCE") ? "source" : "since", (int)alen, arg);
        {
            expr(out, text, (size_t)m, now, QSTYLE_PIPE);
            return;
        }
    } else if (word_is(p, tlen, "EXPR")) {
        {
            expr(out, arg, alen, now, QSTYLE_PIPE);
            return;
        }
    } else {
        {
            fail(out, QSTYLE_PIPE,
                 "unknown query type (KEYWORD, LEVEL, REGEX, TIME, SINCE, SOURCE, EXPR)");
            return;
        }
    }
    if (!q) {
        fail(out, QSTYLE_PIPE, err[0] ? err : "invalid query");
        return;
    }
    run(out, QSTYLE_PIPE, q);
}

/* QUERY keyword=<w> keywords=a,b operator=AND|OR regex=<re> time_from=<unix> time_to=<unix>
 * level=<L> limit=<N>: the reference implementation's form, values without spaces. */
static void kv_form(const char *p, size_t n, struct qcmd *out)
{
    char err[QRY_ERR_MAX + 64] = "";
    struct qry *q = NULL, *kw = NULL;
    struct qry *words[MAX_KEYWORDS]; /* keywords= terms, joined by operator= at the end. */
    size_t nwords = 0;
    bool use_or = false, have_keywords = false;
    int64_t from = INT64_MIN, to = INT64_MAX;
    uint64_t limit = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t s = i;
        while (i < n && p[i] != ' ' && p[i] != '\t')
            i++;
        if (i == s)
            break;
        const char *tok = p + s, *eq = memchr(tok, '=', i - s);
        int tl = (int)(i - s > 40 ? 40 : i - s);
        if (!eq) {
            snprintf(err, sizeof(err), "Unknown query parameter '%.*s'.", tl, tok);
            goto bad;
        }
        size_t klen = (size_t)(eq - tok), vlen = i - s - klen - 1;
        const char *v = eq + 1;
        int kl = (int)(klen > 40 ? 40 : klen);
        if (vlen == 0) {
            snprintf(err, sizeof(err), "Empty %.*s parameter.", kl, tok);
            goto bad;
        }
        struct qry *t = NULL;
        if (word_is(tok, klen, "keyword")) {
            if (!(t = qry_keyword(v, vlen, err)))
                goto bad;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "keywords")) {
            have_keywords = true;
            for (size_t a = 0; a < vlen;) {
                const char *comma = memchr(v + a, ',', vlen - a);
                size_t l = comma ? (size_t)(comma - v) - a : vlen - a;
                if (l) {
                    if (nwords == MAX_KEYWORDS) {
                        snprintf(err, sizeof(err), "At most %d keywords.", MAX_KEYWORDS);
                        goto bad;
                    }
                    if (!(t = qry_keyword(v + a, l, err)))
                        goto bad;
                    words[nwords++] = t;
                }
                a += l + 1;
            }
        } else if (word_is(tok, klen, "operator")) {
            if (word_is(v, vlen, "OR")) {
                use_or = true;
            } else if (!word_is(v, vlen, "AND")) {
                snprintf(err, sizeof(err), "Operator must be AND or OR.");
                goto bad;
            }
        } else if (word_is(tok, klen, "regex")) {
            if (!(t = qry_regex(v, vlen, err)))
                goto bad;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "level")) {
            if (!(t = qry_level(v, vlen, err)))
                goto bad;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "time_from") || word_is(tok, klen, "time_to")) {
            bool is_from = word_is(tok, klen, "time_from");
            if (parse_secs(v, vlen, is_from ? &from : &to) < 0) {
                snprintf(err, sizeof(err), "Invalid %s parameter.",
                         is_from ? "time_from" : "time_to");
                goto bad;
            }
        } else if (word_is(tok, klen, "limit")) {
            int64_t l;
            if (parse_secs(v, vlen, &l) < 0 || l == 0) {
                snprintf(err, sizeof(err), "Invalid limit parameter.");
                goto bad;
            }
            limit = (uint64_t)(l / 1000);
        } else {
            snprintf(err, sizeof(err), "Unknown query parameter '%.*s'.", kl, tok);
            goto bad;
        }
    }
    for (size_t w = 0; w < nwords; w++)
        kw = kw ? (use_or ? qry_or(kw, words[w]) : qry_and(kw, words[w])) : words[w];
    nwords = 0;
    if (have_keywords && !kw) {
        snprintf(err, sizeof(err), "Invalid keywords parameter.");
        goto bad;
    }
    if (from != INT64_MIN || to != INT64_MAX) {
        if (to != INT64_MAX)
            to += 999;
        if (from > to) {
            snprintf(err, sizeof(err), "time_from must be <= time_to.");
            goto bad;
        }
        q = qry_and(q, qry_time_range(from, to, err));
    }
    q = qry_and(q, kw);
    kw = NULL;
    if (!q && qry_compile("", 0, 0, &q, err) < 0)
        goto bad;
    if (limit)
        qry_set_limit(q, limit);
    {
        run(out, QSTYLE_KV, q);
        return;
    }
bad:
    qry_free(q);
    qry_free(kw);
    for (size_t w = 0; w < nwords; w++)
        qry_free(words[w]);
    fail(out, QSTYLE_KV, err[0] ? err : "Invalid query syntax.");
}

void qcmd_parse(const char *p, size_t n, int64_t now, struct qcmd *out)
{
    memset(out, 0, sizeof(*out));
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) {
        out->kind = QCMD_NONE;
        return;
    }
    if (n > MAX_EXPR) {
        fail(out, QSTYLE_KV, "command too long");
        return;
    }
    if (n >= 6 && strncmp(p, "QUERY:", 6) == 0) {
        if (n == 6) {
            fail(out, QSTYLE_COLON, "QUERY: needs a keyword");
            return;
        }
        char err[QRY_ERR_MAX] = "";
        struct qry *q = qry_keyword(p + 6, n - 6, err);
        if (!q) {
            fail(out, QSTYLE_COLON, err[0] ? err : "invalid keyword");
            return;
        }
        {
            run(out, QSTYLE_COLON, q);
            return;
        }
    }
    if (n >= 6 && strncmp(p, "QUERY|", 6) == 0) {
        pipe_form(p + 6, n - 6, now, out);
        return;
    }
    size_t wl = 0;
    while (wl < n && p[wl] != ' ' && p[wl] != '\t')
        wl++;
    const char *rest = p + wl;
    size_t rlen = n - wl;
    while (rlen && (*rest == ' ' || *rest == '\t'))
        rest++, rlen--;
    if (word_is(p, wl, "QUERY")) {
        /* A first token of key=value means the reference form; anything else an expression. */
        size_t tl = 0;
        while (tl < rlen && rest[tl] != ' ' && rest[tl] != '\t')
            tl++;
        const char *eq = memchr(rest, '=', tl);
        if (rlen == 0 || (eq && eq > rest && !memchr(rest, ':', tl) && rest[0] != '"')) {
            kv_form(rest, rlen, out);
            return;
        }
        {
            expr(out, rest, rlen, now, QSTYLE_PIPE);
            return;
        }
    }
    if (word_is(p, wl, "SEARCH")) {
        expr(out, rest, rlen, now, QSTYLE_PIPE);
        return;
    }
    if (word_is(p, wl, "COUNT")) {
        expr(out, rest, rlen, now, QSTYLE_COUNT);
        return;
    }
    if (word_is(p, wl, "STATS") && rlen == 0) {
        out->kind = QCMD_STATS;
        return;
    }
    if (word_is(p, wl, "HELP")) {
        out->kind = QCMD_HELP;
        return;
    }
    if (word_is(p, wl, "PING")) {
        out->kind = QCMD_PING;
        return;
    }
    if (word_is(p, wl, "QUIT")) {
        out->kind = QCMD_QUIT;
        return;
    }
    char why[96];
    snprintf(why, sizeof(why), "unknown command '%.*s' (try HELP)", (int)(wl > 32 ? 32 : wl), p);
    fail(out, QSTYLE_KV, why);
}
