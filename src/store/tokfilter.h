/* tokfilter.h - the token filter of a block: a bloom filter of the words, word windows and
 * key=value fields of its messages (case-folded), beside the trigram filter (filter.h).
 *
 * The trigram filter rules out few blocks for needles made of digits and hex letters: every
 * trigram of "002625a7" is in nearly every block of such ids. A token filter knows whole words
 * (maximal runs of [A-Za-z0-9_]), so an id that is not in a block rules it out, whatever its
 * letters. Its elements, all folded to lower case and hashed with XXH3-64:
 *
 *   - every word;
 *   - for a word of TOKF_WIN bytes or more, its TOKF_WIN-byte windows at offsets 0, TOKF_STRIDE,
 *     2 * TOKF_STRIDE, ... (those that fit): a needle that is only part of a word (the language
 *     matches substrings) of at least TOKF_WIN + TOKF_STRIDE - 1 bytes holds a whole window at
 *     every alignment. Every window (stride 1) would cost a filter entry per byte of a long
 *     random word (trace ids): the stride divides that by TOKF_STRIDE, and the query side pays
 *     with TOKF_STRIDE alternatives, of which one must hold;
 *   - every space-delimited field holding '=', whole ("key=value", what key:value matches), and
 *     its start up to the first '=' ("key=", for key:val*).
 *
 * Blocked bloom filter: an element sets TOKF_K bits inside one 512-bit line, so testing it costs
 * one cache miss however many bits it checks (a query tests thousands of blocks). The filter
 * has TOKF_BITS bits per distinct element, rounded up to whole lines.
 * Shared by the store (which builds filters) and the query's block skipping (which tests them). */
#ifndef LC_TOKFILTER_H
#define LC_TOKFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#define TOKF_WIN      6  /* Bytes in a word window. */
#define TOKF_STRIDE   3  /* Windows start every TOKF_STRIDE bytes of a word. */
#define TOKF_BITS     12 /* Filter bits per distinct element. */
#define TOKF_K        6  /* Bits set per element, all in one line. */
#define TOKF_LINE     512
#define TOKF_MAX_BITS (1u << 27) /* Larger filters are rejected as corrupt. */

/* 1 for the bytes words are made of: ASCII letters, digits and '_'. */
static inline bool tokf_is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The hash of an element, given folded (filter_fold) bytes. Never 0 (the builder's table uses 0
 * for an empty slot). Most elements are at most 8 bytes (short words, the windows): those are
 * one load and a multiply mix (murmur3's finaliser), XXH3 costs a call and more. */
static inline uint64_t tokf_hash(const void *folded, size_t n)
{
    if (n > 8)
        return XXH3_64bits(folded, n) | 1;
    const unsigned char *p = folded;
    uint64_t v = 0;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4); /* Overlaps lo when n < 8; the length below tells them apart. */
        v = (uint64_t)hi << 32 | lo;
    } else {
        for (size_t i = 0; i < n; i++)
            v |= (uint64_t)p[i] << (8 * i);
    }
    v ^= (uint64_t)n * 0x9E3779B97F4A7C15ull;
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v | 1;
}

/* The line of a filter of nbits bits (a multiple of TOKF_LINE) that holds element h: the high
 * half of the hash picks it, the low half the bits inside it (double hashing). */
static inline size_t tokf_line(uint32_t nbits, uint64_t h)
{
    return (size_t)(((h >> 32) * (nbits / TOKF_LINE)) >> 32) * (TOKF_LINE / 64);
}

static inline uint32_t tokf_bit(uint64_t h, unsigned i)
{
    uint32_t a = (uint32_t)h >> 1, b = ((uint32_t)h >> 10) | 1;
    return (a + i * b) & (TOKF_LINE - 1);
}

/* Whether an element of hash h may be in the filter bits[0..nbits): false means it certainly
 * is not. */
static inline bool tokf_may_have(const uint64_t *bits, uint32_t nbits, uint64_t h)
{
    const uint64_t *line = bits + tokf_line(nbits, h);
    for (unsigned i = 0; i < TOKF_K; i++) {
        uint32_t bit = tokf_bit(h, i);
        if (!(line[bit >> 6] >> (bit & 63) & 1))
            return false;
    }
    return true;
}

/* Build the token filter of a block's messages: msgs[0..len), count messages, each ending with
 * '\n' when msg_lens is NULL, else of the lengths in msg_lens (count little-endian u32). Sets
 * *bits (owned by the caller, aligned for a cache line; free() it) and *nbits. Returns 0 or
 * -ENOMEM. Any thread; it keeps a scratch table per thread. */
int tokf_build(const char *msgs, size_t len, const char *msg_lens, uint32_t count, uint64_t **bits,
               uint32_t *nbits);

#endif
