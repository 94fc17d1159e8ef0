/* store_internal.h - what the durable store's files share, and nothing outside src/store sees.
 *
 *   cache.c    blocks in memory: summaries, lifetimes, recycled big buffers, and the cache of
 *              decoded blocks (LRU under --memory-limit);
 *   segment.c  segment files: creation, fsync, index files, rolling over, retention and disk
 *              space;
 *   writer.c   the write path: the pending queue (store_append), the encoder threads, the
 *              writer thread, group commit, the commit hook, write errors;
 *   archive.c  the archiver: sealed segments rewritten at --archive-level;
 *   tokbuild.c the token filter builder: filters of published blocks, off the ingest path;
 *   read.c     readers: block cursors, opened blocks, statistics;
 *   recover.c  opening (recovery of segments and their index files) and closing.
 *
 * Data flow: reactors serialize entries into the pending queue (ids assigned in order, no
 * disk I/O); the writer thread takes the queue, writes one frame per pending chunk, fsyncs per
 * policy, publishes each frame as a block (queryable at once from the cache), then advances
 * done_id and tells its commit listener (the ingest pipeline) which ranges the run decided;
 * the pipeline pushes them to the reactors, which release the acknowledgements they cover.
 *
 * Readers walk the block index with a cursor and open the blocks they need (store.h); they
 * hold no lock between those calls, only references: a cursor pins the segment of the blocks
 * it hands out (blocks are freed only with their segment), an opened block its decoded
 * entries, whatever retention or the cache do meanwhile.
 *
 * Locks: q_mu guards the pending queue; list_lock (rw) guards the block and segment arrays,
 * held for reading while a cursor steps or a block is read from its file, and for writing only
 * to publish, delete or swap in an archived file; cache_mu guards the LRU, block->cache
 * pointers and cached blocks' reference counts; err_mu guards the current error message;
 * arch_mu guards the archiver threads' claims on segments (taken before list_lock); tok_mu the
 * builder's wake-ups. A block's token filter is published once, with a release store, and read
 * with acquire loads (block.h). */
#ifndef LC_STORE_INTERNAL_H
#define LC_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/block.h"
#include "store/store.h"

/* A frame holds about this many raw bytes. Smaller frames compress a little worse (1.6% more
 * disk at zstd level 1) but a query that needs one line of a block decompresses less: the
 * cold rare-keyword query over 20M entries went from 96 ms to 25 ms going from 1 MiB to 256 KiB. */
#define PCHUNK_TARGET (1u << 18)

struct segment {
    uint64_t first_id;
    bool removed;        /* Its file vanished under us: readable through fd, never written again. */
    bool archived;       /* Rewritten at --archive-level (the archiver's; see archive_segment). */
    bool archive_failed; /* The archiver could not read it whole: left as it is. */
    bool archiving;      /* An archiver thread is on it. */
    int64_t archive_after; /* Put off until then (mono ms) after a transient failure. */
    int fd;
    uint64_t size;      /* Valid bytes (header + whole frames). */
    uint64_t indexed;   /* Bytes covered by its index file; 0 = none. */
    bool index_partial; /* Its index file lacks some blocks' token filters: it is written again
                           once the builder has built them (writer thread). */
    int64_t sealed_ms;  /* When it was sealed (mono ms; 0 when recovered). */
    uint64_t raw_bytes; /* Serialized records in it. */
    int64_t max_ts;
    uint64_t entries;
    int refs; /* The segment list's, and one per cursor on its blocks (atomic); see seg_unref. */
    struct block **gone; /* Deleted: its blocks, freed with it. */
    size_t ngone;
    char path[4096];
};

struct cblock {
    struct block *owner;
    char *raw;
    size_t raw_cap; /* What raw was allocated for (bigbuf_put). */
    uint32_t *offs; /* count + 1 record offsets. */
    size_t bytes;
    int refs; /* Under cache_mu; the cache itself holds one. */
    bool cached;
    struct cblock *prev, *next; /* LRU, most recent at head. */
};

/* A pending chunk goes OPEN (reactors append) -> SEALED (full, or taken by the idle writer)
 * -> ENCODING (a thread builds its frame) -> ENCODED (the writer may write it, in order). */
enum { PC_OPEN, PC_SEALED, PC_ENCODING, PC_ENCODED };

struct pchunk {
    char *buf; /* Rows. */
    size_t len, cap;
    uint64_t first_id;
    uint32_t count;
    int state;
    struct block *b; /* ENCODED: summary, filter; NULL if encoding failed. */
    uint32_t *offs;  /* ENCODED: the rows' offsets, for the cache. */
    char *frame;     /* ENCODED: the frame to write (a bigbuf of fcap bytes). */
    size_t flen, fcap;
    struct pchunk *next;
};

struct store {
    struct store_config cfg;
    char dir[2048];

    /* Pending queue. */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cond;
    struct pchunk *q_head, *q_tail;
    _Atomic uint64_t pending_bytes;
    uint64_t next_id;
    bool stopping;
    pthread_t writer;
    bool writer_started;
    pthread_t encoders[8]; /* Extra threads building frames alongside the writer. */
    int nencoders;

    /* The archiver. */
    pthread_mutex_t arch_mu;
    pthread_cond_t arch_cond;
    pthread_t archivers[4]; /* One per core: they take only idle CPU (nice 19). */
    int narchivers;
    _Atomic bool arch_stop;

    /* The token filter builder (tokbuild.c). */
    pthread_mutex_t tok_mu;
    pthread_cond_t tok_cond;
    pthread_t tok_thread;
    bool tok_started;
    bool tok_work; /* A block was published since the builder last looked (tok_mu). */
    bool tok_held; /* store_tokens_hold (tok_mu). */
    _Atomic bool tok_stop;
    /* The blocks counts read past the cache while it had room, for the builder to cache
     * (tokb_warm): their first ids, up to WARM_IDS of them; past that, the range the others
     * span (warm_lo > warm_hi: none). Under warm_mu; tok_work wakes the builder. */
    pthread_mutex_t warm_mu;
    uint64_t *warm_ids;
    size_t nwarm;
    uint64_t warm_lo, warm_hi;

    /* Progress seen by reactors. */
    _Atomic uint64_t done_id;
    store_commit_fn on_commit; /* Told each write run's decided ranges (writer thread). */
    void *on_commit_arg;
    struct store_range *run; /* The ranges of the current write run. */
    size_t nrun, caprun;

    /* Blocks and segments. */
    pthread_rwlock_t list_lock;
    struct block **blocks;
    size_t nblocks, capblocks;
    struct segment **segs;
    size_t nsegs, capsegs;

    /* Cache. */
    pthread_mutex_t cache_mu;
    struct cblock *lru_head, *lru_tail;
    size_t cache_bytes;

    /* Writer-only state. */
    bool dirty; /* Written since the last fsync. */
    int64_t last_sync_ms;
    /* --fsync batch: the syncer thread's (writer.c). unsynced: written since it last began an
     * fdatasync (set by the writer). */
    _Atomic bool unsynced;
    pthread_t syncer;
    bool syncer_started, sync_stop; /* sync_stop under sync_mu. */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cond;
    int64_t last_free_check;
    bool disk_low;
    pthread_mutex_t err_mu;
    char error[160]; /* Current write problem; under err_mu. */

    /* Statistics (atomics: read by STATS from any thread). */
    _Atomic uint64_t appended, segments_deleted, entries_deleted, write_errors, failed_entries,
        damaged_bytes, fsyncs;
    _Atomic int64_t last_fsync_us;
};

/* cache.c: blocks in memory. */
/* Megabyte buffers (pending chunks, column scratch, cached blocks) come from a pool:
 * bigbuf_get(n) gives at least n bytes, bigbuf_put(p, n) (NULL is a no-op) takes them back,
 * bigbuf_drain frees the pool (a store closed). */
void *bigbuf_get(size_t n);
void bigbuf_put(void *p, size_t n);
void bigbuf_drain(void);
/* Fill a block's summary (time range, levels, trigram filter, and its token filter when
 * `tokens`; else the builder makes it later) from its columns. Returns 0, -EINVAL if they are
 * malformed, or -ENOMEM. */
int block_summarize(struct block *b, const char *cols, int layout, bool tokens);

/* What filters_build makes of a block's entries: its token filter (tokfilter.h) and value
 * summary (valsum.h), both malloc'ed. */
struct block_filters {
    uint64_t *tokens;
    uint32_t nbits, stripe_nbits;
    uint8_t *values;
    uint32_t values_len;
};
struct valsum_input;
struct col_summary;
/* Build both from in. Returns 0, or -ENOMEM with nothing to free. (tokbuild.c) */
int filters_build(const struct valsum_input *in, struct block_filters *out);
/* The entries of a block of count entries whose columns cs describes, as filters_build takes
 * them. */
void col_summary_input(const struct col_summary *cs, uint32_t count, struct valsum_input *in);
/* Append p to a growing array of pointers. 0 or -ENOMEM. */
int ptrs_push(void ***arr, size_t *n, size_t *cap, void *p);
/* Set b->info from the summary fields, before the block goes into the index. */
void block_set_info(struct block *b);
/* Append a block to the index, queryable from then on (takes list_lock). 0 or -ENOMEM. */
int block_publish(struct store *s, struct block *b);
/* Drop a block's cached entries (readers that opened them keep theirs). */
void block_uncache(struct store *s, struct block *b);
/* Free a block that no index and no cursor holds any more (NULL is a no-op). */
void block_destroy(struct block *b);
/* The decoded form of block b: raw (rows, a bigbuf of raw_cap bytes) and, if known, offs (the
 * rows' offsets; taken over on success), or NULL. Not cached yet. */
struct cblock *cblock_new(struct block *b, char *raw, size_t raw_cap, uint32_t *offs);
/* Cache the entries of a block the writer has just written. */
void cache_add_written(struct store *s, struct cblock *c);
/* Where a block's frame lies: a duplicate of its file's descriptor, the frame's offset and
 * length, taken together under list_lock. The frame is then read with no lock held (a reader
 * holding list_lock for a read and decompression holds up the writer, and a preempted one
 * for longer), whatever the archiver (which swaps the file) and retention (which deletes
 * it) do meanwhile. Close fd after use. */
struct frame_loc {
    int fd;
    uint64_t offset;
    uint32_t len;
};
/* 0; -ENOENT when retention has deleted b; -errno when out of descriptors. Takes list_lock. */
int block_locate(struct store *s, struct block *b, struct frame_loc *loc);
/* Mark b bad (queries skip it), and log that once per read. */
void block_mark_bad(struct block *b);
/* Read block b's frame from loc and decode it: columns into cols, rows into raw (both raw_len
 * bytes), their offsets into offs (count + 1). False when it is unreadable or corrupt: b is
 * then marked bad (and that logged). */
bool block_decode(struct block *b, const struct frame_loc *loc, char *frame, char *cols, char *raw,
                  uint32_t *offs);
/* Block b's decoded entries if cached, referenced (cache_release them), else NULL. */
struct cblock *cache_lookup(struct store *s, struct block *b);
/* Block b's decoded entries into *out, referenced (cache_release them), read from its file on
 * a miss. 0; -ENOENT when retention deleted b; -EIO when it cannot be read now (unreadable:
 * b is then marked bad; or out of memory or descriptors). Takes list_lock briefly. */
int cache_get(struct store *s, struct block *b, struct cblock **out);
void cache_release(struct store *s, struct cblock *c);
/* The bytes block b's decoded entries take in the cache; whether they fit in what the cache
 * has left (nothing evicted). */
size_t cache_need(const struct block *b);
bool cache_has_room(struct store *s, const struct block *b);
/* Read block b into the cache at the cold end of its LRU order, if it is not there yet and
 * fits without evicting anything (the builder's warming). 0 when it is cached, -ENOSPC when it
 * does not fit, else cache_get's errors. */
int cache_warm(struct store *s, struct block *b);

/* segment.c: segment files, retention and disk space (writer thread, or before it starts). */
/* The name of the file of the segment first_id with extension ext ("seg", "idx", "arch"). */
void seg_path(const struct store *s, uint64_t first_id, const char *ext, char *out, size_t n);
/* Write all of p[0..n) at off. 0 or -errno (-EIO when the write made no progress). */
int seg_write_at(int fd, const char *p, size_t n, uint64_t off);
/* Make renames and new names in the data directory durable. */
void seg_fsync_dir(const struct store *s);
/* A new, empty segment file for ids from first_id, or NULL (the error is set). */
struct segment *seg_create(struct store *s, uint64_t first_id);
/* The segment being written (the last one), or NULL. */
struct segment *seg_active(struct store *s);
/* Append seg to the segment list (takes list_lock). 0 or -ENOMEM. */
int seg_add(struct store *s, struct segment *seg);
/* Take a reference on a segment in the list (list_lock held): it and its blocks stay, even if
 * retention deletes it, until seg_unref. */
void seg_ref(struct segment *seg);
/* Drop a reference; the last one (of a deleted segment) frees it with its blocks. */
void seg_unref(struct segment *seg);
/* fdatasync the segment, timing it for the statistics. 0 or -errno (the error is set). */
int seg_fsync(struct store *s, struct segment *seg);
/* Write the index file of a segment's blocks (all of them, up to seg->size), but only once
 * every block has its token filter unless `force` (the file is then partial). Returns 0 when
 * written, 1 when put off for the filters, -errno when it failed (logged). */
int seg_write_index(struct store *s, struct segment *seg, bool force);
/* Write the index of a sealed segment that lacks one, or lacks token filters the builder has
 * built since; with all, of every such segment, even without all filters. */
void seg_index_sealed(struct store *s, bool all);
/* Seal the active segment once it is full and start the next, named next_first (0: take the
 * first id waiting in the queue). */
void seg_maybe_roll(struct store *s, uint64_t next_first);
/* Bytes free for us on the data directory's file system (UINT64_MAX when unknown). */
uint64_t seg_disk_free(struct store *s);
/* Delete the oldest segments beyond the retention limits; refuse writes while the disk is
 * below --retention-min-free. */
void seg_retention(struct store *s);

/* writer.c: the write path. */
/* Set the current write problem (shown in STATS), logging it when it changed. */
void writer_error(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void writer_error_clear(struct store *s); /* Writes succeed again. */
/* Start the writer and the encoder threads. 0, or -EAGAIN when the writer cannot start. */
int writer_start(struct store *s);
/* Write what is queued, stop the threads, free what is left. */
void writer_stop(struct store *s);

/* archive.c: the archiver threads (none unless --archive-level is above the frames' level). */
void archive_start(struct store *s);
void archive_wake(struct store *s); /* A segment was sealed. */
void archive_stop(struct store *s); /* Its current segment is given up. */

/* tokbuild.c: the token filter builder (one thread at idle priority). */
void tokb_start(struct store *s);
void tokb_wake(struct store *s); /* A block without a token filter was published. */
/* A count is about to read block b, not cached, while the cache has room: true when the count
 * should read it past the cache, the builder caching it later; false when the count should
 * cache it itself (no builder, or b read again while it waits for the builder). */
bool tokb_warm(struct store *s, struct block *b);
void tokb_stop(struct store *s); /* Joins the thread; the filter it was building is dropped. */

/* read.c: readers. */
/* Index of the first block whose last id is >= id (nblocks if none). list_lock held. */
size_t block_find(const struct store *s, uint64_t id);

#endif
