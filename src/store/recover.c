/* recover.c - opening the store (recovering its segments from their index files, reading the
 * frames the indexes do not cover, cutting a torn tail) and closing it.
 *
 * A segment's index file lets start-up skip its data; frames past the index (or all of them,
 * without one) are read and checked one by one. A bad frame is skipped by searching for the
 * next valid header, and counted as damaged; a bad tail of the newest segment is an
 * interrupted write and is cut off. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "store/frame.h"
#include "store/index.h"
#include "store/store_internal.h"
#include "store/tokfilter.h"

/* Scan frames of seg from offset `from`, adding a block per valid frame. A bad frame is
 * skipped by searching for the next valid one; a bad tail of the last segment is cut off. */
static int recover_frames(struct store *s, struct segment *seg, uint64_t from, bool last_seg)
{
    struct stat st;
    if (fstat(seg->fd, &st) < 0)
        return -errno;
    uint64_t end = (uint64_t)st.st_size, off = from;
    char hdr[FRAME_HDR_LEN];
    uint64_t bad_start = 0;
    bool in_bad = false;
    while (off + FRAME_HDR_LEN <= end) {
        struct frame_hdr h;
        bool ok = pread(seg->fd, hdr, FRAME_HDR_LEN, (off_t)off) == FRAME_HDR_LEN &&
                  frame_parse_header(hdr, &h) == 0 && off + FRAME_HDR_LEN + h.payload_len <= end;
        char *frame = NULL, *raw = NULL;
        if (ok) {
            size_t flen = FRAME_HDR_LEN + h.payload_len;
            frame = malloc(flen);
            raw = malloc(h.raw_len ? h.raw_len : 1);
            ok = frame && raw && pread(seg->fd, frame, flen, (off_t)off) == (ssize_t)flen &&
                 frame_verify(&h, frame) && frame_decode(&h, frame, raw) == 0;
        }
        struct block *b = NULL;
        if (ok) {
            b = calloc(1, sizeof(*b));
            ok = b != NULL;
            if (ok) {
                b->first_id = h.first_id;
                b->count = h.count;
                b->raw_len = h.raw_len;
                /* Also checks the columns add up. */
                ok = block_summarize(b, raw, (int)h.layout, true) == 0;
            }
        }
        if (!ok) {
            free(frame);
            free(raw);
            block_destroy(b);
            if (!in_bad) {
                in_bad = true;
                bad_start = off;
            }
            off++; /* Search for the next frame header. */
            continue;
        }
        if (in_bad) {
            log_error("store: %s: damaged bytes %" PRIu64 "..%" PRIu64
                      " skipped (before ids %" PRIu64 ")",
                      seg->path, bad_start, off - 1, h.first_id);
            atomic_fetch_add(&s->damaged_bytes, off - bad_start);
            in_bad = false;
        }
        b->seg = seg;
        b->offset = off;
        b->frame_len = FRAME_HDR_LEN + h.payload_len;
        if (ptrs_push((void ***)&s->blocks, &s->nblocks, &s->capblocks, b) < 0) {
            free(frame);
            free(raw);
            block_destroy(b);
            return -ENOMEM;
        }
        seg->raw_bytes += b->raw_len;
        seg->entries += b->count;
        if (b->max_ts > seg->max_ts)
            seg->max_ts = b->max_ts;
        off += b->frame_len;
        seg->size = off;
        free(frame);
        free(raw);
    }
    if (!in_bad && off < end)
        bad_start = off, in_bad = true;
    if (in_bad) {
        if (last_seg) {
            log_warn("store: %s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
                     " truncated (an interrupted write)",
                     seg->path, end - bad_start, bad_start);
            if (ftruncate(seg->fd, (off_t)bad_start) < 0)
                log_error("store: truncating %s: %s", seg->path, strerror(errno));
            seg->size = bad_start;
        } else {
            log_error("store: %s: damaged bytes %" PRIu64 "..%" PRIu64 " at its end skipped",
                      seg->path, bad_start, end - 1);
            atomic_fetch_add(&s->damaged_bytes, end - bad_start);
        }
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int recover(struct store *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -errno;
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        uint64_t id = strtoull(de->d_name, &end, 10);
        if (end == de->d_name + 20 && strcmp(end, ".arch") == 0) {
            /* An archiver's file that was never swapped in (a crash or a stop meanwhile). */
            char tmp[4200];
            seg_path(s, id, "arch", tmp, sizeof(tmp));
            unlink(tmp);
            continue;
        }
        if (end != de->d_name + 20 || strcmp(end, ".seg") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *ni = realloc(ids, cap * sizeof(*ids));
            if (!ni) {
                closedir(d);
                free(ids);
                return -ENOMEM;
            }
            ids = ni;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_u64);
    int64_t t0 = mono_ms();
    uint64_t rebuilt = 0;
    for (size_t i = 0; i < n; i++) {
        struct segment *seg = calloc(1, sizeof(*seg));
        if (!seg)
            goto nomem;
        seg->first_id = ids[i];
        seg->max_ts = INT64_MIN;
        seg->refs = 1; /* The list's. */
        seg_path(s, ids[i], "seg", seg->path, sizeof(seg->path));
        seg->fd = open(seg->path, O_RDWR | O_CLOEXEC);
        char magic[SEG_HDR_LEN];
        bool ok_hdr = seg->fd >= 0 && pread(seg->fd, magic, SEG_HDR_LEN, 0) == SEG_HDR_LEN;
        seg->archived = ok_hdr && (memcmp(magic, seg_magic_archived, SEG_HDR_LEN) == 0 ||
                                   memcmp(magic, seg_magic_archived_v2, SEG_HDR_LEN) == 0);
        if (!ok_hdr || (!seg->archived && memcmp(magic, seg_magic, SEG_HDR_LEN) != 0 &&
                        memcmp(magic, seg_magic_v2, SEG_HDR_LEN) != 0 &&
                        memcmp(magic, seg_magic_v1, SEG_HDR_LEN) != 0)) {
            log_error("store: %s is not a LogCaster segment (or unreadable: %s); skipping it",
                      seg->path, seg->fd < 0 ? strerror(errno) : "bad header");
            if (seg->fd >= 0)
                close(seg->fd);
            free(seg);
            continue;
        }
        /* The newest segment takes this version's frames from now on (LZ4 ones too): it
         * says so, or an older reader would take them for damage and cut them as a torn tail. */
        if (i + 1 == n && !seg->archived && memcmp(magic, seg_magic, SEG_HDR_LEN) != 0 &&
            pwrite(seg->fd, seg_magic, SEG_HDR_LEN, 0) != SEG_HDR_LEN)
            log_warn("store: cannot mark %s as version 3: %s; an older logcasterd would take "
                     "its new frames for damage",
                     seg->path, strerror(errno));
        seg->size = SEG_HDR_LEN;
        char idx[4200];
        seg_path(s, ids[i], "idx", idx, sizeof(idx));
        size_t before = s->nblocks;
        uint64_t covered = 0;
        struct stat sst;
        uint64_t fsize = fstat(seg->fd, &sst) == 0 ? (uint64_t)sst.st_size : 0;
        int rc = index_read(idx, seg, fsize, &s->blocks, &s->nblocks, &s->capblocks, &covered);
        if (rc < 0) {
            covered = SEG_HDR_LEN;
            s->nblocks = before;
        } else {
            for (size_t k = before; k < s->nblocks; k++) {
                struct block *b = s->blocks[k];
                seg->raw_bytes += b->raw_len;
                seg->entries += b->count;
                if (b->max_ts > seg->max_ts)
                    seg->max_ts = b->max_ts;
                if (!b->tokens) /* Version 1, or written before the builder got to it. */
                    seg->index_partial = true;
            }
            seg->indexed = covered;
            seg->size = covered;
        }
        if (recover_frames(s, seg, covered, i + 1 == n) < 0)
            goto nomem;
        rebuilt += seg->size - covered;
        if (ptrs_push((void ***)&s->segs, &s->nsegs, &s->capsegs, seg) < 0)
            goto nomem;
    }
    free(ids);
    uint64_t tri_bytes = 0, tok_bytes = 0, val_bytes = 0, tok_missing = 0;
    for (size_t i = 0; i < s->nblocks; i++) {
        block_set_info(s->blocks[i]);
        tri_bytes += ((uint64_t)1 << s->blocks[i]->filter_log2) / 8;
        tok_bytes += tokf_bytes(s->blocks[i]->tokens_nbits, s->blocks[i]->stripe_nbits);
        val_bytes += s->blocks[i]->values_len;
        tok_missing += s->blocks[i]->tokens == NULL;
    }
    if (s->nblocks) {
        const struct block *b = s->blocks[s->nblocks - 1];
        s->next_id = b->first_id + b->count;
    }
    /* Ids never go back, even past a failed or deleted tail. */
    if (s->nsegs && s->segs[s->nsegs - 1]->first_id > s->next_id)
        s->next_id = s->segs[s->nsegs - 1]->first_id;
    atomic_store(&s->done_id, s->next_id - 1);
    /* Missing or stale indexes are rebuilt now, so the next start reads no data again. */
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i]->indexed != s->segs[i]->size && s->segs[i]->entries)
            seg_write_index(s, s->segs[i], true);
    if (n)
        log_info("store: recovered %zu segments, %zu blocks, ids up to %" PRIu64
                 " in %lld ms (%" PRIu64 " unindexed bytes read), filters of %" PRIu64
                 " KiB (trigrams) and %" PRIu64 " KiB (tokens), value summaries of %" PRIu64
                 " KiB, %" PRIu64 " blocks awaiting a token filter",
                 s->nsegs, s->nblocks, s->next_id - 1, (long long)(mono_ms() - t0), rebuilt,
                 tri_bytes >> 10, tok_bytes >> 10, val_bytes >> 10, tok_missing);
    return 0;
nomem:
    free(ids);
    return -ENOMEM;
}

struct store *store_open(const struct store_config *cfg)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    if (s->cfg.codec != FRAME_ZSTD)
        s->cfg.codec = FRAME_LZ4;
    snprintf(s->dir, sizeof(s->dir), "%s", cfg->data_dir);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    pthread_mutex_init(&s->err_mu, NULL);
    pthread_mutex_init(&s->cache_mu, NULL);
    pthread_mutex_init(&s->arch_mu, NULL);
    pthread_cond_init(&s->arch_cond, NULL);
    pthread_mutex_init(&s->tok_mu, NULL);
    pthread_cond_init(&s->tok_cond, NULL);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->list_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    s->next_id = 1;
    atomic_store(&s->last_fsync_us, -1);
    s->last_sync_ms = mono_ms();
    int rc = recover(s);
    if (rc < 0) {
        fprintf(stderr, "logcasterd: cannot read data directory %s: %s\n", s->dir, strerror(-rc));
        store_close(s);
        return NULL;
    }
    /* A recovered segment that holds nothing (a crash right after a start) is dropped: the new
     * one would take its name. */
    if (s->nsegs && s->segs[s->nsegs - 1]->entries == 0) {
        struct segment *empty = s->segs[--s->nsegs];
        close(empty->fd);
        unlink(empty->path);
        char idx[4200];
        seg_path(s, empty->first_id, "idx", idx, sizeof(idx));
        unlink(idx);
        free(empty);
    }
    /* Writing always goes to a fresh segment named after its first id; never one's name that
     * exists (ids may skip a few, they never repeat). */
    if (s->nsegs && s->segs[s->nsegs - 1]->first_id >= s->next_id)
        s->next_id = s->segs[s->nsegs - 1]->first_id + 1;
    struct segment *seg = seg_create(s, s->next_id);
    if (!seg || seg_add(s, seg) < 0) {
        fprintf(stderr, "logcasterd: cannot create a segment in %s: %s\n", s->dir, s->error);
        if (seg) {
            close(seg->fd);
            free(seg);
        }
        store_close(s);
        return NULL;
    }
    /* Space and age limits hold from the first write on, not from the writer's first round. */
    seg_retention(s);
    s->last_free_check = mono_ms();
    if (writer_start(s) < 0) {
        fprintf(stderr, "logcasterd: cannot start the store writer\n");
        store_close(s);
        return NULL;
    }
    archive_start(s);
    tokb_start(s);
    return s;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    archive_stop(s); /* First: an archiver may be in the middle of a segment; it gives up. */
    tokb_stop(s);    /* Before the blocks go; what it has not built is built after a restart. */
    writer_stop(s);
    for (size_t i = 0; i < s->nblocks; i++) { /* No reader is left. */
        block_uncache(s, s->blocks[i]);
        block_destroy(s->blocks[i]);
    }
    free(s->blocks);
    for (size_t i = 0; i < s->nsegs; i++) {
        /* An empty segment (nothing written since start) is not worth keeping. */
        if (s->segs[i]->size == SEG_HDR_LEN && s->segs[i]->entries == 0) {
            unlink(s->segs[i]->path);
            char idx[4200];
            seg_path(s, s->segs[i]->first_id, "idx", idx, sizeof(idx));
            unlink(idx);
        }
        close(s->segs[i]->fd);
        free(s->segs[i]);
    }
    free(s->segs);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cond);
    pthread_mutex_destroy(&s->err_mu);
    free(s->run);
    pthread_mutex_destroy(&s->cache_mu);
    pthread_mutex_destroy(&s->arch_mu);
    pthread_cond_destroy(&s->arch_cond);
    pthread_mutex_destroy(&s->tok_mu);
    pthread_cond_destroy(&s->tok_cond);
    pthread_rwlock_destroy(&s->list_lock);
    free(s);
    bigbuf_drain();
}
