/* member.c - who is in the cluster, and which nodes hold which partition.
 *
 * Every node puts its key in the members bucket once a second (CL_HEARTBEAT_MS), with the
 * partitions it holds caught up; every node watches the bucket. A member whose key has not
 * changed for CL_DEAD_MS is gone (the clock compared is the watcher's own, so members need
 * not agree on the time); a clean stop deletes the key at once. Both run on a thread of their
 * own ("members"): the manager's work (opening partitions, taking messages from other copies,
 * which may wait on a node that hangs) never makes this node look gone, nor makes it take the
 * others for gone before it has read their beats.
 *
 * Owners: partition p is kept by the --cluster-copies live members with the highest
 * XXH3(name, p) (rendezvous hashing). When a member comes or goes, only the partitions whose
 * top list it enters or leaves move, and every node computes the same lists from the same
 * members, with no coordination. A query asks, for each partition, a member that says it
 * holds the partition caught up, owners first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/thread.h"
#include "cluster/cluster_internal.h"
#include "core/log.h"

static kvWatcher *watcher;
static int64_t next_beat_ms;
static pthread_t ticker;
static bool ticker_started;

static uint64_t score(const char *name, int p)
{
    char key[CL_SUBJ_MAX];
    int n = snprintf(key, sizeof(key), "%s/%d", name, p);
    return XXH3_64bits(key, (size_t)n);
}

/* Indexes of the live members for partition p, best first (mu held). */
static int ranked(int p, int *idx)
{
    int n = 0;
    for (int i = 0; i < cl.nmembers; i++) {
        uint64_t s = score(cl.members[i].name, p);
        int at = n++;
        while (at > 0 && score(cl.members[idx[at - 1]].name, p) < s) {
            idx[at] = idx[at - 1];
            at--;
        }
        idx[at] = i;
    }
    return n;
}

bool member_owns(int p)
{
    int idx[CL_MAX_MEMBERS];
    pthread_mutex_lock(&cl.mu);
    int n = ranked(p, idx);
    bool mine = false;
    for (int i = 0; i < n && i < cl.copies; i++)
        mine |= strcmp(cl.members[idx[i]].name, cl.node) == 0;
    pthread_mutex_unlock(&cl.mu);
    return mine;
}

bool member_may_drop(int p)
{
    int idx[CL_MAX_MEMBERS];
    pthread_mutex_lock(&cl.mu);
    int n = ranked(p, idx);
    bool ready = n > 0;
    for (int i = 0; i < n && i < cl.copies; i++) {
        ready &= (cl.members[idx[i]].ready[p / 8] >> (p % 8)) & 1;
        ready &= strcmp(cl.members[idx[i]].name, cl.node) != 0;
    }
    pthread_mutex_unlock(&cl.mu);
    return ready;
}

int member_candidates(int p, char (*out)[CL_NAME_MAX], uint8_t *wire, int max)
{
    int idx[CL_MAX_MEMBERS], k = 0;
    pthread_mutex_lock(&cl.mu);
    int n = ranked(p, idx);
    for (int i = 0; i < n && k < max; i++) {
        const struct cl_member *m = &cl.members[idx[i]];
        if (!(m->ready[p / 8] & (1u << (p % 8))))
            continue;
        if (wire)
            wire[k] = m->wire;
        snprintf(out[k++], CL_NAME_MAX, "%s", m->name);
    }
    pthread_mutex_unlock(&cl.mu);
    return k;
}

bool member_other_owner_catching_up(int p)
{
    int idx[CL_MAX_MEMBERS];
    pthread_mutex_lock(&cl.mu);
    int n = ranked(p, idx);
    bool some = false;
    for (int i = 0; i < n && i < cl.copies; i++) {
        const struct cl_member *m = &cl.members[idx[i]];
        some |= strcmp(m->name, cl.node) != 0 && !((m->ready[p / 8] >> (p % 8)) & 1);
    }
    pthread_mutex_unlock(&cl.mu);
    return some;
}

/* "no=3 ready=0,4,7 t=..." -> the ready bits. */
static void parse_ready(const char *info, uint8_t *ready)
{
    memset(ready, 0, (CL_MAX_PARTITIONS + 8) / 8);
    const char *r = strstr(info, "ready=");
    if (!r)
        return;
    r += 6;
    while (*r >= '0' && *r <= '9') {
        long p = strtol(r, (char **)&r, 10);
        if (p >= 0 && p < CL_MAX_PARTITIONS)
            ready[p / 8] |= (uint8_t)(1u << (p % 8));
        if (*r != ',')
            break;
        r++;
    }
}

static void seen(const char *name, const char *info, int64_t now) /* mu held */
{
    struct cl_member *m = NULL;
    for (int i = 0; i < cl.nmembers && !m; i++)
        if (strcmp(cl.members[i].name, name) == 0)
            m = &cl.members[i];
    if (!m) {
        if (cl.nmembers == CL_MAX_MEMBERS)
            return;
        m = &cl.members[cl.nmembers++];
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "%s", name);
        log_info("cluster: node %s joined", name);
    }
    m->seen_ms = now;
    snprintf(m->info, sizeof(m->info), "%s", info);
    parse_ready(info, m->ready);
    /* Nodes built before request version 2 say no "wire=": they read version 1 only. */
    const char *w = strstr(info, " wire=");
    long v = w ? strtol(w + 6, NULL, 10) : 1;
    m->wire = v >= 1 && v <= 255 ? (uint8_t)v : 1;
}

static void gone(int i, const char *why) /* mu held */
{
    log_info("cluster: node %s left (%s)", cl.members[i].name, why);
    cl.members[i] = cl.members[--cl.nmembers];
}

int member_watch(void)
{
    natsStatus s = kvStore_WatchAll(&watcher, cl.kv_members, NULL);
    if (s != NATS_OK) {
        log_error("cluster: cannot watch the members: %s", natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

static void beat(void)
{
    char ready[4 * CL_MAX_PARTITIONS], val[sizeof(ready) + 256];
    replica_ready_list(ready, sizeof(ready));
    int n = snprintf(val, sizeof(val), "no=%d ready=%s", cl.node_no, ready);
    if (cl.wire_version >= 2 && n > 0 && (size_t)n < sizeof(val))
        snprintf(val + n, sizeof(val) - (size_t)n, " wire=%d", cl.wire_version);
    uint64_t rev;
    /* Not while disconnected: the put would wait out its timeout, and hold up a stop. */
    natsStatus s = atomic_load(&cl.connected) && !atomic_load(&cl.stopping)
                       ? kvStore_PutString(&rev, cl.kv_members, cl.node, val)
                       : NATS_OK;
    if (s != NATS_OK)
        log_debug("cluster: heartbeat: %s", natsStatus_GetText(s));
    pthread_mutex_lock(&cl.mu);
    seen(cl.node, val, mono_ms()); /* We are alive whatever the bucket says. */
    pthread_mutex_unlock(&cl.mu);
}

/* Heartbeat when due; take the bucket's updates for up to wait_ms; then who is gone. */
static void member_tick(int wait_ms)
{
    int64_t now = mono_ms();
    if (now >= next_beat_ms) {
        beat();
        next_beat_ms = now + CL_HEARTBEAT_MS;
    }
    int64_t until = now + wait_ms;
    while (watcher) {
        int64_t left = until - mono_ms();
        if (left <= 0)
            break;
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, watcher, left);
        if (s != NATS_OK) {
            if (s != NATS_TIMEOUT) { /* Not a spin while the watcher fails at once. */
                log_debug("cluster: members watch: %s", natsStatus_GetText(s));
                left = until - mono_ms();
                if (left > 0)
                    nanosleep(&(struct timespec){left / 1000, left % 1000 * 1000000L}, NULL);
            }
            break;
        }
        if (!e)
            continue; /* The end of the initial values. */
        pthread_mutex_lock(&cl.mu);
        if (kvEntry_Operation(e) == kvOp_Put)
            seen(kvEntry_Key(e), kvEntry_ValueString(e), mono_ms());
        else
            for (int i = 0; i < cl.nmembers; i++)
                if (strcmp(cl.members[i].name, kvEntry_Key(e)) == 0 &&
                    strcmp(cl.members[i].name, cl.node) != 0) {
                    gone(i, "stopped");
                    break;
                }
        pthread_mutex_unlock(&cl.mu);
        kvEntry_Destroy(e);
    }
    now = mono_ms();
    pthread_mutex_lock(&cl.mu);
    for (int i = 0; i < cl.nmembers; i++)
        if (strcmp(cl.members[i].name, cl.node) != 0 && now - cl.members[i].seen_ms > CL_DEAD_MS)
            gone(i--, "no heartbeat");
    pthread_mutex_unlock(&cl.mu);
}

static void *ticker_main(void *arg)
{
    (void)arg;
    thread_name("members");
    while (!atomic_load(&cl.stopping))
        member_tick(200);
    return NULL;
}

int member_start(void)
{
    if (pthread_create(&ticker, NULL, ticker_main, NULL) != 0) {
        log_error("cluster: cannot start the members thread");
        return -1;
    }
    ticker_started = true;
    return 0;
}

void member_stop(void)
{
    if (ticker_started)
        pthread_join(ticker, NULL);
    ticker_started = false;
}

void member_leave(void)
{
    if (!watcher) /* Never a member: the key may be another process's (a name in use). */
        return;
    kvWatcher_Stop(watcher);
    kvWatcher_Destroy(watcher);
    watcher = NULL;
    if (cl.kv_members && atomic_load(&cl.connected))
        kvStore_Delete(cl.kv_members, cl.node);
}
