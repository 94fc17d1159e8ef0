/* live.c - live entries on every node: IRC log channels, LogBot and HTTP live tails carry the
 * lines ingested anywhere in the cluster.
 *
 * Every node reads every partition's stream (an ordered push consumer, re-created by the
 * library after a gap or a reconnect from the next sequence, so each message comes once) and
 * hands the entries to this node's subscribers (fanout.h). A node's own lines come back this
 * way too: they are not copied for subscribers when submitted (ingest_live_external), so each
 * is delivered once. The streams are followed only while someone on this node subscribes (an
 * IRC log channel with members, an HTTP live tail): the manager's next tick starts the feeds,
 * from the messages stored since the first of them came. */
#include <stdlib.h>

#include "base/clock.h"
#include "cluster/cluster_internal.h"
#include "cluster/wire.h"
#include "core/log.h"
#include "ingest/fanout.h"

struct feed {
    int p;
    struct cl_sub sub;
    struct lc_entry *scratch;
    struct wire_scratch raw; /* The batch's decompressed bytes. */
};

/* Each allocated by live_start and freed by live_stop, unless its subscription did not end:
 * then its handler may still run, and the feed is left to it (a leak rather than sharing
 * its memory with the next feed of that partition). */
static struct feed *feeds[CL_MAX_PARTITIONS];
static int nfeeds;          /* Partitions followed now (0 or all). */
static int64_t unwanted_ms; /* Since when nobody subscribes (0: someone does). */

/* Follow the streams only while someone here subscribes: otherwise NATS would send every
 * node every batch for nothing. Ten seconds without a subscriber end it. */
#define LIVE_LINGER_MS 10000

static void on_live(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct feed *f = arg;
    /* Seen before it is posted: a replay that starts once it is posted asks its copies for
     * this message (wire.h min_seq), so the line is in the replay or among the live lines
     * held for it, or in both (and then sent once). */
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        cl_saw_seq(f->p, meta->Sequence.Stream);
        jsMsgMetaData_Destroy(meta);
    }
    if (ingest_live_wanted() && !atomic_load(&cl.stopping)) {
        struct wire_batch_in b;
        char err[128];
        if (wire_batch_open_in(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &b,
                               &f->raw, err) == 0) {
            size_t n = 0;
            struct lc_entry e;
            while (wire_batch_next(&b, &e))
                f->scratch[n++] = e;
            ingest_live_post(f->scratch, n);
            wire_batch_close(&b);
        } else {
            log_warn("cluster: partition %d: a live batch is damaged (%s); skipped", f->p, err);
        }
    }
    natsMsg_Destroy(msg);
}

static int live_start(void)
{
    for (int p = 0; p < cl.partitions; p++) {
        struct feed *f = calloc(1, sizeof(*f));
        if (f)
            f->scratch = malloc(WIRE_BATCH_MAX_ENTRIES * sizeof(*f->scratch));
        if (!f || !f->scratch) {
            free(f);
            return -1;
        }
        f->p = p;
        feeds[p] = f;
        char stream[CL_SUBJ_MAX], subj[CL_SUBJ_MAX];
        cl_stream_name(stream, sizeof(stream), p);
        cl_subject(subj, sizeof(subj), "p", p);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream;
        so.Ordered = true;
        /* From the messages stored since the first subscriber came, not from the stream's end
         * once the feed is up: the lines stored meanwhile come too, so that a tail's history
         * and its live lines meet with no gap (one sent by both is passed by). This takes the
         * clocks of the node and the nats-servers to agree, as NTP keeps them; no earlier: a
         * resumed tail would get lines from before the one it resumes after. */
        so.Config.DeliverPolicy = js_DeliverByStartTime;
        so.Config.OptStartTime = ingest_live_wanted_since_ms() * 1000000;
        jsErrCode jerr = 0;
        natsStatus s = js_Subscribe(&f->sub.sub, cl.js, subj, on_live, f, NULL, &so, &jerr);
        if (s == NATS_OK)
            cl_sub_watch(&f->sub);
        if (s != NATS_OK) {
            log_warn("cluster: cannot follow stream %s live: %s (%d); trying again", stream,
                     natsStatus_GetText(s), (int)jerr);
            return -1;
        }
        nfeeds = p + 1;
    }
    return 0;
}

void live_stop(void)
{
    for (int p = 0; p < CL_MAX_PARTITIONS; p++) {
        struct feed *f = feeds[p];
        feeds[p] = NULL;
        if (!f || !cl_sub_end(&f->sub))
            continue; /* None, or its handler may still use it. */
        free(f->scratch);
        wire_scratch_free(&f->raw);
        free(f);
    }
    nfeeds = 0;
}

void live_sync(void)
{
    int64_t now = mono_ms();
    if (ingest_live_wanted()) {
        unwanted_ms = 0;
        if (nfeeds < cl.partitions && live_start() < 0)
            live_stop(); /* All or none; the next tick tries again. */
    } else if (nfeeds) {
        if (!unwanted_ms)
            unwanted_ms = now;
        else if (now - unwanted_ms >= LIVE_LINGER_MS)
            live_stop();
    }
}

int live_feeds(void)
{
    return nfeeds;
}
