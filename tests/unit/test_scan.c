/* test_scan.c - the scan's prefilters never drop a match: the literal a regex requires
 * (regex_literal) against PCRE2 itself on random patterns and subjects, and whole scans and
 * counts of a real store, read through the cache and past it (scan buffers), against a
 * per-entry reference. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "query/qry_internal.h"
#include "store/store.h"

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (uint32_t)(seed % n);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Naive ASCII case-insensitive substring test. */
static bool ci_contains(const char *hay, size_t hl, const char *nd, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++) {
        size_t k = 0;
        while (k < nl && lower(hay[i + k]) == lower(nd[k]))
            k++;
        if (k == nl)
            return true;
    }
    return nl == 0;
}

static size_t lit(const char *pat, char *out)
{
    size_t n = regex_literal(pat, strlen(pat), out);
    out[n] = 0;
    return n;
}

TEST(regex_literal_cases)
{
    char out[QRY_LITERAL_MAX + 1];
    CHECK(lit("latency_ms=19[0-9][0-9]", out) == 13 && strcmp(out, "latency_ms=19") == 0);
    CHECK(lit("a|b", out) == 0);
    CHECK(lit("foo(bar|baz)qux", out) == 3 && strcmp(out, "foo") == 0);
    CHECK(lit("\\d+ms timeout", out) && strcmp(out, "ms timeout") == 0);
    CHECK(lit("abc?d", out) && strcmp(out, "ab") == 0);
    CHECK(lit("abc*", out) && strcmp(out, "ab") == 0);
    CHECK(lit("abc{2}x", out) && strcmp(out, "ab") == 0);
    CHECK(lit("ab+c", out) && strcmp(out, "ab") == 0);
    CHECK(lit("a\\.b\\/c", out) && strcmp(out, "a.b/c") == 0);
    CHECK(lit("(?i)abc", out) == 0);
    CHECK(lit("(*UTF)abc", out) == 0);
    CHECK(lit("\\Qa|b\\E", out) == 0);
    CHECK(lit("\\x41bcd", out) == 0); /* \x41 eats digits: extraction stops there. */
    CHECK(lit("x[[:digit:]]]yz", out) && strcmp(out, "]yz") == 0);
    CHECK(lit("^GET /api", out) && strcmp(out, "GET /api") == 0);
    CHECK(lit("(?:ab|cd)efg", out) && strcmp(out, "efg") == 0);
    CHECK(lit(".*", out) == 0);
}

/* Pieces random patterns are made of: literals, classes, groups, alternations, quantifiers,
 * escapes and constructs the extraction gives up on. */
static const char *const pieces[] = {
    "a",   "b",   "A",    "B",     ".",    "ab", "x",    "\\.",   "[ab]", "[^a]", "(",
    ")",   "(?:", "|",    "?",     "*",    "+",  "{2}",  "{1,2}", "^",    "$",    "\\d",
    "\\w", "\\b", "[]a]", "\\x61", "(?i)", "+?", "\\\\", "{",     "}",    "]",    " ",
};

TEST(regex_literal_never_drops_a_match)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int tried = 0, with_literal = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char pat[128] = "";
        int np = 1 + (int)rnd(8);
        for (int i = 0; i < np; i++)
            strcat(pat, pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))]);
        bool caseless = rnd(2);
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), caseless ? PCRE2_CASELESS : 0,
                                       &code, &off, NULL);
        if (!re)
            continue;
        tried++;
        char l[QRY_LITERAL_MAX];
        size_t n = regex_literal(pat, strlen(pat), l);
        with_literal += n > 0;
        for (int s = 0; s < 40; s++) {
            char subj[24];
            size_t sl = rnd(sizeof(subj));
            for (size_t i = 0; i < sl; i++)
                subj[i] = "abABx. ]\\{}1"[rnd(12)];
            if (pcre2_match(re, (PCRE2_SPTR)subj, sl, 0, 0, md, NULL) >= 0 &&
                !ci_contains(subj, sl, l, n)) {
                fprintf(stderr, "  pattern '%s' matched '%.*s' without '%.*s'\n", pat, (int)sl,
                        subj, (int)n, l);
                CHECK(!"a match without the required literal");
                iter = 1 << 30;
                break;
            }
        }
        pcre2_code_free(re);
    }
    pcre2_match_data_free(md);
    CHECK(tried > 5000 && with_literal > 1000);
}

/* ---- Whole scans of a real store ---- */

#define BLOCKS 12
#define PER    300

static char dir[64];
static char msgs[BLOCKS * PER][48];

static void wipe(void)
{
    check_rm_dir(dir);
}

/* A store of BLOCKS blocks of random messages over a small alphabet, so words and regex
 * literals hit often, across row boundaries too. Returns NULL on failure. */
static struct store *fill_store(size_t cache_size)
{
    snprintf(dir, sizeof(dir), "/tmp/lc-test-scan-XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    struct store_config cfg = {.data_dir = dir,
                               .cache_size = cache_size,
                               .fsync = FSYNC_NEVER,
                               .segment_size = 64u << 20,
                               .compression_level = 1};
    struct store *s = store_open(&cfg);
    if (!s)
        return NULL;
    for (int b = 0; b < BLOCKS; b++) {
        struct lc_entry e[PER];
        for (int i = 0; i < PER; i++) {
            char *m = msgs[b * PER + i];
            size_t len = rnd(sizeof(msgs[0]));
            for (size_t k = 0; k < len; k++)
                m[k] = "abAB=1 x"[rnd(8)];
            e[i] = (struct lc_entry){.ts_ms = 1700000000000LL + i,
                                     .recv_ms = 1700000000000LL + i,
                                     .level = (uint8_t)(i % 5 == 0 ? LC_ERROR : LC_INFO),
                                     .source = "ab",
                                     .source_len = 2,
                                     .msg = m,
                                     .msg_len = len};
        }
        if (store_append(s, e, PER) < 0)
            return s;
        for (int w = 0; w < 2000 && store_done_id(s) < (uint64_t)(b + 1) * PER; w++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return s;
}

struct ref {
    const struct qry *q;
    uint64_t n;
};

static bool count_match(void *arg, const struct lc_entry *e)
{
    struct ref *r = arg;
    r->n += qry_match(r->q, e);
    return true;
}

static bool count_all(void *arg, const struct lc_entry *e)
{
    (void)e;
    (*(uint64_t *)arg)++;
    return true;
}

static void scans_agree(size_t cache_size)
{
    struct store *s = fill_store(cache_size);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_INT(store_done_id(s), BLOCKS * PER);
    static const char *const queries[] = {"ab",
                                          "a=b",
                                          "bab",
                                          "aba ab",
                                          "/a=1[ab]/",
                                          "/ab+a/",
                                          "/A b/",
                                          "/b=?1/",
                                          "/x[ab]*x/i",
                                          "\"b a\" /1a/",
                                          "ab OR x1",
                                          "-ab",
                                          "level:ERROR ba",
                                          "\"a=1\"",
                                          "/(?i)bb/"};
    for (size_t k = 0; k < sizeof(queries) / sizeof(queries[0]); k++) {
        struct qry *q = NULL;
        char err[QRY_ERR_MAX];
        CHECK_EQ_INT(qry_compile(queries[k], strlen(queries[k]), 0, &q, err), 0);
        if (!q)
            continue;
        /* The reference: every entry read one by one (a range within one block is read
         * through the cache, never prefiltered as a block), matched in full. */
        struct ref r = {.q = q};
        for (uint64_t id = 1; id <= BLOCKS * PER; id++) {
            uint64_t resume;
            qry_scan(s, NULL, id, id, true, 1, count_match, &r, &resume);
        }
        uint64_t n = 0, resume = 0, fwd = 0, back = 0;
        CHECK_EQ_INT(qry_count(s, q, 1, BLOCKS * PER, SIZE_MAX, &n, &resume), 1);
        CHECK_EQ_INT(qry_scan(s, q, 1, BLOCKS * PER, true, SIZE_MAX, count_all, &fwd, &resume), 1);
        CHECK_EQ_INT(
            qry_scan(s, q, 7, BLOCKS * PER - 3, false, SIZE_MAX, count_all, &back, &resume), 1);
        struct ref r2 = {.q = q};
        for (uint64_t id = 7; id <= BLOCKS * PER - 3; id++)
            qry_scan(s, NULL, id, id, true, 1, count_match, &r2, &resume);
        if (n != r.n || fwd != r.n || back != r2.n)
            fprintf(stderr, "  query '%s': count %llu, scan %llu, back %llu, expected %llu/%llu\n",
                    queries[k], (unsigned long long)n, (unsigned long long)fwd,
                    (unsigned long long)back, (unsigned long long)r.n, (unsigned long long)r2.n);
        CHECK(n == r.n && fwd == r.n && back == r2.n);
        CHECK(r.n > 0);
        qry_free(q);
    }
    store_close(s);
    wipe();
}

/* A cache smaller than one block: every walk reads past it, into the scan buffer. */
TEST(scans_past_the_cache_agree)
{
    scans_agree(4096);
}

/* A cache that holds everything: the same answers from cached blocks. */
TEST(scans_through_the_cache_agree)
{
    scans_agree(64u << 20);
}

/* Blocks of 300 entries have stripe filters (store/tokfilter.h), and a scan reads only the
 * stripes they let through. Rare ids and fields, an OR of two, a field AND an id, sub-ranges
 * that start and end inside stripes, both directions and a scan sliced by a small budget all
 * give exactly the per-entry reference. */
#define SPER 300
#define SBLK 6

static bool collect(void *arg, const struct lc_entry *e)
{
    uint64_t *ids = arg;
    ids[++ids[0]] = e->id;
    return true;
}

TEST(stripes_narrow_scans_exactly)
{
    static char m[SBLK * SPER][64];
    snprintf(dir, sizeof(dir), "/tmp/lc-test-scan-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    struct store_config cfg = {.data_dir = dir,
                               .cache_size = 64u << 20,
                               .fsync = FSYNC_NEVER,
                               .segment_size = 64u << 20,
                               .compression_level = 1};
    struct store *s = store_open(&cfg);
    CHECK(s != NULL);
    if (!s)
        return;
    for (int b = 0; b < SBLK; b++) {
        struct lc_entry e[SPER];
        for (int i = 0; i < SPER; i++) {
            int k = b * SPER + i;
            int len =
                snprintf(m[k], sizeof(m[k]), "GET rid=%08x user=%05u x", 0x1000 + k, rnd(40) * 7);
            e[i] = (struct lc_entry){.ts_ms = 1700000000000LL + k,
                                     .recv_ms = 1700000000000LL + k,
                                     .level = LC_INFO,
                                     .source = "",
                                     .msg = m[k],
                                     .msg_len = (size_t)len};
        }
        CHECK(store_append(s, e, SPER) >= 0);
        for (int w = 0; w < 2000 && store_done_id(s) < (uint64_t)(b + 1) * SPER; w++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    struct store_stats st;
    for (int w = 0; w < 5000; w++) { /* The token filter thread builds them in the background. */
        store_get_stats(s, &st);
        if (st.blocks >= SBLK && st.tokens_pending == 0)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(st.blocks >= SBLK && st.tokens_pending == 0);
    const uint64_t last = SBLK * SPER;
    static uint64_t got[SBLK * SPER + 1], want[SBLK * SPER + 1];
    int found = 0;
    for (int round = 0; round < 40; round++) {
        char text[128];
        int k = (int)rnd(SBLK * SPER), k2 = (int)rnd(SBLK * SPER);
        switch (round % 4) {
        case 0:
            snprintf(text, sizeof(text), "rid:%08x", 0x1000 + k);
            break;
        case 1:
            snprintf(text, sizeof(text), "rid:%08x OR rid=%08x", 0x1000 + k, 0x1000 + k2);
            break;
        case 2:
            snprintf(text, sizeof(text), "%.10s", strstr(m[k], "user="));
            text[4] = ':';
            break;
        default:
            snprintf(text, sizeof(text), "%.10s rid:%08x", strstr(m[k], "user="), 0x1000 + k);
            text[4] = ':';
            break;
        }
        struct qry *q = NULL;
        char err[QRY_ERR_MAX];
        CHECK_EQ_INT(qry_compile(text, strlen(text), 0, &q, err), 0);
        if (!q)
            continue;
        /* Stripes rule something out in the blocks, here where it counts. */
        if (round % 4 == 0) {
            struct store_cursor c;
            bool narrowed = false;
            store_cursor_init(&c, 1, last, true);
            while (store_cursor_next(s, &c))
                narrowed |= qry_block_may_match(q, c.info) &&
                            qry_block_stripes(q, c.info) != QRY_ALL_STRIPES;
            store_cursor_end(s, &c);
            CHECK(narrowed);
        }
        uint64_t lo = 1 + rnd(SPER), hi = last - rnd(SPER), resume;
        want[0] = 0;
        for (uint64_t id = lo; id <= hi; id++) {
            struct ref r = {.q = q};
            qry_scan(s, NULL, id, id, true, 1, count_match, &r, &resume);
            if (r.n)
                want[++want[0]] = id;
        }
        for (int dir_ = 0; dir_ < 2; dir_++) {
            got[0] = 0;
            CHECK_EQ_INT(qry_scan(s, q, lo, hi, dir_ == 0, SIZE_MAX, collect, got, &resume), 1);
            CHECK_EQ_INT(got[0], want[0]);
            for (uint64_t i = 1; i <= got[0] && i <= want[0]; i++)
                CHECK(got[i] == want[dir_ == 0 ? i : want[0] + 1 - i]);
        }
        /* Sliced: a budget of 37 entries a call, resumed where it stopped. */
        got[0] = 0;
        uint64_t from = lo;
        int calls = 0;
        while (calls++ < 10000 && qry_scan(s, q, from, hi, true, 37, collect, got, &from) == 0)
            ;
        CHECK_EQ_INT(got[0], want[0]);
        for (uint64_t i = 1; i <= got[0] && i <= want[0]; i++)
            CHECK(got[i] == want[i]);
        uint64_t n = 0;
        CHECK_EQ_INT(qry_count(s, q, lo, hi, SIZE_MAX, &n, &resume), 1);
        CHECK_EQ_INT(n, want[0]);
        found += want[0] > 0;
        qry_free(q);
    }
    CHECK(found >= 20); /* Most needles lie inside the range scanned. */
    store_close(s);
    wipe();
}

int main(void)
{
    log_verbosity = LOGV_WARN;
    RUN(regex_literal_cases);
    RUN(regex_literal_never_drops_a_match);
    RUN(scans_past_the_cache_agree);
    RUN(scans_through_the_cache_agree);
    RUN(stripes_narrow_scans_exactly);
    return check_summary("test_scan");
}
