/* scatter.c - a query on any node answers for the whole cluster.
 *
 * Asking (the query hook, run.h): for each partition, one live node that holds it caught up
 * is sent the query over core NATS request/reply (to "<cluster>.q.<node>", answers to an inbox
 * of this query's own). A node that does not hold the partition any more says so, and one
 * that goes silent for PEER_SILENCE_MS is given up; either way the next copy is asked. When
 * every partition has answered, the answers are merged:
 *   COUNT   the sum;
 *   SEARCH  the partitions' newest matches, merged by arrival time (each partition's own
 *           order kept), the newest `limit` of them, oldest first;
 *   pipes   each partition's unfinished part (qagg_encode), merged, then finished here.
 * A partition no copy answered for makes the query fail with a sentence naming it: an answer
 * is never silently short.
 *
 * Answering: requests arrive on a NATS thread and are posted to the responder's own event
 * loop, which starts the query on the pool over the partition's local store (run.h) and sends
 * what the run yields back in messages of at most CHUNK bytes, with a heartbeat every second
 * while the run works, and ends with WT_END. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "cluster/cluster_internal.h"
#include "cluster/wire.h"
#include "core/ev.h"
#include "core/log.h"
#include "query/pipe.h"
#include "query/qry.h"
#include "query/run.h"

#define CHUNK           (512u << 10)
#define PEER_SILENCE_MS 3000
#define MAX_TRIES       8

/* ------------------------------------------------------------------------------------------ */
/* Asking. */

enum pstate { P_WAIT, P_DONE, P_MISSING };

struct gpart {
    enum pstate state;
    uint8_t attempt;
    char tried[MAX_TRIES][CL_NAME_MAX];
    int ntried;
    uint32_t got; /* Messages of the current attempt taken. */
    uint64_t count;
    struct buf rows; /* WT_ROWS bodies, back to back. */
    struct buf part; /* WT_PART bodies, back to back. */
};

struct gather {
    struct gather *next; /* Active gathers (under gmu). */
    int refs;            /* The list's, and each callback's while it runs (under gmu). */
    pthread_mutex_t mu;
    struct qrun *r;
    enum qrun_want want;
    natsSubscription *sub;
    char inbox[64];
    struct buf req; /* The request, re-sent to other copies. */
    struct gpart parts[CL_MAX_PARTITIONS];
    int waiting;
    bool cancelled, finishing;
    char err[256];
    size_t mem;
    int64_t deadline_ms;
};

/* Active gathers: a callback may still arrive for one that ended, and the node's stop must end
 * the ones still waiting. */
static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static struct gather *gathers;

/* Ask the next copy of partition p (g->mu held); marks it missing when none is left. */
static void ask(struct gather *g, int p)
{
    struct gpart *gp = &g->parts[p];
    char cand[MAX_TRIES][CL_NAME_MAX];
    int n = member_candidates(p, cand, MAX_TRIES);
    for (int i = 0; i < n; i++) {
        bool tried = false;
        for (int t = 0; t < gp->ntried; t++)
            tried |= strcmp(gp->tried[t], cand[i]) == 0;
        if (tried || gp->ntried == MAX_TRIES)
            continue;
        snprintf(gp->tried[gp->ntried++], CL_NAME_MAX, "%.64s", cand[i]);
        gp->attempt++;
        gp->got = 0;
        gp->count = 0;
        gp->rows.start = gp->rows.end = 0;
        gp->part.start = gp->part.end = 0;
        char *h = buf_head(&g->req);
        h[2] = (char)p;
        h[3] = (char)gp->attempt;
        char subj[CL_SUBJ_MAX], reply[96];
        snprintf(subj, sizeof(subj), "%.64s.q.%.64s", cl.name, cand[i]);
        /* The partition in the reply subject: NATS's "no responders" for a node that is gone
         * names it, so the next copy is asked at once. */
        snprintf(reply, sizeof(reply), "%s.%d", g->inbox, p);
        if (natsConnection_PublishRequest(cl.nc, subj, reply, h, (int)buf_len(&g->req)) == NATS_OK)
            return;
    }
    gp->state = P_MISSING;
    g->waiting--;
}

/* Every row of every partition, merged by arrival (each partition's own order kept); of
 * those, the newest `limit` (0: all) go to the run: SEARCH (with_count) and forward lists
 * oldest first, other lists newest first. */
static void put_rows(struct gather *g, uint64_t limit, bool with_count, bool forward)
{
    struct cursor {
        const char *at, *end;
        struct lc_entry e;
        bool has;
    } cur[CL_MAX_PARTITIONS];
    size_t total = 0, cap = 0;
    struct lc_entry *rows = NULL;
    for (int p = 0; p < cl.partitions; p++) {
        struct cursor *c = &cur[p];
        c->at = buf_head(&g->parts[p].rows);
        c->end = c->at + buf_len(&g->parts[p].rows);
        c->has = wire_answer_next_row(&c->at, c->end, &c->e) == 1;
    }
    for (;;) {
        int best = -1;
        for (int p = 0; p < cl.partitions; p++)
            if (cur[p].has && (best < 0 || cur[p].e.recv_ms < cur[best].e.recv_ms))
                best = p;
        if (best < 0)
            break;
        if (total == cap) {
            cap = cap ? 2 * cap : 1024;
            struct lc_entry *grown = realloc(rows, cap * sizeof(*rows));
            if (!grown) {
                free(rows);
                qrun_put_error(g->r, "out of memory");
                return;
            }
            rows = grown;
        }
        rows[total++] = cur[best].e;
        cur[best].has = wire_answer_next_row(&cur[best].at, cur[best].end, &cur[best].e) == 1;
    }
    size_t first = limit && total > limit ? total - (size_t)limit : 0;
    if (with_count)
        qrun_put_count(g->r, total - first);
    if (forward || with_count)
        for (size_t i = first; i < total; i++)
            qrun_put_row(g->r, &rows[i]);
    else
        for (size_t i = total; i-- > first;)
            qrun_put_row(g->r, &rows[i]);
    free(rows);
}

static void put_table(struct gather *g)
{
    const struct qpipes *pipes = qry_pipes(qrun_query(g->r));
    struct qagg *merged = NULL;
    char err[QRY_ERR_MAX] = "";
    for (int p = 0; p < cl.partitions && !err[0]; p++) {
        struct gpart *gp = &g->parts[p];
        struct qagg *a =
            qagg_decode(pipes, buf_head(&gp->part), buf_len(&gp->part), qrun_memory_limit(), err);
        if (!a)
            break;
        if (!merged) {
            merged = a;
        } else if (qagg_merge(merged, a) < 0) {
            const char *why = qagg_error(merged);
            snprintf(err, sizeof(err), "%s", why ? why : "out of memory");
        }
    }
    struct qtable *t = NULL;
    if (!err[0] && !merged && !(merged = qagg_new(pipes, qrun_memory_limit())))
        snprintf(err, sizeof(err), "out of memory");
    if (!err[0] && merged) {
        t = qagg_finish(merged, err);
        merged = NULL;
    }
    qagg_free(merged);
    if (t)
        qrun_put_table(g->r, t);
    else
        qrun_put_error(g->r, err[0] ? err : "out of memory");
}

static void gather_free(struct gather *g);

/* A reference to g if it is still active; false otherwise. */
static bool gather_get(struct gather *g)
{
    pthread_mutex_lock(&gmu);
    struct gather *a = gathers;
    while (a && a != g)
        a = a->next;
    if (a)
        g->refs++;
    pthread_mutex_unlock(&gmu);
    return a != NULL;
}

static void gather_put(struct gather *g)
{
    pthread_mutex_lock(&gmu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&gmu);
    if (last)
        gather_free(g);
}

static void gather_unlist(struct gather *g)
{
    pthread_mutex_lock(&gmu);
    for (struct gather **at = &gathers; *at; at = &(*at)->next)
        if (*at == g) {
            *at = g->next;
            break;
        }
    pthread_mutex_unlock(&gmu);
}

static void gather_free(struct gather *g)
{
    for (int p = 0; p < CL_MAX_PARTITIONS; p++) {
        buf_free(&g->parts[p].rows);
        buf_free(&g->parts[p].part);
    }
    buf_free(&g->req);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* Everything is in (or given up): answer, and let go. On the inbox's thread, g->mu not held. */
static void finish(struct gather *g)
{
    char missing[512] = "";
    size_t len = 0;
    int nmissing = 0;
    for (int p = 0; p < cl.partitions; p++)
        if (g->parts[p].state == P_MISSING) {
            nmissing++;
            if (len + 8 < sizeof(missing))
                len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%d",
                                        len ? ", " : "", p);
        }
    if (g->cancelled) {
        qrun_put_error(g->r, "query cancelled");
    } else if (g->err[0]) {
        qrun_put_error(g->r, g->err);
    } else if (nmissing && (g->want == QW_COUNT || !qry_partial_ok(qrun_query(g->r)))) {
        char why[640];
        snprintf(why, sizeof(why),
                 "no copy of partition%s %s answered; the answer would be incomplete",
                 nmissing > 1 ? "s" : "", missing);
        atomic_fetch_add(&cl.partitions_missing, (uint64_t)nmissing);
        qrun_put_error(g->r, why);
    } else if (g->want == QW_COUNT) {
        uint64_t n = 0, limit = qry_limit(qrun_query(g->r));
        for (int p = 0; p < cl.partitions; p++)
            n += g->parts[p].count;
        qrun_put_count(g->r, limit && n > limit ? limit : n); /* Each part stopped there. */
    } else {
        if (nmissing) { /* The asker shows what the others answered, and says what lacks. */
            atomic_fetch_add(&cl.partitions_missing, (uint64_t)nmissing);
            qrun_put_partial(g->r, missing);
        }
        bool forward;
        uint64_t max;
        qrun_list_params(g->r, &forward, &max);
        if (g->want == QW_ROWS)
            put_rows(g, qry_limit(qrun_query(g->r)), true, true);
        else if (g->want == QW_LIST)
            put_rows(g, max, false, forward);
        else
            put_table(g);
    }
    if (g->sub) {
        natsSubscription_Unsubscribe(g->sub);
        natsSubscription_Destroy(g->sub);
        g->sub = NULL;
    }
    qrun_put_end(g->r);
    g->r = NULL;
    gather_unlist(g);
    gather_put(g); /* The list's reference. */
}

/* One answer message, or (msg NULL) PEER_SILENCE_MS without one. */
static void on_answer(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct gather *g = arg;
    if (!gather_get(g)) { /* A late message for a query that ended. */
        natsMsg_Destroy(msg);
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (g->finishing) {
        pthread_mutex_unlock(&g->mu);
        natsMsg_Destroy(msg);
        gather_put(g);
        return;
    }
    struct wire_answer a;
    char err[128];
    const char *dot = msg ? strrchr(natsMsg_GetSubject(msg), '.') : NULL;
    int from = dot ? atoi(dot + 1) : -1;
    if (!msg) {
        for (int p = 0; p < cl.partitions; p++)
            if (g->parts[p].state == P_WAIT)
                ask(g, p); /* The next copy. */
    } else if (natsMsg_IsNoResponders(msg)) {
        if (from >= 0 && from < cl.partitions && g->parts[from].state == P_WAIT)
            ask(g, from); /* That node is gone. */
    } else if (wire_answer_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &a,
                                  err) == 0 &&
               a.partition < cl.partitions && g->parts[a.partition].state == P_WAIT &&
               a.attempt == g->parts[a.partition].attempt && a.type != WT_ALIVE) {
        struct gpart *gp = &g->parts[a.partition];
        bool lost = a.seq != gp->got++;
        uint64_t v;
        if (lost) {
            ask(g, a.partition);
        } else if (a.type == WT_COUNT) {
            memcpy(&v, a.body, 8);
            gp->count += v;
        } else if (a.type == WT_ROWS || a.type == WT_PART) {
            struct buf *b = a.type == WT_ROWS ? &gp->rows : &gp->part;
            g->mem += a.body_len;
            if (g->mem > qrun_memory_limit())
                snprintf(g->err, sizeof(g->err),
                         "query needs more than %zu MiB (--query-memory) to merge the "
                         "partitions' answers",
                         qrun_memory_limit() >> 20);
            else if (buf_append(b, a.body, a.body_len) < 0)
                snprintf(g->err, sizeof(g->err), "out of memory");
        } else if (a.type == WT_ERROR) {
            snprintf(g->err, sizeof(g->err), "%.*s", (int)(a.body_len < 200 ? a.body_len : 200),
                     a.body);
        } else if (a.type == WT_NOT_HELD) {
            ask(g, a.partition);
        } else if (a.type == WT_END) {
            uint32_t sent;
            memcpy(&sent, a.body, 4);
            if (sent + 1 == gp->got) {
                gp->state = P_DONE;
                g->waiting--;
            } else {
                ask(g, a.partition);
            }
        }
    }
    if (!g->err[0] && mono_ms() > g->deadline_ms)
        snprintf(g->err, sizeof(g->err), "query timed out after %" PRId64 " s (--query-timeout)",
                 cl.cfg->query_timeout_ms / 1000);
    bool done = g->waiting == 0 || g->err[0] || g->cancelled;
    if (done)
        g->finishing = true;
    pthread_mutex_unlock(&g->mu);
    natsMsg_Destroy(msg);
    if (done)
        finish(g);
    gather_put(g);
}

static void *gather_start(struct qrun *r, enum qrun_want want)
{
    const struct qry *q = qrun_query(r);
    const struct qry_source *src = qry_source(q);
    const char *refuse = NULL;
    if (!src->portable)
        refuse = "this form of query cannot run across a cluster; use the query language "
                 "(SEARCH/COUNT with a query text)";
    else if (want == QW_COUNT && qry_pipes(q))
        refuse = "COUNT takes a filter without pipes; use SEARCH for a table";
    else if (!atomic_load(&cl.ready) || atomic_load(&cl.quiet))
        refuse = "the cluster is not reachable yet";
    struct gather *g = refuse ? NULL : calloc(1, sizeof(*g));
    if (!g) {
        qrun_put_error(r, refuse ? refuse : "out of memory");
        qrun_put_end(r);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    g->r = r;
    g->want = want;
    g->refs = 1;
    int64_t to = cl.cfg->query_timeout_ms;
    g->deadline_ms = mono_ms() + (to ? to : (int64_t)1 << 40);
    bool forward;
    uint64_t max;
    qrun_list_params(r, &forward, &max);
    struct wire_request req = {.kind = want == QW_COUNT   ? WK_COUNT
                                       : want == QW_TABLE ? WK_PART
                                                          : WK_ROWS,
                               .now_ms = src->now_ms,
                               .limit = want == QW_LIST ? max : qry_limit(q),
                               .win_from_ms = src->win_from_ms,
                               .win_to_ms = src->win_to_ms,
                               .text = src->text,
                               .text_len = src->text_len};
    natsInbox *inbox = NULL;
    if (wire_request_encode(&g->req, &req) < 0 || natsInbox_Create(&inbox) != NATS_OK) {
        gather_free(g);
        qrun_put_error(r, "out of memory");
        qrun_put_end(r);
        return NULL;
    }
    snprintf(g->inbox, sizeof(g->inbox), "%s", (const char *)inbox);
    natsInbox_Destroy(inbox);
    atomic_fetch_add(&cl.queries_out, 1);
    pthread_mutex_lock(&gmu);
    g->next = gathers;
    gathers = g;
    g->refs++; /* Ours, until the requests are out. */
    pthread_mutex_unlock(&gmu);
    pthread_mutex_lock(&g->mu);
    char inbox_all[80];
    snprintf(inbox_all, sizeof(inbox_all), "%s.*", g->inbox);
    natsStatus s =
        natsConnection_SubscribeTimeout(&g->sub, cl.nc, inbox_all, PEER_SILENCE_MS, on_answer, g);
    if (s != NATS_OK) {
        g->finishing = true;
        snprintf(g->err, sizeof(g->err), "the cluster is not reachable");
        pthread_mutex_unlock(&g->mu);
        finish(g);
        gather_put(g);
        return NULL;
    }
    g->waiting = cl.partitions;
    for (int p = 0; p < cl.partitions; p++)
        ask(g, p);
    bool done = g->waiting == 0;
    if (done)
        g->finishing = true;
    pthread_mutex_unlock(&g->mu);
    if (done) { /* Nobody holds anything: no answer will come. */
        finish(g);
        gather_put(g);
        return NULL;
    }
    gather_put(g);
    return g; /* Alive until qrun_put_end, which the run's lock orders before any cancel. */
}

/* The node stops: end every gather still waiting, as cancelled. */
static void gathers_end_all(void)
{
    struct gather *held[256];
    int n = 0;
    pthread_mutex_lock(&gmu);
    for (struct gather *g = gathers; g && n < 256; g = g->next) {
        g->refs++;
        held[n++] = g;
    }
    pthread_mutex_unlock(&gmu);
    for (int i = 0; i < n; i++) {
        struct gather *g = held[i];
        pthread_mutex_lock(&g->mu);
        bool mine = !g->finishing;
        g->finishing = true;
        g->cancelled = true;
        pthread_mutex_unlock(&g->mu);
        if (mine)
            finish(g);
        gather_put(g);
    }
}

/* Under the run's lock (run.c): only flag it; the inbox's thread ends it. */
static void gather_cancel(void *h)
{
    struct gather *g = h;
    pthread_mutex_lock(&g->mu);
    g->cancelled = true;
    pthread_mutex_unlock(&g->mu);
}

static const struct qrun_remote gather_ops = {gather_start, gather_cancel};

/* ------------------------------------------------------------------------------------------ */
/* Answering. */

struct job {
    struct job *next, *prev; /* Active jobs, for heartbeats. */
    char *reply;
    uint8_t kind, partition, attempt;
    struct qrun *run;
    struct replica *rep; /* Held while the run reads it. */
    uint32_t seq;
    struct buf out;
    int64_t last_sent_ms;
    bool failed;
    char *data; /* The request. */
    size_t len;
};

static struct {
    struct ev_loop *loop;
    pthread_t thread;
    bool started;
    struct cl_sub sub;
    struct job *jobs; /* On the loop's thread only. */
} rsp;

static void send_msg(struct job *j, struct buf *b)
{
    if (natsConnection_Publish(cl.nc, j->reply, buf_head(b), (int)buf_len(b)) != NATS_OK)
        j->failed = true; /* The asker notices the gap and asks another copy. */
    j->last_sent_ms = mono_ms();
}

static void send_simple(struct job *j, uint8_t type, const void *body, size_t len)
{
    struct buf b = {0};
    wire_answer_begin(&b, j->partition, j->attempt, type, j->seq);
    if (type != WT_ALIVE)
        j->seq++;
    buf_append(&b, body, len);
    send_msg(j, &b);
    buf_free(&b);
}

/* Send the chunk being filled (of type type), if it holds anything. */
static void flush_chunk(struct job *j)
{
    if (buf_len(&j->out) > 8) {
        send_msg(j, &j->out);
        j->seq++;
    }
    j->out.start = j->out.end = 0;
}

static void job_end(struct job *j)
{
    uint32_t sent = j->seq;
    if (j->kind != WK_EXPORT) /* An export is one message, answering a plain request. */
        send_simple(j, WT_END, &sent, 4);
    natsConnection_Flush(cl.nc);
    if (j->prev)
        j->prev->next = j->next;
    else
        rsp.jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    qrun_close(j->run);
    replica_release(j->rep);
    buf_free(&j->out);
    free(j->reply);
    free(j->data);
    free(j);
}

static void sink_count(void *arg, uint64_t n)
{
    struct job *j = arg;
    if (j->kind == WK_COUNT)
        send_simple(j, WT_COUNT, &n, 8);
}

static bool sink_row(void *arg, const struct lc_entry *e)
{
    struct job *j = arg;
    if (j->kind == WK_EXPORT) { /* One message of about CHUNK bytes: then it stops. */
        if (buf_len(&j->out) == 0)
            wire_answer_begin(&j->out, j->partition, j->attempt, WT_EXPORT_ROWS, 0);
        struct lc_entry g = *e;
        uint64_t seq = 0;
        g.id = replica_global_id(j->rep, e->id);
        replica_seq_of(j->rep, e->id, &seq);
        wire_export_row(&j->out, &g, seq, e->id);
        return buf_len(&j->out) < CHUNK;
    }
    if (buf_len(&j->out) == 0)
        wire_answer_begin(&j->out, j->partition, j->attempt, WT_ROWS, j->seq);
    struct lc_entry g = *e;
    g.id = replica_global_id(j->rep, e->id);
    wire_answer_row(&j->out, &g);
    if (buf_len(&j->out) >= CHUNK)
        flush_chunk(j);
    return true;
}

static void sink_table(void *arg, const struct qtable *t)
{
    (void)t;
    send_simple(arg, WT_ERROR, "unexpected table", 16);
}

static bool sink_table_row(void *arg, const struct qtable *t, size_t r)
{
    (void)arg;
    (void)t;
    (void)r;
    return true;
}

static void sink_error(void *arg, const char *why)
{
    struct job *j = arg;
    flush_chunk(j);
    send_simple(j, WT_ERROR, why, strlen(why));
}

static void sink_result(void *arg, void *part)
{
    struct job *j = arg;
    struct buf enc = {0};
    if (qagg_encode(part, &enc) < 0) {
        sink_error(j, "out of memory");
    } else {
        for (size_t off = 0; off < buf_len(&enc); off += CHUNK) {
            size_t n = buf_len(&enc) - off < CHUNK ? buf_len(&enc) - off : CHUNK;
            wire_answer_begin(&j->out, j->partition, j->attempt, WT_PART, j->seq);
            buf_append(&j->out, buf_head(&enc) + off, n);
            flush_chunk(j);
        }
        if (buf_len(&enc) == 0) { /* An empty part still says so. */
            wire_answer_begin(&j->out, j->partition, j->attempt, WT_PART, j->seq);
            send_msg(j, &j->out);
            j->seq++;
            j->out.start = j->out.end = 0;
        }
    }
    buf_free(&enc);
    qagg_free(part);
}

static const struct qrun_sink job_sink = {.count = sink_count,
                                          .row = sink_row,
                                          .table = sink_table,
                                          .table_row = sink_table_row,
                                          .error = sink_error,
                                          .result = sink_result};

static void job_ready(void *owner)
{
    struct job *j = owner;
    enum qexec_status st = qrun_drain(j->run, &job_sink, j);
    if (j->kind == WK_EXPORT && st != QX_MORE) { /* Full or done: the one answer. */
        if (buf_len(&j->out) == 0)
            wire_answer_begin(&j->out, j->partition, j->attempt, WT_EXPORT_ROWS, 0);
        send_msg(j, &j->out);
        j->out.start = j->out.end = 0;
        job_end(j);
        return;
    }
    if (st == QX_DONE) {
        flush_chunk(j);
        job_end(j);
    }
}

/* An export: the copy's last id and sequence, or its entries from an id on (wire.h). */
static void export_start(struct ev_loop *loop, struct job *j, struct store *st,
                         const struct wire_request *req)
{
    if (req->win_to_ms == 0) {
        struct store_stats ss;
        store_get_stats(st, &ss);
        uint64_t info[2] = {ss.last_id, 0};
        replica_seq_of(j->rep, ss.last_id, &info[1]);
        send_simple(j, WT_EXPORT_INFO, info, sizeof(info));
        job_end(j);
        return;
    }
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    qry_compile("", 0, 0, &q, err); /* Every entry. */
    uint64_t lo = (uint64_t)req->win_from_ms, hi = (uint64_t)req->win_to_ms;
    j->run =
        q && lo && lo <= hi ? qrun_start_list(loop, st, q, lo, hi, true, 0, job_ready, j) : NULL;
    if (!j->run) {
        if (q && !(lo && lo <= hi))
            qry_free(q);
        send_simple(j, WT_ERROR, "bad export range", 16);
        job_end(j);
    }
}

/* On the responder's loop: start the query the request asks for. */
static void job_start(struct ev_loop *loop, void *arg)
{
    struct job *j = arg;
    j->next = rsp.jobs;
    if (rsp.jobs)
        rsp.jobs->prev = j;
    rsp.jobs = j;
    j->last_sent_ms = mono_ms();
    struct wire_request req;
    char err[QRY_ERR_MAX + 64];
    if (wire_request_decode(j->data, j->len, &req, err) < 0) {
        send_simple(j, WT_ERROR, err, strlen(err));
        job_end(j);
        return;
    }
    j->rep = req.partition < cl.partitions && !atomic_load(&cl.quiet)
                 ? replica_acquire(req.partition)
                 : NULL;
    struct store *st = j->rep ? replica_store(j->rep) : NULL;
    if (!st) {
        send_simple(j, WT_NOT_HELD, NULL, 0);
        job_end(j);
        return;
    }
    if (req.kind == WK_EXPORT) {
        export_start(loop, j, st, &req);
        return;
    }
    struct qry *q = NULL;
    if (qry_compile(req.text, req.text_len, req.now_ms, &q, err) < 0) {
        send_simple(j, WT_ERROR, err, strlen(err));
        job_end(j);
        return;
    }
    if (req.win_from_ms != INT64_MIN || req.win_to_ms != INT64_MAX) {
        struct qry *t = qry_time_range(req.win_from_ms, req.win_to_ms, err);
        q = t ? qry_and(q, t) : q;
    }
    if (req.limit && !qry_pipes(q))
        qry_set_limit(q, req.limit);
    if (req.kind == WK_PART)
        j->run = qrun_start_part(loop, st, q, job_ready, j);
    else
        j->run = qrun_start(loop, st, q, req.kind == WK_COUNT, 0, 0, job_ready, j);
    if (!j->run) {
        send_simple(j, WT_ERROR, "out of memory", 13);
        job_end(j);
    }
}

/* A request, on a NATS thread: hand it to the loop. */
static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    (void)arg;
    const char *reply = natsMsg_GetReply(msg);
    struct job *j = reply ? calloc(1, sizeof(*j)) : NULL;
    if (j) {
        j->len = (size_t)natsMsg_GetDataLength(msg);
        j->data = malloc(j->len + 1);
        j->reply = strdup(reply);
        if (j->len >= 4 && j->data) {
            memcpy(j->data, natsMsg_GetData(msg), j->len);
            j->partition = (uint8_t)j->data[2];
            j->attempt = (uint8_t)j->data[3];
            j->kind = (uint8_t)j->data[1];
        }
        atomic_fetch_add(&cl.queries_in, 1);
        if (!j->data || !j->reply || j->len < 4 || ev_post(rsp.loop, job_start, j) < 0) {
            free(j->data);
            free(j->reply);
            free(j);
        }
    }
    natsMsg_Destroy(msg);
}

/* Every half second: a heartbeat for jobs that have sent nothing for a second. */
static void tick(struct ev_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    int64_t now = mono_ms();
    for (struct job *j = rsp.jobs; j; j = j->next)
        if (now - j->last_sent_ms >= 1000)
            send_simple(j, WT_ALIVE, NULL, 0);
    if (atomic_load(&cl.stopping))
        ev_stop(rsp.loop);
}

static void *responder(void *arg)
{
    (void)arg;
    ev_run(rsp.loop);
    return NULL;
}

int scatter_start(void)
{
    qrun_set_remote(&gather_ops);
    rsp.loop = ev_new();
    if (!rsp.loop)
        return -1;
    ev_set_tick(rsp.loop, 500, tick, NULL);
    if (pthread_create(&rsp.thread, NULL, responder, NULL) != 0) {
        ev_free(rsp.loop);
        rsp.loop = NULL;
        return -1;
    }
    rsp.started = true;
    char subj[CL_SUBJ_MAX];
    snprintf(subj, sizeof(subj), "%s.q.%s", cl.name, cl.node);
    natsStatus s = natsConnection_Subscribe(&rsp.sub.sub, cl.nc, subj, on_request, NULL);
    if (s == NATS_OK)
        cl_sub_watch(&rsp.sub);
    if (s != NATS_OK) {
        log_error("cluster: cannot take queries on %s: %s", subj, natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

void scatter_stop(void)
{
    gathers_end_all();
    bool ended = cl_sub_end(&rsp.sub); /* Its handler posts to the loop: */
    if (rsp.started) {
        pthread_join(rsp.thread, NULL); /* The tick stops the loop once stopping is set. */
        rsp.started = false;
    }
    while (rsp.jobs) { /* Runs the pool already ended (qpool_stop came first). */
        struct job *j = rsp.jobs;
        qrun_close(j->run);
        j->run = NULL;
        replica_release(j->rep);
        rsp.jobs = j->next;
        buf_free(&j->out);
        free(j->reply);
        free(j->data);
        free(j);
    }
    if (ended) /* else a request may still be posted to it: keep it. */
        ev_free(rsp.loop);
    rsp.loop = NULL;
}
