/* test_query.c - the query language: every operator and field, precedence, errors, limits,
 * block skipping, time bounds, the builders, and concurrent regex matching. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "query/qry.h"

#define NOW  1700000000000LL /* 2023-11-14T22:13:20Z */
#define MIN  60000LL
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

static struct lc_entry ent(int level, int64_t ts_ms, const char *source, const char *msg)
{
    return (struct lc_entry){.id = 1,
                             .ts_ms = ts_ms,
                             .recv_ms = ts_ms,
                             .level = (uint8_t)level,
                             .source = source,
                             .source_len = source ? strlen(source) : 0,
                             .msg = msg,
                             .msg_len = msg ? strlen(msg) : 0};
}

static struct lc_entry msg(const char *m)
{
    return ent(LC_INFO, NOW, "127.0.0.1:5000", m);
}

/* Compile text (which must be valid) and match e. */
static int match_count;
static bool m(const char *text, const struct lc_entry *e)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX] = "";
    int rc = qry_compile(text, strlen(text), NOW, &q, err);
    if (rc != 0 || !q) {
        fprintf(stderr, "  query '%s' failed to compile: %s\n", text, err);
        check_cur_failed = 1;
        return false;
    }
    bool r = qry_match(q, e);
    match_count++;
    qry_free(q);
    return r;
}

/* Compile text, which must fail with -EINVAL; returns the error sentence. */
static const char *bad(const char *text)
{
    static char err[QRY_ERR_MAX];
    struct qry *q = (struct qry *)1;
    memset(err, 0, sizeof(err));
    int rc = qry_compile(text, strlen(text), NOW, &q, err);
    if (rc != -EINVAL || q != NULL) {
        fprintf(stderr, "  query '%s' compiled (rc %d), expected an error\n", text, rc);
        check_cur_failed = 1;
        qry_free(rc == 0 ? q : NULL);
        return "";
    }
    if (strchr(err, '\n')) {
        fprintf(stderr, "  error for '%s' holds a newline\n", text);
        check_cur_failed = 1;
    }
    return err;
}

static struct qry *compile(const char *text)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX] = "";
    if (qry_compile(text, strlen(text), NOW, &q, err) != 0) {
        fprintf(stderr, "  query '%s' failed to compile: %s\n", text, err);
        check_cur_failed = 1;
    }
    return q;
}

TEST(empty_matches_everything)
{
    struct lc_entry e = msg("anything"), z = ent(LC_TRACE, 0, NULL, NULL);
    CHECK(m("", &e));
    CHECK(m("   \t ", &e));
    CHECK(m("", &z));
    CHECK(m("limit:5", &z));
    struct qry *q = compile("limit:5");
    CHECK_EQ_INT(qry_limit(q), 5);
    int64_t from, to;
    qry_time_bounds(q, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
    qry_free(q);
    q = NULL;
    CHECK_EQ_INT(qry_compile(NULL, 0, NOW, &q, NULL), 0);
    CHECK(q && qry_match(q, &e));
    qry_free(q);
    qry_free(NULL);
}

TEST(words_are_anded_substrings)
{
    struct lc_entry e = msg("Disk FULL on /dev/sda1, retrying");
    CHECK(m("disk", &e));
    CHECK(m("DISK full", &e));
    CHECK(m("isk ul", &e));
    CHECK(m("disk AND full", &e));
    CHECK(m("disk and full", &e));
    CHECK(m("disk And /dev/sda1", &e));
    CHECK(!m("disk empty", &e));
    CHECK(!m("disk AND empty", &e));
    CHECK(!m("nothing", &e));
    struct lc_entry none = ent(LC_INFO, NOW, NULL, NULL);
    CHECK(!m("disk", &none));
}

TEST(or_and_precedence)
{
    struct lc_entry a = msg("alpha"), b = msg("beta"), bc = msg("beta gamma"), c = msg("gamma"),
                    ac = msg("alpha gamma");
    CHECK(m("alpha OR beta", &a));
    CHECK(m("alpha or beta", &b));
    CHECK(!m("alpha OR beta", &c));
    /* AND binds tighter: alpha OR (beta AND gamma). */
    CHECK(m("alpha OR beta gamma", &a));
    CHECK(!m("alpha OR beta gamma", &b));
    CHECK(m("alpha OR beta gamma", &bc));
    CHECK(m("alpha OR beta AND gamma", &a));
    CHECK(m("beta gamma OR alpha", &a));
    /* Parentheses change it. */
    CHECK(!m("(alpha OR beta) gamma", &a));
    CHECK(m("(alpha OR beta) gamma", &ac));
    CHECK(m("(alpha OR beta) gamma", &bc));
    CHECK(!m("(alpha OR beta) gamma", &c));
    CHECK(m("((alpha))", &a));
    CHECK(m("x OR y OR z OR gamma", &c));
    CHECK(m("(x OR (y OR gamma))", &c));
}

TEST(negation)
{
    struct lc_entry a = msg("alpha"), ab = msg("alpha beta");
    CHECK(m("-beta", &a));
    CHECK(!m("-beta", &ab));
    CHECK(m("NOT beta", &a));
    CHECK(m("not beta", &a));
    CHECK(!m("NOT alpha", &a));
    CHECK(m("alpha -beta", &a));
    CHECK(!m("alpha -beta", &ab));
    CHECK(m("alpha AND NOT beta", &a));
    CHECK(m("NOT NOT alpha", &a));
    CHECK(m("--alpha", &a));
    CHECK(!m("NOT (alpha OR beta)", &a));
    CHECK(m("-(beta gamma)", &ab));
    CHECK(m("NOT beta OR alpha", &ab));
    CHECK(!m("-\"alpha beta\"", &ab));
    /* A lone '-' and one inside a word are text. */
    struct lc_entry d = msg("a - b well-known");
    CHECK(m("-", &d));
    CHECK(m("well-known", &d));
    CHECK(!m("well-known", &a));
}

TEST(phrases)
{
    struct lc_entry e = msg("said \"hi\" to C:\\temp or else"), f = msg("disk is full");
    CHECK(m("\"disk is full\"", &f));
    CHECK(m("\"DISK IS\"", &f));
    CHECK(!m("\"disk full\"", &f));
    CHECK(m("disk full", &f));
    CHECK(m("\"said \\\"hi\\\"\"", &e));
    CHECK(m("\"C:\\\\temp\"", &e));
    CHECK(m("\"C:\\temp\"", &e)); /* Other backslashes stay literal. */
    CHECK(m("\"or\"", &e));       /* A quoted OR is text, not an operator. */
    CHECK(!m("\"or\"", &f));
    CHECK(m("\"\"", &f));
    CHECK(m("\"is\"full", &f)); /* A phrase ends at its quote; the next term follows. */
}

TEST(level_word_rule)
{
    struct lc_entry err_no_word = ent(LC_ERROR, NOW, "h", "connection reset"),
                    info_word = ent(LC_INFO, NOW, "h", "an error occurred"),
                    info_plain = ent(LC_INFO, NOW, "h", "all good"),
                    warn = ent(LC_WARN, NOW, "h", "slow"), fatal = ent(LC_FATAL, NOW, "h", "x");
    CHECK(m("error", &err_no_word));
    CHECK(m("ERROR", &err_no_word));
    CHECK(m("error", &info_word));
    CHECK(!m("error", &info_plain));
    CHECK(m("err", &err_no_word)); /* Alias. */
    CHECK(m("warning", &warn));
    CHECK(m("crit", &fatal));
    CHECK(!m("-error", &err_no_word));
    CHECK(m("-error", &info_plain));
    /* A phrase does not get the level rule. */
    CHECK(!m("\"error\"", &err_no_word));
    CHECK(m("\"error\"", &info_word));
    /* Nor a word that only contains a level name. */
    CHECK(!m("errors", &err_no_word));
}

TEST(level_field)
{
    struct lc_entry t = ent(LC_TRACE, NOW, "h", "m"), d = ent(LC_DEBUG, NOW, "h", "m"),
                    i = ent(LC_INFO, NOW, "h", "m"), w = ent(LC_WARN, NOW, "h", "m"),
                    e = ent(LC_ERROR, NOW, "h", "m"), f = ent(LC_FATAL, NOW, "h", "m");
    CHECK(m("level:ERROR", &e));
    CHECK(!m("level:ERROR", &f));
    CHECK(!m("level:ERROR", &w));
    CHECK(m("level:error", &e));
    CHECK(m("LEVEL:Err", &e));
    CHECK(m("level:warning", &w));
    CHECK(m("level:notice", &i));
    CHECK(m("level:=WARN", &w));
    CHECK(m("level:>=WARN", &w) && m("level:>=WARN", &e) && m("level:>=WARN", &f));
    CHECK(!m("level:>=WARN", &i));
    CHECK(m("level:>WARN", &e) && !m("level:>WARN", &w));
    CHECK(m("level:<=INFO", &i) && m("level:<=INFO", &t) && !m("level:<=INFO", &w));
    CHECK(m("level:<INFO", &d) && !m("level:<INFO", &i));
    CHECK(m("level:ERROR,FATAL", &e) && m("level:ERROR,FATAL", &f));
    CHECK(!m("level:ERROR,FATAL", &w));
    CHECK(m("level:<DEBUG,>=ERROR", &t) && m("level:<DEBUG,>=ERROR", &f));
    CHECK(!m("level:<DEBUG,>=ERROR", &i));
    CHECK(!m("level:>FATAL", &f));
    CHECK(
        m("level:ERROR disk", &(struct lc_entry){.level = LC_ERROR, .msg = "disk", .msg_len = 4}));
    CHECK(m("(level:ERROR)", &e));
    CHECK_EQ_STR(bad("level:BOGUS"), "unknown level 'BOGUS'");
    CHECK_EQ_STR(bad("level:>=NOPE"), "unknown level 'NOPE'");
    CHECK_EQ_STR(bad("level:ERROR,"), "unknown level ''");
    CHECK_EQ_STR(bad("level:"), "missing value after level: at 0");
    CHECK_EQ_STR(bad("a level: b"), "missing value after level: at 2");
}

TEST(source_field)
{
    struct lc_entry e = ent(LC_INFO, NOW, "127.0.0.1:5000", "m"),
                    v6 = ent(LC_INFO, NOW, "[FE80::1]:9", "m"), nos = ent(LC_INFO, NOW, NULL, "m");
    CHECK(m("source:127.0.0.1", &e));
    CHECK(m("source:127.0.0.1:5000", &e));
    CHECK(!m("source:127.0.0.2", &e));
    CHECK(!m("source:27.0", &e)); /* A prefix, not a substring. */
    CHECK(m("source:[fe80::", &v6));
    CHECK(m("source:\"127.0\"", &e));
    CHECK(!m("source:127", &nos));
    CHECK(m("-source:10.", &e));
    CHECK(!m("source:127.0.0.1:50000", &e));
}

TEST(since_until)
{
    struct lc_entry now = ent(LC_INFO, NOW, "h", "m"),
                    ago10m = ent(LC_INFO, NOW - 10 * MIN, "h", "m"),
                    ago20m = ent(LC_INFO, NOW - 20 * MIN, "h", "m"),
                    ago2h = ent(LC_INFO, NOW - 2 * HOUR, "h", "m");
    CHECK(m("since:15m", &now));
    CHECK(m("since:15m", &ago10m));
    CHECK(!m("since:15m", &ago20m));
    CHECK(m("since:20m", &ago20m)); /* Inclusive. */
    CHECK(m("since:1200", &ago20m));
    CHECK(!m("since:1199", &ago20m));
    CHECK(m("since:1200s", &ago20m));
    CHECK(m("since:3h", &ago2h) && !m("since:1h", &ago2h));
    CHECK(m("since:1d", &ago2h) && m("since:1w", &ago2h));
    CHECK(m("since:1h59m", &ago2h) == false && m("since:2h0m", &ago2h));
    CHECK(m("since:1200000ms", &ago20m));
    CHECK(m("until:1h", &ago2h));
    CHECK(!m("until:1h", &ago20m));
    CHECK(m("until:20m", &ago20m));
    CHECK(m("since:30m until:15m", &ago20m));
    CHECK(!m("since:30m until:15m", &ago10m));
    CHECK(!m("since:30m until:15m", &ago2h));
    CHECK(m("since:0", &now) && !m("since:0", &ago10m));
    CHECK(m("since:2023-11-14", &ago2h)); /* An ISO date is taken as absolute. */
    CHECK(!m("since:2023-11-15", &now));
    CHECK_EQ_STR(bad("since:xyz"), "bad duration 'xyz' in since:");
    CHECK_EQ_STR(bad("until:5y"), "bad duration '5y' in until:");
    CHECK_EQ_STR(bad("since:-5m"), "bad duration '-5m' in since:");
    CHECK_EQ_STR(bad("since:m"), "bad duration 'm' in since:");
    CHECK_EQ_STR(bad("since:99999999999999999999"),
                 "bad duration '99999999999999999999' in since:");
    CHECK_EQ_STR(bad("since:999999999999w"), "bad duration '999999999999w' in since:");
}

TEST(from_to)
{
    int64_t t0 = 1704164645000LL; /* 2024-01-02T03:04:05Z */
    struct lc_entry at = ent(LC_INFO, t0, "h", "m"), before = ent(LC_INFO, t0 - 1, "h", "m"),
                    after = ent(LC_INFO, t0 + 1, "h", "m");
    CHECK(m("from:1704164645", &at) && m("from:1704164645", &after));
    CHECK(!m("from:1704164645", &before));
    CHECK(m("to:1704164645", &at) && m("to:1704164645", &before));
    CHECK(!m("to:1704164645", &after));
    CHECK(m("from:1704164644.999", &before) && !m("from:1704164645.001", &at));
    CHECK(m("from:1704164645.0005", &at)); /* Sub-millisecond digits are dropped. */
    CHECK(m("from:2024-01-02T03:04:05Z", &at) && !m("from:2024-01-02T03:04:05Z", &before));
    CHECK(m("to:2024-01-02T03:04:05Z", &at) && !m("to:2024-01-02T03:04:05Z", &after));
    CHECK(m("from:2024-01-02T03:04:05.001Z", &after) && !m("from:2024-01-02T03:04:05.001Z", &at));
    CHECK(m("from:2024-01-02T03:04:05", &at)); /* No zone: UTC. */
    CHECK(m("from:2024-01-02T04:04:05+01:00", &at) &&
          !m("from:2024-01-02T04:04:05+01:00", &before));
    CHECK(m("from:2024-01-01T22:04:05-0500", &at) && !m("from:2024-01-01T22:04:05-0500", &before));
    CHECK(m("from:2024-01-02T03:04Z", &at));
    /* A date alone: from its first millisecond; to: through its last. */
    CHECK(m("from:2024-01-02", &at) && !m("from:2024-01-03", &at));
    CHECK(m("to:2024-01-02", &at) && !m("to:2024-01-01", &at));
    struct lc_entry last_ms = ent(LC_INFO, 1704239999999LL, "h", "m"),
                    next_day = ent(LC_INFO, 1704240000000LL, "h", "m");
    CHECK(m("to:2024-01-02", &last_ms) && !m("to:2024-01-02", &next_day));
    CHECK(m("from:2024-01-02 to:2024-01-02", &at));
    CHECK(m("from:\"2024-01-02 03:04:05\"", &at));
    struct lc_entry leap = ent(LC_INFO, 1709164800000LL, "h", "m"),
                    epoch = ent(LC_INFO, 0, "h", "m");
    CHECK(m("from:2024-02-29", &leap) && !m("from:2024-02-29T00:00:00.001Z", &leap));
    CHECK(m("from:1970-01-01T00:00:00Z to:0", &epoch));
    CHECK_EQ_STR(bad("from:yesterday"), "bad time 'yesterday' in from:");
    CHECK_EQ_STR(bad("to:2024-13-01"), "bad time '2024-13-01' in to:");
    CHECK_EQ_STR(bad("from:2023-02-29"), "bad time '2023-02-29' in from:");
    CHECK_EQ_STR(bad("from:2024-01-02T25:00Z"), "bad time '2024-01-02T25:00Z' in from:");
    CHECK_EQ_STR(bad("to:12.5.6"), "bad time '12.5.6' in to:");
    CHECK_EQ_STR(bad("from:2024-01-02T03:04:05Zjunk"),
                 "bad time '2024-01-02T03:04:05Zjunk' in from:");
}

TEST(regex)
{
    struct lc_entry e = msg("GET /api/v1/users/42 took 123ms"), up = msg("TIMEOUT after 5s");
    CHECK(m("/users\\/\\d+/", &e));
    CHECK(m("/took \\d+ms$/", &e));
    CHECK(!m("/^took/", &e));
    CHECK(!m("/timeout/", &up));
    CHECK(m("/timeout/i", &up));
    CHECK(m("/time(out|d)/i", &up));
    CHECK(m("regex:\\d{3}ms", &e));
    CHECK(m("regex:\"took [0-9]+ms\"", &e));
    CHECK(m("(regex:v(1|2))", &e)); /* Balanced parentheses stay in the value. */
    CHECK(m("(regex:v1 OR nothing)", &e));
    CHECK(m("/\\/api\\//", &e));
    CHECK(m("-/xyz/", &e));
    CHECK(m("/api/ took", &e));
    CHECK(m("/ai/ OR /users/", &e));
    CHECK(m("regex:\"say \\\"hi\\\"\"", &(struct lc_entry){.msg = "say \"hi\"", .msg_len = 8}));
    /* Not regex literals: paths are words. */
    struct lc_entry p = msg("open /var/log/syslog failed");
    CHECK(m("/var/log/syslog", &p));
    CHECK(m("/var/log", &p));
    CHECK(m("/var/", &p)); /* This one is a regex: "var" matches too. */
    CHECK(!m("/var/log/syslog", &e));
    CHECK(m("/unterminated", &(struct lc_entry){.msg = "x/unterminated", .msg_len = 14}));
    /* Pathological pattern: bounded, counts as no match. */
    CHECK(!m("/(a+)+$/",
             &(struct lc_entry){.msg = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", .msg_len = 37}));
    CHECK(!m("/x/", &(struct lc_entry){.msg = NULL, .msg_len = 0}));
    CHECK(m("/^$/", &(struct lc_entry){.msg = NULL, .msg_len = 0}));
    const char *err = bad("/a(b/");
    CHECK(strncmp(err, "invalid regex: ", 15) == 0);
    CHECK(strstr(err, "at offset 3") != NULL);
    err = bad("regex:\"[z-a]\"");
    CHECK(strncmp(err, "invalid regex: ", 15) == 0 && strstr(err, " at offset ") != NULL);
    CHECK_EQ_STR(bad("regex:"), "missing value after regex: at 0");
}

TEST(limit)
{
    struct qry *q = compile("error limit:10");
    CHECK_EQ_INT(qry_limit(q), 10);
    struct lc_entry e = msg("an error");
    CHECK(qry_match(q, &e));
    qry_free(q);
    q = compile("limit:3 (a limit:7)");
    CHECK_EQ_INT(qry_limit(q), 7); /* The last one wins. */
    qry_free(q);
    q = compile("limit:0 x");
    CHECK_EQ_INT(qry_limit(q), 0);
    qry_set_limit(q, 42);
    CHECK_EQ_INT(qry_limit(q), 42);
    qry_free(q);
    q = compile("x");
    CHECK_EQ_INT(qry_limit(q), 0);
    qry_free(q);
    CHECK_EQ_STR(bad("limit:-3"), "bad limit '-3' in limit:");
    CHECK_EQ_STR(bad("limit:ten"), "bad limit 'ten' in limit:");
    CHECK_EQ_STR(bad("limit:99999999999999999999999"),
                 "bad limit '99999999999999999999999' in limit:");
    CHECK_EQ_STR(bad("NOT limit:5"), "limit: cannot be negated at 0");
    CHECK_EQ_STR(bad("a OR limit:5"), "limit: cannot be an operand of OR");
    CHECK_EQ_STR(bad("limit:5 OR a"), "limit: cannot be an operand of OR");
    CHECK(m("a limit:5 OR a", &(struct lc_entry){.msg = "a", .msg_len = 1}));
}

TEST(unknown_fields_are_words)
{
    struct lc_entry e = msg("login ok user:admin from 10.0.0.1"), f = msg("user admin");
    CHECK(m("user:admin", &e));
    CHECK(m("USER:ADMIN", &e));
    CHECK(!m("user:admin", &f));
    CHECK(m("http://example.com",
            &(struct lc_entry){.msg = "GET http://example.com/", .msg_len = 23}));
    CHECK(m("foo:bar OR user:", &e));
    CHECK(m("func(x)", &(struct lc_entry){.msg = "call func x", .msg_len = 11}));
}

TEST(key_value_fields)
{
    struct lc_entry e = msg("GET / 200 host=web1 app=nginx procid=12");
    struct lc_entry q = msg("payment failed status=500 app=\"my app\" path=\"C:\\\\x\"");
    struct lc_entry x = msg("plain webhost=web1x host=web10");
    CHECK(m("host:web1", &e));
    CHECK(m("HOST:WEB1 app:nginx", &e));
    CHECK(m("procid:12", &e));
    CHECK(!m("host:web", &e));  /* The whole value, not a prefix of it... */
    CHECK(m("host:web*", &e));  /* ...unless asked. */
    CHECK(!m("host:web1", &x)); /* Neither "webhost=web1x" nor "host=web10". */
    CHECK(m("host:web1*", &x));
    CHECK(!m("host:nginx", &e)); /* The key counts. */
    CHECK(m("status:500", &q));
    CHECK(m("app:\"my app\"", &q));
    CHECK(!m("app:my", &q));
    CHECK(m("path:\"C:\\\\x\"", &q));
    CHECK(m("-host:web2", &e));
    CHECK(m("host:web2 OR host:web1", &e));
    CHECK(m("sd.origin-ip:10.0.0.1",
            &(struct lc_entry){.msg = "x sd.origin-ip=10.0.0.1", .msg_len = 23}));
    /* RFC 5424 private SD-IDs hold an '@'. */
    struct lc_entry sd = msg("x exampleSDID@32473.iut=3 y");
    CHECK(m("exampleSDID@32473.iut:3", &sd));
    /* A backslash: quoted by syslog, bare in JSON; both are found. */
    struct lc_entry js = msg("m path=C:\\temp\\x");
    CHECK(m("path:C:\\temp\\x", &js));
    struct lc_entry sy = msg("m path=\"C:\\\\temp\\\\x\"");
    CHECK(m("path:C:\\temp\\x", &sy));
    /* A prefix finds quoted values too, and has no literal fallback. */
    CHECK(m("app:my*", &q));
    CHECK(!m("app:my*", &(struct lc_entry){.msg = "text app:my*", .msg_len = 12}));
    /* An unterminated quote keeps the word literal (a quote inside a word is a byte). */
    CHECK(m("msg:\"hello", &(struct lc_entry){.msg = "say msg:\"hello", .msg_len = 14}));
    /* Blocks whose trigram summary lacks "host=web1" are skipped. */
    struct qry *qq = NULL;
    char err[QRY_ERR_MAX];
    CHECK_EQ_INT(qry_compile("host:web1", 9, 0, &qq, err), 0);
    struct lc_block_info bi = {.first_id = 1,
                               .last_id = 1,
                               .level_mask = 1u << LC_INFO,
                               .text = "other text",
                               .text_len = 10};
    CHECK(!qry_block_may_match(qq, &bi));
    bi.text = e.msg;
    bi.text_len = e.msg_len;
    CHECK(qry_block_may_match(qq, &bi));
    qry_free(qq);
}

TEST(error_classes)
{
    CHECK_EQ_STR(bad("(a b"), "unbalanced parenthesis at 0");
    CHECK_EQ_STR(bad("a (b (c)"), "unbalanced parenthesis at 2");
    CHECK_EQ_STR(bad("a b)"), "unbalanced parenthesis at 3");
    CHECK_EQ_STR(bad("(a) b) c"), "unbalanced parenthesis at 5");
    CHECK_EQ_STR(bad(")"), "unbalanced parenthesis at 0");
    CHECK_EQ_STR(bad("x ("), "unbalanced parenthesis at 2");
    CHECK_EQ_STR(bad("a ()"), "empty parentheses at 2");
    CHECK_EQ_STR(bad("ab \"cd"), "unterminated quote at 3");
    CHECK_EQ_STR(bad("\"a\\\""), "unterminated quote at 0");
    CHECK_EQ_STR(bad("regex:\"abc"), "unterminated quote at 6");
    CHECK_EQ_STR(bad("OR a"), "OR needs a term on both sides");
    CHECK_EQ_STR(bad("a OR"), "OR needs a term on both sides");
    CHECK_EQ_STR(bad("a OR OR b"), "OR needs a term on both sides");
    CHECK_EQ_STR(bad("(a OR) b"), "OR needs a term on both sides");
    CHECK_EQ_STR(bad("a OR AND b"), "OR needs a term on both sides");
    CHECK_EQ_STR(bad("AND a"), "AND needs a term on both sides");
    CHECK_EQ_STR(bad("a AND"), "AND needs a term on both sides");
    CHECK_EQ_STR(bad("a AND OR b"), "AND needs a term on both sides");
    CHECK_EQ_STR(bad("a NOT"), "NOT needs a term after it at 2");
    CHECK_EQ_STR(bad("a NOT )"), "NOT needs a term after it at 2");
    CHECK_EQ_STR(bad("level:BOGUS"), "unknown level 'BOGUS'");
    CHECK_EQ_STR(bad("since:xyz"), "bad duration 'xyz' in since:");
    /* A quoted value with a newline stays on one line in the message. */
    CHECK_EQ_STR(bad("level:\"a\nb\""), "unknown level 'a?b'");
    const char *err = bad("level:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    CHECK(strlen(err) < 70 && strstr(err, "...'") != NULL);

    char big[QRY_ERR_MAX + 5000];
    memset(big, 'a', 4097);
    big[4097] = '\0';
    CHECK_EQ_STR(bad(big), "query longer than 4096 bytes");
    big[4096] = '\0';
    struct qry *q = compile(big);
    CHECK(q != NULL);
    qry_free(q);
}

TEST(nesting_and_term_limits)
{
    char text[1200];
    size_t n = 0;
    for (int i = 0; i < 63; i++)
        text[n++] = '(';
    text[n++] = 'x';
    for (int i = 0; i < 63; i++)
        text[n++] = ')';
    text[n] = '\0';
    CHECK(m(text, &(struct lc_entry){.msg = "x", .msg_len = 1}));
    n = 0;
    for (int i = 0; i < 65; i++)
        text[n++] = '(';
    text[n++] = 'x';
    for (int i = 0; i < 65; i++)
        text[n++] = ')';
    text[n] = '\0';
    CHECK(strncmp(bad(text), "query nested too deeply (limit 64)", 34) == 0);
    n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(text + n, "NOT ");
    sprintf(text + n, "x");
    CHECK(strncmp(bad(text), "query nested too deeply", 23) == 0);
    memset(text, '-', 100);
    strcpy(text + 100, "x");
    CHECK(strncmp(bad(text), "query nested too deeply", 23) == 0);
    /* 100000 parentheses would have overflowed a naive recursive parser's stack; the length
     * check stops it even earlier, and 4000 stop at the depth limit. */
    char *deep = malloc(4097);
    memset(deep, '(', 4096);
    deep[4096] = '\0';
    CHECK(strncmp(bad(deep), "query nested too deeply", 23) == 0);
    free(deep);

    char words[4096];
    n = 0;
    for (int i = 0; i < 256; i++)
        n += (size_t)sprintf(words + n, "w%d ", i % 10);
    struct qry *q = compile(words);
    CHECK(q != NULL);
    qry_free(q);
    sprintf(words + n, "x");
    CHECK(strncmp(bad(words), "too many terms (limit 256)", 26) == 0);
}

TEST(block_may_match)
{
    const char *text = "GET /index 200\nconnection reset by peer\n";
    struct lc_block_info b = {.first_id = 1,
                              .last_id = 2,
                              .min_ts_ms = NOW - HOUR,
                              .max_ts_ms = NOW - 30 * MIN,
                              .level_mask = 1u << LC_INFO | 1u << LC_WARN,
                              .text = text,
                              .text_len = strlen(text)};
    struct lc_block_info unknown = b;
    unknown.text = NULL;
    unknown.text_len = 0;
    struct {
        const char *q;
        bool b, unknown;
    } cases[] = {
        {"", true, true},
        {"limit:4", true, true},
        {"reset", true, true}, /* Keyword present. */
        {"RESET BY", true, true},
        {"segfault", false, true}, /* Absent; unknown text: unsure. */
        {"\"reset by peer\"", true, true},
        {"\"by reset\"", false, true},
        {"warn", true, true},   /* Level word: the level is present. */
        {"error", false, true}, /* Level word: neither level nor text. */
        {"level:WARN", true, true},
        {"level:>=ERROR", false, false},
        {"level:ERROR,INFO", true, true},
        {"since:45m", true, true},   /* Overlaps. */
        {"since:29m", false, false}, /* Block ended 30 minutes ago. */
        {"until:1h", true, true},    /* Inclusive at the block's first entry. */
        {"until:61m", false, false},
        {"from:1700000000 to:1700000001", false, false},
        {"/segfault/", true, true},      /* Regex: unsure. */
        {"source:10.9.9.9", true, true}, /* Source: unsure. */
        {"-reset", true, true},          /* Negation: unsure. */
        {"NOT level:INFO", true, true},
        {"reset segfault", false, true}, /* AND: every child. */
        {"reset level:ERROR", false, false},
        {"reset OR segfault", true, true}, /* OR: any child. */
        {"segfault OR level:FATAL", false, true},
        {"segfault OR level:FATAL OR since:2h", true, true},
        {"(segfault OR peer) since:1h", true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qry *q = compile(cases[i].q);
        if (!q)
            continue;
        if (qry_block_may_match(q, &b) != cases[i].b ||
            qry_block_may_match(q, &unknown) != cases[i].unknown) {
            fprintf(stderr, "  block_may_match wrong for '%s'\n", cases[i].q);
            check_cur_failed = 1;
        }
        qry_free(q);
    }
    /* A store that knows nothing at all: always true. */
    struct lc_block_info any = {
        .min_ts_ms = INT64_MIN, .max_ts_ms = INT64_MAX, .level_mask = 0xffffffffu};
    struct qry *q = compile("level:FATAL since:1m segfault -x /y/ source:z");
    CHECK(qry_block_may_match(q, &any));
    qry_free(q);
}

TEST(time_bounds)
{
    int64_t from, to;
    struct qry *q = compile("since:15m until:5m error");
    qry_time_bounds(q, &from, &to);
    CHECK(from == NOW - 15 * MIN && to == NOW - 5 * MIN);
    qry_free(q);
    q = compile("from:1700000000 since:1h to:1700000100 to:1700000200");
    qry_time_bounds(q, &from, &to);
    CHECK(from == 1700000000000LL && to == 1700000100000LL);
    qry_free(q);
    q = compile("error");
    qry_time_bounds(q, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
    qry_free(q);
    q = compile("NOT since:1h");
    qry_time_bounds(q, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
    qry_free(q);
    q = compile("(since:1h x) OR (from:1600000000 to:1600000001)");
    qry_time_bounds(q, &from, &to); /* OR: the hull of the alternatives. */
    CHECK(from == 1600000000000LL && to == INT64_MAX);
    qry_free(q);
    q = compile("since:1h OR error");
    qry_time_bounds(q, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
    qry_free(q);
    qry_time_bounds(NULL, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
}

TEST(builders)
{
    char err[QRY_ERR_MAX];
    struct lc_entry e_err = ent(LC_ERROR, NOW, "h", "connection reset"),
                    e_info = ent(LC_INFO, NOW - DAY, "h", "Connection OK"),
                    e_warn = ent(LC_WARN, NOW, "h", "disk 90% OR more");
    struct qry *k = qry_keyword("connection", 10, err);
    CHECK(k && qry_match(k, &e_err) && qry_match(k, &e_info) && !qry_match(k, &e_warn));
    qry_free(k);
    k = qry_keyword("error", 5, err); /* Level rule applies. */
    CHECK(k && qry_match(k, &e_err) && !qry_match(k, &e_info));
    qry_free(k);
    k = qry_keyword("90% OR", 6, err); /* Taken literally, no operators. */
    CHECK(k && qry_match(k, &e_warn) && !qry_match(k, &e_err));
    qry_free(k);
    k = qry_keyword("", 0, err);
    CHECK(k && qry_match(k, &e_info));
    qry_free(k);

    struct qry *l = qry_level(">=WARN", 6, err);
    CHECK(l && qry_match(l, &e_err) && qry_match(l, &e_warn) && !qry_match(l, &e_info));
    qry_free(l);
    l = qry_level("notice", 6, err);
    CHECK(l && qry_match(l, &e_info));
    qry_free(l);
    CHECK(qry_level("BOGUS", 5, err) == NULL);
    CHECK_EQ_STR(err, "unknown level 'BOGUS'");

    struct qry *r = qry_regex("reset$", 6, err);
    CHECK(r && qry_match(r, &e_err) && !qry_match(r, &e_info));
    qry_free(r);
    r = qry_regex("RESET", 5, err); /* Case-sensitive. */
    CHECK(r && !qry_match(r, &e_err));
    qry_free(r);
    CHECK(qry_regex("(", 1, err) == NULL);
    CHECK(strncmp(err, "invalid regex: ", 15) == 0 && strstr(err, "at offset 1"));

    struct qry *t = qry_time_range(NOW - HOUR, NOW, err);
    CHECK(t && qry_match(t, &e_err) && !qry_match(t, &e_info));
    int64_t from, to;
    qry_time_bounds(t, &from, &to);
    CHECK(from == NOW - HOUR && to == NOW);
    qry_free(t);
    t = qry_time_range(NOW, NOW - 1, err); /* Empty range: valid, matches nothing. */
    CHECK(t && !qry_match(t, &e_err));
    qry_free(t);

    /* connection AND (level >= WARN OR recent) */
    struct qry *q = qry_and(
        qry_keyword("connection", 10, err),
        qry_or(qry_level(">=WARN", 6, err), qry_time_range(NOW - DAY - 1, NOW - DAY + 1, err)));
    CHECK(q && qry_match(q, &e_err) && qry_match(q, &e_info) && !qry_match(q, &e_warn));
    qry_time_bounds(q, &from, &to);
    CHECK(from == INT64_MIN && to == INT64_MAX);
    qry_free(q);

    q = qry_and(qry_time_range(0, 100, err), qry_time_range(50, 200, err));
    qry_time_bounds(q, &from, &to);
    CHECK(from == 50 && to == 100);
    qry_free(q);

    /* NULL operands: the other is returned as is. */
    k = qry_keyword("x", 1, err);
    CHECK(qry_and(k, NULL) == k && qry_or(NULL, k) == k);
    CHECK(qry_and(NULL, NULL) == NULL);
    qry_free(k);

    /* Limits: the smaller non-zero one survives a combination. */
    struct qry *a = compile("a limit:5"), *b = compile("b limit:3"), *c = compile("c");
    struct qry *ab = qry_or(a, b);
    CHECK_EQ_INT(qry_limit(ab), 3);
    struct qry *abc = qry_and(ab, c);
    CHECK_EQ_INT(qry_limit(abc), 3);
    CHECK(qry_match(abc, &(struct lc_entry){.msg = "a c", .msg_len = 3}));
    CHECK(!qry_match(abc, &(struct lc_entry){.msg = "a b", .msg_len = 3}));
    qry_free(abc);
}

struct thread_arg {
    const struct qry *q;
    int hits;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(buf, sizeof(buf), "request %d took %dms", i, i % 1000);
        struct lc_entry e = {.level = LC_INFO, .msg = buf, .msg_len = (size_t)len};
        a->hits += qry_match(a->q, &e);
    }
    return NULL;
}

TEST(concurrent_regex)
{
    struct qry *q = compile("/took (\\d)(\\d)\\dms/ request");
    struct thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.q = q};
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].hits, 20 * 900); /* i % 1000 in 100..999, 20 rounds. */
    }
    qry_free(q);
}

TEST(expression_level_error)
{
    /* The query port's "COUNT level:ERROR" hands us the expression. */
    struct lc_entry e = ent(LC_ERROR, NOW, "h", "x"), i = ent(LC_INFO, NOW, "h", "error");
    CHECK(m("level:ERROR", &e));
    CHECK(!m("level:ERROR", &i));
}

TEST(nul_bytes_in_query)
{
    struct qry *q = NULL;
    char err[QRY_ERR_MAX];
    CHECK_EQ_INT(qry_compile("a\0b", 3, NOW, &q, err), 0);
    CHECK(qry_match(q, &(struct lc_entry){.msg = "xa\0by", .msg_len = 5}));
    CHECK(!qry_match(q, &(struct lc_entry){.msg = "xaby", .msg_len = 4}));
    qry_free(q);
}

int main(void)
{
    RUN(empty_matches_everything);
    RUN(words_are_anded_substrings);
    RUN(or_and_precedence);
    RUN(negation);
    RUN(phrases);
    RUN(level_word_rule);
    RUN(level_field);
    RUN(source_field);
    RUN(since_until);
    RUN(from_to);
    RUN(regex);
    RUN(limit);
    RUN(unknown_fields_are_words);
    RUN(key_value_fields);
    RUN(error_classes);
    RUN(nesting_and_term_limits);
    RUN(block_may_match);
    RUN(time_bounds);
    RUN(builders);
    RUN(concurrent_regex);
    RUN(expression_level_error);
    RUN(nul_bytes_in_query);
    return check_summary("test_query");
}
