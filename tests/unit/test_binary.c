/* test_binary.c - the binary protocol's pure parts (binary.h): frame headers written and read
 * back, which headers can be trusted, LOG and LOG_MS payloads (good ones, every short length,
 * msg_length mismatches, bad levels, timestamps at their edges) and the big-endian helpers.
 *
 * Every payload is copied into a heap buffer of exactly its length, so ASan catches a read one
 * byte past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/binary.h"

/* A heap copy of p[0..n) with nothing after it (freed by the caller). */
static unsigned char *exact(const void *p, size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* bin_log_parse on an exact-length copy. On success *msg_off is where the message starts,
 * relative to the payload (the copy is freed before returning). */
static const char *parse(uint8_t cmd, const unsigned char *p, size_t n, struct bin_log *out,
                         ptrdiff_t *msg_off)
{
    unsigned char *b = exact(p, n);
    const char *why = bin_log_parse(cmd, b, n, out);
    if (!why && msg_off)
        *msg_off = (const unsigned char *)out->msg - b;
    free(b);
    return why;
}

/* A LOG payload: level | ts u32 | msg_length u16 | message. Returns its length. */
static size_t make_log(unsigned char *p, uint8_t level, uint32_t ts, uint16_t mlen, const char *msg,
                       size_t n)
{
    p[0] = level;
    bin_put32(p + 1, ts);
    p[5] = (unsigned char)(mlen >> 8);
    p[6] = (unsigned char)mlen;
    memcpy(p + 7, msg, n);
    return 7 + n;
}

/* A LOG_MS payload: level | ts u64 | message. Returns its length. */
static size_t make_log_ms(unsigned char *p, uint8_t level, uint64_t ts, const char *msg, size_t n)
{
    p[0] = level;
    bin_put64(p + 1, ts);
    memcpy(p + 9, msg, n);
    return 9 + n;
}

TEST(constants_match_the_spec)
{
    CHECK_EQ_INT(BIN_VERSION, 1);
    CHECK_EQ_INT(BIN_HEADER, 8);
    CHECK_EQ_INT(BIN_PAYLOAD_MAX, 65535);
    CHECK_EQ_INT(BIN_FRAME_MAX, 1048576);
    CHECK_EQ_INT(BIN_LOG, 0x01);
    CHECK_EQ_INT(BIN_QUERY, 0x02);
    CHECK_EQ_INT(BIN_PING, 0x03);
    CHECK_EQ_INT(BIN_STATS, 0x04);
    CHECK_EQ_INT(BIN_AUTH, 0x05);
    CHECK_EQ_INT(BIN_LOG_MS, 0x06);
    CHECK_EQ_INT(BIN_LOG | BIN_REPLY, 0x81);
    CHECK_EQ_INT(BIN_LOG_MS | BIN_REPLY, 0x86);
    CHECK_EQ_INT(BIN_ROW, 0x90);
    CHECK_EQ_INT(BIN_ERROR, 0xFF);
    CHECK_EQ_INT(BIN_E_VERSION, 1);
    CHECK_EQ_INT(BIN_E_COMMAND, 2);
    CHECK_EQ_INT(BIN_E_MALFORMED, 3);
    CHECK_EQ_INT(BIN_E_TOO_LONG, 4);
    CHECK_EQ_INT(BIN_E_AUTH, 5);
    CHECK_EQ_INT(BIN_E_WRONG_PORT, 6);
    CHECK_EQ_INT(BIN_E_STORE, 7);
    CHECK_EQ_INT(BIN_E_QUERY, 8);
    CHECK_EQ_INT(BIN_E_INTERNAL, 9);
}

TEST(header_write_is_big_endian)
{
    unsigned char h[BIN_HEADER + 1];
    h[BIN_HEADER] = 0xAA; /* Guard: the writer touches exactly 8 bytes. */
    bin_header_write(h, BIN_LOG_MS, 0x1234, 0xA1B2C3D4u);
    static const unsigned char want[BIN_HEADER] = {1, 6, 0x12, 0x34, 0xA1, 0xB2, 0xC3, 0xD4};
    CHECK(memcmp(h, want, BIN_HEADER) == 0);
    CHECK_EQ_INT(h[BIN_HEADER], 0xAA);
}

TEST(header_round_trips)
{
    static const uint8_t cmds[] = {BIN_LOG,    BIN_QUERY, BIN_PING, BIN_STATS, BIN_AUTH,
                                   BIN_LOG_MS, 0x81,      0x82,     0x83,      0x84,
                                   0x85,       0x86,      BIN_ROW,  BIN_ERROR, 0x00};
    static const uint16_t lens[] = {0, 1, 7, 9, 0xFF, 0x100, 0x7FFF, 0x8000, 0xABCD, 0xFFFF};
    static const uint32_t seqs[] = {0,           1,           0xFF,        0x100,
                                    0x01020304u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
    for (size_t a = 0; a < sizeof(cmds); a++)
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
            for (size_t s = 0; s < sizeof(seqs) / sizeof(seqs[0]); s++) {
                unsigned char *h = malloc(BIN_HEADER);
                bin_header_write(h, cmds[a], lens[l], seqs[s]);
                struct bin_header r = bin_header_read(h);
                CHECK_EQ_INT(r.version, BIN_VERSION);
                CHECK_EQ_INT(r.command, cmds[a]);
                CHECK_EQ_INT(r.length, lens[l]);
                CHECK_EQ_INT(r.seq, seqs[s]);
                CHECK_EQ_INT(h[2] << 8 | h[3], lens[l]);
                CHECK_EQ_INT(bin_get32(h + 4), seqs[s]);
                free(h);
            }
}

TEST(header_read_takes_any_bytes)
{
    /* Reading never judges: the version and command are reported as sent. */
    for (int v = 0; v < 256; v += 17) {
        unsigned char raw[BIN_HEADER] = {
            (unsigned char)v, (unsigned char)(255 - v), 0xFF, 0xFE, 0x00, 0x00, 0x00, 0x2A};
        unsigned char *h = exact(raw, sizeof(raw));
        struct bin_header r = bin_header_read(h);
        CHECK_EQ_INT(r.version, v);
        CHECK_EQ_INT(r.command, 255 - v);
        CHECK_EQ_INT(r.length, 0xFFFE);
        CHECK_EQ_INT(r.seq, 42);
        free(h);
    }
}

TEST(request_known_for_every_command_and_version)
{
    for (int v = 0; v < 256; v++)
        for (int c = 0; c < 256; c++) {
            struct bin_header h = {(uint8_t)v, (uint8_t)c, 0, 0};
            bool want = v == 1 && c >= 0x01 && c <= 0x06;
            if (bin_request_known(&h) != want)
                fprintf(stderr, "  version %d command 0x%02x: %d\n", v, c, !want);
            CHECK(bin_request_known(&h) == want);
        }
    /* Length and sequence do not matter. */
    struct bin_header h = {1, BIN_PING, 0xFFFF, 0xFFFFFFFFu};
    CHECK(bin_request_known(&h));
    /* Replies are never requests. */
    struct bin_header reply = {1, BIN_PING | BIN_REPLY, 0, 0};
    CHECK(!bin_request_known(&reply));
}

TEST(log_good_payloads)
{
    unsigned char p[64];
    struct bin_log bl;
    ptrdiff_t off = -1;
    for (int level = 0; level <= 5; level++) {
        size_t n = make_log(p, (uint8_t)level, 1640995200u, 5, "hello", 5);
        CHECK(parse(BIN_LOG, p, n, &bl, &off) == NULL);
        CHECK_EQ_INT(bl.level, level);
        CHECK_EQ_INT(bl.ts_ms, 1640995200000LL);
        CHECK_EQ_INT(bl.msg_len, 5);
        CHECK_EQ_INT(off, 7);
    }
    /* The message is borrowed from the payload, bytes as they are. */
    size_t n = make_log(p, 4, 1, 6, "a\0b\n\xff|", 6);
    unsigned char *b = exact(p, n);
    CHECK(bin_log_parse(BIN_LOG, b, n, &bl) == NULL);
    CHECK(bl.msg == (const char *)b + 7);
    CHECK(memcmp(bl.msg, "a\0b\n\xff|", 6) == 0);
    CHECK_EQ_INT(bl.ts_ms, 1000);
    free(b);
    /* An empty message is well formed here (msg_length 0, the payload is just the head). */
    n = make_log(p, 2, 7, 0, "", 0);
    CHECK(parse(BIN_LOG, p, n, &bl, &off) == NULL);
    CHECK_EQ_INT(bl.msg_len, 0);
    CHECK_EQ_INT(off, 7);
}

TEST(log_timestamps)
{
    unsigned char p[16];
    struct bin_log bl;
    size_t n = make_log(p, 2, 0, 1, "x", 1);
    CHECK(parse(BIN_LOG, p, n, &bl, NULL) == NULL);
    CHECK(bl.ts_ms == INT64_MIN); /* 0: the receive time. */
    n = make_log(p, 2, 1, 1, "x", 1);
    CHECK(parse(BIN_LOG, p, n, &bl, NULL) == NULL);
    CHECK_EQ_INT(bl.ts_ms, 1000);
    n = make_log(p, 2, 0x7FFFFFFFu, 1, "x", 1);
    CHECK(parse(BIN_LOG, p, n, &bl, NULL) == NULL);
    CHECK_EQ_INT(bl.ts_ms, 2147483647000LL);
    /* u32 is unsigned: past 2038 is still the future, not a negative time. */
    n = make_log(p, 2, 0xFFFFFFFFu, 1, "x", 1);
    CHECK(parse(BIN_LOG, p, n, &bl, NULL) == NULL);
    CHECK_EQ_INT(bl.ts_ms, 4294967295000LL);
}

TEST(log_every_short_length)
{
    unsigned char p[16];
    struct bin_log bl;
    make_log(p, 2, 1640995200u, 0, "", 0);
    for (size_t n = 0; n < 7; n++) {
        const char *why = parse(BIN_LOG, p, n, &bl, NULL);
        CHECK(why != NULL);
        if (why)
            CHECK(strlen(why) > 0);
    }
    CHECK(parse(BIN_LOG, p, 7, &bl, NULL) == NULL);
}

TEST(log_msg_length_mismatch)
{
    unsigned char p[300];
    char msg[256];
    memset(msg, 'm', sizeof(msg));
    struct bin_log bl;
    /* A payload of 7 + 10 bytes with every msg_length but 10. */
    static const uint16_t wrong[] = {0, 1, 9, 11, 17, 0x0100, 0x0A00, 0x8000, 0xFFFF};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        size_t n = make_log(p, 2, 5, wrong[i], msg, 10);
        const char *why = parse(BIN_LOG, p, n, &bl, NULL);
        CHECK(why != NULL);
    }
    /* Each payload length, with msg_length one short and one long. */
    for (size_t m = 0; m < 256; m++) {
        size_t n = make_log(p, 2, 5, (uint16_t)m, msg, m);
        CHECK(parse(BIN_LOG, p, n, &bl, NULL) == NULL);
        CHECK_EQ_INT(bl.msg_len, m);
        make_log(p, 2, 5, (uint16_t)(m + 1), msg, m);
        CHECK(parse(BIN_LOG, p, n, &bl, NULL) != NULL);
        if (m > 0) {
            make_log(p, 2, 5, (uint16_t)(m - 1), msg, m);
            CHECK(parse(BIN_LOG, p, n, &bl, NULL) != NULL);
        }
    }
}

TEST(log_largest_payload)
{
    size_t m = BIN_PAYLOAD_MAX - 7;
    unsigned char *p = malloc(BIN_PAYLOAD_MAX);
    char *msg = malloc(m);
    memset(msg, 'z', m);
    size_t n = make_log(p, 5, 9, (uint16_t)m, msg, m);
    CHECK_EQ_INT(n, BIN_PAYLOAD_MAX);
    struct bin_log bl;
    ptrdiff_t off = -1;
    CHECK(parse(BIN_LOG, p, n, &bl, &off) == NULL);
    CHECK_EQ_INT(bl.msg_len, m);
    CHECK_EQ_INT(off, 7);
    CHECK_EQ_INT(bl.level, 5);
    free(p);
    free(msg);
}

TEST(log_bad_levels)
{
    unsigned char p[16];
    struct bin_log bl;
    for (int level = 6; level < 256; level++) {
        size_t n = make_log(p, (uint8_t)level, 1640995200u, 2, "hi", 2);
        CHECK(parse(BIN_LOG, p, n, &bl, NULL) != NULL);
        n = make_log_ms(p, (uint8_t)level, 1640995200123u, "hi", 2);
        CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) != NULL);
    }
}

TEST(log_ms_good_payloads)
{
    unsigned char p[64];
    struct bin_log bl;
    ptrdiff_t off = -1;
    for (int level = 0; level <= 5; level++) {
        size_t n = make_log_ms(p, (uint8_t)level, 1640995200123ull, "hello ms", 8);
        CHECK(parse(BIN_LOG_MS, p, n, &bl, &off) == NULL);
        CHECK_EQ_INT(bl.level, level);
        CHECK_EQ_INT(bl.ts_ms, 1640995200123LL);
        CHECK_EQ_INT(bl.msg_len, 8);
        CHECK_EQ_INT(off, 9);
    }
    /* The message is the rest of the payload, possibly empty. */
    size_t n = make_log_ms(p, 1, 1, "", 0);
    CHECK(parse(BIN_LOG_MS, p, n, &bl, &off) == NULL);
    CHECK_EQ_INT(bl.msg_len, 0);
    CHECK_EQ_INT(off, 9);
    CHECK_EQ_INT(bl.ts_ms, 1);
    /* No msg_length field: bytes that would be one in LOG are message bytes. */
    static const char body[] = {0x00, 0x05, 'a', 'b', 'c'};
    n = make_log_ms(p, 3, 2, body, sizeof(body));
    unsigned char *b = exact(p, n);
    CHECK(bin_log_parse(BIN_LOG_MS, b, n, &bl) == NULL);
    CHECK(bl.msg == (const char *)b + 9 && bl.msg_len == 5);
    free(b);
}

TEST(log_ms_timestamps)
{
    unsigned char p[16];
    struct bin_log bl;
    size_t n = make_log_ms(p, 2, 0, "x", 1);
    CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) == NULL);
    CHECK(bl.ts_ms == INT64_MIN);
    n = make_log_ms(p, 2, BIN_TS_MS_MAX, "x", 1);
    CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) == NULL);
    CHECK(bl.ts_ms == BIN_TS_MS_MAX);
    n = make_log_ms(p, 2, BIN_TS_MS_MAX - 1, "x", 1);
    CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) == NULL);
    CHECK(bl.ts_ms == BIN_TS_MS_MAX - 1);
    /* Past the text forms' last second (year 2286), and past INT64_MAX (a negative time):
     * refused, so one entry cannot pin age retention for ever. */
    static const uint64_t bad[] = {BIN_TS_MS_MAX + 1,       (uint64_t)INT64_MAX,
                                   (uint64_t)INT64_MAX + 1, 0x8000000000000001ull,
                                   0xFFFFFFFF00000000ull,   UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = make_log_ms(p, 2, bad[i], "x", 1);
        CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) != NULL);
    }
}

TEST(log_ms_every_short_length)
{
    unsigned char p[16];
    struct bin_log bl;
    make_log_ms(p, 2, 1640995200123ull, "", 0);
    for (size_t n = 0; n < 9; n++)
        CHECK(parse(BIN_LOG_MS, p, n, &bl, NULL) != NULL);
    CHECK(parse(BIN_LOG_MS, p, 9, &bl, NULL) == NULL);
}

TEST(log_parse_refuses_other_commands)
{
    unsigned char p[32];
    struct bin_log bl;
    size_t n = make_log(p, 2, 1, 3, "abc", 3);
    for (int c = 0; c < 256; c++) {
        if (c == BIN_LOG || c == BIN_LOG_MS)
            continue;
        CHECK(parse((uint8_t)c, p, n, &bl, NULL) != NULL);
        CHECK(parse((uint8_t)c, p, 0, &bl, NULL) != NULL);
    }
}

TEST(get_and_put_helpers)
{
    unsigned char b[9];
    b[8] = 0x5A;
    bin_put32(b, 0x01020304u);
    CHECK(b[0] == 1 && b[1] == 2 && b[2] == 3 && b[3] == 4);
    CHECK_EQ_INT(bin_get32(b), 0x01020304u);
    bin_put64(b, 0x0102030405060708ull);
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(b[i], i + 1);
    CHECK_EQ_INT(b[8], 0x5A); /* Exactly 8 bytes written. */
    CHECK(bin_get64(b) == 0x0102030405060708ull);
    static const uint64_t v64[] = {0,
                                   1,
                                   0xFF,
                                   0x80,
                                   0x8000000000000000ull,
                                   UINT64_MAX,
                                   0x00000000FFFFFFFFull,
                                   0xFFFFFFFF00000000ull,
                                   0xDEADBEEFCAFEF00Dull};
    for (size_t i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
        unsigned char *p = malloc(8);
        bin_put64(p, v64[i]);
        CHECK(bin_get64(p) == v64[i]);
        CHECK_EQ_INT(bin_get32(p), (uint32_t)(v64[i] >> 32));
        CHECK_EQ_INT(bin_get32(p + 4), (uint32_t)v64[i]);
        bin_put32(p, (uint32_t)v64[i]);
        CHECK_EQ_INT(bin_get32(p), (uint32_t)v64[i]);
        free(p);
    }
    /* High bytes do not sign-extend. */
    unsigned char hi[8] = {0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0xFA, 0xF9, 0xF8};
    CHECK_EQ_INT(bin_get32(hi), 0xFFFEFDFCu);
    CHECK(bin_get64(hi) == 0xFFFEFDFCFBFAF9F8ull);
}

int main(void)
{
    RUN(constants_match_the_spec);
    RUN(header_write_is_big_endian);
    RUN(header_round_trips);
    RUN(header_read_takes_any_bytes);
    RUN(request_known_for_every_command_and_version);
    RUN(log_good_payloads);
    RUN(log_timestamps);
    RUN(log_every_short_length);
    RUN(log_msg_length_mismatch);
    RUN(log_largest_payload);
    RUN(log_bad_levels);
    RUN(log_ms_good_payloads);
    RUN(log_ms_timestamps);
    RUN(log_ms_every_short_length);
    RUN(log_parse_refuses_other_commands);
    RUN(get_and_put_helpers);
    return check_summary("test_binary");
}
