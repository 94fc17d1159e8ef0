/* gen.h - synthetic log lines for `logcaster bench`.
 *
 * The benchmark builds one buffer of realistic lines before its timed phase and sends it
 * over and over, so that sending costs no formatting at all. The content is deterministic
 * for a given seed, so two runs store the same text and query timings stay comparable. */
#ifndef LCC_GEN_H
#define LCC_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The keyword that appears in exactly one line of every generated buffer. */
#define LCC_RARE_WORD "xyzzy-rare"

/* A buffer of whole lines, each ending in '\n'. */
struct lcc_gen {
    char *data;       /* All lines back to back; malloc'd. */
    size_t len;       /* Bytes in data. */
    uint32_t *off;    /* off[i] = start of line i; off[lines] = len. malloc'd. */
    size_t lines;     /* Number of lines. */
    size_t levels[4]; /* Lines per level: DEBUG, INFO, WARN, ERROR. */
};

/* Build `lines` lines averaging about line_size bytes (at least the ~70 bytes the
 * templates need). Plain lines read "<ISO time> <host> <LEVEL> <component>[pid]: <text>";
 * framed lines read "LOG|<LEVEL>|<unix ts>|<host> <component>[pid]: <text>" with the times
 * spread over the hour before now_s. Line lines/2 carries LCC_RARE_WORD; about one ERROR line
 * in three says "timeout after <N>ms". Returns 0 or -ENOMEM / -EINVAL (lines == 0 or the
 * buffer would pass 4 GB). */
int lcc_gen_build(struct lcc_gen *g, size_t lines, size_t line_size, bool framed, int64_t now_s,
                  uint64_t seed);

/* Free the buffers; safe on a zeroed struct. */
void lcc_gen_free(struct lcc_gen *g);

/* Index of the first line that starts at or after byte off (0 <= off <= len): the number of
 * whole lines in data[0, off) when off falls on a line boundary. */
size_t lcc_gen_line_at(const struct lcc_gen *g, size_t off);

#endif
