/* output.c - printing entries and piped-query rows for query and tail (see output.h).
 *
 * Text is what journalctl and logcli print: the local time with milliseconds, the level
 * padded to five columns (coloured on a terminal), the source and the message. The JSON
 * format passes the server's object through unchanged, so a script sees the API's fields. */
#include "client/output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#define TABLE_MAX_COLS 64 /* Columns of a piped query; more are an error. */

int lcc_parse_format(const char *s, enum lcc_format *f)
{
    static const char *const names[] = {"auto", "text", "json", "logfmt", "raw"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *f = (enum lcc_format)i;
            return 0;
        }
    return -EINVAL;
}

int lcc_parse_color(const char *s, enum lcc_color *c)
{
    if (strcmp(s, "auto") == 0)
        *c = LCC_COLOR_AUTO;
    else if (strcmp(s, "always") == 0)
        *c = LCC_COLOR_ALWAYS;
    else if (strcmp(s, "never") == 0)
        *c = LCC_COLOR_NEVER;
    else
        return -EINVAL;
    return 0;
}

void lcc_output_resolve(struct lcc_output *o, bool tty, bool no_color)
{
    if (o->format == LCC_OUT_AUTO)
        o->format = tty ? LCC_OUT_TEXT : LCC_OUT_RAW;
    o->color = o->format == LCC_OUT_TEXT && (o->color_opt == LCC_COLOR_ALWAYS ||
                                             (o->color_opt == LCC_COLOR_AUTO && tty && !no_color));
}

/* SGR colours by level, as journalctl's: errors red, warnings yellow, debug and trace dim. */
static const char *level_color(const char *level)
{
    if (!strcmp(level, "FATAL"))
        return "\033[1;31m";
    if (!strcmp(level, "ERROR"))
        return "\033[31m";
    if (!strcmp(level, "WARN"))
        return "\033[33m";
    if (!strcmp(level, "INFO"))
        return "\033[32m";
    return "\033[2m";
}

static void put_time(FILE *f, int64_t ts_ms, bool utc, bool iso)
{
    time_t sec = (time_t)(ts_ms >= 0 ? ts_ms / 1000 : (ts_ms - 999) / 1000);
    int ms = (int)(ts_ms - (int64_t)sec * 1000);
    struct tm tm;
    char b[64];

    if (utc)
        gmtime_r(&sec, &tm);
    else
        localtime_r(&sec, &tm);
    strftime(b, sizeof(b), iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "%s.%03d", b, ms);
    if (iso && utc) {
        fputc('Z', f);
    } else if (iso) {
        strftime(b, sizeof(b), "%z", &tm); /* +0100 -> +01:00 (RFC 3339) */
        fprintf(f, "%.3s:%s", b, b + 3);
    }
}

/* A logfmt value: bare when it has no space, '"', '=' or control byte, else quoted. */
static void put_logfmt_value(FILE *f, const char *s, size_t n)
{
    bool quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = (unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '=' || s[i] == '\\';
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < ' ')
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < ' ')
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void lcc_print_entry(FILE *f, const struct lcc_output *o, const struct lcc_entry *e)
{
    switch (o->format) {
    case LCC_OUT_AUTO:
    case LCC_OUT_TEXT:
        put_time(f, e->ts_ms, o->utc, false);
        if (o->color)
            fprintf(f, " %s%-5s\033[0m ", level_color(e->level), e->level);
        else
            fprintf(f, " %-5s ", e->level);
        if (e->source && *e->source)
            fprintf(f, "%s ", e->source);
        fwrite(e->message, 1, e->message_len, f);
        break;
    case LCC_OUT_JSON:
        fprintf(f, "{\"id\":%llu,\"ts\":\"", (unsigned long long)e->id);
        put_time(f, e->ts_ms, true, true);
        fprintf(f, "\",\"ts_ms\":%lld,\"level\":\"%s\",\"source\":", (long long)e->ts_ms, e->level);
        put_json_string(f, e->source ? e->source : "", e->source ? strlen(e->source) : 0);
        fputs(",\"message\":", f);
        put_json_string(f, e->message, e->message_len);
        fputs(e->truncated ? ",\"truncated\":true}" : "}", f);
        break;
    case LCC_OUT_LOGFMT:
        fputs("ts=", f);
        put_time(f, e->ts_ms, o->utc, true);
        fprintf(f, " level=%s id=%llu source=", e->level, (unsigned long long)e->id);
        put_logfmt_value(f, e->source ? e->source : "", e->source ? strlen(e->source) : 0);
        fputs(" msg=", f);
        put_logfmt_value(f, e->message, e->message_len);
        break;
    case LCC_OUT_RAW: {
        int64_t sec = e->ts_ms >= 0 ? e->ts_ms / 1000 : (e->ts_ms - 999) / 1000;
        fprintf(f, "%llu|%s|%lld|", (unsigned long long)e->id, e->level, (long long)sec);
        /* A line break inside a message would split the line; the query port never sends one
         * either (lines are single lines on ingest). */
        for (size_t i = 0; i < e->message_len; i++)
            fputc(e->message[i] == '\n' ? ' ' : e->message[i], f);
        break;
    }
    }
    fputc('\n', f);
}

int lcc_print_json_entry(FILE *f, const struct lcc_output *o, const char *json, size_t len,
                         uint64_t *id)
{
    static const char *p_id[] = {"id", NULL}, *p_ts[] = {"ts_ms", NULL}, *p_lv[] = {"level", NULL},
                      *p_src[] = {"source", NULL}, *p_msg[] = {"message", NULL},
                      *p_tr[] = {"truncated", NULL};
    char *copy = malloc(len + 1);
    yajl_val v, x;
    struct lcc_entry e = {0};
    int rc = -EPROTO;

    if (!copy)
        return -ENOMEM;
    memcpy(copy, json, len);
    copy[len] = '\0';
    v = yajl_tree_parse(copy, NULL, 0);
    if (!v)
        goto out;
    x = yajl_tree_get(v, p_id, yajl_t_number);
    if (!x || !YAJL_IS_INTEGER(x))
        goto out;
    e.id = (uint64_t)YAJL_GET_INTEGER(x);
    x = yajl_tree_get(v, p_ts, yajl_t_number);
    e.ts_ms = x && YAJL_IS_INTEGER(x) ? YAJL_GET_INTEGER(x) : 0;
    x = yajl_tree_get(v, p_lv, yajl_t_string);
    e.level = x ? YAJL_GET_STRING(x) : "INFO";
    x = yajl_tree_get(v, p_src, yajl_t_string);
    e.source = x ? YAJL_GET_STRING(x) : "";
    x = yajl_tree_get(v, p_msg, yajl_t_string);
    if (!x)
        goto out;
    e.message = YAJL_GET_STRING(x);
    e.message_len = strlen(e.message);
    e.truncated = yajl_tree_get(v, p_tr, yajl_t_true) != NULL;
    *id = e.id;
    if (o->format == LCC_OUT_JSON) {
        fwrite(json, 1, len, f); /* The server's object, field for field. */
        fputc('\n', f);
    } else {
        lcc_print_entry(f, o, &e);
    }
    rc = 0;
out:
    yajl_tree_free(v);
    free(copy);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Tables of piped-query rows. */

struct lcc_table {
    size_t ncols;
    char *cols[TABLE_MAX_COLS]; /* Column names, in the order first seen. */
    size_t width[TABLE_MAX_COLS];
    bool numeric[TABLE_MAX_COLS]; /* Every value so far is a number: right-aligned. */
    size_t nrows, cap;
    char ***cells; /* cells[row][col], NULL where a row has no such column. */
    char **raw;    /* The rows as received. */
};

struct lcc_table *lcc_table_new(void)
{
    return calloc(1, sizeof(struct lcc_table));
}

void lcc_table_free(struct lcc_table *t)
{
    if (!t)
        return;
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            free(t->cells[r][c]);
        free(t->cells[r]);
        free(t->raw[r]);
    }
    for (size_t c = 0; c < t->ncols; c++)
        free(t->cols[c]);
    free(t->cells);
    free(t->raw);
    free(t);
}

static bool name_char(char c)
{
    return c && c != '=' && c != ' ' && c != '"' && c != '|';
}

/* The end of a quoted word starting at s[0] == '"' (the byte after its closing quote), or
 * NULL when it does not close. */
static const char *skip_quoted(const char *s, const char *lim)
{
    for (s++; s < lim && *s != '"'; s++)
        if (*s == '\\' && s + 1 < lim)
            s++;
    return s < lim ? s + 1 : NULL;
}

bool lcc_is_row(const char *line, size_t len)
{
    const char *lim = line + len, *s = line;
    if (s < lim && *s == '"') /* A quoted name ("quantile(0.9, x)"). */
        s = skip_quoted(s, lim);
    else
        while (s < lim && name_char(*s))
            s++;
    return s && s > line && s < lim && *s == '=';
}

/* Parse one value at s (quoted or bare) into a malloc'd string; *end gets the byte after. */
static char *parse_value(const char *s, const char *lim, const char **end)
{
    char *out = malloc((size_t)(lim - s) + 1), *o = out;
    if (!out)
        return NULL;
    if (s < lim && *s == '"') {
        for (s++; s < lim && *s != '"'; s++) {
            if (*s == '\\' && s + 1 < lim)
                s++;
            *o++ = *s;
        }
        if (s >= lim) { /* No closing quote. */
            free(out);
            *end = NULL;
            return NULL;
        }
        s++;
    } else {
        while (s < lim && *s != ' ')
            *o++ = *s++;
    }
    *o = '\0';
    *end = s;
    return out;
}

static bool is_number(const char *s)
{
    char *e;
    if (!*s || strspn(s, "0123456789.-+eE") != strlen(s))
        return false; /* Not "inf", "nan" or hex: a JSON number must be printable as is. */
    strtod(s, &e);
    return *e == '\0';
}

int lcc_table_add(struct lcc_table *t, const char *line, size_t len)
{
    const char *s = line, *lim = line + len;
    char **row;

    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? 2 * t->cap : 16;
        char ***nc = realloc(t->cells, ncap * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        t->cells = nc;
        char **nr = realloc(t->raw, ncap * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        t->raw = nr;
        t->cap = ncap;
    }
    row = calloc(TABLE_MAX_COLS, sizeof(*row));
    if (!row)
        return -ENOMEM;
    while (s < lim) {
        const char *n0 = s, *end;
        char *qname = NULL;
        size_t c;
        if (*s == '"') { /* A quoted name: compare its unescaped text. */
            qname = parse_value(s, lim, &end);
            if (!qname)
                goto bad;
            s = end;
        } else {
            while (s < lim && name_char(*s))
                s++;
        }
        if (s == n0 || s >= lim || *s != '=') {
            free(qname);
            goto bad;
        }
        size_t nlen = qname ? strlen(qname) : (size_t)(s - n0);
        const char *nm = qname ? qname : n0;
        for (c = 0; c < t->ncols; c++)
            if (strlen(t->cols[c]) == nlen && !memcmp(t->cols[c], nm, nlen))
                break;
        if (c == t->ncols) {
            if (c == TABLE_MAX_COLS || !(t->cols[c] = strndup(nm, nlen))) {
                free(qname);
                goto bad;
            }
            t->width[c] = strlen(t->cols[c]);
            t->numeric[c] = true;
            t->ncols++;
        }
        free(qname);
        free(row[c]);
        row[c] = parse_value(s + 1, lim, &end);
        if (!row[c])
            goto bad;
        if (strlen(row[c]) > t->width[c])
            t->width[c] = strlen(row[c]);
        t->numeric[c] = t->numeric[c] && is_number(row[c]);
        s = end;
        if (s < lim && *s == ' ')
            s++;
    }
    t->raw[t->nrows] = strndup(line, len);
    if (!t->raw[t->nrows])
        goto bad;
    t->cells[t->nrows++] = row;
    return 0;
bad:
    for (size_t c = 0; c < TABLE_MAX_COLS; c++)
        free(row[c]);
    free(row);
    return -EPROTO;
}

void lcc_table_print(FILE *f, const struct lcc_output *o, const struct lcc_table *t)
{
    if (o->format == LCC_OUT_TEXT || o->format == LCC_OUT_AUTO) {
        for (size_t c = 0; c < t->ncols; c++) /* Headers aligned as their column. */
            fprintf(f, t->numeric[c] ? "%s%s%*s" : "%s%s%-*s", c ? "  " : "",
                    o->color ? "\033[1m" : "",
                    c + 1 < t->ncols || t->numeric[c] ? (int)t->width[c] : 0, t->cols[c]);
        fputs(o->color ? "\033[0m\n" : "\n", f);
    }
    for (size_t r = 0; r < t->nrows; r++) {
        if (o->format == LCC_OUT_RAW) {
            fprintf(f, "%s\n", t->raw[r]);
            continue;
        }
        bool first = true;
        if (o->format == LCC_OUT_JSON)
            fputc('{', f);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r][c];
            if (o->format == LCC_OUT_TEXT || o->format == LCC_OUT_AUTO) {
                int w = (int)t->width[c];
                if (t->numeric[c])
                    fprintf(f, "%s%*s", c ? "  " : "", w, v ? v : "");
                else
                    fprintf(f, "%s%-*s", c ? "  " : "", c + 1 < t->ncols ? w : 0, v ? v : "");
                continue;
            }
            if (!v)
                continue;
            if (o->format == LCC_OUT_JSON) {
                fputs(first ? "" : ",", f);
                put_json_string(f, t->cols[c], strlen(t->cols[c]));
                fputc(':', f);
                if (t->numeric[c])
                    fputs(v, f);
                else
                    put_json_string(f, v, strlen(v));
            } else {
                fprintf(f, "%s%s=", first ? "" : " ", t->cols[c]);
                put_logfmt_value(f, v, strlen(v));
            }
            first = false;
        }
        fputs(o->format == LCC_OUT_JSON ? "}\n" : "\n", f);
    }
}
