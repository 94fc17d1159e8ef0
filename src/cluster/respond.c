/* respond.c - answering other nodes' queries for the partitions this node holds.
 *
 * Requests (wire.h) arrive on a NATS thread and are posted to the responder's own event loop,
 * which starts the query on the pool over the partition's local store (run.h) and sends what
 * the run yields back in messages of at most CHUNK bytes, with a heartbeat every second while
 * the run works, and ends with WT_END. Rows carry cluster ids (the partition's id map). An
 * export (a node taking the partition over) is answered with one message per request.
 *
 * A query in the cluster's order (WK_ORDER: by arrival time, then id) reads the copy in
 * chunks of its id map's runs, from the end it wants first, keeping the best `limit` matches
 * by key; the runs' arrival ranges say when no older (or newer) run can hold a better one, and
 * there it stops. A store's own order is its stream's, which follows arrival closely but not
 * exactly (batches of several nodes interleave, and their clocks differ), so it is this bound,
 * not the store's order, that makes the answer exact. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/thread.h"
#include "cluster/cluster_internal.h"
#include "cluster/wire.h"
#include "core/ev.h"
#include "core/log.h"
#include "query/pipe.h"
#include "query/qry.h"
#include "query/run.h"

#define CHUNK (512u << 10)

/* A matching entry kept by a WK_ORDER job: its key, and its encoded row in order.rows. */
struct okey {
    struct wire_key k;
    size_t off, len;
};

/* A WK_ORDER (or WK_KEY) job's progress over the copy's runs. */
struct order {
    struct wire_request req; /* Its text points into the job's data. */
    struct replica_run *runs;
    int64_t *edge;      /* Backward: prefix max of recv_max; forward: suffix min of recv_min. */
    size_t nruns, next; /* Runs [0, next) left (backward), or [next, nruns) (forward). */
    uint64_t chunk;     /* Entries the next read covers. */
    struct buf rows;
    struct okey *keys;
    size_t nkeys, capkeys;
    uint64_t fetch[2]; /* WK_KEY: the local ids still to read (0: none). */
    bool stop;         /* An error was sent: end. */
};

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
    struct order *ord;       /* WK_ORDER and WK_KEY. */
    struct wire_request req; /* Decoded; its text points into data. */
    int64_t parked_until_ms; /* Waiting for the copy to apply req.min_seq (0: not). */
    int64_t parked_at_ms;
};

static void order_free(struct order *o);

static struct {
    struct ev_loop *loop;
    pthread_t thread;
    bool started;
    struct cl_sub sub;
    struct job *jobs; /* On the loop's thread only. */
    int nparked;      /* Jobs of the list waiting for their copy. */
} rsp;

/* Longest wait of a request for its copy to apply the stream as far as the asker has seen it
 * (wire.h min_seq). A copy further behind answers with what it has. */
#define PARK_MAX_MS  2000
#define PARK_POLL_MS 1
#define TICK_MS      500

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
    order_free(j->ord);
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

static bool order_keep(struct job *j, const struct lc_entry *e);

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
    struct lc_entry g = *e;
    g.id = replica_global_id(j->rep, e->id);
    if (j->kind == WK_ORDER)
        return order_keep(j, &g);
    if (buf_len(&j->out) == 0)
        wire_answer_begin(&j->out, j->partition, j->attempt, WT_ROWS, j->seq);
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
    if (j->ord)
        j->ord->stop = true;
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

/* ------------------------------------------------------------------------------------------ */
/* Queries in the cluster's order. */

static void order_free(struct order *o)
{
    if (!o)
        return;
    free(o->runs);
    free(o->edge);
    buf_free(&o->rows);
    free(o->keys);
    free(o);
}

static bool in_bounds(const struct wire_request *r, struct wire_key k)
{
    return (!r->lo_set || wire_key_cmp(k, r->lo) > 0) && (!r->hi_set || wire_key_cmp(k, r->hi) < 0);
}

static int okey_cmp(const void *a, const void *b)
{
    return wire_key_cmp(((const struct okey *)a)->k, ((const struct okey *)b)->k);
}

/* Sort the kept rows by key and keep the best `limit` (0: all): the last ones when reading
 * backward, the first ones forward; their rows are packed again in that order. */
static int order_prune(struct order *o)
{
    if (o->nkeys == 0)
        return 0;
    qsort(o->keys, o->nkeys, sizeof(*o->keys), okey_cmp);
    uint64_t limit = o->req.limit;
    size_t from = 0, n = o->nkeys;
    if (limit && n > limit) {
        from = o->req.forward ? 0 : n - (size_t)limit;
        n = (size_t)limit;
    }
    struct buf packed = {0};
    for (size_t i = 0; i < n; i++) {
        struct okey *k = &o->keys[from + i];
        size_t off = buf_len(&packed);
        if (buf_append(&packed, buf_head(&o->rows) + k->off, k->len) < 0) {
            buf_free(&packed);
            return -ENOMEM;
        }
        o->keys[i] = (struct okey){k->k, off, k->len};
    }
    o->nkeys = n;
    buf_free(&o->rows);
    o->rows = packed;
    return 0;
}

/* A matching row (its cluster id set): kept when it lies within the bounds. */
static bool order_keep(struct job *j, const struct lc_entry *e)
{
    struct order *o = j->ord;
    struct wire_key k = {e->recv_ms, e->id};
    if (o->stop || !in_bounds(&o->req, k))
        return true;
    if (o->nkeys == o->capkeys) {
        size_t cap = o->capkeys ? 2 * o->capkeys : 1024;
        struct okey *g = realloc(o->keys, cap * sizeof(*g));
        if (!g)
            goto nomem;
        o->keys = g;
        o->capkeys = cap;
    }
    size_t off = buf_len(&o->rows);
    if (wire_answer_row(&o->rows, e) < 0)
        goto nomem;
    o->keys[o->nkeys++] = (struct okey){k, off, buf_len(&o->rows) - off};
    if (o->req.limit && o->nkeys >= 2 * o->req.limit + 4096 && order_prune(o) < 0)
        goto nomem;
    if (buf_len(&o->rows) > qrun_memory_limit()) {
        char why[160];
        snprintf(why, sizeof(why), "query needs more than %zu MiB (--query-memory)",
                 qrun_memory_limit() >> 20);
        sink_error(j, why);
    }
    return true;
nomem:
    sink_error(j, "out of memory");
    return true;
}

/* Every kept row, best `limit`, in ascending key order; then the end. */
static void order_answer(struct job *j)
{
    struct order *o = j->ord;
    if (!o->stop && order_prune(o) < 0)
        sink_error(j, "out of memory");
    if (!o->stop)
        for (size_t i = 0; i < o->nkeys; i++) {
            if (buf_len(&j->out) == 0)
                wire_answer_begin(&j->out, j->partition, j->attempt, WT_ROWS, j->seq);
            buf_append(&j->out, buf_head(&o->rows) + o->keys[i].off, o->keys[i].len);
            if (buf_len(&j->out) >= CHUNK)
                flush_chunk(j);
        }
    flush_chunk(j);
    job_end(j);
}

/* Whether the runs not read yet may still hold a row the answer needs. */
static bool order_more(struct order *o)
{
    const struct wire_request *r = &o->req;
    bool fw = r->forward;
    if (o->stop || (fw ? o->next >= o->nruns : o->next == 0))
        return false;
    int64_t edge = fw ? o->edge[o->next] : o->edge[o->next - 1];
    if (fw ? r->hi_set && edge > r->hi.recv_ms : r->lo_set && edge < r->lo.recv_ms)
        return false; /* Nothing left lies within the bounds. */
    if (!r->limit || o->nkeys < r->limit)
        return true;
    if (order_prune(o) < 0)
        return false;
    /* Full: the rest can only matter if it may beat the worst row kept. */
    return fw ? edge <= o->keys[o->nkeys - 1].k.recv_ms : edge >= o->keys[0].k.recv_ms;
}

/* The request's query: its text, narrowed to its time window. NULL with err set. */
static struct qry *request_query(const struct wire_request *r, char *err)
{
    struct qry *q = NULL;
    if (qry_compile(r->text, r->text_len, r->now_ms, &q, err) < 0)
        return NULL;
    if (r->win_from_ms != INT64_MIN || r->win_to_ms != INT64_MAX) {
        struct qry *t = qry_time_range(r->win_from_ms, r->win_to_ms, err);
        q = t ? qry_and(q, t) : q;
    }
    return q;
}

static void job_ready(void *owner);

/* Start reading the next chunk of runs, or answer when none is needed. */
static void order_step(struct ev_loop *loop, struct job *j)
{
    struct order *o = j->ord;
    char err[QRY_ERR_MAX + 64];
    if (j->kind == WK_KEY) {
        int i = o->fetch[0] ? 0 : 1;
        uint64_t id = o->fetch[i];
        struct qry *q = NULL;
        if (id && qry_compile("", 0, 0, &q, err) == 0) {
            o->fetch[i] = 0;
            if ((j->run = qrun_start_list(loop, replica_store(j->rep), q, id, id, true, 1,
                                          job_ready, j)))
                return;
        }
        flush_chunk(j);
        job_end(j);
        return;
    }
    const struct wire_request *r = &o->req;
    if (!order_more(o)) {
        order_answer(j);
        return;
    }
    bool fw = r->forward;
    /* Skip the runs wholly outside the bounds, then take runs up to o->chunk entries. */
    if (fw)
        while (o->next < o->nruns && r->lo_set && o->runs[o->next].recv_max < r->lo.recv_ms)
            o->next++;
    else
        while (o->next > 0 && r->hi_set && o->runs[o->next - 1].recv_min > r->hi.recv_ms)
            o->next--;
    if (fw ? o->next >= o->nruns : o->next == 0) {
        order_answer(j);
        return;
    }
    size_t a = fw ? o->next : o->next - 1, b = a;
    uint64_t n = o->runs[a].count;
    while (n < o->chunk && (fw ? b + 1 < o->nruns : a > 0))
        n += fw ? o->runs[++b].count : o->runs[--a].count;
    o->next = fw ? b + 1 : a;
    if (o->chunk < (4u << 20))
        o->chunk *= 2;
    uint64_t lo = o->runs[a].local_first, hi = o->runs[b].local_first + o->runs[b].count - 1;
    struct qry *q = request_query(r, err);
    if (!q) {
        sink_error(j, err);
        order_answer(j);
        return;
    }
    j->run = qrun_start_list(loop, replica_store(j->rep), q, lo, hi, fw, 0, job_ready, j);
    if (!j->run) {
        sink_error(j, "out of memory");
        order_answer(j);
    }
}

/* WK_ORDER or WK_KEY: set the job up from the copy's runs, and start. */
static void order_start(struct ev_loop *loop, struct job *j, const struct wire_request *req)
{
    struct order *o = calloc(1, sizeof(*o));
    j->ord = o;
    if (!o) {
        send_simple(j, WT_ERROR, "out of memory", 13);
        job_end(j);
        return;
    }
    o->req = *req;
    if (req->kind == WK_KEY) {
        o->fetch[0] = req->lo_set ? replica_local_id(j->rep, req->lo.id) : 0;
        o->fetch[1] = req->hi_set ? replica_local_id(j->rep, req->hi.id) : 0;
        order_step(loop, j);
        return;
    }
    o->runs = replica_runs(j->rep, &o->nruns);
    o->edge = o->nruns ? malloc(o->nruns * sizeof(*o->edge)) : NULL;
    if (o->nruns && (!o->runs || !o->edge)) {
        send_simple(j, WT_ERROR, "out of memory", 13);
        job_end(j);
        return;
    }
    if (req->forward)
        for (size_t i = o->nruns; i-- > 0;)
            o->edge[i] = i + 1 < o->nruns && o->edge[i + 1] < o->runs[i].recv_min
                             ? o->edge[i + 1]
                             : o->runs[i].recv_min;
    else
        for (size_t i = 0; i < o->nruns; i++)
            o->edge[i] =
                i && o->edge[i - 1] > o->runs[i].recv_max ? o->edge[i - 1] : o->runs[i].recv_max;
    o->next = req->forward ? 0 : o->nruns;
    o->chunk = 65536;
    order_step(loop, j);
}

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
    if (st == QX_DONE && j->ord) { /* A chunk (or an entry) read: the next one. */
        qrun_close(j->run);
        j->run = NULL;
        order_step(rsp.loop, j);
    } else if (st == QX_DONE) {
        flush_chunk(j);
        job_end(j);
    }
}

/* An export: the copy's last id and sequence and where a message starts, or its entries from
 * an id on (wire.h). */
static void export_start(struct ev_loop *loop, struct job *j, struct store *st,
                         const struct wire_request *req)
{
    if (req->win_to_ms == 0) {
        uint64_t first, last;
        store_id_range(st, &first, &last);
        uint64_t info[3] = {last, 0, 0};
        if (req->limit > 0) { /* What is whole and queryable, and where message limit starts. */
            info[1] = replica_whole_seq(j->rep, &info[0]);
            info[2] = replica_local_of_seq(j->rep, req->limit);
        } else { /* As nodes built before the third field ask, and read exactly two. */
            replica_seq_of(j->rep, last, &info[1]);
        }
        send_simple(j, WT_EXPORT_INFO, info, req->limit > 0 ? 24 : 16);
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

static void job_run(struct ev_loop *loop, struct job *j);
static void tick(struct ev_loop *loop, void *arg);

/* On the responder's loop: a request taken. It runs once the copy has applied its stream up to
 * the request's min_seq, so an asker's answer holds every line the asker has seen confirmed
 * or delivered live: a line acknowledged on one node is then in every query made there after
 * the acknowledgement, and a replay misses no line that the live feed brought before it
 * started. */
static void job_start(struct ev_loop *loop, void *arg)
{
    struct job *j = arg;
    j->next = rsp.jobs;
    if (rsp.jobs)
        rsp.jobs->prev = j;
    rsp.jobs = j;
    j->last_sent_ms = mono_ms();
    char err[QRY_ERR_MAX + 64];
    int rc = wire_request_decode(j->data, j->len, &j->req, err);
    if (rc == 0 && j->req.version > cl.wire_version) { /* A test playing an older node. */
        snprintf(err, sizeof(err), "request too short or of an unknown version");
        rc = -EINVAL;
    }
    if (rc == 0 && j->req.version == 1)
        atomic_fetch_add(&cl.queries_in_v1, 1);
    if (rc < 0) {
        send_simple(j, WT_ERROR, err, strlen(err));
        job_end(j);
        return;
    }
    j->rep = j->req.partition < cl.partitions && !atomic_load(&cl.quiet)
                 ? replica_acquire(j->req.partition)
                 : NULL;
    if (!j->rep) {
        send_simple(j, WT_NOT_HELD, NULL, 0);
        job_end(j);
        return;
    }
    if (!replica_has_seq(j->rep, j->req.min_seq)) {
        j->parked_at_ms = mono_ms();
        j->parked_until_ms = j->parked_at_ms + PARK_MAX_MS;
        if (rsp.nparked++ == 0)
            ev_set_tick(loop, PARK_POLL_MS, tick, NULL);
        return;
    }
    job_run(loop, j);
}

/* From the tick: run the parked jobs whose copy has caught up, or that waited long enough. */
static void unpark(struct ev_loop *loop, int64_t now)
{
    for (struct job *j = rsp.jobs, *next; j; j = next) {
        next = j->next; /* job_run may end j. */
        if (!j->parked_until_ms ||
            (now < j->parked_until_ms && !replica_has_seq(j->rep, j->req.min_seq)))
            continue;
        j->parked_until_ms = 0;
        uint64_t waited = (uint64_t)(now - j->parked_at_ms);
        atomic_fetch_add(&cl.queries_waited, 1);
        atomic_fetch_add(&cl.query_wait_ms_sum, waited);
        if (waited > atomic_load(&cl.query_wait_max_ms))
            atomic_store(&cl.query_wait_max_ms, waited); /* Only this thread writes it. */
        if (--rsp.nparked == 0)
            ev_set_tick(loop, TICK_MS, tick, NULL);
        job_run(loop, j);
    }
}

static void job_run(struct ev_loop *loop, struct job *j)
{
    const struct wire_request req = j->req;
    char err[QRY_ERR_MAX + 64];
    struct store *st = replica_store(j->rep);
    if (req.kind == WK_EXPORT) {
        export_start(loop, j, st, &req);
        return;
    }
    if (req.kind == WK_ORDER || req.kind == WK_KEY) {
        order_start(loop, j, &req);
        return;
    }
    struct qry *q = request_query(&req, err);
    if (!q) {
        send_simple(j, WT_ERROR, err, strlen(err));
        job_end(j);
        return;
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

/* Every half second (every millisecond while jobs are parked): a heartbeat for jobs that have
 * sent nothing for a second, and the parked jobs whose wait is over. */
static void tick(struct ev_loop *loop, void *arg)
{
    (void)arg;
    int64_t now = mono_ms();
    for (struct job *j = rsp.jobs; j; j = j->next)
        if (now - j->last_sent_ms >= 1000)
            send_simple(j, WT_ALIVE, NULL, 0);
    if (rsp.nparked)
        unpark(loop, now);
    if (atomic_load(&cl.stopping))
        ev_stop(rsp.loop);
}

static void *responder(void *arg)
{
    (void)arg;
    thread_name("responder");
    ev_run(rsp.loop);
    return NULL;
}

int respond_start(void)
{
    rsp.loop = ev_new();
    if (!rsp.loop)
        return -1;
    rsp.nparked = 0; /* respond_stop freed any parked jobs of an earlier start. */
    ev_set_tick(rsp.loop, TICK_MS, tick, NULL);
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

void respond_stop(void)
{
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
