/* fuzz_frame.c - arbitrary bytes as a stored frame, the way recovery reads segment files: the
 * header parser, checksum, decompression and column decoding must reject damage, never crash
 * or read out of bounds. Half the inputs get a valid checksum so decoding is reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/log.h"
#include "store/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FRAME_HDR_LEN || size > (1 << 20))
        return 0;
    char *f = malloc(size);
    memcpy(f, data, size);
    uint32_t magic = FRAME_MAGIC, plen = (uint32_t)(size - FRAME_HDR_LEN);
    if (data[0] & 1) { /* Make the frame well-framed and correctly summed. */
        memcpy(f, &magic, 4);
        memcpy(f + 4, &plen, 4);
        uint64_t sum = XXH3_64bits(f + 16, size - 16);
        memcpy(f + 8, &sum, 8);
    }
    struct frame_hdr h;
    if (frame_parse_header(f, &h) == 0 && FRAME_HDR_LEN + (size_t)h.payload_len <= size &&
        frame_verify(&h, f)) {
        char *cols = malloc(h.raw_len ? h.raw_len : 1), *rows = malloc(h.raw_len ? h.raw_len : 1);
        if (frame_decode(&h, f, cols) == 0) {
            struct col_summary cs;
            int layout = (int)h.layout;
            if (columns_summary(cols, h.raw_len, h.count, layout, &cs) == 0) {
                lc_assert(cs.msgs >= cols && cs.msgs + cs.msgs_len == cols + h.raw_len);
                lc_assert(columns_to_rows(cols, h.raw_len, h.count, layout, rows) == 0);
                uint32_t *offs = malloc(((size_t)h.count + 1) * sizeof(uint32_t));
                lc_assert(payload_index(rows, h.raw_len, h.count, offs) == 0);
                /* And back: the same columns, in the same layout. */
                char *again = malloc(h.raw_len ? h.raw_len : 1);
                lc_assert(rows_to_columns(rows, h.raw_len, h.count, again, NULL) == layout ||
                          layout == COL_LENGTHS);
                free(again);
                free(offs);
            }
        }
        free(cols);
        free(rows);
    }
    free(f);
    return 0;
}
