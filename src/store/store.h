/* store.h - the store interface: append entries, scan them, report on them.
 *
 * This is the write path's one door: ingest hands batches to store_append and gets ids back.
 * The in-memory store (mem.c) implements it now; the durable engine and a replicated log can
 * implement the same calls later without the protocols noticing.
 *
 * Thread safety: every call may be made from any thread at any time. */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/entry.h"

struct store;
struct qry;

enum fsync_policy { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NEVER };

struct store_config {
    const char *data_dir; /* Segment and index files live here. */
    size_t cache_size;    /* Decompressed blocks kept in memory. */
    enum fsync_policy fsync;
    int fsync_interval_ms;       /* FSYNC_BATCH: longest time written data waits for fsync. */
    size_t segment_size;         /* A segment is sealed once it reaches this many bytes. */
    int compression_level;       /* zstd level of frames; 0 stores them uncompressed. */
    int archive_level;           /* Rewrite sealed segments' frames at this zstd level; 0 = no. */
    uint64_t retention_size;     /* Delete oldest segments beyond this total; 0 = no limit. */
    int64_t retention_age_ms;    /* Delete segments whose newest entry is older; 0 = forever. */
    uint64_t retention_min_free; /* Keep this much disk free: delete, then refuse writes. */
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
    uint64_t pending_bytes; /* Accepted, not yet written. */
    const char *fsync_policy;
    const char *error; /* The current write problem, or NULL. */
};

/* Open (recovering what is on disk) or create the store in cfg->data_dir. Returns NULL after
 * printing a clear error. */
struct store *store_open(const struct store_config *cfg);
void store_close(struct store *s); /* NULL is a no-op. */

/* Append n entries in order, copying their strings. Assigns e[i].id (increasing). Returns 0
 * or -errno; on error nothing was appended. An appended entry is not yet durable: ask
 * store_id_state before acknowledging it. Never blocks on disk. */
int store_append(struct store *s, struct lc_entry *e, size_t n);

enum store_id_state {
    STORE_PENDING, /* Accepted, not yet as durable as the policy promises. */
    STORE_DURABLE, /* Durable per the policy (and queryable): acknowledge it. */
    STORE_FAILED,  /* Could not be stored (disk full, I/O error): report an error. */
};
enum store_id_state store_id_state(struct store *s, uint64_t id);
/* The state of every id in [lo, hi] together: PENDING until all are decided, then FAILED if
 * any of them failed, else DURABLE. */
enum store_id_state store_range_state(struct store *s, uint64_t lo, uint64_t hi);

/* The highest id whose fate is decided (written or failed): entries up to it that exist are
 * queryable. Cheap; for followers of new entries (IRC log channels, live tails). */
uint64_t store_done_id(struct store *s);

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

/* Visit matching entries with ids in [from_id, to_id], oldest first when forward, else
 * newest first. Blocks the query rules out are skipped without reading. visit returns true
 * to go on, false to stop. At most `budget` entries are examined per call (skipped blocks cost
 * little); *resume is set to the id to pass as the new start (from_id when forward, to_id when
 * backward) if the scan must continue. Returns 1 when the range is finished or visit stopped,
 * 0 when the budget ran out. The entry passed to visit is valid only during the call.
 * q may be NULL (match all). */
typedef bool (*store_visit_fn)(void *arg, const struct lc_entry *e);
int store_scan(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, bool forward,
               size_t budget, store_visit_fn visit, void *arg, uint64_t *resume);

/* Count matching entries in [from_id, to_id] with the same budget rules as store_scan. */
int store_count(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id,
                size_t budget, uint64_t *count, uint64_t *resume);

/* Keep entries with id >= id from eviction until store_unpin. A streaming reader pins the
 * range it promised to deliver; the memory budget may be exceeded meanwhile, by at most a
 * quarter: beyond that the oldest entries go even if pinned. */
void store_pin(struct store *s, uint64_t id);
void store_unpin(struct store *s, uint64_t id);

void store_get_stats(struct store *s, struct store_stats *st);

#endif
