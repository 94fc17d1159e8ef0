/* tokfilter.c - building a block's token filter (tokfilter.h).
 *
 * Blocks are sealed by the encoder threads at ingest rate, so this runs over every byte stored
 * and must cost a small part of ingest. One pass over the messages: a byte's class and folded
 * form come from one table (tokf_word_tab), a word's hash is built as its bytes go by (its
 * last 8 bytes kept in a shift register, so windows and short words need no second look at
 * the text), and every element is set in the filter at once: no list or set of elements.
 *
 * The filter is sized by the number of distinct elements, known only at the end. So elements
 * go into a large scratch filter of N lines (per thread, reused: fresh buffers would cost a
 * page fault per 4 KiB), counting those that set a new bit (nearly the distinct count: the
 * scratch filter is sparse), and the block's filter of M lines is then folded from it: with N
 * a multiple of M, an element's word in the small filter is its word in the large one divided
 * by N / M (tokf_word is floor(x * words)), and its bits in the word are the same, so OR-ing
 * each run of N / M words gives exactly the filter built directly at M lines. N is 2520 lines
 * per 256 KiB of text, a number with many divisors, so M comes close to the size wanted.
 *
 * A stripe's elements go at the same time into its own scratch filter, sized by the longest
 * stripe's text, and every stripe's filter is folded to one size: that of the stripe with the
 * most distinct elements. */
#define _GNU_SOURCE
#include "store/tokfilter.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/frame.h"

#define BIG_LINES 2520u        /* Scratch lines per BIG_TEXT bytes: 2^3 * 3^2 * 5 * 7. */
#define BIG_TEXT  (256u << 10) /* At most 10 bits per 2 bytes of text: ample. */

/* Scratch line counts for small blocks (the writer seals small ones when idle): divisors of
 * BIG_LINES, so their own divisors are a fine enough ladder too. */
static const uint32_t small_lines[] = {4, 12, 60, 180, 504};

struct tokf_scratch {
    uint64_t *big; /* The scratch filter. */
    size_t big_words;
    uint64_t *stripes; /* The stripes' scratch filters, one after the other. */
    size_t stripe_words;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    struct tokf_scratch *s = p;
    free(s->big);
    free(s->stripes);
    free(s);
}

static void scratch_key_init(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

static struct tokf_scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    struct tokf_scratch *s = pthread_getspecific(scratch_key);
    if (!s && (s = calloc(1, sizeof(*s))) && pthread_setspecific(scratch_key, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* The filters being filled: the block's, nwords words at f, and how many elements set a new
 * bit in it; and the current stripe's (sf, snwords, sadded), if the block has stripes. */
struct tokf_fill {
    uint64_t *f;
    uint32_t nwords;
    uint64_t added;
    uint64_t *sf;
    uint32_t snwords;
    uint64_t sadded;
};

static inline void put(struct tokf_fill *t, uint64_t h)
{
    uint64_t *w = t->f + tokf_word(t->nwords, h), m = tokf_mask(h);
    t->added += (~*w & m) != 0;
    *w |= m;
    if (t->sf) {
        w = t->sf + tokf_word(t->snwords, h);
        t->sadded += (~*w & m) != 0;
        *w |= m;
    }
}

/* The end of a field m[start..end) whose first '=' is at eq (none: eq >= end); kword, vword:
 * no byte before the '=', after it, is a non-word byte. */
static void field_end(struct tokf_fill *t, const unsigned char *m, size_t start, size_t end,
                      size_t eq, bool kword, bool vword)
{
    if (eq >= end)
        return;
    (void)vword;
    bool key = !(kword && eq > start);
    if (eq + 1 < end || !key) /* An empty value: the whole field is "key=". */
        put(t, tokf_hash(m + start, end - start));
    if (key)
        put(t, tokf_hash(m + start, eq + 1 - start));
}

/* The elements of one message m[0..n). */
static void add_message(struct tokf_fill *t, const unsigned char *m, size_t n)
{
    uint64_t reg = 0, acc = 0;        /* The word's last 8 bytes (newest on top); its chunks. */
    size_t wl = 0;                    /* The word's length so far; 0 outside words. */
    unsigned win = TOKF_WIN;          /* Bytes until the next window ends. */
    size_t fstart = 0, eq = SIZE_MAX; /* The field's start and first '=' (SIZE_MAX: none yet). */
    bool kword = true, vword = true;  /* No non-word byte in the field before, after the '='. */
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? m[i] : ' ';
        uint8_t f = tokf_word_tab[c];
        if (f) {
            reg = reg >> 8 | (uint64_t)f << 56;
            wl++;
            if (--win == 0) {
                put(t, tokf_hash_short(reg >> (64 - 8 * TOKF_WIN), TOKF_WIN));
                win = TOKF_STRIDE;
            }
            if ((wl & 7) == 0)
                acc = tokf_step(acc, reg);
            continue;
        }
        if (wl) {
            if (wl <= 8) {
                if (wl != TOKF_WIN) /* Else its window, at offset 0, was the whole word. */
                    put(t, tokf_hash_short(reg >> (64 - 8 * wl), wl));
            } else {
                if (wl & 7)
                    acc = tokf_step(acc, reg >> (64 - 8 * (wl & 7)));
                put(t, tokf_hash_long(acc, wl));
            }
            wl = 0;
            acc = 0;
            win = TOKF_WIN;
        }
        if (c == ' ') {
            /* Fields are cut at spaces only, as key:value matches them (query/match.c). */
            field_end(t, m, fstart, i, eq, kword, vword);
            fstart = i + 1;
            eq = SIZE_MAX;
            kword = vword = true;
        } else if (eq != SIZE_MAX) {
            vword = false;
        } else if (c == '=') {
            eq = i;
        } else {
            kword = false;
        }
    }
}

/* The scratch filter's lines for a block of len bytes. */
static uint32_t big_lines_for(size_t len)
{
    for (size_t i = 0; i < sizeof(small_lines) / sizeof(small_lines[0]); i++)
        if ((uint64_t)small_lines[i] * BIG_TEXT >= (uint64_t)len * BIG_LINES)
            return small_lines[i];
    uint64_t m = (len + BIG_TEXT - 1) / BIG_TEXT;
    if (m * BIG_LINES * TOKF_LINE > TOKF_MAX_BITS)
        m = TOKF_MAX_BITS / TOKF_LINE / BIG_LINES;
    return (uint32_t)m * BIG_LINES;
}

/* A scratch buffer of at least words words in *buf (capacity *cap), zeroed. */
static int scratch_zero(uint64_t **buf, size_t *cap, size_t words)
{
    if (*cap < words) {
        free(*buf);
        *cap = 0;
        if (!(*buf = aligned_alloc(64, words * 8)))
            return -ENOMEM;
        *cap = words;
    }
    memset(*buf, 0, words * 8);
    return 0;
}

/* The fewest lines, a divisor of big, with bits bits per element for added elements. */
static uint32_t lines_for(uint64_t added, unsigned bits, uint32_t big)
{
    uint64_t want = (added * bits + TOKF_LINE - 1) / TOKF_LINE;
    uint32_t lines = want < 1 ? 1 : want < big ? (uint32_t)want : big;
    while (big % lines)
        lines++;
    return lines;
}

/* Fold a scratch filter of big lines into dst, of lines lines (a divisor of big): word j of
 * dst gathers words j * fold .. j * fold + fold - 1. */
static void fold_into(uint64_t *dst, uint32_t lines, const uint64_t *src, uint32_t big)
{
    uint32_t fold = big / lines;
    for (size_t j = 0; j < (size_t)lines * (TOKF_LINE / 64); j++) {
        uint64_t w = 0;
        for (uint32_t r = 0; r < fold; r++)
            w |= *src++;
        dst[j] = w;
    }
}

int tokf_build(const char *msgs, size_t len, const char *msg_lens, uint32_t count, uint64_t **bits,
               uint32_t *nbits, uint32_t *stripe_nbits)
{
    *bits = NULL;
    *nbits = *stripe_nbits = 0;
    struct tokf_scratch *s = scratch_get();
    if (!s)
        return -ENOMEM;
    const unsigned char *p = (const unsigned char *)msgs;
    bool striped = count >= TOKF_STRIPE_MIN;
    uint32_t sbig = 0;
    if (striped) { /* The scratch stripes are sized by the longest stripe's text. */
        size_t longest = 0, off = 0;
        for (unsigned st = 0; st < TOKF_STRIPES; st++) {
            size_t start = off;
            for (uint32_t i = tokf_stripe_first(st, count);
                 i < tokf_stripe_first(st + 1, count) && off <= len; i++)
                off += msgs_len_at(msgs, len, msg_lens, i, off) + (msg_lens == NULL);
            if (off - start > longest)
                longest = off - start;
        }
        sbig = big_lines_for(longest);
        if (scratch_zero(&s->stripes, &s->stripe_words,
                         (size_t)TOKF_STRIPES * sbig * (TOKF_LINE / 64)) < 0)
            return -ENOMEM;
    }
    uint32_t big = big_lines_for(len);
    if (scratch_zero(&s->big, &s->big_words, (size_t)big * (TOKF_LINE / 64)) < 0)
        return -ENOMEM;
    struct tokf_fill t = {.f = s->big, .nwords = big * (TOKF_LINE / 64)};
    uint64_t stripe_most = 0;
    /* Messages one by one: a word or a field never runs on into the next message. */
    size_t off = 0;
    unsigned st = 0;
    for (uint32_t i = 0; i < count && off <= len; i++) {
        if (striped && i == tokf_stripe_first(st, count)) {
            if (t.sadded > stripe_most)
                stripe_most = t.sadded;
            t.sf = s->stripes + (size_t)st * sbig * (TOKF_LINE / 64);
            t.snwords = sbig * (TOKF_LINE / 64);
            t.sadded = 0;
            st++;
        }
        size_t n = msgs_len_at(msgs, len, msg_lens, i, off);
        add_message(&t, p + off, n);
        off += n + (msg_lens == NULL);
    }
    if (t.sadded > stripe_most)
        stripe_most = t.sadded;
    uint32_t lines = lines_for(t.added, TOKF_BITS, big);
    uint32_t slines = striped ? lines_for(stripe_most, TOKF_STRIPE_BITS, sbig) : 0;
    if ((uint64_t)slines * TOKF_LINE > TOKF_MAX_BITS / TOKF_STRIPES)
        slines = 0; /* More than an index accepts (a block of huge messages): no stripes. */
    uint64_t *b = aligned_alloc(64, tokf_bytes(lines * TOKF_LINE, slines * TOKF_LINE));
    if (!b)
        return -ENOMEM;
    fold_into(b, lines, s->big, big);
    for (unsigned k = 0; k < (slines ? TOKF_STRIPES : 0); k++)
        fold_into(b + (size_t)lines * (TOKF_LINE / 64) + (size_t)k * slines * (TOKF_LINE / 64),
                  slines, s->stripes + (size_t)k * sbig * (TOKF_LINE / 64), sbig);
    *bits = b;
    *nbits = lines * TOKF_LINE;
    *stripe_nbits = slines * TOKF_LINE;
    return 0;
}
