/* test_linetime.c - the time a line starts with: every form, with and without zone and
 * fraction, the near-misses that must not be taken for a time, the year of a BSD time, and
 * every prefix of every line (each copied to a buffer of exactly its size, so ASan sees any
 * over-read). Expected times come from timegm, independently of the parser's own calendar. */
#define _GNU_SOURCE /* timegm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ingest/batch.h"
#include "proto/linetime.h"

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

#define NOW  utc(2026, 12, 7, 12, 0, 0, 0)
#define HOUR 3600000LL
#define MIN  60000LL

/* Parse s at now from an exact-size copy; returns the bytes taken, *ts the time. */
static size_t parse_at(const char *s, int64_t now, int64_t *ts)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    *ts = INT64_MIN;
    size_t r = linetime_parse(p, n, now, ts);
    free(p);
    return r;
}

/* s starts with a time of want, taking `took` bytes. */
static void yes(const char *s, int64_t want, size_t took, int line)
{
    int64_t ts;
    size_t r = parse_at(s, NOW, &ts);
    if (r != took || ts != want) {
        fprintf(stderr, "  line %d: \"%s\": took %zu, ts %lld; expected %zu, %lld\n", line, s, r,
                (long long)ts, took, (long long)want);
        check_cur_failed = 1;
    }
}
#define YES(s, want, took) yes(s, want, took, __LINE__)

/* s does not start with a time. */
static void no(const char *s, int line)
{
    int64_t ts;
    size_t r = parse_at(s, NOW, &ts);
    if (r != 0 || ts != INT64_MIN) {
        fprintf(stderr, "  line %d: \"%s\" taken as a time (%zu bytes, %lld)\n", line, s, r,
                (long long)ts);
        check_cur_failed = 1;
    }
}
#define NO(s) no(s, __LINE__)

TEST(iso_forms)
{
    int64_t t = utc(2026, 12, 7, 3, 4, 5, 0);
    YES("2026-12-07T03:04:05Z hello", t, 20);
    YES("2026-12-07T03:04:05.123Z hello", t + 123, 24);
    YES("2026-12-07T03:04:05.1Z", t + 100, 22);
    YES("2026-12-07T03:04:05.123456789Z x", t + 123, 30);
    YES("2026-12-07T03:04:05", t, 19);
    YES("2026-12-07t03:04:05z", t, 20);
    YES("2026-12-07T03:04:05+02:00 x", t - 2 * HOUR, 25);
    YES("2026-12-07T03:04:05+0200 x", t - 2 * HOUR, 24);
    YES("2026-12-07T03:04:05+02 x", t - 2 * HOUR, 22);
    YES("2026-12-07T03:04:05-07:30 x", t + 7 * HOUR + 30 * MIN, 25);
    YES("2026-12-07T03:04:05.5+05:30 x", t + 500 - 5 * HOUR - 30 * MIN, 27);
    YES("2026-12-07 03:04:05 INFO started", t, 19);
    YES("2026-12-07 03:04:05.250 INFO", t + 250, 23);
    YES("2026-12-07 03:04:05,123 INFO python", t + 123, 23);
    YES("2026/12/07 03:04:05 [error] 1#1: nginx", t, 19);
    YES("2026-12-07 03:04:05 +0100 UTC go", t - HOUR, 25);
    YES("2026-12-07 03:04:05 -10 degrees", t, 19); /* "+hh" alone after a space: no zone. */
    YES("   \t2026-12-07T03:04:05Z x", t, 24);
    YES("[2026-12-07 03:04:05] [INFO] x", t, 21);
    YES("[2026-12-07T03:04:05.123+01:00] x", t + 123 - HOUR, 31);
    /* What may follow. */
    YES("2026-12-07T03:04:05Z", t, 20);
    YES("2026-12-07T03:04:05Z|x", t, 20);
    YES("2026-12-07T03:04:05: x", t, 19);
    YES("2026-12-07T03:04:05, x", t, 19);
    YES("2026-12-07T03:04:05;x", t, 19);
    /* The calendar: leap years, ends of months and years, the leap second. */
    YES("2024-02-29T23:59:59Z", utc(2024, 2, 29, 23, 59, 59, 0), 20);
    YES("2000-02-29T00:00:00Z", utc(2000, 2, 29, 0, 0, 0, 0), 20);
    YES("1999-12-31T23:59:59.999Z", utc(1999, 12, 31, 23, 59, 59, 999), 24);
    YES("1970-01-01T00:00:00Z", 0, 20);
    YES("1969-12-31T23:59:59Z", -1000, 20);
    YES("2016-12-31T23:59:60Z", utc(2016, 12, 31, 23, 59, 59, 999), 20);
    YES("9999-12-31T23:59:59.999Z", utc(9999, 12, 31, 23, 59, 59, 999), 24);
    YES("2026-01-01T00:30:00+01:00", utc(2025, 12, 31, 23, 30, 0, 0), 25);
}

TEST(iso_misses)
{
    NO("2026-12-07");                      /* A date alone. */
    NO("2026-12-07 report");               /* A date alone. */
    NO("2026-12-07T03:04");                /* No seconds. */
    NO("2026-12-07T03:04:05x");            /* Followed by a letter. */
    NO("2026-12-07T03:04:056");            /* Followed by a digit. */
    NO("2026-12-07T03:04:05.");            /* A point without digits. */
    NO("2026-12-07T03:04:05.x");           /* A point without digits. */
    NO("2026-12-07T03:04:05.1234567890Z"); /* Too many digits. */
    NO("2026-12-07T03:04:05+24:00");       /* Offset hour 24. */
    NO("2026-12-07T03:04:05+02:60");       /* Offset minute 60. */
    NO("2026-12-07T03:04:05+02:3");        /* Offset cut short. */
    NO("2026-12-07T03:04:05+023");         /* Offset cut short. */
    NO("2026-12-07T03:04:05+");            /* A sign alone. */
    NO("2026-12-07T03:04:05-");            /* A sign alone. */
    NO("2025-02-29T00:00:00Z");            /* Not a leap year. */
    NO("1900-02-29T00:00:00Z");            /* Not a leap year either. */
    NO("2026-04-31T00:00:00Z");            /* April has 30 days. */
    NO("2026-13-01T00:00:00Z");            /* Month 13. */
    NO("2026-00-01T00:00:00Z");            /* Month 0. */
    NO("2026-12-00T00:00:00Z");            /* Day 0. */
    NO("2026-12-07T24:00:00Z");            /* Hour 24. */
    NO("2026-12-07T23:60:00Z");            /* Minute 60. */
    NO("2026-12-07T23:59:61Z");            /* Second 61. */
    NO("2026-12-07X03:04:05Z");            /* Not T or a space between. */
    NO("2026-12/07T03:04:05Z");            /* Mixed date separators. */
    NO("2026-1-07T03:04:05Z");             /* One-digit month. */
    NO("20a6-12-07T03:04:05Z");            /* A letter in the year. */
    NO("[2026-12-07 03:04:05 x");          /* A bracket not closed. */
    NO("[2026-12-07 03:04:05");            /* A bracket not closed. */
    NO("x 2026-12-07T03:04:05Z");          /* Not at the start. */
}

TEST(bsd_forms)
{
    YES("Dec  7 03:04:05 host app: hi", utc(2026, 12, 7, 3, 4, 5, 0), 15);
    YES("Dec 07 03:04:05 host", utc(2026, 12, 7, 3, 4, 5, 0), 15);
    YES("Dec 7 03:04:05 host", utc(2026, 12, 7, 3, 4, 5, 0), 14);
    YES("Dec 17 03:04:05.250 host", utc(2026, 12, 17, 3, 4, 5, 250), 19);
    YES("dec 17 03:04:05", utc(2026, 12, 17, 3, 4, 5, 0), 15);
    YES("Jun 17 03:04:05", utc(2026, 6, 17, 3, 4, 5, 0), 15);
    /* The year nearest the arrival: at New Year, either side. */
    int64_t ny = utc(2027, 1, 1, 0, 5, 0, 0);
    int64_t ts;
    CHECK_EQ_INT(parse_at("Dec 31 23:59:00 late", ny, &ts), 15);
    CHECK_EQ_INT(ts, utc(2026, 12, 31, 23, 59, 0, 0));
    CHECK_EQ_INT(parse_at("Jan  1 00:10:00 early", utc(2026, 12, 31, 23, 55, 0, 0), &ts), 15);
    CHECK_EQ_INT(ts, utc(2027, 1, 1, 0, 10, 0, 0));
    /* Half a year either way: whichever is nearer. */
    CHECK_EQ_INT(parse_at("Jul 10 00:00:00 x", utc(2026, 1, 1, 0, 0, 0, 0), &ts), 15);
    CHECK_EQ_INT(ts, utc(2025, 7, 10, 0, 0, 0, 0));
    CHECK_EQ_INT(parse_at("Jun 20 00:00:00 x", utc(2026, 1, 1, 0, 0, 0, 0), &ts), 15);
    CHECK_EQ_INT(ts, utc(2026, 6, 20, 0, 0, 0, 0));
    /* A 29th of February: the nearest leap year. */
    CHECK_EQ_INT(parse_at("Feb 29 12:00:00 leap", utc(2026, 12, 7, 0, 0, 0, 0), &ts), 15);
    CHECK_EQ_INT(ts, utc(2028, 2, 29, 12, 0, 0, 0));
    CHECK_EQ_INT(parse_at("Feb 29 12:00:00 leap", utc(2025, 3, 1, 0, 0, 0, 0), &ts), 15);
    CHECK_EQ_INT(ts, utc(2024, 2, 29, 12, 0, 0, 0));
    /* An arrival outside the years 0-9999 gives no year. */
    CHECK_EQ_INT(parse_at("Dec 17 03:04:05", INT64_MAX, &ts), 0);
    CHECK_EQ_INT(parse_at("Dec 17 03:04:05", INT64_MIN, &ts), 0);
}

TEST(bsd_misses)
{
    NO("Dec  7 03:04");        /* No seconds. */
    NO("Dec 32 03:04:05 x");   /* Day 32. */
    NO("Dec  0 03:04:05 x");   /* Day 0. */
    NO("Feb 30 03:04:05 x");   /* Never. */
    NO("Dec  7 24:04:05 x");   /* Hour 24. */
    NO("Dec 123 03:04:05 x");  /* Three digits of day. */
    NO("Dex  7 03:04:05 x");   /* No month. */
    NO("December 7 03:04:05"); /* A long month name. */
    NO("Dec  7 03:04:05x");    /* Followed by a letter. */
    NO("Decent people");       /* A word. */
    NO("May the force be with you");
}

TEST(clf_forms)
{
    int64_t t = utc(2000, 10, 10, 13, 55, 36, 0);
    YES("[10/Oct/2000:13:55:36 -0700] GET /", t + 7 * HOUR, 28);
    YES("[10/Oct/2000:13:55:36 +0000]", t, 28);
    YES("[10/Oct/2000:13:55:36 +05:30]", t - 5 * HOUR - 30 * MIN, 29);
    YES("[10/Oct/2000:13:55:36]", t, 22);
    YES("[10/oct/2000:13:55:36.250 -0700]", t + 250 + 7 * HOUR, 32);
    /* An access line: host, ident, user, then the time. */
    YES("127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326",
        t + 7 * HOUR, 46);
    YES("192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 404 0", t, 42);
    YES("::1 - - [10/Oct/2000:13:55:36 +0000] x", t, 36);
    YES("web-1.example.org - - [10/Oct/2000:13:55:36 +0000] x", t, 50);
    YES("2001:db8::1 - - [10/Oct/2000:13:55:36 +0000] x", t, 44);
}

TEST(clf_misses)
{
    NO("[10/Oct/2000:13:55:36 -0700");          /* Not closed. */
    NO("[10/Oct/2000:13:55:36 -07] x");         /* A short zone in CLF. */
    NO("[10/Xyz/2000:13:55:36 -0700] x");       /* No month. */
    NO("[31/Feb/2000:13:55:36 -0700] x");       /* Never. */
    NO("[1/Oct/2000:13:55:36 -0700] x");        /* One-digit day. */
    NO("[INFO] started");                       /* A bracketed word. */
    NO("[] x");                                 /* Nothing inside. */
    NO("a b [10/Oct/2000:13:55:36 -0700] x");   /* Two words before it, not three. */
    NO("a b c d [10/Oct/2000:13:55:36 +0000]"); /* Four. */
    NO("a  b c [10/Oct/2000:13:55:36 +0000]");  /* An empty word. */
    NO("a b c[10/Oct/2000:13:55:36 +0000]");    /* No space before the bracket. */
}

TEST(epoch_forms)
{
    YES("1764158400 hello", 1764158400000LL, 10);
    YES("1764158400.123 hello", 1764158400123LL, 14);
    YES("1764158400.5", 1764158400500LL, 12);
    YES("1764158400.123456 x", 1764158400123LL, 17);
    YES("1764158400123 hello", 1764158400123LL, 13);
    YES("1764158400123.456 x", 1764158400123LL, 17);
    YES("1764158400: x", 1764158400000LL, 10);
    YES("1764158400,x", 1764158400000LL, 10);
    YES("  1764158400 x", 1764158400000LL, 12);
}

TEST(epoch_misses)
{
    NO("404 not found");
    NO("12345 items");
    NO("200");
    NO("0");
    NO("176415840 nine digits");
    NO("17641584001 eleven digits");
    NO("176415840012 twelve digits");
    NO("17641584001234 fourteen digits");
    NO("1764158400x");
    NO("1764158400-05");
    NO("1764158400.");
    NO("1764158400.x");
    NO("1764158400.1234567890 too many");
    NO("1764158400/2");
    NO("3.14159 pi");
}

TEST(nothing)
{
    NO("");
    NO(" ");
    NO("\t\t");
    NO("hello world");
    NO("ERROR disk full");
    NO("\x01 control");
    NO("\xc3\xa9t\xc3\xa9 in UTF-8");
    NO("LOG|ERROR|-|msg");
    NO("{\"msg\":\"json\"}");
}

/* Every prefix of every line, in an exact-size buffer: no read past the end, and a time found
 * in a prefix takes no more than the prefix. */
TEST(prefixes)
{
    static const char *const lines[] = {
        "2026-12-07T03:04:05.123456+02:00 x",
        "2026-12-07 03:04:05 +0100 UTC",
        "[2026-12-07 03:04:05.5] x",
        "Dec  7 03:04:05.25 host",
        "[10/Oct/2000:13:55:36.5 -07:00] x",
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] x",
        "1764158400123.456 x",
        "1764158400.123 x",
    };
    for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
        size_t n = strlen(lines[k]);
        for (size_t len = 0; len <= n; len++) {
            char *p = malloc(len ? len : 1);
            memcpy(p, lines[k], len);
            int64_t ts;
            size_t r = linetime_parse(p, len, NOW, &ts);
            CHECK(r <= len);
            free(p);
        }
    }
}

/* The entry's time as the ingest pipeline builds it (ingest_parse_msg, ingest_batch_add):
 * ts_ms the line's when the message has no time of its own, the arrival time kept. */
static int64_t entry_ts(const char *line, int64_t now)
{
    struct ingest_batch *b = ingest_batch_get(65536);
    struct ingest_msg m;
    int64_t ts = INT64_MIN;
    if (ingest_parse_msg(b, line, strlen(line), now, 0, &m) == 0) {
        struct lc_entry *e = ingest_batch_add(b, &m, "127.0.0.1:9", 11, now);
        CHECK(e && e->recv_ms == now);
        ts = e ? e->ts_ms : INT64_MIN;
    }
    ingest_batch_reset(b);
    return ts;
}

TEST(pipeline)
{
    int64_t t = utc(2026, 12, 7, 3, 4, 5, 0);
    int64_t now = t + 5 * MIN;
    /* A plain line, the pipe form leaving the time to the server, and messages of syslog and
     * JSON without a time of their own, take the text's. */
    CHECK_EQ_INT(entry_ts("2026-12-07T03:04:05Z plain", now), t);
    CHECK_EQ_INT(entry_ts("LOG|INFO|-|2026-12-07T03:04:05Z piped", now), t);
    CHECK_EQ_INT(entry_ts("<13>1 - host app - - - 2026-12-07T03:04:05Z nil time", now), t);
    CHECK_EQ_INT(entry_ts("{\"msg\":\"2026-12-07T03:04:05Z in json\"}", now), t);
    /* A time of their own wins. */
    CHECK_EQ_INT(entry_ts("LOG|INFO|1764158400|2026-12-07T03:04:05Z piped", now), 1764158400000LL);
    CHECK_EQ_INT(entry_ts("LOG:1764158400:INFO:2026-12-07T03:04:05Z colon", now), 1764158400000LL);
    CHECK_EQ_INT(entry_ts("<13>1 2026-12-07T01:00:00Z host app - - - 2026-12-07T03:04:05Z x", now),
                 utc(2026, 12, 7, 1, 0, 0, 0));
    CHECK_EQ_INT(entry_ts("{\"msg\":\"2026-12-07T03:04:05Z x\",\"ts\":1764158400}", now),
                 1764158400000LL);
    /* No time in the text: the arrival. */
    CHECK_EQ_INT(entry_ts("404 not found", now), now);
    /* The window: 30 days back, an hour ahead by default. */
    CHECK_EQ_INT(entry_ts("2026-11-08T03:04:05Z 29 days old", now), utc(2026, 11, 8, 3, 4, 5, 0));
    CHECK_EQ_INT(entry_ts("2026-11-06T03:04:05Z 31 days old", now), now);
    CHECK_EQ_INT(entry_ts("2026-12-07T04:04:05Z 55 minutes ahead", now),
                 utc(2026, 12, 7, 4, 4, 5, 0));
    CHECK_EQ_INT(entry_ts("2026-12-07T04:10:05Z 61 minutes ahead", now), now);
    CHECK_EQ_INT(entry_ts("1234567890 items: 2009", now), now);
    ingest_set_line_time(true, 2 * HOUR, 0);
    CHECK_EQ_INT(entry_ts("2026-12-07T01:09:06Z", now), utc(2026, 12, 7, 1, 9, 6, 0));
    CHECK_EQ_INT(entry_ts("2026-12-07T01:09:04Z", now), now);
    CHECK_EQ_INT(entry_ts("2026-12-07T03:09:06Z", now), now);
    ingest_set_line_time(true, INT64_MAX, INT64_MAX); /* No overflow at the extremes. */
    CHECK_EQ_INT(entry_ts("0000-01-01T00:00:00Z", now), utc(0, 1, 1, 0, 0, 0, 0));
    CHECK_EQ_INT(entry_ts("9999-12-31T23:59:59Z", now), utc(9999, 12, 31, 23, 59, 59, 0));
    /* Off: the arrival time, whatever the text. */
    ingest_set_line_time(false, 30 * 24 * HOUR, HOUR);
    CHECK_EQ_INT(entry_ts("2026-12-07T03:04:05Z plain", now), now);
    ingest_set_line_time(true, 30 * 24 * HOUR, HOUR);
}

int main(void)
{
    RUN(iso_forms);
    RUN(iso_misses);
    RUN(bsd_forms);
    RUN(bsd_misses);
    RUN(clf_forms);
    RUN(clf_misses);
    RUN(epoch_forms);
    RUN(epoch_misses);
    RUN(nothing);
    RUN(prefixes);
    RUN(pipeline);
    return check_summary("linetime");
}
