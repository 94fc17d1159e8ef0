/* fuzz_http.c - arbitrary bytes through the HTTP request-head parser under a few limits, then
 * the chunked decoder over the rest (whole, and in pieces and in place with splits derived
 * from the input), the header lookups and the query and URL decoders. Checks the invariants
 * the HTTP module relies on: lengths within bounds, slices inside the input, an answer that
 * only depends on the bytes it covers, and decoded output never longer than its input.
 *
 * Self-contained (it needs only http_parse.c), so it also builds without the rest of src/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool inside(const char *s, size_t len, const char *p, size_t n)
{
    return s >= p && len <= n && (size_t)(s - p) <= n - len;
}

static bool is_status(long r)
{
    return r == -400 || r == -414 || r == -431 || r == -501 || r == -505;
}

/* A small generator seeded from the input, for the split points. */
static uint64_t seed_of(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n && i < 64; i++)
        h = (h ^ d[i]) * 1099511628211u;
    return h | 1;
}

static size_t next_split(uint64_t *s, size_t left)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    size_t k = 1 + (size_t)(*s % ((*s >> 32) % 4 ? 8 : 300));
    return k < left ? k : left;
}

/* Parse p[0..n) and check everything that must hold for any answer. */
static long parse_checked(const char *p, size_t n, size_t max_head, size_t max_target,
                          struct http_request *req)
{
    const char *err = "unset";
    long r = http_parse_head(p, n, max_head, max_target, req, &err);
    if (r < 0) {
        FUZZ_ASSERT(is_status(r));
        FUZZ_ASSERT(err && err[0]);
        if (r == -431 && n <= max_head)
            FUZZ_ASSERT(req->nheaders == HTTP_MAX_HEADERS); /* Too many fields, not bytes. */
        return r;
    }
    FUZZ_ASSERT(err == NULL);
    if (r == 0) {
        FUZZ_ASSERT(n <= max_head);
        return 0;
    }
    size_t h = (size_t)r;
    FUZZ_ASSERT(h <= n && h <= max_head);
    FUZZ_ASSERT(p[h - 1] == '\n');
    FUZZ_ASSERT(inside(req->method_str, req->method_len, p, h) && req->method_len > 0);
    FUZZ_ASSERT(req->method >= HTTP_GET && req->method <= HTTP_OTHER);
    FUZZ_ASSERT(inside(req->target, req->target_len, p, h));
    FUZZ_ASSERT(req->target_len >= 1 && req->target_len <= max_target);
    FUZZ_ASSERT(req->target[0] == '/' ||
                (req->target_len == 1 && req->target[0] == '*' && req->method == HTTP_OPTIONS));
    FUZZ_ASSERT(req->path == req->target && req->path_len <= req->target_len);
    FUZZ_ASSERT(memchr(req->path, '?', req->path_len) == NULL);
    if (req->query) {
        FUZZ_ASSERT(req->query == req->path + req->path_len + 1);
        FUZZ_ASSERT(req->path_len + 1 + req->query_len == req->target_len);
    } else {
        FUZZ_ASSERT(req->query_len == 0 && req->path_len == req->target_len);
    }
    for (size_t i = 0; i < req->target_len; i++)
        FUZZ_ASSERT(req->target[i] > ' ' && req->target[i] < 0x7f);
    FUZZ_ASSERT(req->version_minor == 0 || req->version_minor == 1);
    FUZZ_ASSERT(req->nheaders <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *hd = &req->headers[i];
        FUZZ_ASSERT(inside(hd->name, hd->name_len, p, h) && hd->name_len > 0);
        FUZZ_ASSERT(inside(hd->value, hd->value_len, p, h));
        FUZZ_ASSERT(memchr(hd->name, ':', hd->name_len) == NULL);
        if (hd->value_len) {
            unsigned char a = (unsigned char)hd->value[0];
            unsigned char z = (unsigned char)hd->value[hd->value_len - 1];
            FUZZ_ASSERT(a != ' ' && a != '\t' && z != ' ' && z != '\t');
        }
        for (size_t k = 0; k < hd->value_len; k++) {
            unsigned char c = (unsigned char)hd->value[k];
            FUZZ_ASSERT(c == '\t' || (c >= ' ' && c != 0x7f));
        }
    }
    FUZZ_ASSERT(!(req->chunked && req->has_length));
    FUZZ_ASSERT(!req->has_length || req->content_length <= (uint64_t)1 << 62);
    FUZZ_ASSERT(req->version_minor == 0 || req->has_host);
    FUZZ_ASSERT(!req->chunked || req->version_minor == 1);
    FUZZ_ASSERT(!req->expect_continue || req->version_minor == 1);
    return r;
}

/* Decode p[0..n) in pieces (the whole when seed is 0), in place or into a separate buffer.
 * Returns the bytes consumed or the error; the payload goes to payload, *plen its length. */
static long chunked_run(const char *p, size_t n, uint64_t seed, bool inplace, char *payload,
                        size_t *plen, bool *done)
{
    struct http_chunked st = {0};
    size_t off = 0;
    long ret = 0;
    *plen = 0;
    while (off < n && !st.done) {
        size_t take = seed ? next_split(&seed, n - off) : n - off;
        char *piece = malloc(take), *out = inplace ? piece : malloc(take);
        memcpy(piece, p + off, take);
        size_t m = (size_t)-1;
        long r = http_chunked_decode(&st, piece, take, out, &m);
        FUZZ_ASSERT(m <= take);
        memcpy(payload + *plen, out, m);
        *plen += m;
        free(piece);
        if (!inplace)
            free(out);
        if (r < 0) {
            FUZZ_ASSERT(r == -400);
            ret = r;
            break;
        }
        FUZZ_ASSERT((size_t)r <= take && m <= (size_t)r);
        FUZZ_ASSERT((size_t)r == take || st.done);
        off += (size_t)r;
    }
    if (ret == 0)
        ret = (long)off;
    FUZZ_ASSERT(*plen <= n);
    *done = st.done;
    return ret;
}

static void fuzz_chunked(const char *p, size_t n, uint64_t seed)
{
    char *whole = malloc(n + 1), *split = malloc(n + 1);
    size_t wl, sl;
    bool wd, sd;
    long rw = chunked_run(p, n, 0, false, whole, &wl, &wd);
    long rs = chunked_run(p, n, seed, true, split, &sl, &sd);
    /* The decoder's answer does not depend on how the bytes arrive. */
    FUZZ_ASSERT(rw == rs && wl == sl && wd == sd);
    FUZZ_ASSERT(memcmp(whole, split, wl) == 0);
    FUZZ_ASSERT(rw < 0 || (size_t)rw == n || wd);
    if (wd) /* Decoding what was consumed again gives the same body. */
        FUZZ_ASSERT(chunked_run(p, (size_t)rw, seed ^ 0x5555, false, split, &sl, &sd) == rw && sd &&
                    sl == wl && memcmp(whole, split, wl) == 0);
    free(whole);
    free(split);
}

static void check_param(const char *q, size_t qlen, const char *name)
{
    static const size_t caps[] = {0, 1, 4, 4096};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        size_t cap = caps[i];
        char *out = cap ? malloc(cap) : NULL;
        long r = http_query_param(q, qlen, name, out, cap);
        FUZZ_ASSERT(r >= -2);
        if (r >= 0) {
            FUZZ_ASSERT((size_t)r < cap && (size_t)r <= qlen && out[r] == '\0');
        } else if (cap) {
            FUZZ_ASSERT(out[0] == '\0');
        }
        free(out);
    }
}

static void fuzz_request(const char *p, const struct http_request *req, size_t head)
{
    /* Lookups: the first header of that name, whatever the case it was sent in. */
    for (size_t i = 0; i < req->nheaders; i++) {
        char name[64];
        const struct http_header *hd = &req->headers[i];
        if (hd->name_len >= sizeof(name))
            continue;
        for (size_t k = 0; k < hd->name_len; k++) {
            char c = hd->name[k];
            bool letter = (c | 32) >= 'a' && (c | 32) <= 'z';
            name[k] = k % 2 && letter ? (char)(c ^ 32) : c; /* Another case, same name. */
        }
        name[hd->name_len] = '\0';
        size_t len;
        const char *v = http_header(req, name, &len);
        FUZZ_ASSERT(v != NULL && inside(v, len, p, head));
        /* The first field of that name: this one or an earlier one. */
        FUZZ_ASSERT(v <= hd->value);
        if (v == hd->value)
            FUZZ_ASSERT(len == hd->value_len);
        http_list_has(hd->value, hd->value_len, "close");
        http_list_has(hd->value, hd->value_len, "chunked");
        FUZZ_ASSERT(!http_list_has(hd->value, hd->value_len, ""));
    }
    size_t len = 1;
    if (!http_header(req, "x-not-sent-by-the-fuzzer", &len))
        FUZZ_ASSERT(len == 0);

    /* The query: its first key, and a few fixed names. */
    if (req->query) {
        char key[64];
        size_t kl = 0;
        while (kl < req->query_len && kl < sizeof(key) - 1 && req->query[kl] != '=' &&
               req->query[kl] != '&')
            kl++;
        memcpy(key, req->query, kl);
        key[kl] = '\0';
        check_param(req->query, req->query_len, key);
        check_param(req->query, req->query_len, "q");
        check_param(req->query, req->query_len, "");
    }
    check_param(NULL, 0, "q");

    /* The path: decoded size never exceeds the encoded one, in place included. */
    char *path = malloc(req->path_len + 1);
    long r = http_url_decode(req->path, req->path_len, path, req->path_len + 1);
    FUZZ_ASSERT(r == -1 || ((size_t)r <= req->path_len && path[r] == '\0'));
    memcpy(path, req->path, req->path_len);
    long r2 = http_url_decode(path, req->path_len, path, req->path_len + 1);
    FUZZ_ASSERT(r2 == r);
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: a read past the end is caught. */
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    uint64_t seed = seed_of(data, size);
    struct http_request req;

    static const size_t limits[][2] = {{8192, 2048}, {64, 16}, {16, 64}, {1, 0}, {SIZE_MAX, 1}};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        parse_checked(p, size, limits[i][0], limits[i][1], &req);

    long r = parse_checked(p, size, SIZE_MAX, SIZE_MAX, &req);
    if (r != 0 && size) {
        /* A decided answer depends only on the bytes it covers: a longer input gives the same
         * answer (checked here as: a random prefix that decides agrees with the whole). */
        size_t k = (size_t)(seed % size);
        struct http_request pre;
        long rk = parse_checked(p, k, SIZE_MAX, SIZE_MAX, &pre);
        FUZZ_ASSERT(rk == 0 || rk == r);
        if (r > 0)
            FUZZ_ASSERT(parse_checked(p, (size_t)r - 1, SIZE_MAX, SIZE_MAX, &pre) == 0);
    }
    if (r > 0) {
        size_t head = (size_t)r;
        /* The head length never depends on what follows it. */
        FUZZ_ASSERT(parse_checked(p, head, SIZE_MAX, SIZE_MAX, &req) == r);
        FUZZ_ASSERT(parse_checked(p, head, head, SIZE_MAX, &req) == r);
        fuzz_request(p, &req, head);
        fuzz_chunked(p + head, size - head, seed);
    } else {
        fuzz_chunked(p, size, seed);
    }
    free(p);
    return 0;
}
