/* test_aggwire.c - a part's wire form (pipe.h qagg_encode, qagg_decode): for every pipe kind and
 * function, runs split into 1, 2 and 3 parts that each cross the wire must finish into exactly
 * the table the same parts give merged directly; empty parts, parts past the memory limit and
 * stopped parts keep their meaning; every prefix of an encoding, random byte flips and hand-made
 * bad inputs are refused with one sentence or decode into a part that merges and finishes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/buf.h"
#include "query/pipe.h"
#include "query/qry.h"

#define NOW  1700000000000LL
#define NENT 2000

static struct lc_entry ents[NENT];
static char msgs[NENT][160];
static char srcs[NENT][24];

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Entries whose fields cover what the functions read: numbers with and without units, negative
 * and zero ones, quoted values, fields that are missing or not numbers. */
static void gen(void)
{
    static const char *users[] = {"alice", "\"bob smith\"", "carol", "\"d\\\"q\""};
    static const char *lat[] = {"250ms", "1.5s", "90us", "1m30s", "7ns"};
    int64_t ts = NOW - 6 * 3600 * 1000LL;
    for (int i = 0; i < NENT; i++) {
        char *m = msgs[i];
        size_t n = (size_t)sprintf(m, "GET /api/%u took", rnd(50));
        if (rnd(10))
            n += (size_t)sprintf(m + n, " host=web%u", rnd(5));
        unsigned s = rnd(10);
        if (s == 0)
            n += (size_t)sprintf(m + n, " status=abc");
        else if (s > 1)
            n += (size_t)sprintf(m + n, " status=%u", s < 6 ? 200 : s < 8 ? 404 : 500 + s % 4);
        if (rnd(5))
            n += (size_t)sprintf(m + n, " latency_ms=%u", rnd(3000));
        if (rnd(3))
            n += (size_t)sprintf(m + n, " latency=%s", lat[rnd(5)]);
        switch (rnd(4)) {
        case 0:
            n += (size_t)sprintf(m + n, " delta=-%u.%u", rnd(1000), rnd(10));
            break;
        case 1:
            n += (size_t)sprintf(m + n, " delta=0");
            break;
        case 2:
            n += (size_t)sprintf(m + n, " delta=%u.25", rnd(100000));
            break;
        default:
            break;
        }
        if (rnd(3))
            n += (size_t)sprintf(m + n, " user=%s", users[rnd(4)]);
        ts += rnd(20000);
        sprintf(srcs[i], "10.0.0.%u:5000", rnd(3));
        ents[i] = (struct lc_entry){.id = (uint64_t)i + 1,
                                    .ts_ms = ts,
                                    .recv_ms = ts,
                                    .level = (uint8_t)rnd(6),
                                    .source = srcs[i],
                                    .source_len = strlen(srcs[i]),
                                    .msg = m,
                                    .msg_len = n};
    }
}

static struct qry *compile(const char *text)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX] = "";
    if (qry_compile(text, strlen(text), NOW, &q, err) != 0) {
        fprintf(stderr, "  '%s' failed: %s\n", text, err);
        check_cur_failed = 1;
    }
    return q;
}

/* Parts 0..parts-1 fed the first nent entries (interleaved by id; with `lone`, part 0 takes
 * them all and the others stay empty), in the order a scan would go. */
static void feed(const struct qry *q, struct qagg **a, int parts, int nent, bool lone, size_t mem)
{
    const struct qpipes *p = qry_pipes(q);
    bool all = qpipes_needs_all(p);
    for (int k = 0; k < parts; k++) {
        a[k] = qagg_new(p, mem);
        bool more = true;
        for (int j = 0; j < nent && more; j++) {
            int i = all ? j : nent - 1 - j;
            if ((lone ? k == 0 : i % parts == k) && qry_match(q, &ents[i]))
                more = qagg_add(a[k], &ents[i]);
        }
    }
}

/* One part across the wire: encoded after some other bytes (the encoding appends), freed,
 * decoded from a copy of exactly its bytes. Also checks that re-encoding gives as many bytes. */
static struct qagg *wire(const struct qpipes *p, struct qagg *a, size_t mem)
{
    struct buf b = {0};
    CHECK(buf_append(&b, "xyz", 3) == 0);
    CHECK(qagg_encode(a, &b) == 0);
    size_t n = buf_len(&b) - 3;
    char *copy = malloc(n);
    memcpy(copy, buf_head(&b) + 3, n);
    buf_free(&b);
    qagg_free(a);
    char err[QRY_ERR_MAX] = "";
    struct qagg *d = qagg_decode(p, copy, n, mem, err);
    free(copy);
    if (!d) {
        fprintf(stderr, "  decode: %s\n", err);
        check_cur_failed = 1;
        return qagg_new(p, mem);
    }
    struct buf again = {0};
    CHECK(qagg_encode(d, &again) == 0);
    if (!qagg_error(d))
        CHECK_EQ_INT(buf_len(&again), n);
    buf_free(&again);
    return d;
}

/* The table of text over nent entries in `parts` parts, each across the wire or not. */
static struct qtable *run(const char *text, int parts, int nent, bool lone, bool over_wire,
                          size_t mem, char *err)
{
    struct qry *q = compile(text);
    if (!q)
        return NULL;
    struct qagg *a[3];
    feed(q, a, parts, nent, lone, mem);
    for (int k = 0; over_wire && k < parts; k++)
        a[k] = wire(qry_pipes(q), a[k], mem);
    for (int k = 1; k < parts; k++)
        qagg_merge(a[0], a[k]);
    err[0] = '\0';
    struct qtable *t = qagg_finish(a[0], err);
    qry_free(q);
    return t;
}

static bool same(const struct qtable *a, const struct qtable *b)
{
    if (!a || !b || a->ncols != b->ncols || a->nrows != b->nrows)
        return false;
    for (size_t c = 0; c < a->ncols; c++)
        if (strcmp(a->cols[c], b->cols[c]) != 0)
            return false;
    for (size_t i = 0; i < a->nrows * a->ncols; i++)
        if (a->cells[i].len != b->cells[i].len ||
            memcmp(a->cells[i].s, b->cells[i].s, a->cells[i].len) != 0 ||
            a->cells[i].num != b->cells[i].num)
            return false;
    return true;
}

static const char *const queries[] = {
    "* | stats count()",
    "status:>=500 | stats by (host) count() as n, count(latency_ms), count_uniq(user), "
    "sum(latency_ms), min(delta), max(delta), avg(latency_ms), quantile(0.5, latency), "
    "quantile(0.9, delta)",
    "* | stats by (_time:1h, level) count() as n | sort by (n desc) | limit 5",
    "* | stats by (level) sum(delta) as s, avg(delta) | sort by (s) | fields level, s",
    "* | stats count_uniq(_msg), count_uniq(host) by (level, source)",
    "* | stats quantile(0, delta), quantile(1, delta), quantile(0.25, latency_ms), "
    "quantile(0.75, latency), min(latency), max(latency_ms)",
    "* | stats by (user) count(), sum(delta), avg(delta), quantile(0.5, delta)",
    "* | top 3 by (host)",
    "* | top by (level, user) | limit 4",
    "* | field_names",
    "* | field_names | sort by (hits desc) | limit 3",
    "* | limit 7",
    "host:web2 | sort by (latency_ms desc) | limit 5 | fields _time, latency_ms, x",
    "* | sort by (delta) | fields delta, user",
    "user:alice | fields user, level | sort by (level) | head 4",
    "* | fields _msg | limit 3 | fields _msg",
    "* | limit 0",
    "nosuchword | stats count(), sum(x), min(x), quantile(0.5, x), count_uniq(x)",
    "nosuchword | stats by (host) count()",
    "nosuchword | top by (host)",
    "nosuchword | limit 3",
    "nosuchword | field_names",
};
#define NQ (sizeof(queries) / sizeof(queries[0]))

/* ---- The property ---- */

TEST(same_table_over_the_wire)
{
    for (size_t i = 0; i < NQ; i++) {
        for (int parts = 1; parts <= 3; parts++) {
            for (int lone = 0; lone < 2; lone++) {
                char e1[QRY_ERR_MAX], e2[QRY_ERR_MAX];
                struct qtable *direct = run(queries[i], parts, NENT, lone, false, 0, e1);
                struct qtable *wired = run(queries[i], parts, NENT, lone, true, 0, e2);
                if (!direct || !same(direct, wired)) {
                    fprintf(stderr, "  '%s' in %d parts%s: the wire changed the table (%s)\n",
                            queries[i], parts, lone ? " (one fed)" : "", direct ? e2 : e1);
                    check_cur_failed = 1;
                }
                qtable_free(direct);
                qtable_free(wired);
            }
        }
    }
}

/* A part that took whole blocks by their summaries crosses the wire like any other. */
TEST(summary_parts)
{
    struct qry *q = compile("* | stats by (level) count() as n | sort by (n desc)");
    if (!q)
        return;
    const struct qpipes *p = qry_pipes(q);
    struct qagg *a = qagg_new(p, 0), *b = qagg_new(p, 0);
    struct qagg_block blk = {.min_ts = NOW, .max_ts = NOW + 10};
    for (int i = 0; i < NENT; i++)
        blk.counts[ents[i].level]++;
    CHECK(qagg_add_summary(a, &blk));
    CHECK(qagg_add_summary(b, &blk));
    b = wire(p, b, 0);
    qagg_merge(a, b);
    char err[QRY_ERR_MAX];
    struct qtable *t = qagg_finish(a, err);
    CHECK(t && t->nrows > 0);
    uint64_t total = 0;
    for (size_t r = 0; t && r < t->nrows; r++)
        total += strtoull(t->cells[r * t->ncols + 1].s, NULL, 10);
    CHECK_EQ_INT(total, 2 * NENT);
    qtable_free(t);
    qry_free(q);
}

/* ---- Memory and stopped parts ---- */

TEST(memory_limit)
{
    char err[QRY_ERR_MAX];
    const char *heavy = "* | stats by (_msg) count_uniq(_time), quantile(0.5, latency)";
    /* Parts stopped by the limit before they were sent: the merge reports the limit. */
    struct qtable *t = run(heavy, 2, NENT, false, true, 1 << 20, err);
    CHECK(t == NULL);
    CHECK_EQ_STR(err, "query needs more than 1 MiB (--query-memory)");
    /* A part within its sender's limit but past the receiver's: stopped on decoding. */
    struct qry *q = compile("* | stats by (_msg) count(), count_uniq(user)");
    if (!q)
        return;
    const struct qpipes *p = qry_pipes(q);
    struct qagg *a[1];
    feed(q, a, 1, NENT, false, 0);
    struct buf b = {0};
    CHECK(qagg_encode(a[0], &b) == 0);
    qagg_free(a[0]);
    struct qagg *d = qagg_decode(p, buf_head(&b), buf_len(&b), 65536, err);
    CHECK(d != NULL);
    CHECK_EQ_STR(qagg_error(d), "query needs more than 65536 bytes (--query-memory)");
    struct qagg *ok = qagg_decode(p, buf_head(&b), buf_len(&b), 64 << 20, err);
    CHECK(ok && !qagg_error(ok));
    CHECK(qagg_merge(ok, d) == -E2BIG);
    CHECK(qagg_finish(ok, err) == NULL);
    CHECK_EQ_STR(err, "query needs more than 65536 bytes (--query-memory)");
    /* The same bytes under no limit finish into a row per message. */
    d = qagg_decode(p, buf_head(&b), buf_len(&b), 0, err);
    t = d ? qagg_finish(d, err) : NULL;
    CHECK(t && t->nrows == NENT);
    qtable_free(t);
    buf_free(&b);
    qry_free(q);
}

TEST(error_parts)
{
    struct qry *q = compile("* | stats by (_msg) count_uniq(_time)");
    if (!q)
        return;
    const struct qpipes *p = qry_pipes(q);
    struct qagg *a[1];
    feed(q, a, 1, NENT, false, 50000);
    CHECK_EQ_STR(qagg_error(a[0]), "query needs more than 50000 bytes (--query-memory)");
    struct qagg *d = wire(p, a[0], 0);
    CHECK_EQ_STR(qagg_error(d), "query needs more than 50000 bytes (--query-memory)");
    CHECK(!qagg_add(d, &ents[0]));
    struct qagg *fine = qagg_new(p, 0);
    CHECK(qagg_add(fine, &ents[0]));
    CHECK(qagg_merge(fine, d) == -E2BIG);
    char err[QRY_ERR_MAX];
    CHECK(qagg_finish(fine, err) == NULL);
    CHECK_EQ_STR(err, "query needs more than 50000 bytes (--query-memory)");
    qry_free(q);
}

/* ---- Bad bytes ---- */

/* Decode must give a part or NULL with one line; a part must merge and finish. */
static void decode_any(const struct qpipes *p, const void *data, size_t len, const char *what)
{
    char err[QRY_ERR_MAX];
    memset(err, 0, sizeof(err));
    struct qagg *d = qagg_decode(p, data, len, 1 << 20, err);
    if (!d) {
        if (!err[0] || strchr(err, '\n') || strncmp(err, "query part", 10) != 0) {
            fprintf(stderr, "  %s: refused without a sentence: '%s'\n", what, err);
            check_cur_failed = 1;
        }
        return;
    }
    struct qagg *base = qagg_new(p, 1 << 20);
    qagg_add(base, &ents[0]);
    qagg_merge(base, d);
    qtable_free(qagg_finish(base, err));
}

/* Small encodings (40 entries in 2 parts) of every query. */
static size_t small_encodings(struct qry **qs, struct buf *enc)
{
    for (size_t i = 0; i < NQ; i++) {
        qs[i] = compile(queries[i]);
        enc[i] = (struct buf){0};
        if (!qs[i])
            continue;
        struct qagg *a[2];
        feed(qs[i], a, 2, 40, false, 0);
        qagg_merge(a[0], a[1]);
        CHECK(qagg_encode(a[0], &enc[i]) == 0);
        qagg_free(a[0]);
    }
    return NQ;
}

TEST(every_prefix)
{
    struct qry *qs[NQ];
    struct buf enc[NQ];
    small_encodings(qs, enc);
    for (size_t i = 0; i < NQ; i++) {
        if (!qs[i])
            continue;
        const struct qpipes *p = qry_pipes(qs[i]);
        for (size_t n = 0; n < buf_len(&enc[i]); n++) {
            char err[QRY_ERR_MAX] = "";
            char *copy = malloc(n ? n : 1); /* n bytes: ASan sees a read past them. */
            memcpy(copy, buf_head(&enc[i]), n);
            struct qagg *d = qagg_decode(p, copy, n, 0, err);
            if (d || !err[0]) {
                fprintf(stderr, "  '%s': prefix of %zu bytes accepted\n", queries[i], n);
                check_cur_failed = 1;
                qagg_free(d);
            }
            free(copy);
        }
        buf_free(&enc[i]);
        qry_free(qs[i]);
    }
}

TEST(byte_flips)
{
    struct qry *qs[NQ];
    struct buf enc[NQ];
    small_encodings(qs, enc);
    for (size_t i = 0; i < NQ; i++) {
        if (!qs[i])
            continue;
        size_t n = buf_len(&enc[i]);
        char *copy = malloc(n);
        for (int it = 0; it < 400; it++) {
            memcpy(copy, buf_head(&enc[i]), n);
            int flips = 1 + (int)rnd(3);
            for (int f = 0; f < flips; f++) {
                /* Mostly the body, where the parser's work is; sometimes the header. */
                size_t at = it % 8 == 0 || n <= 12 ? rnd((unsigned)n) : 12 + rnd((unsigned)n - 12);
                copy[at] = it % 2 ? (char)rnd(256) : (char)(copy[at] ^ (1 << rnd(8)));
            }
            decode_any(qry_pipes(qs[i]), copy, n, queries[i]);
            /* And as a different query's part: refused by the hash (or an error part). */
            decode_any(qry_pipes(qs[(i + 1) % NQ] ? qs[(i + 1) % NQ] : qs[i]), copy, n, "other");
        }
        free(copy);
    }
    for (size_t i = 0; i < NQ; i++) {
        buf_free(&enc[i]);
        qry_free(qs[i]);
    }
}

static void refused(const struct qpipes *p, const void *data, size_t len, const char *want)
{
    char err[QRY_ERR_MAX] = "";
    struct qagg *d = qagg_decode(p, data, len, 0, err);
    if (d || strcmp(err, want) != 0) {
        fprintf(stderr, "  got %s '%s', expected '%s'\n", d ? "a part" : "NULL", err, want);
        check_cur_failed = 1;
    }
    qagg_free(d);
}

TEST(bad_inputs)
{
    struct qry *stats = compile("* | stats by (host) count(), quantile(0.5, latency_ms)");
    struct qry *names = compile("* | field_names");
    struct qry *ents_q = compile("* | limit 3");
    struct qry *other = compile("* | stats by (host) count(), quantile(0.9, latency_ms)");
    if (!stats || !names || !ents_q || !other)
        return;
    const struct qpipes *p = qry_pipes(stats);
    struct qagg *a[1];
    feed(stats, a, 1, 50, false, 0);
    struct buf b = {0};
    CHECK(qagg_encode(a[0], &b) == 0);
    qagg_free(a[0]);
    size_t n = buf_len(&b);
    unsigned char *m = malloc(n + 32);
    memcpy(m, buf_head(&b), n);

    refused(p, "", 0, "query part: truncated at byte 0");
    refused(p, "QP\x01", 3, "query part: truncated at byte 3");
    refused(p, "GET / HTTP/1.1\r\n", 16, "query part: not a query part (bad magic)");
    m[2] = 2;
    refused(p, m, n, "query part: version 2, this node reads version 1");
    m[2] = 1, m[3] = 9;
    refused(p, m, n, "query part: unknown kind 9");
    m[3] = 2;
    refused(qry_pipes(names), m, n, "query part: holds groups, the pipes need field names");
    refused(qry_pipes(ents_q), m, n, "query part: holds groups, the pipes need entries");
    refused(qry_pipes(other), m, n,
            "query part: made for other pipes than this query's (a node of another version?)");
    memcpy(m + n, "\x00\x01", 2);
    char want[QRY_ERR_MAX];
    snprintf(want, sizeof(want), "query part: 2 bytes after the end at byte %zu", n);
    refused(p, m, n + 2, want);
    /* Hand-made bodies after a valid header. */
    static const struct {
        const char *body;
        size_t len;
        const char *err;
    } bodies[] = {
        {"\x01\x02\x02", 3, "query part: count 1 at byte 12 exceeds the 2 bytes left"},
        {"\x01\x02\x02\x00\x00\x00\x00", 7,
         "query part: groups of 2 values and 2 functions, the pipes have 1 and 2"},
        {"\x01\x01\x03\x00\x00\x00\x00", 7,
         "query part: groups of 1 values and 3 functions, the pipes have 1 and 2"},
        {"\x02\x01\x02\x01x\x05\x00\x01x\x05\x00", 11, "query part: a group twice at byte 19"},
        {"\x01\x01\x02\x01x\x05\x01", 7, "query part: truncated at byte 19"},
        {"\x01\x01\x02\x01x\x05\x01\x7f\xf0\x00\x00\x00\x00\x00\x00", 15,
         "query part: not a finite number at byte 19"},
        {"\x01\x01\x02\x01x\x05\x01\x00\x00\x00\x00\x00\x00\x00\x00"
         "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x80\xf1\x04\x01\x00",
         30, "query part: sketch buckets out of range at byte 36"},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11, "query part: bad number at byte 12"},
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10,
         "query part: count 18446744073709551615 at byte 12 exceeds the 0 bytes left"},
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        memcpy(m + 12, bodies[i].body, bodies[i].len);
        refused(p, m, 12 + bodies[i].len, bodies[i].err);
    }
    /* Error parts: the code and the sentence must be sane. */
    m[3] = 4;
    memcpy(m + 12, "\x07\x05hello", 7);
    char err[QRY_ERR_MAX];
    struct qagg *d = qagg_decode(p, m, 19, 0, err);
    CHECK(d && qagg_error(d) && strcmp(qagg_error(d), "hello") == 0);
    qagg_free(d);
    memcpy(m + 12, "\x00\x05hello", 7);
    refused(p, m, 19, "query part: bad error code 0 at byte 12");
    memcpy(m + 12, "\x07\x05hel\nx", 7);
    refused(p, m, 19, "query part: bad error sentence at byte 13");
    memcpy(m + 12, "\x07\x00", 2);
    refused(p, m, 14, "query part: bad error sentence at byte 13");
    free(m);
    buf_free(&b);
    qry_free(stats);
    qry_free(names);
    qry_free(ents_q);
    qry_free(other);
}

/* The same pipes written differently hash the same; an entry chain's rows keep their ids. */
TEST(pipes_identity)
{
    struct qry *a = compile("error | stats  by (host)  count() as n");
    struct qry *b = compile("warn | stats by ( host ) count()  n");
    if (!a || !b) {
        qry_free(a);
        qry_free(b);
        return;
    }
    struct qagg *pa = qagg_new(qry_pipes(a), 0);
    qagg_add(pa, &ents[0]);
    struct buf out = {0};
    CHECK(qagg_encode(pa, &out) == 0);
    char err[QRY_ERR_MAX] = "";
    struct qagg *d = qagg_decode(qry_pipes(b), buf_head(&out), buf_len(&out), 0, err);
    CHECK(d != NULL);
    qagg_free(d);
    qagg_free(pa);
    buf_free(&out);
    qry_free(a);
    qry_free(b);
}

int main(void)
{
    gen();
    RUN(same_table_over_the_wire);
    RUN(summary_parts);
    RUN(memory_limit);
    RUN(error_parts);
    RUN(every_prefix);
    RUN(byte_flips);
    RUN(bad_inputs);
    RUN(pipes_identity);
    return check_summary("test_aggwire");
}
