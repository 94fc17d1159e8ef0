/* publish.c - the ingest pipeline's sink in a cluster: batches to the partitions' streams.
 *
 * A submitted batch gets its ids here (this node's counter, cluster.h) and goes, whole, to the
 * partition its first entry's source hashes to, so one sender's lines stay in order. Each
 * partition has one open message; it is sealed when it reaches MSG_BYTES or 65,535 entries,
 * or LINGER_MS after its first entry, compressed with zstd, and published asynchronously
 * with Nats-Msg-Id set to its first id: JetStream drops a retried copy within its two-minute
 * window, so a retry never stores a batch twice.
 *
 * The ledger holds the submitted id ranges in id order, each pointing at its message. When
 * JetStream confirms a message (its PubAck: a majority of the stream's replicas have it),
 * or when --cluster-ack-timeout passes without that, the ranges at the ledger's head whose
 * fate is known go to the pipeline's commit listener, in id order, exactly as the store's
 * writer reports its runs: the pipeline then answers OK or an error. A failed publish is
 * retried until the timeout; an error answer means "not confirmed", and the line may still
 * have been stored (at least once, never acknowledged and lost). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/thread.h"
#include "cluster/cluster_internal.h"
#include "cluster/wire.h"
#include "core/log.h"
#include "ingest/pipeline.h"

#define MSG_BYTES     (256u << 10) /* Raw bytes that seal a message. */
#define LINGER_MS     2            /* Longest wait of a message for more entries. */
#define INFLIGHT_MAX  256          /* Messages published and not yet confirmed. */
#define BACKLOG_BYTES (64u << 20)  /* Raw bytes held before readers pause. */
#define RETRY_MS      200          /* Wait before publishing a failed message again. */
#define ZSTD_LEVEL    1

enum mstate { M_OPEN, M_QUEUED, M_INFLIGHT, M_RETRY, M_OK, M_FAILED };

struct pmsg {
    struct pmsg *next; /* In the send queue, or the in-flight list. */
    int part;
    enum mstate state;
    struct wire_batch_out b;
    int refs; /* Ledger ranges pointing here, plus one while queued or in flight. */
    int64_t opened_ms, first_sent_ms, retry_at_ms;
    int64_t sent_ns;
    char msgid[24];
    char *z; /* Sealed payload. */
    size_t zlen;
};

struct prange {
    uint64_t lo, hi;
    struct pmsg *m;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t commit_mu; /* Commits leave in id order, one caller at a time. */
    pthread_t thread;
    bool started, stop;
    store_commit_fn commit;
    void *commit_arg;
    uint64_t next;         /* Our counter (the low 48 bits of the next id). */
    _Atomic uint64_t done; /* Every id up to this is decided. */
    struct pmsg *open[CL_MAX_PARTITIONS];
    struct pmsg *queue, **queue_tail;
    struct pmsg *inflight; /* Also M_RETRY. */
    int ninflight;
    struct prange *ledger; /* Ring. */
    size_t lhead, llen, lcap;
    size_t held_bytes;
    struct wire_scratch flat; /* The publisher thread's, for sealing. */
} pub = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .cv = PTHREAD_COND_INITIALIZER,
         .commit_mu = PTHREAD_MUTEX_INITIALIZER};

static void msg_unref(struct pmsg *m) /* mu held */
{
    if (--m->refs > 0)
        return;
    pub.held_bytes -= wire_batch_bytes(&m->b);
    wire_batch_free(&m->b);
    free(m->z);
    free(m);
}

static int ledger_push(uint64_t lo, uint64_t hi, struct pmsg *m) /* mu held */
{
    if (pub.llen == pub.lcap) {
        size_t cap = pub.lcap ? pub.lcap * 2 : 1024;
        struct prange *g = malloc(cap * sizeof(*g));
        if (!g)
            return -ENOMEM;
        for (size_t i = 0; i < pub.llen; i++)
            g[i] = pub.ledger[(pub.lhead + i) % pub.lcap];
        free(pub.ledger);
        pub.ledger = g;
        pub.lcap = cap;
        pub.lhead = 0;
    }
    pub.ledger[(pub.lhead + pub.llen++) % pub.lcap] = (struct prange){lo, hi, m};
    m->refs++;
    return 0;
}

/* Hand the decided ranges at the ledger's head to the pipeline, in id order. */
static void commit_decided(void)
{
    pthread_mutex_lock(&pub.commit_mu);
    struct store_range out[64];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&pub.mu);
        while (pub.llen && n < 64) {
            struct prange *r = &pub.ledger[pub.lhead];
            if (r->m->state != M_OK && r->m->state != M_FAILED)
                break;
            bool failed = r->m->state == M_FAILED;
            if (n && out[n - 1].failed == failed && out[n - 1].hi + 1 == r->lo)
                out[n - 1].hi = r->hi;
            else
                out[n++] = (struct store_range){r->lo, r->hi, failed};
            msg_unref(r->m);
            pub.lhead = (pub.lhead + 1) % pub.lcap;
            pub.llen--;
        }
        if (n)
            atomic_store(&pub.done, out[n - 1].hi);
        pthread_mutex_unlock(&pub.mu);
        if (!n)
            break;
        if (pub.commit)
            pub.commit(pub.commit_arg, out, n);
    }
    pthread_mutex_unlock(&pub.commit_mu);
}

/* Wake readers that paused on a backlog (or before the node was ready): they wait for the
 * next commit, so the last decided id is told again. */
static void poke(void)
{
    pthread_mutex_lock(&pub.commit_mu);
    struct store_range r = {atomic_load(&pub.done), atomic_load(&pub.done), false};
    if (pub.commit && atomic_load(&cl.ready))
        pub.commit(pub.commit_arg, &r, 1);
    pthread_mutex_unlock(&pub.commit_mu);
}

static void seal(struct pmsg *m) /* mu held */
{
    pub.open[m->part] = NULL;
    m->state = M_QUEUED;
    m->next = NULL;
    *pub.queue_tail = m;
    pub.queue_tail = &m->next;
    pthread_cond_signal(&pub.cv);
}

/* ---- The pipeline's calls ---- */

static int take_ids(size_t n, uint64_t *first) /* mu held */
{
    if (pub.next + n > cl.id_reserved) {
        pthread_cond_broadcast(&cl.cv); /* The manager reserves more. */
        return -EAGAIN;
    }
    *first = (uint64_t)cl.node_no << CL_ID_SHIFT | pub.next;
    pub.next += n;
    if (cl.id_reserved - pub.next < CL_ID_CHUNK / 2)
        pthread_cond_broadcast(&cl.cv);
    return 0;
}

static int sink_append(void *sink, struct lc_entry *e, size_t n)
{
    (void)sink;
    if (!atomic_load(&cl.ready))
        return -EAGAIN;
    int p = (int)(XXH3_64bits(e[0].source, e[0].source_len) % (uint64_t)cl.partitions);
    pthread_mutex_lock(&pub.mu);
    if (pub.stop) {
        pthread_mutex_unlock(&pub.mu);
        return -ESHUTDOWN;
    }
    uint64_t first;
    int r = take_ids(n, &first);
    for (size_t done = 0; r == 0 && done < n;) {
        struct pmsg *m = pub.open[p];
        if (m && m->b.nentries == WIRE_BATCH_MAX_ENTRIES) {
            seal(m);
            m = NULL;
        }
        if (!m) {
            m = calloc(1, sizeof(*m));
            if (!m) {
                r = -ENOMEM;
                break;
            }
            m->part = p;
            m->refs = 1; /* Until confirmed or failed. */
            m->opened_ms = mono_ms();
            pub.open[p] = m;
            pthread_cond_signal(&pub.cv);
        }
        size_t k = n - done;
        if (k > WIRE_BATCH_MAX_ENTRIES - m->b.nentries)
            k = WIRE_BATCH_MAX_ENTRIES - m->b.nentries;
        size_t before = wire_batch_bytes(&m->b);
        if (wire_batch_add(&m->b, e + done, k, first + done) < 0 ||
            ledger_push(first + done, first + done + k - 1, m) < 0) {
            r = -ENOMEM; /* Ids already taken stay unused: a gap is harmless. */
            break;
        }
        pub.held_bytes += wire_batch_bytes(&m->b) - before;
        if (wire_batch_bytes(&m->b) >= MSG_BYTES)
            seal(m);
        done += k;
    }
    pthread_mutex_unlock(&pub.mu);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        e[i].id = first + i;
    return 0;
}

static uint64_t sink_done_id(void *sink)
{
    (void)sink;
    return atomic_load(&pub.done);
}

bool publish_backlogged(void)
{
    if (!atomic_load(&cl.ready))
        return true;
    pthread_mutex_lock(&pub.mu);
    bool full = pub.held_bytes > BACKLOG_BYTES || pub.next >= cl.id_reserved;
    pthread_mutex_unlock(&pub.mu);
    return full;
}

bool publish_ids_low(void)
{
    pthread_mutex_lock(&pub.mu);
    bool low = cl.id_reserved - pub.next < CL_ID_CHUNK / 2 || pub.next >= cl.id_reserved;
    pthread_mutex_unlock(&pub.mu);
    return low;
}

static bool sink_backlogged(void *sink)
{
    (void)sink;
    return publish_backlogged();
}

static void sink_on_commit(void *sink, store_commit_fn fn, void *arg)
{
    (void)sink;
    pthread_mutex_lock(&pub.commit_mu); /* The publisher may be running (poke). */
    pub.commit = fn;
    pub.commit_arg = arg;
    pthread_mutex_unlock(&pub.commit_mu);
}

static const struct ingest_sink_ops sink_ops = {
    sink_append, sink_done_id, sink_backlogged, sink_on_commit,
    "not confirmed by the cluster within --cluster-ack-timeout"};

const struct ingest_sink_ops *cluster_sink_ops(void)
{
    return &sink_ops;
}

void *cluster_sink(void)
{
    return &pub;
}

/* ---- Publishing, on the publisher thread ---- */

static void decide(struct pmsg *m, enum mstate st) /* mu held; m is off every list */
{
    m->state = st;
    if (st == M_FAILED) {
        atomic_fetch_add(&cl.publish_errors, 1);
        atomic_fetch_add(&cl.failed_entries, m->b.nentries);
    }
    msg_unref(m); /* The in-flight reference; the ledger's keep it until committed. */
}

static void unlink_inflight(struct pmsg *m) /* mu held */
{
    for (struct pmsg **at = &pub.inflight; *at; at = &(*at)->next)
        if (*at == m) {
            *at = m->next;
            pub.ninflight--;
            return;
        }
}

/* JetStream's answer to one message, on a NATS library thread. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
    (void)js;
    (void)arg;
    const char *id = NULL;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
    pthread_mutex_lock(&pub.mu);
    struct pmsg *m = pub.inflight;
    while (m && !(m->state == M_INFLIGHT && id && strcmp(m->msgid, id) == 0))
        m = m->next;
    if (m) {
        unlink_inflight(m);
        if (pa && !pae) {
            uint64_t us = (uint64_t)(mono_ns() - m->sent_ns) / 1000;
            atomic_fetch_add(&cl.publish_lat_us_sum, us);
            atomic_fetch_add(&cl.publish_lat_n, 1);
            if (us > atomic_load(&cl.publish_lat_max_us))
                atomic_store(&cl.publish_lat_max_us, us);
            atomic_fetch_add(&cl.published_batches, 1);
            atomic_fetch_add(&cl.published_entries, m->b.nentries);
            atomic_fetch_add(&cl.published_bytes, m->zlen);
            cl_saw_seq(m->part, pa->Sequence);
            decide(m, M_OK);
        } else if (mono_ms() - m->first_sent_ms >= cl.ack_timeout_ms) {
            log_warn("cluster: batch %s (%u lines) not confirmed within --cluster-ack-timeout: "
                     "%s",
                     m->msgid, m->b.nentries,
                     pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(pae ? pae->Err : 0));
            decide(m, M_FAILED);
        } else {
            m->state = M_RETRY;
            m->retry_at_ms = mono_ms() + RETRY_MS;
            m->next = pub.inflight;
            pub.inflight = m;
            pub.ninflight++;
        }
        pthread_cond_signal(&pub.cv);
    }
    pthread_mutex_unlock(&pub.mu);
    natsMsg_Destroy(msg);
    if (m)
        commit_decided();
}

/* Publish m (sealed); false when the library refused it now (m stays to be retried). */
static bool send_one(struct pmsg *m)
{
    char subj[CL_SUBJ_MAX];
    cl_subject(subj, sizeof(subj), "p", m->part);
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subj, NULL, m->z, (int)m->zlen);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Nats-Msg-Id", m->msgid);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    int64_t left = cl.ack_timeout_ms - (mono_ms() - m->first_sent_ms);
    /* A stream whose leader is being elected drops the message: ask again soon (the
     * message id makes a second copy harmless). */
    po.MaxWait = left < 100 ? 100 : left > 2000 ? 2000 : left;
    m->sent_ns = mono_ns();
    if (s == NATS_OK)
        s = js_PublishMsgAsync(cl.js, &msg, &po);
    if (msg)
        natsMsg_Destroy(msg);
    return s == NATS_OK;
}

static void *publisher(void *arg)
{
    (void)arg;
    thread_name("publisher");
    bool was_full = true; /* Readers paused until the node was ready. */
    pthread_mutex_lock(&pub.mu);
    for (;;) {
        int64_t now = mono_ms();
        bool full =
            pub.held_bytes > BACKLOG_BYTES || pub.next >= cl.id_reserved || !atomic_load(&cl.ready);
        if (was_full && !full) {
            pthread_mutex_unlock(&pub.mu);
            poke();
            pthread_mutex_lock(&pub.mu);
        }
        was_full = full;
        /* Seal messages that waited long enough. */
        for (int p = 0; p < cl.partitions; p++)
            if (pub.open[p] && now - pub.open[p]->opened_ms >= LINGER_MS)
                seal(pub.open[p]);
        /* Give up on what the timeout passed for; collect retries that are due. */
        struct pmsg *resend = NULL;
        bool decided_some = false;
        for (struct pmsg **at = &pub.inflight; *at;) {
            struct pmsg *m = *at;
            bool expired = now - m->first_sent_ms >= cl.ack_timeout_ms;
            /* An attempt the library never answered (NATS gone, its own timeout not run):
             * given up a little after the ack timeout, so no message waits forever. */
            if (m->state == M_INFLIGHT && now - m->first_sent_ms >= cl.ack_timeout_ms + 2000)
                m->state = M_RETRY;
            if (m->state == M_RETRY && (expired || now >= m->retry_at_ms)) {
                *at = m->next;
                pub.ninflight--;
                if (expired) {
                    log_warn("cluster: batch %s (%u lines) not confirmed within "
                             "--cluster-ack-timeout",
                             m->msgid, m->b.nentries);
                    decide(m, M_FAILED);
                    decided_some = true;
                } else {
                    m->next = resend;
                    resend = m;
                }
                continue;
            }
            at = &m->next;
        }
        /* New messages, while there is room in flight. */
        struct pmsg *fresh = NULL, **fresh_tail = &fresh;
        while (pub.queue && pub.ninflight < INFLIGHT_MAX) {
            struct pmsg *m = pub.queue;
            pub.queue = m->next;
            if (!pub.queue)
                pub.queue_tail = &pub.queue;
            m->next = NULL;
            *fresh_tail = m;
            fresh_tail = &m->next;
            pub.ninflight++;
        }
        if (!resend && !fresh) {
            if (decided_some) {
                pthread_mutex_unlock(&pub.mu);
                commit_decided();
                pthread_mutex_lock(&pub.mu);
                continue;
            }
            if (pub.stop && !pub.queue && !pub.inflight) {
                bool any_open = false;
                for (int p = 0; p < cl.partitions; p++)
                    any_open |= pub.open[p] != NULL;
                if (!any_open)
                    break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += LINGER_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&pub.cv, &pub.mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&pub.mu);
        /* Seal outside the lock: compression is the work. */
        for (struct pmsg *m = fresh; m; m = m->next) {
            if (wire_batch_seal_in(&m->b, cl.cfg->codec, ZSTD_LEVEL, &pub.flat, &m->z, &m->zlen) <
                0)
                m->z = NULL;
            uint64_t first;
            memcpy(&first, buf_head(&m->b.runs), 8); /* The first run's first id. */
            snprintf(m->msgid, sizeof(m->msgid), "%" PRIx64, first);
            m->first_sent_ms = mono_ms();
        }
        /* What to send this round, listed before the messages join the in-flight list
         * (whose links they then follow). */
        struct pmsg *to_send[INFLIGHT_MAX * 2];
        int nsend = 0;
        pthread_mutex_lock(&pub.mu);
        for (struct pmsg *m = fresh, *next; m; m = next) {
            next = m->next;
            if (!m->z) { /* Out of memory compressing: fail it now. */
                pub.ninflight--;
                decide(m, M_FAILED);
                decided_some = true;
                continue;
            }
            m->state = M_INFLIGHT;
            m->next = pub.inflight;
            pub.inflight = m;
            if (nsend < INFLIGHT_MAX * 2)
                to_send[nsend++] = m;
        }
        for (struct pmsg *m = resend, *next; m; m = next) {
            next = m->next;
            m->state = M_INFLIGHT;
            m->next = pub.inflight;
            pub.inflight = m;
            pub.ninflight++;
            if (nsend < INFLIGHT_MAX * 2)
                to_send[nsend++] = m;
        }
        pthread_mutex_unlock(&pub.mu);
        for (int i = 0; i < nsend; i++) {
            if (send_one(to_send[i]))
                continue;
            pthread_mutex_lock(&pub.mu);
            struct pmsg *m = to_send[i];
            if (m->state == M_INFLIGHT) { /* Not answered meanwhile: retry later. */
                m->state = M_RETRY;
                m->retry_at_ms = mono_ms() + RETRY_MS;
            }
            pthread_mutex_unlock(&pub.mu);
        }
        if (decided_some)
            commit_decided();
        pthread_mutex_lock(&pub.mu);
    }
    pthread_mutex_unlock(&pub.mu);
    return NULL;
}

void publish_js_options(jsOptions *o)
{
    o->PublishAsync.AckHandler = on_ack;
    o->PublishAsync.MaxPending = INFLIGHT_MAX * 2;
}

void publish_start(void)
{
    pthread_mutex_lock(&pub.mu);
    pub.queue_tail = &pub.queue;
    pub.next = cl.id_first;
    atomic_store(&pub.done, ((uint64_t)cl.node_no << CL_ID_SHIFT | cl.id_first) - 1);
    pthread_mutex_unlock(&pub.mu);
    if (pthread_create(&pub.thread, NULL, publisher, NULL) == 0)
        pub.started = true;
    else
        log_error("cluster: cannot start the publisher thread");
}

void publish_stop(void)
{
    if (!pub.started)
        return;
    pthread_mutex_lock(&pub.mu);
    pub.stop = true; /* No more appends. */
    pthread_cond_signal(&pub.cv);
    pthread_mutex_unlock(&pub.mu);
    /* The thread sends what is left and ends once every message is answered or has passed
     * --cluster-ack-timeout (then it failed): joined before anything is freed, since it may
     * be sending a message right now. */
    pthread_join(pub.thread, NULL);
    pub.started = false;
    wire_scratch_free(&pub.flat);
    pthread_mutex_lock(&pub.mu); /* Nothing should be left; whatever is, failed. */
    for (struct pmsg *m; (m = pub.inflight);) {
        pub.inflight = m->next;
        pub.ninflight--;
        decide(m, M_FAILED);
    }
    for (struct pmsg *m; (m = pub.queue);) {
        pub.queue = m->next;
        decide(m, M_FAILED);
    }
    pub.queue_tail = &pub.queue;
    for (int p = 0; p < CL_MAX_PARTITIONS; p++)
        if (pub.open[p]) {
            struct pmsg *m = pub.open[p];
            pub.open[p] = NULL;
            decide(m, M_FAILED);
        }
    pthread_mutex_unlock(&pub.mu);
    commit_decided();
    free(pub.ledger);
    pub.ledger = NULL;
    pub.llen = pub.lcap = pub.lhead = 0;
}
