/* replica.c - the partitions this node keeps queryable: a local store per partition, fed
 * from the partition's stream.
 *
 * DATA_DIR/partitions/pN holds partition N's segment store and its id map (file "runs"). The
 * store numbers its entries 1, 2, 3 ... in stream order (its own, dense ids, which its blocks
 * need); the id map says which cluster ids those are: a record per run of a batch,
 *   u64 local_first | u64 cluster_first | u32 count | u32 0 | u64 stream sequence
 *   | i64 earliest arrival (recv_ms) | i64 latest arrival
 * written after the store took the run (store_append numbers at once; it writes later). The
 * map is small (one record per sender batch) and kept in memory for answering queries; the
 * arrival range of each run lets a query in the cluster's order (replica_runs) skip what
 * cannot be among its answers. A copy whose map is of the older form without arrivals
 * ("idmap") is rebuilt from the stream once.
 *
 * After a crash the store holds a prefix of what was appended. On opening, records past the
 * store's last id are dropped, a message the store holds only part of is fetched again and
 * its rest appended (the store continues the numbering, so the map stays true), and the
 * stream is read from the sequence after the last message held. A store that holds entries
 * the map does not cover (the map's write was lost with the machine) is rebuilt from the
 * stream, and so is one whose store misses entries inside the range it holds (a damaged
 * frame skipped), or which could not store what it should hold before the node stopped (the
 * file "broken": its store has a hole, or lost a deleted segment). Such a copy is started
 * over only when another copy holds the partition caught up or the stream still holds every
 * message; otherwise it is kept, out of queries, until a start when one does: starting over
 * would lose what only it holds.
 *
 * Messages the stream let go (its limits) before this copy read them, at opening or met as a
 * gap while following it, are taken from another copy that holds them (its export), in order,
 * before the next message is applied; what no copy holds is said in the log.
 *
 * The stream is read with an ordered push consumer (the library re-creates it after a gap or
 * a reconnect, from the next sequence), so messages are applied once and in order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cluster/cluster_internal.h"
#include "cluster/wire.h"
#include "core/log.h"
#include "store/store.h"

struct idrun {
    uint64_t local_first, cluster_first;
    uint32_t count, zero;
    uint64_t seq;
    int64_t recv_min, recv_max;
};

struct replica {
    int p;
    struct store *st;
    char dir[PATH_MAX];
    int map_fd;
    pthread_mutex_t mu; /* Guards map (appended by the consumer, read by queries). */
    struct idrun *map;
    size_t nmap, capmap;
    struct cl_sub sub;
    _Atomic uint64_t applied;       /* Last stream sequence applied. */
    _Atomic uint64_t applied_local; /* The last local id appended, in it or before. */
    _Atomic uint64_t pending;       /* Messages the stream had beyond it at the last delivery. */
    _Atomic bool ready;             /* Caught up with the stream once. */
    _Atomic bool broken;            /* A write failed: ask other copies. */
    _Atomic bool ending;            /* Being closed: an import in its consumer stops. */
    _Atomic uint64_t entries;
    struct lc_entry *scratch; /* The consumer's entries of one batch. */
    struct wire_scratch raw;  /* And its decompressed bytes. */
    int refs;                 /* reps[]'s, and each query's (under reps_mu). */
    bool dropping;            /* Not ours any more: its files go with the last reference. */
};

/* How an import of messages the stream let go ended (import_range). */
enum import_end { IMPORT_DONE, IMPORT_UNSETTLED, IMPORT_FAILED, IMPORT_INTERRUPTED };
static enum import_end import_range(struct replica *rep, uint64_t from_seq, uint64_t to_seq,
                                    bool on_manager, bool skip_unasked, bool skip_silent,
                                    uint64_t *skipped);

/* How long a copy that lacks messages the stream let go waits for another owner to catch up
 * and give them. */
#define IMPORT_WAIT_MS 10000
/* And, past that, for each message skipped while a copy may yet answer. */
#define IMPORT_GRACE_MS 2000

static struct replica *reps[CL_MAX_PARTITIONS];
static int64_t retry_at_ms[CL_MAX_PARTITIONS]; /* A failed open is tried again from then. */
/* Opens in a row that found messages before the stream's start which no copy could give: the
 * first is said, and then one in OPEN_SAY_EVERY (every 5 minutes), not every 5 s forever. */
static unsigned unsettled_opens[CL_MAX_PARTITIONS];
#define OPEN_SAY_EVERY 60
/* When the first of them was (0: none): after --cluster-missing-wait an empty copy begins
 * without what no copy gave. */
static int64_t unsettled_since_ms[CL_MAX_PARTITIONS];
static pthread_mutex_t reps_mu = PTHREAD_MUTEX_INITIALIZER;

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rmtree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    return rmdir(path) < 0 ? -errno : 0;
}

/* The file whose presence says a copy could not store what it should hold (become_broken). */
static void broken_path(const struct replica *rep, char *out, size_t n)
{
    snprintf(out, n, "%s/broken", rep->dir);
}

/* Leave the mark, durably where the disk allows (a store that failed a write may be on a disk
 * that fails this too: the hole check in reconcile is the fallback). */
static void mark_broken(const struct replica *rep)
{
    char path[PATH_MAX + 8];
    broken_path(rep, path, sizeof(path));
    int err = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || fsync(fd) < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    int dfd = err ? -1 : open(rep->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!err && (dfd < 0 || fsync(dfd) < 0))
        err = errno;
    if (dfd >= 0)
        close(dfd);
    if (err)
        log_warn("cluster: partition %d: cannot mark the copy for rebuilding (%s: %s)", rep->p,
                 path, strerror(err));
}

/* The copy cannot store what it should hold: queries go to other copies from now on, and the
 * mark makes the next start rebuild it (load_map: when it can be refilled). True the first
 * time (the caller says why). */
static bool become_broken(struct replica *rep)
{
    if (atomic_exchange(&rep->broken, true))
        return false;
    mark_broken(rep);
    return true;
}

static void on_store_commit(void *arg, const struct store_range *r, size_t n)
{
    struct replica *rep = arg;
    for (size_t i = 0; i < n; i++)
        if (r[i].failed && become_broken(rep))
            log_error("cluster: partition %d: the local store could not write entries %" PRIu64
                      "..%" PRIu64 "; queries go to other copies, and the copy is rebuilt "
                      "when the node next starts",
                      rep->p, r[i].lo, r[i].hi);
}

static struct store *open_store(struct replica *rep)
{
    const struct config *c = cl.cfg;
    size_t cache = c->memory_limit / (size_t)cl.partitions; /* A node may hold all of them. */
    struct store_config scfg = {
        .data_dir = rep->dir,
        .cache_size = cache < (4u << 20) ? (4u << 20) : cache,
        .fsync = (enum fsync_policy)c->fsync_policy,
        .fsync_interval_ms = c->fsync_interval_ms,
        .segment_size = c->segment_size,
        .codec = c->codec,
        .compression_level = c->compression_level,
        .archive_level = c->archive_level,
        .retention_size = c->retention_size,
        .retention_age_ms = c->retention_age_ms,
        .retention_min_free = c->retention_min_free,
    };
    struct store *st = store_open(&scfg);
    if (st)
        store_on_commit(st, on_store_commit, rep);
    return st;
}

static int map_add(struct replica *rep, const struct idrun *r, bool write_it)
{
    pthread_mutex_lock(&rep->mu);
    if (rep->nmap == rep->capmap) {
        size_t cap = rep->capmap ? rep->capmap * 2 : 256;
        struct idrun *g = realloc(rep->map, cap * sizeof(*g));
        if (!g) {
            pthread_mutex_unlock(&rep->mu);
            return -ENOMEM;
        }
        rep->map = g;
        rep->capmap = cap;
    }
    rep->map[rep->nmap++] = *r;
    pthread_mutex_unlock(&rep->mu);
    if (write_it && write(rep->map_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
        return -EIO;
    return 0;
}

/* The arrival range of entries e[0..n) into r. */
static void recv_range(const struct lc_entry *e, size_t n, struct idrun *r)
{
    r->recv_min = INT64_MAX;
    r->recv_max = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        r->recv_min = e[i].recv_ms < r->recv_min ? e[i].recv_ms : r->recv_min;
        r->recv_max = e[i].recv_ms > r->recv_max ? e[i].recv_ms : r->recv_max;
    }
}

/* Append entries e[0..n) (ids set to their cluster ids) of stream message seq, skipping the
 * first `skip` (already held). */
static int apply(struct replica *rep, struct lc_entry *e, size_t n, uint64_t seq)
{
    if (n == 0)
        return 0;
    uint64_t *cluster_ids = malloc(n * sizeof(*cluster_ids));
    if (!cluster_ids)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        cluster_ids[i] = e[i].id;
    while (store_backlogged(rep->st) && !atomic_load(&cl.stopping)) {
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
    int r = store_append(rep->st, e, n);
    if (r < 0) {
        free(cluster_ids);
        return r;
    }
    atomic_store(&rep->applied_local, e[n - 1].id);
    /* One record per run of consecutive ids on both sides. */
    for (size_t i = 0; i < n && r == 0;) {
        size_t j = i + 1;
        while (j < n && cluster_ids[j] == cluster_ids[j - 1] + 1 && e[j].id == e[j - 1].id + 1)
            j++;
        struct idrun run = {e[i].id, cluster_ids[i], (uint32_t)(j - i), 0, seq, 0, 0};
        recv_range(e + i, j - i, &run);
        r = map_add(rep, &run, true);
        i = j;
    }
    free(cluster_ids);
    atomic_fetch_add(&rep->entries, n);
    return r;
}

/* Decode a batch message into rep->scratch; returns the entry count, or -1. */
static long decode(struct replica *rep, const void *data, size_t len, struct wire_batch_in *b)
{
    char err[128];
    if (wire_batch_open_in(data, len, b, &rep->raw, err) < 0) {
        log_error("cluster: partition %d: a batch is damaged (%s); skipped", rep->p, err);
        return -1;
    }
    size_t n = 0;
    struct lc_entry e;
    while (wire_batch_next(b, &e))
        rep->scratch[n++] = e;
    return (long)n;
}

/* A fault for the tests: LOGCASTER_FAULT_APPLY_DELAY_MS=N makes this node's copies wait N ms
 * (1..999) before applying each stream message once caught up, so they lag as a busy copy
 * would. */
static long apply_delay_ms(void)
{
    static _Atomic long ms = -1;
    long v = atomic_load(&ms);
    if (v < 0) {
        const char *e = getenv("LOGCASTER_FAULT_APPLY_DELAY_MS");
        v = e ? strtol(e, NULL, 10) : 0;
        atomic_store(&ms, v > 0 && v < 1000 ? v : 0); /* Below a second: one nanosleep. */
        v = atomic_load(&ms);
    }
    return v;
}

/* A fault for the tests: LOGCASTER_FAULT_MISS_SEQ=N (or N-M) makes this node's copies pass
 * over message N (to M) of every partition's stream, as if the stream had let them go before
 * they read them: the next message finds the gap. */
static bool fault_missed(uint64_t seq)
{
    static _Atomic int64_t lo = -1, hi = -1;
    if (atomic_load(&lo) < 0) {
        const char *e = getenv("LOGCASTER_FAULT_MISS_SEQ");
        char *rest = NULL;
        long long a = e ? strtoll(e, &rest, 10) : 0;
        long long b = rest && *rest == '-' ? strtoll(rest + 1, NULL, 10) : a;
        atomic_store(&hi, a > 0 && b >= a ? b : 0);
        atomic_store(&lo, a > 0 && b >= a ? a : 0);
    }
    return atomic_load(&lo) && (int64_t)seq >= atomic_load(&lo) && (int64_t)seq <= atomic_load(&hi);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct replica *rep = arg;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t seq = meta->Sequence.Stream;
    atomic_store(&rep->pending, meta->NumPending);
    jsMsgMetaData_Destroy(meta);
    uint64_t applied = atomic_load(&rep->applied);
    if (atomic_load(&rep->ending) || (seq > applied && fault_missed(seq))) {
        natsMsg_Destroy(msg);
        return;
    }
    if (seq > applied && !atomic_load(&cl.stopping)) {
        /* A partition's stream has one subject, so a gap is messages its limits (or a purge)
         * removed before this copy read them: take them from another copy first, so that the
         * local ids stay in stream order, and say what none of them had. */
        if (seq > applied + 1 && atomic_load(&rep->broken))
            log_warn("cluster: partition %d: messages %" PRIu64 "..%" PRIu64 " left the stream "
                     "before this copy had them; not taken, as this copy cannot store",
                     rep->p, applied + 1, seq - 1);
        else if (seq > applied + 1 && import_range(rep, applied + 1, seq - 1, false, true, false,
                                                   NULL) == IMPORT_INTERRUPTED) {
            natsMsg_Destroy(msg); /* Not applied: the next start reads from the gap again. */
            return;
        }
        if (apply_delay_ms() && atomic_load(&rep->ready))
            nanosleep(&(struct timespec){0, apply_delay_ms() * 1000000}, NULL);
        struct wire_batch_in b;
        long n = decode(rep, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &b);
        if (n >= 0) {
            int r = apply(rep, rep->scratch, (size_t)n, seq);
            if (r < 0 && become_broken(rep))
                log_error("cluster: partition %d: cannot store stream message %" PRIu64 ": %s",
                          rep->p, seq, strerror(-r));
            wire_batch_close(&b);
        }
        atomic_store(&rep->applied, seq);
    }
    if (atomic_load(&rep->pending) == 0 && !atomic_exchange(&rep->ready, true))
        log_info("cluster: partition %d caught up (%" PRIu64 " entries held)", rep->p,
                 atomic_load(&rep->entries));
    natsMsg_Destroy(msg);
}

/* Can a copy that starts over be given everything again: by another node that holds the
 * partition caught up, or by the stream, holding every message from the first? */
static bool full_source_exists(int p)
{
    char names[CL_MAX_MEMBERS][CL_NAME_MAX];
    int n = member_candidates(p, names, NULL, CL_MAX_MEMBERS);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], cl.node) != 0)
            return true;
    char stream[CL_SUBJ_MAX];
    cl_stream_name(stream, sizeof(stream), p);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    bool all = false;
    if (js_GetStreamInfo(&si, cl.js, stream, NULL, &jerr) == NATS_OK) {
        all = si->State.FirstSeq <= 1;
        jsStreamInfo_Destroy(si);
    }
    return all;
}

/* Bring the map and the store into agreement after a stop or a crash (see the top). */
static int reconcile(struct replica *rep)
{
    struct store_stats st;
    store_get_stats(rep->st, &st);
    uint64_t held = st.last_id;
    size_t keep = rep->nmap;
    while (keep > 0 && rep->map[keep - 1].local_first > held)
        keep--;
    uint64_t map_end = keep ? rep->map[keep - 1].local_first + rep->map[keep - 1].count - 1 : 0;
    if (held > map_end && !(keep == 0 && held == 0)) {
        log_warn("cluster: partition %d: the store holds entries its id map lacks; rebuilding "
                 "it from the stream",
                 rep->p);
        return -ESTALE;
    }
    /* Retention deletes the oldest entries only: a store missing some inside the range it
     * holds lost them (a damaged or deleted segment), and answers would be short. */
    if (st.entries && st.entries != st.last_id - st.first_id + 1) {
        uint64_t lacks = st.last_id - st.first_id + 1 - st.entries;
        if (full_source_exists(rep->p)) {
            log_warn("cluster: partition %d: the store lacks %" PRIu64 " entries inside the "
                     "range it holds; rebuilding it from the stream",
                     rep->p, lacks);
            return -ESTALE;
        }
        log_warn("cluster: partition %d: the store lacks %" PRIu64 " entries inside the range it "
                 "holds, and neither the stream nor another copy holds everything it held; it "
                 "is kept out of queries, and rebuilt at a start when one does",
                 rep->p, lacks);
        atomic_store(&rep->broken, true);
    }
    rep->nmap = keep;
    if (ftruncate(rep->map_fd, (off_t)(keep * sizeof(struct idrun))) < 0 ||
        lseek(rep->map_fd, 0, SEEK_END) < 0)
        return -errno;
    atomic_store(&rep->entries, st.entries);
    if (keep == 0)
        return 0;
    struct idrun *last = &rep->map[keep - 1];
    uint64_t seq = last->seq;
    atomic_store(&rep->applied, seq);
    if (held >= last->local_first + last->count - 1)
        return 0;
    /* The last message is held in part: fetch it and append what is missing. */
    char stream[CL_SUBJ_MAX];
    cl_stream_name(stream, sizeof(stream), rep->p);
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(&msg, cl.js, stream, seq, NULL, &jerr);
    if (s != NATS_OK) {
        log_warn("cluster: partition %d: cannot fetch message %" PRIu64 " again (%s); rebuilding",
                 rep->p, seq, natsStatus_GetText(s));
        return -ESTALE;
    }
    /* Runs of this message, in order; the store holds up to `held`. */
    size_t first_rec = keep - 1;
    while (first_rec > 0 && rep->map[first_rec - 1].seq == seq)
        first_rec--;
    uint64_t have = held - rep->map[first_rec].local_first + 1; /* Entries of it held. */
    rep->nmap = first_rec; /* Re-recorded below for the part held and the part appended. */
    if (ftruncate(rep->map_fd, (off_t)(first_rec * sizeof(struct idrun))) < 0 ||
        lseek(rep->map_fd, 0, SEEK_END) < 0) {
        natsMsg_Destroy(msg);
        return -errno;
    }
    struct wire_batch_in b;
    long n = decode(rep, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &b);
    int r = 0;
    if (n >= 0 && (uint64_t)n >= have) {
        uint64_t local = rep->map[first_rec].local_first;
        for (uint64_t i = 0; i < have && r == 0;) { /* The held part, as it was numbered. */
            uint64_t j = i + 1;
            while (j < have && rep->scratch[j].id == rep->scratch[j - 1].id + 1)
                j++;
            struct idrun run = {local + i, rep->scratch[i].id, (uint32_t)(j - i), 0, seq, 0, 0};
            recv_range(rep->scratch + i, j - i, &run);
            r = map_add(rep, &run, true);
            i = j;
        }
        if (r == 0)
            r = apply(rep, rep->scratch + have, (size_t)n - have, seq);
    } else {
        r = -ESTALE;
    }
    if (n >= 0)
        wire_batch_close(&b);
    natsMsg_Destroy(msg);
    return r;
}

/* Start partition p's copy over: its files go. */
static void rmtree_partition(int p)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/partitions/p%d", cl.cfg->data_dir, p);
    rmtree(dir);
}

static int load_map(struct replica *rep)
{
    char path[PATH_MAX + 8];
    broken_path(rep, path, sizeof(path));
    if (access(path, F_OK) == 0) { /* Its store has a hole, or lost what it held. */
        if (full_source_exists(rep->p)) {
            log_warn("cluster: partition %d: its copy failed a write before the node stopped; "
                     "rebuilding it",
                     rep->p);
            return -ESTALE;
        }
        /* Starting over now would lose what only this copy still holds. */
        log_warn("cluster: partition %d: its copy failed a write before the node stopped, and "
                 "neither the stream nor another copy holds everything it held; it is kept out "
                 "of queries, and rebuilt at a start when one does",
                 rep->p);
        atomic_store(&rep->broken, true);
    }
    snprintf(path, sizeof(path), "%s/idmap", rep->dir);
    if (access(path, F_OK) == 0) { /* The older form, without arrival times. */
        log_info("cluster: partition %d: rebuilding the copy in its newer form", rep->p);
        return -ESTALE;
    }
    snprintf(path, sizeof(path), "%s/runs", rep->dir);
    rep->map_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (rep->map_fd < 0)
        return -errno;
    struct idrun r;
    while (read(rep->map_fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
        if (map_add(rep, &r, false) < 0)
            return -ENOMEM;
    return 0;
}

/* False when its consumer may still be running: then it is all left be. */
static bool replica_free(struct replica *rep)
{
    atomic_store(&rep->ending, true);
    if (!cl_sub_end(&rep->sub))
        return false; /* Its consumer may still write to it: keep it all. */
    store_close(rep->st);
    if (rep->map_fd >= 0)
        close(rep->map_fd);
    pthread_mutex_destroy(&rep->mu);
    free(rep->map);
    free(rep->scratch);
    wire_scratch_free(&rep->raw);
    free(rep);
    return true;
}

/* One export request to node (wire.h WK_EXPORT); the answer's body in *a, the message in
 * *msg (destroy it). 0, or -1 when the node did not answer it. from and to 0: the copy's
 * figures, with where message start_seq begins; min_seq: the node answers once its copy has
 * applied the stream that far (or after a short wait). */
static int export_ask(const char *node, uint8_t wire, int p, uint64_t from, uint64_t to,
                      uint64_t start_seq, uint64_t min_seq, int timeout_ms, natsMsg **msg,
                      struct wire_answer *a)
{
    struct buf req = {0};
    struct wire_request r = {.version = member_wire_for(wire),
                             .kind = WK_EXPORT,
                             .partition = (uint8_t)p,
                             .limit = start_seq,
                             .win_from_ms = (int64_t)from,
                             .win_to_ms = (int64_t)to,
                             .min_seq = min_seq,
                             .text = ""};
    char subj[CL_SUBJ_MAX], err[128];
    snprintf(subj, sizeof(subj), "%.64s.q.%.64s", cl.name, node);
    int rc = wire_request_encode(&req, &r);
    *msg = NULL;
    if (rc == 0 && natsConnection_Request(msg, cl.nc, subj, buf_head(&req), (int)buf_len(&req),
                                          timeout_ms) != NATS_OK)
        rc = -1;
    buf_free(&req);
    if (rc == 0 &&
        wire_answer_decode(natsMsg_GetData(*msg), (size_t)natsMsg_GetDataLength(*msg), a, err) < 0)
        rc = -1;
    if (rc < 0 && *msg) {
        natsMsg_Destroy(*msg);
        *msg = NULL;
    }
    return rc;
}

/* Where an import stands. */
struct import {
    uint64_t want, to;  /* The next message to take, and the last one wanted. */
    uint64_t next_held; /* In this pass: the first message after `want` a source holds. */
    bool answered;      /* In this pass: a source that has applied past `want` answered. */
    bool unanswered;    /* In this pass: a source did not answer, or is behind (may later). */
    bool failed;        /* This copy could not append: the import is over. */
    bool on_manager;    /* On the manager's thread: no waiting. */
};

static bool import_interrupted(const struct replica *rep)
{
    return atomic_load(&cl.stopping) || atomic_load(&rep->ending);
}

/* Append message seq, whole: its k entries in rep->scratch. */
static bool import_append(struct replica *rep, struct import *im, uint64_t seq, size_t k)
{
    int r = apply(rep, rep->scratch, k, seq);
    if (r < 0) {
        if (become_broken(rep))
            log_error("cluster: partition %d: cannot store the entries of message %" PRIu64
                      " taken from another copy: %s",
                      rep->p, seq, strerror(-r));
        im->failed = true;
        return false;
    }
    im->want = seq + 1;
    atomic_store(&rep->applied, seq); /* Held whole: other copies may take it from here. */
    return true;
}

/* The export answers whose rows a message being gathered points into (a message of
 * WIRE_BATCH_MAX_RAW bytes spans about 130 of them). */
struct held_msgs {
    natsMsg *m[160];
    int n;
};

static void held_release(struct held_msgs *h)
{
    while (h->n > 0)
        natsMsg_Destroy(h->m[--h->n]);
}

/* A message was appended: only the answer being read still holds rows to come. */
static void held_keep_last(struct held_msgs *h)
{
    for (int i = 0; i + 1 < h->n; i++)
        natsMsg_Destroy(h->m[i]);
    if (h->n > 1) {
        h->m[0] = h->m[h->n - 1];
        h->n = 1;
    }
}

/* Take what node `node` holds of the messages im wants, in order, through its export (one
 * request per chunk of about 512 KiB). A message is gathered whole before it is appended, so
 * a stop or a failure leaves no part of one. The source's rows are trusted up to the message
 * it has applied and can read, and only as one run of local ids from where its id map says
 * message `want` starts (its own retention may have cut the oldest). Stops at the first
 * message that copy lacks. */
static void import_from(struct replica *rep, const char *node, uint8_t wire, struct import *im)
{
    natsMsg *msg;
    struct wire_answer a;
    /* Its last queryable local id, the last message it holds whole, where `want` starts. On
     * the manager's thread, answered at once; else once it has applied the range (or after a
     * short wait). */
    /* On the manager's thread the figures are answered at once: a node that hangs holds up
     * the other partitions and a stop for a short while only. */
    if (export_ask(node, wire, rep->p, 0, 0, im->want, im->on_manager ? 0 : im->to,
                   im->on_manager ? 3000 : 10000, &msg, &a) < 0) {
        log_debug("cluster: partition %d: node %s did not answer for message %" PRIu64, rep->p,
                  node, im->want);
        im->unanswered = true;
        return;
    }
    uint64_t info[3] = {0, 0, 0};
    bool ok = a.type == WT_EXPORT_INFO && a.body_len == 24; /* 16 bytes: an older node. */
    if (ok)
        memcpy(info, a.body, 24);
    natsMsg_Destroy(msg);
    if (!ok) { /* Not holding it caught up (yet, or any more), or too old to say. */
        if (a.type != WT_EXPORT_INFO)
            im->unanswered = true;
        return;
    }
    uint64_t hi = info[0], applied = info[1], from = info[2];
    if (applied < im->want) { /* Behind: it has not applied that far (yet). */
        im->unanswered = true;
        return;
    }
    im->answered = true;
    struct held_msgs held = {.n = 0};
    uint64_t cur = 0; /* The message being gathered, */
    size_t k = 0;     /* and its entries so far. */
    bool ended = !hi || !from;
    while (!ended && from <= hi && !import_interrupted(rep)) {
        if (held.n == (int)(sizeof(held.m) / sizeof(held.m[0]))) { /* Not a message of ours. */
            im->unanswered = true;
            break;
        }
        if (export_ask(node, wire, rep->p, from, hi, 0, 0, 10000, &msg, &a) < 0 ||
            a.type != WT_EXPORT_ROWS) {
            if (msg)
                natsMsg_Destroy(msg);
            im->unanswered = true;
            break;
        }
        held.m[held.n++] = msg;
        const char *p = a.body, *end = a.body + a.body_len;
        struct lc_entry e;
        uint64_t seq = 0, local = 0;
        int got = 0;
        while (!ended && (got = wire_export_next_row(&p, end, &e, &seq, &local)) == 1) {
            if (local != from) { /* Not the next id: its store no longer holds some. */
                /* Its retention cut message `seq` at the start: the next one is whole. */
                if (!cur && seq >= im->want && seq < applied && seq + 1 < im->next_held)
                    im->next_held = seq + 1;
                cur = 0;
                ended = true;
                break;
            }
            if (seq != cur) { /* The message gathered is whole: the next one begins. */
                if (cur && !import_append(rep, im, cur, k))
                    ended = true;
                held_keep_last(&held);
                cur = k = 0;
                if (ended || seq != im->want || seq > im->to || seq > applied) {
                    if (seq > im->want && seq <= applied && seq < im->next_held)
                        im->next_held = seq; /* Its own gap: it holds this one. */
                    if (seq > applied && seq <= im->to)
                        im->unanswered = true; /* It may hold more once it has applied them. */
                    ended = true;
                    break;
                }
                cur = seq;
            }
            if (k == WIRE_BATCH_MAX_ENTRIES) { /* Not a message of ours: stop there. */
                im->unanswered = true;
                cur = 0;
                ended = true;
                break;
            }
            rep->scratch[k++] = e;
            from = local + 1;
        }
        if (got < 0 || (p == a.body && cur)) {
            /* A damaged answer, or none while a message is gathered: as if it had not
             * answered. */
            im->unanswered = true;
            cur = 0;
            break;
        }
        if (p == a.body) /* No row: the copy holds nothing more up to hi. */
            from = hi + 1;
    }
    /* Its rows ended with the message gathered, at the last id it can read: it is whole. */
    if (cur && from > hi && !im->failed && !import_interrupted(rep))
        import_append(rep, im, cur, k);
    held_release(&held);
}

/* Messages from_seq..to_seq of the partition's stream, which the stream no longer holds and
 * this copy lacks, taken from the other copies that hold them and appended in order (so the
 * local ids stay in stream order). A message that the copies that answer have passed without
 * holding it is skipped and said in the log.
 * - On the consumer's thread, while another owner is still catching up or a copy did not
 *   answer or is behind, it tries again for up to IMPORT_WAIT_MS after the last progress;
 *   then it gives them IMPORT_GRACE_MS more past the next message nobody has (a copy may be
 *   waiting, as this one, for that message, and hold the later ones once it goes on); then
 *   what no copy that answered holds is skipped.
 * - On the manager's thread it never waits: IMPORT_UNSETTLED when a copy may yet answer
 *   for what is left. (Owners still opening are not waited for: two opening at once would
 *   wait for each other.)
 * - Without skip_unasked, also IMPORT_UNSETTLED when no copy that has applied that far
 *   answered at all (an empty copy would rather wait than begin with a hole).
 * - With skip_silent (an empty copy that waited --cluster-missing-wait), neither: what no
 *   copy gives now is skipped.
 * IMPORT_FAILED: this copy could not append; IMPORT_INTERRUPTED: a stop, or the copy being
 * dropped. *skipped (when not NULL) counts the messages passed over. */
static enum import_end import_range(struct replica *rep, uint64_t from_seq, uint64_t to_seq,
                                    bool on_manager, bool skip_unasked, bool skip_silent,
                                    uint64_t *skipped)
{
    struct import im = {.want = from_seq, .to = to_seq, .on_manager = on_manager};
    if (skipped)
        *skipped = 0;
    int64_t wait_until = mono_ms() + (on_manager ? 0 : IMPORT_WAIT_MS);
    bool graced = on_manager;
    while (im.want <= to_seq && !im.failed && !import_interrupted(rep)) {
        char cand[8][CL_NAME_MAX];
        uint8_t wire[8];
        int n = member_candidates(rep->p, cand, wire, 8);
        im.next_held = UINT64_MAX;
        im.answered = im.unanswered = false;
        uint64_t pass_from = im.want;
        for (int c = 0; c < n && im.want <= to_seq && !im.failed && !import_interrupted(rep); c++) {
            if (strcmp(cand[c], cl.node) == 0)
                continue;
            uint64_t before = im.want;
            import_from(rep, cand[c], wire[c], &im);
            if (im.want > before)
                log_info("cluster: partition %d: took messages %" PRIu64 "..%" PRIu64
                         ", which the stream no longer holds, from node %s",
                         rep->p, before, im.want - 1, cand[c]);
        }
        if (im.want > pass_from && !on_manager) /* Progress: wait as long again. */
            wait_until = mono_ms() + IMPORT_WAIT_MS;
        if (im.want > pass_from || im.want > to_seq || im.failed || import_interrupted(rep))
            continue;
        bool may_later = im.unanswered || (!on_manager && member_other_owner_catching_up(rep->p));
        if (may_later && mono_ms() < wait_until) {
            nanosleep(&(struct timespec){0, 250 * 1000000}, NULL);
            continue;
        }
        if (!skip_silent && ((may_later && on_manager) || (!im.answered && !skip_unasked))) {
            if (unsettled_opens[rep->p] % OPEN_SAY_EVERY == 0)
                log_warn("cluster: partition %d: messages %" PRIu64 "..%" PRIu64 " left the "
                         "stream before this copy had them, and no other copy could give them "
                         "now",
                         rep->p, im.want, to_seq);
            return IMPORT_UNSETTLED;
        }
        /* No copy holds message `want`: skip to the first one a copy holds. */
        uint64_t resume = im.next_held <= to_seq ? im.next_held : to_seq + 1;
        if (may_later && !graced) { /* Only that one, and wait for them once more. */
            resume = im.want + 1;
            wait_until = mono_ms() + IMPORT_GRACE_MS;
            graced = true;
        }
        log_warn("cluster: partition %d: messages %" PRIu64 "..%" PRIu64 " left the stream "
                 "before this copy had them, and no other copy %s",
                 rep->p, im.want, resume - 1, im.answered ? "holds them" : "answered for them");
        if (skipped)
            *skipped += resume - im.want;
        im.want = resume;
        atomic_store(&rep->applied, resume - 1); /* Passed: the others need not wait for it. */
    }
    return im.failed ? IMPORT_FAILED : import_interrupted(rep) ? IMPORT_INTERRUPTED : IMPORT_DONE;
}

static struct replica *replica_open(int p)
{
    struct replica *rep = calloc(1, sizeof(*rep));
    if (!rep)
        return NULL;
    rep->p = p;
    rep->map_fd = -1;
    pthread_mutex_init(&rep->mu, NULL);
    rep->scratch = malloc(WIRE_BATCH_MAX_ENTRIES * sizeof(*rep->scratch));
    snprintf(rep->dir, sizeof(rep->dir), "%s/partitions/p%d", cl.cfg->data_dir, p);
    for (int attempt = 0; attempt < 2; attempt++) {
        int r = rep->scratch ? mkdirs(rep->dir) : -ENOMEM;
        if (r == 0)
            r = load_map(rep);
        if (r == 0 && !(rep->st = open_store(rep)))
            r = -EIO;
        if (r == 0)
            r = reconcile(rep);
        if (r == 0)
            break;
        if (r != -ESTALE || attempt == 1) {
            log_error("cluster: cannot open partition %d in %s: %s", p, rep->dir, strerror(-r));
            replica_free(rep);
            return NULL;
        }
        /* Start this copy over from the stream. */
        store_close(rep->st);
        rep->st = NULL;
        close(rep->map_fd);
        rep->map_fd = -1;
        rep->nmap = 0;
        /* What reconcile or load_map found out about the old copy is no longer true. */
        atomic_store(&rep->applied, 0);
        atomic_store(&rep->applied_local, 0);
        atomic_store(&rep->entries, 0);
        atomic_store(&rep->ready, false);
        atomic_store(&rep->broken, false);
        rmtree(rep->dir);
    }
    /* Caught up already when the stream holds nothing past what we have. */
    char stream[CL_SUBJ_MAX], subj[CL_SUBJ_MAX];
    cl_stream_name(stream, sizeof(stream), p);
    cl_subject(subj, sizeof(subj), "p", p);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, cl.js, stream, NULL, &jerr);
    if (s != NATS_OK) {
        /* Without it this copy cannot tell whether the stream let go of messages it lacks,
         * nor, for a stream with nothing new, that it is caught up (no message would come to
         * say so). Right after NATS restarts, JetStream may not answer yet. */
        log_warn("cluster: partition %d: cannot read stream %s's state: %s (%d); trying again "
                 "in 1 s",
                 p, stream, natsStatus_GetText(s), (int)jerr);
        replica_free(rep);
        retry_at_ms[p] = mono_ms() + 1000;
        return NULL;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    /* Messages the stream let go (its limits) that this copy lacks come from another copy
     * first: an empty copy takes them here, and tries again later when no copy answers. One
     * that holds older entries takes them as the gap its first message shows (on_msg, which
     * may wait for the other copies), or here when the stream holds none. */
    uint64_t applied = atomic_load(&rep->applied), skipped = 0;
    int64_t waited_s = 0;
    bool give_up = false;
    if (first > 1 && applied + 1 < first && (applied == 0 || first > last)) {
        int64_t now = mono_ms(), wait = cl.cfg->cluster_missing_wait_ms;
        /* An empty copy waits for a copy that holds them (that node may be restarting), but
         * not for ever: the stream's own messages, and every new one, are unqueryable here
         * until it begins. What no copy gives then is skipped, and said. */
        give_up = applied == 0 && wait > 0 && unsettled_since_ms[p] &&
                  now - unsettled_since_ms[p] >= wait;
        enum import_end end = import_range(rep, applied + 1, first - 1, true,
                                           applied > 0 || give_up, give_up, &skipped);
        waited_s = (now - unsettled_since_ms[p]) / 1000;
        if (end != IMPORT_DONE) { /* Try again, as copies become ready. */
            if (!unsettled_since_ms[p])
                unsettled_since_ms[p] = now;
            if (unsettled_opens[p]++ % OPEN_SAY_EVERY == 0)
                log_warn("cluster: partition %d: the stream starts at message %" PRIu64
                         " and what came before could not be taken from another copy; trying "
                         "again every 5 s%s",
                         p, first, unsettled_opens[p] > 1 ? " (said every 5 minutes)" : "");
            if (replica_free(rep) && applied == 0)
                rmtree_partition(p);
            retry_at_ms[p] = mono_ms() + 5000;
            return NULL;
        }
        atomic_store(&rep->applied, first - 1);
    } else {
        unsettled_opens[p] = 0; /* Nothing to wait for: a later episode starts afresh. */
        unsettled_since_ms[p] = 0;
    }
    if (last <= atomic_load(&rep->applied))
        atomic_store(&rep->ready, true);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    uint64_t from = atomic_load(&rep->applied) + 1;
    so.Config.DeliverPolicy = from > 1 ? js_DeliverByStartSequence : js_DeliverAll;
    so.Config.OptStartSeq = from > 1 ? from : 0;
    s = js_Subscribe(&rep->sub.sub, cl.js, subj, on_msg, rep, NULL, &so, &jerr);
    if (s == NATS_OK)
        cl_sub_watch(&rep->sub);
    if (s != NATS_OK) {
        log_error("cluster: cannot read stream %s: %s (%d)", stream, natsStatus_GetText(s),
                  (int)jerr);
        replica_free(rep);
        return NULL;
    }
    if (give_up && skipped)
        log_warn("cluster: partition %d: no copy gave %" PRIu64 " of messages 1..%" PRIu64
                 " in %" PRId64 " s (--cluster-missing-wait); this copy begins without them",
                 p, skipped, first - 1, waited_s);
    unsettled_opens[p] = 0;
    unsettled_since_ms[p] = 0;
    log_info("cluster: holding partition %d (%" PRIu64 " entries, reading from message %" PRIu64
             ")",
             p, atomic_load(&rep->entries), from);
    return rep;
}

void replica_sync(void)
{
    for (int p = 0; p < cl.partitions; p++) {
        pthread_mutex_lock(&reps_mu);
        struct replica *have = reps[p];
        pthread_mutex_unlock(&reps_mu);
        bool owner = member_owns(p);
        if (!owner) /* A later episode is said, and waited for, from its start. */
            unsettled_opens[p] = 0, unsettled_since_ms[p] = 0;
        if (!have && owner && mono_ms() >= retry_at_ms[p]) {
            struct replica *rep = replica_open(p);
            pthread_mutex_lock(&reps_mu);
            if (rep)
                rep->refs = 1;
            reps[p] = rep;
            pthread_mutex_unlock(&reps_mu);
        } else if (have && !owner && member_may_drop(p)) {
            /* Its owners hold it caught up: this copy goes (after the queries using it). */
            pthread_mutex_lock(&reps_mu);
            reps[p] = NULL;
            have->dropping = true;
            pthread_mutex_unlock(&reps_mu);
            replica_release(have);
        }
    }
}

void replica_close_all(void)
{
    for (int p = 0; p < CL_MAX_PARTITIONS; p++) {
        pthread_mutex_lock(&reps_mu);
        struct replica *rep = reps[p];
        reps[p] = NULL;
        pthread_mutex_unlock(&reps_mu);
        replica_release(rep); /* Queries ended before (the pool stopped). */
    }
}

struct replica *replica_acquire(int p)
{
    if (p < 0 || p >= CL_MAX_PARTITIONS)
        return NULL;
    pthread_mutex_lock(&reps_mu);
    struct replica *rep = reps[p];
    if (rep && (!atomic_load(&rep->ready) || atomic_load(&rep->broken)))
        rep = NULL;
    if (rep)
        rep->refs++;
    pthread_mutex_unlock(&reps_mu);
    return rep;
}

static void replica_drop(struct replica *rep)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", rep->dir);
    bool remove_files = rep->dropping;
    int p = rep->p;
    if (replica_free(rep) && remove_files) {
        rmtree(dir);
        log_info("cluster: partition %d handed over to its owners; local copy removed", p);
    }
}

void replica_release(struct replica *rep)
{
    if (!rep)
        return;
    pthread_mutex_lock(&reps_mu);
    bool last = --rep->refs == 0;
    pthread_mutex_unlock(&reps_mu);
    if (last)
        replica_drop(rep);
}

struct store *replica_store(const struct replica *rep)
{
    return rep->st;
}

bool replica_has_seq(struct replica *rep, uint64_t seq)
{
    /* applied is stored after applied_local: read in the other order, the local id is at
     * least the one of seq's last entry. */
    return atomic_load(&rep->applied) >= seq &&
           store_done_id(rep->st) >= atomic_load(&rep->applied_local);
}

uint64_t replica_global_id(struct replica *rep, uint64_t local_id)
{
    uint64_t id = 0;
    pthread_mutex_lock(&rep->mu);
    size_t lo = 0, hi = rep->nmap;
    while (lo < hi) { /* The last run starting at or before local_id. */
        size_t mid = lo + (hi - lo) / 2;
        if (rep->map[mid].local_first <= local_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const struct idrun *r = &rep->map[lo - 1];
        if (local_id - r->local_first < r->count)
            id = r->cluster_first + (local_id - r->local_first);
    }
    pthread_mutex_unlock(&rep->mu);
    return id;
}

bool replica_seq_of(struct replica *rep, uint64_t local_id, uint64_t *seq)
{
    bool found = false;
    pthread_mutex_lock(&rep->mu);
    size_t lo = 0, hi = rep->nmap;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rep->map[mid].local_first <= local_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && local_id - rep->map[lo - 1].local_first < rep->map[lo - 1].count) {
        *seq = rep->map[lo - 1].seq;
        found = true;
    }
    pthread_mutex_unlock(&rep->mu);
    return found;
}

uint64_t replica_local_of_seq(struct replica *rep, uint64_t seq)
{
    pthread_mutex_lock(&rep->mu);
    size_t lo = 0, hi = rep->nmap;
    while (lo < hi) { /* The first run of a message at seq or later (seqs rise with ids). */
        size_t mid = lo + (hi - lo) / 2;
        if (rep->map[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t local = lo < rep->nmap ? rep->map[lo].local_first : 0;
    pthread_mutex_unlock(&rep->mu);
    return local;
}

uint64_t replica_whole_seq(struct replica *rep, uint64_t *readable_local)
{
    /* One reading of the writer's progress for both answers; applied is stored after
     * applied_local, so read first, it is never ahead of it. */
    uint64_t done = store_done_id(rep->st);
    uint64_t applied = atomic_load(&rep->applied), seq = 0;
    *readable_local = done;
    if (atomic_load(&rep->applied_local) <= done)
        return applied;
    /* The message of the last queryable entry may be held in part: the one before it. */
    return replica_seq_of(rep, done, &seq) && seq > 0 ? seq - 1 : 0;
}

static bool held_ready(int p)
{
    pthread_mutex_lock(&reps_mu);
    struct replica *rep = reps[p];
    bool ok = rep && atomic_load(&rep->ready) && !atomic_load(&rep->broken);
    pthread_mutex_unlock(&reps_mu);
    return ok;
}

void replica_ready_list(char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (int p = 0; p < cl.partitions; p++) {
        if (held_ready(p) && len + 5 < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%d", len ? "," : "", p);
    }
}

void replica_report(void (*put)(void *arg, const char *name, const char *value), void *arg)
{
    for (int p = 0; p < cl.partitions; p++) {
        pthread_mutex_lock(&reps_mu);
        struct replica *rep = reps[p];
        pthread_mutex_unlock(&reps_mu);
        if (!rep)
            continue;
        char name[48], val[160];
        snprintf(name, sizeof(name), "cluster_partition_%d", p);
        snprintf(val, sizeof(val),
                 "held entries=%" PRIu64 " applied=%" PRIu64 " lag=%" PRIu64 " state=%s",
                 atomic_load(&rep->entries), atomic_load(&rep->applied), atomic_load(&rep->pending),
                 atomic_load(&rep->broken)  ? "broken"
                 : atomic_load(&rep->ready) ? "ready"
                                            : "catching-up");
        put(arg, name, val);
    }
}

bool replica_figures(int p, uint64_t *entries, uint64_t *lag, bool *ready)
{
    pthread_mutex_lock(&reps_mu);
    struct replica *rep = p >= 0 && p < CL_MAX_PARTITIONS ? reps[p] : NULL;
    if (rep) {
        *entries = atomic_load(&rep->entries);
        *lag = atomic_load(&rep->pending);
        *ready = atomic_load(&rep->ready) && !atomic_load(&rep->broken);
    }
    pthread_mutex_unlock(&reps_mu);
    return rep != NULL;
}

struct replica_run *replica_runs(struct replica *rep, size_t *n)
{
    pthread_mutex_lock(&rep->mu);
    struct replica_run *out = rep->nmap ? malloc(rep->nmap * sizeof(*out)) : NULL;
    *n = out ? rep->nmap : 0;
    for (size_t i = 0; i < *n; i++) {
        const struct idrun *r = &rep->map[i];
        out[i] = (struct replica_run){r->local_first, r->cluster_first, r->count, r->recv_min,
                                      r->recv_max};
    }
    pthread_mutex_unlock(&rep->mu);
    return out;
}

uint64_t replica_local_id(struct replica *rep, uint64_t id)
{
    uint64_t local = 0;
    pthread_mutex_lock(&rep->mu);
    for (size_t i = rep->nmap; i-- > 0 && !local;) /* Newest first: what is asked for most. */
        if (id - rep->map[i].cluster_first < rep->map[i].count)
            local = rep->map[i].local_first + (id - rep->map[i].cluster_first);
    pthread_mutex_unlock(&rep->mu);
    return local;
}
