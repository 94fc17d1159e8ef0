/* query.c - the query protocol (port 9998): persistent connections, pipelined commands
 * answered in order, results streamed with bounded memory.
 *
 * Commands (one per line):
 *   QUERY:<keyword>                     seed section 5  -> RESULT:<n>, LOG:<ts>:<LEVEL>:<msg>.., END
 *   QUERY|<TYPE>|<param>                seed section 7.1 -> RESULT|<n>, <id>|<LEVEL>|<ts>|<msg>.., END
 *   QUERY key=value ...                 reference form   -> FOUND: <n>, [<time>] <msg>..
 *   QUERY <expr> / SEARCH <expr>        query language   -> as QUERY|
 *   COUNT [expr]                        -> COUNT|<n>
 *   STATS, HELP                         -> lines, END
 *   PING                                -> PONG
 * While a command's answer is streaming the connection is busy: later commands wait in the
 * input buffer, which keeps answers in request order. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/server.h"
#include "proto/line.h"
#include "proto/protocols.h"
#include "query/exec.h"
#include "query/qry.h"
#include "store/store.h"

#define SLICE_BUDGET  65536 /* Entries examined per loop turn by one query. */
#define MAX_QUERY_LEN 8192

enum style {
    STYLE_COLON, /* QUERY:<kw> */
    STYLE_PIPE,  /* QUERY|..., SEARCH, QUERY <expr> */
    STYLE_KV,    /* QUERY key=value */
    STYLE_COUNT, /* COUNT */
};

struct query_conn {
    struct conn *c;
    struct qexec *x;  /* The running command, or NULL. */
    enum style style;
    bool discarding;  /* Skipping the rest of an over-long command. */
};

/* ------------------------------------------------------------------------------------------ */
/* Output formats. */

static void sink_count(void *arg, uint64_t n)
{
    struct query_conn *qc = arg;
    switch (qc->style) {
    case STYLE_COLON: conn_printf(qc->c, "RESULT:%" PRIu64 "\n", n); break;
    case STYLE_PIPE: conn_printf(qc->c, "RESULT|%" PRIu64 "\n", n); break;
    case STYLE_KV: conn_printf(qc->c, "FOUND: %" PRIu64 "\n", n); break;
    case STYLE_COUNT: conn_printf(qc->c, "COUNT|%" PRIu64 "\n", n); break;
    }
}

static bool sink_row(void *arg, const struct lc_entry *e)
{
    struct query_conn *qc = arg;
    char head[96];
    int n = 0;
    long long sec = (long long)(e->ts_ms / 1000);
    switch (qc->style) {
    case STYLE_COLON:
        n = snprintf(head, sizeof(head), "LOG:%lld:%s:", sec, lc_level_name(e->level));
        break;
    case STYLE_PIPE:
        n = snprintf(head, sizeof(head), "%" PRIu64 "|%s|%lld|", e->id, lc_level_name(e->level),
                     sec);
        break;
    case STYLE_KV: {
        time_t t = (time_t)sec;
        struct tm tm;
        localtime_r(&t, &tm);
        n = (int)strftime(head, sizeof(head), "[%Y-%m-%d %H:%M:%S] ", &tm);
        break;
    }
    case STYLE_COUNT:
        return true;
    }
    conn_write(qc->c, head, (size_t)n);
    conn_write(qc->c, e->msg, e->msg_len);
    conn_write(qc->c, "\n", 1);
    return !conn_out_full(qc->c);
}

static const struct qexec_sink sink = {sink_count, sink_row};

/* ------------------------------------------------------------------------------------------ */
/* Running a command across loop turns. */

static void run(struct query_conn *qc)
{
    while (qc->x) {
        enum qexec_status st = qexec_step(qc->x, SLICE_BUDGET, &sink, qc);
        if (st == QX_DONE) {
            if (qc->style == STYLE_COLON || qc->style == STYLE_PIPE)
                conn_write(qc->c, "END\n", 4);
            qexec_free(qc->x);
            qc->x = NULL;
            conn_set_busy(qc->c, false);
            return;
        }
        if (st == QX_PAUSED)
            return; /* resume() continues once the output drains. */
        conn_schedule_resume(qc->c); /* QX_MORE: let other connections have a turn. */
        return;
    }
}

static void start(struct query_conn *qc, struct qry *q, enum style style)
{
    qc->style = style;
    qc->x = qexec_new(conn_store(qc->c), q, style == STYLE_COUNT);
    if (!qc->x) {
        conn_printf(qc->c, "ERROR: out of memory\n");
        return;
    }
    conn_set_busy(qc->c, true);
    run(qc);
}

static void query_resume(struct conn *c)
{
    struct query_conn *qc = conn_state(c);
    if (qc->x)
        run(qc);
}

/* ------------------------------------------------------------------------------------------ */
/* Command parsing. */

static void reply_error(struct query_conn *qc, enum style style, const char *why)
{
    switch (style) {
    case STYLE_COLON: conn_printf(qc->c, "ERROR:%s\n", why); break;
    case STYLE_PIPE: conn_printf(qc->c, "ERROR|%s\n", why); break;
    default: conn_printf(qc->c, "ERROR: %s\n", why); break;
    }
}

static bool word_is(const char *p, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n == wl && strncasecmp(p, w, wl) == 0;
}

/* Compile an expression of the query language and start it. */
static void start_expr(struct query_conn *qc, const char *p, size_t n, enum style style)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(p, n, now_ms(), &q, err) < 0) {
        reply_error(qc, style, err);
        return;
    }
    start(qc, q, style);
}

/* Unix seconds (as in the reference: a plain integer) to milliseconds. */
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

/* QUERY|<TYPE>|<param>: KEYWORD, LEVEL, REGEX, SOURCE, SINCE, TIME|<from>|<to>, EXPR. */
static void start_pipe(struct query_conn *qc, const char *p, size_t n)
{
    const char *bar = memchr(p, '|', n);
    size_t tlen = bar ? (size_t)(bar - p) : n;
    const char *arg = bar ? bar + 1 : p + n;
    size_t alen = bar ? n - tlen - 1 : 0;
    char err[QRY_ERR_MAX] = "";
    struct qry *q = NULL;
    if (word_is(p, tlen, "KEYWORD")) {
        if (alen == 0) {
            reply_error(qc, STYLE_PIPE, "KEYWORD needs a keyword");
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
        if ((flen && parse_secs(arg, flen, &from) < 0)
            || (sep && (size_t)(sep - arg) + 1 < alen
                && parse_secs(sep + 1, alen - flen - 1, &to) < 0)) {
            reply_error(qc, STYLE_PIPE, "TIME takes <from>|<to> in unix seconds");
            return;
        }
        if (to != INT64_MAX)
            to += 999; /* The whole last second. */
        q = qry_time_range(from, to, err);
    } else if (word_is(p, tlen, "SOURCE") || word_is(p, tlen, "SINCE")
               || word_is(p, tlen, "EXPR")) {
        /* These are one term (or a whole expression) of the query language. */
        char text[MAX_QUERY_LEN + 16];
        int m = word_is(p, tlen, "EXPR")
                    ? snprintf(text, sizeof(text), "%.*s", (int)alen, arg)
                    : snprintf(text, sizeof(text), "%s:%.*s",
                               word_is(p, tlen, "SOURCE") ? "source" : "since", (int)alen, arg);
        start_expr(qc, text, (size_t)m, STYLE_PIPE);
        return;
    } else {
        reply_error(qc, STYLE_PIPE,
                    "unknown query type (KEYWORD, LEVEL, REGEX, TIME, SINCE, SOURCE, EXPR)");
        return;
    }
    if (!q) {
        reply_error(qc, STYLE_PIPE, err[0] ? err : "invalid query");
        return;
    }
    start(qc, q, STYLE_PIPE);
}

/* QUERY keyword=<w> keywords=a,b operator=AND|OR regex=<re> time_from=<unix> time_to=<unix>
 * level=<L> limit=<N>: the reference implementation's form. */
static void start_kv(struct query_conn *qc, const char *p, size_t n)
{
    char err[QRY_ERR_MAX] = "";
    struct qry *q = NULL, *kw = NULL;
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
        if (!eq) {
            snprintf(err, sizeof(err), "Unknown query parameter '%.*s'.", (int)(i - s), tok);
            goto fail;
        }
        size_t klen = (size_t)(eq - tok), vlen = i - s - klen - 1;
        const char *v = eq + 1;
        if (vlen == 0) {
            snprintf(err, sizeof(err), "Empty %.*s parameter.", (int)klen, tok);
            goto fail;
        }
        struct qry *t = NULL;
        if (word_is(tok, klen, "keyword")) {
            t = qry_keyword(v, vlen, err);
            if (!t)
                goto fail;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "keywords")) {
            have_keywords = true;
            for (size_t a = 0; a < vlen;) {
                const char *comma = memchr(v + a, ',', vlen - a);
                size_t l = comma ? (size_t)(comma - v) - a : vlen - a;
                if (l) {
                    t = qry_keyword(v + a, l, err);
                    if (!t)
                        goto fail;
                    kw = kw ? (use_or ? qry_or(kw, t) : qry_and(kw, t)) : t;
                }
                a += l + 1;
            }
        } else if (word_is(tok, klen, "operator")) {
            if (word_is(v, vlen, "OR"))
                use_or = true;
            else if (!word_is(v, vlen, "AND")) {
                snprintf(err, sizeof(err), "Operator must be AND or OR.");
                goto fail;
            }
            if (kw) { /* operator= came after keywords=: honour it anyway. */
                snprintf(err, sizeof(err), "operator= must come before keywords=.");
                goto fail;
            }
        } else if (word_is(tok, klen, "regex")) {
            t = qry_regex(v, vlen, err);
            if (!t)
                goto fail;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "level")) {
            t = qry_level(v, vlen, err);
            if (!t)
                goto fail;
            q = qry_and(q, t);
        } else if (word_is(tok, klen, "time_from") || word_is(tok, klen, "time_to")) {
            bool is_from = word_is(tok, klen, "time_from");
            if (parse_secs(v, vlen, is_from ? &from : &to) < 0) {
                snprintf(err, sizeof(err), "Invalid %s parameter.", is_from ? "time_from" : "time_to");
                goto fail;
            }
        } else if (word_is(tok, klen, "limit")) {
            int64_t l;
            if (parse_secs(v, vlen, &l) < 0 || l == 0) {
                snprintf(err, sizeof(err), "Invalid limit parameter.");
                goto fail;
            }
            limit = (uint64_t)(l / 1000);
        } else {
            snprintf(err, sizeof(err), "Unknown query parameter '%.*s'.", (int)klen, tok);
            goto fail;
        }
    }
    if (have_keywords && !kw) {
        snprintf(err, sizeof(err), "Invalid keywords parameter.");
        goto fail;
    }
    if (from != INT64_MIN || to != INT64_MAX) {
        if (to != INT64_MAX)
            to += 999;
        if (from > to) {
            snprintf(err, sizeof(err), "time_from must be <= time_to.");
            goto fail;
        }
        q = qry_and(q, qry_time_range(from, to, err));
    }
    q = qry_and(q, kw);
    kw = NULL;
    if (!q && qry_compile("", 0, 0, &q, err) < 0)
        goto fail;
    if (limit)
        qry_set_limit(q, limit);
    start(qc, q, STYLE_KV);
    return;
fail:
    qry_free(q);
    qry_free(kw);
    reply_error(qc, STYLE_KV, err[0] ? err : "Invalid query syntax.");
}

static void reply_stats(struct query_conn *qc)
{
    struct conn *c = qc->c;
    struct server *srv = conn_server(c);
    struct server_counters *k = server_counters(srv);
    struct store_stats st;
    store_get_stats(conn_store(c), &st);
#define LOAD(f) atomic_load_explicit((_Atomic uint64_t *)&k->f, memory_order_relaxed)
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    conn_printf(c,
                "entries %" PRIu64 "\nappended %" PRIu64 "\nevicted %" PRIu64 "\n"
                "dropped %" PRIu64 "\ntruncated %" PRIu64 "\n",
                st.entries, st.appended, st.evicted, LOAD(lines_rejected), LOAD(lines_truncated));
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        conn_printf(c, "level.%s %" PRIu64 "\n", lc_level_name(l), st.per_level[l]);
    conn_printf(c,
                "first_id %" PRIu64 "\nlast_id %" PRIu64 "\noldest_ts %lld\nnewest_ts %lld\n"
                "lines_received %" PRIu64 "\nbytes_received %" PRIu64 "\n"
                "connections %" PRIu64 "\nconnections_total %" PRIu64 "\n"
                "connections_refused %" PRIu64 "\nconnections_timed_out %" PRIu64 "\n"
                "uptime_s %lld\nmemory_store_bytes %" PRIu64 "\nmemory_limit_bytes %zu\n"
                "memory_rss_bytes %lld\nEND\n",
                st.first_id, st.last_id, (long long)(st.oldest_ts_ms / 1000),
                (long long)(st.newest_ts_ms / 1000), LOAD(lines_in), LOAD(bytes_in),
                LOAD(conns_current), LOAD(conns_total), LOAD(conns_refused),
                LOAD(conns_timed_out), (long long)((now_ms() - server_started_ms(srv)) / 1000),
                st.bytes, conn_config(c)->memory_limit,
                (long long)rss_pages * (long long)sysconf(_SC_PAGESIZE));
#undef LOAD
}

static const char help_text[] =
    "Commands (one per line; answers come in order):\n"
    "  SEARCH <expr>             -> RESULT|<n>, <id>|<LEVEL>|<ts>|<message> lines, END\n"
    "  COUNT [expr]              -> COUNT|<n>\n"
    "  QUERY:<keyword>           -> RESULT:<n>, LOG:<ts>:<LEVEL>:<message> lines, END\n"
    "  QUERY|<TYPE>|<param>      TYPE: KEYWORD LEVEL REGEX TIME(<from>|<to>) SINCE SOURCE EXPR\n"
    "  QUERY keyword=<w> keywords=a,b operator=AND|OR regex=<re> time_from=<unix>\n"
    "        time_to=<unix> level=<L> limit=<N>  -> FOUND: <n>, [<time>] <message> lines\n"
    "  STATS, HELP               -> lines, END\n"
    "  PING                      -> PONG\n"
    "Expressions: words (AND), OR, -word, \"phrase\", level:ERROR, level:>=WARN,\n"
    "  source:10.0.0.5, since:15m, until:1h, from:<unix|ISO>, to:<unix|ISO>, /regex/,\n"
    "  limit:N (the newest N matches, printed oldest first)\n"
    "END\n";

static void command(struct query_conn *qc, const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return;
    if (n > 6 && strncmp(p, "QUERY:", 6) == 0) {
        char err[QRY_ERR_MAX] = "";
        struct qry *q = qry_keyword(p + 6, n - 6, err);
        if (!q)
            reply_error(qc, STYLE_COLON, err);
        else
            start(qc, q, STYLE_COLON);
        return;
    }
    if (n == 6 && strncmp(p, "QUERY:", 6) == 0) {
        reply_error(qc, STYLE_COLON, "QUERY: needs a keyword");
        return;
    }
    if (n > 6 && strncmp(p, "QUERY|", 6) == 0) {
        start_pipe(qc, p + 6, n - 6);
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
        /* key=value pairs mean the reference form; anything else is an expression. */
        size_t tl = 0;
        while (tl < rlen && rest[tl] != ' ')
            tl++;
        const char *eq = memchr(rest, '=', tl);
        if (rlen == 0 || (eq && eq > rest && memchr(rest, ':', tl) == NULL && rest[0] != '"'))
            start_kv(qc, rest, rlen);
        else
            start_expr(qc, rest, rlen, STYLE_PIPE);
    } else if (word_is(p, wl, "SEARCH")) {
        start_expr(qc, rest, rlen, STYLE_PIPE);
    } else if (word_is(p, wl, "COUNT")) {
        start_expr(qc, rest, rlen, STYLE_COUNT);
    } else if (word_is(p, wl, "STATS") && rlen == 0) {
        reply_stats(qc);
    } else if (word_is(p, wl, "HELP")) {
        conn_write(qc->c, help_text, sizeof(help_text) - 1);
    } else if (word_is(p, wl, "PING")) {
        conn_write(qc->c, "PONG\n", 5);
    } else if (word_is(p, wl, "QUIT")) {
        conn_close_after_flush(qc->c);
    } else {
        char why[96];
        snprintf(why, sizeof(why), "unknown command '%.*s' (try HELP)", (int)(wl > 32 ? 32 : wl),
                 p);
        /* Never echo raw bytes back: the command may hold control characters. */
        char safe[4 * sizeof(why)];
        safe[line_escape(why, strlen(why), safe)] = 0;
        reply_error(qc, STYLE_KV, safe);
    }
}

static int query_open(struct conn *c)
{
    struct query_conn *qc = calloc(1, sizeof(*qc));
    if (!qc)
        return -ENOMEM;
    qc->c = c;
    conn_set_state(c, qc);
    return 0;
}

static void query_close(struct conn *c)
{
    struct query_conn *qc = conn_state(c);
    qexec_free(qc->x);
    free(qc);
}

static size_t query_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct query_conn *qc = conn_state(c);
    size_t used = 0;
    /* One command at a time: the next waits until this one's answer is complete. */
    while (used < n && !qc->x && !conn_out_full(c)) {
        size_t len = 0, take = line_next(p + used, n - used, &len);
        if (qc->discarding) {
            used += take ? take : n - used;
            qc->discarding = !take;
            continue;
        }
        if (!take) {
            if (n - used > MAX_QUERY_LEN) {
                reply_error(qc, STYLE_KV, "command too long");
                qc->discarding = !eof;
                return n;
            }
            if (!eof)
                break;
            take = len = n - used;
        }
        if (len > MAX_QUERY_LEN)
            reply_error(qc, STYLE_KV, "command too long");
        else
            command(qc, p + used, len);
        used += take;
    }
    return used;
}

const struct proto proto_query = {
    .name = "query",
    .open = query_open,
    .input = query_input,
    .resume = query_resume,
    .close = query_close,
};
