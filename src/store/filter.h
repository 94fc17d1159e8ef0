/* filter.h - the trigram filter of a block: which case-folded 3-byte sequences its messages
 * contain, as a bitmap. A keyword of three or more bytes can only occur in a block whose
 * filter has every trigram of the keyword, so most blocks are ruled out without reading them.
 * Shared by the store (which builds filters) and the query matcher (which tests them). */
#ifndef LC_FILTER_H
#define LC_FILTER_H

#include <stddef.h>
#include <stdint.h>

/* ASCII upper case folded to lower case, everything else as is; branch-free. */
static inline uint32_t filter_fold(unsigned char c)
{
    return c | ((uint32_t)((unsigned char)(c - 'A') < 26) << 5);
}

/* Bit index of the trigram (a, b, c) in a filter of 2^log2 bits. */
static inline uint32_t filter_slot(uint32_t a, uint32_t b, uint32_t c, unsigned log2)
{
    uint32_t v = (a << 16) | (b << 8) | c;
    return (v * 0x9E3779B1u) >> (32 - log2);
}

/* Add every trigram of text[0..n) to the filter. This runs over every byte the server
 * stores, so it keeps a rolling 24-bit window instead of re-reading bytes. */
static inline void filter_add(uint8_t *bits, unsigned log2, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    if (n < 3)
        return;
    uint32_t v = (filter_fold(p[0]) << 8) | filter_fold(p[1]);
    unsigned shift = 32 - log2;
    for (size_t i = 2; i < n; i++) {
        v = ((v << 8) | filter_fold(p[i])) & 0xffffffu;
        uint32_t s = (v * 0x9E3779B1u) >> shift;
        bits[s >> 3] |= (uint8_t)(1u << (s & 7));
    }
}

/* 0 when text[0..n) (n >= 3) certainly does not occur in the filtered block, else 1. */
static inline int filter_may_contain(const uint8_t *bits, unsigned log2, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    if (n < 3)
        return 1;
    for (size_t i = 2; i < n; i++) {
        uint32_t s =
            filter_slot(filter_fold(p[i - 2]), filter_fold(p[i - 1]), filter_fold(p[i]), log2);
        if (!(bits[s >> 3] & (1u << (s & 7))))
            return 0;
    }
    return 1;
}

/* Filter size for a block of raw_len message bytes: about 16 bits per byte of text up to
 * 128 Ki bits, at least 1 Ki bits. */
static inline unsigned filter_log2_for(size_t raw_len)
{
    unsigned log2 = 10;
    while (log2 < 17 && ((size_t)1 << log2) < raw_len / 8)
        log2++;
    return log2;
}

#endif
