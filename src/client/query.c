/* query.c - the query-port subcommands of logcaster: query, count, stats, ping, bench-query.
 *
 * Each opens one persistent connection, writes requests and reads replies with the
 * --timeout as the longest wait for any byte. A reply that starts with ERROR goes to stderr
 * and makes the exit code 1; a server that cannot be reached, or that hangs up or stalls
 * mid-reply, makes it 2. */
#include "client/query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/httpc.h"
#include "client/net.h"
#include "client/output.h"
#include "client/stream.h"

struct lcc_qconn {
    struct lcc_stream s;      /* Plain or TLS. */
    const struct lcc_opts *o; /* Borrowed. */
    char *req;                /* Request build buffer, grown as needed. */
    size_t req_cap;
};

struct lcc_qconn *lcc_qconn_open(const struct lcc_opts *o, char *err, size_t errlen)
{
    struct lcc_qconn *q = calloc(1, sizeof(*q));

    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (lcc_stream_open(&q->s, o, o->query_port, err, errlen) < 0) {
        free(q);
        return NULL;
    }
    q->o = o;
    if (o->token) {
        /* The server answers OK|authenticated, or ERROR|... and closes. */
        char line[256];
        char *reply;
        size_t rl;
        int n = snprintf(line, sizeof(line), "AUTH %s\n", o->token);
        if (lcc_stream_write(&q->s, line, (size_t)n, o->timeout_ms) < 0 ||
            lcc_stream_line(&q->s, o->timeout_ms, &reply, &rl) <= 0) {
            snprintf(err, errlen, "authentication: the server closed the connection");
            lcc_qconn_close(q);
            return NULL;
        }
        if (rl < 2 || memcmp(reply, "OK", 2) != 0) {
            snprintf(err, errlen, "authentication refused: %.*s", (int)(rl > 200 ? 200 : rl),
                     reply);
            lcc_qconn_close(q);
            return NULL;
        }
    }
    return q;
}

void lcc_qconn_close(struct lcc_qconn *q)
{
    if (!q)
        return;
    lcc_stream_close(&q->s);
    free(q->req);
    free(q);
}

int lcc_qconn_send(struct lcc_qconn *q, const char *cmd, const char *arg)
{
    size_t cl = strlen(cmd), al = arg ? strlen(arg) : 0, n = cl;

    if (arg && strpbrk(arg, "\r\n"))
        return -EINVAL;
    if (q->req_cap < cl + al + 2) {
        char *nb = realloc(q->req, cl + al + 2);
        if (!nb)
            return -ENOMEM;
        q->req = nb;
        q->req_cap = cl + al + 2;
    }
    memcpy(q->req, cmd, cl);
    if (al > 0) {
        q->req[n++] = ' ';
        memcpy(q->req + n, arg, al);
        n += al;
    }
    q->req[n++] = '\n';
    return lcc_stream_write(&q->s, q->req, n, q->o->timeout_ms);
}

int lcc_qconn_line(struct lcc_qconn *q, char **line, size_t *len)
{
    return lcc_stream_line(&q->s, q->o->timeout_ms, line, len);
}

/* Turn a failed read into a sentence: 0 means the server hung up. */
static void describe_read(int rc, const struct lcc_opts *o, char *err, size_t errlen)
{
    if (rc == 0)
        snprintf(err, errlen, "%s:%d closed the connection before replying", o->host,
                 o->query_port);
    else if (rc == -ETIMEDOUT)
        snprintf(err, errlen, "no reply from %s:%d within %.1f s", o->host, o->query_port,
                 o->timeout_ms / 1000.0);
    else
        snprintf(err, errlen, "reading from %s:%d: %s", o->host, o->query_port, strerror(-rc));
}

int lcc_qconn_count(struct lcc_qconn *q, const char *expr, uint64_t *n, char *err, size_t errlen)
{
    char *line;
    size_t len;
    int rc = lcc_qconn_send(q, "COUNT", expr);

    if (rc < 0) {
        snprintf(err, errlen, "sending COUNT: %s", strerror(-rc));
        return rc;
    }
    rc = lcc_qconn_line(q, &line, &len);
    if (rc <= 0) {
        describe_read(rc, q->o, err, errlen);
        return rc < 0 ? rc : -EPIPE;
    }
    if (lcc_parse_tagged_count(line, len, "COUNT|", n) == 0)
        return 0;
    snprintf(err, errlen, "%s", line);
    if (strncmp(line, "ERROR", 5) == 0)
        return 1;
    snprintf(err, errlen, "unexpected reply to COUNT: %.200s", line);
    return -EPROTO;
}

int lcc_qconn_stat(struct lcc_qconn *q, const char *key, uint64_t *value, char *err, size_t errlen)
{
    size_t kl = strlen(key), len;
    char *line;
    int rc = lcc_qconn_send(q, "STATS", NULL), found = 1;

    if (rc < 0) {
        snprintf(err, errlen, "sending STATS: %s", strerror(-rc));
        return rc;
    }
    for (bool first = true;; first = false) {
        rc = lcc_qconn_line(q, &line, &len);
        if (rc <= 0) {
            describe_read(rc, q->o, err, errlen);
            return rc < 0 ? rc : -EPIPE;
        }
        if ((first && strncmp(line, "ERROR", 5) == 0) || strcmp(line, "END") == 0)
            return found;
        if (len > kl && memcmp(line, key, kl) == 0 && line[kl] == ' ' &&
            lcc_parse_u64(line + kl + 1, 0, UINT64_MAX, value) == 0)
            found = 0;
    }
}

static int parse_qargs_opt(struct lcc_argp *p, const char *cmd, struct lcc_qargs *a)
{
    const char *v;

    if (a->outputs && lcc_argp_value(p, "--output", &v)) {
        if (!v || lcc_parse_format(v, &a->out.format) < 0 || a->out.format == LCC_OUT_AUTO) {
            lcc_usage(cmd, "bad --output (text, json, logfmt or raw)", v);
            return -1;
        }
        return 1;
    }
    if (a->outputs && lcc_argp_value(p, "--color", &v)) {
        if (!v || lcc_parse_color(v, &a->out.color_opt) < 0) {
            lcc_usage(cmd, "bad --color (auto, always or never)", v);
            return -1;
        }
        return 1;
    }
    if (a->outputs && lcc_argp_flag(p, "--utc")) {
        a->out.utc = true;
        return 1;
    }
    if (a->terms && (lcc_argp_value(p, "--since", &v) || lcc_argp_value(p, "--until", &v))) {
        bool since = strncmp(p->arg, "--since", 7) == 0;
        if (!v || !*v || strpbrk(v, " \r\n")) {
            lcc_usage(cmd, "bad time (15m, 1h30m, unix seconds or ISO-8601)", v);
            return -1;
        }
        *(since ? &a->since : &a->until) = v;
        return 1;
    }
    if (a->outputs && !a->tail && lcc_argp_value(p, "--limit", &v)) {
        if (!v || lcc_parse_u64(v, 1, 10000000, &a->limit) < 0) {
            lcc_usage(cmd, "bad --limit (1..10000000)", v);
            return -1;
        }
        return 1;
    }
    if (a->tail && (lcc_argp_value(p, "-n", &v) || lcc_argp_value(p, "--lines", &v))) {
        if (!v || lcc_parse_u64(v, 0, 10000, &a->backfill) < 0) {
            lcc_usage(cmd, "bad -n (0..10000)", v);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Add the --since/--until/--limit shortcuts to the expression as the language's terms. */
static int add_terms(struct lcc_qargs *a)
{
    size_t cap = strlen(a->expr) + 128 + (a->since ? strlen(a->since) : 0) +
                 (a->until ? strlen(a->until) : 0);
    char *e = malloc(cap);
    int n;

    if (!e)
        return -ENOMEM;
    n = snprintf(e, cap, "%s", a->expr);
    if (a->since)
        n += snprintf(e + n, cap - (size_t)n, "%s%s:%s", n ? " " : "",
                      lcc_is_duration(a->since) ? "since" : "from", a->since);
    if (a->until)
        n += snprintf(e + n, cap - (size_t)n, "%s%s:%s", n ? " " : "",
                      lcc_is_duration(a->until) ? "until" : "to", a->until);
    if (a->limit)
        snprintf(e + n, cap - (size_t)n, "%slimit:%llu", n ? " " : "",
                 (unsigned long long)a->limit);
    free(a->expr);
    a->expr = e;
    return 0;
}

int lcc_qargs_parse(struct lcc_opts *o, int argc, char **argv, const char *help,
                    struct lcc_qargs *a)
{
    struct lcc_argp p;
    char **pos = calloc((size_t)argc + 1, sizeof(*pos));
    int npos = 0, rc;
    const char *v;

    if (!pos)
        return LCC_EXIT_FAIL;
    lcc_argp_init(&p, argc, argv, 1);
    while (lcc_argp_next(&p)) {
        if (!lcc_argp_is_opt(&p)) {
            pos[npos++] = (char *)p.arg;
            continue;
        }
        rc = lcc_common_opt(&p, o, argv[0], help);
        if (rc == 0)
            rc = parse_qargs_opt(&p, argv[0], a);
        if (rc < 0)
            goto usage;
        if (rc > 0)
            continue;
        if (lcc_argp_flag(&p, "--raw") && !a->no_expr) {
            a->raw = true;
            a->out.format = LCC_OUT_RAW;
        } else if (lcc_argp_flag(&p, "--count") && a->runs) {
            a->count = true;
        } else if (a->runs && lcc_argp_value(&p, "--runs", &v)) {
            if (!v || lcc_parse_u64(v, 1, 10000000, &a->runs) < 0) {
                lcc_usage(argv[0], "bad --runs (1..10000000)", v);
                goto usage;
            }
        } else {
            lcc_unknown_opt(&p, argv[0]);
            goto usage;
        }
    }
    if (a->need_expr && npos == 0 && !a->since && !a->until && !a->limit) {
        lcc_usage(argv[0], "missing query expression", NULL);
        goto usage;
    }
    if (a->no_expr && npos > 0) {
        lcc_usage(argv[0], "unexpected argument", pos[0]);
        goto usage;
    }
    a->expr = lcc_join_args(npos, pos);
    free(pos);
    if (!a->expr || add_terms(a) < 0)
        return LCC_EXIT_FAIL;
    if (strpbrk(a->expr, "\r\n")) {
        free(a->expr);
        return lcc_usage(argv[0], "the expression must be a single line", NULL);
    }
    if (a->outputs) {
        const char *nc = getenv("NO_COLOR");
        lcc_output_resolve(&a->out, isatty(STDOUT_FILENO), nc && *nc);
    }
    return 0;
usage:
    free(pos);
    return LCC_EXIT_USAGE;
}

/* Open the query connection or print why not; NULL means exit LCC_EXIT_UNREACHABLE. */
static struct lcc_qconn *open_or_warn(const struct lcc_opts *o)
{
    char err[256];
    struct lcc_qconn *q = lcc_qconn_open(o, err, sizeof(err));

    if (!q)
        lcc_warn("%s", err);
    return q;
}

/* Read one reply line; on failure print why and return the exit code to use (> 0). */
static int reply_line(struct lcc_qconn *q, char **line, size_t *len)
{
    char err[256];
    int rc = lcc_qconn_line(q, line, len);

    if (rc == 1)
        return 0;
    describe_read(rc, q->o, err, sizeof(err));
    lcc_warn("%s", err);
    return LCC_EXIT_UNREACHABLE;
}

static int send_or_warn(struct lcc_qconn *q, const char *cmd, const char *arg)
{
    int rc = lcc_qconn_send(q, cmd, arg);

    if (rc == 0)
        return 0;
    lcc_warn("sending %s to %s:%d: %s", cmd, q->o->host, q->o->query_port, strerror(-rc));
    return LCC_EXIT_UNREACHABLE;
}

/* Print one entry line of the query port ("<id>|<LEVEL>|<unix_ts>|<message>") in out's format.
 * The line has no milliseconds and no source: those come only over HTTP. */
static void print_pipe_entry(const struct lcc_output *out, char *line, size_t len)
{
    char *p1 = memchr(line, '|', len), *p2, *p3;
    struct lcc_entry e = {0};

    if (out->format == LCC_OUT_RAW || !p1 || !(p2 = strchr(p1 + 1, '|')) ||
        !(p3 = strchr(p2 + 1, '|'))) {
        fwrite(line, 1, len, stdout);
        putchar('\n');
        return;
    }
    *p1 = *p2 = *p3 = '\0';
    e.id = strtoull(line, NULL, 10);
    e.level = p1 + 1;
    e.ts_ms = strtoll(p2 + 1, NULL, 10) * 1000;
    e.source = "";
    e.message = p3 + 1;
    e.message_len = len - (size_t)(p3 + 1 - line);
    lcc_print_entry(stdout, out, &e);
}

/* Read one SEARCH reply. With out set, print the entries there in its format (with raw every
 * protocol line verbatim); the rows of a piped query are gathered and printed as a table.
 * *n gets the number of entries. Returns 0 or an exit code. */
static int read_search(struct lcc_qconn *q, const struct lcc_output *out, bool raw, uint64_t *n)
{
    struct lcc_table *t = NULL;
    char *line;
    size_t len;
    int rc = reply_line(q, &line, &len);

    if (rc)
        return rc;
    if (lcc_parse_tagged_count(line, len, "RESULT|", n) < 0) {
        if (strncmp(line, "ERROR", 5) == 0) {
            fprintf(stderr, "%s\n", line);
            return LCC_EXIT_FAIL;
        }
        lcc_warn("unexpected reply to SEARCH: %.200s", line);
        return LCC_EXIT_UNREACHABLE;
    }
    if (out && raw)
        printf("%s\n", line);
    /* Count the entries rather than stop at "END", so a message that reads "END" is safe. */
    for (uint64_t i = 0; i < *n; i++) {
        rc = reply_line(q, &line, &len);
        if (rc)
            goto out;
        if (!out)
            continue;
        if (raw) {
            fwrite(line, 1, len, stdout);
            putchar('\n');
            continue;
        }
        if (i == 0 && lcc_is_row(line, len) && !(t = lcc_table_new())) {
            rc = LCC_EXIT_FAIL;
            goto out;
        }
        if (!t) {
            print_pipe_entry(out, line, len);
        } else if (lcc_table_add(t, line, len) < 0) {
            lcc_warn("malformed row in the reply: %.200s", line);
            rc = LCC_EXIT_UNREACHABLE;
            goto out;
        }
    }
    rc = reply_line(q, &line, &len);
    if (rc)
        goto out;
    if (strcmp(line, "END") != 0) {
        lcc_warn("expected END after %llu entries, got: %.200s", (unsigned long long)*n, line);
        rc = LCC_EXIT_UNREACHABLE;
        goto out;
    }
    if (t)
        lcc_table_print(stdout, out, t);
    if (out && raw)
        printf("END\n");
out:
    lcc_table_free(t);
    return rc;
}

const char lcc_query_help[] =
    "usage: logcaster query [output options] [--since D] [--until D] [--limit N] [options]\n"
    "                       [--] EXPR...\n"
    "\n"
    "Print the entries that match EXPR, oldest first. Several EXPR arguments are joined\n"
    "with spaces. Text, json and logfmt come from the HTTP API (--http-port); raw lines and\n"
    "the rows of a piped query (stats, top) from SEARCH on the query port.\n"
    "\n"
    "  --output F   text: local time with ms, level, source, message (the default on a\n"
    "               terminal); json: one object per line, the API's fields; logfmt;\n"
    "               raw: <id>|<LEVEL>|<unix_ts>|<message> (the default when stdout is not\n"
    "               a terminal, for scripts)\n"
    "  --color C    auto, always or never (auto: on a terminal, unless NO_COLOR is set)\n"
    "  --utc        times in UTC instead of the local time zone\n"
    "  --since D    adds since:D for a duration (15m, 1h30m), else from:D (a time)\n"
    "  --until D    adds until:D for a duration, else to:D\n"
    "  --limit N    adds limit:N: the newest N matches\n"
    "  --raw        print the query port's reply verbatim (RESULT|n ... END)\n"
    "  --           end of options; needed before an expression that starts with '-'\n"
    "\n"
    "Query language: words are ANDed, OR, -word negates, \"a phrase\", level:ERROR,\n"
    "level:>=WARN, source:PREFIX, since:15m, from:/to: (unix seconds or ISO-8601),\n"
    "/regex/, limit:N, host:web* (a name=value field of the message).\n"
    "\n"
    "Exit status: 0 success, 1 the server answered ERROR (printed on stderr),\n"
    "2 the server could not be reached or the connection failed.\n";

int lcc_cmd_query(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qargs a = {.need_expr = true, .outputs = true, .terms = true};
    struct lcc_qconn *q;
    uint64_t n;
    int rc = lcc_qargs_parse(o, argc, argv, lcc_query_help, &a);

    if (rc)
        return rc;
    /* Entries in text, json and logfmt need what only the HTTP API gives (milliseconds, the
     * source); raw lines and the rows of a piped query come from the query port. */
    if (!a.raw && a.out.format != LCC_OUT_RAW && !lcc_has_pipe(a.expr)) {
        rc = lcc_http_query(o, &a);
        free(a.expr);
        return rc;
    }
    q = open_or_warn(o);
    if (!q) {
        free(a.expr);
        return LCC_EXIT_UNREACHABLE;
    }
    rc = send_or_warn(q, "SEARCH", a.expr);
    if (!rc)
        rc = read_search(q, &a.out, a.raw, &n);
    lcc_qconn_close(q);
    free(a.expr);
    if (fflush(stdout) != 0 && !rc)
        rc = LCC_EXIT_FAIL;
    return rc;
}

const char lcc_count_help[] =
    "usage: logcaster count [--since D] [--until D] [--raw] [options] [--] [EXPR...]\n"
    "\n"
    "Print just the number of entries that match EXPR (all entries when EXPR is omitted),\n"
    "from COUNT on the query port.\n"
    "\n"
    "  --since D    adds since:D for a duration (15m, 1h30m), else from:D (a time)\n"
    "  --until D    adds until:D for a duration, else to:D\n"
    "  --raw        print the reply line verbatim (COUNT|n)\n"
    "\n"
    "Exit status as for query.\n";

int lcc_cmd_count(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qargs a = {.terms = true};
    struct lcc_qconn *q;
    char err[512];
    uint64_t n;
    int rc = lcc_qargs_parse(o, argc, argv, lcc_count_help, &a);

    if (rc)
        return rc;
    q = open_or_warn(o);
    if (!q) {
        free(a.expr);
        return LCC_EXIT_UNREACHABLE;
    }
    rc = lcc_qconn_count(q, a.expr, &n, err, sizeof(err));
    if (rc == 0) {
        printf(a.raw ? "COUNT|%llu\n" : "%llu\n", (unsigned long long)n);
    } else if (rc == 1) {
        fprintf(stderr, "%s\n", err);
        rc = LCC_EXIT_FAIL;
    } else {
        lcc_warn("%s", err);
        rc = LCC_EXIT_UNREACHABLE;
    }
    lcc_qconn_close(q);
    free(a.expr);
    return rc;
}

/* For the subcommands without an expression (stats, ping): parse the options, then connect.
 * Returns 0 with *q open, or the exit code to return. */
static int open_without_expr(struct lcc_opts *o, int argc, char **argv, const char *help,
                             struct lcc_qconn **q)
{
    struct lcc_qargs a = {.no_expr = true};
    int rc = lcc_qargs_parse(o, argc, argv, help, &a);
    if (rc)
        return rc;
    free(a.expr);
    *q = open_or_warn(o);
    return *q ? 0 : LCC_EXIT_UNREACHABLE;
}

const char lcc_stats_help[] = "usage: logcaster stats [options]\n"
                              "\n"
                              "Print the server's statistics (STATS), one '<key> <value>' per\n"
                              "line.\n";

int lcc_cmd_stats(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qconn *q;
    char *line;
    size_t len;
    bool first = true;
    int rc = open_without_expr(o, argc, argv, lcc_stats_help, &q);

    if (rc)
        return rc;
    rc = send_or_warn(q, "STATS", NULL);
    while (!rc) {
        rc = reply_line(q, &line, &len);
        if (rc)
            break;
        if (first && strncmp(line, "ERROR", 5) == 0) {
            fprintf(stderr, "%s\n", line);
            rc = LCC_EXIT_FAIL;
            break;
        }
        first = false;
        if (strcmp(line, "END") == 0)
            break;
        printf("%s\n", line);
    }
    lcc_qconn_close(q);
    return rc;
}

const char lcc_ping_help[] = "usage: logcaster ping [options]\n"
                             "\n"
                             "Send PING to the query port and print the round trip time.\n"
                             "Exit status 0 on PONG, 2 when the server cannot be reached.\n";

int lcc_cmd_ping(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qconn *q;
    char *line;
    size_t len;
    int rc = open_without_expr(o, argc, argv, lcc_ping_help, &q);

    if (rc)
        return rc;
    double t0 = lcc_now_s();
    rc = send_or_warn(q, "PING", NULL);
    if (!rc)
        rc = reply_line(q, &line, &len);
    if (!rc) {
        if (strcmp(line, "PONG") == 0) {
            printf("PONG from %s:%d in %.3f ms\n", o->host, o->query_port,
                   (lcc_now_s() - t0) * 1000);
        } else {
            fprintf(stderr, "%s\n", line);
            rc = LCC_EXIT_FAIL;
        }
    }
    lcc_qconn_close(q);
    return rc;
}

const char lcc_bench_query_help[] =
    "usage: logcaster bench-query [--runs N] [--count] [options] [--] EXPR...\n"
    "\n"
    "Run SEARCH EXPR (or COUNT EXPR with --count) N times, one after the other over one\n"
    "connection, and print the latency percentiles:\n"
    "  query: op=SEARCH expr='...' runs=N results=R p50=Xms p99=Yms max=Zms\n"
    "Results are read and discarded; the time is from sending the request to the last\n"
    "byte of its reply.\n"
    "\n"
    "  --runs N     number of requests (default 20)\n"
    "  --count      time COUNT instead of SEARCH (EXPR may then be empty)\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int lcc_cmd_bench_query(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qargs a = {.runs = 20};
    struct lcc_qconn *q;
    double *lat;
    uint64_t n = 0;
    char err[512];
    int rc = lcc_qargs_parse(o, argc, argv, lcc_bench_query_help, &a);

    if (rc)
        return rc;
    if (!a.count && !*a.expr) {
        free(a.expr);
        return lcc_usage(argv[0], "missing query expression", NULL);
    }
    lat = calloc(a.runs, sizeof(*lat));
    q = lat ? open_or_warn(o) : NULL;
    if (!q) {
        free(lat);
        free(a.expr);
        return lat ? LCC_EXIT_UNREACHABLE : LCC_EXIT_FAIL;
    }
    for (uint64_t i = 0; i < a.runs && !rc; i++) {
        double t0 = lcc_now_s();
        if (a.count) {
            rc = lcc_qconn_count(q, a.expr, &n, err, sizeof(err));
            if (rc == 1) {
                fprintf(stderr, "%s\n", err);
                rc = LCC_EXIT_FAIL;
            } else if (rc < 0) {
                lcc_warn("%s", err);
                rc = LCC_EXIT_UNREACHABLE;
            }
        } else {
            rc = send_or_warn(q, "SEARCH", a.expr);
            if (!rc)
                rc = read_search(q, NULL, false, &n);
        }
        lat[i] = (lcc_now_s() - t0) * 1000;
    }
    if (!rc) {
        qsort(lat, a.runs, sizeof(*lat), cmp_double);
        printf("query: op=%s expr='%s' runs=%llu results=%llu p50=%.3fms p99=%.3fms "
               "max=%.3fms\n",
               a.count ? "COUNT" : "SEARCH", a.expr, (unsigned long long)a.runs,
               (unsigned long long)n, lcc_percentile(lat, a.runs, 50),
               lcc_percentile(lat, a.runs, 99), lat[a.runs - 1]);
    }
    lcc_qconn_close(q);
    free(lat);
    free(a.expr);
    return rc;
}
