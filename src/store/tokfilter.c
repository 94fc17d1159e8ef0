/* tokfilter.c - building a block's token filter (tokfilter.h).
 *
 * The filter is sized from the number of distinct elements, so the elements are first gathered
 * (as hashes) in an open-addressing set, kept per thread with the folded copy of the messages:
 * blocks are sealed by the encoder threads at ingest rate, and fresh megabyte buffers would
 * cost a page fault per 4 KiB on first touch. */
#define _GNU_SOURCE
#include "store/tokfilter.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/filter.h"

struct tokf_scratch {
    unsigned char *fold; /* The messages, folded. */
    size_t fold_cap;
    uint64_t *set; /* Distinct element hashes; 0 = empty slot. */
    size_t set_cap, used;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    struct tokf_scratch *s = p;
    free(s->fold);
    free(s->set);
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

static size_t set_slot(const struct tokf_scratch *s, uint64_t h)
{
    return (size_t)(h >> 20) & (s->set_cap - 1);
}

static int set_grow(struct tokf_scratch *s)
{
    size_t ncap = s->set_cap ? s->set_cap * 2 : 8192;
    uint64_t *old = s->set, *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -ENOMEM;
    size_t ocap = s->set_cap;
    s->set = n;
    s->set_cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i])
            continue;
        size_t j = set_slot(s, old[i]);
        while (n[j])
            j = (j + 1) & (ncap - 1);
        n[j] = old[i];
    }
    free(old);
    return 0;
}

/* Add an element; at most half full, so probes stay short. */
static inline int set_add(struct tokf_scratch *s, uint64_t h)
{
    if (2 * (s->used + 1) > s->set_cap && set_grow(s) < 0)
        return -ENOMEM;
    size_t j = set_slot(s, h);
    while (s->set[j]) {
        if (s->set[j] == h)
            return 0;
        j = (j + 1) & (s->set_cap - 1);
    }
    s->set[j] = h;
    s->used++;
    return 0;
}

/* The elements of one message m[0..n), folded. */
static int add_message(struct tokf_scratch *s, const unsigned char *m, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (!tokf_is_word(m[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && tokf_is_word(m[j]))
            j++;
        rc |= set_add(s, tokf_hash(m + i, j - i));
        for (size_t w = i; w + TOKF_WIN <= j; w += TOKF_STRIDE)
            rc |= set_add(s, tokf_hash(m + w, TOKF_WIN));
        i = j;
    }
    /* Fields are cut at spaces only, as key:value matches them (query/match.c). */
    for (size_t i = 0; i < n && rc == 0;) {
        if (m[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        const unsigned char *eq = NULL;
        while (j < n && m[j] != ' ') {
            if (m[j] == '=' && !eq)
                eq = m + j;
            j++;
        }
        if (eq) {
            rc |= set_add(s, tokf_hash(m + i, j - i));
            rc |= set_add(s, tokf_hash(m + i, (size_t)(eq + 1 - (m + i))));
        }
        i = j;
    }
    return rc;
}

int tokf_build(const char *msgs, size_t len, const char *msg_lens, uint32_t count, uint64_t **bits,
               uint32_t *nbits)
{
    *bits = NULL;
    *nbits = 0;
    struct tokf_scratch *s = scratch_get();
    if (!s)
        return -ENOMEM;
    if (s->fold_cap < len) {
        free(s->fold);
        s->fold_cap = 0;
        if (!(s->fold = malloc(len ? len : 1)))
            return -ENOMEM;
        s->fold_cap = len;
    }
    for (size_t i = 0; i < len; i++)
        s->fold[i] = (unsigned char)filter_fold((unsigned char)msgs[i]);
    if (s->set)
        memset(s->set, 0, s->set_cap * sizeof(*s->set));
    s->used = 0;
    /* Messages one by one: a word or a field never runs on into the next message. */
    int rc = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < count && off <= len && rc == 0; i++) {
        size_t n;
        if (msg_lens) {
            uint32_t l;
            memcpy(&l, msg_lens + 4 * (size_t)i, 4);
            n = l <= len - off ? l : len - off;
        } else {
            const unsigned char *nl = memchr(s->fold + off, '\n', len - off);
            n = nl ? (size_t)(nl - (s->fold + off)) : len - off;
        }
        rc = add_message(s, s->fold + off, n);
        off += n + (msg_lens == NULL);
    }
    if (rc < 0)
        return rc;
    uint64_t want = (uint64_t)s->used * TOKF_BITS;
    uint64_t lines = want / TOKF_LINE + 1;
    if (lines * TOKF_LINE > TOKF_MAX_BITS)
        lines = TOKF_MAX_BITS / TOKF_LINE; /* Only over ~11 M distinct elements: a worse rate. */
    uint32_t nb = (uint32_t)(lines * TOKF_LINE);
    uint64_t *b = aligned_alloc(64, nb / 8);
    if (!b)
        return -ENOMEM;
    memset(b, 0, nb / 8);
    for (size_t i = 0; i < s->set_cap; i++) {
        uint64_t h = s->set[i];
        if (!h)
            continue;
        uint64_t *line = b + tokf_line(nb, h);
        for (unsigned k = 0; k < TOKF_K; k++) {
            uint32_t bit = tokf_bit(h, k);
            line[bit >> 6] |= 1ull << (bit & 63);
        }
    }
    *bits = b;
    *nbits = nb;
    return 0;
}
