/* link.c - the NATS side of a node: connecting, the streams and buckets, this node's number
 * and its ids.
 *
 * Names, for --cluster-name NAME:
 *   streams   NAME-p0 .. NAME-p{N-1}, subjects NAME.p.0 ..  (one per partition)
 *   buckets   NAME-members (heartbeats), NAME-meta (partitions, node numbers, id reservations)
 *   subjects  NAME.q.NODE (queries to a node)
 * Every node creates what is missing with the same settings, so the first to start creates
 * the cluster and the others find it; the partition count is written once (a create that
 * fails when the key exists), and a node configured with another count refuses to start.
 *
 * Ids: a node's entries are numbered node_no << 48 | n, n counting up from 1. node_no comes
 * from the meta bucket (key no.K created by the first node that claims K), and n is reserved
 * there a chunk at a time (key node.NAME = "K RESERVED", updated with its revision), so ids
 * stay unique across restarts, and across machines should a node move, without a local file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster_internal.h"
#include "core/log.h"

void cl_subject(char *out, size_t cap, const char *kind, int p)
{
    snprintf(out, cap, "%s.%s.%d", cl.name, kind, p);
}

void cl_stream_name(char *out, size_t cap, int p)
{
    snprintf(out, cap, "%s-p%d", cl.name, p);
}

static void on_disconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    (void)arg;
    atomic_store(&cl.connected, false);
    if (!atomic_load(&cl.stopping))
        log_warn("cluster: lost the connection to NATS; reconnecting (lines wait, then fail "
                 "after --cluster-ack-timeout)");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    (void)arg;
    atomic_store(&cl.connected, true);
    log_info("cluster: connected to NATS again");
}

/* Sleep up to ms, waking early when the cluster stops. */
static void nap(int ms)
{
    pthread_mutex_lock(&cl.mu);
    if (!atomic_load(&cl.stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cl.cv, &cl.mu, &ts);
    }
    pthread_mutex_unlock(&cl.mu);
}

static natsOptions *make_options(void)
{
    const struct config *c = cl.cfg;
    natsOptions *o = NULL;
    char *urls = strdup(c->cluster_urls);
    const char *list[32];
    int n = 0;
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && n < 32;
         u = strtok_r(NULL, ",", &save))
        list[n++] = u;
    char name[CL_SUBJ_MAX];
    snprintf(name, sizeof(name), "logcaster-%s-%s", cl.name, cl.node);
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, list, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL);
    if (s == NATS_OK && c->cluster_creds)
        s = natsOptions_SetUserCredentialsFromFiles(o, c->cluster_creds, NULL);
    if (s == NATS_OK && c->cluster_user)
        s = natsOptions_SetUserInfo(o, c->cluster_user, c->cluster_password);
    if (s == NATS_OK && (c->cluster_tls_ca || c->cluster_tls_cert))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && c->cluster_tls_ca)
        s = natsOptions_LoadCATrustedCertificates(o, c->cluster_tls_ca);
    if (s == NATS_OK && c->cluster_tls_cert)
        s = natsOptions_LoadCertificatesChain(o, c->cluster_tls_cert, c->cluster_tls_key);
    free(urls);
    if (s != NATS_OK) {
        log_error("cluster: NATS options: %s", natsStatus_GetText(s));
        natsOptions_Destroy(o);
        return NULL;
    }
    return o;
}

int link_connect(void)
{
    natsOptions *o = make_options();
    if (!o)
        return -1;
    bool said = false;
    while (!atomic_load(&cl.stopping)) {
        natsStatus s = natsConnection_Connect(&cl.nc, o);
        if (s == NATS_OK) {
            atomic_store(&cl.connected, true);
            log_info("cluster: connected to NATS (%s) as node %s of cluster %s",
                     cl.cfg->cluster_urls, cl.node, cl.name);
            natsOptions_Destroy(o);
            return 0;
        }
        cl.nc = NULL;
        if (!said)
            log_error("cluster: cannot reach NATS at %s: %s; retrying every second, taking no "
                      "lines until then",
                      cl.cfg->cluster_urls, natsStatus_GetText(s));
        said = true;
        nap(1000);
    }
    natsOptions_Destroy(o);
    return -1;
}

/* A stream per partition, replicated --cluster-replicas times. A de-duplication window of
 * two minutes covers every retry of a publish (they stop at --cluster-ack-timeout). */
static int ensure_stream(int p)
{
    char name[CL_SUBJ_MAX], subj[CL_SUBJ_MAX];
    cl_stream_name(name, sizeof(name), p);
    cl_subject(subj, sizeof(subj), "p", p);
    const char *subjects[1] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = cl.replicas;
    sc.Duplicates = (int64_t)120 * 1000 * 1000 * 1000;
    sc.MaxMsgSize = 8 << 20;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, cl.js, name, NULL, &jerr);
    if (s == NATS_OK) {
        if (si->Config && si->Config->Replicas != cl.replicas)
            log_warn("cluster: stream %s has %" PRId64 " replicas, not %d (--cluster-replicas "
                     "applies to streams it creates)",
                     name, si->Config->Replicas, cl.replicas);
        jsStreamInfo_Destroy(si);
        return 0;
    }
    s = js_AddStream(&si, cl.js, &sc, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    /* Another node may have created it meanwhile. */
    if (js_GetStreamInfo(&si, cl.js, name, NULL, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    log_error("cluster: cannot create stream %s (%d replicas): %s (%d)", name, cl.replicas,
              natsStatus_GetText(s), (int)jerr);
    return -1;
}

static int ensure_bucket(kvStore **kv, const char *suffix, int64_t ttl_ms)
{
    char bucket[CL_SUBJ_MAX];
    snprintf(bucket, sizeof(bucket), "%s-%s", cl.name, suffix);
    if (js_KeyValue(kv, cl.js, bucket) == NATS_OK)
        return 0;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.TTL = ttl_ms * 1000000;
    kc.Replicas = cl.replicas;
    natsStatus s = js_CreateKeyValue(kv, cl.js, &kc);
    if (s == NATS_OK || js_KeyValue(kv, cl.js, bucket) == NATS_OK)
        return 0;
    log_error("cluster: cannot create bucket %s: %s", bucket, natsStatus_GetText(s));
    return -1;
}

/* The partition count: written by the first node, checked by every other. */
static int check_partitions(void)
{
    char want[16];
    snprintf(want, sizeof(want), "%d", cl.partitions);
    uint64_t rev;
    natsStatus s = kvStore_CreateString(&rev, cl.kv_meta, "partitions", want);
    if (s == NATS_OK)
        return 0;
    kvEntry *e = NULL;
    if (kvStore_Get(&e, cl.kv_meta, "partitions") != NATS_OK) {
        log_error("cluster: cannot read the partition count: %s", natsStatus_GetText(s));
        return -1;
    }
    int have = atoi(kvEntry_ValueString(e));
    kvEntry_Destroy(e);
    if (have != cl.partitions) {
        log_error("cluster: cluster %s has %d partitions, this node was started with "
                  "--cluster-partitions %d: the count is fixed when a cluster is first created",
                  cl.name, have, cl.partitions);
        return -2;
    }
    return 0;
}

/* This node's number and reservation, claiming a free number the first time. */
static int claim_number(void)
{
    char key[CL_SUBJ_MAX];
    snprintf(key, sizeof(key), "node.%s", cl.node);
    kvEntry *e = NULL;
    if (kvStore_Get(&e, cl.kv_meta, key) == NATS_OK) {
        unsigned long long no = 0, reserved = 0;
        sscanf(kvEntry_ValueString(e), "%llu %llu", &no, &reserved);
        cl.meta_rev = kvEntry_Revision(e);
        kvEntry_Destroy(e);
        cl.node_no = (int)no;
        cl.id_first = reserved; /* Not chained: clang refuses an _Atomic value assigned on. */
        cl.id_reserved = reserved;
        return no ? 0 : -1;
    }
    for (int k = 1; k < 65536; k++) {
        char nokey[24];
        snprintf(nokey, sizeof(nokey), "no.%d", k);
        uint64_t rev;
        if (kvStore_CreateString(&rev, cl.kv_meta, nokey, cl.node) != NATS_OK)
            continue; /* Taken (or a transient error: the next number is as good). */
        char val[48];
        snprintf(val, sizeof(val), "%d 1", k);
        natsStatus s = kvStore_CreateString(&cl.meta_rev, cl.kv_meta, key, val);
        if (s != NATS_OK) {
            log_error("cluster: cannot record node %s's number: %s", cl.node,
                      natsStatus_GetText(s));
            return -1;
        }
        cl.node_no = k;
        cl.id_first = 1;
        cl.id_reserved = 1;
        return 0;
    }
    log_error("cluster: no node number left");
    return -1;
}

int link_setup(void)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    publish_js_options(&jo);
    /* JetStream API calls answer in milliseconds on a healthy cluster; a call that cannot be
     * answered (NATS gone, e.g. the consumers' deletion when the connection closes) should not
     * hold a stop for the library's default 5 s. Set-up steps that time out are retried. */
    jo.Wait = 2000;
    natsStatus s = natsConnection_JetStream(&cl.js, cl.nc, &jo);
    if (s != NATS_OK) {
        log_error("cluster: JetStream: %s", natsStatus_GetText(s));
        return -1;
    }
    if (ensure_bucket(&cl.kv_meta, "meta", 0) < 0)
        return -1;
    int r = check_partitions();
    if (r < 0)
        return r;
    if (ensure_bucket(&cl.kv_members, "members", 0) < 0)
        return -1;
    for (int p = 0; p < cl.partitions; p++)
        if (ensure_stream(p) < 0)
            return -1;
    if (claim_number() < 0)
        return -1;
    return link_reserve_ids();
}

int link_reserve_ids(void)
{
    char key[CL_SUBJ_MAX], val[48];
    snprintf(key, sizeof(key), "node.%s", cl.node);
    pthread_mutex_lock(&cl.mu);
    uint64_t next = cl.id_reserved + CL_ID_CHUNK;
    pthread_mutex_unlock(&cl.mu);
    snprintf(val, sizeof(val), "%d %" PRIu64, cl.node_no, next);
    uint64_t rev = 0;
    natsStatus s = kvStore_UpdateString(&rev, cl.kv_meta, key, val, cl.meta_rev);
    if (s != NATS_OK) {
        log_error("cluster: cannot reserve ids for node %s: %s (is another node running with "
                  "--node-name %s?)",
                  cl.node, natsStatus_GetText(s), cl.node);
        return -1;
    }
    pthread_mutex_lock(&cl.mu);
    cl.meta_rev = rev;
    cl.id_reserved = next;
    pthread_mutex_unlock(&cl.mu);
    return 0;
}

void link_close(void)
{
    if (cl.kv_members)
        kvStore_Destroy(cl.kv_members);
    if (cl.kv_meta)
        kvStore_Destroy(cl.kv_meta);
    if (cl.js)
        jsCtx_Destroy(cl.js);
    if (cl.nc) {
        natsConnection_Close(cl.nc);
        natsConnection_Destroy(cl.nc);
    }
    cl.kv_members = cl.kv_meta = NULL;
    cl.js = NULL;
    cl.nc = NULL;
}

static void sub_completed(void *arg)
{
    struct cl_sub *s = arg;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void cl_sub_watch(struct cl_sub *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->done = false;
    s->watched = natsSubscription_SetOnCompleteCB(s->sub, sub_completed, s) == NATS_OK;
}

bool cl_sub_end(struct cl_sub *s)
{
    if (!s->sub)
        return true;
    /* On a closed connection this fails at once, and the close completed the subscription. */
    natsSubscription_Unsubscribe(s->sub);
    bool done = !s->watched;
    if (s->watched) { /* Its handler may be running now; it must be done before we free. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        pthread_mutex_lock(&s->mu);
        while (!s->done)
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
                break;
        done = s->done;
        pthread_mutex_unlock(&s->mu);
    }
    if (!done) { /* The callback may still come and use s: leave both be. */
        log_warn("cluster: a subscription did not end within 10 s; its memory is left");
        return false;
    }
    if (s->watched) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    natsSubscription_Destroy(s->sub);
    s->sub = NULL;
    return true;
}

void link_disconnect(void)
{
    if (cl.nc)
        natsConnection_Close(cl.nc);
}
