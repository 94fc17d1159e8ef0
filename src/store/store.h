/* store.h - the store interface: append entries, learn which were written, read blocks, report.
 *
 * This is the write path's one door: the ingest pipeline hands batches to store_append, gets
 * ids back, and is told once per write run which id ranges were written or failed. Readers get
 * blocks of entries with their summaries; the store knows no query language (src/query scans
 * and counts with a query over these blocks). The durable engine (the other files of
 * src/store) implements it; a replicated log can implement the same calls later without the
 * protocols noticing.
 *
 * Thread safety: every call may be made from any thread at any time, except where a call says
 * otherwise. */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "store/record.h"

/* What a store knows about a block of consecutive entries, so a query can skip the block
 * without reading its entries. Fields a store cannot provide are set to "anything". */
struct lc_block_info {
    uint64_t first_id, last_id;   /* Inclusive id range. */
    int64_t min_ts_ms, max_ts_ms; /* Inclusive event-time range. */
    uint32_t level_mask;          /* Bit (1u << level) set for each level present. */
    const char *text;             /* Every message byte of the block, or NULL if unknown. */
    size_t text_len;
    const uint8_t *filter; /* Trigram filter (store/filter.h), or NULL. */
    unsigned filter_log2;
    const uint64_t *tokens; /* Token filter (store/tokfilter.h), or NULL: read it with
                               lc_block_tokens (it may be set after the block is published). */
    uint32_t tokens_nbits;
    uint32_t stripe_nbits; /* Each stripe's filter, after the block's (tokf_stripe); 0: none. */
    const uint8_t *values; /* Value summary (store/valsum.h): read it with lc_block_values. */
    uint32_t values_len;
    const uint32_t *level_counts; /* Entries per level (LC_LEVEL_COUNT), or NULL. */
};

/* A block's token filter, or NULL while it has none (the store builds them in the background,
 * after a block is published). An acquire load: when it is not NULL, its bits and
 * b->tokens_nbits and b->stripe_nbits are complete. */
static inline const uint64_t *lc_block_tokens(const struct lc_block_info *b)
{
    return __atomic_load_n(&b->tokens, __ATOMIC_ACQUIRE);
}

/* A block's value summary (store/valsum.h), *len bytes, or NULL while it has none: it is
 * built and published with the token filter. */
static inline const uint8_t *lc_block_values(const struct lc_block_info *b, uint32_t *len)
{
    if (!lc_block_tokens(b) || !b->values)
        return NULL;
    *len = b->values_len;
    return b->values;
}

struct store;

enum fsync_policy { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NEVER };

struct store_config {
    const char *data_dir; /* Segment and index files live here. */
    size_t cache_size;    /* Decompressed blocks kept in memory. */
    enum fsync_policy fsync;
    int fsync_interval_ms; /* FSYNC_BATCH: longest time written data waits for fsync. */
    size_t segment_size;   /* A segment is sealed once it reaches this many bytes. */
    int codec; /* FRAME_LZ4 or FRAME_ZSTD (frame.h): how frames are written; 0 is LZ4. */
    int compression_level;       /* Level of new frames; 0 stores them uncompressed. */
    int archive_level;           /* Rewrite sealed segments' frames at this level; 0 = no. */
    uint64_t retention_size;     /* Delete oldest segments beyond this total; 0 = no limit. */
    int64_t retention_age_ms;    /* Delete segments whose newest entry is older; 0 = forever. */
    uint64_t retention_min_free; /* Keep this much disk free: delete, then refuse writes. */
    bool tokens_held; /* Tests: the token filter builder starts held (store_tokens_hold). */
    size_t warm_ids;  /* Tests: blocks a count is remembered by one by one (0: 512), before
                         the range they span (tokbuild.c). */
};

struct store_stats {
    uint64_t entries;                   /* Held now. */
    uint64_t appended;                  /* Since start. */
    uint64_t evicted;                   /* Deleted by retention. */
    uint64_t per_level[LC_LEVEL_COUNT]; /* Held now, by level. */
    uint64_t bytes;                     /* Memory used by cached blocks now. */
    uint64_t first_id, last_id;         /* Held range; 0 when empty. */
    int64_t oldest_ts_ms, newest_ts_ms; /* Event-time range held; 0 when empty. */
    uint64_t raw_bytes, disk_bytes;     /* Serialized records, and their files on disk. */
    uint64_t segments, blocks;
    uint64_t segments_deleted;  /* By retention since start. */
    uint64_t segments_archived; /* Held now, rewritten at --archive-level. */
    uint64_t write_errors;      /* Batches that could not be stored. */
    uint64_t failed_entries;    /* Entries answered with an error for that reason. */
    uint64_t damaged_bytes;     /* Found corrupt at start-up and skipped. */
    int64_t last_fsync_us;      /* Duration of the latest fsync; -1 = none yet. */
    uint64_t fsyncs;
    uint64_t pending_bytes;  /* Accepted, not yet written. */
    uint64_t tokens_pending; /* Blocks whose token filter is not built yet (the builder's queue). */
    const char *fsync_policy;
    const char *error; /* The current write problem, or NULL. */
};

/* Open (recovering what is on disk) or create the store in cfg->data_dir. Returns NULL after
 * printing a clear error. */
struct store *store_open(const struct store_config *cfg);
void store_close(struct store *s); /* NULL is a no-op. */

/* Append n entries in order, copying their strings. Assigns e[i].id (increasing). Returns 0
 * or -errno; on error nothing was appended. An appended entry is not yet durable: the commit
 * listener (store_on_commit) learns when it is. Never blocks on disk. */
int store_append(struct store *s, struct lc_entry *e, size_t n);

/* The highest id whose fate is decided (written or failed): entries up to it that exist are
 * queryable. Cheap; for followers of new entries (IRC log channels, live tails). */
uint64_t store_done_id(struct store *s); /* NULL: 0. */

/* True while the write queue is over its bound: ingest should stop reading until woken. */
bool store_backlogged(struct store *s);

/* An id range the writer decided in one write run: written (durable per the policy, and
 * queryable), or failed. */
struct store_range {
    uint64_t lo, hi;
    bool failed;
};

/* Called on the writer thread after each write run with the ranges it decided, in id order
 * and together covering every id up to the new done id. The callback must not block and must
 * not call back into the store. Set once, before the first append. */
typedef void (*store_commit_fn)(void *arg, const struct store_range *r, size_t n);
void store_on_commit(struct store *s, store_commit_fn fn, void *arg);

/* Reading. Entries lie in blocks of consecutive ids, and the store keeps every block's summary
 * (struct lc_block_info: ids, event times, levels, trigram and token filters) in memory, so a
 * reader can rule a block out without decoding it. A reader walks the summaries with a cursor and
 * opens the blocks it needs; skipping, matching and counting are the reader's (src/query). No store
 * lock is held between these calls: a cursor pins the blocks it hands out (their summaries stay
 * valid even if retention deletes them meanwhile) and an opened block holds a reference on its
 * decoded entries (the cache cannot free them). A cursor or an opened block belongs to one
 * thread at a time; any number of them may be in use at once. */
struct cblock;
struct segment;

#define STORE_CURSOR_BATCH 64

struct store_cursor {
    const struct lc_block_info *info; /* The current block's summary, until the cursor moves. */
    bool bad; /* Found unreadable: it serves no entries; count it as empty. */
    /* The store's own. A batch of blocks is taken at a time, so a step costs neither a lock
     * nor a call. */
    uint64_t from_id, to_id;
    bool forward, done;
    struct segment *seg; /* Pinned: it and its blocks stay, even if retention deletes it. */
    const struct lc_block_info *infos[STORE_CURSOR_BATCH]; /* The next blocks of seg, in order, */
    bool bads[STORE_CURSOR_BATCH];                         /* and their bad flags. */
    unsigned n, i; /* Blocks in the batch, and the next one to step to. */
    size_t pos;    /* Where the batch's last block was in the index (a hint). */
};

/* Start a cursor over the blocks holding ids in [from_id, to_id], oldest first when forward,
 * else newest first. Holds nothing yet. */
void store_cursor_init(struct store_cursor *c, uint64_t from_id, uint64_t to_id, bool forward);

/* The cursor's next batch (store_cursor_next's slow path; not for direct use). */
bool store_cursor_fill(struct store *s, struct store_cursor *c);

/* Step to the next block of the range (the first one on the first call), setting c->info and
 * c->bad. Returns false when there is none left; the cursor then holds nothing. Blocks
 * published meanwhile are seen; blocks deleted meanwhile may still be handed out (their
 * summaries are intact; opening them fails with -ENOENT). */
static inline bool store_cursor_next(struct store *s, struct store_cursor *c)
{
    if (c->i == c->n && !store_cursor_fill(s, c))
        return false;
    c->info = c->infos[c->i];
    c->bad = c->bads[c->i];
    c->i++;
    return true;
}

/* Let go of what the cursor pins: call it when leaving a walk before its end (after the end it
 * is a no-op). */
void store_cursor_end(struct store *s, struct store_cursor *c);

/* A block opened for its entries: ids first_id..last_id, all present. A reader may search
 * the rows as bytes (a substring search over many entries at once): entry first_id + i is the
 * record (store/record.h) at raw[offs[i]..offs[i + 1]). */
struct store_block {
    uint64_t first_id, last_id;
    const char *raw;      /* The decoded rows, back to back, */
    const uint32_t *offs; /* where each starts (last_id - first_id + 2 offsets). */
    const char *lines;    /* Instead of rows (store_block_scan_lines): the messages, each */
    size_t lines_len;     /* followed by '\n', in id order; raw and offs are NULL then. */
    /* The store's own. */
    struct cblock *cb; /* The cache's block that holds them, referenced; NULL when they are */
    bool scratch;      /* in the thread's scan buffer (store_block_scan). */
};

/* Open the cursor's current block, from the cache or from its file. Returns 0; -ENOENT when
 * retention deleted it after the cursor reached it; -EIO when it cannot be read now (a damaged
 * block is then marked bad, and logged once). On error there is nothing to close. */
int store_block_open(struct store *s, const struct store_cursor *c, struct store_block *blk);

/* Open the cursor's current block for one pass over its entries: as store_block_open, except
 * that a block missing from the cache goes into it only while the cache has room. Otherwise
 * it is decoded into this thread's scan buffer, valid until store_block_close, and the cache
 * is left alone: a scan over more data than --memory-limit neither evicts the blocks other
 * queries use nor pays for inserting blocks that would be evicted before it ends. A thread
 * has one scan buffer: while it holds a block opened this way, its next one is cached. */
int store_block_scan(struct store *s, const struct store_cursor *c, struct store_block *blk);

/* As store_block_scan, for a caller that needs the messages only, and the block whole: when
 * the block is decoded into the scan buffer and its messages are stored as lines, blk->lines
 * holds them instead of rows, and the pass over them costs no copy into rows. Otherwise (a
 * cached block, say) blk holds rows as from store_block_scan. Unlike store_block_scan, a block
 * missing from a cache that has room is read into the scan buffer too, and the token filter
 * builder caches it later, in idle time; it is cached on the way only when it was read so
 * before and is still waiting for the builder (or there is no builder). */
int store_block_scan_lines(struct store *s, const struct store_cursor *c, struct store_block *blk);

/* Entry `id` (first_id <= id <= last_id) of an opened block. Its strings are borrowed from the
 * block: valid until store_block_close. Inline, and decoded just before it is looked at: a
 * scan touches each row once, while the search of the previous one still runs. */
static inline void store_block_entry(const struct store_block *blk, uint64_t id, struct lc_entry *e)
{
    uint32_t i = (uint32_t)(id - blk->first_id);
    rec_get(blk->raw + blk->offs[i], blk->offs[i + 1] - blk->offs[i], e);
    e->id = id;
}

/* Let go of an opened block. Safe to call twice. */
void store_block_close(struct store *s, struct store_block *blk);
/* Whether the cursor's block is in the cache now (its LRU order left alone). */
bool store_block_cached(struct store *s, const struct store_cursor *c);

/* NULL (a cluster member, which has no store of its own): all zero. It reads every block's
 * summary: for the ids alone, store_id_range. */
void store_get_stats(struct store *s, struct store_stats *st);

/* The first and last id held (0 and 0: none, or s NULL), from the first and last blocks: a
 * query's whole range without a walk over every block on the caller's thread. */
void store_id_range(struct store *s, uint64_t *first, uint64_t *last);

/* Hold the background builder of token filters (it builds none from its next pass on) or let it
 * go on. For tests, which look at blocks without filters; a held builder still stops. */
void store_tokens_hold(struct store *s, bool hold);

#endif
