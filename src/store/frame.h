/* frame.h - the on-disk unit: a checksummed, compressed run of consecutive entries.
 *
 * A segment file is a 16-byte header ("LCSEG" + version) followed by frames. A frame is a
 * 40-byte header and its payload, the zstd-compressed records:
 *
 *   u32 magic "LCFR" | u32 payload_len | u64 checksum | u64 first_id | u32 count |
 *   u32 raw_len | u32 codec (0 raw, 1 zstd, 2 lz4) | u32 layout (of the columns, below) | payload
 *
 * The checksum is XXH3-64 of everything after itself (header fields and payload), so a torn or
 * corrupted frame is detected, never served.
 *
 * In memory a block's records are rows, back to back (store/record.h). On disk the same
 * bytes are stored column by column, which compresses far better (deltas of nearby timestamps
 * are mostly zero bytes, sources repeat, messages sit together). Layout COL_LINES, when no
 * message holds a newline:
 *
 *   ts deltas (count x i64) | recv - ts (count x i64) | level (count) | flags (count) |
 *   src_len (count) | zeros (3 x count) | sources | each message followed by '\n'
 *
 * and COL_LENGTHS otherwise (the only layout before COL_LINES existed):
 *
 *   ts deltas (count x i64) | recv - ts (count x i64) | msg_len (count x u32) |
 *   level (count) | flags (count) | src_len (count) | sources | messages
 *
 * Newlines instead of a length column store the bench's log lines about 6% smaller at zstd
 * levels 1 and 16: a line's start is context zstd can match on, and no length is coded.
 * The zeros keep both forms as long as the rows. Integers are little-endian. raw_len is the
 * size of either form (they are equal). */
#ifndef LC_FRAME_H
#define LC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/entry.h"
#include "store/record.h"

#define SEG_HDR_LEN   16
#define FRAME_HDR_LEN 40
#define FRAME_MAGIC   0x5246434cu  /* "LCFR" */
#define FRAME_MAX_RAW (256u << 20) /* Larger frames are rejected as corrupt. */

enum { COL_LENGTHS = 0, COL_LINES = 1 }; /* Column layouts (see above). */

/* Payload codecs. LZ4 (a block, as LZ4_compress_default or LZ4HC write it) decompresses about
 * three times as fast as zstd, which bounds a scan of data past the cache; zstd is smaller. */
enum { FRAME_RAW = 0, FRAME_ZSTD = 1, FRAME_LZ4 = 2 };

/* Version 2 segments may hold COL_LINES frames, which version 1 readers would take for damage
 * (and cut from the newest segment as a torn tail): they skip version 2 files instead. Version
 * 3 segments may hold LZ4 frames, which version 2 readers do not know: they skip those. */
extern const char seg_magic[SEG_HDR_LEN];    /* Version 3: what this version writes. */
extern const char seg_magic_v1[SEG_HDR_LEN]; /* COL_LENGTHS frames only; still read. */
extern const char seg_magic_v2[SEG_HDR_LEN]; /* zstd frames only; still read. */
/* The header of a segment rewritten by the archiver (its frames at --archive-level): the
 * version's header with an 'A' in byte 8. */
extern const char seg_magic_archived[SEG_HDR_LEN];
extern const char seg_magic_archived_v2[SEG_HDR_LEN];

struct frame_hdr {
    uint32_t payload_len;
    uint64_t checksum;
    uint64_t first_id;
    uint32_t count;
    uint32_t raw_len;
    uint32_t codec;
    uint32_t layout; /* COL_LENGTHS or COL_LINES. */
};

/* Offsets of count records in raw[0..raw_len), plus raw_len at offs[count]. Returns 0, or -1
 * when the payload does not hold exactly count well-formed records. */
int payload_index(const char *raw, size_t raw_len, uint32_t count, uint32_t *offs);

/* Rows to columns (len bytes each way), in the layout that fits. Returns the layout, or -1 when
 * the input does not hold exactly count well-formed records. offs, if not NULL, receives the
 * rows' offsets as payload_index gives them (count + 1 entries), saving that parse. */
int rows_to_columns(const char *rows, size_t len, uint32_t count, char *cols, uint32_t *offs);
/* Columns of the given layout back to rows. Returns 0, or -1 when they are malformed. */
int columns_to_rows(const char *cols, size_t len, uint32_t count, int layout, char *rows);
/* The same, also giving the rows' offsets (count + 1 of them, as payload_index) in offs when
 * it is not NULL: one pass instead of two. */
int columns_to_rows_index(const char *cols, size_t len, uint32_t count, int layout, char *rows,
                          uint32_t *offs);

/* Where the messages of COL_LINES columns lie: cols[*off..len), each followed by '\n', in
 * order. Returns 0, or -1 for the other layout or malformed columns. Cheaper than
 * columns_summary: the lines are not counted (a frame's checksum vouches for them). */
int columns_lines(const char *cols, size_t len, uint32_t count, int layout, size_t *off);

/* What a block's index needs, read straight from its columns: event-time range, entries per
 * level, and where the messages, levels and sources lie (each one contiguous run). Returns 0
 * or -1 if malformed. */
struct col_summary {
    int64_t min_ts, max_ts;
    uint32_t level_counts[LC_LEVEL_COUNT];
    const char *msgs;
    size_t msgs_len;
    const char *msg_lens;    /* COL_LENGTHS: count u32 message lengths; NULL: each message ends
                                with '\n' (COL_LINES). */
    const uint8_t *levels;   /* count level bytes, as stored. */
    const uint8_t *src_lens; /* count source lengths; the sources back to back at srcs. */
    const char *srcs;
};
int columns_summary(const char *cols, size_t len, uint32_t count, int layout,
                    struct col_summary *out);

/* The length of message i of such a run msgs[0..len), which starts at off: from msg_lens
 * (when not NULL), else up to its '\n'; never past len. The next one starts after it, and
 * after its '\n' when msg_lens is NULL. */
static inline size_t msgs_len_at(const char *msgs, size_t len, const char *msg_lens, uint32_t i,
                                 size_t off)
{
    if (msg_lens) {
        uint32_t l;
        memcpy(&l, msg_lens + 4 * (size_t)i, 4);
        return l <= len - off ? l : len - off;
    }
    const char *nl = memchr(msgs + off, '\n', len - off);
    return nl ? (size_t)(nl - (msgs + off)) : len - off;
}

/* The buffer size frame_encode needs for raw_len bytes, whatever the level. */
size_t frame_bound(size_t raw_len);

/* Encode a frame for columns raw[0..raw_len) of the given layout into out[0..cap) (*out_len
 * bytes used); cap must be at least frame_bound(raw_len). codec is FRAME_ZSTD or FRAME_LZ4;
 * level is the zstd level, or for LZ4 1-2 for its fast mode and 3-12 for LZ4HC's levels
 * (higher ones count as 12); level 0, or a payload that does not shrink, stores it
 * uncompressed. Returns 0 or -errno. */
int frame_encode(const char *raw, size_t raw_len, uint64_t first_id, uint32_t count, int codec,
                 int level, int layout, char *out, size_t cap, size_t *out_len);

/* Parse and sanity-check a frame header from hdr[0..FRAME_HDR_LEN). Returns 0, or -1 when it
 * cannot be a frame header. */
int frame_parse_header(const char *hdr, struct frame_hdr *h);

/* Verify the checksum of a whole frame (header and payload, FRAME_HDR_LEN + payload_len). */
bool frame_verify(const struct frame_hdr *h, const char *frame);

/* Decompress the payload of a verified frame into raw (h->raw_len bytes). Returns 0 or -1. */
int frame_decode(const struct frame_hdr *h, const char *frame, char *raw);

/* Read the frame of len bytes at off of file fd into frame and decompress its columns into
 * cols, checking it is whole and the one expected (count entries, raw_len bytes); *h is its
 * header. False when it is not. */
bool frame_load(int fd, uint64_t off, uint32_t len, uint32_t count, uint32_t raw_len, char *frame,
                char *cols, struct frame_hdr *h);

/* This thread's zstd contexts (ZSTD_CCtx *, ZSTD_DCtx *), made on first use and freed when
 * the thread ends, for any code that compresses often (the cluster's batches). NULL when out
 * of memory. */
void *zstd_thread_cctx(void);
void *zstd_thread_dctx(void);

#endif
