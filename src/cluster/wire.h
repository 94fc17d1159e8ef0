/* wire.h - the bytes the cluster sends: batches of entries, query requests, answers.
 *
 * A batch (one JetStream message) is compressed with --codec: a zstd frame (which states its
 * size), or "LCZ4" | u32 size | an LZ4 block; either holds
 *   "LCB1" | u32 nruns | u32 nentries | nruns x (u64 first_id, u32 count) | nentries records
 * where the records are store/record.h rows and run i numbers the next count entries
 * first_id, first_id + 1, ... Ids are the cluster's: unique, assigned by the node that took
 * the lines (cluster.h).
 *
 * A request (core NATS, to "<cluster>.q.<node>", reply to the asker's inbox):
 *   u8 version 2 | u8 kind | u8 partition | u8 attempt | i64 now_ms | u64 limit
 *   | i64 window from | i64 window to | u64 min_seq | query text
 * (byte 3 is the attempt: the asker's count of nodes asked for this partition; min_seq the
 * partition's last stream sequence the asker has seen, which the copy applies before it
 * answers). Version 1, which the builds up to 21e67c4 speak, is the same without min_seq; it
 * is still read and, for a node whose heartbeat says no "wire=2", written, so a cluster can be
 * upgraded one node at a time (member.c). An answer is
 * one or more messages to the inbox, each
 *   u8 partition | u8 type | u8 attempt | u8 0 | u32 seq | body
 * with seq counting the partition's messages from 0 (heartbeats aside), and the last one of
 * type END carrying the number sent before it, so a lost message is noticed. Integers are
 * little-endian. Every decoder here takes any bytes: it answers -EINVAL (with a sentence) rather
 * than trusting a length. */
#ifndef LC_CLUSTER_WIRE_H
#define LC_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "core/buf.h"

#define WIRE_BATCH_MAX_ENTRIES 65535
#define WIRE_BATCH_MAX_RAW     (64u << 20) /* Decompressed bytes a batch may claim. */

/* Memory kept from one batch to the next: a receiver's decompressed bytes, a sender's
 * flattened ones. Fresh memory for every batch cost a page fault per 4 KiB, a visible part
 * of the copies' CPU time. Zeroed to start; wire_scratch_free at the end. */
struct wire_scratch {
    char *p;
    size_t cap;
};
#define WIRE_SCRATCH_KEEP (4u << 20) /* Larger batches get memory of their own. */
void wire_scratch_free(struct wire_scratch *s);

/* A batch under construction (the publisher's, one per partition). */
struct wire_batch_out {
    struct buf runs;    /* (u64 first_id, u32 count) each. */
    struct buf records; /* Rows, back to back. */
    uint32_t nruns, nentries;
    uint64_t last_id; /* To extend the last run when ids follow on. */
};

/* Add n entries numbered first_id.. in order. 0 or -ENOMEM (nothing added). */
int wire_batch_add(struct wire_batch_out *b, const struct lc_entry *e, size_t n, uint64_t first_id);
/* Compress the batch into out (malloc'd, *out_len bytes) with codec (FRAME_LZ4 or FRAME_ZSTD,
 * store/frame.h); level is zstd's. 0 or -errno. */
int wire_batch_seal(const struct wire_batch_out *b, int codec, int level, char **out,
                    size_t *out_len);
/* The same, with LZ4's flattened input in scratch (NULL: fresh memory). */
int wire_batch_seal_in(const struct wire_batch_out *b, int codec, int level,
                       struct wire_scratch *scratch, char **out, size_t *out_len);
void wire_batch_reset(struct wire_batch_out *b);
void wire_batch_free(struct wire_batch_out *b);
static inline size_t wire_batch_bytes(const struct wire_batch_out *b)
{
    return buf_len(&b->records) + buf_len(&b->runs);
}

/* A batch received. */
struct wire_batch_in {
    char *raw; /* Decompressed, owned. */
    size_t raw_len;
    const char *runs; /* nruns x 12 bytes, inside raw. */
    uint32_t nruns, nentries;
    const char *rec; /* The records, inside raw; rec_end past the last. */
    const char *rec_end;
    /* Iteration. */
    uint32_t run, in_run;
    const char *at;
    bool owned; /* raw is malloc'd for this batch (not a wire_scratch's). */
};

/* Decompress and check a batch (every record well formed, the runs adding up). 0, or
 * -EINVAL with one sentence in err (128 bytes). */
int wire_batch_open(const void *data, size_t len, struct wire_batch_in *b, char *err);
/* The same, decompressing into scratch (NULL: fresh memory) for a batch of up to
 * WIRE_SCRATCH_KEEP bytes: b then points into it until the next call with it. */
int wire_batch_open_in(const void *data, size_t len, struct wire_batch_in *b,
                       struct wire_scratch *scratch, char *err);
/* The next entry and its id; false after the last. Strings point into b->raw. */
bool wire_batch_next(struct wire_batch_in *b, struct lc_entry *e);
void wire_batch_close(struct wire_batch_in *b);

/* Requests. */
/* WK_EXPORT: a copy's entries, for a copy that lacks messages the stream let go. The answer
 * is one message (a plain NATS request): with win_to_ms 0, WT_EXPORT_INFO (u64 last local id,
 * u64 the last stream sequence it holds); when limit > 0, of 24 bytes instead: u64 the last
 * queryable local id, u64 the last message it holds whole and queryable (it has applied),
 * u64 the first local id of a message at sequence `limit` or later, 0 when none (nodes built
 * before it read and send the 16-byte form alone); else
 * WT_EXPORT_ROWS of local ids win_from_ms..win_to_ms from the first on, as many as fit in
 * about 512 KiB, each u64 cluster id | u64 stream sequence | u64 local id | record. */
/* WK_ORDER: the matching entries in the cluster's order, by key (recv_ms, then id, both
 * ascending: arrival order), strictly between the bounds lo and hi (an unset bound is open):
 * the first `limit` of them when forward, else the last `limit`; answered as WT_ROWS in
 * ascending key order. WK_KEY: the entries whose cluster ids are lo.id and hi.id (each when
 * set and held by the copy), as WT_ROWS: how the asker learns the keys of ids it is given.
 * Both carry, between the head and the text,
 *   u8 flags (1 forward, 2 lo set, 4 hi set) | 7 x u8 0 | i64 lo.recv_ms | u64 lo.id
 *   | i64 hi.recv_ms | u64 hi.id */
enum wire_kind { WK_COUNT = 0, WK_ROWS = 1, WK_PART = 2, WK_EXPORT = 3, WK_ORDER = 4, WK_KEY = 5 };

/* A place in the cluster's order. */
struct wire_key {
    int64_t recv_ms;
    uint64_t id;
};

static inline int wire_key_cmp(struct wire_key a, struct wire_key b)
{
    if (a.recv_ms != b.recv_ms)
        return a.recv_ms < b.recv_ms ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id;
}

#define WIRE_VERSION 2 /* The newest request version: the one this node writes and reads. */

struct wire_request {
    uint8_t version; /* 1 or 2 (0 in encode: WIRE_VERSION); version 1 carries no min_seq. */
    uint8_t kind, partition, attempt;
    int64_t now_ms;
    uint64_t limit;
    int64_t win_from_ms, win_to_ms; /* A time window ANDed to the text. */
    const char *text;               /* Not NUL-terminated; points into the message. */
    size_t text_len;
    bool forward, lo_set, hi_set; /* WK_ORDER and WK_KEY. */
    struct wire_key lo, hi;
    uint64_t min_seq; /* Answer once the copy has applied the stream up to here. */
};

int wire_request_encode(struct buf *out, const struct wire_request *r);
int wire_request_decode(const void *data, size_t len, struct wire_request *r, char *err);
/* An encoded request, readied for one copy of a partition. */
void wire_request_address(struct buf *req, uint8_t partition, uint8_t attempt, uint64_t min_seq);
/* The encoded request req (any version) written in version into out: for a copy that reads
 * only an older one (min_seq is dropped then). 0, or -EINVAL / -ENOMEM. */
int wire_request_as_version(const struct buf *req, uint8_t version, struct buf *out);

/* Answers. */
enum wire_type {
    WT_COUNT = 'C',    /* u64 */
    WT_ROWS = 'R',     /* rows, each: u64 id, then a record (store/record.h) */
    WT_PART = 'P',     /* a pipes part (qagg_encode) */
    WT_ERROR = 'E',    /* a sentence */
    WT_NOT_HELD = 'N', /* the node does not hold the partition (ask another copy) */
    WT_ALIVE = 'H',    /* still working (not counted in seq) */
    WT_EXPORT_INFO = 'I',
    WT_EXPORT_ROWS = 'X',
    WT_END = 'Z', /* u32 messages sent before this one */
};

/* Start an answer message in out (cleared first). */
void wire_answer_begin(struct buf *out, uint8_t partition, uint8_t attempt, uint8_t type,
                       uint32_t seq);
int wire_answer_row(struct buf *out, const struct lc_entry *e); /* After WT_ROWS. */

struct wire_answer {
    uint8_t partition, type, attempt;
    uint32_t seq;
    const char *body;
    size_t body_len;
};
int wire_answer_decode(const void *data, size_t len, struct wire_answer *a, char *err);
/* The next row of a WT_ROWS body at *at (advanced); 1 = a row, 0 = none left, -1 = bad. */
int wire_answer_next_row(const char **at, const char *end, struct lc_entry *e);
/* A WT_EXPORT_ROWS row: e->id the cluster id. */
int wire_export_row(struct buf *out, const struct lc_entry *e, uint64_t seq, uint64_t local);
int wire_export_next_row(const char **at, const char *end, struct lc_entry *e, uint64_t *seq,
                         uint64_t *local);

#endif
