/* fuzz_detect.c - arbitrary first bytes through protocol detection, at every prefix and at
 * EOF. Checks that an answer, once given, never changes as more bytes arrive, that EOF never
 * answers MORE, and that every request line the strict HTTP parser accepts is detected as
 * HTTP (so no real client is mistaken for a log sender).
 *
 * Needs detect.c and http_parse.c only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "proto/detect.h"

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define PREFIXES_MAX 600 /* Every prefix up to here; then a few more (the cost is quadratic). */

/* The answer for p[0..n), checked against the answer at EOF. */
static enum detect_result check_one(const char *p, size_t n)
{
    enum detect_result r = detect_protocol(p, n, false), e = detect_protocol(p, n, true);
    FUZZ_ASSERT(r >= DETECT_MORE && r <= DETECT_BINARY);
    FUZZ_ASSERT(e != DETECT_MORE && e >= DETECT_DEFAULT && e <= DETECT_BINARY);
    FUZZ_ASSERT(e == r || (r == DETECT_MORE && e == DETECT_DEFAULT));
    FUZZ_ASSERT(r != DETECT_MORE || n < DETECT_PEEK_MAX);
    FUZZ_ASSERT(detect_name(r) != NULL);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);

    enum detect_result first = DETECT_MORE;
    for (size_t k = 0; k <= size; k++) {
        if (k > PREFIXES_MAX && k != size && k % 97 != 0)
            continue;
        enum detect_result r = check_one(p, k);
        if (first != DETECT_MORE)
            FUZZ_ASSERT(r == first); /* A decision is final. */
        first = r;
    }
    /* The binary protocol needs two bytes; anything else starting with 0x01 is a log line. */
    if (size >= 2 && p[0] == 0x01)
        FUZZ_ASSERT(first == (p[1] >= 1 && p[1] <= 6 ? DETECT_BINARY : DETECT_DEFAULT));

    /* Whatever the strict parser accepts, with a method from the list and no leading empty
     * line, detection calls HTTP. */
    struct http_request req;
    long h = http_parse_head(p, size, SIZE_MAX, SIZE_MAX, &req, NULL);
    if (h > 0 && req.method != HTTP_OTHER && p[0] != '\r' && p[0] != '\n') {
        const char *nl = memchr(p, '\n', size);
        if (nl && (size_t)(nl - p) < DETECT_PEEK_MAX)
            FUZZ_ASSERT(first == DETECT_HTTP);
    }
    free(p);
    return 0;
}
