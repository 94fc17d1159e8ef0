/* test_syslog.c - RFC 5424, RFC 3164 and RFC 6587 as the RFCs, logger and rsyslog write them,
 * the liberal readings of what real senders send, every prefix of every message (each copied
 * to a buffer of exactly its size, so ASan sees any over-read), the fields text and octet
 * counting. Expected times come from timegm, independently of the parser's own calendar. */
#define _GNU_SOURCE /* timegm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/entry.h"
#include "check.h"
#include "proto/syslog.h"

/* Milliseconds since the epoch of a UTC time, computed by the C library. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s, int ms)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

#define NOW utc(2026, 11, 26, 12, 0, 0, 0)

/* A slice as a NUL-terminated string (from a ring of buffers, so several fit in one CHECK). */
static const char *str(const char *p, size_t n)
{
    static char ring[8][4096];
    static int next;
    char *b = ring[next++ % 8];
    if (n >= sizeof(ring[0]))
        n = sizeof(ring[0]) - 1;
    if (n)
        memcpy(b, p, n);
    b[n] = 0;
    return b;
}

#define HOST(m)   str((m).host, (m).host_len)
#define APP(m)    str((m).app, (m).app_len)
#define PROCID(m) str((m).procid, (m).procid_len)
#define MSGID(m)  str((m).msgid, (m).msgid_len)
#define SD(m)     str((m).sd, (m).sd_len)
#define MSG(m)    str((m).msg, (m).msg_len)

/* Parses s (which must have a valid PRI) at NOW. The struct points into s. */
static struct syslog_msg parse_at(const char *s, int64_t now)
{
    struct syslog_msg m;
    int r = syslog_parse(s, strlen(s), now, &m);
    if (r != 0) {
        fprintf(stderr, "  syslog_parse(\"%s\") == %d\n", s, r);
        check_cur_failed = 1;
    }
    return m;
}

static struct syslog_msg parse(const char *s)
{
    return parse_at(s, NOW);
}

static const char *fields(const struct syslog_msg *m)
{
    static char out[4096];
    size_t n = syslog_fields(m, out, sizeof(out) - 1);
    out[n] = 0;
    return out;
}

/* The time of "<13>1 TS - - - - -": the 5424 timestamp parser alone. */
static int64_t ts5424(const char *ts)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "<13>1 %s - - - - -", ts);
    struct syslog_msg m = parse(buf);
    if (m.format != SYSLOG_5424)
        return INT64_MAX; /* Not the shape of a timestamp: the message is not RFC 5424. */
    return m.ts_ms;
}

/* The time of "<13>TS host tag: m" read as BSD, and that the timestamp was recognised. */
static int64_t ts3164(const char *ts, int64_t now)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "<13>%s host tag: m", ts);
    struct syslog_msg m = parse_at(buf, now);
    if (m.format != SYSLOG_3164 || strcmp(HOST(m), "host") != 0 || strcmp(APP(m), "tag") != 0 ||
        strcmp(MSG(m), "m") != 0)
        return INT64_MAX; /* Not recognised as a timestamp. */
    return m.ts_ms;
}

TEST(pri_every_value)
{
    static const int level[8] = {LC_FATAL, LC_FATAL, LC_FATAL, LC_ERROR,
                                 LC_WARN,  LC_INFO,  LC_INFO,  LC_DEBUG};
    for (int pri = 0; pri <= 191; pri++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "<%d>x", pri);
        struct syslog_msg m = parse(buf);
        CHECK_EQ_INT(m.format, SYSLOG_3164);
        CHECK_EQ_INT(m.facility, pri / 8);
        CHECK_EQ_INT(m.severity, pri % 8);
        CHECK_EQ_INT(m.level, level[pri % 8]);
        CHECK_EQ_STR(MSG(m), "x");
    }
    struct syslog_msg m = parse("<0>");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_INT(m.msg_len, 0);
    CHECK_EQ_INT(m.ts_ms, INT64_MIN);
}

TEST(pri_invalid)
{
    static const char *bad[] = {"<192>x", "<01>x", "<00>x",  "<>x",   "<1234>x", "<999>x",
                                "<13",    "<1",    "<",      "",      "13>x",    "x<13>x",
                                " <13>x", "<1a>x", "< 13>x", "<-1>x", "<+1>x",   "<13 >x",
                                "[13]x",  "<012>", "<0013>x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct syslog_msg m;
        CHECK_EQ_INT(syslog_parse(bad[i], strlen(bad[i]), NOW, &m), -1);
        CHECK_EQ_INT(m.format, SYSLOG_NONE);
        CHECK_EQ_INT(m.level, -1);
    }
    struct syslog_msg m;
    CHECK_EQ_INT(syslog_parse(NULL, 0, NOW, &m), -1);
    CHECK_EQ_INT(syslog_parse("<13>x", 3, NOW, &m), -1); /* "<13" */
    CHECK_EQ_INT(syslog_parse("<13>x", 4, NOW, &m), 0);
}

/* RFC 5424 section 6.5, examples 1 to 4. */
TEST(rfc5424_examples)
{
    struct syslog_msg m = parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
                                "\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.facility, 4);
    CHECK_EQ_INT(m.severity, 2);
    CHECK_EQ_INT(m.level, LC_FATAL);
    CHECK_EQ_INT(m.ts_ms, utc(2003, 10, 11, 22, 14, 15, 3));
    CHECK_EQ_STR(HOST(m), "mymachine.example.com");
    CHECK_EQ_STR(APP(m), "su");
    CHECK_EQ_INT(m.procid_len, 0);
    CHECK_EQ_STR(MSGID(m), "ID47");
    CHECK_EQ_INT(m.sd_len, 0);
    CHECK_EQ_STR(MSG(m), "'su root' failed for lonvick on /dev/pts/8");
    CHECK_EQ_STR(fields(&m), " host=mymachine.example.com app=su msgid=ID47 facility=auth");

    m = parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to "
              "make the do-nothing.");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.facility, 20);
    CHECK_EQ_INT(m.severity, 5);
    CHECK_EQ_INT(m.level, LC_INFO);
    CHECK_EQ_INT(m.ts_ms, utc(2003, 8, 24, 12, 14, 15, 0));
    CHECK_EQ_STR(HOST(m), "192.0.2.1");
    CHECK_EQ_STR(APP(m), "myproc");
    CHECK_EQ_STR(PROCID(m), "8710");
    CHECK_EQ_INT(m.msgid_len, 0);
    CHECK_EQ_INT(m.sd_len, 0);
    CHECK_EQ_STR(MSG(m), "%% It's time to make the do-nothing.");
    CHECK_EQ_STR(fields(&m), " host=192.0.2.1 app=myproc procid=8710 facility=local4");

    m = parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
              "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] "
              "\xef\xbb\xbf"
              "An application event log entry...");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.ts_ms, utc(2003, 10, 11, 22, 14, 15, 3));
    CHECK_EQ_STR(APP(m), "evntslog");
    CHECK_EQ_STR(SD(m), "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" "
                        "eventID=\"1011\"]");
    CHECK_EQ_STR(MSG(m), "An application event log entry...");
    CHECK_EQ_STR(fields(&m), " host=mymachine.example.com app=evntslog msgid=ID47 facility=local4 "
                             "exampleSDID@32473.iut=3 exampleSDID@32473.eventSource=Application "
                             "exampleSDID@32473.eventID=1011");

    m = parse("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
              "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
              "[examplePriority@32473 class=\"high\"]");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(SD(m), "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" "
                        "eventID=\"1011\"][examplePriority@32473 class=\"high\"]");
    CHECK_EQ_INT(m.msg_len, 0);
    CHECK_EQ_STR(fields(&m), " host=mymachine.example.com app=evntslog msgid=ID47 facility=local4 "
                             "exampleSDID@32473.iut=3 exampleSDID@32473.eventSource=Application "
                             "exampleSDID@32473.eventID=1011 examplePriority@32473.class=high");
}

TEST(rfc5424_nil_and_missing_parts)
{
    struct syslog_msg m = parse("<13>1 - - - - - -");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.ts_ms, INT64_MIN);
    CHECK(m.host_len == 0 && m.app_len == 0 && m.procid_len == 0 && m.msgid_len == 0);
    CHECK(m.sd_len == 0 && m.msg_len == 0);
    CHECK_EQ_STR(fields(&m), " facility=user");
    m = parse("<13>1 - - - - - - hello world");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(MSG(m), "hello world");
    m = parse("<13>1 - - - - - - ");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.msg_len, 0);
    m = parse("<13>1 - - - - - -  two spaces"); /* The MSG is verbatim after one SP. */
    CHECK_EQ_STR(MSG(m), " two spaces");
    /* Liberal: STRUCTURED-DATA left out; the message follows the header. */
    m = parse("<13>1 - - - - -");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.msg_len, 0);
    m = parse("<13>1 - - - - - ");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.msg_len, 0);
    m = parse("<13>1 - host app - - hello world");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "app");
    CHECK_EQ_INT(m.sd_len, 0);
    CHECK_EQ_STR(MSG(m), "hello world");
    m = parse("<13>1 - - - - - -hello");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(MSG(m), "-hello");
    /* Only a lone "-" is the NILVALUE. */
    m = parse("<13>1 - -- a-b --- x - -");
    CHECK_EQ_STR(HOST(m), "--");
    CHECK_EQ_STR(APP(m), "a-b");
    CHECK_EQ_STR(PROCID(m), "---");
    CHECK_EQ_STR(MSGID(m), "x");
    /* A BOM only at the start of MSG is removed, and only one. */
    m = parse("<13>1 - - - - - - \xef\xbb\xbf\xef\xbb\xbfx");
    CHECK_EQ_STR(MSG(m), "\xef\xbb\xbfx");
    m = parse("<13>1 - - - - - - \xef\xbb");
    CHECK_EQ_STR(MSG(m), "\xef\xbb");
}

static struct syslog_msg parse_fields(const char *ts, int hl, int al, int pl, int ml)
{
    static char buf[1400];
    char h[300], a[300], p[300], i[300];
    memset(h, 'h', (size_t)hl);
    h[hl] = 0;
    memset(a, 'a', (size_t)al);
    a[al] = 0;
    memset(p, 'p', (size_t)pl);
    p[pl] = 0;
    memset(i, 'i', (size_t)ml);
    i[ml] = 0;
    snprintf(buf, sizeof(buf), "<13>1 %s %s %s %s %s - msg", ts, h, a, p, i);
    return parse(buf);
}

TEST(rfc5424_field_limits)
{
    struct syslog_msg m = parse_fields("-", 255, 48, 128, 32);
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.host_len, 255);
    CHECK_EQ_INT(m.app_len, 48);
    CHECK_EQ_INT(m.procid_len, 128);
    CHECK_EQ_INT(m.msgid_len, 32);
    CHECK_EQ_STR(MSG(m), "msg");
    /* One byte over any limit and the header is not RFC 5424: all of it is the BSD message. */
    int over[4][4] = {{256, 1, 1, 1}, {1, 49, 1, 1}, {1, 1, 129, 1}, {1, 1, 1, 33}};
    for (int k = 0; k < 4; k++) {
        m = parse_fields("-", over[k][0], over[k][1], over[k][2], over[k][3]);
        CHECK_EQ_INT(m.format, SYSLOG_3164);
        CHECK(m.host_len == 0 && m.app_len == 0 && m.msgid_len == 0 && m.sd_len == 0);
        CHECK(m.msg_len > 10 && memcmp(m.msg, "1 - ", 4) == 0);
    }
}

TEST(rfc5424_malformed_header_is_bsd)
{
    static const char *bad[] = {
        "<13>1  - - - - - - m",           /* two spaces */
        "<13>2 - - - - - - m",            /* another version */
        "<13>10 - - - - - - m",           /* another version */
        "<13>1",                          /* nothing after the version */
        "<13>1 - - - -",                  /* no MSGID */
        "<13>1 - h\xc3\xa9 a - - - m",    /* non-ASCII hostname */
        "<13>1 - host\tx a - - - m",      /* control byte */
        "<13>1 yesterday host a - - - m", /* not a timestamp */
        "<13>1 2026-11-26 10:00:00 host a - - - m",
        "<13>1 2026-11-26T10:00Z host a - - - m",
        "<13>1 2026-11-26T10:00:00.Z host a - - - m",
        "<13>1 2026-11-26T10:00:00.1234567890Z host a - - - m",
        "<13>1 2026-11-26T10:00:00+1:00 host a - - - m",
        "<13>1 2026-11-26T10:00:00+01:0 host a - - - m",
        "<13>1 2026-11-26T10:00:00+01:00x host a - - - m",
        "<13>1 26-11-26T10:00:00Z host a - - - m",
        "<13>1 2026/11/26T10:00:00Z host a - - - m",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct syslog_msg m = parse(bad[i]);
        CHECK_EQ_INT(m.format, SYSLOG_3164);
        CHECK_EQ_STR(MSG(m), bad[i] + 4);
        CHECK_EQ_INT(m.ts_ms, INT64_MIN);
        CHECK(m.host_len == 0 && m.app_len == 0 && m.procid_len == 0);
    }
}

TEST(rfc5424_structured_data)
{
    struct syslog_msg m =
        parse("<13>1 - - - - - [a b=\"x\\\"y\" c=\"p\\\\q\" d=\"r\\]s\" e=\"t\\nu\" f=\"\" "
              "g=\"has space\" h=\"\xc3\xbcn\xc3\xaf\" i=\"x]y\" j=\"a=b\"] m");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(MSG(m), "m");
    CHECK_EQ_STR(fields(&m), " facility=user a.b=\"x\\\"y\" a.c=\"p\\\\q\" a.d=r]s a.e=\"t\\\\nu\" "
                             "a.f=\"\" a.g=\"has space\" a.h=ünï a.i=x]y a.j=a=b");
    /* Elements without parameters are kept in sd and give no fields. */
    m = parse("<13>1 - - - - - [a][b c=\"1\"][d] m");
    CHECK_EQ_STR(SD(m), "[a][b c=\"1\"][d]");
    CHECK_EQ_STR(fields(&m), " facility=user b.c=1");
    /* Names of exactly 32 bytes. */
    char buf[256];
    snprintf(buf, sizeof(buf), "<13>1 - - - - - [%.32s %.32s=\"v\"]",
             "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
    m = parse(buf);
    CHECK_EQ_INT(m.sd_len, 32 + 32 + 7);
    /* Malformed STRUCTURED-DATA: the header stands, the rest is the message. */
    static const char *bad[] = {
        "[a b=\"1\"",
        "[a b=\"1\" ",
        "[a b=1]",
        "[]",
        "[a  b=\"1\"]",
        "[a b=\"1\"]x",
        "[a b=\"1\\\"]",
        "[a=b]",
        "[a b]",
        "[a b=]",
        "[a b=\"1\"c]",
        "[a \"b\"=\"1\"]",
        "[a b =\"1\"]",
        "[a b= \"1\"]",
        "[\xc3\xa9 b=\"1\"]",
        "[a\tb=\"1\"]",
        "[a b=\"1\"]]",
        "[a b=\"1\\",
        "[",
        "[a",
        "[a b=\"1\"][",
        "[iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "<13>1 - h - - - %s", bad[i]);
        m = parse(buf);
        CHECK_EQ_INT(m.format, SYSLOG_5424);
        CHECK_EQ_STR(HOST(m), "h");
        CHECK_EQ_INT(m.sd_len, 0);
        CHECK_EQ_STR(MSG(m), bad[i]);
        CHECK_EQ_STR(fields(&m), " host=h facility=user");
    }
}

TEST(rfc3339_timestamps)
{
    CHECK_EQ_INT(ts5424("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ_INT(ts5424("1969-12-31T23:59:59.999Z"), -1);
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00Z"), utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26t10:00:00z"), utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00"), utc(2026, 11, 26, 10, 0, 0, 0)); /* as UTC */
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.1Z"), utc(2026, 11, 26, 10, 0, 0, 100));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.12Z"), utc(2026, 11, 26, 10, 0, 0, 120));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.123Z"), utc(2026, 11, 26, 10, 0, 0, 123));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.123999Z"), utc(2026, 11, 26, 10, 0, 0, 123));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.123456789Z"), utc(2026, 11, 26, 10, 0, 0, 123));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00.1234567890Z"), INT64_MAX);
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00+01:00"), utc(2026, 11, 26, 9, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00-07:00"), utc(2026, 11, 26, 17, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00+05:30"), utc(2026, 11, 26, 4, 30, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00+0530"), utc(2026, 11, 26, 4, 30, 0, 0));
    CHECK_EQ_INT(ts5424("2026-11-26T10:00:00-00:00"), utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2026-01-01T00:30:00+01:00"), utc(2025, 12, 31, 23, 30, 0, 0));
    CHECK_EQ_INT(ts5424("2016-12-31T23:59:60Z"), utc(2016, 12, 31, 23, 59, 59, 999));
    CHECK_EQ_INT(ts5424("2016-12-31T23:59:60.5Z"), utc(2016, 12, 31, 23, 59, 59, 999));
    CHECK_EQ_INT(ts5424("2024-02-29T12:00:00Z"), utc(2024, 2, 29, 12, 0, 0, 0));
    CHECK_EQ_INT(ts5424("2000-02-29T12:00:00Z"), utc(2000, 2, 29, 12, 0, 0, 0));
    CHECK_EQ_INT(ts5424("1900-03-01T00:00:00Z"), utc(1900, 3, 1, 0, 0, 0, 0));
    CHECK_EQ_INT(ts5424("0000-01-01T00:00:00Z"), -62167219200000LL);
    CHECK_EQ_INT(ts5424("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    /* The shape of a timestamp with impossible values: RFC 5424, time unknown. */
    static const char *range[] = {
        "2025-02-29T12:00:00Z",      "1900-02-29T12:00:00Z",      "2026-04-31T12:00:00Z",
        "2026-13-01T12:00:00Z",      "2026-00-01T12:00:00Z",      "2026-11-00T12:00:00Z",
        "2026-11-26T24:00:00Z",      "2026-11-26T10:60:00Z",      "2026-11-26T10:00:61Z",
        "2026-11-26T10:00:00+24:00", "2026-11-26T10:00:00+01:60",
    };
    for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
        CHECK_EQ_INT(ts5424(range[i]), INT64_MIN);
    /* Every month's last day, checked against the C library. */
    static const int last[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int y = 1999; y <= 2101; y += 17)
        for (int mo = 1; mo <= 12; mo++) {
            char ts[64];
            snprintf(ts, sizeof(ts), "%04d-%02d-%02dT23:59:59.5Z", y, mo, last[mo - 1]);
            CHECK_EQ_INT(ts5424(ts), utc(y, mo, last[mo - 1], 23, 59, 59, 500));
        }
}

/* RFC 3164 section 5.4. */
TEST(rfc3164_examples)
{
    struct syslog_msg m =
        parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_INT(m.facility, 4);
    CHECK_EQ_INT(m.severity, 2);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 10, 11, 22, 14, 15, 0));
    CHECK_EQ_STR(HOST(m), "mymachine");
    CHECK_EQ_STR(APP(m), "su");
    CHECK_EQ_INT(m.procid_len, 0);
    CHECK_EQ_INT(m.msgid_len, 0);
    CHECK_EQ_INT(m.sd_len, 0);
    CHECK_EQ_STR(MSG(m), "'su root' failed for lonvick on /dev/pts/8");
    CHECK_EQ_STR(fields(&m), " host=mymachine app=su facility=auth");
    /* A relay's addition to "Use the BFG!": a hostname, and no tag. */
    m = parse("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!");
    CHECK_EQ_INT(m.ts_ms, utc(2026, 2, 5, 17, 32, 18, 0));
    CHECK_EQ_STR(HOST(m), "10.0.0.99");
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_STR(MSG(m), "Use the BFG!");
    /* As the RFC's relay reads it: "CST" is the hostname. */
    m = parse("<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the "
              "do-nothing.");
    CHECK_EQ_INT(m.facility, 20);
    CHECK_EQ_INT(m.severity, 5);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 8, 24, 5, 34, 0, 0));
    CHECK_EQ_STR(HOST(m), "CST");
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_STR(MSG(m), "1987 mymachine myproc[10]: %% It's time to make the do-nothing.");
    /* No valid timestamp: everything is the message. */
    m = parse("<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's "
              "All Folks!");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_INT(m.level, LC_FATAL);
    CHECK_EQ_INT(m.ts_ms, INT64_MIN);
    CHECK(m.host_len == 0 && m.app_len == 0);
    CHECK_EQ_STR(MSG(m), "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: "
                         "That's All Folks!");
    m = parse("<0>Oct 22 10:52:12 scapegoat 1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org "
              "10.1.2.3 sched[0]: That's All Folks!");
    CHECK_EQ_INT(m.ts_ms, utc(2026, 10, 22, 10, 52, 12, 0));
    CHECK_EQ_STR(HOST(m), "scapegoat");
    CHECK_EQ_STR(MSG(m), "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: "
                         "That's All Folks!");
}

TEST(bsd_timestamps)
{
    /* The day as " 6", "06" or "6"; any case of the month; a fraction; a leap second. */
    CHECK_EQ_INT(ts3164("Nov  6 10:00:00", NOW), utc(2026, 11, 6, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Nov 06 10:00:00", NOW), utc(2026, 11, 6, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Nov 6 10:00:00", NOW), utc(2026, 11, 6, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("nov 26 10:00:00", NOW), utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("NOV 26 10:00:00", NOW), utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Nov 26 10:00:00.250", NOW), utc(2026, 11, 26, 10, 0, 0, 250));
    CHECK_EQ_INT(ts3164("Nov 26 10:00:00.250123", NOW), utc(2026, 11, 26, 10, 0, 0, 250));
    CHECK_EQ_INT(ts3164("Jun 30 23:59:60", NOW), utc(2026, 6, 30, 23, 59, 59, 999));
    static const char *mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int mo = 1; mo <= 11; mo++) {
        char ts[32];
        snprintf(ts, sizeof(ts), "%s 15 01:02:03", mon[mo - 1]);
        CHECK_EQ_INT(ts3164(ts, NOW), utc(2026, mo, 15, 1, 2, 3, 0));
    }
    /* A date more than a day in the future is last year's; up to a day ahead is this year's. */
    CHECK_EQ_INT(ts3164("Dec 15 01:02:03", NOW), utc(2025, 12, 15, 1, 2, 3, 0));
    CHECK_EQ_INT(ts3164("Nov 27 11:59:59", NOW), utc(2026, 11, 27, 11, 59, 59, 0));
    CHECK_EQ_INT(ts3164("Nov 27 12:00:00", NOW), utc(2026, 11, 27, 12, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Nov 27 12:00:01", NOW), utc(2025, 11, 27, 12, 0, 1, 0));
    int64_t new_year = utc(2027, 1, 1, 0, 30, 0, 0);
    CHECK_EQ_INT(ts3164("Dec 31 23:59:59", new_year), utc(2026, 12, 31, 23, 59, 59, 0));
    CHECK_EQ_INT(ts3164("Jan  1 00:29:00", new_year), utc(2027, 1, 1, 0, 29, 0, 0));
    /* A sender slightly ahead at New Year keeps its new year. */
    int64_t eve = utc(2026, 12, 31, 23, 59, 0, 0);
    CHECK_EQ_INT(ts3164("Jan  1 00:01:00", eve), utc(2027, 1, 1, 0, 1, 0, 0));
    /* The 29th of February is the latest one. */
    CHECK_EQ_INT(ts3164("Feb 29 10:00:00", utc(2027, 3, 1, 0, 0, 0, 0)),
                 utc(2024, 2, 29, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Feb 29 10:00:00", utc(2028, 3, 1, 0, 0, 0, 0)),
                 utc(2028, 2, 29, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Feb 29 10:00:00", utc(2028, 2, 28, 11, 0, 0, 0)),
                 utc(2028, 2, 29, 10, 0, 0, 0));
    CHECK_EQ_INT(ts3164("Feb 29 10:00:00", utc(2100, 3, 1, 0, 0, 0, 0)),
                 utc(2096, 2, 29, 10, 0, 0, 0));
    /* Impossible values: the timestamp is recognised, its time unknown. */
    static const char *range[] = {"Nov 31 10:00:00", "Nov  0 10:00:00", "Nov 32 10:00:00",
                                  "Nov 26 24:00:00", "Nov 26 10:60:00", "Nov 26 10:00:61"};
    for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++)
        CHECK_EQ_INT(ts3164(range[i], NOW), INT64_MIN);
    /* A now outside years 0-9999 gives no year. */
    CHECK_EQ_INT(ts3164("Nov 26 10:00:00", INT64_MAX), INT64_MIN);
    CHECK_EQ_INT(ts3164("Nov 26 10:00:00", INT64_MIN), INT64_MIN);
    CHECK_EQ_INT(ts3164("Nov 26 10:00:00", 253402300800000LL), INT64_MIN);
    CHECK_EQ_INT(ts3164("Dec 31 23:59:59", 253402300799999LL), 253402300799000LL);
    CHECK_EQ_INT(ts3164("Jan  1 00:00:00", -62167219200000LL), -62167219200000LL);
    CHECK_EQ_INT(ts3164("Nov  6 00:00:00", -62167219200000LL), INT64_MIN); /* year -1 */
    CHECK_EQ_INT(ts3164("Jan  1 00:00:00", 253402300799999LL), utc(9999, 1, 1, 0, 0, 0, 0));
    /* Not a BSD timestamp: the whole is the message. */
    static const char *bad[] = {"Nov 26 10:00",     "Nov 26 10:00:0",   "Nov 26 1:00:00",
                                "Nov 126 10:00:00", "Nov   6 10:00:00", "Nov26 10:00:00",
                                "Nov 26 10-00-00",  "Nox 26 10:00:00",  "Nov 26 10:00:00.",
                                "Nov 26 10:00:00x", "Nov 26 10:00:00:", "N0v 26 10:00:00",
                                "Nov 2a 10:00:00",  "Nov 26 1a:00:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "<13>%s host tag: m", bad[i]);
        struct syslog_msg m = parse(buf);
        CHECK_EQ_INT(m.ts_ms, INT64_MIN);
        CHECK_EQ_INT(m.host_len, 0);
        CHECK_EQ_STR(MSG(m), buf + 4);
    }
}

/* util-linux logger, over the network and to the local socket. */
TEST(logger_formats)
{
    struct syslog_msg m = parse("<13>1 2026-11-26T10:00:00.123456+00:00 host user - - "
                                "[timeQuality tzKnown=\"1\" isSynced=\"0\"] msg");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.facility, 1);
    CHECK_EQ_INT(m.level, LC_INFO);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 10, 0, 0, 123));
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "user");
    CHECK_EQ_INT(m.procid_len, 0);
    CHECK_EQ_INT(m.msgid_len, 0);
    CHECK_EQ_STR(SD(m), "[timeQuality tzKnown=\"1\" isSynced=\"0\"]");
    CHECK_EQ_STR(MSG(m), "msg");
    CHECK_EQ_STR(fields(&m),
                 " host=host app=user facility=user timeQuality.tzKnown=1 timeQuality.isSynced=0");
    m = parse("<14>1 2026-11-26T10:00:00.123456+01:00 web1 deploy 4242 - [timeQuality "
              "tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"218500\"] release 1.2 done");
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 9, 0, 0, 123));
    CHECK_EQ_STR(PROCID(m), "4242");
    CHECK_EQ_STR(MSG(m), "release 1.2 done");
    CHECK_EQ_STR(fields(&m),
                 " host=web1 app=deploy procid=4242 facility=user timeQuality.tzKnown=1 "
                 "timeQuality.isSynced=1 timeQuality.syncAccuracy=218500");
    m = parse("<13>Nov 26 10:00:00 host user: msg");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "user");
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<13>Nov 26 10:00:00 user: msg"); /* local, no hostname */
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_STR(APP(m), "user");
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<13>Nov  6 10:00:00 user[4242]: msg");
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_STR(APP(m), "user");
    CHECK_EQ_STR(PROCID(m), "4242");
    CHECK_EQ_STR(MSG(m), "msg");
    CHECK_EQ_STR(fields(&m), " app=user procid=4242 facility=user");
    m = parse("<13>Nov  6 10:00:00 host user[4242]: msg");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "user");
    CHECK_EQ_STR(PROCID(m), "4242");
    CHECK_EQ_STR(fields(&m), " host=host app=user procid=4242 facility=user");
}

/* rsyslog's forwarding templates. */
TEST(rsyslog_templates)
{
    /* RSYSLOG_ForwardFormat: an RFC 3339 time in the BSD layout. */
    struct syslog_msg m = parse("<13>2026-11-26T10:00:00.123+01:00 host tag: msg");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 9, 0, 0, 123));
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "tag");
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<30>2026-11-26T10:00:00.123456+01:00 web1 nginx[812]: GET / 200");
    CHECK_EQ_INT(m.level, LC_INFO);
    CHECK_EQ_STR(HOST(m), "web1");
    CHECK_EQ_STR(APP(m), "nginx");
    CHECK_EQ_STR(PROCID(m), "812");
    CHECK_EQ_STR(MSG(m), "GET / 200");
    m = parse("<86>2026-11-26T10:00:00+00:00 web1 postfix/smtpd[42]: connect from x");
    CHECK_EQ_STR(APP(m), "postfix/smtpd");
    CHECK_EQ_STR(PROCID(m), "42");
    m = parse("<13>2026-11-26T10:00:00+00:00 host tag:");
    CHECK_EQ_STR(APP(m), "tag");
    CHECK_EQ_INT(m.msg_len, 0);
    /* A tag cut at 32 bytes by %syslogtag:1:32% loses its colon: it is message text. */
    m = parse("<13>2026-11-26T10:00:00+00:00 host abcdefghijklmnopqrstuvwxyz012345 msg");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_STR(MSG(m), "abcdefghijklmnopqrstuvwxyz012345 msg");
    /* Local messages relayed without a hostname. */
    m = parse("<13>2026-11-26T10:00:00Z sshd[1]: Accepted");
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_STR(APP(m), "sshd");
    CHECK_EQ_STR(MSG(m), "Accepted");
    /* An RFC 3339 shape with impossible values is still the timestamp. */
    m = parse("<13>2026-02-30T10:00:00Z host tag: msg");
    CHECK_EQ_INT(m.ts_ms, INT64_MIN);
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "tag");
    /* RSYSLOG_TraditionalForwardFormat. */
    m = parse("<13>Nov 26 10:00:00 host tag: msg");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "tag");
    CHECK_EQ_STR(MSG(m), "msg");
    /* RSYSLOG_SyslogProtocol23Format. */
    m = parse("<13>1 2026-11-26T10:00:00.123456+01:00 host app 1234 - - msg");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 9, 0, 0, 123));
    CHECK_EQ_STR(PROCID(m), "1234");
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<86>1 2026-11-26T10:00:00.000000+00:00 web1 sshd 4242 - [origin ip=\"10.0.0.1\"] "
              "Accepted publickey");
    CHECK_EQ_STR(SD(m), "[origin ip=\"10.0.0.1\"]");
    CHECK_EQ_STR(MSG(m), "Accepted publickey");
    CHECK_EQ_STR(fields(&m),
                 " host=web1 app=sshd procid=4242 facility=authpriv origin.ip=10.0.0.1");
}

/* What real senders send beyond the RFCs. */
TEST(rfc3164_liberal)
{
    struct syslog_msg m = parse("<13>");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK(m.host_len == 0 && m.app_len == 0 && m.msg_len == 0);
    m = parse("<13>hello world");
    CHECK_EQ_INT(m.ts_ms, INT64_MIN);
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_STR(MSG(m), "hello world");
    m = parse("<13>sshd[123]: Accepted"); /* no timestamp, no hostname */
    CHECK_EQ_STR(APP(m), "sshd");
    CHECK_EQ_STR(PROCID(m), "123");
    CHECK_EQ_STR(MSG(m), "Accepted");
    m = parse("<6>kernel: [ 0.000000] Linux version");
    CHECK_EQ_STR(APP(m), "kernel");
    CHECK_EQ_STR(MSG(m), "[ 0.000000] Linux version");
    m = parse("<13>CRON[1] msg"); /* "[pid]" without the colon */
    CHECK_EQ_STR(APP(m), "CRON");
    CHECK_EQ_STR(PROCID(m), "1");
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<13>tag[]: msg");
    CHECK_EQ_STR(APP(m), "tag");
    CHECK_EQ_INT(m.procid_len, 0);
    CHECK_EQ_STR(MSG(m), "msg");
    m = parse("<13>tag:  two"); /* one space goes with the tag */
    CHECK_EQ_STR(MSG(m), " two");
    /* Not tags: a colon inside a word, an unclosed or bad pid, a word alone. */
    static const char *plain[] = {
        "tag:msg",           "http://x/y", "tag[1:", "tag[1]x", "tag[1]:x",      "a[b[c]]: x",
        "Connection closed", ": x",        "[1]: x", "tag]: x", "t\xc3\xa4g: x", "tag[\x01]: x"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "<13>%s", plain[i]);
        m = parse(buf);
        CHECK_EQ_INT(m.app_len, 0);
        CHECK_EQ_STR(MSG(m), plain[i]);
    }
    /* Tag of 48 bytes, of 49; a pid of 128 bytes, of 129. */
    char buf[512], tag[200], pid[200];
    memset(tag, 't', 49);
    memset(pid, '7', 129);
    snprintf(buf, sizeof(buf), "<13>%.48s[%.128s]: x", tag, pid);
    m = parse(buf);
    CHECK_EQ_INT(m.app_len, 48);
    CHECK_EQ_INT(m.procid_len, 128);
    CHECK_EQ_STR(MSG(m), "x");
    snprintf(buf, sizeof(buf), "<13>%.49s: x", tag);
    m = parse(buf);
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_STR(MSG(m), buf + 4);
    snprintf(buf, sizeof(buf), "<13>t[%.129s]: x", pid);
    m = parse(buf);
    CHECK_EQ_INT(m.app_len, 0);
    CHECK_EQ_INT(m.procid_len, 0);
    CHECK_EQ_STR(MSG(m), buf + 4);
    /* Hostnames: "-" is none, IPv6 is one, 255 bytes at most, printable ASCII only. */
    m = parse("<13>Nov 26 10:00:00 - tag: msg");
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_STR(APP(m), "tag");
    m = parse("<13>Nov 26 10:00:00 fe80::1 tag: msg");
    CHECK_EQ_STR(HOST(m), "fe80::1");
    CHECK_EQ_STR(APP(m), "tag");
    char host[300];
    memset(host, 'h', 256);
    snprintf(buf, sizeof(buf), "<13>Nov 26 10:00:00 %.255s tag: msg", host);
    m = parse(buf);
    CHECK_EQ_INT(m.host_len, 255);
    CHECK_EQ_STR(APP(m), "tag");
    snprintf(buf, sizeof(buf), "<13>Nov 26 10:00:00 %.256s tag: msg", host);
    m = parse(buf);
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_INT(m.app_len, 0);
    CHECK(m.msg_len == 256 + 9 && m.msg[0] == 'h');
    m = parse("<13>Nov 26 10:00:00 h\xc3\xa9 tag: msg");
    CHECK_EQ_INT(m.host_len, 0);
    CHECK_EQ_STR(MSG(m), "h\xc3\xa9 tag: msg");
    /* Extra spaces after the timestamp and the hostname. */
    m = parse("<13>Nov 26 10:00:00   host   tag: msg");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_STR(APP(m), "tag");
    CHECK_EQ_STR(MSG(m), "msg");
    /* A timestamp and nothing else; a timestamp and a hostname. */
    m = parse("<13>Nov 26 10:00:00");
    CHECK_EQ_INT(m.ts_ms, utc(2026, 11, 26, 10, 0, 0, 0));
    CHECK(m.host_len == 0 && m.msg_len == 0);
    m = parse("<13>Nov 26 10:00:00 host");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_INT(m.msg_len, 0);
    m = parse("<13>Nov 26 10:00:00 host ");
    CHECK_EQ_STR(HOST(m), "host");
    CHECK_EQ_INT(m.msg_len, 0);
    /* A BOM is removed from BSD messages too. */
    m = parse("<13>tag: \xef\xbb\xbfmsg");
    CHECK_EQ_STR(MSG(m), "msg");
    /* A BSD message that starts with "1 " is still BSD. */
    m = parse("<13>1 day ago tag: msg");
    CHECK_EQ_INT(m.format, SYSLOG_3164);
    CHECK_EQ_STR(MSG(m), "1 day ago tag: msg");
}

/* Every message, cut at every length and copied to a buffer of exactly that size. */
TEST(every_prefix_in_bounds)
{
    static const char *msgs[] = {
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root'",
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
        "[examplePriority@32473 class=\"high\"] \xef\xbb\xbf"
        "An application event",
        "<13>1 - - - - - [a b=\"x\\\"y\\\\z\\]w\" c=\"\"] m",
        "<13>1 2026-11-26T10:00:00.123456+00:00 host user - - [timeQuality tzKnown=\"1\"] msg",
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
        "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
        "<13>Nov 26 10:00:00.123 user[4242]: msg",
        "<13>2026-11-26T10:00:00.123+01:00 host tag: msg",
        "<13>2026-11-26T10:00:00+0100 fe80::1 tag[1] msg",
        "<191>tag: x",
    };
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t n = strlen(msgs[i]);
        for (size_t k = 0; k <= n; k++) {
            char *b = malloc(k ? k : 1);
            memcpy(b, msgs[i], k);
            struct syslog_msg m;
            int r = syslog_parse(k ? b : NULL, k, NOW, &m);
            /* Every prefix from "<N>" on has a valid PRI. */
            size_t pri = (size_t)(strchr(msgs[i], '>') - msgs[i]) + 1;
            CHECK_EQ_INT(r, k >= pri ? 0 : -1);
            if (r == 0) {
                const char *ptr[6] = {m.host, m.app, m.procid, m.msgid, m.sd, m.msg};
                size_t len[6] = {m.host_len,  m.app_len, m.procid_len,
                                 m.msgid_len, m.sd_len,  m.msg_len};
                for (int f = 0; f < 6; f++)
                    CHECK(ptr[f] >= b && ptr[f] <= b + k && len[f] <= (size_t)(b + k - ptr[f]));
                char out[1024];
                size_t o = syslog_fields(&m, out, sizeof(out));
                for (size_t j = 0; j < o; j++)
                    CHECK((unsigned char)out[j] >= 0x20 && out[j] != 0x7f);
            }
            free(b);
        }
    }
}

TEST(fields_quoting_and_escaping)
{
    /* Header fields are values like any other. */
    struct syslog_msg m = parse("<13>1 - a\"b c\\d e=f g - -");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(fields(&m), " host=\"a\\\"b\" app=\"c\\\\d\" procid=e=f msgid=g facility=user");
    /* Control bytes and invalid UTF-8 in SD values are written as \xHH inside quotes. */
    m = parse("<13>1 - - - - - [a b=\"1\x01\x7f\t\n\r\" c=\"\xff\xc3\" d=\"\xe2\x82\xac\" "
              "e=\"\xc0\xaf\" f=\"\xed\xa0\x80\" g=\"\xf4\x90\x80\x80\" h=\"\xf0\x9f\x98\x80\"]");
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    CHECK_EQ_STR(fields(&m),
                 " facility=user a.b=\"1\\x01\\x7f\\x09\\x0a\\x0d\" a.c=\"\\xff\\xc3\" a.d=€ "
                 "a.e=\"\\xc0\\xaf\" a.f=\"\\xed\\xa0\\x80\" a.g=\"\\xf4\\x90\\x80\\x80\" a.h=😀");
    /* A literal backslash before another byte stays, and is escaped on output. */
    m = parse("<13>1 - - - - - [a p=\"C:\\dir\\\\x\"]");
    CHECK_EQ_STR(fields(&m), " facility=user a.p=\"C:\\\\dir\\\\x\"");
    /* BSD fields. */
    m = parse("<13>Nov 26 10:00:00 host tag[42]: msg");
    CHECK_EQ_STR(fields(&m), " host=host app=tag procid=42 facility=user");
    /* A struct built by hand, with bytes the parser never returns: still safe text. */
    struct syslog_msg h = {.format = SYSLOG_3164,
                           .host = "a\nb",
                           .host_len = 3,
                           .app = "x y",
                           .app_len = 3,
                           .sd = "[broken",
                           .sd_len = 7};
    CHECK_EQ_STR(fields(&h), " host=\"a\\x0ab\" app=\"x y\" facility=kern");
    struct syslog_msg z = {0};
    CHECK_EQ_STR(fields(&z), " facility=kern");
    h.sd = "[a b=\"1\"][c"; /* Parameters before the damage are written. */
    h.sd_len = strlen(h.sd);
    h.host_len = 0;
    h.app_len = 0;
    CHECK_EQ_STR(fields(&h), " facility=kern a.b=1");
}

/* Output is cut only between fields, never past cap, and is always a prefix of the whole. */
TEST(fields_cap)
{
    struct syslog_msg m =
        parse("<13>1 - host app 42 ID [x a=\"1\" b=\"two words\" c=\"\"][y z=\"q\\\"\"]");
    static const char *parts[] = {" host=host",         " app=app",       " procid=42",
                                  " msgid=ID",          " facility=user", " x.a=1",
                                  " x.b=\"two words\"", " x.c=\"\"",      " y.z=\"q\\\"\""};
    char full[256];
    full[0] = 0;
    size_t bound[10] = {0};
    for (int i = 0; i < 9; i++) {
        strcat(full, parts[i]);
        bound[i + 1] = strlen(full);
    }
    CHECK_EQ_STR(fields(&m), " host=host app=app procid=42 msgid=ID facility=user x.a=1 x.b=\"two "
                             "words\" x.c=\"\" y.z=\"q\\\"\"");
    size_t total = strlen(full);
    for (size_t cap = 0; cap <= total + 2; cap++) {
        char out[300];
        memset(out, '#', sizeof(out));
        size_t n = syslog_fields(&m, out, cap);
        size_t want = 0;
        for (int i = 0; i <= 9; i++)
            if (bound[i] <= cap)
                want = bound[i];
        CHECK_EQ_INT(n, want);
        CHECK(memcmp(out, full, n) == 0);
        for (size_t j = n; j < sizeof(out); j++)
            CHECK(out[j] == '#'); /* Nothing written past what was returned. */
    }
    CHECK_EQ_INT(syslog_fields(&m, NULL, 0), 0);
}

/* The framer the log port calls (tcp.c): syslog_octet_frame. */
static long frame(const char *f, size_t max, bool strict, bool eof, size_t *off, size_t *body)
{
    /* In a buffer of exactly its size, so ASan sees any read past it. */
    size_t n = strlen(f);
    char *b = malloc(n ? n : 1);
    memcpy(b, f, n);
    long r = syslog_octet_frame(b, n, max, strict, eof, off, body);
    free(b);
    return r;
}

TEST(octet_frame)
{
    const char *f = "17 <13>1 - - - - - -";
    size_t off = 0, body = 0, n = strlen(f);
    CHECK_EQ_INT(frame(f, 8192, true, false, &off, &body), 20);
    CHECK_EQ_INT(off, 3);
    CHECK_EQ_INT(body, 17);
    struct syslog_msg m;
    CHECK_EQ_INT(syslog_parse(f + off, body, NOW, &m), 0);
    CHECK_EQ_INT(m.format, SYSLOG_5424);
    /* Need more at every prefix, and a plain line when the input ends there. */
    for (size_t k = 1; k < n; k++) {
        char pre[32];
        memcpy(pre, f, k);
        pre[k] = 0;
        CHECK_EQ_INT(frame(pre, 8192, true, false, &off, &body), 0);
        CHECK_EQ_INT(frame(pre, 8192, true, true, &off, &body), -1);
    }
    /* Bytes after the frame belong to the next one; later frames need no header (not strict). */
    const char *two = "12 <13>1 - - - 9 <14>x y z";
    CHECK_EQ_INT(frame(two, 8192, true, false, &off, &body), 15);
    CHECK_EQ_INT(frame(two + 15, 8192, false, false, &off, &body), 11);
    CHECK_EQ_INT(off, 2);
    CHECK_EQ_INT(body, 9);
    CHECK_EQ_INT(frame(two + 15, 8192, true, false, &off, &body), -1); /* "x y" is no header */
    /* Plain lines that start with digits. */
    CHECK_EQ_INT(frame("12 apples and 3 pears", 8192, false, false, &off, &body), -1);
    CHECK_EQ_INT(frame("20240501 <4> disk full", 8192, true, false, &off, &body), -1);
    CHECK_EQ_INT(frame("404 <3> GET /", 8192, true, false, &off, &body), -1);
    CHECK_EQ_INT(frame("012 <13>1 x", 8192, false, false, &off, &body), -1);    /* leading zero */
    CHECK_EQ_INT(frame("1000000000 <1>", 8192, false, false, &off, &body), -1); /* 10 digits */
    CHECK_EQ_INT(frame("3 <13>", 8192, false, false, &off, &body), -1);   /* shorter than PRI */
    CHECK_EQ_INT(frame("6 <1234>", 8192, false, false, &off, &body), -1); /* 4-digit PRI */
    /* RFC 3164 and ISO headers count as syslog for the first frame. */
    CHECK_EQ_INT(frame("13 <13>May 1 x y", 8192, true, false, &off, &body), 16);
    CHECK_EQ_INT(frame("15 <13>2024-05-01 x", 8192, true, false, &off, &body), 18);
    /* Longer than max: the first max bytes are kept, the frame's length says what to skip. */
    CHECK_EQ_INT(frame("20 <13>1 abcdefghijklmno", 10, true, false, &off, &body), 23);
    CHECK_EQ_INT(off, 3);
    CHECK_EQ_INT(body, 10);
    CHECK_EQ_INT(frame("20 <13>1 abcdef", 10, true, false, &off, &body), 23); /* kept part here */
    CHECK_EQ_INT(frame("20 <13>1 ab", 10, true, false, &off, &body), 0);
    /* A PRI longer than max is never worth skipping a frame for. */
    CHECK_EQ_INT(frame("10 <134>1 abcde", 3, true, false, &off, &body), -1);
}

int main(void)
{
    RUN(pri_every_value);
    RUN(pri_invalid);
    RUN(rfc5424_examples);
    RUN(rfc5424_nil_and_missing_parts);
    RUN(rfc5424_field_limits);
    RUN(rfc5424_malformed_header_is_bsd);
    RUN(rfc5424_structured_data);
    RUN(rfc3339_timestamps);
    RUN(rfc3164_examples);
    RUN(bsd_timestamps);
    RUN(logger_formats);
    RUN(rsyslog_templates);
    RUN(rfc3164_liberal);
    RUN(every_prefix_in_bounds);
    RUN(fields_quoting_and_escaping);
    RUN(fields_cap);
    RUN(octet_frame);
    return check_summary("test_syslog");
}
