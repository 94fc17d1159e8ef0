/* scatter.c - a query on any node answers for the whole cluster.
 *
 * Asking (the query hook, run.h): for each partition, one live node that holds it caught up
 * is sent the query over core NATS request/reply (to "<cluster>.q.<node>", answers to an inbox
 * of this query's own). A node that does not hold the partition any more says so, and one
 * that goes silent for PEER_SILENCE_MS is given up; either way the next copy is asked. When
 * every partition has answered, the answers are merged:
 *   COUNT   the sum;
 *   SEARCH  with a limit, each partition's newest `limit` matches in the cluster's order
 *           (as a list's, below), merged: the newest `limit`, oldest first; without one, every
 *           match of every partition, merged by key;
 *   lists   (qrun_start_order) each partition's best matches in the cluster's order, by key
 *           (arrival time, then id): merged by key, the first or last `max` of them. A list
 *           between entries named by id first asks every partition for those entries
 *           (WK_KEY), to learn their keys;
 *   pipes   each partition's unfinished part (qagg_encode), merged, then finished here.
 * A partition no copy answered for makes the query fail with a sentence naming it (or, for an
 * asker that takes it, a partial answer that names it): an answer is never silently short.
 * The other side, answering, is respond.c. */
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
    bool keys;                 /* A list's first round: looking up its bounds' keys. */
    struct wire_request order; /* A list's request, its bounds set once known. */
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
    uint8_t wire[MAX_TRIES];
    int n = member_candidates(p, cand, wire, MAX_TRIES);
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
        wire_request_address(&g->req, (uint8_t)p, gp->attempt, atomic_load(&cl.seen_seq[p]));
        char subj[CL_SUBJ_MAX], reply[96];
        snprintf(subj, sizeof(subj), "%.64s.q.%.64s", cl.name, cand[i]);
        /* The partition in the reply subject: NATS's "no responders" for a node that is gone
         * names it, so the next copy is asked at once. */
        snprintf(reply, sizeof(reply), "%s.%d", g->inbox, p);
        /* A copy on a node of an older build gets the request in the version it reads. */
        const struct buf *req = &g->req;
        struct buf older = {0};
        uint8_t version = member_wire_for(wire[i]);
        if (version != buf_head(&g->req)[0]) {
            if (wire_request_as_version(&g->req, version, &older) < 0) {
                buf_free(&older);
                continue;
            }
            req = &older;
        }
        natsStatus s =
            natsConnection_PublishRequest(cl.nc, subj, reply, buf_head(req), (int)buf_len(req));
        buf_free(&older);
        if (s == NATS_OK)
            return;
    }
    gp->state = P_MISSING;
    g->waiting--;
}

/* Every row of every partition, merged by key (each partition's own order kept: a list's
 * answers come in key order); of those, `limit` (0: all) go to the run, the first ones when
 * from_start, else the last ones; oldest first when ascending. SEARCH (with_count): the last
 * ones, oldest first. */
static void put_rows(struct gather *g, uint64_t limit, bool with_count, bool from_start,
                     bool ascending)
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
            if (cur[p].has &&
                (best < 0 ||
                 wire_key_cmp((struct wire_key){cur[p].e.recv_ms, cur[p].e.id},
                              (struct wire_key){cur[best].e.recv_ms, cur[best].e.id}) < 0))
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
    size_t n = limit && total > limit ? (size_t)limit : total;
    size_t first = from_start ? 0 : total - n;
    if (with_count)
        qrun_put_count(g->r, n);
    if (ascending)
        for (size_t i = first; i < first + n; i++)
            qrun_put_row(g->r, &rows[i]);
    else
        for (size_t i = first + n; i-- > first;)
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
            put_rows(g, qry_limit(qrun_query(g->r)), true, false, true);
        else if (g->want == QW_LIST) /* From the end the request read from (see keys_known). */
            put_rows(g, max, false, g->order.forward, forward);
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

/* A list's first round is in (g->mu held): set its bounds' keys from the entries found and
 * ask every partition for the list itself. False when that cannot be (g->err says why). */
static bool keys_known(struct gather *g)
{
    struct qrun_bound b[2];
    qrun_order_params(g->r, &b[0], &b[1]);
    struct wire_key *k[2] = {&g->order.lo, &g->order.hi};
    bool found[2] = {!b[0].set, !b[1].set}, missing = false;
    for (int p = 0; p < cl.partitions; p++) {
        missing |= g->parts[p].state == P_MISSING;
        const char *at = buf_head(&g->parts[p].rows), *end = at + buf_len(&g->parts[p].rows);
        struct lc_entry e;
        while (wire_answer_next_row(&at, end, &e) == 1)
            for (int i = 0; i < 2; i++)
                if (b[i].set && e.id == b[i].id) {
                    /* An inclusive bound is the exclusive one just beside it: ids are whole. */
                    *k[i] = (struct wire_key){e.recv_ms, !b[i].inclusive ? e.id
                                                         : i             ? e.id + 1
                                                                         : e.id - 1};
                    found[i] = true;
                }
    }
    for (int i = 0; i < 2; i++)
        if (!found[i]) {
            snprintf(g->err, sizeof(g->err),
                     missing ? "entry %" PRIu64 " could not be looked up: no copy of some "
                               "partition answered"
                             : "no entry %" PRIu64 " in the cluster (deleted, or never stored)",
                     b[i].id);
            return false;
        }
    g->keys = false;
    if (b[0].set && b[1].set && wire_key_cmp(g->order.lo, g->order.hi) > 0) {
        /* lo comes after hi: the entries between them, taken from lo's side. */
        struct wire_key t = g->order.lo;
        g->order.lo = g->order.hi;
        g->order.hi = t;
        g->order.forward = !g->order.forward;
    }
    if (wire_request_encode(&g->req, &g->order) < 0) {
        snprintf(g->err, sizeof(g->err), "out of memory");
        return false;
    }
    g->waiting = cl.partitions;
    for (int p = 0; p < cl.partitions; p++) {
        g->parts[p].state = P_WAIT;
        g->parts[p].ntried = 0;
        ask(g, p);
    }
    return true;
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
    if (g->waiting == 0 && g->keys && !g->err[0] && !g->cancelled)
        keys_known(g); /* The second round, unless it cannot be. */
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
                                       : want == QW_LIST  ? WK_ORDER
                                       : qry_limit(q)     ? WK_ORDER /* SEARCH's newest. */
                                                          : WK_ROWS,
                               .now_ms = src->now_ms,
                               .limit = want == QW_LIST ? max : qry_limit(q),
                               .win_from_ms = src->win_from_ms,
                               .win_to_ms = src->win_to_ms,
                               .text = src->text,
                               .text_len = src->text_len,
                               .forward = forward};
    if (want == QW_LIST) {
        struct qrun_bound lo, hi;
        qrun_order_params(r, &lo, &hi);
        g->order = req;
        g->order.lo = (struct wire_key){0, lo.id};
        g->order.hi = (struct wire_key){0, hi.id};
        g->order.lo_set = lo.set;
        g->order.hi_set = hi.set;
        g->keys = lo.set || hi.set;
        if (g->keys) /* First their keys: the entries themselves. */
            req = (struct wire_request){.kind = WK_KEY,
                                        .win_from_ms = INT64_MIN,
                                        .win_to_ms = INT64_MAX,
                                        .text = "",
                                        .lo_set = lo.set,
                                        .hi_set = hi.set,
                                        .lo = g->order.lo,
                                        .hi = g->order.hi};
    }
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

int scatter_start(void)
{
    qrun_set_remote(&gather_ops);
    return respond_start();
}

void scatter_stop(void)
{
    gathers_end_all();
    respond_stop();
}
