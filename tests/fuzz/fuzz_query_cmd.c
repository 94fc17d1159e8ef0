/* fuzz_query_cmd.c - arbitrary bytes as a query-port command: the parser must answer with a
 * clean one-line error or a query that runs on a few entries without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/line.h"
#include "proto/query_parse.h"
#include "query/qry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 10000)
        return 0;
    struct qcmd cmd;
    qcmd_parse((const char *)data, size, 1700000000000LL, &cmd);
    if (cmd.kind == QCMD_ERROR) {
        size_t n = strlen(cmd.err);
        lc_assert(n > 0 && line_is_clean(cmd.err, n));
    }
    if (cmd.kind == QCMD_RUN) {
        lc_assert(cmd.q != NULL);
        static const char *msgs[] = {"Database connection failed", "", "user admin login",
                                     "timeout after 30ms", "\xc3\xa9t\xc3\xa9 ERROR"};
        for (int i = 0; i < 5; i++) {
            struct lc_entry e = {.id = (uint64_t)i + 1,
                                 .ts_ms = 1640995200000LL + i * 1000,
                                 .recv_ms = 1700000000000LL,
                                 .level = (uint8_t)(i % 6),
                                 .source = "127.0.0.1:5000",
                                 .source_len = 14,
                                 .msg = msgs[i],
                                 .msg_len = strlen(msgs[i])};
            bool m = qry_match(cmd.q, &e);
            struct lc_block_info b = {e.id,          e.id,  e.ts_ms,  e.ts_ms,
                                      1u << e.level, e.msg, e.msg_len};
            if (m) /* Skipping may never hide a match. */
                lc_assert(qry_block_may_match(cmd.q, &b));
        }
        qry_free(cmd.q);
    }
    return 0;
}
