/* url.c - the client's settings from a logcaster:// url (see lc_open() in logcaster.h).
 *
 * The parser is strict: an unknown key, a number out of range or a stray character is an
 * error with a sentence naming it, so a typo never silently becomes a default. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc_internal.h"

#define SCHEME "logcaster://"

static int fail(char *err, size_t errlen, const char *fmt, const char *a, size_t alen)
{
    snprintf(err, errlen, fmt, (int)alen, a);
    return -EINVAL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape, an embedded NUL or no memory
 * (errno says which). */
static char *decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            int h = a < 0 || b < 0 ? -1 : a * 16 + b;
            if (h <= 0) { /* A bad escape, or %00. */
                free(out);
                errno = EINVAL;
                return NULL;
            }
            *o++ = (char)h;
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* A whole decimal number in [lo, hi]. */
static int number(const char *v, long long lo, long long hi, long long *out)
{
    if (!*v || !isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int set_key(struct lcl_cfg *cfg, const char *k, size_t klen, const char *v, char *err,
                   size_t errlen)
{
    static const struct {
        const char *name;
        long long lo, hi;
        int kind; /* 0 queue, 1 connections, 2 window, 3 connect timeout, 4 flush timeout */
    } nums[] = {
        {"queue", 1, 1LL << 28, 0},          {"connections", 1, 64, 1},
        {"window", 1, 1 << 20, 2},           {"connect_timeout_ms", 1, 3600000, 3},
        {"flush_timeout_ms", 0, 3600000, 4},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strlen(nums[i].name) != klen || memcmp(nums[i].name, k, klen) != 0)
            continue;
        long long x;
        if (number(v, nums[i].lo, nums[i].hi, &x) < 0) {
            snprintf(err, errlen, "%s must be a number from %lld to %lld, not '%.40s'",
                     nums[i].name, nums[i].lo, nums[i].hi, v);
            return -EINVAL;
        }
        switch (nums[i].kind) {
        case 0:
            cfg->queue = (size_t)x;
            break;
        case 1:
            cfg->connections = (int)x;
            break;
        case 2:
            cfg->window = (int)x;
            break;
        case 3:
            cfg->connect_timeout_ms = (int)x;
            break;
        default:
            cfg->flush_timeout_ms = (int)x;
        }
        return 0;
    }
    char **str = NULL;
    if (klen == 5 && memcmp(k, "token", 5) == 0)
        str = &cfg->token;
    else if (klen == 5 && memcmp(k, "spill", 5) == 0)
        str = &cfg->spill;
    if (str) {
        if (!*v || strlen(v) > (str == &cfg->token ? LCL_PAYLOAD : 4095))
            return fail(err, errlen, "%.*s must not be empty or too long", k, klen);
        free(*str);
        *str = strdup(v);
        return *str ? 0 : -ENOMEM;
    }
    if (klen == 7 && memcmp(k, "on_full", 7) == 0) {
        if (strcmp(v, "drop") == 0)
            cfg->on_full = LCL_DROP;
        else if (strcmp(v, "block") == 0)
            cfg->on_full = LCL_BLOCK;
        else if (strcmp(v, "spill") == 0)
            cfg->on_full = LCL_SPILL;
        else
            return fail(err, errlen, "on_full must be drop, block or spill, not '%.*s'", v,
                        strlen(v) > 40 ? 40 : strlen(v));
        return 0;
    }
    return fail(err, errlen, "unknown url parameter '%.*s'", k, klen > 40 ? 40 : klen);
}

static int parse_query(struct lcl_cfg *cfg, const char *q, int *on_full_set, char *err,
                       size_t errlen)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (n == 0) { /* "a=1&&b=2" or a trailing '&' */
            q++;
            continue;
        }
        if (!eq)
            return fail(err, errlen, "url parameter '%.*s' has no value", q, n > 40 ? 40 : n);
        char *v = decode(eq + 1, n - (size_t)(eq + 1 - q));
        if (!v) {
            if (errno == ENOMEM)
                return -ENOMEM;
            return fail(err, errlen, "bad %%-escape in the value of '%.*s'", q,
                        (size_t)(eq - q) > 40 ? 40 : (size_t)(eq - q));
        }
        if ((size_t)(eq - q) == 7 && memcmp(q, "on_full", 7) == 0)
            *on_full_set = 1;
        int rc = set_key(cfg, q, (size_t)(eq - q), v, err, errlen);
        free(v);
        if (rc < 0)
            return rc;
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

static int parse_hostport(struct lcl_cfg *cfg, const char *p, size_t n, char *err, size_t errlen)
{
    const char *host = p, *colon = NULL;
    size_t hlen;
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return fail(err, errlen, "unclosed '[' in host '%.*s'", p, n > 80 ? 80 : n);
        host = p + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < p + n) {
            if (close[1] != ':')
                return fail(err, errlen, "unexpected text after ']' in '%.*s'", p, n > 80 ? 80 : n);
            colon = close + 1;
        }
    } else {
        colon = memchr(p, ':', n);
        hlen = colon ? (size_t)(colon - p) : n;
    }
    if (hlen == 0 || hlen > 253)
        return fail(err, errlen, "%.*sthe url has no host (or a host over 253 bytes)", "", 0);
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '%')
            return fail(err, errlen, "bad character in host '%.*s'", host, hlen > 80 ? 80 : hlen);
    }
    cfg->host = strndup(host, hlen);
    if (!cfg->host)
        return -ENOMEM;
    if (colon) {
        size_t plen = (size_t)(p + n - colon - 1);
        char tmp[8];
        long long port;
        if (plen == 0 || plen >= sizeof tmp)
            return fail(err, errlen, "bad port '%.*s'", colon + 1, plen > 20 ? 20 : plen);
        memcpy(tmp, colon + 1, plen);
        tmp[plen] = '\0';
        if (number(tmp, 1, 65535, &port) < 0)
            return fail(err, errlen, "bad port '%.*s' (1..65535)", colon + 1, plen);
        snprintf(cfg->port, sizeof cfg->port, "%lld", port);
    }
    return 0;
}

int lcl_cfg_parse(const char *url, struct lcl_cfg *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->port, "9999");
    cfg->queue = 65536;
    cfg->on_full = LCL_DROP;
    cfg->connections = 1;
    cfg->window = 8192;
    cfg->connect_timeout_ms = 5000;
    cfg->flush_timeout_ms = 5000;
    err[0] = '\0';

    int rc = -EINVAL, on_full_set = 0;
    if (strncasecmp(url, SCHEME, strlen(SCHEME)) != 0) {
        fail(err, errlen, "the url must start with logcaster://, not '%.*s'", url,
             strlen(url) > 40 ? 40 : strlen(url));
        goto fail;
    }
    const char *p = url + strlen(SCHEME);
    size_t n = strcspn(p, "/?#");
    if ((rc = parse_hostport(cfg, p, n, err, errlen)) < 0)
        goto fail;
    p += n;
    if (*p == '/')
        p++;
    if (*p == '#' || (*p && *p != '?')) {
        rc = fail(err, errlen, "unexpected '%.*s' in the url (paths are not used)", p,
                  strlen(p) > 40 ? 40 : strlen(p));
        goto fail;
    }
    if (*p == '?' && (rc = parse_query(cfg, p + 1, &on_full_set, err, errlen)) < 0)
        goto fail;
    if (!on_full_set && cfg->spill)
        cfg->on_full = LCL_SPILL;
    if (cfg->on_full == LCL_SPILL && !cfg->spill) {
        rc = fail(err, errlen, "%.*son_full=spill needs spill=/path/file", "", 0);
        goto fail;
    }
    if (cfg->spill && cfg->on_full != LCL_SPILL) {
        rc = fail(err, errlen, "%.*sspill= needs on_full=spill (the default with spill=)", "", 0);
        goto fail;
    }
    if (!cfg->token) {
        const char *t = getenv("LOGCASTER_TOKEN");
        if (t && *t && strlen(t) <= LCL_PAYLOAD && !(cfg->token = strdup(t))) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    return 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    lcl_cfg_free(cfg);
    return rc;
}

void lcl_cfg_free(struct lcl_cfg *cfg)
{
    free(cfg->host);
    free(cfg->token);
    free(cfg->spill);
    cfg->host = cfg->token = cfg->spill = NULL;
}
