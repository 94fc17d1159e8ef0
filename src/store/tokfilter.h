/* tokfilter.h - the token filter of a block: a bloom filter of the words, word windows and
 * key=value fields of its messages (case-folded), beside the trigram filter (filter.h).
 *
 * The trigram filter rules out few blocks for needles made of digits and hex letters: every
 * trigram of "002625a7" is in nearly every block of such ids. A token filter knows whole words
 * (maximal runs of [A-Za-z0-9_]), so an id that is not in a block rules it out, whatever its
 * letters. Its elements, all folded to lower case:
 *
 *   - every word;
 *   - for a word of TOKF_WIN bytes or more, its TOKF_WIN-byte windows at offsets 0, TOKF_STRIDE,
 *     2 * TOKF_STRIDE, ... (those that fit): a needle that is only part of a word (the language
 *     matches substrings) of at least TOKF_WIN + TOKF_STRIDE - 1 bytes holds a whole window at
 *     every alignment. Every window (stride 1) would cost a filter entry per byte of a long
 *     random word (trace ids): the stride divides that by TOKF_STRIDE, and the query side pays
 *     with TOKF_STRIDE alternatives, of which one must hold;
 *   - for every space-delimited field holding '=', the whole field ("key=value", what
 *     key:value matches), and its start up to the first '=' ("key=", for key:val*) unless the
 *     key is one word (the word, whole, beside an '=' and a field's edge, then says it). The
 *     whole field is there even when its value is one word, which its words would say too:
 *     "user=12345" rules out every block where 12345 is only a pid or a path, and a query
 *     for a rare field reads the blocks that hold the field, not every block that holds its
 *     value somewhere (index.c, version 4). That costs about a third more filter.
 *
 * Stripes. A block of TOKF_STRIPE_MIN entries or more also has a filter per stripe, a
 * sixteenth (TOKF_STRIPES) of its entries, of the same elements: the block's filter rules the
 * block out with one load, and for a block it lets through, the stripes' filters tell which
 * sixteenths to read. A rare field's block holds it in one stripe, and reading a sixteenth of
 * 256 KiB instead of all of it took `COUNT user:12345` at 20 M entries from 17-20 ms to
 * 2.4 ms here. Stripes have TOKF_STRIPE_BITS bits per element: at 6 (a false positive rate
 * near 7 %, so a block read for one stripe reads about two) they cost 145 MB at 20 M entries
 * (the block filters 190 MB), at 10 they cost 242 MB and were no faster.
 *
 * Blocked bloom filter: an element sets TOKF_K bits inside one 64-bit word, so testing it costs
 * one load (a query tests thousands of blocks) and setting it one read-modify-write (this runs
 * at ingest rate). The price, against bits spread over a whole filter, is a false positive
 * rate of about 1.7 % instead of 1 % at 10 bits per element. The filter has at least
 * TOKF_BITS bits per distinct element, in whole TOKF_LINE-bit lines.
 * Shared by the store (which builds filters) and the query's block skipping (which tests them). */
#ifndef LC_TOKFILTER_H
#define LC_TOKFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store/filter.h"

#define TOKF_WIN         6          /* Bytes in a word window. */
#define TOKF_STRIDE      3          /* Windows start every TOKF_STRIDE bytes of a word. */
#define TOKF_BITS        10         /* Filter bits per distinct element, at least. */
#define TOKF_K           5          /* Bits set per element, all in one 64-bit word. */
#define TOKF_LINE        512        /* Filters are whole multiples of this many bits. */
#define TOKF_MAX_BITS    (1u << 27) /* Larger filters are rejected as corrupt. */
#define TOKF_STRIPES     16         /* Stripe filters a block has, when it has them. */
#define TOKF_STRIPE_MIN  256        /* Fewer entries: a block has no stripe filters. */
#define TOKF_STRIPE_BITS 6          /* Stripe filter bits per distinct element, at least. */

/* The first entry (index in the block) of stripe s of a block of count entries; stripe s holds
 * entries tokf_stripe_first(s) .. tokf_stripe_first(s + 1) - 1. */
static inline uint32_t tokf_stripe_first(unsigned s, uint32_t count)
{
    return (uint32_t)((uint64_t)s * count / TOKF_STRIPES);
}

/* Stripe s's filter (stripe_nbits bits) in a block's token filter bits of nbits bits. */
static inline const uint64_t *tokf_stripe(const uint64_t *bits, uint32_t nbits,
                                          uint32_t stripe_nbits, unsigned s)
{
    return bits + nbits / 64 + (size_t)s * (stripe_nbits / 64);
}

/* Word bytes (ASCII letters, digits, '_') folded to lower case; 0 for every other byte. */
static const uint8_t tokf_word_tab[256] = {
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   48,  49,  50,  51,  52,  53,  54,  55,  56,
    57,  0,   0,   0,   0,   0,   0,   0,   97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 0,   0,   0,   0,
    95,  0,   97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 117, 118, 119, 120, 121, 122, 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,
};

static inline bool tokf_is_word(unsigned char c)
{
    return tokf_word_tab[c] != 0;
}

/* Element hashes. An element's folded bytes are read as little-endian 8-byte chunks, the last
 * one zero-padded: one chunk (most words, every window) is one multiply mix (murmur3's
 * finaliser) of it and the length; longer elements chain their chunks first. The builder
 * computes the same values as it scans (tokfilter.c), without a folded copy. */
#define TOKF_M1 0x9E3779B97F4A7C15ull

static inline uint64_t tokf_mix(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v;
}

/* An element of n <= 8 bytes, v its bytes (little-endian, zero-padded). */
static inline uint64_t tokf_hash_short(uint64_t v, size_t n)
{
    return tokf_mix(v ^ (uint64_t)n * TOKF_M1);
}

/* One chunk of a longer element into acc (0 before the first). */
static inline uint64_t tokf_step(uint64_t acc, uint64_t chunk)
{
    acc = (acc ^ chunk) * 0x87c37b91114253d5ull;
    return acc << 31 | acc >> 33;
}

/* A longer element (n > 8 bytes) from its chained chunks. */
static inline uint64_t tokf_hash_long(uint64_t acc, size_t n)
{
    return tokf_mix(acc ^ (uint64_t)n * TOKF_M1);
}

/* The hash of the element p[0..n), folded here (filter_fold: folding twice changes nothing). */
static inline uint64_t tokf_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t acc = 0, chunk = 0;
    for (size_t i = 0; i < n; i++) {
        chunk |= (uint64_t)filter_fold(s[i]) << (8 * (i & 7));
        if ((i & 7) == 7 && n > 8) {
            acc = tokf_step(acc, chunk);
            chunk = 0;
        }
    }
    if (n <= 8)
        return tokf_hash_short(chunk, n);
    if (n & 7)
        acc = tokf_step(acc, chunk);
    return tokf_hash_long(acc, n);
}

/* The word of a filter of nwords 64-bit words that holds element h (the hash's high half picks
 * it), and the TOKF_K bits it sets there (6 hash bits each, from the low half). */
static inline size_t tokf_word(uint32_t nwords, uint64_t h)
{
    return (size_t)(((h >> 32) * nwords) >> 32);
}

static inline uint64_t tokf_mask(uint64_t h)
{
    uint64_t m = 0;
    for (unsigned i = 0; i < TOKF_K; i++)
        m |= 1ull << (h >> (6 * i) & 63);
    return m;
}

/* Whether an element of hash h may be in the filter bits[0..nbits): false means it certainly
 * is not. */
static inline bool tokf_may_have(const uint64_t *bits, uint32_t nbits, uint64_t h)
{
    uint64_t m = tokf_mask(h);
    return (bits[tokf_word(nbits / 64, h)] & m) == m;
}

/* Build the token filter of a block's messages: msgs[0..len), count messages, each ending with
 * '\n' when msg_lens is NULL, else of the lengths in msg_lens (count little-endian u32). Sets
 * *bits (owned by the caller, aligned for a cache line; free() it): the block's filter of
 * *nbits bits, then, when *stripe_nbits is not 0, its TOKF_STRIPES stripes' filters of that
 * many bits each (tokf_stripe). Returns 0 or -ENOMEM. Any thread; it keeps scratch filters per
 * thread. */
int tokf_build(const char *msgs, size_t len, const char *msg_lens, uint32_t count, uint64_t **bits,
               uint32_t *nbits, uint32_t *stripe_nbits);

/* The bytes of a token filter of nbits bits with stripes of stripe_nbits. */
static inline size_t tokf_bytes(uint32_t nbits, uint32_t stripe_nbits)
{
    return ((size_t)nbits + (size_t)TOKF_STRIPES * stripe_nbits) / 8;
}

#endif
