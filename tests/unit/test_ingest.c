/* test_ingest.c - line framing, escaping, level detection and the ingest line forms. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/entry.h"
#include "check.h"
#include "proto/ingest_parse.h"
#include "proto/line.h"

TEST(framing_lf_and_crlf)
{
    size_t len = 99;
    CHECK_EQ_INT(line_next("abc\ndef", 7, &len), 4);
    CHECK_EQ_INT(len, 3);
    CHECK_EQ_INT(line_next("abc\r\n", 5, &len), 5);
    CHECK_EQ_INT(len, 3);
    CHECK_EQ_INT(line_next("\n", 1, &len), 1);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(line_next("\r\n", 2, &len), 2);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(line_next("abc", 3, &len), 0);
    CHECK_EQ_INT(line_next("abc\r", 4, &len), 0);
}

/* Feed a stream split at every byte position; the lines found must not depend on where the
 * split falls (TCP may deliver any prefix). */
TEST(framing_every_split)
{
    const char stream[] = "LOG|ERROR|1640995200|Database connection failed\r\nplain one\n\nx\n";
    size_t total = sizeof(stream) - 1;
    for (size_t cut = 0; cut <= total; cut++) {
        char buf[256];
        size_t have = 0, fed = 0;
        char lines[8][128];
        int nlines = 0;
        for (int round = 0; round < 2; round++) {
            size_t upto = round == 0 ? cut : total;
            memcpy(buf + have, stream + fed, upto - fed);
            have += upto - fed;
            fed = upto;
            size_t off = 0, len;
            size_t take;
            while ((take = line_next(buf + off, have - off, &len)) > 0) {
                memcpy(lines[nlines], buf + off, len);
                lines[nlines][len] = 0;
                nlines++;
                off += take;
            }
            memmove(buf, buf + off, have - off);
            have -= off;
        }
        CHECK_EQ_INT(nlines, 4);
        CHECK_EQ_STR(lines[0], "LOG|ERROR|1640995200|Database connection failed");
        CHECK_EQ_STR(lines[1], "plain one");
        CHECK_EQ_STR(lines[2], "");
        CHECK_EQ_STR(lines[3], "x");
        CHECK_EQ_INT(have, 0);
    }
}

static const char *esc(const char *in, size_t n)
{
    static char out[1024];
    out[line_escape(in, n, out)] = 0;
    return out;
}

TEST(escaping)
{
    CHECK_EQ_STR(esc("plain", 5), "plain");
    CHECK_EQ_STR(esc("a\x01"
                     "b",
                     3),
                 "a\\x01b");
    CHECK_EQ_STR(esc("tab\there", 8), "tab\\x09here");
    CHECK_EQ_STR(esc("nul\0x", 5), "nul\\x00x");
    CHECK_EQ_STR(esc("del\x7f", 4), "del\\x7f");
    CHECK_EQ_STR(esc("caf\xc3\xa9", 5), "caf\xc3\xa9");           /* valid UTF-8 kept */
    CHECK_EQ_STR(esc("\xe2\x82\xac!", 4), "\xe2\x82\xac!");       /* euro sign */
    CHECK_EQ_STR(esc("\xf0\x9f\x98\x80", 4), "\xf0\x9f\x98\x80"); /* emoji */
    CHECK_EQ_STR(esc("bad\xff", 4), "bad\\xff");
    CHECK_EQ_STR(esc("\xc3", 1), "\\xc3");                            /* truncated sequence */
    CHECK_EQ_STR(esc("\xc0\xaf", 2), "\\xc0\\xaf");                   /* overlong */
    CHECK_EQ_STR(esc("\xed\xa0\x80", 3), "\\xed\\xa0\\x80");          /* surrogate */
    CHECK_EQ_STR(esc("\xf4\x90\x80\x80", 4), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
    CHECK(line_is_clean("hello world, a long clean ascii line", 36));
    CHECK(line_is_clean("caf\xc3\xa9 ok", 8));
    CHECK(!line_is_clean("0123456789abcdef\x1b[31m", 21));
    CHECK(!line_is_clean("0123456789abcde\x7f", 16));
    CHECK(!line_is_clean("01234567\xff", 9));
    CHECK(!line_is_clean("\r", 1));
}

/* Escaped output must itself be clean, whatever the input. */
TEST(escape_output_is_clean)
{
    srand(7);
    char in[300], out[1200];
    for (int round = 0; round < 5000; round++) {
        size_t n = (size_t)(rand() % 300);
        for (size_t i = 0; i < n; i++)
            in[i] = (char)(rand() & 0xff);
        size_t m = line_escape(in, n, out);
        CHECK(line_is_clean(out, m));
        CHECK(m <= 4 * n);
        CHECK(memchr(out, '\n', m) == NULL);
        if (line_is_clean(in, n))
            CHECK(m == n && memcmp(in, out, n) == 0);
    }
}

TEST(level_detection)
{
#define LVL(s) line_detect_level(s, strlen(s))
    CHECK_EQ_INT(LVL("2024-01-01 12:00:00 ERROR disk full"), LC_ERROR);
    CHECK_EQ_INT(LVL("host app[12]: WARNING low memory"), LC_WARN);
    CHECK_EQ_INT(LVL("[warn] something"), LC_WARN);
    CHECK_EQ_INT(LVL("level=debug msg=x"), LC_DEBUG);
    CHECK_EQ_INT(LVL("error: cannot open"), LC_ERROR);
    CHECK_EQ_INT(LVL("Error connecting to db"), LC_ERROR);
    CHECK_EQ_INT(LVL("CRITICAL reactor"), LC_FATAL);
    CHECK_EQ_INT(LVL("FATAL boom"), LC_FATAL);
    CHECK_EQ_INT(LVL("TRACE enter f()"), LC_TRACE);
    CHECK_EQ_INT(LVL("INFO started"), LC_INFO);
    CHECK_EQ_INT(LVL("dumping stack trace now"), -1); /* prose, not a field */
    CHECK_EQ_INT(LVL("no errors found"), -1);
    CHECK_EQ_INT(LVL("error_count=3"), -1);
    CHECK_EQ_INT(LVL("ERROR2 is not a level"), -1);
    CHECK_EQ_INT(LVL("Server started"), -1);
    CHECK_EQ_INT(LVL(""), -1);
    /* Only the first 128 bytes are looked at. */
    char longl[300];
    memset(longl, 'x', sizeof(longl));
    memcpy(longl + 200, " ERROR ", 7);
    CHECK_EQ_INT(line_detect_level(longl, sizeof(longl)), -1);
    memcpy(longl + 100, " ERROR ", 7);
    CHECK_EQ_INT(line_detect_level(longl, sizeof(longl)), LC_ERROR);
#undef LVL
}

static void parse(const char *s, struct ingest_line *l)
{
    ingest_parse(s, strlen(s), l);
}

TEST(form_colon)
{
    struct ingest_line l;
    parse("LOG:1640995200:INFO:Server started", &l);
    CHECK_EQ_INT(l.form, INGEST_COLON);
    CHECK(l.error == NULL);
    CHECK_EQ_INT(l.level, LC_INFO);
    CHECK_EQ_INT(l.ts_ms, 1640995200000LL);
    CHECK_EQ_INT(l.msg_len, 14);
    CHECK(memcmp(l.msg, "Server started", 14) == 0);
    parse("LOG:1640995200:ERROR:a:b:c", &l);
    CHECK(l.error == NULL && l.msg_len == 5);
    parse("LOG:1640995200.25:warning:x", &l);
    CHECK(l.error == NULL && l.ts_ms == 1640995200250LL && l.level == LC_WARN);
    parse("LOG:abc:INFO:x", &l);
    CHECK_EQ_STR(l.error, "invalid timestamp");
    parse("LOG:-5:INFO:x", &l);
    CHECK_EQ_STR(l.error, "invalid timestamp");
    parse("LOG:12345678901:INFO:x", &l);
    CHECK_EQ_STR(l.error, "invalid timestamp");
    parse("LOG:1640995200:LOUD:x", &l);
    CHECK_EQ_STR(l.error, "unknown level");
    parse("LOG:1640995200:INFO:", &l);
    CHECK_EQ_STR(l.error, "empty message");
    parse("LOG:1640995200", &l);
    CHECK(l.error && strstr(l.error, "expected LOG:"));
    parse("LOG:-:INFO:x", &l); /* '-' is only for the pipe form */
    CHECK_EQ_STR(l.error, "invalid timestamp");
}

TEST(form_pipe)
{
    struct ingest_line l;
    parse("LOG|ERROR|1640995200|Database connection failed", &l);
    CHECK_EQ_INT(l.form, INGEST_PIPE);
    CHECK(l.error == NULL);
    CHECK_EQ_INT(l.level, LC_ERROR);
    CHECK_EQ_INT(l.ts_ms, 1640995200000LL);
    CHECK_EQ_INT(l.msg_len, 26);
    parse("LOG|-|-|a|b", &l);
    CHECK(l.error == NULL && l.level == -1 && l.ts_ms == INT64_MIN && l.msg_len == 3);
    parse("LOG|||x", &l);
    CHECK(l.error == NULL && l.level == -1 && l.ts_ms == INT64_MIN);
    parse("LOG|NOPE|1|x", &l);
    CHECK_EQ_STR(l.error, "unknown level");
    parse("LOG|INFO|1x|x", &l);
    CHECK_EQ_STR(l.error, "invalid timestamp");
    parse("LOG|INFO|1", &l);
    CHECK(l.error && strstr(l.error, "expected LOG|"));
    parse("LOG|INFO|1|", &l);
    CHECK_EQ_STR(l.error, "empty message");
}

TEST(form_plain)
{
    struct ingest_line l;
    parse("just a line", &l);
    CHECK_EQ_INT(l.form, INGEST_PLAIN);
    CHECK(l.error == NULL && l.level == -1 && l.ts_ms == INT64_MIN && l.msg_len == 11);
    parse("LOG", &l);
    CHECK_EQ_INT(l.form, INGEST_PLAIN);
    parse("LOGGING stuff", &l);
    CHECK_EQ_INT(l.form, INGEST_PLAIN);
    parse("log|INFO|1|x", &l); /* the prefix is case-sensitive */
    CHECK_EQ_INT(l.form, INGEST_PLAIN);
}

TEST(level_names)
{
    CHECK_EQ_INT(lc_level_parse("warning", 7), LC_WARN);
    CHECK_EQ_INT(lc_level_parse("Crit", 4), LC_FATAL);
    CHECK_EQ_INT(lc_level_parse("ERRORS", 6), -1);
    CHECK_EQ_INT(lc_level_parse("", 0), -1);
    CHECK_EQ_STR(lc_level_name(LC_WARN), "WARN");
    CHECK_EQ_STR(lc_level_name(99), "INFO");
}

int main(void)
{
    RUN(framing_lf_and_crlf);
    RUN(framing_every_split);
    RUN(escaping);
    RUN(escape_output_is_clean);
    RUN(level_detection);
    RUN(form_colon);
    RUN(form_pipe);
    RUN(form_plain);
    RUN(level_names);
    return check_summary("test_ingest");
}
