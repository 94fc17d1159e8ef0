/* util.c - pure helpers of the logcaster client (see util.h). No I/O, no globals. */
#include "client/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void lcc_argp_init(struct lcc_argp *p, int argc, char **argv, int first)
{
    memset(p, 0, sizeof(*p));
    p->argc = argc;
    p->argv = argv;
    p->i = first - 1;
}

bool lcc_argp_next(struct lcc_argp *p)
{
    for (;;) {
        if (p->i + 1 >= p->argc)
            return false;
        p->arg = p->argv[++p->i];
        if (!p->only_pos && strcmp(p->arg, "--") == 0) {
            p->only_pos = true;
            continue;
        }
        return true;
    }
}

bool lcc_argp_is_opt(const struct lcc_argp *p)
{
    return !p->only_pos && p->arg[0] == '-' && p->arg[1] != '\0';
}

bool lcc_argp_flag(struct lcc_argp *p, const char *name)
{
    return lcc_argp_is_opt(p) && strcmp(p->arg, name) == 0;
}

bool lcc_argp_value(struct lcc_argp *p, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (!lcc_argp_is_opt(p) || strncmp(p->arg, name, n) != 0)
        return false;
    if (p->arg[n] == '=') {
        *val = p->arg + n + 1;
        return true;
    }
    if (p->arg[n] != '\0')
        return false;
    if (p->i + 1 >= p->argc) {
        *val = NULL;
        if (!p->error) {
            p->error = "option needs a value";
            p->bad = p->arg;
        }
        return true;
    }
    *val = p->argv[++p->i];
    return true;
}

static void argp_fail(struct lcc_argp *p, const char *msg, const char *bad)
{
    if (!p->error) {
        p->error = msg;
        p->bad = bad;
    }
}

bool lcc_argp_global(struct lcc_argp *p, struct lcc_opts *o)
{
    const char *v;

    if (lcc_argp_value(p, "--host", &v)) {
        static char host[256];
        if (v && (!*v || lcc_split_host(v, host, sizeof(host), &o->query_port) < 0))
            argp_fail(p, "bad host (NAME, NAME:PORT or [IPV6]:PORT)", v);
        else if (v)
            o->host = host;
        return true;
    }
    if (lcc_argp_value(p, "--http-port", &v)) {
        if (v && lcc_parse_port(v, &o->http_port) < 0)
            argp_fail(p, "bad port number", v);
        return true;
    }
    if (lcc_argp_flag(p, "--tls")) {
        o->tls = true;
        return true;
    }
    if (lcc_argp_value(p, "--tls-ca", &v)) {
        if (v && !*v)
            argp_fail(p, "empty file name", p->arg);
        else if (v) {
            o->tls_ca = v;
            o->tls = true;
        }
        return true;
    }
    if (lcc_argp_value(p, "--log-port", &v)) {
        if (v && lcc_parse_port(v, &o->log_port) < 0)
            argp_fail(p, "bad port number", v);
        return true;
    }
    if (lcc_argp_value(p, "--query-port", &v)) {
        if (v && lcc_parse_port(v, &o->query_port) < 0)
            argp_fail(p, "bad port number", v);
        return true;
    }
    if (lcc_argp_value(p, "--token", &v)) {
        if (v && (!*v || strpbrk(v, " \r\n")))
            argp_fail(p, "bad token (no spaces)", v);
        else if (v)
            o->token = v;
        return true;
    }
    if (lcc_argp_value(p, "--timeout", &v)) {
        double s;
        if (v && (lcc_parse_seconds(v, 3600, &s) < 0 || s <= 0))
            argp_fail(p, "bad timeout (seconds, > 0)", v);
        else if (v)
            o->timeout_ms = (int)(s * 1000 + 0.5) > 0 ? (int)(s * 1000 + 0.5) : 1;
        return true;
    }
    return false;
}

int lcc_split_host(const char *s, char *out, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':'), *end = s + strlen(s);
    size_t n;

    if (s[0] == '[') { /* [v6] or [v6]:port */
        const char *rb = strchr(s, ']');
        if (!rb || rb == s + 1 || (rb[1] && (rb[1] != ':' || lcc_parse_port(rb + 2, port) < 0)))
            return -EINVAL;
        s++;
        end = rb;
    } else if (colon && colon == strchr(s, ':')) { /* exactly one colon: host:port */
        if (colon == s || lcc_parse_port(colon + 1, port) < 0)
            return -EINVAL;
        end = colon;
    } /* no colon: a name; several: a bare IPv6 address */
    n = (size_t)(end - s);
    if (n == 0 || n >= cap)
        return -EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

bool lcc_is_duration(const char *s)
{
    if (!isdigit((unsigned char)*s))
        return false;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
        if (s[0] == 'm' && s[1] == 's')
            s += 2;
        else if (*s && strchr("smhdw", *s))
            s++;
        else
            return false;
    }
    return true;
}

bool lcc_has_pipe(const char *expr)
{
    for (const char *s = expr; *s; s++) {
        if (*s == '"' || (*s == '/' && (s == expr || s[-1] == ' ' || s[-1] == '('))) {
            char close = *s; /* A phrase or a regex: skip to its end, past escapes. */
            for (s++; *s && *s != close; s++)
                if (*s == '\\' && s[1])
                    s++;
            if (!*s)
                return false;
        } else if (*s == '|') {
            return true;
        }
    }
    return false;
}

int lcc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !*s)
        return -EINVAL;
    for (const char *c = s; *c; c++) {
        if (*c == '_' && c != s) /* 2_000_000 reads better in scripts */
            continue;
        if (*c < '0' || *c > '9')
            return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int lcc_parse_seconds(const char *s, double max_s, double *out)
{
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end != '\0' || !(v >= 0) || v > max_s)
        return -EINVAL;
    *out = v;
    return 0;
}

int lcc_parse_port(const char *s, int *out)
{
    uint64_t v;
    int rc = lcc_parse_u64(s, 1, 65535, &v);

    if (rc < 0)
        return rc;
    *out = (int)v;
    return 0;
}

int lcc_reply_kind(const char *line, size_t len, uint64_t *id)
{
    if (len > 3 && memcmp(line, "OK|", 3) == 0) {
        uint64_t v = 0;
        size_t i;
        for (i = 3; i < len && line[i] >= '0' && line[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(line[i] - '0');
        if (i != len)
            return -1;
        if (id)
            *id = v;
        return 1;
    }
    if (len >= 5 && memcmp(line, "ERROR", 5) == 0)
        return 0;
    return -1;
}

int lcc_parse_tagged_count(const char *line, size_t len, const char *tag, uint64_t *n)
{
    size_t tl = strlen(tag), i;
    uint64_t v = 0;

    if (len <= tl || memcmp(line, tag, tl) != 0)
        return -EPROTO;
    for (i = tl; i < len; i++) {
        if (line[i] < '0' || line[i] > '9')
            return -EPROTO;
        if (v > (UINT64_MAX - 9) / 10)
            return -EPROTO;
        v = v * 10 + (uint64_t)(line[i] - '0');
    }
    *n = v;
    return 0;
}

size_t lcc_frame_size(const char *level, size_t len)
{
    return 4 + strlen(level) + 3 + len + 1; /* "LOG|" level "|-|" msg "\n" */
}

size_t lcc_frame_line(char *dst, const char *level, const char *msg, size_t len)
{
    size_t ll = strlen(level);
    char *p = dst;

    memcpy(p, "LOG|", 4);
    p += 4;
    memcpy(p, level, ll);
    p += ll;
    memcpy(p, "|-|", 3);
    p += 3;
    memcpy(p, msg, len);
    p += len;
    *p++ = '\n';
    return (size_t)(p - dst);
}

bool lcc_level_ok(const char *level)
{
    if (strcmp(level, "-") == 0)
        return true;
    if (!*level || strlen(level) > 16)
        return false;
    for (const char *c = level; *c; c++)
        if (!isalpha((unsigned char)*c))
            return false;
    return true;
}

double lcc_percentile(const double *sorted, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0;
    if (p <= 0)
        return sorted[0];
    /* Nearest rank: the smallest value with at least p% of the values at or below it. */
    double r = (p / 100.0) * (double)n;
    rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

char *lcc_join_args(int n, char **args)
{
    size_t len = 1;
    char *s, *p;

    for (int i = 0; i < n; i++)
        len += strlen(args[i]) + 1;
    s = malloc(len);
    if (!s)
        return NULL;
    p = s;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(args[i]);
        if (i > 0)
            *p++ = ' ';
        memcpy(p, args[i], l);
        p += l;
    }
    *p = '\0';
    return s;
}
