/* writer.c - the write path: the pending queue, the encoder threads, the writer thread.
 *
 * Reactors serialize entries into the pending queue (store_append: ids assigned in order, no
 * disk I/O). Encoder threads, and the writer when idle, turn sealed chunks into frames and
 * block summaries, all but the token filter: it costs a quarter of ingest, so the builder
 * (tokbuild.c) makes it from idle CPU after the block is published. The writer writes the encoded
 * chunks in id order, fsyncs per policy, publishes each frame as a block, and tells the commit
 * listener which ranges the run decided. Between runs it does the periodic duties: retention, index
 * files, a due batch fsync. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/thread.h"
#include "core/log.h"
#include "store/frame.h"
#include "store/store_internal.h"

#define BACKLOG_MAX   (32u << 20) /* Pending bytes beyond which ingest pauses. */
#define FREE_CHECK_MS 250         /* Between checks of retention and free space. */

void writer_error(struct store *s, const char *fmt, ...)
{
    char msg[sizeof(s->error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->err_mu);
    bool changed = strcmp(msg, s->error) != 0;
    snprintf(s->error, sizeof(s->error), "%s", msg);
    pthread_mutex_unlock(&s->err_mu);
    if (changed) /* Log a problem once, not once per batch. */
        log_error("store: %s", msg);
}

void writer_error_clear(struct store *s)
{
    pthread_mutex_lock(&s->err_mu);
    bool had = s->error[0] != 0;
    s->error[0] = 0;
    pthread_mutex_unlock(&s->err_mu);
    if (had)
        log_info("store: writing again");
}

void store_on_commit(struct store *s, store_commit_fn fn, void *arg)
{
    s->on_commit = fn;
    s->on_commit_arg = arg;
}

/* Note that [lo, hi] was decided in this write run, merging it into the run's last range when
 * it continues it with the same fate. Out of memory, it merges anyway, and a failure wins: an
 * error may then be reported for lines that were stored, never success for lost ones. */
static void run_note(struct store *s, uint64_t lo, uint64_t hi, bool failed)
{
    struct store_range *last = s->nrun ? &s->run[s->nrun - 1] : NULL;
    if (last && last->hi + 1 == lo && last->failed == failed) {
        last->hi = hi;
        return;
    }
    if (s->nrun == s->caprun) {
        size_t cap = s->caprun ? 2 * s->caprun : 16;
        struct store_range *grown = realloc(s->run, cap * sizeof(*grown));
        if (!grown && last) {
            last->hi = hi;
            last->failed |= failed;
            return;
        }
        if (!grown)
            abort(); /* Not even 16 ranges: nothing can be acknowledged. */
        s->run = grown;
        s->caprun = cap;
    }
    s->run[s->nrun++] = (struct store_range){lo, hi, failed};
}

/* ------------------------------------------------------------------------------------------ */
/* Appending (reactor threads). */

int store_append(struct store *s, struct lc_entry *e, size_t n)
{
    pthread_mutex_lock(&s->q_mu);
    for (size_t i = 0; i < n; i++) {
        size_t need = rec_size(&e[i]);
        struct pchunk *p = s->q_tail;
        if (!p || p->state != PC_OPEN || p->len >= PCHUNK_TARGET || p->len + need > p->cap) {
            size_t cap = PCHUNK_TARGET + 256 * 1024;
            if (need > cap)
                cap = need;
            {
                if (p && p->state == PC_OPEN)
                    p->state = PC_SEALED; /* Full: an encoder may take it now. */
                p = calloc(1, sizeof(*p));
                if (p)
                    p->buf = bigbuf_get(cap);
                if (!p || !p->buf) {
                    free(p);
                    pthread_mutex_unlock(&s->q_mu);
                    log_error("store: out of memory queueing entries");
                    return -ENOMEM;
                }
                p->cap = cap;
                p->first_id = s->next_id;
                if (s->q_tail)
                    s->q_tail->next = p;
                else
                    s->q_head = p;
                s->q_tail = p;
                atomic_fetch_add(&s->pending_bytes, sizeof(*p));
            }
        }
        rec_put(p->buf + p->len, &e[i]);
        p->len += need;
        p->count++;
        e[i].id = s->next_id++;
        atomic_fetch_add(&s->pending_bytes, need);
    }
    pthread_cond_broadcast(&s->q_cond);
    pthread_mutex_unlock(&s->q_mu);
    atomic_fetch_add(&s->appended, n);
    return 0;
}

uint64_t store_done_id(struct store *s)
{
    if (!s) /* A cluster member has no store of its own. */
        return 0;
    return atomic_load_explicit(&s->done_id, memory_order_acquire);
}

bool store_backlogged(struct store *s)
{
    return atomic_load_explicit(&s->pending_bytes, memory_order_relaxed) > BACKLOG_MAX;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding and writing. */

/* Count a failed batch for the statistics; its ids reach the commit listener through the
 * write run (run_note). */
static void mark_failed(struct store *s, uint64_t lo, uint64_t hi)
{
    atomic_fetch_add(&s->write_errors, 1);
    atomic_fetch_add(&s->failed_entries, hi - lo + 1);
}

/* Build a sealed chunk's block summary and frame (any thread, no lock held). */
static void encode_chunk(struct store *s, struct pchunk *p)
{
    struct block *b = calloc(1, sizeof(*b));
    char *cols = bigbuf_get(p->len);
    int rc = b && cols ? 0 : -ENOMEM;
    if (rc == 0) {
        b->first_id = p->first_id;
        b->count = p->count;
        b->raw_len = (uint32_t)p->len;
        p->offs = malloc(((size_t)p->count + 1) * sizeof(uint32_t));
        rc = p->offs ? rows_to_columns(p->buf, p->len, p->count, cols, p->offs) : -ENOMEM;
    }
    int layout = rc;
    if (rc >= 0)
        rc = block_summarize(b, cols, layout, false);
    if (rc == 0) {
        p->fcap = frame_bound(p->len);
        p->frame = bigbuf_get(p->fcap);
        rc = p->frame ? frame_encode(cols, p->len, p->first_id, p->count, s->cfg.codec,
                                     s->cfg.compression_level, layout, p->frame, p->fcap, &p->flen)
                      : -ENOMEM;
    }
    bigbuf_put(cols, p->len);
    if (rc < 0) {
        log_error("store: cannot encode entries %" PRIu64 "..%" PRIu64 ": %s", p->first_id,
                  p->first_id + p->count - 1, strerror(-rc));
        block_destroy(b);
        b = NULL;
    }
    p->b = b;
}

/* Write an encoded chunk's frame to the active segment and publish its block (writer thread
 * only). Returns 0, or -1 if it could not be stored (its ids are then marked failed). */
static int write_chunk(struct store *s, struct pchunk *p)
{
    struct segment *seg = seg_active(s);
    struct block *b = p->b;
    if (!b)
        goto fail;
    if (!seg || seg->removed || s->disk_low) {
        if (!seg || seg->removed)
            writer_error(s, "no segment to write to in %s", s->dir);
        goto fail;
    }
    int wrc = seg_write_at(seg->fd, p->frame, p->flen, seg->size);
    if (wrc < 0) {
        writer_error(s, "cannot write %s: %s", seg->path, strerror(-wrc));
        /* Leave no partial frame behind: the file ends with whole frames only. */
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    /* A segment deleted under us would take acknowledged data with it: check before acking. */
    struct stat st;
    if (fstat(seg->fd, &st) == 0 && st.st_nlink == 0) {
        writer_error(s, "%s was removed while in use; starting a new segment", seg->path);
        seg->removed = true; /* Its blocks stay readable through the open file. */
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    struct cblock *c = cblock_new(b, p->buf, p->cap, p->offs);
    if (c)
        p->offs = NULL; /* Taken over with the rows. */
    if (!c) {
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    p->buf = NULL; /* Now owned by the cache. */
    p->b = NULL;
    b->seg = seg;
    b->offset = seg->size;
    b->frame_len = (uint32_t)p->flen;
    seg->size += p->flen;
    seg->raw_bytes += b->raw_len;
    seg->entries += b->count;
    if (b->max_ts > seg->max_ts)
        seg->max_ts = b->max_ts;
    s->dirty = true;
    atomic_store(&s->unsynced, true);
    cache_add_written(s, c);
    if (block_publish(s, b) < 0)
        log_error("store: out of memory publishing a block");
    else
        tokb_wake(s);
    return 0;
fail:
    mark_failed(s, p->first_id, p->first_id + p->count - 1);
    return -1;
}

static void pchunk_free(struct store *s, struct pchunk *p)
{
    atomic_fetch_sub(&s->pending_bytes, p->len + sizeof(*p));
    block_destroy(p->b);
    bigbuf_put(p->frame, p->fcap);
    free(p->offs);
    bigbuf_put(p->buf, p->cap);
    free(p);
}

/* The first sealed chunk, now marked ENCODING; with seal_open, the open tail is sealed and
 * taken when nothing else waits (an idle writer does not wait for a chunk to fill). q_mu
 * held. */
static struct pchunk *take_for_encoding(struct store *s, bool seal_open)
{
    for (struct pchunk *p = s->q_head; p; p = p->next) {
        if (p->state == PC_SEALED || (seal_open && p->state == PC_OPEN && !p->next)) {
            p->state = PC_ENCODING;
            return p;
        }
    }
    return NULL;
}

static void *encoder_main(void *arg)
{
    struct store *s = arg;
    thread_name("encoder");
    pthread_mutex_lock(&s->q_mu);
    while (!s->stopping) {
        struct pchunk *p = take_for_encoding(s, false);
        if (!p) {
            pthread_cond_wait(&s->q_cond, &s->q_mu);
            continue;
        }
        pthread_mutex_unlock(&s->q_mu);
        encode_chunk(s, p);
        pthread_mutex_lock(&s->q_mu);
        p->state = PC_ENCODED;
        pthread_cond_broadcast(&s->q_cond);
    }
    pthread_mutex_unlock(&s->q_mu);
    return NULL;
}

/* Periodic duties: retention and disk space, index files, a due batch fsync. Writer thread,
 * no lock held. */
static void writer_duties(struct store *s)
{
    if (mono_ms() - s->last_free_check >= FREE_CHECK_MS) {
        s->last_free_check = mono_ms();
        seg_retention(s);
        seg_index_sealed(s, false);
    }
    seg_maybe_roll(s, 0);
}

/* --fsync batch: the fdatasync that follows a write within --fsync-interval runs here, on a
 * thread of its own. The writer used to call it between writes, and on a busy machine an
 * fdatasync takes milliseconds to tens of them: no frame was written, and no acknowledgement
 * released, meanwhile. Whatever was written before unsynced is cleared is covered by the
 * fdatasync that starts after; a segment is also synced by the writer before it is sealed. */
static void *syncer_main(void *arg)
{
    struct store *s = arg;
    thread_name("syncer");
    pthread_mutex_lock(&s->sync_mu);
    while (!s->sync_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)s->cfg.fsync_interval_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&s->sync_cond, &s->sync_mu, &ts);
        if (s->sync_stop || !atomic_exchange(&s->unsynced, false))
            continue;
        pthread_mutex_unlock(&s->sync_mu);
        pthread_rwlock_rdlock(&s->list_lock);
        struct segment *seg = seg_active(s);
        if (seg)
            seg_ref(seg);
        pthread_rwlock_unlock(&s->list_lock);
        if (seg) {
            int64_t t0 = mono_ns();
            if (fdatasync(seg->fd) < 0)
                writer_error(s, "fsync %s: %s", seg->path, strerror(errno));
            atomic_store(&s->last_fsync_us, (mono_ns() - t0) / 1000);
            atomic_fetch_add(&s->fsyncs, 1);
            seg_unref(seg);
        }
        pthread_mutex_lock(&s->sync_mu);
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

/* Write a run of encoded chunks in order, fsync per policy, then acknowledge them. */
static void write_run(struct store *s, struct pchunk *list)
{
    bool any_ok = false, any_failed = false;
    uint64_t first_id = list->first_id, last_id = 0;
    s->nrun = 0;
    for (struct pchunk *p = list, *next; p; p = next) {
        next = p->next;
        bool ok = write_chunk(s, p) == 0;
        if (ok)
            any_ok = true;
        else
            any_failed = true;
        last_id = p->first_id + p->count - 1;
        run_note(s, p->first_id, last_id, !ok);
        pchunk_free(s, p);
        seg_maybe_roll(s, next ? next->first_id : last_id + 1);
    }
    struct segment *seg = seg_active(s);
    /* Under "always" an acknowledgement promises the fsync: if it failed, so did the lines. */
    if (seg && s->dirty && s->cfg.fsync == FSYNC_ALWAYS && seg_fsync(s, seg) < 0 && any_ok) {
        mark_failed(s, first_id, last_id);
        s->nrun = 0;
        run_note(s, first_id, last_id, true);
    }
    if (any_ok && !any_failed && !s->disk_low)
        writer_error_clear(s);
    atomic_store(&s->done_id, last_id);
    if (s->on_commit)
        s->on_commit(s->on_commit_arg, s->run, s->nrun);
}

static void *writer_main(void *arg)
{
    struct store *s = arg;
    thread_name("writer");
    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        /* 1. Write what is encoded, in id order. */
        if (s->q_head && s->q_head->state == PC_ENCODED) {
            struct pchunk *list = s->q_head, *last = list;
            while (last->next && last->next->state == PC_ENCODED)
                last = last->next;
            s->q_head = last->next;
            if (!s->q_head)
                s->q_tail = NULL;
            last->next = NULL;
            pthread_mutex_unlock(&s->q_mu);
            write_run(s, list);
            writer_duties(s);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        /* 2. Encode, sealing the open tail if nothing else is waiting for this thread. */
        struct pchunk *p = take_for_encoding(s, true);
        if (p) {
            pthread_mutex_unlock(&s->q_mu);
            encode_chunk(s, p);
            pthread_mutex_lock(&s->q_mu);
            p->state = PC_ENCODED;
            pthread_cond_broadcast(&s->q_cond);
            continue;
        }
        if (s->stopping && !s->q_head)
            break;
        /* 3. Wait for work, an encoder, or the next periodic duty. */
        int64_t wait_ms = FREE_CHECK_MS;
        if (wait_ms > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->q_cond, &s->q_mu, &ts);
        }
        pthread_mutex_unlock(&s->q_mu);
        writer_duties(s);
        pthread_mutex_lock(&s->q_mu);
    }
    pthread_mutex_unlock(&s->q_mu);
    struct segment *seg = seg_active(s);
    if (seg) {
        seg_fsync(s, seg);
        /* A clean stop leaves no frames to read at the next start (token filters the builder
         * had not built yet are built after it, and the index written again). */
        seg_write_index(s, seg, true);
    }
    seg_index_sealed(s, true); /* The archivers have stopped (store_close). */
    return NULL;
}

int writer_start(struct store *s)
{
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0)
        return -EAGAIN;
    s->writer_started = true;
    if (s->cfg.fsync == FSYNC_BATCH) {
        pthread_mutex_init(&s->sync_mu, NULL);
        pthread_cond_init(&s->sync_cond, NULL);
        s->syncer_started = pthread_create(&s->syncer, NULL, syncer_main, s) == 0;
        if (!s->syncer_started) {
            writer_stop(s);
            return -EAGAIN;
        }
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus > 1 ? (int)cpus - 1 : 0;
    if (want > 8)
        want = 8;
    for (int i = 0; i < want; i++)
        if (pthread_create(&s->encoders[s->nencoders], NULL, encoder_main, s) == 0)
            s->nencoders++;
    return 0;
}

/* Stop the threads once the queue is written, and free what could not be. */
void writer_stop(struct store *s)
{
    if (s->syncer_started) { /* First: the writer's last fsync at its stop covers the rest. */
        pthread_mutex_lock(&s->sync_mu);
        s->sync_stop = true;
        pthread_cond_signal(&s->sync_cond);
        pthread_mutex_unlock(&s->sync_mu);
        pthread_join(s->syncer, NULL);
        s->syncer_started = false;
        pthread_mutex_destroy(&s->sync_mu);
        pthread_cond_destroy(&s->sync_cond);
    }
    if (s->writer_started) {
        pthread_mutex_lock(&s->q_mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->q_cond);
        pthread_mutex_unlock(&s->q_mu);
        pthread_join(s->writer, NULL);
        for (int i = 0; i < s->nencoders; i++)
            pthread_join(s->encoders[i], NULL);
    }
    for (struct pchunk *p = s->q_head, *next; p; p = next) {
        next = p->next;
        pchunk_free(s, p);
    }
    s->q_head = s->q_tail = NULL;
}
