/* test_detect.c - protocol sniffing fed every prefix of each sample, with and without EOF:
 * MORE until the rule can decide, then the final answer, and never MORE at EOF. Includes
 * log lines that look like protocols but are not.
 *
 * Every input is copied into a heap buffer of exactly its length, so ASan catches a read one
 * byte past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/detect.h"

static enum detect_result detect(const char *s, size_t n, bool eof)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    enum detect_result r = detect_protocol(b, n, eof);
    free(b);
    return r;
}

struct sample {
    const char *s; /* The connection's first bytes. */
    size_t len;    /* Its length (samples may hold NUL bytes). */
    size_t decide; /* The bytes it takes to decide. */
    enum detect_result want;
};

/* decided_at is the prefix of s after which the answer is known. */
#define S(s, decided_at, want)                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1, sizeof(decided_at) - 1, want                                             \
    }

static const struct sample samples[] = {
    /* HTTP requests: decided by the end of the request line. */
    S("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\n", DETECT_HTTP),
    S("GET /logs?q=a%20b HTTP/1.0\n\n", "GET /logs?q=a%20b HTTP/1.0\n", DETECT_HTTP),
    S("HEAD /x HTTP/1.1\r\n", "HEAD /x HTTP/1.1\r\n", DETECT_HTTP),
    S("POST /ingest HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "POST /ingest HTTP/1.1\r\n",
      DETECT_HTTP),
    S("PUT /a HTTP/1.1\r\n", "PUT /a HTTP/1.1\r\n", DETECT_HTTP),
    S("DELETE /a/b HTTP/1.1\r\n", "DELETE /a/b HTTP/1.1\r\n", DETECT_HTTP),
    S("OPTIONS * HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n", DETECT_HTTP),
    S("PATCH /p HTTP/1.1\n", "PATCH /p HTTP/1.1\n", DETECT_HTTP),
    S("GET /caf\xc3\xa9 HTTP/1.9\r\n", "GET /caf\xc3\xa9 HTTP/1.9\r\n", DETECT_HTTP),

    /* IRC registration. */
    S("CAP LS 302\r\nNICK a\r\n", "CAP LS 302\r\n", DETECT_IRC),
    S("CAP LS\r\n", "CAP LS\r\n", DETECT_IRC), S("CAP LS\n", "CAP LS\n", DETECT_IRC),
    S("CAP END\r\n", "CAP END\r\n", DETECT_IRC),
    S("NICK alice\r\nUSER alice 0 * :Alice\r\n", "NICK alice\r\n", DETECT_IRC),
    S("NICK :bob\n", "NICK :bob\n", DETECT_IRC),
    S("NICK [x]`_^{|}-9\r\n", "NICK [x]`_^{|}-9\r\n", DETECT_IRC),
    S("PASS s3cr3t!\r\n", "PASS s3cr3t!\r\n", DETECT_IRC),
    S("USER alice 0 * :Alice Liddell\r\n", "USER alice 0 * :Alice Liddell\r\n", DETECT_IRC),
    S("USER a a localhost :\r\n", "USER a a localhost :\r\n", DETECT_IRC),
    S("USER ~u 8 * :\x03"
      "4red\x0f :x\n",
      "USER ~u 8 * :\x03"
      "4red\x0f :x\n",
      DETECT_IRC),

    /* The binary protocol: version 1, command 1..4. */
    S("\x01\x01\x00\x00\x00\x05hello", "\x01\x01", DETECT_BINARY),
    S("\x01\x02", "\x01\x02", DETECT_BINARY), S("\x01\x03", "\x01\x03", DETECT_BINARY),
    S("\x01\x04\xff", "\x01\x04", DETECT_BINARY), S("\x01\x05", "\x01\x05", DETECT_BINARY),
    S("\x01\x06", "\x01\x06", DETECT_BINARY),

    /* Log lines, decided at the first byte that rules every form out. */
    S("GET /x 200 12ms\n", "GET /x 2", DETECT_DEFAULT),
    S("GET /index.html HTTP/1.1\" 200 512\n", "GET /index.html HTTP/1.1\"", DETECT_DEFAULT),
    S("GET / HTTP/1.1 extra\n", "GET / HTTP/1.1 ", DETECT_DEFAULT),
    S("GET / HTTP/2.0\r\n", "GET / HTTP/2", DETECT_DEFAULT),
    S("GET / HTTP/1.10\r\n", "GET / HTTP/1.10", DETECT_DEFAULT),
    S("GET / HTTP/1.x\r\n", "GET / HTTP/1.x", DETECT_DEFAULT),
    S("GET / HTTP/1.1\rX", "GET / HTTP/1.1\rX", DETECT_DEFAULT),
    S("GET http://example.org/ HTTP/1.1\r\n", "GET h", DETECT_DEFAULT),
    S("GET *x HTTP/1.1\r\n", "GET *x", DETECT_DEFAULT),
    S("GET  / HTTP/1.1\r\n", "GET  ", DETECT_DEFAULT),
    S("GET /a\tb HTTP/1.1\r\n", "GET /a\t", DETECT_DEFAULT), S("GET\n", "GET\n", DETECT_DEFAULT),
    S("GETTING started\n", "GETT", DETECT_DEFAULT), S("get / HTTP/1.1\r\n", "g", DETECT_DEFAULT),
    S("HTTP/1.1 200 OK\r\n", "HT", DETECT_DEFAULT), S("DEBUG cache warm\n", "DEB", DETECT_DEFAULT),
    S("OK\n", "OK", DETECT_DEFAULT), S("PUTS x\n", "PUTS", DETECT_DEFAULT),
    S("PASSWORD reset for bob\n", "PASSW", DETECT_DEFAULT), S("PASS\r\n", "PASS\r", DETECT_DEFAULT),
    S("PASS \r\n", "PASS \r", DETECT_DEFAULT),
    S("CONNECT example.org:443 HTTP/1.1\r\n", "CO", DETECT_DEFAULT),
    S("NICK changed by admin\n", "NICK changed ", DETECT_DEFAULT),
    S("NICK\n", "NICK\n", DETECT_DEFAULT), S("NICKNAME taken\n", "NICKN", DETECT_DEFAULT),
    S("USER alice logged in\n", "USER alice logged in\n", DETECT_DEFAULT),
    S("USER alice logged in from 10.0.0.1\n", "USER alice logged in f", DETECT_DEFAULT),
    S("USER alice 0 * Alice\r\n", "USER alice 0 * A", DETECT_DEFAULT),
    S("USER  alice 0 * :A\r\n", "USER  ", DETECT_DEFAULT),
    S("CAP REQ :sasl\r\n", "CAP R", DETECT_DEFAULT),
    S("CAP LS 301\r\n", "CAP LS 301", DETECT_DEFAULT),
    S("CAP LS 3020\r\n", "CAP LS 3020", DETECT_DEFAULT),
    S("CAP ENDED\r\n", "CAP ENDE", DETECT_DEFAULT), S("CAPTURE started\n", "CAPT", DETECT_DEFAULT),
    S("Cap LS\r\n", "Ca", DETECT_DEFAULT),
    S("2026-11-26T10:00:00Z host app[12]: started\n", "2", DETECT_DEFAULT),
    S("<34>1 2026-11-26T10:00:00Z host app - - - msg\n", "<", DETECT_DEFAULT),
    S("{\"level\":\"info\",\"msg\":\"x\"}\n", "{", DETECT_DEFAULT),
    S("LOG|INFO|1700000000|x\n", "L", DETECT_DEFAULT), S("\n", "\n", DETECT_DEFAULT),
    S("\r\nGET / HTTP/1.1\r\n", "\r", DETECT_DEFAULT),
    S(" GET / HTTP/1.1\r\n", " ", DETECT_DEFAULT), S("\x01\x09\x00", "\x01\x09", DETECT_DEFAULT),
    S("\x01\x00", "\x01\x00", DETECT_DEFAULT), S("\x01\x07", "\x01\x07", DETECT_DEFAULT),
    S("\x02\x01", "\x02", DETECT_DEFAULT), S("\x00\x01", "\x00", DETECT_DEFAULT),
    S("\x16\x03\x01\x02\x00\x01", "\x16", DETECT_DEFAULT), /* TLS */
};

#undef S

TEST(every_prefix_without_eof)
{
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const struct sample *t = &samples[i];
        CHECK(t->decide <= t->len);
        for (size_t k = 0; k <= t->len; k++) {
            enum detect_result want = k < t->decide ? DETECT_MORE : t->want;
            enum detect_result got = detect(t->s, k, false);
            if (got != want)
                fprintf(stderr, "  sample %zu \"%.20s\" prefix %zu: %s, expected %s\n", i, t->s, k,
                        detect_name(got), detect_name(want));
            CHECK_EQ_INT(got, want);
        }
    }
}

TEST(every_prefix_at_eof)
{
    /* At EOF an undecided prefix is a log line: every form needs its line end. */
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const struct sample *t = &samples[i];
        for (size_t k = 0; k <= t->len; k++) {
            enum detect_result want = k < t->decide ? DETECT_DEFAULT : t->want;
            enum detect_result got = detect(t->s, k, true);
            if (got != want)
                fprintf(stderr, "  sample %zu \"%.20s\" prefix %zu at eof: %s, expected %s\n", i,
                        t->s, k, detect_name(got), detect_name(want));
            CHECK_EQ_INT(got, want);
        }
    }
}

TEST(first_byte_decides_most_log_lines)
{
    /* Only G H P D O (HTTP), C N P U (IRC) and 0x01 (binary) can start a form. */
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool candidate = strchr("GHPDOCNU", c) != NULL && c != 0;
        enum detect_result want = candidate || c == 0x01 ? DETECT_MORE : DETECT_DEFAULT;
        CHECK_EQ_INT(detect(&b, 1, false), want);
        CHECK_EQ_INT(detect(&b, 1, true), DETECT_DEFAULT);
    }
    CHECK_EQ_INT(detect("", 0, false), DETECT_MORE);
    CHECK_EQ_INT(detect("", 0, true), DETECT_DEFAULT);
}

TEST(peek_limit)
{
    char *b = malloc(DETECT_PEEK_MAX + 64);
    /* A request line of exactly DETECT_PEEK_MAX bytes, LF included, is still HTTP. */
    size_t tail = strlen(" HTTP/1.1\r\n");
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', DETECT_PEEK_MAX - 5 - tail);
    memcpy(b + DETECT_PEEK_MAX - tail, " HTTP/1.1\r\n", tail);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX, false), DETECT_HTTP);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX - 1, false), DETECT_MORE);
    /* One byte longer: undecided at the limit, so the listener's own protocol. */
    memcpy(b, "GET /a", 6);
    memset(b + 6, 'a', DETECT_PEEK_MAX + 1 - 6 - tail);
    memcpy(b + DETECT_PEEK_MAX + 1 - tail, " HTTP/1.1\r\n", tail);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX - 1, false), DETECT_MORE);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX, false), DETECT_DEFAULT);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX + 1, false), DETECT_DEFAULT);
    /* The same for an IRC realname. */
    memcpy(b, "USER a 0 * :", 12);
    memset(b + 12, 'r', DETECT_PEEK_MAX + 20);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX - 1, false), DETECT_MORE);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX, false), DETECT_DEFAULT);
    CHECK_EQ_INT(detect(b, DETECT_PEEK_MAX + 20, false), DETECT_DEFAULT);
    free(b);
}

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

TEST(decisions_are_final)
{
    /* Mutated samples: once an answer is given, no longer prefix changes it, and EOF gives
     * the same answer or DEFAULT for MORE. */
    char buf[128];
    for (int iter = 0; iter < 20000; iter++) {
        const struct sample *t = &samples[next_rand() % (sizeof(samples) / sizeof(samples[0]))];
        size_t n = t->len < sizeof(buf) ? t->len : sizeof(buf);
        memcpy(buf, t->s, n);
        for (int m = (int)(next_rand() % 3); m > 0 && n; m--) {
            static const char alphabet[] = " \r\n:*/.0123GHTPSULNCKAE\x01\x02\x7f\x80";
            buf[next_rand() % n] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
        }
        enum detect_result first = DETECT_MORE;
        for (size_t k = 0; k <= n; k++) {
            enum detect_result r = detect(buf, k, false), e = detect(buf, k, true);
            CHECK(e != DETECT_MORE);
            CHECK(e == r || (r == DETECT_MORE && e == DETECT_DEFAULT));
            if (first != DETECT_MORE)
                CHECK_EQ_INT(r, first);
            else
                first = r;
        }
    }
}

TEST(names)
{
    CHECK_EQ_STR(detect_name(DETECT_MORE), "more");
    CHECK_EQ_STR(detect_name(DETECT_DEFAULT), "default");
    CHECK_EQ_STR(detect_name(DETECT_HTTP), "http");
    CHECK_EQ_STR(detect_name(DETECT_IRC), "irc");
    CHECK_EQ_STR(detect_name(DETECT_BINARY), "binary");
    CHECK_EQ_STR(detect_name((enum detect_result)42), "unknown");
}

int main(void)
{
    RUN(every_prefix_without_eof);
    RUN(every_prefix_at_eof);
    RUN(first_byte_decides_most_log_lines);
    RUN(peek_limit);
    RUN(decisions_are_final);
    RUN(names);
    return check_summary("test_detect");
}
