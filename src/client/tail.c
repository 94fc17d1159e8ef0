/* tail.c - `logcaster tail [EXPR]`, and query's formatted output: the HTTP side of the client.
 *
 * The tail follows the server's live tail, GET /api/v1/tail?q=EXPR (Server-Sent Events, one
 * `id:` per entry). It always sends Last-Event-ID, the id of the last entry it printed (or, at
 * the start, the newest matching entry, or the newest entry of all), and the server resumes
 * right after it: so a reconnection after a server restart or a dropped connection has no
 * gap and no duplicate. The server keeps a tail's backlog bounded: a reader that stops reading
 * (a pipe nobody drains) is dropped after a few seconds and never slows ingest; the tail then
 * reconnects from where it was once its output moves again. Ctrl-C (or SIGTERM) ends it with
 * status 0. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/httpc.h"
#include "client/query.h"

#define IDLE_MS      45000 /* Three missed keepalives (15 s each): the connection is dead. */
#define BACKOFF_MIN  100
#define BACKOFF_MAX  2000
#define QUERY_MAX    10000000 /* The API's largest NDJSON limit: everything. */
#define BACKFILL_MAX 10000

/* GET /api/v1/query?q=EXPR&limit=N&format=ndjson and keep the entry lines, newest first.
 * Returns 0 with *lines (malloc'd, each malloc'd) and *n, or an exit code after saying why. */
static int fetch_entries(const struct lcc_opts *o, const char *expr, uint64_t limit, char ***lines,
                         size_t *n)
{
    struct lcc_http h;
    char err[512], *enc = lcc_url_encode(expr), *target, *line;
    size_t len, cap = 0;
    int rc;

    *lines = NULL;
    *n = 0;
    target = enc ? malloc(strlen(enc) + 80) : NULL;
    if (!target) {
        free(enc);
        lcc_warn("out of memory");
        return LCC_EXIT_FAIL;
    }
    sprintf(target, "/api/v1/query?q=%s&limit=%" PRIu64 "&format=ndjson", enc, limit);
    free(enc);
    rc = lcc_http_get(&h, o, target, NULL, err, sizeof(err));
    free(target);
    if (rc < 0) {
        lcc_warn("%s", err);
        return LCC_EXIT_UNREACHABLE;
    }
    if (h.status != 200) {
        lcc_http_error(&h, o->timeout_ms, err, sizeof(err));
        fprintf(stderr, "ERROR|%s\n", err);
        lcc_http_close(&h);
        return LCC_EXIT_FAIL;
    }
    while ((rc = lcc_http_line(&h, o->timeout_ms, &line, &len)) == 1) {
        if (len == 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nl = realloc(*lines, cap * sizeof(*nl));
            if (!nl)
                break;
            *lines = nl;
        }
        if (!((*lines)[*n] = strndup(line, len)))
            break;
        (*n)++;
    }
    lcc_http_close(&h);
    if (rc != 0) {
        lcc_warn("reading the answer from %s:%d: %s", o->host, o->http_port,
                 rc < 0 ? strerror(-rc) : "out of memory");
        return LCC_EXIT_UNREACHABLE;
    }
    return 0;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Print lines[n-1] .. lines[0] (oldest first); *last gets the newest id printed. */
static int print_oldest_first(const struct lcc_output *out, char **lines, size_t n, uint64_t *last)
{
    for (size_t i = n; i-- > 0;) {
        uint64_t id;
        if (lcc_print_json_entry(stdout, out, lines[i], strlen(lines[i]), &id) < 0) {
            lcc_warn("not an entry: %.200s", lines[i]);
            return LCC_EXIT_UNREACHABLE;
        }
        *last = id;
    }
    return 0;
}

int lcc_http_query(const struct lcc_opts *o, const struct lcc_qargs *a)
{
    char **lines;
    size_t n;
    uint64_t last = 0;
    int rc = fetch_entries(o, a->expr, QUERY_MAX, &lines, &n);

    if (rc)
        return rc;
    rc = print_oldest_first(&a->out, lines, n, &last);
    free_lines(lines, n);
    if (fflush(stdout) != 0 && !rc)
        rc = LCC_EXIT_FAIL;
    return rc;
}

static void on_stop(int sig)
{
    (void)sig;
    lcc_interrupted = 1;
}

/* The "id" of an entry object (the server writes it first). */
static uint64_t json_id(const char *obj)
{
    const char *p = strstr(obj, "\"id\":");
    return p ? strtoull(p + 5, NULL, 10) : 0;
}

/* The newest id the tail has seen: of the newest match, else of the newest entry at all. */
static int starting_point(const struct lcc_opts *o, const struct lcc_qargs *a, uint64_t *last)
{
    char **lines;
    size_t n;
    uint64_t keep = a->backfill < BACKFILL_MAX ? a->backfill : BACKFILL_MAX;
    int rc = fetch_entries(o, a->expr, keep ? keep : 1, &lines, &n);

    if (rc)
        return rc;
    *last = n > 0 ? json_id(lines[0]) : 0;
    if (n > 0 && keep)
        rc = print_oldest_first(&a->out, lines, n, last);
    free_lines(lines, n);
    if (rc || n > 0)
        return rc;
    rc = fetch_entries(o, "", 1, &lines, &n); /* No match yet: start after the newest entry. */
    if (!rc && n > 0)
        *last = json_id(lines[0]);
    free_lines(lines, n);
    return rc;
}

/* One connection to the live tail, printing events until it ends. Returns 0 when the stream
 * ended or broke (reconnect), 1 when interrupted, or an exit code + 2 for a refusal. */
static int follow_once(const struct lcc_opts *o, const struct lcc_qargs *a, const char *target,
                       uint64_t *last, bool *connected)
{
    struct lcc_http h;
    char err[512], hdr[64], *line, *data = NULL;
    char event[32] = "";
    size_t len;
    uint64_t id = 0;
    int rc;

    snprintf(hdr, sizeof(hdr), "Accept: text/event-stream\r\nLast-Event-ID: %" PRIu64 "\r\n",
             *last);
    rc = lcc_http_get(&h, o, target, hdr, err, sizeof(err));
    if (lcc_interrupted) {
        if (rc == 0)
            lcc_http_close(&h);
        goto stopped;
    }
    if (rc < 0 && !*connected) {
        lcc_warn("%s", err);
        return 2 + LCC_EXIT_UNREACHABLE;
    }
    if (rc < 0)
        return 0;
    if (h.status != 200) {
        int status = h.status;
        lcc_http_error(&h, o->timeout_ms, err, sizeof(err));
        lcc_http_close(&h);
        if (status >= 500) /* Starting up or shutting down: try again. */
            return 0;
        fprintf(stderr, "ERROR|%s\n", err);
        return 2 + LCC_EXIT_FAIL;
    }
    if (*connected)
        lcc_warn("reconnected: resuming after entry %" PRIu64, *last);
    *connected = true;
    while ((rc = lcc_http_line(&h, IDLE_MS, &line, &len)) == 1) {
        if (len == 0) { /* The end of an event. */
            if (data && (!event[0] || !strcmp(event, "log"))) {
                uint64_t eid;
                if (lcc_print_json_entry(stdout, &a->out, data, strlen(data), &eid) == 0 &&
                    eid > *last)
                    *last = eid;
                else if (id > *last)
                    *last = id;
                if (fflush(stdout) != 0 && !lcc_interrupted) {
                    free(data);
                    lcc_http_close(&h);
                    return 2 + LCC_EXIT_FAIL;
                }
            } else if (data && !strcmp(event, "skipped")) {
                lcc_warn("the tail fell behind: the server skipped entries: %s", data);
            }
            free(data);
            data = NULL;
            event[0] = '\0';
            id = 0;
        } else if (!strncmp(line, "data:", 5)) {
            free(data);
            data = strdup(line + 5 + (line[5] == ' '));
        } else if (!strncmp(line, "event:", 6)) {
            snprintf(event, sizeof(event), "%s", line + 6 + (line[6] == ' '));
        } else if (!strncmp(line, "id:", 3)) {
            id = strtoull(line + 3, NULL, 10);
        } /* ":" comments (keepalives) and "retry:" need nothing. */
    }
    free(data);
    lcc_http_close(&h);
    if (lcc_interrupted)
        goto stopped;
    lcc_warn("connection to %s:%d lost (%s): reconnecting", o->host, o->http_port,
             rc == 0 ? "closed by the server" : strerror(-rc));
    return 0;
stopped:
    return 1;
}

const char lcc_tail_help[] =
    "usage: logcaster tail [-n N] [output options] [options] [--] [EXPR...]\n"
    "\n"
    "Follow the new entries that match EXPR (all entries without EXPR) as they arrive, until\n"
    "Ctrl-C, through the HTTP port's live tail (GET /api/v1/tail, --http-port). After a\n"
    "server restart or a dropped connection it reconnects and resumes after the last entry it\n"
    "printed: no gap, no duplicate.\n"
    "\n"
    "  -n, --lines N      first print the newest N matches (0..10000; default 0)\n"
    "  --since D          only entries since D (15m, 1h30m) or from time T (from:T)\n"
    "  --until D          only entries until D ago (until:D), or up to time T (to:T)\n"
    "  --output F         text, json, logfmt or raw (default: text on a terminal, else raw)\n"
    "  --color C          auto, always or never (auto: on a terminal, unless NO_COLOR is set)\n"
    "  --utc              times in UTC instead of the local time zone\n"
    "\n"
    "Exit status: 0 after Ctrl-C or SIGTERM, 1 the server refused the query or the token,\n"
    "2 the server could not be reached at the start.\n";

int lcc_cmd_tail(struct lcc_opts *o, int argc, char **argv)
{
    struct lcc_qargs a = {.outputs = true, .terms = true, .tail = true};
    struct sigaction sa = {.sa_handler = on_stop}; /* No SA_RESTART: waits end at once. */
    bool connected = false;
    uint64_t last = 0;
    int64_t backoff = BACKOFF_MIN;
    char *enc, *target;
    int rc = lcc_qargs_parse(o, argc, argv, lcc_tail_help, &a);

    if (rc)
        return rc;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = starting_point(o, &a, &last);
    fflush(stdout);
    enc = rc ? NULL : lcc_url_encode(a.expr);
    target = enc ? malloc(strlen(enc) + 32) : NULL;
    if (!target) {
        free(enc);
        free(a.expr);
        return lcc_interrupted ? LCC_EXIT_OK : rc ? rc : LCC_EXIT_FAIL;
    }
    sprintf(target, "/api/v1/tail?q=%s", enc);
    free(enc);
    while (!lcc_interrupted) {
        int64_t t0 = lcc_now_ms();
        rc = follow_once(o, &a, target, &last, &connected);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc >= 2) {
            rc -= 2;
            break;
        }
        if (lcc_now_ms() - t0 > 5000) /* It ran for a while: a fresh failure. */
            backoff = BACKOFF_MIN;
        poll(NULL, 0, (int)backoff); /* A signal ends the wait. */
        backoff = backoff * 2 < BACKOFF_MAX ? backoff * 2 : BACKOFF_MAX;
    }
    free(target);
    free(a.expr);
    return lcc_interrupted ? LCC_EXIT_OK : rc;
}
