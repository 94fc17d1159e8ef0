/* test_clwire.c - the bytes the cluster sends (cluster/wire.h): batches of 1 to 65535 entries
 * in one run or many come back entry by entry, byte-exact, with their ids; requests and answers
 * of every kind and type round trip; and every decoder refuses with one sentence (and frees
 * what it took) every prefix of a batch, byte flips, frames without their size or over the cap,
 * and hand-built payloads whose counts, runs or records do not hold.
 *
 * With CLWIRE_CORPUS=DIR set it also writes valid encodings there as seeds for fuzz_clwire
 * (tests/fuzz/corpus/fuzz_clwire: a first byte 0 = batch, 1 = request, 2 = answer). */
#include <errno.h>
#include <lz4.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "cluster/wire.h"
#include "core/buf.h"
#include "store/frame.h"
#include "store/record.h"

#define NMAX WIRE_BATCH_MAX_ENTRIES
#define SLOT 64 /* Pool bytes per generated entry: up to 24 of source, 40 of message. */

static struct lc_entry ents[NMAX];
static uint64_t ids[NMAX];
static char pool[(size_t)NMAX * SLOT];

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t rnd64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static unsigned rnd(unsigned n)
{
    return (unsigned)(rnd64() % n);
}

/* Entries 0..n with any bytes in their strings, any times, every level and flag. */
static void gen(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *s = pool + i * SLOT;
        size_t sl = rnd(25), ml = rnd(41);
        for (size_t k = 0; k < sl + ml; k++)
            s[k] = (char)rnd(256);
        ents[i] = (struct lc_entry){.ts_ms = (int64_t)rnd64(),
                                    .recv_ms = (int64_t)rnd64(),
                                    .level = (uint8_t)rnd(LC_LEVEL_COUNT),
                                    .flags = (uint8_t)rnd(256),
                                    .source = s,
                                    .source_len = sl,
                                    .msg = s + sl,
                                    .msg_len = ml};
    }
}

/* ---- Seeds for the fuzzer ---- */

static void seed(char kind, const char *name, const void *data, size_t len)
{
    const char *dir = getenv("CLWIRE_CORPUS");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fputc(kind, f);
    fwrite(data, 1, len, f);
    fclose(f);
}

/* ---- Batches: round trips ---- */

/* A decoded entry against what was added (sources past 255 bytes travel cut). */
static bool same(const struct lc_entry *g, const struct lc_entry *e)
{
    size_t sl = e->source_len > 255 ? 255 : e->source_len;
    return g->ts_ms == e->ts_ms && g->recv_ms == e->recv_ms && g->level == e->level &&
           g->flags == e->flags && g->source_len == sl && memcmp(g->source, e->source, sl) == 0 &&
           g->msg_len == e->msg_len && memcmp(g->msg, e->msg, e->msg_len) == 0;
}

/* The codec batches are sealed with: each batch test runs once for zstd, once for LZ4. */
static int codec = FRAME_ZSTD;

/* Scratch memory kept across every round trip, as a publisher and a copy keep theirs: each
 * batch is sealed and opened both with and without it. */
static struct wire_scratch flat_scratch, raw_scratch;
static unsigned too_big_to_keep; /* Batches opened with it that were over WIRE_SCRATCH_KEEP. */

/* Open z[0..zl) (into raw_scratch when asked) and check it gives back e[0..n) numbered
 * id[0..n). */
static void open_and_check(const char *z, size_t zl, const struct wire_batch_out *o,
                           const struct lc_entry *e, const uint64_t *id, size_t n, bool reuse)
{
    char err[128] = "";
    struct wire_batch_in b;
    int r =
        reuse ? wire_batch_open_in(z, zl, &b, &raw_scratch, err) : wire_batch_open(z, zl, &b, err);
    CHECK_EQ_INT(r, 0);
    if (r != 0) {
        fprintf(stderr, "  open: %s\n", err);
        return;
    }
    /* In the scratch exactly when it may keep that many bytes. */
    bool kept = reuse && b.raw_len <= WIRE_SCRATCH_KEEP;
    too_big_to_keep += reuse && !kept;
    CHECK(b.owned == !kept);
    CHECK(!kept || (b.raw == raw_scratch.p && raw_scratch.cap >= b.raw_len));
    CHECK_EQ_INT(b.nentries, n);
    CHECK_EQ_INT(b.nruns, o->nruns);
    size_t i = 0, bad = 0;
    struct lc_entry g;
    while (wire_batch_next(&b, &g)) {
        if (i >= n || g.id != id[i] || !same(&g, &e[i]))
            bad++;
        i++;
    }
    CHECK_EQ_INT(i, n);
    CHECK_EQ_INT(bad, 0);
    CHECK(!wire_batch_next(&b, &g)); /* Stays at the end. */
    wire_batch_close(&b);
    CHECK(b.raw == NULL);
    CHECK(!kept || raw_scratch.p != NULL); /* Kept for the next batch. */
}

/* Seal o at level, open the bytes, and check they give back e[0..n) numbered id[0..n); the
 * same with the scratch memory, which must change no byte. */
static void roundtrip(const struct wire_batch_out *o, const struct lc_entry *e, const uint64_t *id,
                      size_t n, int level, const char *seed_name)
{
    char *z = NULL, *z2 = NULL;
    size_t zl = 0, zl2 = 0;
    CHECK_EQ_INT(wire_batch_seal(o, codec, level, &z, &zl), 0);
    CHECK_EQ_INT(wire_batch_seal_in(o, codec, level, &flat_scratch, &z2, &zl2), 0);
    CHECK(z && z2 && zl == zl2 && memcmp(z, z2, zl) == 0);
    free(z2);
    if (!z)
        return;
    if (seed_name)
        seed(0, seed_name, z, zl);
    open_and_check(z, zl, o, e, id, n, false);
    open_and_check(z, zl, o, e, id, n, true);
    /* A damaged copy into the same scratch is refused; the scratch stays usable. */
    if (zl > 16) {
        char err[128] = "";
        struct wire_batch_in b;
        char *bad = malloc(zl);
        memcpy(bad, z, zl);
        bad[zl - 1] ^= 0x5a;
        bad[zl / 2] ^= 0xa5;
        if (wire_batch_open_in(bad, zl, &b, &raw_scratch, err) == 0)
            wire_batch_close(&b); /* A flip may leave it valid: nothing to check then. */
        else
            CHECK(b.raw == NULL && err[0]);
        free(bad);
        open_and_check(z, zl, o, e, id, n, true);
    }
    free(z);
}

TEST(batch_one)
{
    gen(1);
    struct wire_batch_out o = {0};
    CHECK_EQ_INT(wire_batch_add(&o, ents, 1, 42), 0);
    CHECK_EQ_INT(o.nruns, 1);
    CHECK_EQ_INT(o.nentries, 1);
    ids[0] = 42;
    roundtrip(&o, ents, ids, 1, 1, "batch_one");
    wire_batch_free(&o);
}

TEST(batch_runs)
{
    /* Chunks of 1-20 entries; a third start after a gap, the rest follow on (same run). */
    size_t n = 3000, expect_runs = 0;
    gen(n);
    struct wire_batch_out o = {0};
    uint64_t next = 1;
    for (size_t done = 0; done < n;) {
        size_t k = 1 + rnd(20);
        if (k > n - done)
            k = n - done;
        if (done == 0 || rnd(3) == 0) {
            next += done ? 1 + rnd(1000) : 0;
            expect_runs++;
        }
        for (size_t i = 0; i < k; i++)
            ids[done + i] = next + i;
        CHECK_EQ_INT(wire_batch_add(&o, ents + done, k, next), 0);
        next += k;
        done += k;
    }
    CHECK_EQ_INT(o.nruns, expect_runs);
    CHECK_EQ_INT(o.nentries, n);
    CHECK(o.nruns > 40 && o.nruns < 1000); /* About a third of some 290 chunks. */
    static const int levels[] = {-5, 0, 1, 3, 9, 19, 22};
    for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++)
        roundtrip(&o, ents, ids, n, levels[l], NULL);
    /* Adding none changes nothing. */
    CHECK_EQ_INT(wire_batch_add(&o, ents, 0, 7), 0);
    CHECK_EQ_INT(o.nruns, expect_runs);
    wire_batch_free(&o);
}

TEST(batch_full)
{
    /* 65535 entries in one run, then each in a run of its own. */
    gen(NMAX);
    struct wire_batch_out o = {0};
    uint64_t first = (uint64_t)7 << 48 | 1;
    for (size_t i = 0; i < NMAX; i++)
        ids[i] = first + i;
    CHECK_EQ_INT(wire_batch_add(&o, ents, NMAX, first), 0);
    CHECK_EQ_INT(o.nruns, 1);
    roundtrip(&o, ents, ids, NMAX, 1, NULL);
    wire_batch_reset(&o);
    CHECK_EQ_INT(o.nentries, 0);
    for (size_t i = 0; i < NMAX; i++) {
        ids[i] = first + 2 * i;
        CHECK_EQ_INT(wire_batch_add(&o, ents + i, 1, ids[i]), 0);
    }
    CHECK_EQ_INT(o.nruns, NMAX);
    roundtrip(&o, ents, ids, NMAX, 3, NULL);
    wire_batch_free(&o);
}

TEST(batch_fields)
{
    static char big[1 << 20], src300[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 131 + (i >> 8));
    memset(src300, 's', sizeof(src300));
    src300[254] = 'x';
    struct lc_entry e[64];
    size_t n = 0;
    for (int level = 0; level < LC_LEVEL_COUNT; level++)
        for (int f = 0; f < 4; f++) {
            static const uint8_t flags[] = {0, LC_ENTRY_TRUNCATED, 0x80, 0xff};
            e[n++] = (struct lc_entry){.ts_ms = level * 1000 + f,
                                       .recv_ms = -level,
                                       .level = (uint8_t)level,
                                       .flags = flags[f],
                                       .source = "10.1.2.3:514",
                                       .source_len = 12,
                                       .msg = "a\0b\nc\xff",
                                       .msg_len = 6};
        }
    /* Empty strings (rec_put copies from them even when empty: never NULL). */
    e[n++] = (struct lc_entry){.ts_ms = INT64_MIN, .recv_ms = INT64_MAX, .source = "", .msg = ""};
    e[n++] = (struct lc_entry){.source = "", .msg = "", .level = LC_FATAL};
    e[n++] = (struct lc_entry){.source = src300, .source_len = 255, .msg = "m", .msg_len = 1};
    e[n++] = (struct lc_entry){.source = src300, .source_len = 300, .msg = "m", .msg_len = 1};
    e[n++] = (struct lc_entry){.source = "s", .source_len = 1, .msg = big, .msg_len = sizeof(big)};
    e[n++] = (struct lc_entry){.ts_ms = -1, .source = "", .msg = big + 5, .msg_len = 70000};
    /* Ids up to the very last one: runs that end at UINT64_MAX are valid. */
    struct wire_batch_out o = {0};
    uint64_t id[64], first = UINT64_MAX - n + 1;
    for (size_t i = 0; i < n; i++)
        id[i] = first + i;
    CHECK_EQ_INT(wire_batch_add(&o, e, n, first), 0);
    roundtrip(&o, e, id, n, 1, NULL);
    /* The same at the bottom (id 1), in two calls that make one run, and small seeds. */
    wire_batch_reset(&o);
    for (size_t i = 0; i < n; i++)
        id[i] = 1 + i;
    CHECK_EQ_INT(wire_batch_add(&o, e, 10, 1), 0);
    CHECK_EQ_INT(wire_batch_add(&o, e + 10, n - 10, 11), 0);
    CHECK_EQ_INT(o.nruns, 1);
    roundtrip(&o, e, id, n, 19, NULL);
    wire_batch_reset(&o);
    CHECK_EQ_INT(wire_batch_add(&o, e, 24, 1), 0);
    roundtrip(&o, e, id, 24, 1, "batch_levels");
    wire_batch_free(&o);
    /* A record's level past the known ones reads as INFO (store/record.h). */
    struct lc_entry odd = {.level = 200, .source = "s", .source_len = 1, .msg = "m", .msg_len = 1};
    char rec[32];
    rec_put(rec, &odd);
    struct lc_entry g;
    CHECK_EQ_INT(rec_get(rec, rec_size(&odd), &g), rec_size(&odd));
    CHECK_EQ_INT(g.level, LC_INFO);
}

TEST(batch_empty_and_reset)
{
    struct wire_batch_out o = {0};
    roundtrip(&o, ents, ids, 0, 1, "batch_empty"); /* Nothing added: a valid empty batch. */
    gen(4);
    CHECK_EQ_INT(wire_batch_add(&o, ents, 2, 10), 0);
    wire_batch_reset(&o);
    /* After a reset, ids that would have followed on start a run of their own. */
    CHECK_EQ_INT(wire_batch_add(&o, ents + 2, 2, 12), 0);
    CHECK_EQ_INT(o.nruns, 1);
    ids[0] = 12, ids[1] = 13;
    roundtrip(&o, ents + 2, ids, 2, 1, NULL);
    wire_batch_free(&o);
    CHECK(o.runs.data == NULL && o.records.data == NULL);
}

TEST(batch_too_big)
{
    /* What every receiver would refuse is not sealed: past 65535 entries or the byte cap. */
    static struct lc_entry one[NMAX + 1];
    for (size_t i = 0; i <= NMAX; i++)
        one[i] = (struct lc_entry){.source = "", .msg = ""};
    struct wire_batch_out o = {0};
    CHECK_EQ_INT(wire_batch_add(&o, one, NMAX + 1, 1), 0);
    char *z = NULL;
    size_t zl = 0;
    CHECK_EQ_INT(wire_batch_seal(&o, codec, 1, &z, &zl), -E2BIG);
    CHECK(z == NULL);
    wire_batch_reset(&o);
    /* One entry whose message brings the batch to the cap exactly, then one byte past it. */
    size_t fill = WIRE_BATCH_MAX_RAW - 12 - 12 - REC_HDR_LEN - 1;
    char *big = calloc(1, fill + 1);
    struct lc_entry e = {.source = "s", .source_len = 1, .msg = big, .msg_len = fill};
    CHECK_EQ_INT(wire_batch_add(&o, &e, 1, 3), 0);
    ids[0] = 3;
    roundtrip(&o, &e, ids, 1, 1, NULL);
    wire_batch_reset(&o);
    e.msg_len++;
    CHECK_EQ_INT(wire_batch_add(&o, &e, 1, 3), 0);
    CHECK_EQ_INT(wire_batch_seal(&o, codec, 1, &z, &zl), -E2BIG);
    wire_batch_free(&o);
    free(big);
}

/* ---- Batches: refusals ---- */

/* open must refuse data with one sentence, leave nothing allocated, and iterate nothing. */
static void refuse(const void *data, size_t len, const char *what)
{
    struct wire_batch_in b;
    char err[128];
    memset(err, 0, sizeof(err));
    int r = wire_batch_open(data, len, &b, err);
    struct lc_entry g;
    if (r != -EINVAL || !err[0] || strchr(err, '\n') || b.raw || wire_batch_next(&b, &g)) {
        fprintf(stderr, "  %s: open gave %d, '%s'\n", what, r, err);
        check_cur_failed = 1;
    }
    if (r == 0)
        wire_batch_close(&b);
}

/* Like refuse, and the sentence must be this one. */
static void refuse_as(const void *data, size_t len, const char *why, const char *what)
{
    struct wire_batch_in b;
    char err[128] = "";
    int r = wire_batch_open(data, len, &b, err);
    if (r != -EINVAL || strcmp(err, why) != 0 || b.raw) {
        fprintf(stderr, "  %s: open gave %d, '%s', expected '%s'\n", what, r, err, why);
        check_cur_failed = 1;
    }
    if (r == 0)
        wire_batch_close(&b);
}

/* A sealed batch of n generated entries in a few runs. */
static char *sealed(size_t n, size_t *len)
{
    gen(n);
    struct wire_batch_out o = {0};
    for (size_t i = 0; i < n; i++)
        wire_batch_add(&o, ents + i, 1, 100 + i + (i / 7) * 3);
    char *z = NULL;
    CHECK_EQ_INT(wire_batch_seal(&o, codec, 1, &z, len), 0);
    wire_batch_free(&o);
    return z;
}

TEST(batch_every_prefix)
{
    size_t zl = 0;
    char *z = sealed(60, &zl);
    if (!z)
        return;
    seed(0, "batch_gaps", z, zl);
    refuse(NULL, 0, "no bytes");
    for (size_t n = 0; n < zl; n++) {
        char *p = malloc(n ? n : 1); /* Exactly n bytes, so ASan sees any read past them. */
        memcpy(p, z, n);
        char what[64];
        snprintf(what, sizeof(what), "prefix of %zu/%zu bytes", n, zl);
        refuse(p, n, what);
        free(p);
    }
    free(z);
}

TEST(batch_byte_flips)
{
    size_t zl = 0, refused = 0, taken = 0;
    char *z = sealed(40, &zl);
    if (!z)
        return;
    char *p = malloc(zl);
    for (int t = 0; t < 3000; t++) {
        memcpy(p, z, zl);
        int flips = 1 + (int)rnd(3);
        for (int f = 0; f < flips; f++)
            p[rnd((unsigned)zl)] ^= (char)(1 + rnd(255));
        struct wire_batch_in b;
        char err[128] = "";
        int r = wire_batch_open(p, zl, &b, err);
        if (r != 0) {
            CHECK(r == -EINVAL && err[0] && !strchr(err, '\n') && !b.raw);
            refused++;
            continue;
        }
        /* Taken (a flipped literal): it must still be a batch that holds together. */
        taken++;
        size_t i = 0;
        struct lc_entry g;
        uint64_t last = 0;
        while (wire_batch_next(&b, &g)) {
            CHECK(g.id > last);
            CHECK(g.source >= b.raw && g.msg + g.msg_len <= b.raw + b.raw_len);
            last = g.id;
            i++;
        }
        CHECK_EQ_INT(i, b.nentries);
        wire_batch_close(&b);
    }
    /* Random strings leave most of the frame as literals that any flip keeps valid. */
    CHECK(refused > 300 && taken > 300);
    free(p);
    free(z);
}

/* Compress raw into a frame (malloc'd) with or without its content size. */
static char *frame(const void *raw, size_t len, bool with_size, size_t *zl)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(len);
    char *z = malloc(cap);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, with_size);
    if (with_size) {
        *zl = ZSTD_compress2(c, z, cap, raw, len);
    } else {
        /* Streamed without a pledged size: the frame cannot say it. */
        ZSTD_inBuffer in = {raw, len, 0};
        ZSTD_outBuffer out = {z, cap, 0};
        size_t left;
        do
            left = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
        while (left != 0 && !ZSTD_isError(left));
        *zl = ZSTD_isError(left) ? left : out.pos;
    }
    ZSTD_freeCCtx(c);
    CHECK(!ZSTD_isError(*zl));
    return z;
}

/* Hand-built payloads: head, runs and records as given. */
static void raw_head(struct buf *r, const char *magic, uint32_t nruns, uint32_t nentries)
{
    *r = (struct buf){0};
    buf_append(r, magic, 4);
    buf_append(r, &nruns, 4);
    buf_append(r, &nentries, 4);
}
static void raw_run(struct buf *r, uint64_t first, uint32_t count)
{
    buf_append(r, &first, 8);
    buf_append(r, &count, 4);
}
static void raw_rec(struct buf *r, const char *src, const char *msg)
{
    struct lc_entry e = {.ts_ms = 5,
                         .level = LC_WARN,
                         .source = src,
                         .source_len = strlen(src),
                         .msg = msg,
                         .msg_len = strlen(msg)};
    char tmp[512];
    size_t n = (size_t)(rec_put(tmp, &e) - tmp);
    buf_append(r, tmp, n);
}
/* Open raw compressed; 0 or -EINVAL, and on refusal the sentence must be why. */
static int raw_open(struct buf *r, const char *why, const char *what)
{
    size_t zl;
    char *z = frame(buf_head(r), buf_len(r), true, &zl);
    int rc;
    if (why) {
        refuse_as(z, zl, why, what);
        rc = -EINVAL;
    } else {
        struct wire_batch_in b;
        char err[128] = "";
        rc = wire_batch_open(z, zl, &b, err);
        if (rc != 0) {
            fprintf(stderr, "  %s: refused: %s\n", what, err);
            check_cur_failed = 1;
        }
        wire_batch_close(&b);
    }
    free(z);
    buf_free(r);
    return rc;
}

#define E_COUNTS  "batch counts out of range"
#define E_RUN     "batch has an empty, overflowing or out-of-order run"
#define E_SUM     "batch runs do not add up to its entries"
#define E_RECORD  "batch has a malformed record"
#define E_TRAIL   "batch has bytes after its records"
#define E_MAGIC   "batch has no LCB1 magic"
#define E_NOSIZE  "batch is neither LZ4 nor a zstd frame with its size"
#define E_SIZE    "batch size out of range"
#define E_DECOMPR "batch does not decompress"

TEST(batch_frames)
{
    /* A good payload, in a frame that does not say its size. */
    struct buf r;
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 1, 1);
    raw_rec(&r, "s", "m");
    size_t zl;
    char *z = frame(buf_head(&r), buf_len(&r), false, &zl);
    CHECK(ZSTD_getFrameContentSize(z, zl) == ZSTD_CONTENTSIZE_UNKNOWN);
    refuse_as(z, zl, E_NOSIZE, "no content size");
    free(z);
    z = frame(buf_head(&r), buf_len(&r), true, &zl);
    /* The same frame followed by bytes that are not one. */
    char *more = malloc(zl + 3);
    memcpy(more, z, zl);
    memcpy(more + zl, "abc", 3);
    refuse_as(more, zl + 3, E_DECOMPR, "trailing garbage after the frame");
    free(more);
    free(z);
    buf_free(&r);
    refuse_as("LCB1\0\0\0\0\0\0\0\0", 12, E_NOSIZE, "not compressed");
    /* Too short for a head, the empty batch at the bottom, and the cap either side. */
    z = frame("LCB1\0\0\0\0\0\0\0", 11, true, &zl);
    refuse_as(z, zl, E_SIZE, "11 bytes");
    free(z);
    z = frame("LCB1\0\0\0\0\0\0\0\0", 12, true, &zl);
    struct wire_batch_in b;
    char err[128];
    CHECK_EQ_INT(wire_batch_open(z, zl, &b, err), 0);
    CHECK_EQ_INT(b.nentries, 0);
    wire_batch_close(&b);
    free(z);
    /* One entry whose message fills the batch to exactly the cap, then one byte past it. */
    size_t raw = WIRE_BATCH_MAX_RAW;
    char *big = calloc(1, raw + 1);
    uint32_t one = 1, msg = (uint32_t)(raw - 12 - 12 - REC_HDR_LEN);
    uint64_t first = 9;
    memcpy(big, "LCB1", 4);
    memcpy(big + 4, &one, 4);
    memcpy(big + 8, &one, 4);
    memcpy(big + 12, &first, 8);
    memcpy(big + 20, &one, 4);
    memcpy(big + 24 + 16, &msg, 4);
    z = frame(big, raw, true, &zl);
    CHECK_EQ_INT(wire_batch_open(z, zl, &b, err), 0);
    struct lc_entry g;
    CHECK(wire_batch_next(&b, &g) && g.id == 9 && g.msg_len == msg);
    wire_batch_close(&b);
    free(z);
    msg++;
    memcpy(big + 24 + 16, &msg, 4);
    z = frame(big, raw + 1, true, &zl);
    refuse_as(z, zl, E_SIZE, "one byte over the cap");
    free(z);
    free(big);
}

TEST(batch_payloads)
{
    struct buf r;
    /* The control: two runs, three records, accepted. */
    raw_head(&r, "LCB1", 2, 3);
    raw_run(&r, 5, 2);
    raw_run(&r, 9, 1);
    raw_rec(&r, "a", "one");
    raw_rec(&r, "", "");
    raw_rec(&r, "c", "three");
    seed(0, "raw_two_runs", buf_head(&r), buf_len(&r));
    CHECK_EQ_INT(raw_open(&r, NULL, "control"), 0);

    raw_head(&r, "LCB2", 1, 1);
    raw_run(&r, 5, 1);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_MAGIC, "LCB2");
    raw_head(&r, "lcb1", 1, 1);
    raw_run(&r, 5, 1);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_MAGIC, "lcb1");

    /* Counts: past the entry cap, more runs than entries, runs past the bytes. */
    raw_head(&r, "LCB1", 1, NMAX + 1);
    raw_run(&r, 1, NMAX + 1);
    for (int i = 0; i < NMAX + 1; i++)
        raw_rec(&r, "", "");
    raw_open(&r, E_COUNTS, "65536 entries");
    raw_head(&r, "LCB1", 2, 1);
    raw_run(&r, 1, 1);
    raw_run(&r, 3, 0);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_COUNTS, "more runs than entries");
    raw_head(&r, "LCB1", 5, 5);
    raw_run(&r, 1, 5);
    raw_open(&r, E_COUNTS, "runs past the payload");
    raw_head(&r, "LCB1", UINT32_MAX, UINT32_MAX);
    raw_open(&r, E_COUNTS, "all ones");
    raw_head(&r, "LCB1", 0, 1);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_SUM, "an entry without a run");

    /* Runs: empty, at id 0, overflowing, overlapping, going back. */
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 1, 0);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "a run of 0");
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 0, 1);
    raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "first id 0");
    raw_head(&r, "LCB1", 1, 2);
    raw_run(&r, UINT64_MAX, 2);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "past UINT64_MAX by one");
    raw_head(&r, "LCB1", 1, 2);
    raw_run(&r, UINT64_MAX - 1, 2);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    seed(0, "raw_top_ids", buf_head(&r), buf_len(&r));
    raw_open(&r, NULL, "ending at UINT64_MAX");
    raw_head(&r, "LCB1", 2, 3);
    raw_run(&r, UINT64_MAX, 1);
    raw_run(&r, 1, 2);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "a run after UINT64_MAX");
    raw_head(&r, "LCB1", 2, 4);
    raw_run(&r, 10, 2);
    raw_run(&r, 11, 2);
    for (int i = 0; i < 4; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "overlapping runs");
    raw_head(&r, "LCB1", 2, 4);
    raw_run(&r, 10, 2);
    raw_run(&r, 3, 2);
    for (int i = 0; i < 4; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, E_RUN, "a run going back");
    raw_head(&r, "LCB1", 2, 4);
    raw_run(&r, 10, 2);
    raw_run(&r, 12, 2); /* Following on without being merged: still valid. */
    for (int i = 0; i < 4; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, NULL, "adjacent runs");

    /* Runs not adding up, including counts whose 32-bit sum wraps to the entries. */
    raw_head(&r, "LCB1", 2, 3);
    raw_run(&r, 1, 1);
    raw_run(&r, 5, 1);
    for (int i = 0; i < 3; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, E_SUM, "runs short of the entries");
    raw_head(&r, "LCB1", 2, 3);
    raw_run(&r, 1, 2);
    raw_run(&r, 5, 2);
    for (int i = 0; i < 3; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, E_SUM, "runs past the entries");
    raw_head(&r, "LCB1", 2, 3);
    raw_run(&r, 1, 0x80000000u);
    raw_run(&r, 0x100000000ULL, 0x80000003u);
    for (int i = 0; i < 3; i++)
        raw_rec(&r, "a", "b");
    raw_open(&r, E_SUM, "run counts whose u32 sum wraps");

    /* Records: missing, cut, lengths past the bytes, trailing bytes. */
    raw_head(&r, "LCB1", 1, 3);
    raw_run(&r, 1, 3);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    raw_open(&r, E_RECORD, "one record missing");
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 1, 1);
    buf_append(&r, "0123456789abcdefghijkl", 22);
    raw_open(&r, E_RECORD, "a record head cut short");
    static const struct {
        uint32_t msg_len;
        uint8_t src_len;
        const char *what;
    } lens[] = {{2, 1, "message one past"},
                {1, 2, "source one past"},
                {UINT32_MAX, 1, "message of 4 GiB"},
                {UINT32_MAX - 22, 0, "message wrapping the header"},
                {0, 255, "source of 255"}};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        raw_head(&r, "LCB1", 1, 1);
        raw_run(&r, 1, 1);
        char h[REC_HDR_LEN] = {0};
        memcpy(h + 16, &lens[i].msg_len, 4);
        h[22] = (char)lens[i].src_len;
        buf_append(&r, h, sizeof(h));
        buf_append(&r, "ab", 2); /* One byte of source and one of message. */
        raw_open(&r, E_RECORD, lens[i].what);
    }
    raw_head(&r, "LCB1", 1, 2);
    raw_run(&r, 1, 2);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    buf_append(&r, "x", 1);
    raw_open(&r, E_TRAIL, "one byte after");
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 1, 1);
    raw_rec(&r, "a", "b");
    raw_rec(&r, "a", "b");
    raw_open(&r, E_TRAIL, "one record more");
    raw_head(&r, "LCB1", 0, 0);
    buf_append(&r, "x", 1);
    raw_open(&r, E_TRAIL, "an empty batch with a byte");
}

/* ---- Requests ---- */

TEST(request_roundtrip)
{
    static const int64_t times[] = {0, 1700000000000LL, -1, INT64_MIN, INT64_MAX};
    static const uint64_t limits[] = {0, 1, 1000, UINT64_MAX};
    static const int64_t wins[][2] = {
        {INT64_MIN, INT64_MAX}, {5, 5}, {-10, 10}, {INT64_MIN, INT64_MIN}, {INT64_MAX, INT64_MAX}};
    static const uint8_t attempts[] = {0, 1, 7, 255};
    char text[300];
    struct buf out = {0}, old = {0}, conv = {0};
    int n = 0;
    for (uint8_t kind = WK_COUNT; kind <= WK_KEY; kind++)
        for (size_t a = 0; a < 4; a++)
            for (size_t w = 0; w < 5; w++) {
                size_t tl = n % 7 == 0 ? 0 : rnd(sizeof(text) + 1);
                for (size_t k = 0; k < tl; k++)
                    text[k] = (char)rnd(256);
                struct wire_request r = {.kind = kind,
                                         .partition = (uint8_t)(n * 37),
                                         .attempt = attempts[a],
                                         .now_ms = times[n % 5],
                                         .limit = limits[n % 4],
                                         .win_from_ms = wins[w][0],
                                         .win_to_ms = wins[w][1],
                                         .text = tl ? text : NULL,
                                         .text_len = tl,
                                         .forward = n & 1,
                                         .lo_set = n & 2,
                                         .hi_set = n & 4,
                                         .lo = {times[(n + 1) % 5], limits[(n + 2) % 4]},
                                         .hi = {times[(n + 3) % 5], limits[(n + 1) % 4]},
                                         .min_seq = limits[(n + 3) % 4]};
                bool bounds = kind == WK_ORDER || kind == WK_KEY;
                size_t head = bounds ? 84 : 44;
                n++;
                CHECK_EQ_INT(wire_request_encode(&out, &r), 0);
                CHECK_EQ_INT(buf_len(&out), head + tl);
                if (n % 9 == 1) {
                    char name[32];
                    snprintf(name, sizeof(name), "request%d", n);
                    seed(1, name, buf_head(&out), buf_len(&out));
                }
                struct wire_request d;
                char err[128];
                CHECK_EQ_INT(wire_request_decode(buf_head(&out), buf_len(&out), &d, err), 0);
                CHECK(d.kind == r.kind && d.partition == r.partition && d.attempt == r.attempt);
                CHECK(d.now_ms == r.now_ms && d.limit == r.limit && d.min_seq == r.min_seq);
                CHECK(d.win_from_ms == r.win_from_ms && d.win_to_ms == r.win_to_ms);
                CHECK_EQ_INT(d.text_len, tl);
                CHECK(d.text == buf_head(&out) + head);
                if (bounds) { /* The bounds travel; other kinds have none. */
                    CHECK(d.forward == r.forward && d.lo_set == r.lo_set && d.hi_set == r.hi_set);
                    CHECK(wire_key_cmp(d.lo, r.lo) == 0 && wire_key_cmp(d.hi, r.hi) == 0);
                } else {
                    CHECK(!d.forward && !d.lo_set && !d.hi_set);
                }
                CHECK(tl == 0 || memcmp(d.text, text, tl) == 0);
                /* Readied for one copy: the rest stays as it was. */
                wire_request_address(&out, 200, 3, 1234567890123ULL);
                CHECK_EQ_INT(wire_request_decode(buf_head(&out), buf_len(&out), &d, err), 0);
                CHECK(d.partition == 200 && d.attempt == 3 && d.min_seq == 1234567890123ULL);
                CHECK(d.kind == r.kind && d.limit == r.limit && d.text_len == tl);
                /* Version 1, for nodes built before min_seq: 8 bytes shorter, read back with
                 * min_seq 0, and the same bytes whether encoded so or converted. */
                struct wire_request r1 = r;
                r1.version = 1;
                r1.partition = 200;
                r1.attempt = 3;
                CHECK_EQ_INT(wire_request_encode(&old, &r1), 0);
                CHECK_EQ_INT(buf_len(&old), head - 8 + tl);
                CHECK_EQ_INT(buf_head(&old)[0], 1);
                if (n % 9 == 1) {
                    char name[32];
                    snprintf(name, sizeof(name), "request%d-v1", n);
                    seed(1, name, buf_head(&old), buf_len(&old));
                }
                CHECK_EQ_INT(wire_request_as_version(&out, 1, &conv), 0);
                CHECK(buf_len(&conv) == buf_len(&old) &&
                      memcmp(buf_head(&conv), buf_head(&old), buf_len(&old)) == 0);
                CHECK_EQ_INT(wire_request_decode(buf_head(&old), buf_len(&old), &d, err), 0);
                CHECK(d.version == 1 && d.kind == r.kind && d.partition == 200 && d.attempt == 3);
                CHECK(d.now_ms == r.now_ms && d.limit == r.limit && d.min_seq == 0);
                CHECK(d.win_from_ms == r.win_from_ms && d.win_to_ms == r.win_to_ms);
                CHECK(d.text_len == tl && d.text == buf_head(&old) + head - 8);
                CHECK(tl == 0 || memcmp(d.text, text, tl) == 0);
                if (bounds) {
                    CHECK(d.forward == r.forward && d.lo_set == r.lo_set && d.hi_set == r.hi_set);
                    CHECK(wire_key_cmp(d.lo, r.lo) == 0 && wire_key_cmp(d.hi, r.hi) == 0);
                }
                /* Addressing a version 1 request leaves its text alone (it has no min_seq). */
                wire_request_address(&old, 7, 9, 55);
                CHECK_EQ_INT(wire_request_decode(buf_head(&old), buf_len(&old), &d, err), 0);
                CHECK(d.partition == 7 && d.attempt == 9 && d.min_seq == 0 && d.text_len == tl);
                CHECK(tl == 0 || memcmp(d.text, text, tl) == 0);
                /* And back to version 2: min_seq 0, the rest as it was. */
                CHECK_EQ_INT(wire_request_as_version(&old, 2, &conv), 0);
                CHECK_EQ_INT(wire_request_decode(buf_head(&conv), buf_len(&conv), &d, err), 0);
                CHECK(d.version == 2 && d.min_seq == 0 && d.partition == 7 && d.limit == r.limit);
                CHECK(d.text_len == tl && (tl == 0 || memcmp(d.text, text, tl) == 0));
            }
    buf_free(&out);
    buf_free(&old);
    buf_free(&conv);
}

static void refuse_request(const void *data, size_t len, const char *why, const char *what)
{
    struct wire_request d;
    char err[128] = "";
    int r = wire_request_decode(data, len, &d, err);
    if (r != -EINVAL || strcmp(err, why) != 0) {
        fprintf(stderr, "  %s: decode gave %d, '%s'\n", what, r, err);
        check_cur_failed = 1;
    }
}

TEST(request_bad)
{
    struct buf out = {0};
    struct wire_request r = {.kind = WK_ROWS, .win_from_ms = 1, .win_to_ms = 2, .text = "x"};
    r.text_len = 1;
    CHECK_EQ_INT(wire_request_encode(&out, &r), 0);
    char *p = malloc(96);
    for (size_t n = 0; n < 44; n++) {
        char *q = malloc(n ? n : 1);
        memcpy(q, buf_head(&out), n);
        refuse_request(q, n, "request too short or of an unknown version", "prefix");
        free(q);
    }
    refuse_request(NULL, 0, "request too short or of an unknown version", "no bytes");
    memcpy(p, buf_head(&out), 45);
    for (int v = 0; v < 256; v++) {
        p[0] = (char)v;
        if (v != 1 && v != 2)
            refuse_request(p, 45, "request too short or of an unknown version", "version");
    }
    p[0] = 1; /* Version 1 is 8 bytes shorter: no min_seq. */
    for (size_t n = 1; n < 36; n++)
        refuse_request(p, n, "request too short or of an unknown version", "version 1 prefix");
    struct wire_request d;
    char err[128];
    CHECK_EQ_INT(wire_request_decode(p, 36, &d, err), 0);
    CHECK(d.version == 1 && d.min_seq == 0 && d.text_len == 0);
    /* Converting refuses what decoding refuses, and versions it does not know. */
    struct buf conv = {0}, junk = {0};
    CHECK_EQ_INT(wire_request_as_version(&junk, 1, &conv), -EINVAL);
    buf_append(&junk, p, 35);
    CHECK_EQ_INT(wire_request_as_version(&junk, 2, &conv), -EINVAL);
    for (int v = 0; v < 256; v++)
        if (v != 1 && v != 2)
            CHECK_EQ_INT(wire_request_as_version(&out, (uint8_t)v, &conv), -EINVAL);
    r.version = 3;
    CHECK_EQ_INT(wire_request_encode(&conv, &r), -EINVAL);
    r.version = 0;
    buf_free(&junk);
    buf_free(&conv);
    p[0] = 2;
    for (int k = WK_KEY + 1; k < 256; k++) {
        p[1] = (char)k;
        refuse_request(p, 45, "request of an unknown kind", "kind");
    }
    p[1] = WK_COUNT;
    static const int64_t bad[][2] = {{1, 0}, {INT64_MAX, INT64_MIN}, {0, -1}};
    for (size_t i = 0; i < 3; i++) {
        memcpy(p + 20, &bad[i][0], 8);
        memcpy(p + 28, &bad[i][1], 8);
        refuse_request(p, 45, "request with an empty time window", "window");
    }
    /* A list's request must carry its bounds, with known flags only. */
    struct wire_request o = {.kind = WK_ORDER, .win_from_ms = 1, .win_to_ms = 2, .forward = true};
    CHECK_EQ_INT(wire_request_encode(&out, &o), 0);
    CHECK_EQ_INT(buf_len(&out), 84);
    memcpy(p, buf_head(&out), 84);
    for (size_t n = 44; n < 84; n++)
        refuse_request(p, n, "request too short for its bounds", "bounds");
    for (int f = 8; f < 256; f += 8) {
        p[44] = (char)f;
        refuse_request(p, 84, "request with unknown flags", "flags");
    }
    p[44] = 1;
    for (int at = 45; at < 52; at++) { /* The reserved bytes after the flags. */
        p[at] = 1;
        refuse_request(p, 84, "request with unknown flags", "reserved");
        p[at] = 0;
    }
    free(p);
    /* The encoder clears its buffer first. */
    buf_append(&out, "junk", 4);
    CHECK_EQ_INT(wire_request_encode(&out, &r), 0);
    CHECK_EQ_INT(buf_len(&out), 45);
    buf_free(&out);
}

/* ---- Answers ---- */

TEST(answer_types)
{
    static const struct {
        uint8_t type;
        const char *body;
        size_t len;
    } t[] = {{WT_COUNT, "\x05\0\0\0\0\0\0\x80", 8},
             {WT_ROWS, "", 0},
             {WT_PART, "QAGG\0\1\2", 7},
             {WT_ERROR, "query needs more than 65536 bytes (--query-memory)", 50},
             {WT_NOT_HELD, "", 0},
             {WT_ALIVE, "", 0},
             {WT_END, "\x03\0\0\0", 4}};
    struct buf out = {0};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t part = (uint8_t)(i * 40), attempt = (uint8_t)(255 - i);
        uint32_t seq = i == 3 ? UINT32_MAX : (uint32_t)i;
        buf_append(&out, "stale", 5);
        wire_answer_begin(&out, part, attempt, t[i].type, seq);
        CHECK_EQ_INT(buf_len(&out), 8);
        buf_append(&out, t[i].body, t[i].len);
        char name[32];
        snprintf(name, sizeof(name), "answer_%c", t[i].type);
        seed(2, name, buf_head(&out), buf_len(&out));
        struct wire_answer a;
        char err[128] = "";
        CHECK_EQ_INT(wire_answer_decode(buf_head(&out), buf_len(&out), &a, err), 0);
        CHECK(a.partition == part && a.type == t[i].type && a.attempt == attempt);
        CHECK(a.seq == seq);
        CHECK(a.body == buf_head(&out) + 8 && a.body_len == t[i].len);
        CHECK(memcmp(a.body, t[i].body, t[i].len) == 0);
    }
    buf_free(&out);
}

static void refuse_answer(const void *data, size_t len, const char *why, const char *what)
{
    struct wire_answer a;
    char err[128] = "";
    int r = wire_answer_decode(data, len, &a, err);
    if (r != -EINVAL || strcmp(err, why) != 0) {
        fprintf(stderr, "  %s: decode gave %d, '%s'\n", what, r, err);
        check_cur_failed = 1;
    }
}

TEST(answer_bad)
{
    char m[16] = {3, 0, 1, 0, 9, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    refuse_answer(NULL, 0, "answer too short", "no bytes");
    for (size_t n = 0; n < 8; n++) {
        char *q = malloc(n ? n : 1);
        memcpy(q, m, n);
        refuse_answer(q, n, "answer too short", "prefix");
        free(q);
    }
    for (int type = 0; type < 256; type++) {
        m[1] = (char)type;
        struct wire_answer a;
        char err[128] = "";
        int r = wire_answer_decode(m, 8, &a, err);
        switch (type) {
        case WT_ROWS:
        case WT_PART:
        case WT_ERROR:
        case WT_NOT_HELD:
        case WT_ALIVE:
        case WT_EXPORT_ROWS:
            CHECK_EQ_INT(r, 0);
            break;
        case WT_EXPORT_INFO:
            CHECK_EQ_STR(err, "export info of the wrong size");
            break;
        case WT_COUNT:
            CHECK_EQ_STR(err, "count answer of the wrong size");
            break;
        case WT_END:
            CHECK_EQ_STR(err, "end answer of the wrong size");
            break;
        default:
            CHECK_EQ_STR(err, "answer of an unknown type");
            CHECK_EQ_INT(r, -EINVAL);
        }
    }
    m[1] = WT_COUNT;
    refuse_answer(m, 15, "count answer of the wrong size", "count of 7");
    struct wire_answer a;
    char err[128];
    CHECK_EQ_INT(wire_answer_decode(m, 16, &a, err), 0);
    CHECK(a.body_len == 8 && a.seq == 9 && a.partition == 3 && a.attempt == 1);
    char big[17] = {0};
    memcpy(big, m, 16);
    refuse_answer(big, 17, "count answer of the wrong size", "count of 9");
    m[1] = WT_END;
    CHECK_EQ_INT(wire_answer_decode(m, 12, &a, err), 0);
    refuse_answer(m, 11, "end answer of the wrong size", "end of 3");
    refuse_answer(m, 13, "end answer of the wrong size", "end of 5");
    refuse_answer(m, 8, "end answer of the wrong size", "end of 0");
    /* Export info: two figures (older nodes, or when not asked where a message starts) or
     * three. */
    char info[8 + 32] = {3, WT_EXPORT_INFO, 1, 0, 0, 0, 0, 0};
    for (size_t body = 0; body <= 32; body++) {
        if (body == 16 || body == 24)
            CHECK_EQ_INT(wire_answer_decode(info, 8 + body, &a, err), 0);
        else
            refuse_answer(info, 8 + body, "export info of the wrong size", "export info");
    }
}

/* Rows: what goes in comes out, in order, with its id. */
TEST(answer_rows)
{
    size_t n = 500;
    gen(n);
    struct buf out = {0};
    wire_answer_begin(&out, 1, 2, WT_ROWS, 0);
    for (size_t i = 0; i < n; i++) {
        ents[i].id = ids[i] = rnd64();
        CHECK_EQ_INT(wire_answer_row(&out, &ents[i]), 0);
        if (i == 4)
            seed(2, "answer_rows", buf_head(&out), buf_len(&out));
    }
    struct wire_answer a;
    char err[128];
    CHECK_EQ_INT(wire_answer_decode(buf_head(&out), buf_len(&out), &a, err), 0);
    const char *at = a.body, *end = a.body + a.body_len;
    size_t i = 0, bad = 0;
    size_t *ends = malloc(n * sizeof(*ends)); /* Offsets in the body where each row ends. */
    struct lc_entry g;
    int r;
    while ((r = wire_answer_next_row(&at, end, &g)) == 1) {
        if (i >= n || g.id != ids[i] || !same(&g, &ents[i]))
            bad++;
        if (i < n)
            ends[i] = (size_t)(at - a.body);
        i++;
    }
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(i, n);
    CHECK_EQ_INT(bad, 0);
    CHECK(at == end);
    CHECK_EQ_INT(wire_answer_next_row(&at, end, &g), 0);
    /* Every prefix of the body: the rows that fit, then 0 at a row's end, -1 inside one. */
    for (size_t len = 0; len < a.body_len; len += 1 + rnd(7)) {
        char *body = malloc(len ? len : 1);
        memcpy(body, a.body, len);
        const char *p = body;
        size_t k = 0;
        while ((r = wire_answer_next_row(&p, body + len, &g)) == 1)
            k++;
        bool at_end = len == 0 || (k > 0 && ends[k - 1] == len);
        CHECK(k <= n && (k == 0 || ends[k - 1] <= len) && (k == n || ends[k] > len));
        CHECK_EQ_INT(r, at_end ? 0 : -1);
        free(body);
    }
    /* A row whose message would run past the body. */
    char row[8 + REC_HDR_LEN + 2] = {0};
    uint32_t ml = 3;
    memcpy(row + 8 + 16, &ml, 4);
    at = row;
    CHECK_EQ_INT(wire_answer_next_row(&at, row + sizeof(row), &g), -1);
    CHECK(at == row);
    ml = 2;
    memcpy(row + 8 + 16, &ml, 4);
    CHECK_EQ_INT(wire_answer_next_row(&at, row + sizeof(row), &g), 1);
    CHECK(at == row + sizeof(row) && g.msg_len == 2);
    free(ends);
    buf_free(&out);
}

/* LZ4 batches: "LCZ4", the size, a block. */
static char *lz4_batch(const void *raw, size_t len, uint32_t claim, size_t *zl)
{
    char *z = malloc(8 + (size_t)LZ4_compressBound((int)len));
    memcpy(z, "LCZ4", 4);
    memcpy(z + 4, &claim, 4);
    int n = LZ4_compress_default(raw, z + 8, (int)len, LZ4_compressBound((int)len));
    *zl = 8 + (size_t)(n > 0 ? n : 0);
    return z;
}

TEST(batch_lz4_frames)
{
    struct buf r;
    raw_head(&r, "LCB1", 1, 1);
    raw_run(&r, 1, 1);
    raw_rec(&r, "s", "m");
    size_t zl, len = buf_len(&r);
    char *z = lz4_batch(buf_head(&r), len, (uint32_t)len, &zl);
    struct wire_batch_in b;
    char err[128];
    CHECK_EQ_INT(wire_batch_open(z, zl, &b, err), 0); /* The control. */
    wire_batch_close(&b);
    free(z);
    z = lz4_batch(buf_head(&r), len, (uint32_t)len + 1, &zl);
    refuse_as(z, zl, E_DECOMPR, "claims a byte more than it holds");
    free(z);
    z = lz4_batch(buf_head(&r), len, (uint32_t)len - 1, &zl);
    refuse_as(z, zl, E_DECOMPR, "claims a byte less than it holds");
    free(z);
    z = lz4_batch(buf_head(&r), len, 11, &zl);
    refuse_as(z, zl, E_SIZE, "claims 11 bytes");
    free(z);
    z = lz4_batch(buf_head(&r), len, WIRE_BATCH_MAX_RAW + 1, &zl);
    refuse_as(z, zl, E_SIZE, "claims past the cap");
    free(z);
    refuse_as("LCZ4\x20\0\0\0", 8, E_DECOMPR, "no block");
    refuse_as("LCZ4\x20\0\0", 7, E_NOSIZE, "no size");
    buf_free(&r);
}

/* The tests of batches as sealed and opened, for the current codec. */
static void sealed_batch_tests(void)
{
    RUN(batch_one);
    RUN(batch_runs);
    RUN(batch_full);
    RUN(batch_fields);
    RUN(batch_empty_and_reset);
    RUN(batch_too_big);
    RUN(batch_every_prefix);
    RUN(batch_byte_flips);
}

int main(void)
{
    sealed_batch_tests();
    codec = FRAME_LZ4;
    sealed_batch_tests();
    RUN(batch_lz4_frames);
    RUN(batch_frames);
    RUN(batch_payloads);
    RUN(request_roundtrip);
    RUN(request_bad);
    RUN(answer_types);
    RUN(answer_bad);
    RUN(answer_rows);
    CHECK(too_big_to_keep > 0); /* batch_full's largest batches took that path. */
    wire_scratch_free(&flat_scratch);
    wire_scratch_free(&raw_scratch);
    return check_summary("test_clwire");
}
