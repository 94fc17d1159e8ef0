/* archive.c - the archiver: sealed segments rewritten at --archive-level.
 *
 * Frames are written at a fast level so ingest keeps up; once a segment is sealed, low
 * priority threads re-compress each of its frames at the archive level into NAME.arch (same
 * ids, same blocks, only smaller; frames of the older COL_LENGTHS layout become COL_LINES where
 * they can), fsync it, and rename it over the segment. The swap is atomic for every reader: a
 * crash leaves either the old file or the new one, both whole, and the index is removed before
 * the rename, so a stale one is never read. The writer thread writes the new index (it is the
 * only thread that deletes segments, so the segment cannot go from under it).
 *
 * The archive-only segment fields (archiving, archive_failed, archive_after) are read and
 * written under arch_mu with list_lock held; the segment's file fields under list_lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/thread.h"
#include "core/log.h"
#include "store/frame.h"
#include "store/store_internal.h"

#define ARCHIVE_RETRY_MS    30000       /* After a transient failure (space, memory, files). */
#define ARCHIVE_SPACE_SLACK (16u << 20) /* Free space kept beyond the copy and min-free. */
#define ARCHIVE_CHECK_EVERY 32          /* Frames between checks that the segment is still held. */
#define ARCHIVE_BUSY_BYTES  (4u << 20)  /* Pending ingest beyond which no segment is started. */

struct arch_frame {
    uint64_t first_id;
    uint32_t count, raw_len;
    uint64_t offset, new_offset;
    uint32_t frame_len, new_len;
};

/* The segment whose first id is first_id, if it is held and sealed; list_lock held. */
static struct segment *sealed_segment(struct store *s, uint64_t first_id)
{
    for (size_t i = 0; i + 1 < s->nsegs; i++)
        if (s->segs[i]->first_id == first_id)
            return s->segs[i];
    return NULL;
}

/* Whether the segment is still held (retention may delete it meanwhile). */
static bool segment_held(struct store *s, uint64_t first_id)
{
    pthread_rwlock_rdlock(&s->list_lock);
    bool held = sealed_segment(s, first_id) != NULL;
    pthread_rwlock_unlock(&s->list_lock);
    return held;
}

/* Take one sealed segment to archive (arch_mu and list_lock held): its frames, and a file
 * descriptor of its own. NULL when it cannot be taken now; it may be marked failed or put off. */
static struct arch_frame *archive_take(struct store *s, struct segment *seg, uint64_t free_bytes,
                                       size_t *n, int *fd)
{
    int64_t now = mono_ms();
    /* Its copy must fit beside --retention-min-free: archiving must never make retention delete
     * data, nor take the space ingest needs. */
    if (free_bytes < s->cfg.retention_min_free + seg->size + ARCHIVE_SPACE_SLACK) {
        seg->archive_after = now + ARCHIVE_RETRY_MS;
        return NULL;
    }
    size_t bi = block_find(s, seg->first_id), k = 0;
    uint64_t entries = 0;
    while (bi + k < s->nblocks && s->blocks[bi + k]->seg == seg)
        entries += s->blocks[bi + k++]->count;
    if (k == 0 || entries != seg->entries) {
        /* A frame on disk has no block (never published): rewriting would drop it. */
        log_warn("store: %s holds frames the index lacks; not archiving it", seg->path);
        seg->archive_failed = true;
        return NULL;
    }
    struct arch_frame *f = calloc(k, sizeof(*f));
    *fd = f ? dup(seg->fd) : -1;
    if (*fd < 0) {
        free(f);
        seg->archive_after = now + ARCHIVE_RETRY_MS;
        return NULL;
    }
    for (size_t j = 0; j < k; j++) {
        const struct block *b = s->blocks[bi + j];
        f[j] = (struct arch_frame){.first_id = b->first_id,
                                   .count = b->count,
                                   .raw_len = b->raw_len,
                                   .offset = b->offset,
                                   .frame_len = b->frame_len};
    }
    seg->archiving = true;
    *n = k;
    return f;
}

/* The oldest sealed segment that is to be archived and that no other archiver thread has. */
static struct arch_frame *archive_pick(struct store *s, uint64_t *first_id, size_t *n, int *fd)
{
    /* A writer with a backlog has the machine's attention: archiving starts when it has caught
     * up (a moment between batches is enough), and meanwhile takes no memory either. */
    if (atomic_load(&s->pending_bytes) > ARCHIVE_BUSY_BYTES)
        return NULL;
    uint64_t free_bytes = seg_disk_free(s);
    int64_t now = mono_ms();
    struct arch_frame *f = NULL;
    pthread_mutex_lock(&s->arch_mu);
    pthread_rwlock_rdlock(&s->list_lock);
    for (size_t i = 0; i + 1 < s->nsegs && !f; i++) {
        struct segment *c = s->segs[i];
        if (c->archived || c->archive_failed || c->removed || c->archiving || !c->entries ||
            c->archive_after > now)
            continue;
        f = archive_take(s, c, free_bytes, n, fd);
        if (f)
            *first_id = c->first_id;
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
    return f;
}

/* After an archive that did not swap: the segment (if still held) is free for another try,
 * now (rc 0: it changed meanwhile), later (transient errors) or never (it is unreadable). */
static void archive_release(struct store *s, uint64_t first_id, int rc)
{
    pthread_mutex_lock(&s->arch_mu);
    pthread_rwlock_rdlock(&s->list_lock);
    struct segment *seg = sealed_segment(s, first_id);
    if (seg) {
        seg->archiving = false;
        if (rc == -EIO || rc == -EBADMSG)
            seg->archive_failed = true;
        else if (rc < 0 && rc != -ECANCELED)
            seg->archive_after = mono_ms() + ARCHIVE_RETRY_MS;
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
}

/* Read, check and re-encode one frame at the archive level into out (bigbuf of *cap bytes).
 * Returns 0, -EBADMSG when the frame is unreadable or damaged, or -ENOMEM. */
static int archive_frame(struct store *s, int fd, const struct arch_frame *a, char **out,
                         size_t *cap, size_t *len)
{
    char *frame = malloc(a->frame_len);
    char *cols = bigbuf_get(a->raw_len);
    struct frame_hdr h;
    int rc = frame && cols ? -EBADMSG : -ENOMEM;
    if (rc == -EBADMSG &&
        frame_load(fd, a->offset, a->frame_len, a->count, a->raw_len, frame, cols, &h) &&
        h.first_id == a->first_id) {
        int layout = (int)h.layout;
        if (layout == COL_LENGTHS) { /* Written before COL_LINES existed: re-lay it out. */
            char *rows = bigbuf_get(a->raw_len);
            layout = rows && columns_to_rows(cols, a->raw_len, a->count, layout, rows) == 0
                         ? rows_to_columns(rows, a->raw_len, a->count, cols, NULL)
                         : -1;
            bigbuf_put(rows, a->raw_len);
        }
        size_t need = frame_bound(a->raw_len);
        if (need > *cap) {
            bigbuf_put(*out, *cap);
            *out = bigbuf_get(need);
            *cap = *out ? need : 0;
        }
        rc = layout < 0 ? -EBADMSG
             : *out     ? frame_encode(cols, a->raw_len, a->first_id, a->count, s->cfg.codec,
                                       s->cfg.archive_level, layout, *out, *cap, len)
                        : -ENOMEM;
        /* Some data (random hex, say) comes out larger at higher levels: keep the smaller. */
        if (rc == 0 && *len >= a->frame_len && a->frame_len <= *cap) {
            memcpy(*out, frame, a->frame_len);
            *len = a->frame_len;
        }
    }
    free(frame);
    bigbuf_put(cols, a->raw_len);
    return rc;
}

/* The block list's write lock, without queueing ahead of readers for long: a nice-19 thread
 * waiting for it would hold up every query behind it (the lock prefers writers). */
static void archive_wrlock(struct store *s)
{
    for (int i = 0; i < 2000; i++) {
        if (pthread_rwlock_trywrlock(&s->list_lock) == 0)
            return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    pthread_rwlock_wrlock(&s->list_lock);
}

/* Swap the archived file in for the segment. Returns 0; 1 when the segment went (deleted by
 * retention) or changed meanwhile; -errno when the files could not be swapped. */
static int archive_swap(struct store *s, uint64_t first_id, struct arch_frame *f, size_t n,
                        const char *tmp, int tfd, uint64_t size, uint64_t *old_size)
{
    pthread_mutex_lock(&s->arch_mu);
    archive_wrlock(s);
    struct segment *seg = sealed_segment(s, first_id);
    size_t bi = seg ? block_find(s, first_id) : 0;
    bool same = seg != NULL && bi + n <= s->nblocks;
    for (size_t j = 0; same && j < n; j++) {
        const struct block *b = s->blocks[bi + j];
        same = b->seg == seg && b->first_id == f[j].first_id && b->offset == f[j].offset;
    }
    same = same && (bi + n == s->nblocks || s->blocks[bi + n]->seg != seg);
    int rc = same ? 0 : 1;
    char idx[4200];
    seg_path(s, first_id, "idx", idx, sizeof(idx));
    if (rc == 0 && unlink(idx) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc == 0 && rename(tmp, seg->path) < 0) {
        rc = -errno;
        seg->indexed = 0; /* Its index is gone: the writer writes it again. */
    }
    if (seg) {
        seg->archiving = false;
        if (rc < 0)
            seg->archive_failed = true; /* The file system refuses: not again and again. */
    }
    if (rc == 0) {
        for (size_t j = 0; j < n; j++) {
            struct block *b = s->blocks[bi + j];
            b->offset = f[j].new_offset;
            b->frame_len = f[j].new_len;
        }
        int old = seg->fd;
        seg->fd = tfd;
        *old_size = seg->size;
        seg->size = size;
        seg->indexed = 0; /* The writer writes the new index (index_sealed). */
        seg->archived = true;
        close(old);
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
    return rc;
}

/* Rewrite the oldest sealed segment not yet archived. Returns false when there is none. */
static bool archive_segment(struct store *s)
{
    uint64_t first_id = 0;
    size_t n = 0;
    int fd = -1;
    struct arch_frame *f = archive_pick(s, &first_id, &n, &fd);
    if (!f)
        return false;
    char tmp[4200];
    seg_path(s, first_id, "arch", tmp, sizeof(tmp));
    int tfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    char *out = NULL;
    size_t cap = 0, len = 0;
    uint64_t off = SEG_HDR_LEN;
    int rc = tfd < 0 ? -errno : seg_write_at(tfd, seg_magic_archived, SEG_HDR_LEN, 0);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        if (atomic_load(&s->arch_stop) ||
            (j % ARCHIVE_CHECK_EVERY == 0 && j && !segment_held(s, first_id))) {
            rc = -ECANCELED; /* Stopping, or deleted by retention: its copy goes at once. */
            break;
        }
        rc = archive_frame(s, fd, &f[j], &out, &cap, &len);
        if (rc == 0)
            rc = seg_write_at(tfd, out, len, off);
        f[j].new_offset = off;
        f[j].new_len = (uint32_t)len;
        off += len;
    }
    bigbuf_put(out, cap);
    close(fd);
    if (rc == 0 && fdatasync(tfd) < 0)
        rc = -errno;
    uint64_t old_size = 0;
    int swapped = rc == 0 ? archive_swap(s, first_id, f, n, tmp, tfd, off, &old_size) : rc;
    free(f);
    if (swapped == 0) {
        seg_fsync_dir(s); /* The rename, durable. */
        log_info("store: archived %020" PRIu64 ".seg at %s level %d: %" PRIu64 " -> %" PRIu64
                 " bytes",
                 first_id, s->cfg.codec == FRAME_LZ4 ? "lz4" : "zstd",
                 s->cfg.codec == FRAME_LZ4 && s->cfg.archive_level > 12 ? 12 : s->cfg.archive_level,
                 old_size, off);
        return true;
    }
    if (swapped < 0 && swapped != -ECANCELED)
        log_warn("store: cannot archive %020" PRIu64 ".seg: %s%s", first_id, strerror(-swapped),
                 swapped == -EBADMSG ? " (left as it is)" : "");
    if (rc < 0) /* archive_swap released the segment itself. */
        archive_release(s, first_id, rc);
    if (tfd >= 0) {
        close(tfd);
        unlink(tmp);
    }
    return swapped == 1 || (swapped == -ECANCELED && !atomic_load(&s->arch_stop));
}

static void *archiver_main(void *arg)
{
    struct store *s = arg;
    thread_name("archiver");
    /* Ingest and queries first: archiving uses what CPU is left. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
        log_warn("store: archiver priority: %s", strerror(errno));
    while (!atomic_load(&s->arch_stop)) {
        if (archive_segment(s))
            continue;
        pthread_mutex_lock(&s->arch_mu);
        if (!atomic_load(&s->arch_stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->arch_cond, &s->arch_mu, &ts);
        }
        pthread_mutex_unlock(&s->arch_mu);
    }
    return NULL;
}

void archive_start(struct store *s)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* Not at a level no higher than the frames' own: that would copy them for nothing. */
    int narch = s->cfg.archive_level > s->cfg.compression_level ? (int)(cpus > 4   ? 4
                                                                        : cpus < 1 ? 1
                                                                                   : cpus)
                                                                : 0;
    for (int i = 0; i < narch; i++)
        if (pthread_create(&s->archivers[s->narchivers], NULL, archiver_main, s) == 0)
            s->narchivers++;
    if (narch && !s->narchivers)
        log_warn("store: cannot start the archiver; segments stay at level %d",
                 s->cfg.compression_level);
}

/* One more sealed segment to archive. */
void archive_wake(struct store *s)
{
    pthread_cond_signal(&s->arch_cond);
}

/* The archiver threads give up the segment they are on (its copy is removed) and end. */
void archive_stop(struct store *s)
{
    if (!s->narchivers)
        return;
    pthread_mutex_lock(&s->arch_mu);
    atomic_store(&s->arch_stop, true);
    pthread_cond_broadcast(&s->arch_cond);
    pthread_mutex_unlock(&s->arch_mu);
    for (int i = 0; i < s->narchivers; i++)
        pthread_join(s->archivers[i], NULL);
    s->narchivers = 0;
}
