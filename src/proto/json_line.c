/* json_line.c - JSON log lines (see json_line.h). */
#include "proto/json_line.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "proto/json.h"
#include "query/qry.h"
#include "store/entry.h"

int json_line_looks(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i < len && line[i] == '{';
}

static bool key_is(const char *k, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(k, *names) == 0)
            return true;
    return false;
}

static const char *const msg_keys[] = {"message", "msg", "log", NULL};
static const char *const level_keys[] = {"level", "severity", "lvl", NULL};
static const char *const time_keys[] = {"ts", "time", "timestamp", "@timestamp", NULL};

/* Compact JSON of v (for object and array field values). */
static void put_json(struct buf *b, yajl_val v)
{
    if (YAJL_IS_STRING(v)) {
        json_str(b, v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_NUMBER(v)) {
        buf_append(b, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_OBJECT(v)) {
        buf_append(b, "{", 1);
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (i)
                buf_append(b, ",", 1);
            json_str(b, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            buf_append(b, ":", 1);
            put_json(b, v->u.object.values[i]);
        }
        buf_append(b, "}", 1);
    } else if (YAJL_IS_ARRAY(v)) {
        buf_append(b, "[", 1);
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i)
                buf_append(b, ",", 1);
            put_json(b, v->u.array.values[i]);
        }
        buf_append(b, "]", 1);
    } else if (YAJL_IS_TRUE(v)) {
        buf_append(b, "true", 4);
    } else if (YAJL_IS_FALSE(v)) {
        buf_append(b, "false", 5);
    } else {
        buf_append(b, "null", 4);
    }
}

/* A level from a name ("error", "Warning") or a syslog severity number (0 emerg .. 7 debug). */
static int level_of(yajl_val v)
{
    static const int by_severity[8] = {LC_FATAL, LC_FATAL, LC_FATAL, LC_ERROR,
                                       LC_WARN,  LC_INFO,  LC_INFO,  LC_DEBUG};
    if (YAJL_IS_STRING(v))
        return lc_level_parse(v->u.string, strlen(v->u.string));
    if (YAJL_IS_INTEGER(v) && v->u.number.i >= 0 && v->u.number.i <= 7)
        return by_severity[v->u.number.i];
    return -1;
}

/* Epoch seconds (< 1e11) or milliseconds. */
static int64_t epoch_ms(double x)
{
    return x < 1e11 ? (int64_t)(x * 1000.0) : (int64_t)x;
}

static int64_t time_of(yajl_val v)
{
    if (YAJL_IS_NUMBER(v) && (v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID) && v->u.number.d >= 0 &&
        v->u.number.d < 1e16)
        return epoch_ms(v->u.number.d);
    if (YAJL_IS_STRING(v)) {
        const char *s = v->u.string;
        size_t n = strlen(s);
        bool digits = n > 0 && n <= 16;
        for (size_t i = 0; digits && i < n; i++)
            digits = s[i] >= '0' && s[i] <= '9';
        if (digits)
            return epoch_ms(strtod(s, NULL));
        int64_t ms;
        char err[QRY_ERR_MAX];
        if (qry_parse_time(s, n, &ms, err) == 0)
            return ms;
    }
    return INT64_MIN;
}

static void put_field(struct buf *b, const char *key, yajl_val v)
{
    buf_printf(b, " %s=", key);
    if (YAJL_IS_STRING(v)) {
        const char *s = v->u.string;
        if (*s && !strpbrk(s, " \t\"")) {
            buf_append(b, s, strlen(s));
            return;
        }
    }
    put_json(b, v);
}

int json_line_parse(const char *line, size_t len, struct buf *out, struct json_line *jl, char *err,
                    size_t errcap)
{
    char stack[4096], *text = len < sizeof(stack) ? stack : malloc(len + 1);
    if (!text) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    memcpy(text, line, len);
    text[len] = 0;
    char yerr[160];
    yajl_val root = yajl_tree_parse(text, yerr, sizeof(yerr));
    if (text != stack)
        free(text);
    if (!root || !YAJL_IS_OBJECT(root)) {
        if (root)
            snprintf(err, errcap, "not a JSON object");
        else {
            /* yajl's message spans lines; keep its first. */
            yerr[strcspn(yerr, "\n")] = 0;
            snprintf(err, errcap, "invalid JSON: %s", yerr);
        }
        yajl_tree_free(root);
        return -1;
    }
    jl->level = -1;
    jl->ts_ms = INT64_MIN;
    jl->msg_off = out->end;
    yajl_val msg = NULL;
    size_t n = root->u.object.len;
    for (size_t i = 0; i < n; i++) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        if (!msg && key_is(k, msg_keys) && YAJL_IS_STRING(v))
            msg = v;
        else if (jl->level < 0 && key_is(k, level_keys) && level_of(v) >= 0)
            jl->level = level_of(v);
        else if (jl->ts_ms == INT64_MIN && key_is(k, time_keys) && time_of(v) != INT64_MIN)
            jl->ts_ms = time_of(v);
    }
    if (msg)
        buf_append(out, msg->u.string, strlen(msg->u.string));
    else
        buf_append(out, line, len);
    for (size_t i = 0; msg && i < n; i++) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        bool used = v == msg ||
                    (jl->level >= 0 && key_is(k, level_keys) && level_of(v) == jl->level) ||
                    (key_is(k, time_keys) && time_of(v) == jl->ts_ms && jl->ts_ms != INT64_MIN);
        if (!used)
            put_field(out, k, v);
    }
    jl->msg_len = out->end - jl->msg_off;
    yajl_tree_free(root);
    return 0;
}
