/* line.c - framing, escaping and level detection shared by the text protocols. */
#include "proto/line.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/entry.h"

size_t line_next(const char *p, size_t n, size_t *len)
{
    const char *nl = memchr(p, '\n', n);
    if (!nl)
        return 0;
    size_t l = (size_t)(nl - p);
    if (l && p[l - 1] == '\r')
        l--;
    *len = l;
    return (size_t)(nl - p) + 1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid (overlongs, surrogates
 * and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0; /* Overlong. */
        if (c == 0xed && p[1] >= 0xa0)
            return 0; /* Surrogate. */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0;
        if (c == 0xf4 && p[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

bool line_is_clean(const char *in, size_t n)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
#ifdef __SSE2__
    /* Fast path: 16 bytes at a time while all are printable ASCII (0x20..0x7e). As signed
     * bytes those are exactly the values > 0x1f and < 0x7f; 0x80..0xff are negative. */
    const __m128i lo = _mm_set1_epi8(0x1f), hi = _mm_set1_epi8(0x7f);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
        if (_mm_movemask_epi8(ok) != 0xffff)
            break;
        i += 16;
    }
#endif
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(p + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

size_t line_escape(const char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(0x1f), hi = _mm_set1_epi8(0x7f);
#endif
    for (size_t i = 0; i < n;) {
#ifdef __SSE2__
        /* Runs of printable ASCII, 16 bytes at a time (as in line_is_clean). out has room:
         * every input byte becomes at least one output byte, and the caller gave 4 per byte. */
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
            if (_mm_movemask_epi8(ok) != 0xffff)
                break;
            _mm_storeu_si128((__m128i *)(out + o), v);
            i += 16;
            o += 16;
        }
        if (i >= n)
            break;
#endif
        unsigned char c = p[i];
        size_t l = (c < 0x20 || c == 0x7f) ? 0 : utf8_seq(p + i, n - i);
        if (l == 0) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
            i++;
            continue;
        }
        memcpy(out + o, p + i, l);
        o += l;
        i += l;
    }
    return o;
}

/* Letters are the only bytes a level word is made of. */
static inline bool is_alpha(unsigned char c)
{
    return (unsigned char)((c | 0x20) - 'a') < 26;
}

int line_detect_level(const char *p, size_t n)
{
    if (n > 128)
        n = 128;
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        while (i < n && !is_alpha(s[i]))
            i++;
        size_t start = i;
        while (i < n && is_alpha(s[i]))
            i++;
        size_t len = i - start;
        /* Names are 3 to 11 letters, and start with one of these letters. */
        if (len < 3 || len > 11)
            continue;
        switch (s[start] | 0x20) {
        case 'a':
        case 'c':
        case 'd':
        case 'e':
        case 'f':
        case 'i':
        case 'n':
        case 't':
        case 'w':
            break;
        default:
            continue;
        }
        /* A word glued to digits or '_' ("error_count", "info2") is not a level. */
        if ((start > 0 && (s[start - 1] == '_' || (s[start - 1] >= '0' && s[start - 1] <= '9'))) ||
            (i < n && (s[i] == '_' || (s[i] >= '0' && s[i] <= '9'))))
            continue;
        /* A lower-case word counts only when it looks like a field ("[warn]", "level=info",
         * "error:"), so that prose such as "stack trace follows" is not a level. */
        if (s[start + 1] >= 'a') {
            unsigned char before = start ? s[start - 1] : ' ';
            unsigned char after = i < n ? s[i] : ' ';
            bool field =
                (before && strchr("[<=\"'(", before)) || (after && strchr("]:>\"')", after));
            if (s[start] >= 'a' && !field)
                continue;
        }
        int lvl = lc_level_parse(p + start, len);
        if (lvl >= 0)
            return lvl;
    }
    return -1;
}
