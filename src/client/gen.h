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

/* The wire form of the generated records. */
enum lcc_gen_format {
    LCC_GEN_PLAIN,  /* "<RFC 3339 time> <host> <LEVEL> <app>[pid]: <text>\n" */
    LCC_GEN_FRAMED, /* "LOG|<LEVEL>|<unix ts>|<host> <app>[pid]: <text>\n" */
    LCC_GEN_SYSLOG, /* "LEN <PRI>1 <RFC 3339 time> <host> <app> <pid> - - <text>" (RFC 6587
                       octet counting, RFC 5424), no newline */
    LCC_GEN_JSON,   /* {"ts":"<RFC 3339>","level":"info","host":..,"app":..,"pid":N,"msg":..}\n */
    LCC_GEN_BINARY, /* LOG_MS frames of src/proto/binary.h: header (seq = record index + 1),
                       level u8 (1 DEBUG .. 4 ERROR), ts_ms u64, text */
};

/* A buffer of whole records back to back. */
struct lcc_gen {
    char *data;              /* All records back to back; malloc'd. */
    size_t len;              /* Bytes in data. */
    uint32_t *off;           /* off[i] = start of record i; off[lines] = len. malloc'd. */
    size_t lines;            /* Number of records. */
    size_t levels[4];        /* Records per level: DEBUG, INFO, WARN, ERROR. */
    enum lcc_gen_format fmt; /* What data holds. */
};

/* The format's name ("plain", "framed", "syslog", "json", "binary"). */
const char *lcc_gen_format_name(enum lcc_gen_format fmt);

/* The format named s; returns 0, or -EINVAL for an unknown name. */
int lcc_gen_format_parse(const char *s, enum lcc_gen_format *out);

/* Build `lines` records in format fmt, with the times spread over the hour before now_s.
 * Plain and framed lines average about line_size bytes in all (at least the ~70 bytes the
 * templates need), as before the other formats existed, and their content is unchanged for
 * a seed. In syslog, JSON and binary records the message text alone averages about
 * line_size bytes, and the host, app, pid, time and level travel in the format's own
 * fields. Record lines/2 carries LCC_RARE_WORD; about one ERROR record in three says
 * "timeout after <N>ms". Returns 0 or -ENOMEM / -EINVAL (lines == 0 or the buffer would
 * pass 4 GB). */
int lcc_gen_build(struct lcc_gen *g, size_t lines, size_t line_size, enum lcc_gen_format fmt,
                  int64_t now_s, uint64_t seed);

/* Free the buffers; safe on a zeroed struct. */
void lcc_gen_free(struct lcc_gen *g);

/* Index of the first record that starts at or after byte off (0 <= off <= len): the number of
 * whole records in data[0, off) when off falls on a record boundary. */
size_t lcc_gen_line_at(const struct lcc_gen *g, size_t off);

#endif
