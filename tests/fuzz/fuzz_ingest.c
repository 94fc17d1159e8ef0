/* fuzz_ingest.c - arbitrary bytes through line framing, the ingest line parser, escaping and
 * level detection, and each line through the pipeline's entry builder (ingest_parse_msg,
 * ingest_batch_add: what TCP, UDP and HTTP all call); checks the invariants every later
 * output relies on. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/entry.h"
#include "core/log.h"
#include "ingest/batch.h"
#include "proto/ingest_parse.h"
#include "proto/line.h"

/* One line as a carrier hands it over: the entry is clean, in range, and borrowed only from
 * the line itself. */
static void check_entry(struct ingest_batch *b, const char *line, size_t len, size_t max_line,
                        unsigned flags)
{
    struct ingest_msg m;
    size_t before = ingest_batch_count(b);
    int r = ingest_parse_msg(b, line, len, 1764158400000LL, flags, &m);
    lc_assert(r >= -1 && r <= 1);
    lc_assert((r < 0) == (m.error != NULL));
    if (r != 0)
        return;
    const struct lc_entry *e = ingest_batch_add(b, &m, "127.0.0.1:9", 11, 1764158400000LL);
    lc_assert(e && ingest_batch_count(b) == before + 1);
    lc_assert(line_is_clean(e->msg, e->msg_len) && !memchr(e->msg, '\n', e->msg_len));
    lc_assert(e->level < LC_LEVEL_COUNT && e->id == 0);
    lc_assert(e->msg_len <= 4 * (max_line + INGEST_FIELDS_MAX)); /* What the carriers allow. */
    if (flags & INGEST_TRUNCATED)
        lc_assert(e->flags & LC_ENTRY_TRUNCATED);
    bool inside = e->msg >= line && e->msg + e->msg_len <= line + len;
    lc_assert(!m.borrowed || inside || !line_is_clean(m.text, m.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    /* The carrier's flags from the last byte: cut, JSON only (an HTTP JSON body), strict. */
    unsigned flags = size ? data[size - 1] % 8 : 0;
    size_t max_line = size < 64 ? 64 : size;
    struct ingest_batch *b = ingest_batch_get(max_line);
    lc_assert(b);
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
        check_entry(b, p + off, len, max_line, flags);
        if (ingest_batch_full(b))
            ingest_batch_reset(b);
        off += take;
    }
    /* A whole datagram or frame as one message (syslog over UDP keeps its newlines). */
    check_entry(b, p, size, max_line, flags);
    ingest_batch_reset(b);
    free(esc);
    return 0;
}
