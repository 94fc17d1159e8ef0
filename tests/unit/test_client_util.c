/* test_client_util.c - the pure pieces of the logcaster client: option parsing, number and
 * reply parsing, framing, percentiles, the line reader and the benchmark line generator.
 *
 * Unit tests link only the server library, so the client files under test are compiled into
 * this test directly. They need nothing but libc. */
#define _GNU_SOURCE /* memmem */
#include "client/gen.c"
#include "client/net.c"
#include "client/util.c"

#include <unistd.h>

#include "check.h"

TEST(parse_numbers)
{
    uint64_t v = 0;
    double d = 0;
    int port = 0;

    CHECK_EQ_INT(lcc_parse_u64("42", 0, 100, &v), 0);
    CHECK_EQ_INT(v, 42);
    CHECK_EQ_INT(lcc_parse_u64("2_000_000", 0, UINT64_MAX, &v), 0);
    CHECK_EQ_INT(v, 2000000);
    CHECK_EQ_INT(lcc_parse_u64("", 0, 100, &v), -EINVAL);
    CHECK_EQ_INT(lcc_parse_u64("_1", 0, 100, &v), -EINVAL);
    CHECK_EQ_INT(lcc_parse_u64("12x", 0, 100, &v), -EINVAL);
    CHECK_EQ_INT(lcc_parse_u64("-1", 0, 100, &v), -EINVAL);
    CHECK_EQ_INT(lcc_parse_u64("101", 0, 100, &v), -ERANGE);
    CHECK_EQ_INT(lcc_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
    CHECK_EQ_INT(lcc_parse_seconds("0.5", 10, &d), 0);
    CHECK(d == 0.5);
    CHECK_EQ_INT(lcc_parse_seconds("11", 10, &d), -EINVAL);
    CHECK_EQ_INT(lcc_parse_seconds("-1", 10, &d), -EINVAL);
    CHECK_EQ_INT(lcc_parse_seconds("nan", 10, &d), -EINVAL);
    CHECK_EQ_INT(lcc_parse_seconds(" 1", 10, &d), -EINVAL);
    CHECK_EQ_INT(lcc_parse_port("9999", &port), 0);
    CHECK_EQ_INT(port, 9999);
    CHECK(lcc_parse_port("0", &port) < 0);
    CHECK(lcc_parse_port("65536", &port) < 0);
}

TEST(argp_options)
{
    char *argv[] = {"query", "--host=example",  "--query-port", "7000", "--raw", "-",
                    "--",    "--not-an-option", "--timeout"};
    struct lcc_opts o = {.host = "127.0.0.1", .log_port = 1, .query_port = 2, .timeout_ms = 3};
    struct lcc_argp p;
    const char *v;

    lcc_argp_init(&p, 9, argv, 1);
    CHECK(lcc_argp_next(&p));
    CHECK(lcc_argp_global(&p, &o));
    CHECK_EQ_STR(o.host, "example");
    CHECK(lcc_argp_next(&p));
    CHECK(lcc_argp_global(&p, &o));
    CHECK_EQ_INT(o.query_port, 7000);
    CHECK(lcc_argp_next(&p));
    CHECK(!lcc_argp_global(&p, &o));
    CHECK(!lcc_argp_flag(&p, "--ra"));
    CHECK(!lcc_argp_value(&p, "--ra", &v)); /* a prefix is not a match */
    CHECK(lcc_argp_flag(&p, "--raw"));
    CHECK(lcc_argp_next(&p));
    CHECK_EQ_STR(p.arg, "-");
    CHECK(!lcc_argp_is_opt(&p)); /* "-" is stdin, a positional argument */
    CHECK(lcc_argp_next(&p));    /* skips "--" */
    CHECK_EQ_STR(p.arg, "--not-an-option");
    CHECK(!lcc_argp_is_opt(&p));
    CHECK(lcc_argp_next(&p));
    CHECK(!lcc_argp_is_opt(&p)); /* still after "--" */
    CHECK(!lcc_argp_next(&p));
    CHECK(p.error == NULL);
}

TEST(argp_errors)
{
    char *argv[] = {"x", "--log-port", "0", "--timeout"};
    struct lcc_opts o = {0};
    struct lcc_argp p;

    lcc_argp_init(&p, 4, argv, 1);
    CHECK(lcc_argp_next(&p));
    CHECK(lcc_argp_global(&p, &o));
    CHECK(p.error != NULL);
    CHECK_EQ_STR(p.bad, "0");
    p.error = NULL;
    CHECK(lcc_argp_next(&p));
    CHECK(lcc_argp_global(&p, &o)); /* --timeout without a value */
    CHECK(p.error != NULL);
}

TEST(replies)
{
    uint64_t id = 0, n = 0;

    CHECK_EQ_INT(lcc_reply_kind("OK|17", 5, &id), 1);
    CHECK_EQ_INT(id, 17);
    CHECK_EQ_INT(lcc_reply_kind("OK|", 3, &id), -1);
    CHECK_EQ_INT(lcc_reply_kind("OK|1x", 5, &id), -1);
    CHECK_EQ_INT(lcc_reply_kind("ERROR|too long", 14, &id), 0);
    CHECK_EQ_INT(lcc_reply_kind("ACK", 3, &id), -1);
    CHECK_EQ_INT(lcc_parse_tagged_count("RESULT|3", 8, "RESULT|", &n), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(lcc_parse_tagged_count("COUNT|0", 7, "COUNT|", &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(lcc_parse_tagged_count("COUNT|", 6, "COUNT|", &n), -EPROTO);
    CHECK_EQ_INT(lcc_parse_tagged_count("COUNT|1 ", 8, "COUNT|", &n), -EPROTO);
    CHECK_EQ_INT(lcc_parse_tagged_count("ERROR|x", 7, "COUNT|", &n), -EPROTO);
}

TEST(framing)
{
    char buf[64];
    size_t n = lcc_frame_line(buf, "-", "hello | world", 13);

    CHECK_EQ_INT(n, lcc_frame_size("-", 13));
    buf[n] = '\0';
    CHECK_EQ_STR(buf, "LOG|-|-|hello | world\n");
    n = lcc_frame_line(buf, "WARN", "x", 1);
    buf[n] = '\0';
    CHECK_EQ_STR(buf, "LOG|WARN|-|x\n");
    CHECK(lcc_level_ok("-"));
    CHECK(lcc_level_ok("error"));
    CHECK(!lcc_level_ok(""));
    CHECK(!lcc_level_ok("WA|RN"));
    CHECK(!lcc_level_ok("WARN "));
}

TEST(percentiles)
{
    double v[100];

    for (int i = 0; i < 100; i++)
        v[i] = i + 1;
    CHECK(lcc_percentile(v, 100, 50) == 50);
    CHECK(lcc_percentile(v, 100, 99) == 99);
    CHECK(lcc_percentile(v, 100, 100) == 100);
    CHECK(lcc_percentile(v, 1, 99) == 1);
    CHECK(lcc_percentile(v, 3, 50) == 2);
    CHECK(lcc_percentile(v, 0, 50) == 0);
}

TEST(join)
{
    char *args[] = {"level:ERROR", "timeout", "\"a b\""};
    char *s = lcc_join_args(3, args);

    CHECK_EQ_STR(s, "level:ERROR timeout \"a b\"");
    free(s);
    s = lcc_join_args(0, args);
    CHECK_EQ_STR(s, "");
    free(s);
}

TEST(reader_lines)
{
    int fds[2];
    struct lcc_reader r;
    char *line;
    size_t len;

    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "one\r\ntwo\n\nthr", 13) == 13);
    lcc_reader_init(&r);
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 0);
    CHECK_EQ_INT(lcc_reader_fill(&r, fds[0]), 13);
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 1);
    CHECK_EQ_STR(line, "one");
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 1);
    CHECK_EQ_STR(line, "two");
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 1);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 0);
    CHECK(write(fds[1], "ee\nfour", 7) == 7);
    close(fds[1]);
    CHECK(lcc_reader_fill(&r, fds[0]) > 0);
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 1);
    CHECK_EQ_STR(line, "three");
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 0);
    CHECK_EQ_INT(lcc_reader_fill(&r, fds[0]), 0);
    CHECK_EQ_INT(lcc_reader_rest(&r, &line, &len), 1);
    CHECK_EQ_STR(line, "four");
    CHECK_EQ_INT(lcc_reader_rest(&r, &line, &len), 0);
    close(fds[0]);
    lcc_reader_free(&r);
    lcc_reader_free(&r);
}

TEST(reader_long_line)
{
    int fds[2];
    struct lcc_reader r;
    char *line, chunk[1000];
    size_t len;
    ssize_t n;

    /* A line larger than the first buffer makes the reader grow, not split the line. */
    memset(chunk, 'x', sizeof(chunk));
    CHECK(pipe(fds) == 0);
    lcc_reader_init(&r);
    for (int i = 0; i < 200; i++) {
        CHECK(write(fds[1], chunk, sizeof(chunk)) == sizeof(chunk));
        while ((n = lcc_reader_fill(&r, fds[0])) > 0 && r.end - r.start < (size_t)(i + 1) * 1000)
            ;
        CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 0);
    }
    CHECK(write(fds[1], "\n", 1) == 1);
    CHECK(lcc_reader_fill(&r, fds[0]) == 1);
    CHECK_EQ_INT(lcc_reader_next(&r, &line, &len), 1);
    CHECK_EQ_INT(len, 200000);
    close(fds[0]);
    close(fds[1]);
    lcc_reader_free(&r);
}

static size_t count_str(const char *data, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = data; (p = memmem(p, (size_t)(data + len - p), needle, nl)); p += nl)
        n++;
    return n;
}

TEST(generator_plain)
{
    struct lcc_gen g;

    CHECK_EQ_INT(lcc_gen_build(&g, 5000, 120, false, 1700000000, 7), 0);
    CHECK_EQ_INT(g.lines, 5000);
    CHECK_EQ_INT(g.off[0], 0);
    CHECK_EQ_INT(g.off[g.lines], g.len);
    for (size_t i = 0; i < g.lines; i++) {
        size_t l = g.off[i + 1] - g.off[i];
        CHECK(l > 40);
        CHECK(g.data[g.off[i + 1] - 1] == '\n');
        CHECK(memchr(g.data + g.off[i], '\n', l - 1) == NULL);
    }
    CHECK_EQ_INT(g.levels[0] + g.levels[1] + g.levels[2] + g.levels[3], 5000);
    CHECK(g.levels[1] > g.levels[3]); /* INFO dominates, ERROR is rare */
    CHECK(g.levels[3] > 0);
    CHECK_EQ_INT(count_str(g.data, g.len, LCC_RARE_WORD), 1);
    CHECK(count_str(g.data, g.len, "timeout after ") > 0);
    CHECK(g.len / g.lines > 90 && g.len / g.lines < 150); /* about --line-size */
    CHECK_EQ_INT(lcc_gen_line_at(&g, 0), 0);
    CHECK_EQ_INT(lcc_gen_line_at(&g, 1), 1);
    CHECK_EQ_INT(lcc_gen_line_at(&g, g.off[10]), 10);
    CHECK_EQ_INT(lcc_gen_line_at(&g, g.off[10] + 1), 11);
    CHECK_EQ_INT(lcc_gen_line_at(&g, g.len), g.lines);
    lcc_gen_free(&g);
    lcc_gen_free(&g);
}

TEST(generator_framed)
{
    struct lcc_gen g, h;

    CHECK_EQ_INT(lcc_gen_build(&g, 1000, 200, true, 1700000000, 7), 0);
    CHECK_EQ_INT(lcc_gen_build(&h, 1000, 200, true, 1700000000, 7), 0);
    CHECK_EQ_INT(g.len, h.len); /* deterministic for a seed */
    CHECK(memcmp(g.data, h.data, g.len) == 0);
    for (size_t i = 0; i < g.lines; i++)
        CHECK(memcmp(g.data + g.off[i], "LOG|", 4) == 0);
    CHECK_EQ_INT(count_str(g.data, g.len, "|1699996400|"), 1); /* first ts: an hour back */
    CHECK(g.len / g.lines > 150);
    lcc_gen_free(&g);
    lcc_gen_free(&h);
    CHECK_EQ_INT(lcc_gen_build(&g, 0, 120, true, 0, 1), -EINVAL);
}

int main(void)
{
    RUN(parse_numbers);
    RUN(argp_options);
    RUN(argp_errors);
    RUN(replies);
    RUN(framing);
    RUN(percentiles);
    RUN(join);
    RUN(reader_lines);
    RUN(reader_long_line);
    RUN(generator_plain);
    RUN(generator_framed);
    return check_summary("client_util");
}
