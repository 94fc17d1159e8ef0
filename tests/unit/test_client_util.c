/* test_client_util.c - the pure pieces of the logcaster client: option parsing, number and
 * reply parsing, framing, percentiles, the line reader and the benchmark line generator in
 * each of its formats (the binary frames are checked with the server's own parser).
 *
 * Unit tests link only the server library, so the client files under test are compiled into
 * this test directly. They need nothing but libc. */
#define _GNU_SOURCE /* memmem */
#include "client/gen.c"
#include "client/net.c"
#include "client/util.c"

#include <unistd.h>

#include "base/entry.h"
#include "check.h"
#include "proto/binary.h"
#include "proto/json_line.h"
#include "proto/syslog.h"

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

    CHECK_EQ_INT(lcc_gen_build(&g, 5000, 120, LCC_GEN_PLAIN, 1700000000, 7), 0);
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

    CHECK_EQ_INT(lcc_gen_build(&g, 1000, 200, LCC_GEN_FRAMED, 1700000000, 7), 0);
    CHECK_EQ_INT(lcc_gen_build(&h, 1000, 200, LCC_GEN_FRAMED, 1700000000, 7), 0);
    CHECK_EQ_INT(g.len, h.len); /* deterministic for a seed */
    CHECK(memcmp(g.data, h.data, g.len) == 0);
    for (size_t i = 0; i < g.lines; i++)
        CHECK(memcmp(g.data + g.off[i], "LOG|", 4) == 0);
    CHECK_EQ_INT(count_str(g.data, g.len, "|1699996400|"), 1); /* first ts: an hour back */
    CHECK(g.len / g.lines > 150);
    lcc_gen_free(&g);
    lcc_gen_free(&h);
    CHECK_EQ_INT(lcc_gen_build(&g, 0, 120, LCC_GEN_FRAMED, 0, 1), -EINVAL);
}

/* Levels as each format spells them, by gen.c's index: DEBUG, INFO, WARN, ERROR. */
static int level_index(const char *const spelled[4], const char *s, size_t n)
{
    for (int i = 0; i < 4; i++)
        if (strlen(spelled[i]) == n && memcmp(spelled[i], s, n) == 0)
            return i;
    return -1;
}

/* What every format shares: the offsets walk the buffer, the per-level counts add up, the rare
 * word is there once, the content is deterministic, and the message text is about the size
 * asked. */
static void check_gen_common(struct lcc_gen *g, enum lcc_gen_format fmt)
{
    struct lcc_gen h;

    CHECK_EQ_INT(g->fmt, fmt);
    CHECK_EQ_INT(g->off[0], 0);
    CHECK_EQ_INT(g->off[g->lines], g->len);
    for (size_t i = 0; i < g->lines; i++)
        CHECK(g->off[i + 1] > g->off[i]);
    CHECK_EQ_INT(g->levels[0] + g->levels[1] + g->levels[2] + g->levels[3], g->lines);
    CHECK(g->levels[1] > g->levels[3] && g->levels[3] > 0);
    CHECK_EQ_INT(count_str(g->data, g->len, LCC_RARE_WORD), 1);
    CHECK(count_str(g->data, g->len, "timeout after ") > 0);
    CHECK_EQ_INT(lcc_gen_build(&h, g->lines, 120, fmt, 1700000000, 7), 0);
    CHECK(h.len == g->len && memcmp(h.data, g->data, g->len) == 0);
    lcc_gen_free(&h);
}

TEST(generator_syslog)
{
    static const char *const sev[4] = {"<135>1 ", "<134>1 ", "<132>1 ", "<131>1 "};
    struct lcc_gen g;
    size_t levels[4] = {0}, text = 0;

    CHECK_EQ_INT(lcc_gen_build(&g, 3000, 120, LCC_GEN_SYSLOG, 1700000000, 7), 0);
    check_gen_common(&g, LCC_GEN_SYSLOG);
    CHECK(memchr(g.data, '\n', g.len) == NULL); /* octet counting: no separators */
    for (size_t i = 0; i < g.lines; i++) {
        const char *p = g.data + g.off[i], *end = g.data + g.off[i + 1];
        char *sp;
        unsigned long n = strtoul(p, &sp, 10);
        int lv = -1;

        /* "LEN " then exactly LEN bytes up to the next record. */
        CHECK(sp > p && *sp == ' ' && p[0] != '0');
        CHECK_EQ_INT(n, end - (sp + 1));
        p = sp + 1;
        for (int k = 0; k < 4; k++)
            if (memcmp(p, sev[k], 7) == 0)
                lv = k;
        CHECK(lv >= 0);
        if (lv >= 0)
            levels[lv]++;
        /* <PRI>1 TIME HOST APP PROCID - - TEXT */
        CHECK(memcmp(p + 7, "2023-11-14T", 11) == 0);
        CHECK(p[7 + 23] == 'Z' && p[7 + 24] == ' ');
        const char *q = p + 7 + 25;
        for (int f = 0; f < 3; f++) {
            const char *s = memchr(q, ' ', (size_t)(end - q));
            CHECK(s && s > q);
            if (!s)
                break;
            q = s + 1;
        }
        CHECK(end - q > 4 && memcmp(q, "- - ", 4) == 0);
        text += (size_t)(end - q - 4);
        /* And the server's own parsers agree: one frame, RFC 5424, the level, the time. */
        size_t msg_off = 0, body = 0;
        struct syslog_msg m;
        const char *rec = g.data + g.off[i];
        CHECK_EQ_INT(
            syslog_octet_frame(rec, (size_t)(end - rec), 1 << 20, true, true, &msg_off, &body),
            end - rec);
        CHECK_EQ_INT(body, (size_t)(end - rec) - msg_off);
        CHECK_EQ_INT(syslog_parse(rec + msg_off, (size_t)(end - rec) - msg_off, 0, &m), 0);
        CHECK_EQ_INT(m.format, SYSLOG_5424);
        CHECK_EQ_INT(m.facility, 16); /* local0 */
        CHECK_EQ_INT(m.level, LC_DEBUG + lv);
        CHECK(m.ts_ms >= 1699996400000LL && m.ts_ms < 1700000000000LL);
        CHECK(m.msg == q + 4 && m.msg_len == (size_t)(end - q - 4));
    }
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(levels[k], g.levels[k]);
    CHECK(text / g.lines > 90 && text / g.lines < 150); /* the message text is ~--line-size */
    /* The first record is an hour before now_s, in RFC 3339 with milliseconds. */
    CHECK(count_str(g.data, g.off[1], " 2023-11-14T21:13:20.") == 1);
    lcc_gen_free(&g);
}

TEST(generator_json)
{
    static const char *const lower[4] = {"debug", "info", "warn", "error"};
    static const char *const keys[] = {"\"ts\":\"",  "\"level\":\"", "\"host\":\"",
                                       "\"app\":\"", "\"pid\":",     "\"msg\":\""};
    struct lcc_gen g;
    size_t levels[4] = {0};

    CHECK_EQ_INT(lcc_gen_build(&g, 3000, 120, LCC_GEN_JSON, 1700000000, 7), 0);
    check_gen_common(&g, LCC_GEN_JSON);
    for (size_t i = 0; i < g.lines; i++) {
        const char *p = g.data + g.off[i], *end = g.data + g.off[i + 1];
        size_t n = (size_t)(end - p);
        const char *lv, *q;
        int quotes = 0;

        /* One object per line, the keys in order, no escapes needed, no stray quotes. */
        CHECK(n > 2 && p[0] == '{' && end[-2] == '}' && end[-1] == '\n');
        CHECK(memchr(p, '\n', n - 1) == NULL && memchr(p, '\\', n) == NULL);
        q = p + 1;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            size_t kl = strlen(keys[k]);
            CHECK(memcmp(q, keys[k], kl) == 0);
            q = memchr(q + kl, k == 4 ? ',' : '"', (size_t)(end - q - kl));
            if (!q)
                break;
            q += k == 4 ? 1 : 2; /* past the value and its comma (msg: its "}) */
        }
        CHECK(q == end - 1); /* only the newline left */
        for (const char *c = p; c < end; c++)
            quotes += *c == '"';
        CHECK_EQ_INT(quotes, 2 * (6 + 5)); /* 6 keys, 5 string values */
        lv = p + strlen("{\"ts\":\"2023-11-14T21:13:20.000Z\",\"level\":\"");
        int k = level_index(lower, lv, (size_t)((const char *)memchr(lv, '"', 8) - lv));
        CHECK(k >= 0);
        if (k >= 0)
            levels[k]++;
        /* The server's parser reads the same level and time, and the text as the message. */
        struct buf out = {0};
        struct json_line jl;
        char err[128];
        CHECK_EQ_INT(json_line_parse(p, n - 1, &out, &jl, err, sizeof(err)), 0);
        CHECK_EQ_INT(jl.level, LC_DEBUG + k);
        CHECK(jl.ts_ms >= 1699996400000LL && jl.ts_ms < 1700000000000LL);
        CHECK(jl.msg_len > 0 && memmem(p, n, out.data + jl.msg_off, 20) != NULL);
        buf_free(&out);
    }
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(levels[k], g.levels[k]);
    lcc_gen_free(&g);
}

TEST(generator_binary)
{
    struct lcc_gen g;
    size_t levels[4] = {0}, off = 0, text = 0;
    uint32_t seq = 0;

    CHECK_EQ_INT(lcc_gen_build(&g, 3000, 120, LCC_GEN_BINARY, 1700000000, 7), 0);
    check_gen_common(&g, LCC_GEN_BINARY);
    /* The frame lengths alone walk the buffer exactly, frame by frame. */
    while (off + BIN_HEADER <= g.len) {
        const unsigned char *p = (const unsigned char *)g.data + off;
        struct bin_header h = bin_header_read(p);
        struct bin_log lg;

        CHECK_EQ_INT(off, g.off[seq]);
        CHECK_EQ_INT(h.version, BIN_VERSION);
        CHECK_EQ_INT(h.command, BIN_LOG_MS);
        CHECK_EQ_INT(h.seq, seq + 1); /* increasing from 1 */
        CHECK(off + BIN_HEADER + h.length <= g.len);
        if (off + BIN_HEADER + h.length > g.len)
            break;
        /* The server's own parser takes it: level 1 DEBUG .. 4 ERROR, a time in ms. */
        CHECK(bin_log_parse(h.command, p + BIN_HEADER, h.length, &lg) == NULL);
        CHECK(lg.level >= 1 && lg.level <= 4);
        if (lg.level >= 1 && lg.level <= 4)
            levels[lg.level - 1]++;
        CHECK(lg.ts_ms >= 1699996400000LL && lg.ts_ms < 1700000000000LL);
        text += lg.msg_len;
        off += BIN_HEADER + h.length;
        seq++;
    }
    CHECK_EQ_INT(off, g.len);
    CHECK_EQ_INT(seq, g.lines);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(levels[k], g.levels[k]);
    CHECK(text / g.lines > 90 && text / g.lines < 150);
    lcc_gen_free(&g);
}

TEST(generator_formats)
{
    enum lcc_gen_format f;

    for (int i = LCC_GEN_PLAIN; i <= LCC_GEN_BINARY; i++) {
        CHECK_EQ_INT(lcc_gen_format_parse(lcc_gen_format_name((enum lcc_gen_format)i), &f), 0);
        CHECK_EQ_INT(f, i);
    }
    CHECK_EQ_STR(lcc_gen_format_name(LCC_GEN_SYSLOG), "syslog");
    CHECK_EQ_INT(lcc_gen_format_parse("xml", &f), -EINVAL);
    CHECK_EQ_INT(lcc_gen_format_parse("", &f), -EINVAL);
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
    RUN(generator_syslog);
    RUN(generator_json);
    RUN(generator_binary);
    RUN(generator_formats);
    return check_summary("client_util");
}
