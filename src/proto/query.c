/* query.c - the query protocol (port 9998): persistent connections, pipelined commands
 * answered in order, results streamed with bounded memory.
 *
 * Commands (one per line):
 *   QUERY:<keyword>                     seed section 5  -> RESULT:<n>, LOG:<ts>:<LEVEL>:<msg>..,
 * END QUERY|<TYPE>|<param>                seed section 7.1 -> RESULT|<n>,
 * <id>|<LEVEL>|<ts>|<msg>.., END QUERY key=value ...                 reference form   -> FOUND:
 * <n>, [<time>] <msg>.. QUERY <expr> / SEARCH <expr>        query language   -> as QUERY| COUNT
 * [expr]                        -> COUNT|<n> STATS, HELP                         -> lines, END PING
 * -> PONG While a command's answer is streaming the connection is busy: later commands wait in the
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

#include "cluster/cluster.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/policy.h"
#include "core/server.h"
#include "proto/auth.h"
#include "proto/binary.h"
#include "proto/line.h"
#include "proto/protocols.h"
#include "proto/query_parse.h"
#include "proto/stats.h"
#include "query/pipe.h"
#include "query/qry.h"
#include "query/run.h"
#include "store/store.h"

#define MAX_QUERY_LEN 8192 /* Longest command line. */

struct query_conn {
    struct conn *c;
    struct qrun *x; /* The running command (on the query pool), or NULL. */
    bool failed;    /* It answered with an error: no END follows. */
    enum qstyle style;
    bool discarding; /* Skipping the rest of an over-long command. */
    bool quit;       /* QUIT seen: nothing after it runs. */
    bool authed;     /* The first line was dealt with (AUTH, or a command needing none). */
    bool binary;     /* Speaks the binary protocol (first byte 0x01; binary.h). */
    uint32_t seq;    /* Binary: the running query's sequence number. */
    int64_t t0;      /* When the running command started (for the latency histogram). */
};

/* ------------------------------------------------------------------------------------------ */
/* Output formats. */

static void sink_count(void *arg, uint64_t n)
{
    struct query_conn *qc = arg;
    if (qc->binary) {
        unsigned char p[8];
        bin_put64(p, n);
        bin_send(qc->c, BIN_QUERY | BIN_REPLY, qc->seq, p, sizeof(p));
        return;
    }
    switch (qc->style) {
    case QSTYLE_COLON:
        conn_printf(qc->c, "RESULT:%" PRIu64 "\n", n);
        break;
    case QSTYLE_PIPE:
        conn_printf(qc->c, "RESULT|%" PRIu64 "\n", n);
        break;
    case QSTYLE_KV:
        conn_printf(qc->c, "FOUND: %" PRIu64 "\n", n);
        break;
    case QSTYLE_COUNT:
        conn_printf(qc->c, "COUNT|%" PRIu64 "\n", n);
        break;
    }
}

/* A row frame: id u64 | ts_ms i64 | level u8 | flags u8 | message (binary.h). */
static void binary_row(struct query_conn *qc, const struct lc_entry *e)
{
    unsigned char h[BIN_HEADER + 18];
    size_t room = BIN_PAYLOAD_MAX - 18;
    size_t n = e->msg_len < room ? e->msg_len : room;
    bin_header_write(h, BIN_ROW, (uint16_t)(18 + n), qc->seq);
    bin_put64(h + BIN_HEADER, e->id);
    bin_put64(h + BIN_HEADER + 8, (uint64_t)e->ts_ms);
    h[BIN_HEADER + 16] = e->level;
    h[BIN_HEADER + 17] = (e->flags & LC_ENTRY_TRUNCATED ? 1 : 0) | (n < e->msg_len ? 2 : 0);
    conn_write(qc->c, h, sizeof(h));
    conn_write(qc->c, e->msg, n);
}

static bool sink_row(void *arg, const struct lc_entry *e)
{
    struct query_conn *qc = arg;
    if (qc->binary) {
        binary_row(qc, e);
        return !conn_out_full(qc->c);
    }
    char head[96];
    int n = 0;
    long long sec = (long long)(e->ts_ms / 1000);
    switch (qc->style) {
    case QSTYLE_COLON:
        n = snprintf(head, sizeof(head), "LOG:%lld:%s:", sec, lc_level_name(e->level));
        break;
    case QSTYLE_PIPE:
        n = snprintf(head, sizeof(head), "%" PRIu64 "|%s|%lld|", e->id, lc_level_name(e->level),
                     sec);
        break;
    case QSTYLE_KV: {
        time_t t = (time_t)sec;
        struct tm tm;
        localtime_r(&t, &tm);
        n = (int)strftime(head, sizeof(head), "[%Y-%m-%d %H:%M:%S] ", &tm);
        break;
    }
    case QSTYLE_COUNT:
        return true;
    }
    conn_write(qc->c, head, (size_t)n);
    conn_write(qc->c, e->msg, e->msg_len);
    conn_write(qc->c, "\n", 1);
    return !conn_out_full(qc->c);
}

/* A piped query's table: RESULT|<rows>, then each row as name=value pairs (pipe.h). */
static void sink_table(void *arg, const struct qtable *t)
{
    struct query_conn *qc = arg;
    if (qc->binary) {
        unsigned char p[8];
        bin_put64(p, t->nrows);
        bin_send(qc->c, BIN_QUERY | BIN_REPLY, qc->seq, p, sizeof(p));
        return;
    }
    conn_printf(qc->c, "RESULT|%zu\n", t->nrows);
}

static bool sink_table_row(void *arg, const struct qtable *t, size_t r)
{
    struct query_conn *qc = arg;
    char small[1024];
    size_t n = qtable_row_kv(t, r, small, sizeof(small));
    char *line = n < sizeof(small) ? small : malloc(n + 1);
    if (line && line != small)
        qtable_row_kv(t, r, line, n + 1);
    if (qc->binary) { /* A row frame whose message is the row's text. */
        struct lc_entry e = {
            .id = r + 1, .level = LC_INFO, .msg = line ? line : "", .msg_len = line ? n : 0};
        binary_row(qc, &e);
    } else if (line) {
        conn_write(qc->c, line, n);
        conn_write(qc->c, "\n", 1);
    }
    if (line != small)
        free(line);
    return !conn_out_full(qc->c);
}

static void reply_error(struct query_conn *qc, enum qstyle style, const char *why);

static void sink_error(void *arg, const char *why)
{
    struct query_conn *qc = arg;
    qc->failed = true;
    if (qc->binary)
        bin_send_error(qc->c, qc->seq, BIN_E_QUERY, why);
    else
        reply_error(qc, qc->style == QSTYLE_COUNT ? QSTYLE_PIPE : qc->style, why);
}

static const struct qrun_sink sink = {.count = sink_count,
                                      .row = sink_row,
                                      .table = sink_table,
                                      .table_row = sink_table_row,
                                      .error = sink_error};

/* ------------------------------------------------------------------------------------------ */
/* Running a command on the query pool; its answer comes back through ready -> resume. */

static void run(struct query_conn *qc)
{
    if (!qc->x)
        return;
    enum qexec_status st = qrun_drain(qc->x, &sink, qc);
    if (st != QX_DONE)
        return; /* Paused: resume comes when the output drains. More: ready comes. */
    if (!qc->binary && !qc->failed && (qc->style == QSTYLE_COLON || qc->style == QSTYLE_PIPE))
        conn_write(qc->c, "END\n", 4);
    qrun_close(qc->x);
    qc->x = NULL;
    metrics_query_observe(mono_ns() - qc->t0);
    conn_set_busy(qc->c, false);
}

static void ready(void *owner)
{
    struct query_conn *qc = owner;
    conn_schedule_resume(qc->c);
}

static void start(struct query_conn *qc, struct qry *q, enum qstyle style)
{
    qc->style = style;
    qc->failed = false;
    qc->t0 = mono_ns();
    qc->x =
        qrun_start(conn_loop(qc->c), protocols_store(), q, style == QSTYLE_COUNT, 0, 0, ready, qc);
    if (!qc->x) {
        if (qc->binary)
            bin_send_error(qc->c, qc->seq, BIN_E_INTERNAL, "out of memory");
        else
            conn_printf(qc->c, "ERROR: out of memory\n");
        return;
    }
    conn_set_busy(qc->c, true);
}

static void query_resume(struct conn *c)
{
    struct query_conn *qc = conn_state(c);
    if (qc->x)
        run(qc);
}

/* ------------------------------------------------------------------------------------------ */
/* Commands. */

static void reply_error(struct query_conn *qc, enum qstyle style, const char *why)
{
    switch (style) {
    case QSTYLE_COLON:
        conn_printf(qc->c, "ERROR:%s\n", why);
        break;
    case QSTYLE_PIPE:
        conn_printf(qc->c, "ERROR|%s\n", why);
        break;
    default:
        conn_printf(qc->c, "ERROR: %s\n", why);
        break;
    }
}

/* The statistics as "key value" lines into out; returns the length. */
static size_t stats_text(struct conn *c, char *out, size_t cap)
{
    struct stat_kv kv[STATS_MAX];
    size_t n = stats_collect(c, kv), len = 0;
    for (size_t i = 0; i < n && len < cap; i++) {
        int k = 0;
        switch (kv[i].kind) {
        case STAT_U64:
            k = snprintf(out + len, cap - len, "%s %" PRIu64 "\n", kv[i].key, kv[i].u);
            break;
        case STAT_I64:
            k = snprintf(out + len, cap - len, "%s %" PRId64 "\n", kv[i].key, kv[i].i);
            break;
        case STAT_F64:
            k = snprintf(out + len, cap - len, "%s %.3f\n", kv[i].key, kv[i].d);
            break;
        case STAT_STR:
            k = snprintf(out + len, cap - len, "%s %s\n", kv[i].key, kv[i].s);
            break;
        }
        len += k > 0 ? (size_t)k : 0;
    }
    return len < cap ? len : cap - 1;
}

static void put_cluster_line(void *arg, const char *name, const char *value)
{
    conn_printf(arg, "%s %s\n", name, value);
}

static void reply_stats(struct query_conn *qc)
{
    char text[8192];
    size_t n = stats_text(qc->c, text, sizeof(text));
    conn_write(qc->c, text, n);
    cluster_report(put_cluster_line, qc->c); /* Nothing on a single node. */
    conn_write(qc->c, "END\n", 4);
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
    "  host:web1 app:nginx status:500 (key=value fields of the message; host:web* prefix),\n"
    "  limit:N (the newest N matches, printed oldest first)\n"
    "END\n";

static void command(struct query_conn *qc, const char *p, size_t n)
{
    struct qcmd cmd;
    qcmd_parse(p, n, now_ms(), &cmd);
    switch (cmd.kind) {
    case QCMD_NONE:
        break;
    case QCMD_RUN:
        start(qc, cmd.q, cmd.style);
        break;
    case QCMD_STATS:
        reply_stats(qc);
        break;
    case QCMD_HELP:
        conn_write(qc->c, help_text, sizeof(help_text) - 1);
        break;
    case QCMD_PING:
        conn_write(qc->c, "PONG\n", 5);
        break;
    case QCMD_QUIT:
        qc->quit = true;
        conn_close_after_flush(qc->c);
        break;
    case QCMD_ERROR:
        reply_error(qc, cmd.style, cmd.err);
        break;
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
    if (!qc)
        return;
    qrun_close(qc->x); /* Cancels it if it still runs. */
    free(qc);
}

/* A binary QUERY: flags u8 (bit 0: count only) | expression. */
static void binary_query(struct query_conn *qc, const unsigned char *p, size_t n)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (n < 1) {
        bin_send_error(qc->c, qc->seq, BIN_E_MALFORMED, "QUERY payload needs its flags byte");
        return;
    }
    if (qry_compile((const char *)p + 1, n - 1, now_ms(), &q, err) < 0) {
        bin_send_error(qc->c, qc->seq, BIN_E_QUERY, err);
        return;
    }
    start(qc, q, p[0] & 1 ? QSTYLE_COUNT : QSTYLE_PIPE);
}

/* Close after an error frame: the stream cannot go on. */
static size_t binary_fail(struct query_conn *qc, uint32_t seq, uint8_t code, const char *why,
                          size_t n)
{
    bin_send_error(qc->c, seq, code, why);
    qc->quit = true;
    conn_close_after_flush(qc->c);
    return n;
}

/* The binary protocol on the query port: QUERY, STATS, PING and AUTH (binary.h). One request
 * at a time, like text commands, so answers stay in order. */
static size_t query_input_binary(struct query_conn *qc, const char *in, size_t n)
{
    struct conn *c = qc->c;
    size_t used = 0;
    while (used < n && !qc->x && !qc->quit && !conn_out_full(c)) {
        const unsigned char *s = (const unsigned char *)in + used;
        size_t avail = n - used;
        if (avail < BIN_HEADER)
            break;
        struct bin_header h = bin_header_read(s);
        if (!bin_request_known(&h))
            return binary_fail(qc, h.seq, h.version != BIN_VERSION ? BIN_E_VERSION : BIN_E_COMMAND,
                               h.version != BIN_VERSION
                                   ? "unsupported protocol version (this server speaks 1); closing"
                                   : "unknown command; closing",
                               n);
        if (avail - BIN_HEADER < h.length)
            break; /* The rest of the frame is on its way (the input buffer has room for it). */
        if (!qc->authed && policy_auth_required(ROLE_QUERY) && h.command != BIN_AUTH &&
            h.command != BIN_PING)
            return binary_fail(qc, h.seq, BIN_E_AUTH,
                               "authentication required: send AUTH (0x05) first", n);
        const unsigned char *payload = s + BIN_HEADER;
        used += BIN_HEADER + h.length;
        qc->seq = h.seq;
        switch (h.command) {
        case BIN_QUERY:
            binary_query(qc, payload, h.length);
            break;
        case BIN_STATS: {
            char text[8192];
            size_t k = stats_text(c, text, sizeof(text));
            bin_send(c, BIN_STATS | BIN_REPLY, h.seq, text, k);
            break;
        }
        case BIN_PING:
            bin_send(c, BIN_PING | BIN_REPLY, h.seq, NULL, 0);
            break;
        case BIN_AUTH:
            if (policy_auth_required(ROLE_QUERY) &&
                !policy_check_token(ROLE_QUERY, conn_sockaddr(c), (const char *)payload, h.length,
                                    mono_ms())) {
                size_t plen;
                log_warn("query: authentication failed from %s", conn_peer(c, &plen));
                return binary_fail(qc, h.seq, BIN_E_AUTH, "authentication failed", n);
            }
            qc->authed = true;
            bin_send(c, BIN_AUTH | BIN_REPLY, h.seq, NULL, 0);
            break;
        default: /* LOG, LOG_MS */
            bin_send_error(c, h.seq, BIN_E_WRONG_PORT, "LOG is served on the log port");
            break;
        }
    }
    return used;
}

static size_t query_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct query_conn *qc = conn_state(c);
    size_t used = 0;
    if (n > 0 && !qc->authed && !qc->binary && p[0] == BIN_VERSION)
        qc->binary = true;
    if (qc->binary)
        return qc->quit ? n : query_input_binary(qc, p, n);
    /* One command at a time: the next waits until this one's answer is complete. */
    if (qc->quit)
        return n;
    while (used < n && !qc->x && !qc->quit && !conn_out_full(c)) {
        size_t len = 0, take = line_next(p + used, n - used, &len);
        if (qc->discarding) {
            used += take ? take : n - used;
            qc->discarding = !take;
            continue;
        }
        if (!take) {
            if (n - used > MAX_QUERY_LEN) {
                reply_error(qc, QSTYLE_KV, "command too long");
                qc->discarding = !eof;
                return n;
            }
            if (!eof)
                break;
            take = len = n - used;
        }
        if (!qc->authed) {
            int a = auth_first_line(c, ROLE_QUERY, p + used, len, "OK|authenticated\n", true);
            if (a < 0) {
                qc->quit = true;
                conn_close_after_flush(c);
                return n;
            }
            qc->authed = true;
            if (a == 0) {
                used += take;
                continue;
            }
        }
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
    .refuse = auth_refuse,
    .timeout = auth_line_timeout,
    .slot = SLOT_QUERY,
};
