/* test_tokfilter.c - the token filters of blocks (store/tokfilter.h) and the query's use of them
 * (query/skip.c): a block without a needle's word is ruled out, a block holding the needle
 * never is, whatever its case, position inside a word or punctuation (brute force over random
 * blocks and needles of many shapes, against qry_match on every entry); the same for the
 * stripes of a block; and index files of every version load (versions 1, 3 and 4 without
 * their token filters, which the builder makes again). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "query/qry.h"
#include "store/filter.h"
#include "store/index.h"
#include "store/tokfilter.h"
#include "store/valsum.h"

#define MAXMSG     24  /* Messages in most test blocks. */
#define MAXMSG_BIG 400 /* In blocks with stripes (TOKF_STRIPE_MIN). */

/* A block of messages, with both filters as the store builds them. */
struct tblock {
    char *msgs[MAXMSG_BIG];
    size_t n;
    char text[MAXMSG_BIG * 256]; /* The messages, each followed by '\n' (COL_LINES). */
    size_t len;
    uint8_t *tri;
    unsigned log2;
    uint64_t *tok;
    uint32_t nbits, stripe_nbits;
    struct lc_block_info info;
};

static void tb_seal(struct tblock *b, bool lengths)
{
    b->len = 0;
    uint32_t lens[MAXMSG_BIG];
    for (size_t i = 0; i < b->n; i++) {
        size_t l = strlen(b->msgs[i]);
        memcpy(b->text + b->len, b->msgs[i], l);
        b->len += l;
        lens[i] = (uint32_t)l;
        if (!lengths)
            b->text[b->len++] = '\n';
    }
    b->log2 = filter_log2_for(b->len);
    b->tri = calloc(1, ((size_t)1 << b->log2) / 8);
    filter_add(b->tri, b->log2, b->text, b->len);
    CHECK(tokf_build(b->text, b->len, lengths ? (const char *)lens : NULL, (uint32_t)b->n, &b->tok,
                     &b->nbits, &b->stripe_nbits) == 0);
    CHECK((b->stripe_nbits != 0) == (b->n >= TOKF_STRIPE_MIN));
    b->info = (struct lc_block_info){.first_id = 1,
                                     .last_id = b->n,
                                     .min_ts_ms = 0,
                                     .max_ts_ms = 0,
                                     .level_mask = 1u << LC_INFO,
                                     .filter = b->tri,
                                     .filter_log2 = b->log2,
                                     .tokens = b->tok,
                                     .tokens_nbits = b->nbits,
                                     .stripe_nbits = b->stripe_nbits};
}

static void tb_free(struct tblock *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->msgs[i]);
    free(b->tri);
    free(b->tok);
    memset(b, 0, sizeof(*b));
}

static bool tb_truth(const struct tblock *b, const struct qry *q)
{
    for (size_t i = 0; i < b->n; i++) {
        struct lc_entry e = {.level = LC_INFO, .msg = b->msgs[i], .msg_len = strlen(b->msgs[i])};
        if (qry_match(q, &e))
            return true;
    }
    return false;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* A message of hex ids, numbers, words and punctuation, in mixed case. */
static char *random_message(void)
{
    static const char *const keys[] = {"rid", "user", "latency_ms", "Trace", "k"};
    static const char punct[] = " =-.:/_,\t\"";
    char m[300];
    size_t n = 0;
    unsigned parts = 2 + rnd(6);
    for (unsigned p = 0; p < parts && n < 200; p++) {
        switch (rnd(4)) {
        case 0:
            n += (size_t)snprintf(m + n, sizeof(m) - n, "%s=%0*x", keys[rnd(5)], 1 + (int)rnd(16),
                                  rnd(1u << 20));
            break;
        case 1:
            n += (size_t)snprintf(m + n, sizeof(m) - n, "%u", rnd(100000));
            break;
        case 2:
            for (unsigned k = 1 + rnd(14); k; k--)
                m[n++] = (char)((rnd(2) ? 'a' : 'A') + rnd(6));
            break;
        default:
            for (unsigned k = 1 + rnd(3); k; k--)
                m[n++] = punct[rnd(sizeof(punct) - 1)];
            break;
        }
        if (rnd(3))
            m[n++] = ' ';
    }
    m[n] = '\0';
    return strdup(m);
}

/* A needle cut from one of the block's messages at random, its case flipped at random. */
static size_t cut_needle(const struct tblock *b, char *out)
{
    const char *m = b->msgs[rnd((uint32_t)b->n)];
    size_t l = strlen(m);
    if (!l)
        return 0;
    size_t at = rnd((uint32_t)l), n = 1 + rnd((uint32_t)(l - at < 20 ? l - at : 20));
    for (size_t i = 0; i < n; i++) {
        char c = m[at + i];
        if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && rnd(2))
            c ^= 0x20;
        out[i] = c;
    }
    return n;
}

/* A field "key=value" of one of the block's messages, as the query key:value, or key:val*. */
static bool cut_pair(const struct tblock *b, char *out, bool prefix)
{
    const char *m = b->msgs[rnd((uint32_t)b->n)];
    const char *eq = strchr(m, '=');
    if (!eq || eq == m)
        return false;
    const char *k = eq;
    while (k > m && k[-1] != ' ')
        k--;
    const char *v = eq + 1, *e = v;
    while (*e && *e != ' ' && *e != '\t' && *e != '"')
        e++;
    for (const char *p = k; p < eq; p++)
        if (!(((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || *p == '_'))
            return false;
    if (e == v)
        return false;
    size_t vl = (size_t)(e - v);
    if (prefix && vl > 1)
        vl = 1 + rnd((uint32_t)vl - 1);
    snprintf(out, 200, "%.*s:%.*s%s", (int)(eq - k), k, (int)vl, v, prefix ? "*" : "");
    return true;
}

/* Brute force: a block that holds a match is never ruled out; count how many blocks without
 * one are. */
TEST(never_rules_out_a_match)
{
    size_t checked = 0, absent = 0, ruled_out = 0;
    for (int round = 0; round < 400; round++) {
        struct tblock b = {0}, other = {0};
        b.n = 1 + rnd(MAXMSG);
        other.n = 1 + rnd(MAXMSG);
        for (size_t i = 0; i < b.n; i++)
            b.msgs[i] = random_message();
        for (size_t i = 0; i < other.n; i++)
            other.msgs[i] = random_message();
        tb_seal(&b, round & 1);
        tb_seal(&other, !(round & 1));
        for (int k = 0; k < 60; k++) {
            char needle[256], err[QRY_ERR_MAX];
            struct qry *q = NULL;
            /* Needles come from the other block too, so many are absent from this one. */
            const struct tblock *from = rnd(2) ? &b : &other;
            if (k % 3 == 0 && cut_pair(from, needle, rnd(4) == 0)) {
                CHECK(qry_compile(needle, strlen(needle), 0, &q, err) == 0);
            } else {
                size_t n = cut_needle(from, needle);
                if (!n)
                    continue;
                q = qry_keyword(needle, n, err);
            }
            if (!q)
                continue;
            bool truth = tb_truth(&b, q), may = qry_block_may_match(q, &b.info);
            checked++;
            if (truth && !may)
                fprintf(stderr, "  ruled out a block that matches: %.*s\n", 60, needle);
            CHECK(!truth || may);
            absent += !truth;
            ruled_out += !truth && !may;
            qry_free(q);
        }
        tb_free(&b);
        tb_free(&other);
    }
    fprintf(stderr, "  %zu needles, %zu absent from their block, %zu of those ruled out\n", checked,
            absent, ruled_out);
    CHECK(ruled_out > absent / 3);
}

/* Brute force over blocks with stripes: a stripe that holds a match is never ruled out (its
 * entries would not be read); count how many stripes without one are. */
TEST(stripes_never_rule_out_a_match)
{
    size_t checked = 0, absent = 0, ruled_out = 0;
    for (int round = 0; round < 12; round++) {
        struct tblock *b = calloc(1, sizeof(*b));
        b->n = TOKF_STRIPE_MIN + rnd(MAXMSG_BIG - TOKF_STRIPE_MIN + 1);
        for (size_t i = 0; i < b->n; i++)
            b->msgs[i] = random_message();
        tb_seal(b, round & 1);
        for (int k = 0; k < 150; k++) {
            char needle[256], err[QRY_ERR_MAX];
            struct qry *q = NULL, *q2 = NULL;
            if (k % 3 == 0 && cut_pair(b, needle, rnd(4) == 0)) {
                CHECK(qry_compile(needle, strlen(needle), 0, &q, err) == 0);
            } else {
                size_t n = cut_needle(b, needle);
                if (!n)
                    continue;
                q = qry_keyword(needle, n, err);
            }
            if (q && k % 5 == 4) { /* Now and then an AND or an OR of two. */
                char other[256];
                size_t n2 = cut_needle(b, other);
                q2 = n2 ? qry_keyword(other, n2, err) : NULL;
                q = rnd(2) ? qry_and(q, q2) : qry_or(q, q2);
            }
            if (!q)
                continue;
            uint32_t stripes = qry_block_stripes(q, &b->info);
            for (unsigned s = 0; s < TOKF_STRIPES; s++) {
                bool truth = false;
                for (uint32_t i = tokf_stripe_first(s, (uint32_t)b->n);
                     i < tokf_stripe_first(s + 1, (uint32_t)b->n) && !truth; i++) {
                    struct lc_entry e = {
                        .level = LC_INFO, .msg = b->msgs[i], .msg_len = strlen(b->msgs[i])};
                    truth = qry_match(q, &e);
                }
                bool may = stripes >> s & 1;
                if (truth && !may)
                    fprintf(stderr, "  ruled out stripe %u that matches: %.*s\n", s, 60, needle);
                CHECK(!truth || may);
                checked++;
                absent += !truth;
                ruled_out += !truth && !may;
            }
            qry_free(q);
        }
        tb_free(b);
        free(b);
    }
    fprintf(stderr, "  %zu stripes, %zu without a match, %zu of those ruled out\n", checked, absent,
            ruled_out);
    CHECK(ruled_out > absent / 3); /* Needles shorter than a window constrain nothing. */
}

static struct tblock *hex_block(uint32_t first, uint32_t n)
{
    struct tblock *b = calloc(1, sizeof(*b));
    for (uint32_t i = 0; i < n && i < MAXMSG; i++) {
        char m[128];
        snprintf(m, sizeof(m), "GET /api/v1 rid=%08x user=%05u latency_ms=%u done", first + i,
                 (first + i) * 7 % 100000, (first + i) % 1000);
        b->msgs[b->n++] = strdup(m);
    }
    tb_seal(b, false);
    return b;
}

static bool may(const struct tblock *b, const char *text)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    CHECK(qry_compile(text, strlen(text), 0, &q, err) == 0);
    bool r = q && qry_block_may_match(q, &b->info);
    qry_free(q);
    return r;
}

/* Hex ids: every trigram is in every block, the token filter still tells them apart. */
TEST(hex_ids_rule_blocks_out)
{
    struct tblock *with = hex_block(0x00262590, 24), *without = hex_block(0x00a00000, 24);
    const char *const qs[] = {"rid=002625a7",     "rid:002625a7",
                              "002625a7",         "\"002625A7\"",
                              "RID=002625A7",     "rid:002625a*",
                              "=002625a7 ",       "002625a7 user",
                              "\"/v1 rid=0026\"", "user:00000 OR rid:002625a7"};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        CHECK(may(with, qs[i]));
    }
    /* Absent, each ruled out by some clause (a bloom filter may rarely keep one). */
    int out = 0;
    const char *const absent[] = {"rid=002625a7", "rid:002625a7", "002625a7", "\"002625A7\"",
                                  "rid:002625a*"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        out += !may(without, absent[i]);
    CHECK(out >= 4);
    /* A prefix shorter than a window, or a short edge piece, constrains nothing. */
    CHECK(may(without, "rid:0*"));
    tb_free(with);
    tb_free(without);
    free(with);
    free(without);
}

/* Fields whose key or value is not one word (in the filter whole, or as "key=") and fields
 * whose key and value are words (said by the words alone): each pair query finds its block,
 * and a block without the field is ruled out. */
TEST(fields_of_every_shape)
{
    struct tblock with = {0}, without = {0};
    with.msgs[with.n++] = strdup("svc a.b=x1 k=v.w e= q==z host-name=\"web 1\" plain=Word7");
    with.msgs[with.n++] = strdup("n.s=0 key=val9");
    without.msgs[without.n++] = strdup("svc a.c=x2 k=v.x e=1 q=y host-name=\"web 2\" plain=word8");
    without.msgs[without.n++] = strdup("n.t=1 key=val8");
    tb_seal(&with, false);
    tb_seal(&without, true);
    const char *const qs[] = {"a.b:x1",
                              "k:v.w",

                              "q:=z",
                              "host-name:\"web 1\"",
                              "plain:word7",
                              "PLAIN:WORD7",
                              "n.s:0",
                              "key:val9",
                              "a.b:x*",
                              "k:v.*",
                              "host-name:\"web*",
                              "key:val*"};
    int out = 0;
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        char err[QRY_ERR_MAX];
        struct qry *q = NULL;
        CHECK(qry_compile(qs[i], strlen(qs[i]), 0, &q, err) == 0);
        CHECK(q && tb_truth(&with, q)); /* The query does match the block. */
        qry_free(q);
        if (!may(&with, qs[i]))
            fprintf(stderr, "  ruled out a block that matches: %s\n", qs[i]);
        CHECK(may(&with, qs[i]));
        out += !may(&without, qs[i]);
    }
    /* All but the prefixes that the other block also holds (k:v.*, host-name:"web*, key:val*)
     * are absent; a bloom filter may rarely keep one. */
    CHECK(out >= 7);
    tb_free(&with);
    tb_free(&without);
}

/* A field whose value is one word is in the filter whole: a block where that value is only a
 * pid, a path or another field's value is ruled out, not just one without the word. */
TEST(one_word_fields_are_whole)
{
    int out = 0, blocks = 40;
    for (int k = 0; k < blocks; k++) {
        struct tblock b = {0};
        char m[160];
        for (int i = 0; i < 8; i++) {
            snprintf(m, sizeof(m), "app[12345]: GET /api/12345 user=%05d latency_ms=%d items=777",
                     k * 8 + i, 700 + i);
            b.msgs[b.n++] = strdup(m);
        }
        tb_seal(&b, k & 1);
        snprintf(m, sizeof(m), "user:%05d", k * 8 + 3);
        CHECK(may(&b, m)); /* The field itself: found where it is. */
        CHECK(may(&b, "latency_ms:703"));
        out += !may(&b, "user:12345");
        out += !may(&b, "latency_ms:777");
        tb_free(&b);
    }
    CHECK(out >= 2 * blocks - 4); /* A bloom filter may rarely keep one. */
}

/* Writes an index file of the current version and rereads it; a version 1 file (as written before
 * token filters, crafted here byte by byte) still loads, without token filters. */
TEST(index_versions_load)
{
    char path[] = "/tmp/lc_tokidx_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct tblock *tb = hex_block(0x100, 10);
    struct block blk = {.first_id = 1,
                        .count = 10,
                        .raw_len = 1000,
                        .min_ts = 5,
                        .max_ts = 9,
                        .level_mask = 1u << LC_INFO,
                        .offset = 16,
                        .frame_len = 100,
                        .filter = tb->tri,
                        .filter_log2 = tb->log2,
                        .tokens = tb->tok,
                        .tokens_nbits = tb->nbits};
    struct block *arr1[1] = {&blk};
    CHECK(index_write(path, 116, arr1, 1) == 0);
    struct block **arr = NULL;
    size_t n = 0, cap = 0;
    uint64_t covered = 0;
    CHECK(index_read(path, NULL, 200, &arr, &n, &cap, &covered) == 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(covered, 116);
    if (n == 1) {
        CHECK(arr[0]->tokens && arr[0]->tokens_nbits == tb->nbits);
        CHECK(arr[0]->tokens && memcmp(arr[0]->tokens, tb->tok, tb->nbits / 8) == 0);
        CHECK(memcmp(arr[0]->filter, tb->tri, ((size_t)1 << tb->log2) / 8) == 0);
        free(arr[0]->filter);
        free(arr[0]->tokens);
        free(arr[0]);
    }
    n = 0;

    /* Version 1: the same block without the token filter's fields. */
    char v1[1 << 16];
    size_t o = 0;
    uint64_t nb = 1, cov = 116;
    uint32_t log2 = tb->log2;
#define PUT(p, l) (memcpy(v1 + o, (p), (l)), o += (l))
    PUT("LCIDX\0\0\1", 8);
    PUT(&cov, 8);
    PUT(&nb, 8);
    PUT(&blk.first_id, 8);
    PUT(&blk.count, 4);
    PUT(&blk.raw_len, 4);
    PUT(&blk.min_ts, 8);
    PUT(&blk.max_ts, 8);
    PUT(&blk.level_mask, 4);
    PUT(blk.level_counts, 4 * LC_LEVEL_COUNT);
    PUT(&blk.offset, 8);
    PUT(&blk.frame_len, 4);
    PUT(&log2, 4);
    PUT(tb->tri, ((size_t)1 << log2) / 8);
    uint64_t sum = XXH3_64bits(v1, o);
    PUT(&sum, 8);
#undef PUT
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, v1, o) == (ssize_t)o);
    close(fd);
    CHECK(index_read(path, NULL, 200, &arr, &n, &cap, &covered) == 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK(arr[0]->tokens == NULL && arr[0]->first_id == 1 && arr[0]->count == 10);
        CHECK(memcmp(arr[0]->filter, tb->tri, ((size_t)1 << tb->log2) / 8) == 0);
        /* Such a block is never ruled out by a token filter, only by its trigrams. */
        struct lc_block_info info = tb->info;
        info.tokens = NULL;
        char err[QRY_ERR_MAX];
        struct qry *q = NULL;
        /* Absent, but every trigram is in the block. */
        CHECK(qry_compile("rid:00000001", 12, 0, &q, err) == 0);
        CHECK(q && qry_block_may_match(q, &info));
        CHECK(q && !qry_block_may_match(q, &tb->info));
        qry_free(q);
        free(arr[0]->filter);
        free(arr[0]);
    }
    /* Versions 3 and 4: the layout of version 5 without the stripes' u32 and the value
     * summary's, with filters that lack the one-word fields or the stripes: the blocks load
     * without them (the builder makes them again). */
    for (char version = 3; version <= 4; version++) {
        CHECK(index_write(path, 116, arr1, 1) == 0);
        fd = open(path, O_RDWR);
        off_t size = lseek(fd, 0, SEEK_END);
        char *old = malloc((size_t)size);
        CHECK(fd >= 0 && old && pread(fd, old, (size_t)size, 0) == size && old[7] == 5);
        old[7] = version;
        /* The stripes' u32 (0 here) follows the token filter's, after the trigram filter. */
        size_t at = 24 + 52 + 4 * LC_LEVEL_COUNT + ((size_t)1 << tb->log2) / 8 + 4;
        uint32_t sbits;
        memcpy(&sbits, old + at, 4);
        CHECK(sbits == 0);
        memmove(old + at, old + at + 4, (size_t)size - at - 4);
        size -= 4;
        /* The value summary's u32 (0 here) follows the token filter. */
        at += tb->nbits / 8;
        memcpy(&sbits, old + at, 4);
        CHECK(sbits == 0);
        memmove(old + at, old + at + 4, (size_t)size - at - 4);
        size -= 4;
        sum = XXH3_64bits(old, (size_t)size - 8);
        memcpy(old + size - 8, &sum, 8);
        CHECK(ftruncate(fd, size) == 0 && pwrite(fd, old, (size_t)size, 0) == size);
        close(fd);
        free(old);
        n = 0;
        CHECK(index_read(path, NULL, 200, &arr, &n, &cap, &covered) == 0);
        CHECK_EQ_INT(n, 1);
        if (n == 1) {
            CHECK(arr[0]->tokens == NULL && arr[0]->first_id == 1 && arr[0]->count == 10);
            CHECK(memcmp(arr[0]->filter, tb->tri, ((size_t)1 << tb->log2) / 8) == 0);
            free(arr[0]->filter);
            free(arr[0]);
        }
    }
    /* A block with stripes and a value summary: both come back too. */
    struct tblock *big = calloc(1, sizeof(*big));
    for (int i = 0; i < TOKF_STRIPE_MIN + 44; i++)
        big->msgs[big->n++] = random_message();
    tb_seal(big, false);
    static uint8_t levels[MAXMSG_BIG], src_lens[MAXMSG_BIG];
    struct valsum_input in = {.count = (uint32_t)big->n,
                              .levels = levels,
                              .src_lens = src_lens,
                              .srcs = "",
                              .msgs = big->text,
                              .msgs_len = big->len};
    uint8_t *vals;
    uint32_t vlen;
    CHECK(valsum_build(&in, &vals, &vlen) == 0 && vlen > 2);
    struct block bigblk = blk;
    bigblk.count = (uint32_t)big->n;
    bigblk.filter = big->tri;
    bigblk.filter_log2 = big->log2;
    bigblk.tokens = big->tok;
    bigblk.tokens_nbits = big->nbits;
    bigblk.stripe_nbits = big->stripe_nbits;
    bigblk.values = vals;
    bigblk.values_len = vlen;
    struct block *arr2[1] = {&bigblk};
    CHECK(big->stripe_nbits > 0 && index_write(path, 116, arr2, 1) == 0);
    n = 0;
    CHECK(index_read(path, NULL, 200, &arr, &n, &cap, &covered) == 0);
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK(arr[0]->tokens_nbits == big->nbits && arr[0]->stripe_nbits == big->stripe_nbits);
        CHECK(arr[0]->tokens &&
              memcmp(arr[0]->tokens, big->tok, tokf_bytes(big->nbits, big->stripe_nbits)) == 0);
        CHECK(arr[0]->values_len == vlen && arr[0]->values &&
              memcmp(arr[0]->values, vals, vlen) == 0);
        free(arr[0]->filter);
        free(arr[0]->tokens);
        free(arr[0]->values);
        free(arr[0]);
    }
    free(vals);
    tb_free(big);
    free(big);
    free(arr);
    unlink(path);
    tb_free(tb);
    free(tb);
}

int main(void)
{
    RUN(never_rules_out_a_match);
    RUN(stripes_never_rule_out_a_match);
    RUN(hex_ids_rule_blocks_out);
    RUN(fields_of_every_shape);
    RUN(one_word_fields_are_whole);
    RUN(index_versions_load);
    return check_summary("test_tokfilter");
}
