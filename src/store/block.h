/* block.h - a block: one frame of a segment, as the store's index knows it. Internal to the
 * durable store (store_internal.h, index.c). */
#ifndef LC_BLOCK_H
#define LC_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct segment;
struct cblock;

struct block {
    uint64_t first_id;
    uint32_t count;
    uint32_t raw_len; /* Serialized records, uncompressed. */
    int64_t min_ts, max_ts;
    uint32_t level_mask;
    uint32_t level_counts[LC_LEVEL_COUNT];
    struct segment *seg;
    uint64_t offset;    /* Frame start in the segment file. */
    uint32_t frame_len; /* Header and payload. */
    uint8_t *filter;    /* Trigram filter, 2^filter_log2 bits; owned. */
    unsigned filter_log2;
    uint64_t *tokens; /* Token filter (tokfilter.h), tokens_nbits bits, then its stripes' filters
                         of stripe_nbits bits each (none when 0); owned. NULL until the builder
                         (tokbuild.c) has built it: set once, the sizes first, then this and
                         info.tokens with release stores (read: block_tokens). */
    uint32_t tokens_nbits;
    uint32_t stripe_nbits;
    uint8_t *values; /* Value summary (valsum.h), values_len bytes; owned. Set before tokens,
                        with it: NULL when tokens is (or from an index that had none). */
    uint32_t values_len;
    struct lc_block_info info; /* The summary as readers see it: set once it is in the index. */
    struct cblock *cache;      /* Decompressed copy, or NULL (under the store's cache lock). */
    bool bad;                  /* Found corrupt when read: no longer served or counted. */
    bool warm_pending;         /* In the builder's list of blocks to cache (the store's warm_mu). */
    bool deleted;              /* Taken off the index by retention (under list_lock): its file may
                                  be gone, only its summary is left for the cursors that hold it. */
};

/* The block's token filter, or NULL while it is not built (tokens_nbits is valid when not). */
static inline const uint64_t *block_tokens(const struct block *b)
{
    return __atomic_load_n(&b->tokens, __ATOMIC_ACQUIRE);
}

/* Whether the builder still owes the block a token filter (a bad block is never served). */
static inline bool block_tokens_pending(const struct block *b)
{
    return !block_tokens(b) && !__atomic_load_n(&b->bad, __ATOMIC_RELAXED);
}

#endif
