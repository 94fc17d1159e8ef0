/* fuzz_json_line.c - arbitrary bytes as a JSON log line (POST /api/v1/logs): the parse either
 * fails with a reason or yields a level, a time and a message inside the output buffer, the
 * same as the tree-based parser it replaced (json_line_tree.inc); and the JSON writer turns
 * any bytes into a valid JSON string literal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/entry.h"
#include "core/buf.h"
#include "core/log.h"
#include "proto/json.h"
#include "proto/json_line.h"

#include "json_line_tree.inc"

/* A JSON string literal: quotes, escapes, no control bytes (validity of UTF-8 is json.c's
 * promise; checked here for the ASCII part). */
static void check_literal(const char *s, size_t n)
{
    lc_assert(n >= 2 && s[0] == '"' && s[n - 1] == '"');
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        lc_assert(c >= 0x20);
        if (c == '\\') {
            lc_assert(i + 2 < n);
            i++;
            lc_assert(strchr("\"\\/bfnrtu", s[i]) != NULL);
        } else {
            lc_assert(c != '"');
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    if (memchr(p, '\n', size))
        return 0; /* One line per call, as the HTTP handler splits them. */
    struct buf out = {0};
    buf_append(&out, "prefix", 6); /* The message must land after what was there. */
    struct json_line jl;
    char err[160];
    int r = json_line_parse(p, size, &out, &jl, err, sizeof(err));
    /* The same answer as the tree-based parser it replaced, byte for byte. */
    struct buf ref = {0};
    buf_append(&ref, "prefix", 6);
    struct json_line rjl;
    char rerr[160];
    int rr = tree_parse(p, size, &ref, &rjl, rerr, sizeof(rerr));
    lc_assert(r == rr);
    if (r == 0) {
        lc_assert(jl.level == rjl.level && jl.ts_ms == rjl.ts_ms);
        lc_assert(jl.msg_len == rjl.msg_len &&
                  memcmp(out.data + jl.msg_off, ref.data + rjl.msg_off, jl.msg_len) == 0);
    }
    buf_free(&ref);
    if (r == 0) {
        lc_assert(jl.level >= -1 && jl.level < LC_LEVEL_COUNT);
        lc_assert(jl.msg_off == 6 && jl.msg_off + jl.msg_len == out.end);
    } else {
        lc_assert(r == -1 && strlen(err) > 0);
        lc_assert(out.end == 6);
    }
    struct buf lit = {0};
    json_str(&lit, p, size);
    check_literal(lit.data, lit.end);
    buf_free(&lit);
    buf_free(&out);
    return 0;
}
