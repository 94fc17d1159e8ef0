/* test_valsum.c - a block's value summary (store/valsum.h) against brute force: for random
 * blocks of messages with fields of few and many values, quoted and escaped values, empty
 * ones, a second field of the same name, long values and names, odd level bytes and sources,
 * every field's listed counts per value and level are exactly what reading each entry's
 * first field of that name gives; fields it cannot list say so; and damaged summaries are
 * refused. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/field.h"
#include "check.h"
#include "store/valsum.h"

#define MAXN 300

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

struct blk {
    uint32_t n;
    char msgs[MAXN][400];
    char srcs[MAXN][40];
    uint8_t levels[MAXN];
    /* As valsum_input takes them. */
    char text[MAXN * 400], stext[MAXN * 40];
    uint32_t lens[MAXN + 1]; /* And the total length last. */
    uint8_t slens[MAXN];
};

/* "source" here is a message field: the entry's own source is another thing (VS_SOURCE). */
static const char *const names[] = {"status", "host", "k", "a.b", "user", "id", "long", "source"};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* A value for field k: few distinct ones for most, many for "id", some long for "long". */
static void value(unsigned k, char *out)
{
    static const char *const few[] = {"200", "500", "web1", "\"a b\"", "\"say \\\"hi\\\"\"",
                                      "x",   "",    "\"\"", "404",     "\"q\\\\z\""};
    if (k == 5)
        sprintf(out, "%u", rnd(100000));
    else if (k == 6 && rnd(3) == 0)
        sprintf(out, "%0*u", 60 + (int)rnd(20), rnd(10)); /* Around VS_VALUE_MAX. */
    else
        strcpy(out, few[rnd(k == 0 ? 3 : 10)]);
}

static void make_block(struct blk *b, uint32_t n, bool lengths)
{
    b->n = n;
    size_t tl = 0, sl = 0;
    for (uint32_t i = 0; i < n; i++) {
        char *m = b->msgs[i];
        size_t len = (size_t)sprintf(m, "GET /x%u", rnd(9));
        for (unsigned f = rnd(6); f; f--) {
            unsigned k = rnd(NNAMES);
            char v[100];
            value(k, v);
            len += (size_t)sprintf(m + len, " %s=%s", names[k], v);
            if (rnd(8) == 0)
                len += (size_t)sprintf(m + len, " %s=%s", names[k], "later"); /* Not counted. */
        }
        if (rnd(10) == 0)
            len += (size_t)sprintf(m + len, " msg=\"status=999 inside\""); /* Not a field. */
        if (rnd(4) == 0)
            b->srcs[i][0] = '\0';
        else
            sprintf(b->srcs[i], "10.0.0.%u:%u", rnd(3), 5000 + rnd(2));
        b->levels[i] = (uint8_t)(rnd(10) == 0 ? 7 + rnd(3) : rnd(LC_LEVEL_COUNT));
        memcpy(b->text + tl, m, len);
        tl += len;
        b->lens[i] = (uint32_t)len;
        if (!lengths)
            b->text[tl++] = '\n';
        size_t s = strlen(b->srcs[i]);
        memcpy(b->stext + sl, b->srcs[i], s);
        sl += s;
        b->slens[i] = (uint8_t)s;
    }
    b->lens[n] = (uint32_t)tl; /* Total, for the caller. */
}

static void summarize(struct blk *b, bool lengths, uint8_t **vals, uint32_t *vlen)
{
    struct valsum_input in = {.count = b->n,
                              .levels = b->levels,
                              .src_lens = b->slens,
                              .srcs = b->stext,
                              .msgs = b->text,
                              .msgs_len = b->lens[b->n],
                              .msg_lens = lengths ? (const char *)b->lens : NULL};
    CHECK(valsum_build(&in, vals, vlen) == 0);
}

/* The reference counts of one field (source when name is NULL): distinct values with counts
 * per level; *many when more than VS_VALUES or one longer than VS_VALUE_MAX. */
struct refval {
    char v[128];
    size_t len;
    uint32_t c[LC_LEVEL_COUNT];
};

static size_t reference(const struct blk *b, const char *name, struct refval *out, bool *many)
{
    size_t n = 0;
    *many = false;
    for (uint32_t i = 0; i < b->n; i++) {
        char v[512];
        size_t len;
        if (!name) {
            len = strlen(b->srcs[i]);
            memcpy(v, b->srcs[i], len);
        } else {
            struct qfield f;
            if (!qfield_find(b->msgs[i], strlen(b->msgs[i]), name, strlen(name), &f))
                continue;
            len = qfield_copy(&f, v);
        }
        if (!len)
            continue;
        if (len > VS_VALUE_MAX) {
            *many = true;
            continue;
        }
        unsigned l = b->levels[i] < LC_LEVEL_COUNT ? b->levels[i] : LC_INFO;
        size_t k = 0;
        while (k < n && !(out[k].len == len && memcmp(out[k].v, v, len) == 0))
            k++;
        if (k == n) {
            if (n == 64) {
                *many = true;
                continue;
            }
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].v, v, len);
            out[n].len = len;
            n++;
        }
        out[k].c[l]++;
    }
    if (n > VS_VALUES)
        *many = true;
    return n;
}

/* The summary's answer for one field agrees with the reference. */
static void agree(const uint8_t *vals, uint32_t vlen, const struct blk *b, const char *name)
{
    struct refval ref[64];
    bool many;
    size_t n = reference(b, name, ref, &many);
    const uint8_t *at = NULL;
    unsigned nv = 0;
    enum valsum_found got =
        valsum_find(vals, vlen, name == NULL, name ? name : "", name ? strlen(name) : 0, &at, &nv);
    if (many) {
        CHECK(got == VS_UNKNOWN);
        return;
    }
    if (n == 0) { /* Never there with a value: absent, or listed without values. */
        CHECK(got == VS_ABSENT || (got == VS_LISTED && nv == 0));
        return;
    }
    CHECK(got == VS_LISTED);
    if (got != VS_LISTED)
        return;
    CHECK_EQ_INT(nv, n);
    bool matched[64] = {false}; /* Each reference value listed once. */
    for (unsigned k = 0; k < nv; k++) {
        const char *v;
        size_t len;
        uint32_t c[LC_LEVEL_COUNT];
        valsum_value(&at, &v, &len, c);
        size_t r = 0;
        while (r < n && !(ref[r].len == len && memcmp(ref[r].v, v, len) == 0))
            r++;
        CHECK(r < n && !matched[r]);
        if (r < n)
            matched[r] = true;
        if (r < n && memcmp(ref[r].c, c, sizeof(c)) != 0) {
            fprintf(stderr, "  %s=%.*s: counts differ\n", name ? name : "(source)", (int)len, v);
            check_cur_failed = 1;
        }
    }
}

TEST(counts_agree_with_reading_each_entry)
{
    static struct blk b;
    for (int round = 0; round < 60; round++) {
        bool lengths = round & 1;
        make_block(&b, 1 + rnd(MAXN), lengths);
        uint8_t *vals;
        uint32_t vlen;
        summarize(&b, lengths, &vals, &vlen);
        CHECK(valsum_check(vals, vlen));
        agree(vals, vlen, &b, NULL);
        for (size_t k = 0; k < NNAMES; k++)
            agree(vals, vlen, &b, names[k]);
        agree(vals, vlen, &b, "msg");
        agree(vals, vlen, &b, "nosuch");
        free(vals);
    }
}

/* More names than a summary lists, or a name too long to list: it says it is partial, so a
 * name it lacks is unknown, not absent; names it lists still count exactly. */
static void partial_case(bool long_name)
{
    static struct blk b;
    make_block(&b, 50, true);
    size_t tl = 0;
    for (uint32_t i = 0; i < b.n; i++) {
        char *m = b.msgs[i];
        if (long_name)
            sprintf(m, "status=%u n%0*u=1", 200 + rnd(2), VS_NAME_MAX, 7u); /* 65 bytes. */
        else
            sprintf(m, "status=%u f%u=1 f%u=2", 200 + rnd(2), i, i + 100);
        size_t len = strlen(m);
        memcpy(b.text + tl, m, len);
        tl += len;
        b.lens[i] = (uint32_t)len;
    }
    b.lens[b.n] = (uint32_t)tl;
    uint8_t *vals;
    uint32_t vlen;
    summarize(&b, true, &vals, &vlen);
    const uint8_t *at;
    unsigned nv;
    CHECK(valsum_check(vals, vlen) && (vals[0] & VS_PARTIAL));
    CHECK(valsum_find(vals, vlen, false, "nosuch", 6, &at, &nv) == VS_UNKNOWN);
    CHECK(long_name || valsum_find(vals, vlen, false, "f49", 3, &at, &nv) == VS_UNKNOWN);
    agree(vals, vlen, &b, "status");
    free(vals);
}

TEST(too_many_names_is_partial)
{
    partial_case(false);
    partial_case(true);
}

/* Every cut of a summary is refused, and flipped bytes never lead a reader astray (ASan). */
TEST(damage_is_refused)
{
    static struct blk b;
    make_block(&b, 200, false);
    uint8_t *vals;
    uint32_t vlen;
    summarize(&b, false, &vals, &vlen);
    for (uint32_t cut = 0; cut < vlen; cut++)
        CHECK(!valsum_check(vals, cut));
    uint8_t *bad = malloc(vlen);
    for (int k = 0; k < 2000; k++) {
        memcpy(bad, vals, vlen);
        for (int f = 1 + (int)rnd(3); f; f--)
            bad[rnd(vlen)] = (uint8_t)rnd(256);
        if (!valsum_check(bad, vlen))
            continue;
        const uint8_t *at;
        unsigned nv;
        for (size_t n = 0; n < NNAMES; n++)
            if (valsum_find(bad, vlen, n == 0, names[n], strlen(names[n]), &at, &nv) == VS_LISTED)
                for (unsigned i = 0; i < nv; i++) {
                    const char *v;
                    size_t len;
                    uint32_t c[LC_LEVEL_COUNT];
                    valsum_value(&at, &v, &len, c);
                    CHECK(v >= (const char *)bad && v + len <= (const char *)bad + vlen);
                }
    }
    free(bad);
    free(vals);
}

int main(void)
{
    RUN(counts_agree_with_reading_each_entry);
    RUN(too_many_names_is_partial);
    RUN(damage_is_refused);
    return check_summary("test_valsum");
}
