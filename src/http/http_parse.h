/* http_parse.h - a strict, incremental HTTP/1.1 request parser: the request head, chunked
 * bodies, and query strings. Pure functions over byte ranges (no I/O, no allocation), so the
 * HTTP protocol module and the fuzzer drive the same code.
 *
 * Strictness (RFC 9112): the request line is `METHOD SP request-target SP HTTP/1.x CRLF`
 * (a bare LF is accepted as a line end, as most servers do); header names are RFC 9110
 * tokens; obsolete line folding, whitespace before the colon, control bytes in values,
 * duplicate or conflicting Content-Length, Content-Length together with Transfer-Encoding, and
 * any transfer coding other than a single `chunked` are errors. Only origin-form targets
 * (`/path?query`) and `*` (OPTIONS) are accepted. */
#ifndef LC_HTTP_PARSE_H
#define LC_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 64

enum http_method {
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_PATCH,
    HTTP_OTHER, /* A valid token we do not implement: answer 405/501. */
};

struct http_header {
    const char *name; /* As sent (compare case-insensitively). */
    size_t name_len;
    const char *value; /* Leading and trailing whitespace removed. */
    size_t value_len;
};

/* Every pointer points into the buffer given to http_parse_head. */
struct http_request {
    enum http_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* The request-target as sent. */
    size_t target_len;
    const char *path; /* The target up to '?' (still percent-encoded). */
    size_t path_len;
    const char *query; /* After '?', without it; NULL and 0 when there is none. */
    size_t query_len;
    int version_minor; /* 0 or 1 (HTTP/1.0, HTTP/1.1). */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Derived from the headers: */
    bool chunked;            /* Transfer-Encoding: chunked. */
    bool has_length;         /* Content-Length present... */
    uint64_t content_length; /* ...with this value. */
    bool keep_alive;         /* HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive. */
    bool expect_continue;    /* "Expect: 100-continue". */
    bool has_host;           /* A Host header is present (HTTP/1.1 requires one). */
};

/* Parse a request head from p[0..n). Returns the head's length in bytes (through the empty
 * line that ends it) when it is complete and valid; 0 when more bytes are needed (and n is
 * still within max_head); or a negative HTTP status for an invalid head, with *err set to a
 * short static English reason:
 *   -400 malformed request line or header, or HTTP/1.1 without Host
 *   -414 request-target longer than max_target
 *   -431 head longer than max_head, or more than HTTP_MAX_HEADERS headers
 *   -501 a Transfer-Encoding other than chunked
 *   -505 an HTTP version other than 1.0 and 1.1
 * Leading empty lines before the request line are skipped (RFC 9112 2.2). A 414 or 431 is
 * reported as soon as the limit is passed, without waiting for the rest. */
long http_parse_head(const char *p, size_t n, size_t max_head, size_t max_target,
                     struct http_request *req, const char **err);

/* The value of the first header called name (case-insensitive), or NULL; *len its length. */
const char *http_header(const struct http_request *req, const char *name, size_t *len);

/* True when a comma-separated header value (e.g. Connection, Accept) lists token, compared
 * case-insensitively, ignoring parameters after ';'. */
bool http_list_has(const char *value, size_t len, const char *token);

/* Incremental decoder of a chunked body (RFC 9112 7.1). Zero-initialise, then feed bytes. */
struct http_chunked {
    int state;
    uint64_t remaining; /* Bytes left in the current chunk. */
    size_t line_len;    /* Bytes of the current size or trailer line seen (for the limit). */
    bool done;          /* The last chunk and the trailer section were consumed. */
};

/* Decode p[0..n): payload bytes are written to out (which may equal p: output never runs
 * ahead of input) and counted in *out_len. Returns the bytes of p consumed (all of them
 * unless the body ended inside p: then st->done is set and the rest belongs to the next
 * request), or -400 for a malformed chunk size line, chunk terminator or trailer, a chunk
 * size line over 1024 bytes, or a chunk size over 2^62. Chunk extensions are ignored;
 * trailer fields are skipped. */
long http_chunked_decode(struct http_chunked *st, const char *p, size_t n, char *out,
                         size_t *out_len);

/* Find parameter name in a query string (a=1&b=x+y%21) and percent-decode its value into
 * out[0..cap) ('+' becomes a space), NUL-terminated. Returns the decoded length, -1 when the
 * parameter is absent, or -2 when it is malformed (bad %XX escape) or does not fit. A name
 * given twice: the first one counts. "a" and "a=" both give an empty value. */
long http_query_param(const char *query, size_t len, const char *name, char *out, size_t cap);

/* Percent-decode p[0..n) into out[0..cap) (no '+' rule: for paths), NUL-terminated. Returns
 * the decoded length or -1 when malformed or too long. */
long http_url_decode(const char *p, size_t n, char *out, size_t cap);

#endif
