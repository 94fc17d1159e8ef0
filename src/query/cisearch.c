/* cisearch.c - ASCII case-insensitive substring search, the hot loop of keyword queries.
 *
 * Stores run it over whole blocks of message text, so it is a vector filter plus an exact
 * check. The filter folds case by OR-ing 0x20 into every byte: for letters that is exactly
 * lowercasing; for other bytes it may merge two bytes ('@' and '`'), which only adds
 * candidates. It tests two needle bytes at their offsets for 16 haystack positions at once
 * and verifies the rare survivors with an exact ASCII case-insensitive compare. The two bytes
 * are the rarest of the needle in typical log text rather than its first and last, which keeps
 * survivors rare: "timeout" filters on 'm' and 'u', not on the ubiquitous 't'.
 *
 * SSE2 only (the x86-64 baseline); other targets use the same filter one position at a
 * time. */
#include <string.h>

#include "query/qry_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes of typical log text from most to least frequent, already folded (OR 0x20): '{' and
 * '}' stand for brackets, DEL for '_', '`' for '@'. Bytes not listed rank as rarest. */
static const char common_folded[] =
    " etao0i1rns2:.-lc3d45u6789pmhg/=f\"b,ywk\x7f{}()vx'q`jz;|~<>!?#$%&*+";

static unsigned rarity(uint8_t folded)
{
    const char *p = memchr(common_folded, folded, sizeof(common_folded) - 1);
    return p ? (unsigned)(p - common_folded) : (unsigned)sizeof(common_folded);
}

static inline uint8_t ascii_lower(uint8_t c)
{
    return (uint8_t)(c - 'A') < 26u ? (uint8_t)(c | 0x20) : c;
}

/* Exact ASCII case-insensitive equality of n bytes. */
static inline bool eq_ci(const char *a, const char *b, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (ascii_lower((uint8_t)a[k]) != ascii_lower((uint8_t)b[k]))
            return false;
    return true;
}

void ci_needle_init(struct ci_needle *n, const char *s, size_t len)
{
    n->s = s;
    n->len = len;
    n->off1 = n->off2 = n->off3 = 0;
    if (len == 0) {
        n->b1 = n->b2 = n->b3 = 0;
        return;
    }
    /* Pick the rarest position, then the rarest other one; ties keep the earlier, and a long
     * needle is only scanned in its first 64 bytes, where a choice is as good as any. */
    size_t scan = len < 64 ? len : 64, best = 0, second = len > 1 ? 1 : 0;
    unsigned rb = rarity((uint8_t)(s[0] | 0x20)), rs = 0;
    for (size_t k = 1; k < scan; k++) {
        unsigned r = rarity((uint8_t)(s[k] | 0x20));
        if (r > rb) {
            second = best, rs = rb;
            best = k, rb = r;
        } else if (k == 1 || r > rs) {
            second = k, rs = r;
        }
    }
    n->off1 = best < second ? best : second;
    n->off2 = best < second ? second : best;
    n->b1 = (uint8_t)(s[n->off1] | 0x20);
    n->b2 = (uint8_t)(s[n->off2] | 0x20);
    n->off3 = len - 1;
    n->b3 = (uint8_t)(s[n->off3] | 0x20);
}

/* Check start positions [i, end] one at a time. */
static const char *find_scalar(const struct ci_needle *n, const char *hay, size_t i, size_t end)
{
    for (; i <= end; i++) {
        if ((uint8_t)(hay[i + n->off1] | 0x20) == n->b1 &&
            (uint8_t)(hay[i + n->off2] | 0x20) == n->b2 &&
            (uint8_t)(hay[i + n->off3] | 0x20) == n->b3 && eq_ci(hay + i, n->s, n->len))
            return hay + i;
    }
    return NULL;
}

#if defined(__SSE2__)
/* Verify the candidate start positions hay + base + (set bits of mask). */
static inline const char *verify_mask(const struct ci_needle *n, const char *base, uint64_t mask)
{
    while (mask) {
        const char *p = base + __builtin_ctzll(mask);
        if (eq_ci(p, n->s, n->len))
            return p;
        mask &= mask - 1;
    }
    return NULL;
}

/* Filter mask of the 16 start positions at p. */
static inline __m128i filter16(const char *p, size_t o1, size_t o2, size_t o3, __m128i v1,
                               __m128i v2, __m128i v3, __m128i fold)
{
    __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + o1)), fold);
    __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + o2)), fold);
    __m128i c = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + o3)), fold);
    return _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(a, v1), _mm_cmpeq_epi8(b, v2)),
                         _mm_cmpeq_epi8(c, v3));
}
#endif

const char *ci_needle_find(const struct ci_needle *n, const char *hay, size_t hay_len)
{
    if (n->len == 0)
        return hay;
    if (!hay || hay_len < n->len)
        return NULL;
    size_t last = hay_len - n->len; /* Last valid start position. */
#if defined(__SSE2__)
    if (last + 1 < 16)
        return find_scalar(n, hay, 0, last);
    const __m128i v1 = _mm_set1_epi8((char)n->b1), v2 = _mm_set1_epi8((char)n->b2),
                  v3 = _mm_set1_epi8((char)n->b3);
    const __m128i fold = _mm_set1_epi8(0x20);
    const size_t o1 = n->off1, o2 = n->off2, o3 = n->off3;
    size_t i = 0;
    /* A load at p + o3 reads up to p + o3 + 15 <= last + len - 1 while i + 15 <= last. */
    for (; i + 64 <= last + 1; i += 64) {
        const char *p = hay + i;
        __m128i m0 = filter16(p, o1, o2, o3, v1, v2, v3, fold);
        __m128i m1 = filter16(p + 16, o1, o2, o3, v1, v2, v3, fold);
        __m128i m2 = filter16(p + 32, o1, o2, o3, v1, v2, v3, fold);
        __m128i m3 = filter16(p + 48, o1, o2, o3, v1, v2, v3, fold);
        __m128i any = _mm_or_si128(_mm_or_si128(m0, m1), _mm_or_si128(m2, m3));
        if (__builtin_expect(_mm_movemask_epi8(any) != 0, 0)) {
            uint64_t mask = (uint64_t)(uint16_t)_mm_movemask_epi8(m0) |
                            (uint64_t)(uint16_t)_mm_movemask_epi8(m1) << 16 |
                            (uint64_t)(uint16_t)_mm_movemask_epi8(m2) << 32 |
                            (uint64_t)(uint16_t)_mm_movemask_epi8(m3) << 48;
            const char *r = verify_mask(n, p, mask);
            if (r)
                return r;
        }
    }
    for (; i + 16 <= last + 1; i += 16) {
        unsigned mask =
            (unsigned)_mm_movemask_epi8(filter16(hay + i, o1, o2, o3, v1, v2, v3, fold));
        if (mask) {
            const char *r = verify_mask(n, hay + i, mask);
            if (r)
                return r;
        }
    }
    if (i <= last) {
        /* The last 16 positions, overlapping ones already checked: drop those bits. */
        size_t j = last - 15;
        unsigned mask =
            (unsigned)_mm_movemask_epi8(filter16(hay + j, o1, o2, o3, v1, v2, v3, fold));
        mask &= ~0u << (i - j);
        if (mask)
            return verify_mask(n, hay + j, mask);
    }
    return NULL;
#else
    return find_scalar(n, hay, 0, last);
#endif
}

const char *ci_memmem(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    struct ci_needle n;
    ci_needle_init(&n, needle, needle_len);
    return ci_needle_find(&n, hay, hay_len);
}
