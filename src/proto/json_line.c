/* json_line.c - JSON log lines (see json_line.h). */
#include "proto/json_line.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "base/entry.h"
#include "proto/json.h"
#include "query/qry.h"

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

/* One parse, no tree: yajl's callbacks record the top-level members (key, kind, value text) in
 * a per-thread scratch buffer; nested objects and arrays are written there as compact JSON
 * while they are parsed. The choice of message, level and time and the order of the fields
 * then work on that list exactly as they would on yajl's tree (a tree costs a malloc per
 * value, which made JSON the slowest input). Strings are taken up to a NUL byte, as C strings
 * of the tree would be. */
enum kind { K_STR, K_NUM, K_TRUE, K_FALSE, K_NULL, K_JSON };

struct member {
    size_t key_off, key_len, val_off, val_len; /* In the scratch buffer; NUL-terminated. */
    enum kind kind;
};

struct jparse {
    struct buf text;  /* Keys and values, each followed by a NUL. */
    struct member *m; /* Top-level members, in order. */
    size_t n, cap;
    int depth;        /* 0 before the root, 1 inside it. */
    bool root_object; /* The root is an object (and not a scalar or an array). */
    bool oom;
    unsigned char *first; /* Per nesting level below the root: no element written yet. */
    size_t first_cap;
};

static __thread struct jparse *tls_jp;

#define JP_KEEP (256 * 1024) /* Scratch bytes a thread keeps between lines. */

static size_t nul_len(const unsigned char *s, size_t n)
{
    const unsigned char *z = memchr(s, 0, n);
    return z ? (size_t)(z - s) : n;
}

/* Append to the scratch text; a failure is remembered and ends the parse. */
static void put(struct jparse *p, const void *s, size_t n)
{
    if (!p->oom && buf_append(&p->text, s, n) < 0)
        p->oom = true;
}

/* Append a string as JSON text. */
static void put_json_str(struct jparse *p, const char *s, size_t n)
{
    if (!p->oom && json_str(&p->text, s, n) < 0)
        p->oom = true;
}

/* Append bytes and a NUL; returns the offset. */
static size_t put0(struct jparse *p, const void *s, size_t n)
{
    size_t off = p->text.end;
    put(p, s, n);
    put(p, "", 1);
    return off;
}

/* Inside a nested value: a comma before every element but the first of its container. */
static void sep(struct jparse *p)
{
    if (p->depth < 2)
        return;
    if (!p->first[p->depth])
        put(p, ",", 1);
    p->first[p->depth] = 0;
}

/* A value at the top level becomes a member's value; deeper, it is JSON text. */
static int scalar(struct jparse *p, enum kind kind, const char *s, size_t n)
{
    if (p->depth == 0)
        return 1; /* A scalar root: not an object. */
    if (p->depth == 1) {
        struct member *m = &p->m[p->n - 1];
        m->kind = kind;
        m->val_off = put0(p, s, n);
        m->val_len = n;
        return !p->oom;
    }
    sep(p);
    if (kind == K_STR)
        put_json_str(p, s, n);
    else
        put(p, s, n);
    return !p->oom;
}

static int on_null(void *ctx)
{
    return scalar(ctx, K_NULL, "null", 4);
}

static int on_bool(void *ctx, int v)
{
    return scalar(ctx, v ? K_TRUE : K_FALSE, v ? "true" : "false", v ? 4 : 5);
}

static int on_number(void *ctx, const char *s, size_t n)
{
    return scalar(ctx, K_NUM, s, n);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    return scalar(ctx, K_STR, (const char *)s, nul_len(s, n));
}

static int open_container(struct jparse *p, char c)
{
    if (p->depth == 0) {
        p->depth = 1;
        p->root_object = c == '{';
        return p->root_object; /* An array root: not an object; stop at once. */
    }
    if (p->depth == 1) {
        struct member *m = &p->m[p->n - 1];
        m->kind = K_JSON;
        m->val_off = p->text.end;
    } else {
        sep(p);
    }
    p->depth++;
    if ((size_t)p->depth >= p->first_cap) {
        size_t cap = p->first_cap ? 2 * p->first_cap : 64;
        unsigned char *f = realloc(p->first, cap);
        if (!f) {
            p->oom = true;
            return 0;
        }
        p->first = f;
        p->first_cap = cap;
    }
    p->first[p->depth] = 1;
    put(p, &c, 1);
    return !p->oom;
}

static int close_container(struct jparse *p, char c)
{
    if (p->depth == 1) {
        p->depth = 0;
        return 1;
    }
    put(p, &c, 1);
    if (--p->depth == 1) {
        struct member *m = &p->m[p->n - 1];
        m->val_len = p->text.end - m->val_off;
        put0(p, "", 0); /* Its NUL. */
    }
    return !p->oom;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, '{');
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, '}');
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, '[');
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, ']');
}

static int on_key(void *ctx, const unsigned char *s, size_t n)
{
    struct jparse *p = ctx;
    n = nul_len(s, n);
    if (p->depth > 1) {
        sep(p);
        put_json_str(p, (const char *)s, n);
        put(p, ":", 1);
        p->first[p->depth] = 1; /* Its value needs no comma. */
        return !p->oom;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 32;
        struct member *m = realloc(p->m, cap * sizeof(*m));
        if (!m) {
            p->oom = true;
            return 0;
        }
        p->m = m;
        p->cap = cap;
    }
    struct member *m = &p->m[p->n++];
    m->key_off = put0(p, s, n);
    m->key_len = n;
    return !p->oom;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

static pthread_key_t jp_key;
static pthread_once_t jp_once = PTHREAD_ONCE_INIT;

static void jp_free(void *v)
{
    struct jparse *p = v;
    buf_free(&p->text);
    free(p->m);
    free(p->first);
    free(p);
}

static void jp_key_init(void)
{
    if (pthread_key_create(&jp_key, jp_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

/* This thread's parse state, emptied for a new line. */
static struct jparse *jp_get(void)
{
    struct jparse *p = tls_jp;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        pthread_once(&jp_once, jp_key_init);
        pthread_setspecific(jp_key, p);
        tls_jp = p;
    }
    buf_consume(&p->text, buf_len(&p->text));
    buf_shrink(&p->text, JP_KEEP); /* One huge line does not pin its memory for good. */
    p->n = 0;
    p->depth = 0;
    p->root_object = p->oom = false;
    return p;
}

static const char *key_of(const struct jparse *p, const struct member *m)
{
    return p->text.data + m->key_off;
}

static const char *val_of(const struct jparse *p, const struct member *m)
{
    return p->text.data + m->val_off;
}

/* A JSON number that is a whole long long, as yajl's tree decides it (sign and digits only,
 * no overflow). */
static bool as_integer(const char *s, long long *out)
{
    bool neg = *s == '-';
    s += neg;
    if (!*s)
        return false;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (unsigned long long)LLONG_MAX / 10)
            return false;
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > (unsigned long long)LLONG_MAX)
            return false;
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

/* A level from a name ("error", "Warning") or a syslog severity number (0 emerg .. 7 debug). */
static int level_of(const struct jparse *p, const struct member *m)
{
    static const int by_severity[8] = {LC_FATAL, LC_FATAL, LC_FATAL, LC_ERROR,
                                       LC_WARN,  LC_INFO,  LC_INFO,  LC_DEBUG};
    long long i;
    if (m->kind == K_STR)
        return lc_level_parse(val_of(p, m), m->val_len);
    if (m->kind == K_NUM && as_integer(val_of(p, m), &i) && i >= 0 && i <= 7)
        return by_severity[i];
    return -1;
}

/* Epoch seconds (< 1e11) or milliseconds. */
static int64_t epoch_ms(double x)
{
    return x < 1e11 ? (int64_t)(x * 1000.0) : (int64_t)x;
}

static int64_t time_of(const struct jparse *p, const struct member *m)
{
    const char *s = val_of(p, m);
    if (m->kind == K_NUM) {
        char *end = NULL;
        errno = 0;
        double d = strtod(s, &end);
        if (errno == 0 && end && *end == 0 && d >= 0 && d < 1e16)
            return epoch_ms(d);
        return INT64_MIN;
    }
    if (m->kind == K_STR) {
        size_t n = m->val_len;
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

/* " key=value": a string bare when it has no space, tab or quote, else as JSON. Returns 0 or
 * -ENOMEM. */
static int put_field(struct buf *b, const struct jparse *p, const struct member *m)
{
    if (buf_printf(b, " %s=", key_of(p, m)) < 0)
        return -ENOMEM;
    const char *v = val_of(p, m);
    if (m->kind == K_STR && !(*v && !strpbrk(v, " \t\"")))
        return json_str(b, v, m->val_len) < 0 ? -ENOMEM : 0;
    return buf_append(b, v, m->val_len);
}

int json_line_parse(const char *line, size_t len, struct buf *out, struct json_line *jl, char *err,
                    size_t errcap)
{
    struct jparse *p = jp_get();
    if (!p) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    size_t whole = len;
    len = nul_len((const unsigned char *)line, len); /* Parsed as a C string, as ever. */
    yajl_handle h = yajl_alloc(&callbacks, NULL, p);
    if (!h) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    yajl_config(h, yajl_allow_comments, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok || !p->root_object || p->oom) {
        if (p->oom) {
            snprintf(err, errcap, "out of memory");
        } else if (st == yajl_status_ok || (p->depth > 0 && !p->root_object)) {
            snprintf(err, errcap, "not a JSON object");
        } else {
            unsigned char *e = yajl_get_error(h, 1, (const unsigned char *)line, len);
            /* yajl's message spans lines; keep its first. */
            snprintf(err, errcap, "invalid JSON: %.*s", (int)strcspn((char *)e, "\n"), e);
            yajl_free_error(h, e);
        }
        yajl_free(h);
        return -1;
    }
    yajl_free(h);
    jl->level = -1;
    jl->ts_ms = INT64_MIN;
    jl->msg_off = out->end;
    const struct member *msg = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const struct member *m = &p->m[i];
        const char *k = key_of(p, m);
        if (!msg && key_is(k, msg_keys) && m->kind == K_STR)
            msg = m;
        else if (jl->level < 0 && key_is(k, level_keys) && level_of(p, m) >= 0)
            jl->level = level_of(p, m);
        else if (jl->ts_ms == INT64_MIN && key_is(k, time_keys) && time_of(p, m) != INT64_MIN)
            jl->ts_ms = time_of(p, m);
    }
    int rc = msg ? buf_append(out, val_of(p, msg), msg->val_len) : buf_append(out, line, whole);
    for (size_t i = 0; msg && i < p->n && rc == 0; i++) {
        const struct member *m = &p->m[i];
        const char *k = key_of(p, m);
        bool used = m == msg ||
                    (jl->level >= 0 && key_is(k, level_keys) && level_of(p, m) == jl->level) ||
                    (key_is(k, time_keys) && time_of(p, m) == jl->ts_ms && jl->ts_ms != INT64_MIN);
        if (!used)
            rc = put_field(out, p, m);
    }
    if (rc < 0) {
        out->end = jl->msg_off;
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    jl->msg_len = out->end - jl->msg_off;
    return 0;
}
