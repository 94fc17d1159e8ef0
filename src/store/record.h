/* record.h - one entry as a row of a block in memory, back to back with the others:
 *
 *   i64 ts_ms | i64 recv_ms | u32 msg_len | u8 level | u8 flags | u8 src_len | src | msg
 *
 * Integers are little-endian, as in frames, which store the same bytes column by column
 * (frame.h). Readers decode rows inline: a query decodes every entry it examines. */
#ifndef LC_RECORD_H
#define LC_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/entry.h"

#define REC_HDR_LEN 23

/* Serialized size of one record. */
static inline size_t rec_size(const struct lc_entry *e)
{
    size_t src = e->source_len > 255 ? 255 : e->source_len;
    return REC_HDR_LEN + src + e->msg_len;
}

/* Write e at p (rec_size(e) bytes); returns the end. */
char *rec_put(char *p, const struct lc_entry *e);

/* Read the record at p[0..avail) into e (strings point into p). Returns its size, or 0 when
 * it does not fit or is malformed. */
static inline size_t rec_get(const char *p, size_t avail, struct lc_entry *e)
{
    if (avail < REC_HDR_LEN)
        return 0;
    uint32_t msg_len;
    uint64_t ts, recv;
    memcpy(&msg_len, p + 16, 4);
    size_t src = (unsigned char)p[22];
    if (msg_len > avail - REC_HDR_LEN || src > avail - REC_HDR_LEN - msg_len)
        return 0;
    memcpy(&ts, p, 8);
    memcpy(&recv, p + 8, 8);
    e->ts_ms = (int64_t)ts;
    e->recv_ms = (int64_t)recv;
    e->level = (uint8_t)p[20] < LC_LEVEL_COUNT ? (uint8_t)p[20] : LC_INFO;
    e->flags = (uint8_t)p[21];
    e->source = p + REC_HDR_LEN;
    e->source_len = src;
    e->msg = p + REC_HDR_LEN + src;
    e->msg_len = msg_len;
    return REC_HDR_LEN + src + msg_len;
}

#endif
