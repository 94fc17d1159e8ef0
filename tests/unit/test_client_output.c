/* test_client_output.c - the logcaster client's printers on canned input: entries in every
 * format, level colours, and the rows of a piped query (the query port's `RESULT|n` followed
 * by `name=value` rows, issue 17) as an aligned table, json objects and logfmt lines. Also the
 * --host and --since helpers of util.c. */
#include "client/output.c"
#include "client/util.c"

#include <stdlib.h>

#include "check.h"

/* Run fn's printing into a string (malloc'd by open_memstream). */
static char *capture_table(const struct lcc_output *o, const char *const *rows, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct lcc_table *t = lcc_table_new();
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(lcc_table_add(t, rows[i], strlen(rows[i])), 0);
    lcc_table_print(f, o, t);
    lcc_table_free(t);
    fclose(f);
    return buf;
}

static const char *const stats_rows[] = {
    "level=DEBUG n=750310",
    "level=ERROR n=12",
    "level=INFO n=4096",
    "level=WARN n=7 note=\"has space \\\"q\\\"\"",
};

TEST(table_text)
{
    struct lcc_output o = {.format = LCC_OUT_TEXT};
    char *s = capture_table(&o, stats_rows, 4);
    CHECK_EQ_STR(s, "level       n  note\n"
                    "DEBUG  750310  \n"
                    "ERROR      12  \n"
                    "INFO     4096  \n"
                    "WARN        7  has space \"q\"\n");
    free(s);
}

TEST(table_json_logfmt_raw)
{
    struct lcc_output o = {.format = LCC_OUT_JSON};
    char *s = capture_table(&o, stats_rows, 4);
    CHECK_EQ_STR(s, "{\"level\":\"DEBUG\",\"n\":750310}\n"
                    "{\"level\":\"ERROR\",\"n\":12}\n"
                    "{\"level\":\"INFO\",\"n\":4096}\n"
                    "{\"level\":\"WARN\",\"n\":7,\"note\":\"has space \\\"q\\\"\"}\n");
    free(s);
    o.format = LCC_OUT_LOGFMT;
    s = capture_table(&o, stats_rows, 4);
    CHECK_EQ_STR(s, "level=DEBUG n=750310\nlevel=ERROR n=12\nlevel=INFO n=4096\n"
                    "level=WARN n=7 note=\"has space \\\"q\\\"\"\n");
    free(s);
    o.format = LCC_OUT_RAW;
    s = capture_table(&o, stats_rows, 4);
    CHECK_EQ_STR(s, "level=DEBUG n=750310\nlevel=ERROR n=12\nlevel=INFO n=4096\n"
                    "level=WARN n=7 note=\"has space \\\"q\\\"\"\n");
    free(s);
}

/* A name with a space (a default column name like quantile(0.9, x)) comes quoted. */
TEST(table_quoted_names)
{
    static const char *const rows[] = {"\"quantile(0.9, x)\"=17 n=2",
                                       "\"quantile(0.9, x)\"=5 n=30"};
    CHECK(lcc_is_row(rows[0], strlen(rows[0])));
    CHECK(!lcc_is_row("\"open=1", 7));
    struct lcc_output o = {.format = LCC_OUT_JSON};
    char *s = capture_table(&o, rows, 2);
    CHECK_EQ_STR(s, "{\"quantile(0.9, x)\":17,\"n\":2}\n{\"quantile(0.9, x)\":5,\"n\":30}\n");
    free(s);
}

TEST(table_rows_and_errors)
{
    struct lcc_table *t = lcc_table_new();
    CHECK(lcc_is_row("level=ERROR n=3", 15));
    CHECK(lcc_is_row("_time=2026-12-07T00:00:00Z count=1", 34));
    CHECK(!lcc_is_row("12|ERROR|1700000000|a=b", 23));
    CHECK(!lcc_is_row("=x", 2));
    CHECK(!lcc_is_row("plain", 5));
    CHECK_EQ_INT(lcc_table_add(t, "a=\"unterminated", 15), -EPROTO);
    CHECK_EQ_INT(lcc_table_add(t, "a=1 =2", 6), -EPROTO);
    CHECK_EQ_INT(lcc_table_add(t, "a=1 b", 5), -EPROTO);
    CHECK_EQ_INT(lcc_table_add(t, "a= b=", 5), 0); /* empty values are values */
    lcc_table_free(t);
    lcc_table_free(NULL);
}

TEST(table_numbers_stay_json_numbers)
{
    static const char *const rows[] = {"k=inf v=1e3", "k=0x10 v=-2.5"};
    struct lcc_output o = {.format = LCC_OUT_JSON};
    char *s = capture_table(&o, rows, 2);
    CHECK_EQ_STR(s, "{\"k\":\"inf\",\"v\":1e3}\n{\"k\":\"0x10\",\"v\":-2.5}\n");
    free(s);
}

static char *capture_entry(const struct lcc_output *o, const char *json)
{
    char *buf = NULL;
    size_t len = 0;
    uint64_t id = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK_EQ_INT(lcc_print_json_entry(f, o, json, strlen(json), &id), 0);
    CHECK_EQ_INT(id, 42);
    fclose(f);
    return buf;
}

TEST(entry_formats)
{
    static const char obj[] = "{\"id\":42,\"ts\":\"2023-11-14T22:13:20.123Z\",\"ts_ms\":"
                              "1700000000123,\"level\":\"ERROR\",\"source\":\"10.0.0.1:5\","
                              "\"message\":\"disk \\\"sda\\\" full\"}";
    struct lcc_output o = {.format = LCC_OUT_TEXT, .utc = true};
    char *s = capture_entry(&o, obj);
    CHECK_EQ_STR(s, "2023-11-14 22:13:20.123 ERROR 10.0.0.1:5 disk \"sda\" full\n");
    free(s);
    o.color = true;
    s = capture_entry(&o, obj);
    CHECK_EQ_STR(s, "2023-11-14 22:13:20.123 \033[31mERROR\033[0m 10.0.0.1:5 disk \"sda\" full\n");
    free(s);
    o = (struct lcc_output){.format = LCC_OUT_LOGFMT, .utc = true};
    s = capture_entry(&o, obj);
    CHECK_EQ_STR(s, "ts=2023-11-14T22:13:20.123Z level=ERROR id=42 source=10.0.0.1:5 "
                    "msg=\"disk \\\"sda\\\" full\"\n");
    free(s);
    o.format = LCC_OUT_RAW;
    s = capture_entry(&o, obj);
    CHECK_EQ_STR(s, "42|ERROR|1700000000|disk \"sda\" full\n");
    free(s);
    o.format = LCC_OUT_JSON;
    s = capture_entry(&o, obj);
    CHECK(strncmp(s, obj, sizeof(obj) - 1) == 0 && s[sizeof(obj) - 1] == '\n');
    free(s);
    CHECK_EQ_INT(lcc_print_json_entry(stdout, &o, "{\"error\":\"x\"}", 13, &(uint64_t){0}),
                 -EPROTO);
    CHECK_EQ_INT(lcc_print_json_entry(stdout, &o, "not json", 8, &(uint64_t){0}), -EPROTO);
}

TEST(resolve_and_parse)
{
    struct lcc_output o = {0};
    enum lcc_format f;
    enum lcc_color c;
    lcc_output_resolve(&o, true, false);
    CHECK(o.format == LCC_OUT_TEXT && o.color);
    o = (struct lcc_output){0};
    lcc_output_resolve(&o, true, true); /* NO_COLOR */
    CHECK(o.format == LCC_OUT_TEXT && !o.color);
    o = (struct lcc_output){0};
    lcc_output_resolve(&o, false, false);
    CHECK(o.format == LCC_OUT_RAW && !o.color);
    o = (struct lcc_output){.format = LCC_OUT_TEXT, .color_opt = LCC_COLOR_ALWAYS};
    lcc_output_resolve(&o, false, true);
    CHECK(o.color);
    o = (struct lcc_output){.format = LCC_OUT_JSON, .color_opt = LCC_COLOR_ALWAYS};
    lcc_output_resolve(&o, true, false);
    CHECK(!o.color); /* Colour never goes into json. */
    CHECK_EQ_INT(lcc_parse_format("logfmt", &f), 0);
    CHECK_EQ_INT(f, LCC_OUT_LOGFMT);
    CHECK_EQ_INT(lcc_parse_format("yaml", &f), -EINVAL);
    CHECK_EQ_INT(lcc_parse_color("never", &c), 0);
    CHECK_EQ_INT(c, LCC_COLOR_NEVER);
    CHECK_EQ_INT(lcc_parse_color("yes", &c), -EINVAL);
}

TEST(host_and_duration)
{
    char h[64];
    int port = 9998;
    CHECK_EQ_INT(lcc_split_host("example.org", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "example.org");
    CHECK_EQ_INT(port, 9998);
    CHECK_EQ_INT(lcc_split_host("10.1.2.3:7000", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "10.1.2.3");
    CHECK_EQ_INT(port, 7000);
    CHECK_EQ_INT(lcc_split_host("[::1]:7001", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "::1");
    CHECK_EQ_INT(port, 7001);
    CHECK_EQ_INT(lcc_split_host("::1", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "::1");
    CHECK_EQ_INT(port, 7001);
    CHECK_EQ_INT(lcc_split_host("host:0", h, sizeof(h), &port), -EINVAL);
    CHECK_EQ_INT(lcc_split_host("host:x", h, sizeof(h), &port), -EINVAL);
    CHECK_EQ_INT(lcc_split_host(":80", h, sizeof(h), &port), -EINVAL);
    CHECK_EQ_INT(lcc_split_host("[::1", h, sizeof(h), &port), -EINVAL);
    CHECK(lcc_is_duration("15m") && lcc_is_duration("1h30m") && lcc_is_duration("250ms"));
    CHECK(!lcc_is_duration("15") && !lcc_is_duration("2024-01-02") && !lcc_is_duration("m"));
}

TEST(piped_queries)
{
    CHECK(lcc_has_pipe("* | stats by (level) count()"));
    CHECK(lcc_has_pipe("level:ERROR|top 5 (source)"));
    CHECK(lcc_has_pipe("\"a|b\" | stats count()"));
    CHECK(!lcc_has_pipe("\"a|b\""));
    CHECK(!lcc_has_pipe("/x|y/ disk"));
    CHECK(!lcc_has_pipe("(/x|y/i OR z)"));
    CHECK(!lcc_has_pipe("\"unterminated | x"));
    CHECK(!lcc_has_pipe("disk full"));
    CHECK(lcc_has_pipe("a/b | stats count()")); /* a '/' inside a word starts no regex */
}

int main(void)
{
    RUN(table_text);
    RUN(table_json_logfmt_raw);
    RUN(table_quoted_names);
    RUN(table_rows_and_errors);
    RUN(table_numbers_stay_json_numbers);
    RUN(entry_formats);
    RUN(resolve_and_parse);
    RUN(host_and_duration);
    RUN(piped_queries);
    return check_summary("client_output");
}
