/* filter.h - the trigram filter of a block: which case-folded 3-byte sequences its messages
 * contain, as a bitmap. A keyword of three or more bytes can only occur in a block whose
 * filter has every trigram of the keyword, so most blocks are ruled out without reading them.
 * Shared by the store (which builds filters) and the query matcher (which tests them). */
#ifndef LC_FILTER_H
#define LC_FILTER_H

#include <stddef.h>
#include <stdint.h>

/* ASCII upper case folded to lower case, everything else as is (a table: this runs for every
 * byte stored). */
static const uint8_t filter_fold_tab[256] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  16,  17,  18,
    19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,
    38,  39,  40,  41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  52,  53,  54,  55,  56,
    57,  58,  59,  60,  61,  62,  63,  64,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 91,  92,  93,  94,
    95,  96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132,
    133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151,
    152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170,
    171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189,
    190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208,
    209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227,
    228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246,
    247, 248, 249, 250, 251, 252, 253, 254, 255,
};

static inline uint32_t filter_fold(unsigned char c)
{
    return filter_fold_tab[c];
}

/* Bit index of the trigram (a, b, c) in a filter of 2^log2 bits. */
static inline uint32_t filter_slot(uint32_t a, uint32_t b, uint32_t c, unsigned log2)
{
    uint32_t v = (a << 16) | (b << 8) | c;
    return (v * 0x9E3779B1u) >> (32 - log2);
}

/* Add every trigram of text[0..n) to the filter. This runs over every byte the server
 * stores: four trigrams per step, whose hashes do not depend on each other. */
static inline void filter_add(uint8_t *bits, unsigned log2, const char *text, size_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    if (n < 3)
        return;
    const unsigned sh = 32 - log2;
    const uint32_t k = 0x9E3779B1u;
    uint32_t a = filter_fold(p[0]), b = filter_fold(p[1]);
    size_t i = 2;
    for (; i + 4 <= n; i += 4) {
        uint32_t c0 = filter_fold(p[i]), c1 = filter_fold(p[i + 1]);
        uint32_t c2 = filter_fold(p[i + 2]), c3 = filter_fold(p[i + 3]);
        uint32_t s0 = (((a << 16) | (b << 8) | c0) * k) >> sh;
        uint32_t s1 = (((b << 16) | (c0 << 8) | c1) * k) >> sh;
        uint32_t s2 = (((c0 << 16) | (c1 << 8) | c2) * k) >> sh;
        uint32_t s3 = (((c1 << 16) | (c2 << 8) | c3) * k) >> sh;
        bits[s0 >> 3] |= (uint8_t)(1u << (s0 & 7));
        bits[s1 >> 3] |= (uint8_t)(1u << (s1 & 7));
        bits[s2 >> 3] |= (uint8_t)(1u << (s2 & 7));
        bits[s3 >> 3] |= (uint8_t)(1u << (s3 & 7));
        a = c2;
        b = c3;
    }
    for (; i < n; i++) {
        uint32_t c = filter_fold(p[i]);
        uint32_t s = (((a << 16) | (b << 8) | c) * k) >> sh;
        bits[s >> 3] |= (uint8_t)(1u << (s & 7));
        a = b;
        b = c;
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
