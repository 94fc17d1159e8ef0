/* fuzz_ingest.c - arbitrary bytes through line framing, the ingest line parser, escaping and
 * level detection; checks the invariants every later output relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/ingest_parse.h"
#include "proto/line.h"
#include "store/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    char *esc = malloc(4 * size + 1);
    size_t off = 0, len;
    while (off < size) {
        size_t take = line_next(p + off, size - off, &len);
        if (!take)
            take = len = size - off; /* The last, unterminated line. */
        lc_assert(len <= take && off + take <= size);
        lc_assert(memchr(p + off, '\n', len) == NULL);
        struct ingest_line l;
        ingest_parse(p + off, len, &l);
        if (!l.error) {
            lc_assert(l.msg >= p + off && l.msg + l.msg_len <= p + off + len);
            lc_assert(l.level >= -1 && l.level < LC_LEVEL_COUNT);
            size_t m = line_escape(l.msg, l.msg_len, esc);
            lc_assert(m <= 4 * l.msg_len);
            lc_assert(line_is_clean(esc, m));
            lc_assert(memchr(esc, '\n', m) == NULL && memchr(esc, '\r', m) == NULL);
            if (line_is_clean(l.msg, l.msg_len))
                lc_assert(m == l.msg_len && memcmp(esc, l.msg, m) == 0);
            int lvl = line_detect_level(esc, m);
            lc_assert(lvl >= -1 && lvl < LC_LEVEL_COUNT);
        }
        off += take;
    }
    free(esc);
    return 0;
}
