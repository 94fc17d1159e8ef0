/* output.h - how query and tail print what they get: entries in four formats (text, json,
 * logfmt, raw), level colours, and rows of piped queries (`stats`, `top`) as an aligned table.
 *
 * Pure formatting onto a FILE: tests/unit/test_client_output.c checks it on canned input. */
#ifndef LCC_OUTPUT_H
#define LCC_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/util.h"

enum lcc_format {
    LCC_OUT_AUTO,   /* text on a terminal, raw otherwise (chosen by lcc_output_resolve). */
    LCC_OUT_TEXT,   /* Local time with ms, level, source, message. */
    LCC_OUT_JSON,   /* One object per line, the HTTP API's fields. */
    LCC_OUT_LOGFMT, /* ts=... level=... source=... id=... msg="..." */
    LCC_OUT_RAW,    /* The query port's lines: <id>|<LEVEL>|<unix_ts>|<message>. */
};

enum lcc_color { LCC_COLOR_AUTO, LCC_COLOR_ALWAYS, LCC_COLOR_NEVER };

struct lcc_output {
    enum lcc_format format;
    enum lcc_color color_opt; /* As given; lcc_output_resolve sets color. */
    bool color;               /* Colour the levels. */
    bool utc;                 /* Times in UTC instead of the local zone. */
};

/* One entry as the HTTP API gives it. Strings are borrowed from the parsed object. */
struct lcc_entry {
    uint64_t id;
    int64_t ts_ms;
    const char *level;
    const char *source;
    const char *message;
    size_t message_len;
    bool truncated;
};

/* Parse --output and --color values. Return 0 or -EINVAL. */
int lcc_parse_format(const char *s, enum lcc_format *f);
int lcc_parse_color(const char *s, enum lcc_color *c);

/* Settle AUTO: the format is text when tty, else raw; colour when the format is text and
 * (always, or auto with tty and no_color false). no_color: NO_COLOR is set and non-empty. */
void lcc_output_resolve(struct lcc_output *o, bool tty, bool no_color);

/* Parse one entry object (the HTTP API's JSON, len bytes, not NUL-terminated) and print it in
 * o's format. json is printed verbatim in json format. Returns 0, or -EPROTO when the object
 * is not an entry (nothing printed); *id gets the entry's id. */
int lcc_print_json_entry(FILE *f, const struct lcc_output *o, const char *json, size_t len,
                         uint64_t *id);

/* Print one entry in o's format (json format builds the object). */
void lcc_print_entry(FILE *f, const struct lcc_output *o, const struct lcc_entry *e);

/* Rows of a piped query from the query port ("name=value name2=value2", values quoted with
 * \" and \\ escapes when they hold a space, '"' or '='). */
struct lcc_table;

struct lcc_table *lcc_table_new(void); /* NULL on ENOMEM. */
void lcc_table_free(struct lcc_table *t);

/* True if line reads as a row of name=value pairs (and not as an entry line id|LEVEL|...). */
bool lcc_is_row(const char *line, size_t len);

/* Add one row. Returns 0, -EPROTO for a malformed row, or -ENOMEM. */
int lcc_table_add(struct lcc_table *t, const char *line, size_t len);

/* Print the rows: text as an aligned table with a header (numbers right-aligned), json as one
 * object per row, logfmt as name=value lines, raw as the lines received. */
void lcc_table_print(FILE *f, const struct lcc_output *o, const struct lcc_table *t);

#endif
