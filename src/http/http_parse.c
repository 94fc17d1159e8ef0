/* http_parse.c - the strict HTTP/1.1 request-head parser, the chunked body decoder and the
 * query-string helpers declared in http_parse.h.
 *
 * http_parse_head is stateless: it parses the whole buffer again on every call, like
 * picohttpparser, so the caller keeps no parser state between reads. The head is bounded by
 * max_head (a few KiB), which bounds the cost of parsing it again. It reports an error as soon
 * as the bytes seen so far cannot begin a valid head, so every prefix of a valid head returns
 * 0 and a bad request is refused without waiting for the rest of it.
 *
 * Choices where the header leaves room (each is tested in tests/unit/test_http_parse.c):
 *   - Two Content-Length headers are refused (-400) even when their values are equal, as the
 *     header's "duplicate or conflicting" says; a list value such as "5, 5" is not digits and
 *     is refused too. A second Host header is refused as RFC 9112 3.2 requires.
 *   - Transfer-Encoding is checked once the head is complete, so the answer does not depend
 *     on the order of the headers: with Content-Length it is -400, in an HTTP/1.0 request it
 *     is -400 (RFC 9112 6.1: the framing is faulty), and any value other than one "chunked"
 *     (including two Transfer-Encoding headers) is -501.
 *   - The request-target accepts the visible ASCII bytes 0x21..0x7e, without checking the
 *     finer URI grammar (clients send `{`, `"` or `|` unencoded in queries); bytes >= 0x80 are
 *     refused, since a request-target is ASCII. "*" is accepted only with OPTIONS.
 *   - A version "HTTP/1.2" or "HTTP/2.0" is -505, as the header lists; a malformed version
 *     ("HTTP/1.10", "http/1.1") is -400.
 *   - "Expect: 100-continue" is ignored in HTTP/1.0 requests (RFC 9110 10.1.1).
 *   - The chunked decoder requires CRLF line ends (a bare LF is -400, unlike in the head):
 *     lenient chunk-line ends are a known request-smuggling vector. It also bounds the whole
 *     trailer section to CHUNK_TRAILER_MAX bytes, since trailers produce no payload that a
 *     caller's body limit would count.
 *   - The percent decoders accept "%00" and write a NUL byte: the returned length is the
 *     value's length, not strlen(out). */
#include "http/http_parse.h"

#include <string.h>

#define CL_MAX            ((uint64_t)1 << 62) /* Largest Content-Length and chunk size. */
#define CHUNK_LINE_MAX    1024                /* Longest chunk size or trailer line. */
#define CHUNK_TRAILER_MAX 8192                /* Longest trailer section, all lines. */

/* Byte classes, one bit each. */
enum {
    C_TCHAR = 1,  /* RFC 9110 token character. */
    C_TARGET = 2, /* Allowed in a request-target: visible ASCII. */
    C_FIELD = 4,  /* Allowed in a field value: HTAB, SP, VCHAR, obs-text. */
    C_HEX = 8,    /* Hexadecimal digit. */
};

#define TCH (C_TCHAR | C_TARGET | C_FIELD)
#define VIS (C_TARGET | C_FIELD)
static const unsigned char cls[256] = {
    ['\t'] = C_FIELD,    [' '] = C_FIELD,
    ['!'] = TCH,         ['"'] = VIS,
    ['#'] = TCH,         ['$'] = TCH,
    ['%'] = TCH,         ['&'] = TCH,
    ['\''] = TCH,        ['('] = VIS,
    [')'] = VIS,         ['*'] = TCH,
    ['+'] = TCH,         [','] = VIS,
    ['-'] = TCH,         ['.'] = TCH,
    ['/'] = VIS,         ['0' ... '9'] = TCH | C_HEX,
    [':'] = VIS,         [';'] = VIS,
    ['<'] = VIS,         ['='] = VIS,
    ['>'] = VIS,         ['?'] = VIS,
    ['@'] = VIS,         ['A' ... 'F'] = TCH | C_HEX,
    ['G' ... 'Z'] = TCH, ['['] = VIS,
    ['\\'] = VIS,        [']'] = VIS,
    ['^'] = TCH,         ['_'] = TCH,
    ['`'] = TCH,         ['a' ... 'f'] = TCH | C_HEX,
    ['g' ... 'z'] = TCH, ['{'] = VIS,
    ['|'] = TCH,         ['}'] = VIS,
    ['~'] = TCH,         [0x80 ... 0xff] = C_FIELD,
};
#undef TCH
#undef VIS

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* True when p[0..n) equals the lower-case literal s, ignoring ASCII case. */
static bool ieq(const char *p, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || lower((unsigned char)p[i]) != (unsigned char)s[i])
            return false;
    return s[n] == '\0';
}

static int hexval(unsigned char c)
{
    if (c <= '9')
        return c - '0';
    return lower(c) - 'a' + 10;
}

static const struct {
    const char *name;
    size_t len;
    enum http_method m;
} methods[] = {
    {"GET", 3, HTTP_GET},     {"HEAD", 4, HTTP_HEAD},     {"POST", 4, HTTP_POST},
    {"PUT", 3, HTTP_PUT},     {"DELETE", 6, HTTP_DELETE}, {"OPTIONS", 7, HTTP_OPTIONS},
    {"PATCH", 5, HTTP_PATCH},
};

/* Methods are case-sensitive (RFC 9110 9.1): "get" is a valid token we do not implement. */
static enum http_method method_of(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].len == n && memcmp(methods[i].name, p, n) == 0)
            return methods[i].m;
    return HTTP_OTHER;
}

/* What the header fields seen so far say; folded into the request once the head is whole. */
struct head_state {
    unsigned te_count; /* Transfer-Encoding fields. */
    bool te_other;     /* One of them is not exactly "chunked". */
    bool conn_close, conn_keep_alive, expect;
};

/* Apply one header field to req and hs. Returns 0 or a negative status, with *err set. */
static int apply_header(struct http_request *req, struct head_state *hs,
                        const struct http_header *h, const char **err)
{
    const char *v = h->value;
    size_t vl = h->value_len;
    switch (h->name_len) {
    case 4:
        if (ieq(h->name, 4, "host")) {
            if (req->has_host) {
                *err = "duplicate Host";
                return -400;
            }
            req->has_host = true;
        }
        break;
    case 6:
        if (ieq(h->name, 6, "expect") && ieq(v, vl, "100-continue"))
            hs->expect = true;
        break;
    case 10:
        if (ieq(h->name, 10, "connection")) {
            hs->conn_close |= http_list_has(v, vl, "close");
            hs->conn_keep_alive |= http_list_has(v, vl, "keep-alive");
        }
        break;
    case 14:
        if (ieq(h->name, 14, "content-length")) {
            if (req->has_length) {
                *err = "duplicate Content-Length";
                return -400;
            }
            uint64_t x = 0;
            if (vl == 0) {
                *err = "empty Content-Length";
                return -400;
            }
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    *err = "Content-Length is not a number";
                    return -400;
                }
                uint64_t d = (uint64_t)(v[i] - '0');
                if (x > (CL_MAX - d) / 10) { /* Before x * 10 + d can pass 2^62 or wrap. */
                    *err = "Content-Length too large";
                    return -400;
                }
                x = x * 10 + d;
            }
            req->has_length = true;
            req->content_length = x;
        }
        break;
    case 17:
        if (ieq(h->name, 17, "transfer-encoding")) {
            hs->te_count++;
            if (!ieq(v, vl, "chunked"))
                hs->te_other = true;
        }
        break;
    }
    return 0;
}

/* A line end at p[*i] (CRLF or LF) within p[0..end): 1 and *i past it, 0 when p ends first,
 * -1 when it is not a line end. */
static int line_end(const unsigned char *p, size_t end, size_t *i)
{
    if (*i == end)
        return 0;
    if (p[*i] == '\n') {
        (*i)++;
        return 1;
    }
    if (p[*i] != '\r')
        return -1;
    if (*i + 1 == end)
        return 0;
    if (p[*i + 1] != '\n')
        return -1;
    *i += 2;
    return 1;
}

long http_parse_head(const char *buf, size_t n, size_t max_head, size_t max_target,
                     struct http_request *req, const char **err)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t end = n < max_head ? n : max_head; /* Bytes past max_head are never looked at. */
    size_t i = 0;
    const char *why = NULL;
    int status = -400, r;
    struct head_state hs = {0};

    req->nheaders = 0;
    req->chunked = req->has_length = req->keep_alive = false;
    req->expect_continue = req->has_host = false;
    req->content_length = 0;
    req->query = NULL;
    req->query_len = 0;

    /* Empty lines before the request line are skipped (RFC 9112 2.2). */
    while ((r = line_end(p, end, &i)) == 1)
        continue;
    if (r == 0)
        goto more;

    /* method SP */
    size_t m0 = i;
    while (i < end && (cls[p[i]] & C_TCHAR))
        i++;
    if (i == end)
        goto more;
    if (i == m0 || p[i] != ' ') {
        why = "malformed method";
        goto fail;
    }
    req->method_str = buf + m0;
    req->method_len = i - m0;
    req->method = method_of(req->method_str, req->method_len);
    i++;

    /* request-target SP: origin-form or "*". */
    size_t t0 = i, q = 0; /* q: offset of the first '?', 0 for none (t0 > 0). */
    if (i == end)
        goto more;
    if (p[i] != '/' && p[i] != '*') {
        why = "request-target is not origin-form";
        goto fail;
    }
    for (; i < end && (cls[p[i]] & C_TARGET); i++) {
        if (i - t0 >= max_target) {
            why = "request-target too long";
            status = -414;
            goto fail;
        }
        if (p[i] == '?' && !q)
            q = i;
    }
    if (i == end)
        goto more;
    if (p[i] != ' ') {
        why = "invalid byte in request-target";
        goto fail;
    }
    req->target = buf + t0;
    req->target_len = i - t0;
    if (p[t0] == '*' && (req->target_len != 1 || req->method != HTTP_OPTIONS)) {
        why = "'*' is only an OPTIONS target";
        goto fail;
    }
    req->path = req->target;
    req->path_len = (q ? q : i) - t0;
    if (q) {
        req->query = buf + q + 1;
        req->query_len = i - q - 1;
    }
    i++;

    /* HTTP-version line-end */
    static const char proto[] = "HTTP/d.d";
    for (size_t k = 0; k < sizeof(proto) - 1; k++, i++) {
        if (i == end)
            goto more;
        bool ok = proto[k] == 'd' ? p[i] >= '0' && p[i] <= '9' : p[i] == proto[k];
        if (!ok) {
            why = "malformed HTTP version";
            goto fail;
        }
    }
    int major = p[i - 3] - '0', minor = p[i - 1] - '0';
    if ((r = line_end(p, end, &i)) <= 0) {
        if (r == 0)
            goto more;
        why = "malformed request line";
        goto fail;
    }
    if (major != 1 || minor > 1) {
        why = "HTTP version not supported";
        status = -505;
        goto fail;
    }
    req->version_minor = minor;

    /* field-line CRLF, until the empty line. */
    for (;;) {
        if (i == end)
            goto more;
        if (p[i] == '\r' || p[i] == '\n') {
            if ((r = line_end(p, end, &i)) == 0)
                goto more;
            if (r < 0) {
                why = "malformed end of head";
                goto fail;
            }
            break;
        }
        if (req->nheaders == HTTP_MAX_HEADERS) {
            why = "too many header fields";
            status = -431;
            goto fail;
        }
        size_t n0 = i;
        while (i < end && (cls[p[i]] & C_TCHAR))
            i++;
        if (i == end)
            goto more;
        if (i == n0 || p[i] != ':') {
            /* Also a line folded onto the previous one (obs-fold), or SP before the colon. */
            why = "malformed header field name";
            goto fail;
        }
        size_t n1 = i++;
        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t v0 = i;
        while (i < end && (cls[p[i]] & C_FIELD))
            i++;
        size_t v1 = i;
        while (v1 > v0 && (p[v1 - 1] == ' ' || p[v1 - 1] == '\t'))
            v1--;
        if ((r = line_end(p, end, &i)) <= 0) {
            if (r == 0)
                goto more;
            why = "invalid byte in header field value";
            goto fail;
        }
        struct http_header *h = &req->headers[req->nheaders++];
        h->name = buf + n0;
        h->name_len = n1 - n0;
        h->value = buf + v0;
        h->value_len = v1 - v0;
        int st = apply_header(req, &hs, h, &why);
        if (st < 0) {
            status = st;
            goto fail;
        }
    }

    /* The head is whole: the checks that depend on more than one field. */
    if (hs.te_count) {
        if (req->has_length) {
            why = "both Content-Length and Transfer-Encoding";
            goto fail;
        }
        if (minor == 0) {
            why = "Transfer-Encoding in an HTTP/1.0 request";
            goto fail;
        }
        if (hs.te_count > 1 || hs.te_other) {
            why = "unsupported transfer coding";
            status = -501;
            goto fail;
        }
        req->chunked = true;
    }
    if (minor == 1 && !req->has_host) {
        why = "missing Host";
        goto fail;
    }
    req->keep_alive = !hs.conn_close && (minor == 1 || hs.conn_keep_alive);
    req->expect_continue = hs.expect && minor == 1;
    if (err)
        *err = NULL;
    return (long)i;

more:
    if (n > max_head) {
        why = "request head too large";
        status = -431;
        goto fail;
    }
    if (err)
        *err = NULL;
    return 0;

fail:
    if (err)
        *err = why;
    return status;
}

const char *http_header(const struct http_request *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len != nl)
            continue;
        size_t k = 0;
        while (k < nl && lower((unsigned char)h->name[k]) == lower((unsigned char)name[k]))
            k++;
        if (k == nl) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}

bool http_list_has(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    if (tl == 0)
        return false;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',' && v[i] != ';')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl) {
            size_t k = 0;
            while (k < tl && lower((unsigned char)v[s + k]) == lower((unsigned char)token[k]))
                k++;
            if (k == tl)
                return true;
        }
        /* Skip the parameters to the next ',', which a quoted-string may contain. */
        bool quoted = false;
        for (; i < len; i++) {
            if (quoted) {
                if (v[i] == '\\')
                    i++;
                else if (v[i] == '"')
                    quoted = false;
            } else if (v[i] == '"') {
                quoted = true;
            } else if (v[i] == ',') {
                break;
            }
        }
        i++;
    }
    return false;
}

/* Chunked decoder states; the zero state expects the first digit of a chunk size. */
enum {
    CH_SIZE0,    /* First hex digit of a chunk size. */
    CH_SIZE,     /* More hex digits, BWS, ';' or CR. */
    CH_SIZE_BWS, /* Whitespace after the size: only BWS before a ';' may follow. */
    CH_EXT,      /* A chunk extension, ignored up to the CR. */
    CH_SIZE_LF,  /* The LF that ends the size line. */
    CH_DATA,     /* st->remaining payload bytes. */
    CH_DATA_CR,  /* The CRLF after the payload. */
    CH_DATA_LF,  /* */
    CH_TR_START, /* Start of a trailer line: a field name or the final CRLF. */
    CH_TR_NAME,  /* Field name up to ':'. */
    CH_TR_VALUE, /* Field value up to CR. */
    CH_TR_LF,    /* The LF that ends a trailer field line. */
    CH_END_LF,   /* The LF of the final empty line. */
    CH_DONE,     /* The body is complete. */
    CH_ERROR,    /* A previous call failed; every later call fails too. */
};

long http_chunked_decode(struct http_chunked *st, const char *in, size_t n, char *out,
                         size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;

    while (i < n && st->state != CH_DONE) {
        if (st->state == CH_DATA) {
            /* The bulk of the body: memmove because out may be in (o <= i always). */
            size_t take = n - i;
            if (take > st->remaining)
                take = (size_t)st->remaining;
            memmove(out + o, in + i, take);
            o += take;
            i += take;
            st->remaining -= take;
            if (st->remaining == 0)
                st->state = CH_DATA_CR;
            continue;
        }
        unsigned char c = p[i++];
        switch (st->state) {
        case CH_SIZE0:
            if (!(cls[c] & C_HEX))
                goto fail;
            st->remaining = (uint64_t)hexval(c);
            st->line_len = 1;
            st->state = CH_SIZE;
            continue; /* Counted already. */
        case CH_SIZE:
            if (cls[c] & C_HEX) {
                if (st->remaining > CL_MAX >> 4)
                    goto fail;
                st->remaining = st->remaining << 4 | (uint64_t)hexval(c);
                if (st->remaining > CL_MAX)
                    goto fail;
            } else if (c == ';') {
                st->state = CH_EXT;
            } else if (c == ' ' || c == '\t') {
                st->state = CH_SIZE_BWS;
            } else if (c == '\r') {
                st->state = CH_SIZE_LF;
                continue;
            } else {
                goto fail;
            }
            break;
        case CH_SIZE_BWS:
            if (c == ';')
                st->state = CH_EXT;
            else if (c != ' ' && c != '\t')
                goto fail;
            break;
        case CH_EXT:
            if (c == '\r') {
                st->state = CH_SIZE_LF;
                continue;
            }
            if (!(cls[c] & C_FIELD))
                goto fail;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                goto fail;
            st->line_len = 0;
            /* In the trailer section, remaining counts its bytes instead. */
            st->state = st->remaining ? CH_DATA : CH_TR_START;
            continue;
        case CH_DATA_CR:
            if (c != '\r')
                goto fail;
            st->state = CH_DATA_LF;
            continue;
        case CH_DATA_LF:
            if (c != '\n')
                goto fail;
            st->state = CH_SIZE0;
            continue;
        case CH_TR_START:
            if (c == '\r') {
                st->state = CH_END_LF;
                continue;
            }
            if (!(cls[c] & C_TCHAR)) /* Also SP or HTAB: obs-fold. */
                goto fail;
            st->state = CH_TR_NAME;
            break;
        case CH_TR_NAME:
            if (c == ':')
                st->state = CH_TR_VALUE;
            else if (!(cls[c] & C_TCHAR))
                goto fail;
            break;
        case CH_TR_VALUE:
            if (c == '\r') {
                st->state = CH_TR_LF;
                continue;
            }
            if (!(cls[c] & C_FIELD))
                goto fail;
            break;
        case CH_TR_LF:
            if (c != '\n')
                goto fail;
            st->line_len = 0;
            st->state = CH_TR_START;
            continue;
        case CH_END_LF:
            if (c != '\n')
                goto fail;
            st->state = CH_DONE;
            st->done = true;
            continue;
        default: /* CH_ERROR, or a state the caller damaged. */
            goto fail;
        }
        /* A byte of a size, extension or trailer line (CR and LF are not counted). */
        if (++st->line_len > CHUNK_LINE_MAX)
            goto fail;
        if (st->state >= CH_TR_START && ++st->remaining > CHUNK_TRAILER_MAX)
            goto fail;
    }
    *out_len = o;
    return (long)i;

fail:
    st->state = CH_ERROR;
    *out_len = o;
    return -400;
}

/* Percent-decode p[0..n) into out[0..cap), NUL-terminated, with '+' as a space when plus.
 * Returns the length, or -1 for a bad escape or when the value and its NUL do not fit. */
static long pct_decode(const char *p, size_t n, char *out, size_t cap, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (n - i < 3 || !(cls[(unsigned char)p[i + 1]] & C_HEX) ||
                !(cls[(unsigned char)p[i + 2]] & C_HEX))
                goto fail;
            c = (unsigned char)(hexval((unsigned char)p[i + 1]) << 4 |
                                hexval((unsigned char)p[i + 2]));
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (o + 1 >= cap)
            goto fail;
        out[o++] = (char)c;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (long)o;

fail:
    if (cap)
        out[0] = '\0';
    return -1;
}

/* True when the query key p[0..n), decoded ('+' and %XX), equals name. A key with a bad
 * escape equals nothing. */
static bool key_is(const char *p, size_t n, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++, k++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (n - i < 3 || !(cls[(unsigned char)p[i + 1]] & C_HEX) ||
                !(cls[(unsigned char)p[i + 2]] & C_HEX))
                return false;
            c = (unsigned char)(hexval((unsigned char)p[i + 1]) << 4 |
                                hexval((unsigned char)p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (!name[k] || (unsigned char)name[k] != c)
            return false;
    }
    return name[k] == '\0';
}

long http_query_param(const char *query, size_t len, const char *name, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!query)
        return -1;
    size_t i = 0;
    while (i < len) {
        const char *s = query + i, *amp = memchr(s, '&', len - i);
        size_t pl = amp ? (size_t)(amp - s) : len - i;
        i += pl + 1;
        if (pl == 0)
            continue; /* "a=1&&b=2" */
        const char *eq = memchr(s, '=', pl);
        size_t kl = eq ? (size_t)(eq - s) : pl;
        if (!key_is(s, kl, name))
            continue;
        if (!eq)
            return cap ? 0 : -2;
        long r = pct_decode(eq + 1, pl - kl - 1, out, cap, true);
        return r < 0 ? -2 : r;
    }
    return -1;
}

long http_url_decode(const char *p, size_t n, char *out, size_t cap)
{
    return pct_decode(p, n, out, cap, false);
}
