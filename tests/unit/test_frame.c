/* test_frame.c - records, columns and frames: round trips and damage detection. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/filter.h"
#include "store/frame.h"

static char *make_rows(uint32_t n, size_t *len)
{
    char *rows = malloc(n * 300 + 1), *p = rows;
    for (uint32_t i = 0; i < n; i++) {
        char msg[200], src[32];
        int ml = snprintf(msg, sizeof(msg), "line %u level=%s value=%u", i,
                          i % 3 ? "info" : "ERROR", i * 7919u);
        int sl = snprintf(src, sizeof(src), "10.0.0.%u:%u", i % 4, 40000 + i % 2);
        struct lc_entry e = {.ts_ms = 1700000000000LL + (int64_t)i * 13 - (i % 5 == 0 ? 4000 : 0),
                             .recv_ms = 1700000000500LL + i,
                             .level = (uint8_t)(i % LC_LEVEL_COUNT),
                             .flags = (uint8_t)(i % 7 == 0),
                             .source = src,
                             .source_len = (size_t)sl,
                             .msg = msg,
                             .msg_len = (size_t)ml};
        p = rec_put(p, &e);
    }
    *len = (size_t)(p - rows);
    return rows;
}

/* Both layouts: newline-terminated messages, and lengths once a message holds a newline. */
static void columns_round_trip_as(int want_layout)
{
    size_t len;
    char *rows = make_rows(1000, &len);
    if (want_layout == COL_LENGTHS) {
        char *m = memmem(rows, len, "line 500 ", 9);
        CHECK(m != NULL);
        m[4] = '\n'; /* "line\n500 ..." */
    }
    char *cols = malloc(len), *back = malloc(len);
    uint32_t *offs = malloc(1001 * sizeof(uint32_t)), *want = malloc(1001 * sizeof(uint32_t));
    CHECK_EQ_INT(rows_to_columns(rows, len, 1000, cols, offs), want_layout);
    CHECK_EQ_INT(payload_index(rows, len, 1000, want), 0);
    CHECK(memcmp(offs, want, 1001 * sizeof(uint32_t)) == 0);
    free(offs);
    free(want);
    CHECK_EQ_INT(columns_to_rows(cols, len, 1000, want_layout, back), 0);
    CHECK(memcmp(rows, back, len) == 0);
    struct col_summary cs;
    CHECK_EQ_INT(columns_summary(cols, len, 1000, want_layout, &cs), 0);
    CHECK_EQ_INT(cs.min_ts, 1700000000000LL - 4000);
    CHECK_EQ_INT(cs.max_ts, 1700000000000LL + 999 * 13);
    CHECK_EQ_INT(cs.level_counts[LC_ERROR],
                 1000 / LC_LEVEL_COUNT + (1000 % LC_LEVEL_COUNT > LC_ERROR));
    CHECK(cs.msgs_len > 0 && memcmp(cs.msgs, "line 0 level=ERROR", 18) == 0);
    CHECK(cs.msgs + cs.msgs_len == cols + len);
    /* A wrong count, length or layout is caught, never misread. */
    CHECK_EQ_INT(rows_to_columns(rows, len, 999, cols, NULL), -1);
    CHECK_EQ_INT(columns_to_rows(cols, len - 1, 1000, want_layout, back), -1);
    CHECK_EQ_INT(columns_summary(cols, len, 1001, want_layout, &cs), -1);
    CHECK_EQ_INT(columns_to_rows(cols, len, 1000, 2, back), -1);
    CHECK_EQ_INT(columns_to_rows(cols, len, 1000, !want_layout, back), -1);
    free(rows);
    free(cols);
    free(back);
}

TEST(columns_round_trip)
{
    columns_round_trip_as(COL_LINES);
    columns_round_trip_as(COL_LENGTHS);
}

TEST(lines_layout_rejects_a_missing_newline_or_padding)
{
    size_t len;
    char *rows = make_rows(50, &len);
    char *cols = malloc(len), *back = malloc(len);
    CHECK_EQ_INT(rows_to_columns(rows, len, 50, cols, NULL), COL_LINES);
    CHECK_EQ_INT(cols[len - 1], '\n');
    cols[len - 1] = 'x'; /* The last message loses its terminator. */
    CHECK_EQ_INT(columns_to_rows(cols, len, 50, COL_LINES, back), -1);
    cols[len - 1] = '\n';
    size_t pad = (8 + 8 + 3) * 50; /* The first byte of the zero padding. */
    cols[pad] = 1;
    CHECK_EQ_INT(columns_to_rows(cols, len, 50, COL_LINES, back), -1);
    cols[pad] = 0;
    CHECK_EQ_INT(columns_to_rows(cols, len, 50, COL_LINES, back), 0);
    CHECK(memcmp(rows, back, len) == 0);
    free(rows);
    free(cols);
    free(back);
}

TEST(frame_round_trip_and_damage)
{
    size_t len;
    char *rows = make_rows(500, &len);
    char *cols = malloc(len);
    int layout = rows_to_columns(rows, len, 500, cols, NULL);
    CHECK_EQ_INT(layout, COL_LINES);
    /* Each codec at no compression, its fast level and a slow one (LZ4HC for lz4). */
    static const struct {
        int codec, level, want;
    } cases[] = {{FRAME_ZSTD, 0, FRAME_RAW},  {FRAME_ZSTD, 1, FRAME_ZSTD},
                 {FRAME_ZSTD, 9, FRAME_ZSTD}, {FRAME_LZ4, 0, FRAME_RAW},
                 {FRAME_LZ4, 1, FRAME_LZ4},   {FRAME_LZ4, 9, FRAME_LZ4},
                 {FRAME_LZ4, 16, FRAME_LZ4}};
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        int codec = cases[ci].codec, level = cases[ci].level;
        size_t flen, fcap = frame_bound(len);
        char *f = malloc(fcap);
        CHECK_EQ_INT(frame_encode(cols, len, 77, 500, codec, level, layout, f, fcap - 1, &flen),
                     -ENOBUFS);
        CHECK_EQ_INT(frame_encode(cols, len, 77, 500, 7, level, layout, f, fcap, &flen), -EINVAL);
        CHECK_EQ_INT(frame_encode(cols, len, 77, 500, codec, level, layout, f, fcap, &flen), 0);
        if (level)
            CHECK(flen < len / 2); /* repetitive text compresses */
        struct frame_hdr h;
        CHECK_EQ_INT(frame_parse_header(f, &h), 0);
        CHECK_EQ_INT(h.codec, cases[ci].want);
        CHECK_EQ_INT(h.first_id, 77);
        CHECK_EQ_INT(h.count, 500);
        CHECK_EQ_INT(h.raw_len, len);
        CHECK_EQ_INT(h.layout, COL_LINES);
        CHECK_EQ_INT(FRAME_HDR_LEN + h.payload_len, flen);
        CHECK(frame_verify(&h, f));
        char *out = malloc(len);
        CHECK_EQ_INT(frame_decode(&h, f, out), 0);
        CHECK(memcmp(out, cols, len) == 0);
        /* Any flipped byte after the checksum field is detected. */
        for (size_t i = 16; i < flen; i += 97) {
            f[i] ^= 0x40;
            struct frame_hdr h2;
            CHECK(frame_parse_header(f, &h2) != 0 || !frame_verify(&h2, f));
            f[i] ^= 0x40;
        }
        /* A compressed payload damaged under a valid checksum (a bug, not the disk) is refused
         * by the decoder itself, never decoded short or past its buffer. */
        if (h.codec != FRAME_RAW) {
            for (size_t i = FRAME_HDR_LEN; i < flen; i += 13) {
                char saved = f[i];
                f[i] ^= 0x5a;
                memset(out, 0, len);
                int r = frame_decode(&h, f, out);
                CHECK(r == -1 || r == 0); /* Either refused, or some other bytes: no crash. */
                f[i] = saved;
            }
            struct frame_hdr cut = h;
            cut.payload_len -= 1; /* A payload one byte short cannot decode to raw_len. */
            CHECK_EQ_INT(frame_decode(&cut, f, out), -1);
        }
        f[0] ^= 1; /* magic */
        CHECK(frame_parse_header(f, &h) != 0);
        free(out);
        free(f);
    }
    free(rows);
    free(cols);
}

TEST(trigram_filter)
{
    const char *text = "connection refused by upstream 10.1.2.3 after TIMEOUT";
    unsigned lg = filter_log2_for(strlen(text));
    uint8_t *bits = calloc(1, ((size_t)1 << lg) / 8);
    filter_add(bits, lg, text, strlen(text));
    CHECK(filter_may_contain(bits, lg, "refused", 7));
    CHECK(filter_may_contain(bits, lg, "REFUSED", 7)); /* case-insensitive */
    CHECK(filter_may_contain(bits, lg, "timeout", 7));
    CHECK(filter_may_contain(bits, lg, "10.1.2", 6));
    CHECK(filter_may_contain(bits, lg, "ab", 2)); /* too short to tell */
    CHECK(!filter_may_contain(bits, lg, "xyzzy", 5));
    CHECK(!filter_may_contain(bits, lg, "segfault", 8));
    free(bits);
}

int main(void)
{
    RUN(columns_round_trip);
    RUN(lines_layout_rejects_a_missing_newline_or_padding);
    RUN(frame_round_trip_and_damage);
    RUN(trigram_filter);
    return check_summary("test_frame");
}
