/* segment.c - segment files: creation, fsync, index files, rolling over to the next segment,
 * and retention (size, age, free space), which deletes the oldest segments.
 *
 * Called on the writer thread (and by store_open before it starts), except seg_disk_free and
 * the small file helpers, which the archiver uses too. The writer is the only thread that
 * deletes segments. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "store/frame.h"
#include "store/index.h"
#include "store/store_internal.h"

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Write all of p[0..n) at off. Returns 0 or -errno (-EIO when the write made no progress). */
int seg_write_at(int fd, const char *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Make renames and new names in the data directory durable. */
void seg_fsync_dir(const struct store *s)
{
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

void seg_path(const struct store *s, uint64_t first_id, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".%s", s->dir, first_id, ext);
}

/* ------------------------------------------------------------------------------------------ */
/* Segments. */

struct segment *seg_create(struct store *s, uint64_t first_id)
{
    struct segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->first_id = first_id;
    seg->max_ts = INT64_MIN;
    seg->refs = 1; /* The list's. */
    seg_path(s, first_id, "seg", seg->path, sizeof(seg->path));
    if (mkdir(s->dir, 0750) < 0 && errno != EEXIST) {
        writer_error(s, "cannot create %s: %s", s->dir, strerror(errno));
        free(seg);
        return NULL;
    }
    seg->fd = open(seg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (seg->fd < 0) {
        writer_error(s, "cannot create %s: %s", seg->path, strerror(errno));
        free(seg);
        return NULL;
    }
    if (pwrite(seg->fd, seg_magic, SEG_HDR_LEN, 0) != SEG_HDR_LEN) {
        writer_error(s, "cannot write %s: %s", seg->path, strerror(errno));
        close(seg->fd);
        unlink(seg->path);
        free(seg);
        return NULL;
    }
    seg->size = SEG_HDR_LEN;
    seg_fsync_dir(s); /* The new file's name too, so fsync'ed frames in it can be found. */
    return seg;
}

struct segment *seg_active(struct store *s)
{
    return s->nsegs ? s->segs[s->nsegs - 1] : NULL;
}

int seg_add(struct store *s, struct segment *seg)
{
    pthread_rwlock_wrlock(&s->list_lock);
    int rc = ptrs_push((void ***)&s->segs, &s->nsegs, &s->capsegs, seg);
    pthread_rwlock_unlock(&s->list_lock);
    return rc;
}

void seg_ref(struct segment *seg)
{
    __atomic_add_fetch(&seg->refs, 1, __ATOMIC_RELAXED);
}

void seg_unref(struct segment *seg)
{
    if (__atomic_sub_fetch(&seg->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < seg->ngone; i++)
        block_destroy(seg->gone[i]);
    free(seg->gone);
    if (seg->fd >= 0)
        close(seg->fd);
    free(seg);
}

int seg_fsync(struct store *s, struct segment *seg)
{
    int64_t t0 = mono_us();
    int rc = 0;
    if (fdatasync(seg->fd) < 0) {
        rc = -errno;
        writer_error(s, "fsync %s: %s", seg->path, strerror(errno));
    }
    atomic_store(&s->last_fsync_us, mono_us() - t0);
    atomic_fetch_add(&s->fsyncs, 1);
    s->dirty = false;
    s->last_sync_ms = mono_ms();
    return rc;
}

/* The first of seg's blocks in the index, and (*n) how many it has. list_lock held. */
static size_t seg_blocks(const struct store *s, const struct segment *seg, size_t *n)
{
    size_t lo = block_find(s, seg->first_id), k = 0;
    while (lo + k < s->nblocks && s->blocks[lo + k]->seg == seg)
        k++;
    *n = k;
    return lo;
}

/* How many of seg's blocks still wait for their token filter. list_lock held. */
static size_t seg_tokens_pending(const struct store *s, const struct segment *seg)
{
    size_t n, lo = seg_blocks(s, seg, &n), pending = 0;
    for (size_t i = lo; i < lo + n; i++)
        pending += block_tokens_pending(s->blocks[i]);
    return pending;
}

int seg_write_index(struct store *s, struct segment *seg, bool force)
{
    if (seg->removed)
        return 0;
    char path[4200];
    seg_path(s, seg->first_id, "idx", path, sizeof(path));
    pthread_rwlock_rdlock(&s->list_lock);
    size_t n, lo = seg_blocks(s, seg, &n);
    size_t pending = seg_tokens_pending(s, seg);
    int rc = 1;
    if (!pending || force)
        rc = index_write(path, seg->size, s->blocks + lo, n);
    if (rc == 0) { /* Under the lock: the archiver resets these under its write lock. */
        seg->indexed = seg->size;
        seg->index_partial = pending != 0;
    }
    pthread_rwlock_unlock(&s->list_lock);
    if (rc < 0)
        log_warn("store: cannot write index %s: %s (it will be rebuilt at start-up)", path,
                 strerror(-rc));
    return rc;
}

/* Write the index of a sealed segment that lacks one (put off at sealing for the token
 * filters, or the archiver swapped its file), or whose index lacks token filters the builder
 * has built since; with all, of every such segment. An index is put off until every token
 * filter is there, but not for longer than INDEX_WAIT_MS: under a load that leaves the builder
 * no CPU, a crash would otherwise leave the frames of many segments to read at start-up.
 * Writer thread: the only one that deletes segments, so a segment stays while it is indexed. */
#define INDEX_WAIT_MS 10000

void seg_index_sealed(struct store *s, bool all)
{
    for (;;) {
        struct segment *todo = NULL;
        bool force = false;
        int64_t now = mono_ms();
        pthread_rwlock_rdlock(&s->list_lock);
        for (size_t i = 0; i + 1 < s->nsegs && !todo; i++) {
            struct segment *seg = s->segs[i];
            bool stale = seg->indexed != seg->size;
            if (!seg->entries || seg->removed || (!stale && !seg->index_partial))
                continue;
            force = stale && (all || now - seg->sealed_ms >= INDEX_WAIT_MS);
            if (force || seg_tokens_pending(s, seg) == 0)
                todo = seg;
        }
        pthread_rwlock_unlock(&s->list_lock);
        if (!todo)
            return;
        if (seg_write_index(s, todo, force) != 0 || !all) /* One a round; or it failed. */
            return;
    }
}

/* Seal the active segment once it is full: fsync it, index it, start the next. next_first: the
 * first id of the next chunk the caller will write, or 0 to take it from the queue. A segment
 * is named after the first id it will hold. */
void seg_maybe_roll(struct store *s, uint64_t next_first)
{
    struct segment *seg = seg_active(s);
    if (seg && seg->size < s->cfg.segment_size && !seg->removed)
        return;
    if (seg && !seg->removed) {
        seg_fsync(s, seg);
        seg->sealed_ms = mono_ms();
        /* Now if the builder has made every token filter, else later (seg_index_sealed). */
        seg_write_index(s, seg, false);
    }
    uint64_t next = next_first;
    if (!next) {
        pthread_mutex_lock(&s->q_mu);
        next = s->q_head ? s->q_head->first_id : s->next_id;
        pthread_mutex_unlock(&s->q_mu);
    }
    struct segment *ns = seg_create(s, next);
    if (ns && seg_add(s, ns) < 0) {
        close(ns->fd);
        free(ns);
    }
    if (seg) {
        archive_wake(s);  /* One more sealed segment to archive. */
        seg_retention(s); /* Sizes only grow a segment at a time: check each time one is sealed. */
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Retention and disk space. */

/* Delete the oldest segment with its blocks and files. Never the active (last) one. */
static void delete_oldest_segment(struct store *s, const char *why)
{
    pthread_rwlock_wrlock(&s->list_lock);
    if (s->nsegs < 2) {
        pthread_rwlock_unlock(&s->list_lock);
        return;
    }
    struct segment *seg = s->segs[0];
    size_t nb = 0;
    while (nb < s->nblocks && s->blocks[nb]->seg == seg)
        nb++;
    struct block **gone = malloc((nb ? nb : 1) * sizeof(*gone));
    if (!gone) {
        pthread_rwlock_unlock(&s->list_lock);
        return;
    }
    memcpy(gone, s->blocks, nb * sizeof(*gone));
    for (size_t i = 0; i < nb; i++)
        /* Its file goes below: a cursor holding it must not read (block_locate). */
        __atomic_store_n(&gone[i]->deleted, true, __ATOMIC_RELEASE);
    memmove(s->blocks, s->blocks + nb, (s->nblocks - nb) * sizeof(*s->blocks));
    s->nblocks -= nb;
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof(*s->segs));
    s->nsegs--;
    pthread_rwlock_unlock(&s->list_lock);
    for (size_t i = 0; i < nb; i++)
        block_uncache(s, gone[i]); /* The memory now; the summaries with the segment. */
    seg->gone = gone;
    seg->ngone = nb;
    /* No reader uses its file any more (they see `deleted` under list_lock): close it now, so
     * its space comes back with the unlink, whatever cursors still hold the summaries. */
    close(seg->fd);
    seg->fd = -1;
    char idx[4200];
    seg_path(s, seg->first_id, "idx", idx, sizeof(idx));
    if (unlink(seg->path) < 0 && errno != ENOENT)
        log_warn("store: removing %s: %s", seg->path, strerror(errno));
    unlink(idx);
    log_info("store: deleted segment %s (%s): %" PRIu64 " entries, %" PRIu64 " bytes", seg->path,
             why, seg->entries, seg->size);
    atomic_fetch_add(&s->segments_deleted, 1);
    atomic_fetch_add(&s->entries_deleted, seg->entries);
    seg_unref(seg); /* The list's: freed now, or by the last cursor on it. */
}

static uint64_t disk_total(struct store *s)
{
    uint64_t t = 0;
    pthread_rwlock_rdlock(&s->list_lock);
    for (size_t i = 0; i < s->nsegs; i++)
        t += s->segs[i]->size;
    pthread_rwlock_unlock(&s->list_lock);
    return t;
}

uint64_t seg_disk_free(struct store *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) < 0)
        return UINT64_MAX;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

void seg_retention(struct store *s)
{
    const struct store_config *c = &s->cfg;
    while (c->retention_size && s->nsegs > 1 && disk_total(s) > c->retention_size)
        delete_oldest_segment(s, "retention-size");
    if (c->retention_age_ms) {
        int64_t cutoff = now_ms() - c->retention_age_ms;
        while (s->nsegs > 1 && s->segs[0]->max_ts < cutoff)
            delete_oldest_segment(s, "retention-age");
    }
    if (c->retention_min_free) {
        while (s->nsegs > 1 && seg_disk_free(s) < c->retention_min_free)
            delete_oldest_segment(s, "retention-min-free");
        s->disk_low = seg_disk_free(s) < c->retention_min_free;
        if (s->disk_low)
            writer_error(s,
                         "less than --retention-min-free (%" PRIu64 " bytes) free in %s; "
                         "refusing writes until space returns",
                         c->retention_min_free, s->dir);
    }
}
