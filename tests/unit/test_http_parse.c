/* test_http_parse.c - the HTTP request-head parser at every prefix, each error status, the
 * chunked decoder at every split, and the query and URL decoders.
 *
 * Every input is copied into a heap buffer of exactly its length, so ASan catches a read one
 * byte past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/http_parse.h"

#define MAX_HEAD   8192
#define MAX_TARGET 2048

static struct http_request req;
static const char *err;

/* Parse the first n bytes of s from an exact-size copy, with the given limits. */
static long parse_lim(const char *s, size_t n, size_t max_head, size_t max_target)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    long r = http_parse_head(b, n, max_head, max_target, &req, &err);
    /* Pointers into b are stale from here; tests compare with offsets into s instead. */
    if (r > 0) {
        req.method_str = s + (req.method_str - b);
        req.target = s + (req.target - b);
        req.path = s + (req.path - b);
        if (req.query)
            req.query = s + (req.query - b);
        for (size_t i = 0; i < req.nheaders; i++) {
            req.headers[i].name = s + (req.headers[i].name - b);
            req.headers[i].value = s + (req.headers[i].value - b);
        }
    }
    free(b);
    return r;
}

static long parse(const char *s)
{
    return parse_lim(s, strlen(s), MAX_HEAD, MAX_TARGET);
}

static bool slice_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* Every proper prefix of s needs more; all of s is a head of its full length. */
static void check_prefixes(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        long r = parse_lim(s, k, MAX_HEAD, MAX_TARGET);
        if (r != 0)
            fprintf(stderr, "  prefix %zu of %.40s...: %ld (%s)\n", k, s, r, err ? err : "");
        CHECK_EQ_INT(r, 0);
        CHECK(err == NULL);
    }
    CHECK_EQ_INT(parse_lim(s, n, MAX_HEAD, MAX_TARGET), n);
    CHECK(err == NULL);
}

/* s is invalid with status want; and so is every longer input with s as its prefix. */
static void check_status(const char *s, long want)
{
    long r = parse(s);
    if (r != want)
        fprintf(stderr, "  \"%s\": %ld (%s), expected %ld\n", s, r, err ? err : "", want);
    CHECK_EQ_INT(r, want);
    if (want < 0)
        CHECK(err != NULL && err[0] != '\0');
}

TEST(head_get_fields)
{
    const char *s = "GET /logs/tail?level=error&n=10 HTTP/1.1\r\n"
                    "Host: example.org:8080\r\n"
                    "User-Agent:curl/8.5.0\r\n"
                    "Accept: \t */* \t\r\n"
                    "X-Empty:\r\n"
                    "\r\n";
    CHECK_EQ_INT(parse(s), strlen(s));
    CHECK(err == NULL);
    CHECK_EQ_INT(req.method, HTTP_GET);
    CHECK(slice_is(req.method_str, req.method_len, "GET"));
    CHECK(slice_is(req.target, req.target_len, "/logs/tail?level=error&n=10"));
    CHECK(slice_is(req.path, req.path_len, "/logs/tail"));
    CHECK(slice_is(req.query, req.query_len, "level=error&n=10"));
    CHECK_EQ_INT(req.version_minor, 1);
    CHECK_EQ_INT(req.nheaders, 4);
    CHECK(slice_is(req.headers[0].name, req.headers[0].name_len, "Host"));
    CHECK(slice_is(req.headers[0].value, req.headers[0].value_len, "example.org:8080"));
    CHECK(slice_is(req.headers[1].value, req.headers[1].value_len, "curl/8.5.0"));
    CHECK(slice_is(req.headers[2].value, req.headers[2].value_len, "*/*"));
    CHECK_EQ_INT(req.headers[3].value_len, 0);
    CHECK(req.has_host);
    CHECK(req.keep_alive);
    CHECK(!req.chunked && !req.has_length && !req.expect_continue);

    size_t len;
    const char *v = http_header(&req, "user-agent", &len);
    CHECK(slice_is(v, len, "curl/8.5.0"));
    v = http_header(&req, "ACCEPT", &len);
    CHECK(slice_is(v, len, "*/*"));
    v = http_header(&req, "x-empty", &len);
    CHECK(v != NULL && len == 0);
    CHECK(http_header(&req, "Missing", &len) == NULL && len == 0);
    CHECK(http_header(&req, "Hos", &len) == NULL);
    CHECK(http_header(&req, "Hostt", &len) == NULL);
}

TEST(head_every_prefix)
{
    static const char *const reqs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n", /* bare LF line ends */
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\nGET / HTTP/1.0\n\n",
        "GET /x?y=z HTTP/1.0\r\n\r\n",
        "POST /ingest HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nContent-Type: "
        "text/plain\r\n\r\n",
        "PUT /a%20b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        "DELETE /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "BREW /pot HTTP/1.1\r\nHost: h\r\nX: \xc3\xa9t\xc3\xa9\r\n\r\n",
        "PATCH /x HTTP/1.1\r\nHost:h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "HEAD /q?a=%7B%22x%22%7D HTTP/1.1\r\nhost: h\r\nA:\tb\tc\t\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        check_prefixes(reqs[i]);
}

TEST(head_excludes_body_and_pipelined)
{
    const char *a = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    const char *b = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    char buf[512];
    snprintf(buf, sizeof(buf), "%shello%s", a, b);
    long r = parse(buf);
    CHECK_EQ_INT(r, strlen(a));
    CHECK(req.has_length && req.content_length == 5);
    CHECK(slice_is(req.path, req.path_len, "/a"));
    CHECK_EQ_INT(parse(buf + r + 5), strlen(b));
    CHECK(slice_is(req.path, req.path_len, "/b"));

    /* Two heads back to back: the first length excludes the second, whatever its state. */
    snprintf(buf, sizeof(buf), "%s%s", b, b);
    CHECK_EQ_INT(parse(buf), strlen(b));
    snprintf(buf, sizeof(buf), "%sGARBAGE\x01", b);
    CHECK_EQ_INT(parse(buf), strlen(b));
    snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n", b);
    CHECK_EQ_INT(parse(buf), strlen(b));
}

TEST(methods)
{
    static const struct {
        const char *m;
        enum http_method e;
    } cases[] = {
        {"GET", HTTP_GET},
        {"HEAD", HTTP_HEAD},
        {"POST", HTTP_POST},
        {"PUT", HTTP_PUT},
        {"DELETE", HTTP_DELETE},
        {"OPTIONS", HTTP_OPTIONS},
        {"PATCH", HTTP_PATCH},
        {"get", HTTP_OTHER},
        {"M-SEARCH", HTTP_OTHER},
        {"GETS", HTTP_OTHER},
        {"GE", HTTP_OTHER},
        {"PROPFIND", HTTP_OTHER},
        {"!#$%&'*+-.^_`|~09az", HTTP_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].m);
        CHECK_EQ_INT(parse(buf), strlen(buf));
        CHECK_EQ_INT(req.method, cases[i].e);
        CHECK(slice_is(req.method_str, req.method_len, cases[i].m));
    }
    check_status(" / HTTP/1.1\r\n", -400);
    check_status("GE(T / HTTP/1.1\r\n", -400);
    check_status("GET\t/ HTTP/1.1\r\n", -400);
    check_status("GET", 0);
    check_status("G\xc3\xa9T / HTTP/1.1\r\n", -400);
    check_status("GET\r\n", -400);
    check_status("\x16\x03\x01\x02\x00", -400); /* A TLS ClientHello is refused at once. */
}

TEST(targets)
{
    CHECK_EQ_INT(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 31);
    CHECK(slice_is(req.target, req.target_len, "*"));
    CHECK(slice_is(req.path, req.path_len, "*"));
    CHECK(req.query == NULL && req.query_len == 0);

    CHECK(parse("GET /a HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    CHECK(req.query == NULL && req.query_len == 0);
    CHECK(parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    CHECK(slice_is(req.path, req.path_len, "/a"));
    CHECK(req.query != NULL && req.query_len == 0);
    CHECK(parse("GET /a?b?c=/d HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    CHECK(slice_is(req.path, req.path_len, "/a"));
    CHECK(slice_is(req.query, req.query_len, "b?c=/d"));
    CHECK(parse("GET /?q={\"a\":[1]}|x^`\\ HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    CHECK(slice_is(req.query, req.query_len, "q={\"a\":[1]}|x^`\\"));
    CHECK(parse("GET //x/../%zz HTTP/1.1\r\nHost: h\r\n\r\n") > 0); /* Not decoded here. */
    CHECK(slice_is(req.path, req.path_len, "//x/../%zz"));

    check_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n", -400); /* '*' only for OPTIONS */
    check_status("OPTIONS *x HTTP/1.1\r\n", -400);
    check_status("OPTIONS */ HTTP/1.1\r\n", -400);
    check_status("GET http://example.org/ HTTP/1.1\r\n", -400); /* absolute-form */
    check_status("CONNECT example.org:443 HTTP/1.1\r\n", -400); /* authority-form */
    check_status("GET a HTTP/1.1\r\n", -400);
    check_status("GET  / HTTP/1.1\r\n", -400);
    check_status("GET / HTTP/1.1\r\n", 0);
    check_status("GET /a\tb HTTP/1.1\r\n", -400);
    check_status("GET /a\x01 HTTP/1.1\r\n", -400);
    check_status("GET /a\x7f HTTP/1.1\r\n", -400);
    check_status("GET /caf\xc3\xa9 HTTP/1.1\r\n", -400);
    check_status("GET /a\r\n", -400);
    check_status("GET /a\n", -400);
    check_status("GET / \r\n", -400);
    CHECK_EQ_INT(parse_lim("GET /a\0b HTTP/1.1\r\n", 19, MAX_HEAD, MAX_TARGET), -400);
}

TEST(versions)
{
    CHECK(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    CHECK_EQ_INT(req.version_minor, 0);
    CHECK(!req.has_host && !req.keep_alive);
    check_status("GET / HTTP/1.2\r\n", -505);
    check_status("GET / HTTP/2.0\r\n", -505);
    check_status("GET / HTTP/0.9\r\n", -505);
    check_status("GET / HTTP/9.9\n", -505);
    check_status("GET / HTTP/2.0", 0); /* Undecided until the line ends. */
    check_status("GET / HTTP/1.1 \r\n", -400);
    check_status("GET / HTTP/1.10\r\n", -400);
    check_status("GET / HTTP/11\r\n", -400);
    check_status("GET / HTTP/1.\r\n", -400);
    check_status("GET / http/1.1\r\n", -400);
    check_status("GET / HTTPS/1.1\r\n", -400);
    check_status("GET / HTTP/1.1\rX", -400);
    check_status("GET / HTTX", -400);
    check_status("GET / HTTP/x", -400);
    check_status("GET / HTTP/1x", -400);
}

TEST(line_ends_and_leading_empty_lines)
{
    const char *s = "\r\n\n\r\nGET / HTTP/1.1\nHost: h\r\nA: b\n\r\n";
    CHECK_EQ_INT(parse(s), strlen(s));
    CHECK(slice_is(req.headers[1].value, req.headers[1].value_len, "b"));
    check_status("\r\r\nGET / HTTP/1.1\r\n", -400);
    check_status("\rGET", -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\n\rX", -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\n\r", 0);
    check_status("\r\n\r\n", 0);
    check_status("", 0);
}

TEST(header_syntax)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9 \x80\xff\r\n"
                    "X-Tab: a\tb\r\nX-Quote: \"a, b\" ; q=1\r\n!#$%&'*+-.^_`|~: token\r\n\r\n";
    CHECK_EQ_INT(parse(s), strlen(s));
    size_t len;
    const char *v = http_header(&req, "x-obs", &len);
    CHECK(slice_is(v, len, "caf\xc3\xa9 \x80\xff"));
    v = http_header(&req, "X-TAB", &len);
    CHECK(slice_is(v, len, "a\tb"));
    v = http_header(&req, "!#$%&'*+-.^_`|~", &len);
    CHECK(slice_is(v, len, "token"));

    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
                 "b\r\n\r\n",
                 -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f"
                 "b\r\n\r\n",
                 -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[31m\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", -400);  /* obs-fold */
    check_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", -400); /* obs-fold */
    check_status("GET / HTTP/1.1\r\n Host: h\r\n\r\n", -400); /* SP before the first field */
    check_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n", -400); /* SP before the colon */
    check_status("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\n: h\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost h\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nH\xc3\xa9: h\r\n\r\n", -400);
    CHECK_EQ_INT(parse_lim("GET / HTTP/1.1\r\nHost: h\0\r\n\r\n", 28, MAX_HEAD, MAX_TARGET), -400);
}

TEST(content_length)
{
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n") > 0);
    CHECK(req.has_length && req.content_length == 0 && !req.chunked);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  007 \r\n\r\n") > 0);
    CHECK(req.has_length && req.content_length == 7);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387904\r\n\r\n") > 0);
    CHECK(req.content_length == (uint64_t)1 << 62);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
                "0000000000000000000000000000000000000012\r\n\r\n") > 0);
    CHECK(req.content_length == 12);

    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387905\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
                 -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                 -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \xd9\xa3\r\n\r\n", -400);
    /* Duplicates are refused even when equal (a choice the header documents). */
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                 -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-length: 6\r\n\r\n",
                 -400);
}

TEST(transfer_encoding)
{
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n") > 0);
    CHECK(req.chunked && !req.has_length);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding:  ChUnKeD \r\n\r\n") > 0);
    CHECK(req.chunked);

    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 -501);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 -501);
    /* With Content-Length: 400 in either order, even for a coding we would refuse. */
    check_status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 5\r\n\r\n",
                 -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 -400);
    check_status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: gzip\r\n\r\n",
                 -400);
    /* HTTP/1.0 has no chunked coding: the framing is faulty (RFC 9112 6.1). */
    check_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
}

TEST(host)
{
    check_status("GET / HTTP/1.1\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nX-Host: h\r\nHosts: h\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400);
    check_status("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", -400);
    CHECK(parse("GET / HTTP/1.1\r\nHOST:\r\n\r\n") > 0); /* An empty Host is allowed. */
    CHECK(req.has_host);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    CHECK(!req.has_host);
    CHECK(parse("GET / HTTP/1.0\r\nHost: h\r\n\r\n") > 0);
    CHECK(req.has_host);
}

TEST(keep_alive_and_expect)
{
    static const struct {
        const char *s;
        bool keep_alive, expect;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", true, true},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect:  100-Continue \r\n\r\n", true, true},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue-x\r\n\r\n", true, false},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", true, false},
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ_INT(parse(cases[i].s), strlen(cases[i].s));
        if (req.keep_alive != cases[i].keep_alive || req.expect_continue != cases[i].expect)
            fprintf(stderr, "  case %zu\n", i);
        CHECK_EQ_INT(req.keep_alive, cases[i].keep_alive);
        CHECK_EQ_INT(req.expect_continue, cases[i].expect);
    }
}

TEST(limit_414)
{
    char buf[256];
    /* A target of exactly max_target bytes is fine; one more is 414. */
    snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", "123456789");
    CHECK_EQ_INT(parse_lim(buf, strlen(buf), MAX_HEAD, 10), strlen(buf));
    CHECK_EQ_INT(parse_lim(buf, strlen(buf), MAX_HEAD, 9), -414);
    CHECK(err != NULL);
    /* Reported as soon as the 11th target byte arrives, before the line is complete. */
    size_t first_bad = strlen("GET /123456789"); /* ends with the 10th target byte */
    for (size_t k = 0; k < strlen(buf); k++)
        CHECK_EQ_INT(parse_lim(buf, k, MAX_HEAD, 9), k < first_bad ? 0 : -414);
    CHECK_EQ_INT(parse_lim("GET /", 5, MAX_HEAD, 0), -414);
    CHECK_EQ_INT(parse_lim("GET *", 5, MAX_HEAD, 0), -414);
    CHECK_EQ_INT(parse_lim("GET ", 4, MAX_HEAD, 0), 0);
    /* A bad byte within the limit is still a 400. */
    CHECK_EQ_INT(parse_lim("GET /a\x01", 7, MAX_HEAD, 3), -400);
}

TEST(limit_431)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    size_t n = strlen(s);
    CHECK_EQ_INT(parse_lim(s, n, n, MAX_TARGET), n); /* exactly max_head: fine */
    CHECK_EQ_INT(parse_lim(s, n, n - 1, MAX_TARGET), -431);
    CHECK(err != NULL);
    /* Every prefix: 0 while within max_head, 431 as soon as it is passed. */
    for (size_t k = 0; k <= n; k++)
        CHECK_EQ_INT(parse_lim(s, k, 20, MAX_TARGET), k <= 20 ? 0 : -431);
    /* A complete head within max_head followed by a long body is fine. */
    char big[300];
    snprintf(big, sizeof(big), "%s%0200d", s, 7);
    CHECK_EQ_INT(parse_lim(big, strlen(big), n, MAX_TARGET), n);
    /* An endless stream of empty lines counts towards the limit. */
    char crlf[200];
    for (size_t i = 0; i < sizeof(crlf); i += 2)
        memcpy(crlf + i, "\r\n", 2);
    CHECK_EQ_INT(parse_lim(crlf, 100, 100, MAX_TARGET), 0);
    CHECK_EQ_INT(parse_lim(crlf, 102, 100, MAX_TARGET), -431);
    /* A malformed line within the limit is a 400, even with more than max_head buffered. */
    CHECK_EQ_INT(parse_lim("GET / HTTP/1.1\r\nBad Header\r\n", 28, 20, MAX_TARGET), -400);
    /* max_target above max_head: the head limit comes first. */
    CHECK_EQ_INT(parse_lim("GET /aaaaaaaaaaaaaaaaaaaa", 25, 16, MAX_TARGET), -431);
}

TEST(limit_431_header_count)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: %d\r\n", i, i);
    memcpy(buf + n, "\r\n", 3);
    CHECK_EQ_INT(parse(buf), n + 2); /* exactly HTTP_MAX_HEADERS */
    CHECK_EQ_INT(req.nheaders, HTTP_MAX_HEADERS);
    size_t len;
    const char *v = http_header(&req, "x-63", &len);
    CHECK(slice_is(v, len, "63"));
    /* One more: 431 as soon as the 65th line begins (its first byte), not at the end. */
    CHECK_EQ_INT(parse_lim(buf, n, MAX_HEAD, MAX_TARGET), 0);
    CHECK_EQ_INT(parse_lim(buf, n + 1, MAX_HEAD, MAX_TARGET), 0); /* "\r": maybe the end */
    memcpy(buf + n, "X", 2);
    CHECK_EQ_INT(parse_lim(buf, n + 1, MAX_HEAD, MAX_TARGET), -431);
    CHECK(err != NULL);
}

TEST(err_reason)
{
    err = "stale";
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    CHECK(err == NULL);
    err = "stale";
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n"), 0);
    CHECK(err == NULL);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n\r\n"), -400);
    CHECK_EQ_STR(err, "missing Host");
    /* err may be NULL. */
    CHECK_EQ_INT(http_parse_head("x", 1, 10, 10, &req, NULL), 0);
    CHECK_EQ_INT(http_parse_head("x(", 2, 10, 10, &req, NULL), -400);
    CHECK_EQ_INT(http_parse_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, 100, 10, &req, NULL), 27);
}

TEST(list_has)
{
    const char *v = "keep-alive, Upgrade ;a=1, text/html;q=\"x,close\" ,\tgzip\t, ,";
    size_t n = strlen(v);
    CHECK(http_list_has(v, n, "keep-alive"));
    CHECK(http_list_has(v, n, "KEEP-ALIVE"));
    CHECK(http_list_has(v, n, "upgrade"));
    CHECK(http_list_has(v, n, "text/html"));
    CHECK(http_list_has(v, n, "gzip"));
    CHECK(!http_list_has(v, n, "close")); /* only inside a quoted parameter */
    CHECK(!http_list_has(v, n, "keep"));
    CHECK(!http_list_has(v, n, "a=1"));
    CHECK(!http_list_has(v, n, ""));
    CHECK(!http_list_has("", 0, "close"));
    CHECK(http_list_has("close", 5, "close"));
    CHECK(!http_list_has("close", 4, "close")); /* length, not NUL, bounds the value */
    static const char *const quoted[] = {"a;b=\"\\\",close\"", "a;b=\"unterminated, close",
                                         "a;b=\"x\\"}; /* the last: a backslash at the end */
    for (size_t i = 0; i < 3; i++)
        CHECK(!http_list_has(quoted[i], strlen(quoted[i]), "close"));
    const char *v2 = "a;b=\"\\\",close\", close";
    CHECK(http_list_has(v2, strlen(v2), "close"));
    CHECK(http_list_has("  close  ", 9, "close"));
    CHECK(!http_list_has("clo se", 6, "close"));
}

/* Decode body in pieces whose sizes come from cuts (0-terminated; the rest in one piece
 * when the cuts run out), in place when inplace. Returns the bytes consumed in all, or the
 * first negative result; *out gets the payload, *done the final state. */
static long chunked_pieces(const char *body, size_t n, const size_t *cuts, bool inplace,
                           char *payload, size_t *payload_len, bool *done)
{
    char *b = malloc(n ? n : 1), *o = inplace ? NULL : malloc(n ? n : 1);
    memcpy(b, body, n);
    struct http_chunked st = {0};
    size_t off = 0, total = 0;
    long ret = 0;
    while (off < n && !st.done) {
        size_t take = n - off;
        if (cuts && *cuts) {
            if (*cuts < take)
                take = *cuts;
            cuts++;
        }
        /* An exact-size copy of the piece, so a read past it is caught. */
        char *piece = malloc(take);
        memcpy(piece, b + off, take);
        char *out = inplace ? piece : o;
        size_t m = (size_t)-1;
        long r = http_chunked_decode(&st, piece, take, out, &m);
        if (r < 0) {
            free(piece);
            ret = r;
            goto finish;
        }
        CHECK((size_t)r <= take);
        CHECK(m <= (size_t)r);
        CHECK((size_t)r == take || st.done);
        memcpy(payload + total, out, m);
        total += m;
        off += (size_t)r;
        free(piece);
    }
    ret = (long)off;
finish:
    *payload_len = total;
    *done = st.done;
    free(b);
    free(o);
    return ret;
}

struct chunk_case {
    const char *body;
    size_t len;
    const char *payload;
    size_t plen;
    long consumed; /* <0: the error; else bytes consumed (rest: the next request). */
};

/* sizeof, not strlen: a body or payload may hold a NUL byte. */
#define C(body, payload, consumed)                                                                 \
    {                                                                                              \
        body, sizeof(body) - 1, payload, sizeof(payload) - 1, consumed                             \
    }

static const struct chunk_case chunk_cases[] = {
    C("5\r\nhello\r\n0\r\n\r\n", "hello", 15),
    C("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 26),
    C("A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 20),
    C("a\r\n0123456789\r\n00\r\n\r\n", "0123456789", 21),
    C("0000000003\r\nabc\r\n0\r\n\r\n", "abc", 22),
    C("0\r\n\r\n", "", 5),
    C("3;name=value\r\nabc\r\n0;last\r\n\r\n", "abc", 29),
    C("3 ;a=\"q;\\\"x\"\t; b\r\nabc\r\n0\r\n\r\n", "abc", 28),
    C("3\t;x\r\nabc\r\n0\r\n\r\n", "abc", 16),
    C("3;\xc3\xa9\r\nabc\r\n0\r\n\r\n", "abc", 16),
    C("3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:  abc\t\r\nEmpty:\r\n\r\n", "abc", 51),
    C("3\r\na\r\n\r\n0\r\n\r\n", "a\r\n", 13), /* CRLF inside data is data */
    C("2\r\n\0\xff\r\n0\r\n\r\n", "\0\xff", 12),
    /* The rest belongs to the next request. */
    C("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 13),
    C("0\r\n\r\n0\r\n\r\n", "", 5),
    /* Errors. */
    C("\r\n", "", -400),
    C("g\r\n", "", -400),
    C("-1\r\n", "", -400),
    C("+1\r\n", "", -400),
    C("0x3\r\nabc\r\n0\r\n\r\n", "", -400),
    C(" 3\r\nabc\r\n0\r\n\r\n", "", -400),
    C("3 \r\nabc\r\n0\r\n\r\n", "", -400), /* BWS must lead to ';' */
    C("3 4\r\nabc\r\n0\r\n\r\n", "", -400),
    C("3\nabc\r\n0\r\n\r\n", "", -400),       /* bare LF */
    C("3\rabc\r\n0\r\n\r\n", "", -400),       /* bare CR */
    C("3\r\nabcd\r\n0\r\n\r\n", "abc", -400), /* data longer than its size */
    C("3\r\nabc\n0\r\n\r\n", "abc", -400),
    C("3\r\nabc\r0\r\n\r\n", "abc", -400),
    C("3;a\x01\r\nabc\r\n0\r\n\r\n", "", -400),
    C("3;a\nb\r\nabc\r\n0\r\n\r\n", "", -400),
    C("3\r\nabc\r\n0\r\n\n", "abc", -400),
    C("3\r\nabc\r\n0\r\nX: y\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\n X: y\r\n\r\n", "abc", -400), /* obs-fold */
    C("3\r\nabc\r\n0\r\nX: y\r\n\tz\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\nX : y\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\n: y\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\nX\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\nX: a\x7f\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\nX: y\rZ\r\n\r\n", "abc", -400),
    C("3\r\nabc\r\n0\r\n\rX", "abc", -400),
    C("4000000000000001\r\n", "", -400), /* 2^62 + 1 */
    C("10000000000000000\r\n", "", -400),
    C("ffffffffffffffffffffffff\r\n", "", -400),
};

#undef C

static void check_chunk_case(const struct chunk_case *c, const size_t *cuts, bool inplace)
{
    size_t n = c->len, got;
    char payload[256];
    bool done;
    long r = chunked_pieces(c->body, n, cuts, inplace, payload, &got, &done);
    if (r != c->consumed)
        fprintf(stderr, "  body \"%.30s\" (cut %zu): %ld, expected %ld\n", c->body,
                cuts ? cuts[0] : 0, r, c->consumed);
    CHECK_EQ_INT(r, c->consumed);
    if (c->consumed >= 0) {
        CHECK(done);
        CHECK_EQ_INT(got, c->plen);
        CHECK(memcmp(payload, c->payload, got) == 0);
    } else {
        /* Before the error: only a prefix of the payload, never more. */
        CHECK(got <= c->plen);
        CHECK(memcmp(payload, c->payload, got) == 0);
    }
}

TEST(chunked_cases_whole)
{
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        check_chunk_case(&chunk_cases[i], NULL, false);
        check_chunk_case(&chunk_cases[i], NULL, true);
    }
}

TEST(chunked_cases_byte_by_byte)
{
    static const size_t ones[513] = {[0 ... 511] = 1}; /* 0-terminated */
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        check_chunk_case(&chunk_cases[i], ones, false);
        check_chunk_case(&chunk_cases[i], ones, true);
    }
}

TEST(chunked_cases_every_split)
{
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        size_t n = chunk_cases[i].len;
        for (size_t a = 1; a < n; a++) {
            size_t one[2] = {a, 0};
            check_chunk_case(&chunk_cases[i], one, true);
            for (size_t b = 1; a + b < n; b++) {
                size_t two[3] = {a, b, 0};
                check_chunk_case(&chunk_cases[i], two, (a + b) % 2);
            }
        }
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

TEST(chunked_random_bodies_random_splits)
{
    /* Random chunk sizes, extensions and trailers, encoded then decoded in random pieces. */
    size_t cap = 1 << 16;
    char *enc = malloc(cap), *want = malloc(cap), *got = malloc(cap);
    for (int iter = 0; iter < 300; iter++) {
        size_t n = 0, wn = 0;
        int chunks = (int)(next_rand() % 8);
        for (int k = 0; k < chunks; k++) {
            size_t sz = 1 + next_rand() % 700;
            if (next_rand() % 2)
                n += (size_t)sprintf(enc + n, "%zx", sz);
            else
                n += (size_t)sprintf(enc + n, "%zX", sz);
            if (next_rand() % 3 == 0)
                n += (size_t)sprintf(enc + n, " ;ext%d=\"v;%d\"", k, iter);
            memcpy(enc + n, "\r\n", 2);
            n += 2;
            for (size_t j = 0; j < sz; j++)
                enc[n++] = want[wn++] = (char)next_rand();
            memcpy(enc + n, "\r\n", 2);
            n += 2;
        }
        n += (size_t)sprintf(enc + n, "0\r\n");
        for (int t = (int)(next_rand() % 3); t > 0; t--)
            n += (size_t)sprintf(enc + n, "X-T%d: v %d\r\n", t, iter);
        n += (size_t)sprintf(enc + n, "\r\n");
        size_t body = n;
        n += (size_t)sprintf(enc + n, "NEXT");

        size_t cuts[64], nc = 0;
        while (nc < 63)
            cuts[nc++] = 1 + next_rand() % (next_rand() % 4 ? 8 : 900);
        cuts[nc] = 0;
        size_t gl;
        bool done;
        long r = chunked_pieces(enc, n, cuts, iter % 2, got, &gl, &done);
        CHECK_EQ_INT(r, body);
        CHECK(done);
        CHECK_EQ_INT(gl, wn);
        CHECK(memcmp(got, want, wn) == 0);
    }
    free(enc);
    free(want);
    free(got);
}

TEST(chunked_state_rules)
{
    struct http_chunked st = {0};
    char out[64];
    size_t m;
    /* A size of exactly 2^62 is accepted; its payload would simply follow. */
    CHECK_EQ_INT(http_chunked_decode(&st, "4000000000000000\r\nab", 20, out, &m), 20);
    CHECK_EQ_INT(m, 2);
    CHECK(st.remaining == ((uint64_t)1 << 62) - 2 && !st.done);
    /* Leading zeros do not count towards the size limit. */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, "00000000000000000000001\r\nx\r\n", 28, out, &m), 28);
    CHECK_EQ_INT(m, 1);

    /* A size line of 1024 bytes is fine, 1025 is not (extensions count). */
    char line[1100];
    memset(line, 'x', sizeof(line));
    memcpy(line, "1;", 2);
    memcpy(line + 1024, "\r\nz\r\n0\r\n\r\n", 10);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, line, 1034, out, &m), 1034);
    CHECK(st.done && m == 1 && out[0] == 'z');
    memset(line, 'x', sizeof(line));
    memcpy(line, "1;", 2);
    memcpy(line + 1025, "\r\nz\r\n0\r\n\r\n", 10);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, line, 1035, out, &m), -400);
    /* ...and the error comes as soon as the 1025th byte arrives. */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, line, 1024, out, &m), 1024);
    CHECK_EQ_INT(http_chunked_decode(&st, line + 1024, 1, out, &m), -400);

    /* The same limit per trailer line, and a bound on the whole trailer section. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "0\r\nT:", 5);
    memcpy(line + 3 + 1025, "\r\n\r\n", 4);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, line, 3 + 1025 + 4, out, &m), -400);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, line, 3 + 1024, out, &m), 3 + 1024);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, "0\r\n", 3, out, &m), 3);
    long r = 0;
    for (int i = 0; i < 1000 && r >= 0; i++)
        r = http_chunked_decode(&st, "X-Trailer: 0123456789abcdef\r\n", 29, out, &m);
    CHECK_EQ_INT(r, -400);

    /* An error is sticky; after done, nothing more is consumed. */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, "z", 1, out, &m), -400);
    CHECK_EQ_INT(http_chunked_decode(&st, "0\r\n\r\n", 5, out, &m), -400);
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, "0\r\n\r\n", 5, out, &m), 5);
    CHECK(st.done && m == 0);
    CHECK_EQ_INT(http_chunked_decode(&st, "1\r\nx\r\n", 6, out, &m), 0);
    CHECK(st.done && m == 0);
    /* Empty input consumes nothing. */
    memset(&st, 0, sizeof(st));
    CHECK_EQ_INT(http_chunked_decode(&st, "", 0, out, &m), 0);
    CHECK(!st.done && m == 0);
}

TEST(chunked_in_place)
{
    char buf[] = "5;x=y\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\nrest";
    struct http_chunked st = {0};
    size_t m;
    long r = http_chunked_decode(&st, buf, strlen(buf), buf, &m);
    CHECK_EQ_INT(r, strlen(buf) - 4);
    CHECK(st.done);
    CHECK_EQ_INT(m, 11);
    CHECK(memcmp(buf, "hello world", 11) == 0);
    CHECK(strcmp(buf + r, "rest") == 0); /* The next request's bytes are untouched. */
}

TEST(query_param)
{
    const char *q = "a=1&b=x+y%21&path=%2Fvar%2Flog&empty=&bare&dup=first&dup=second&bad=%G1"
                    "&trunc=%4&pct=%25&sp+ace=1&en%63oded=2&&=nokey&plus=a+%2B+b&nul=%00x&last";
    size_t n = strlen(q);
    char out[64];
    CHECK_EQ_INT(http_query_param(q, n, "a", out, sizeof(out)), 1);
    CHECK_EQ_STR(out, "1");
    CHECK_EQ_INT(http_query_param(q, n, "b", out, sizeof(out)), 4);
    CHECK_EQ_STR(out, "x y!");
    CHECK_EQ_INT(http_query_param(q, n, "path", out, sizeof(out)), 8);
    CHECK_EQ_STR(out, "/var/log");
    CHECK_EQ_INT(http_query_param(q, n, "empty", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(q, n, "bare", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(q, n, "last", out, sizeof(out)), 0);
    CHECK_EQ_INT(http_query_param(q, n, "dup", out, sizeof(out)), 5);
    CHECK_EQ_STR(out, "first");
    CHECK_EQ_INT(http_query_param(q, n, "missing", out, sizeof(out)), -1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(q, n, "bad", out, sizeof(out)), -2);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(q, n, "trunc", out, sizeof(out)), -2);
    CHECK_EQ_INT(http_query_param(q, n, "pct", out, sizeof(out)), 1);
    CHECK_EQ_STR(out, "%");
    CHECK_EQ_INT(http_query_param(q, n, "sp ace", out, sizeof(out)), 1); /* keys decode too */
    CHECK_EQ_INT(http_query_param(q, n, "encoded", out, sizeof(out)), 1);
    CHECK_EQ_STR(out, "2");
    CHECK_EQ_INT(http_query_param(q, n, "", out, sizeof(out)), 5);
    CHECK_EQ_STR(out, "nokey");
    CHECK_EQ_INT(http_query_param(q, n, "plus", out, sizeof(out)), 5);
    CHECK_EQ_STR(out, "a + b");
    CHECK_EQ_INT(http_query_param(q, n, "nul", out, sizeof(out)), 2);
    CHECK(out[0] == '\0' && out[1] == 'x' && out[2] == '\0');
    CHECK_EQ_INT(http_query_param(q, n, "A", out, sizeof(out)), -1); /* case-sensitive */
    CHECK_EQ_INT(http_query_param(q, n, "a=1", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param(q, n, "pat", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param(q, n, "paths", out, sizeof(out)), -1);

    /* Output too small: the value and its NUL must fit. */
    CHECK_EQ_INT(http_query_param(q, n, "path", out, 9), 8);
    CHECK_EQ_INT(http_query_param(q, n, "path", out, 8), -2);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(q, n, "empty", out, 1), 0);
    CHECK_EQ_INT(http_query_param(q, n, "empty", NULL, 0), -2);
    CHECK_EQ_INT(http_query_param(q, n, "bare", NULL, 0), -2);
    CHECK_EQ_INT(http_query_param(q, n, "missing", NULL, 0), -1);

    /* The first occurrence counts even when it is the malformed one. */
    const char *q2 = "x=%zz&x=ok";
    CHECK_EQ_INT(http_query_param(q2, strlen(q2), "x", out, sizeof(out)), -2);
    /* A key with a bad escape matches nothing; the length bounds the query. */
    const char *q3 = "%zz=1&y=2&z=3";
    CHECK_EQ_INT(http_query_param(q3, strlen(q3), "%zz", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param(q3, strlen(q3), "y", out, sizeof(out)), 1);
    CHECK_EQ_INT(http_query_param(q3, 9, "z", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param(q3, 8, "y", out, sizeof(out)), 0); /* "y=" */
    CHECK_EQ_INT(http_query_param(NULL, 0, "a", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param("", 0, "", out, sizeof(out)), -1);
    CHECK_EQ_INT(http_query_param("&&&", 3, "", out, sizeof(out)), -1);
    /* '=' in a value is kept. */
    CHECK_EQ_INT(http_query_param("q=a=b", 5, "q", out, sizeof(out)), 3);
    CHECK_EQ_STR(out, "a=b");
}

TEST(query_param_from_a_parsed_head)
{
    const char *s = "GET /query?q=level%3Aerror+AND+%22disk+full%22&limit=50 HTTP/1.1\r\n"
                    "Host: h\r\n\r\n";
    CHECK(parse(s) > 0);
    char out[64];
    CHECK_EQ_INT(http_query_param(req.query, req.query_len, "q", out, sizeof(out)), 27);
    CHECK_EQ_STR(out, "level:error AND \"disk full\"");
    CHECK_EQ_INT(http_query_param(req.query, req.query_len, "limit", out, sizeof(out)), 2);
    CHECK_EQ_STR(out, "50");
}

TEST(url_decode)
{
    char out[32];
    CHECK_EQ_INT(http_url_decode("/a%20b+c/%2f%2F", 15, out, sizeof(out)), 9);
    CHECK_EQ_STR(out, "/a b+c///"); /* no '+' rule in paths */
    CHECK_EQ_INT(http_url_decode("", 0, out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_url_decode("%e2%82%AC", 9, out, sizeof(out)), 3);
    CHECK_EQ_STR(out, "\xe2\x82\xac");
    CHECK_EQ_INT(http_url_decode("%", 1, out, sizeof(out)), -1);
    CHECK_EQ_INT(http_url_decode("%2", 2, out, sizeof(out)), -1);
    CHECK_EQ_INT(http_url_decode("%2g", 3, out, sizeof(out)), -1);
    CHECK_EQ_INT(http_url_decode("%G1", 3, out, sizeof(out)), -1);
    CHECK_EQ_INT(http_url_decode("a%", 2, out, sizeof(out)), -1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_url_decode("%41%4", 5, out, sizeof(out)), -1);
    /* "%41" with a length of 2 is a truncated escape, not an 'A'. */
    CHECK_EQ_INT(http_url_decode("%41", 2, out, sizeof(out)), -1);
    CHECK_EQ_INT(http_url_decode("abc", 3, out, 4), 3);
    CHECK_EQ_INT(http_url_decode("abc", 3, out, 3), -1);
    CHECK_EQ_INT(http_url_decode("%61%62%63", 9, out, 4), 3);
    CHECK_EQ_STR(out, "abc");
    CHECK_EQ_INT(http_url_decode("", 0, out, 1), 0);
    CHECK_EQ_INT(http_url_decode("", 0, NULL, 0), -1);
    /* In place: the output never runs ahead of the input. */
    char b[] = "%2Fa%20b";
    CHECK_EQ_INT(http_url_decode(b, 8, b, sizeof(b)), 4);
    CHECK_EQ_STR(b, "/a b");
}

int main(void)
{
    RUN(head_get_fields);
    RUN(head_every_prefix);
    RUN(head_excludes_body_and_pipelined);
    RUN(methods);
    RUN(targets);
    RUN(versions);
    RUN(line_ends_and_leading_empty_lines);
    RUN(header_syntax);
    RUN(content_length);
    RUN(transfer_encoding);
    RUN(host);
    RUN(keep_alive_and_expect);
    RUN(limit_414);
    RUN(limit_431);
    RUN(limit_431_header_count);
    RUN(err_reason);
    RUN(list_has);
    RUN(chunked_cases_whole);
    RUN(chunked_cases_byte_by_byte);
    RUN(chunked_cases_every_split);
    RUN(chunked_random_bodies_random_splits);
    RUN(chunked_state_rules);
    RUN(chunked_in_place);
    RUN(query_param);
    RUN(query_param_from_a_parsed_head);
    RUN(url_decode);
    return check_summary("test_http_parse");
}
