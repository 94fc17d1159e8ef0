/* valsum.h - a block's value summary: for its entries' source, and for each key=value field of
 * its messages (as base/field.h reads them: the first field of a name in a message) that has
 * few distinct values in the block, how many entries of each level hold each value. A
 * `stats by (status) count()` then takes such a block from its summary, without reading it
 * (query/agg.c), as `stats by (level)` takes it from its level counts.
 *
 * Built with the token filter (tokbuild.c), kept in the index (index.c). The encoding, which
 * is also the in-memory form:
 *   u8 flags          VS_PARTIAL: some field names are not listed (more than VS_FIELDS, or
 *                     one longer than VS_NAME_MAX): a name not listed may be in the block
 *   u8 nfields
 *   per field:        u8 kind (VS_SOURCE, the entry's source; VS_MSG, a message field),
 *                     u8 name length, the name, u8 nvalues (VS_MANY: more than VS_VALUES
 *                     values, or one longer than VS_VALUE_MAX: none follow), then per value:
 *                     u8 length, the value (escapes resolved), u32 count per level
 *                     (LC_LEVEL_COUNT, little-endian)
 * An entry without the field, or with an empty value, is in no value's count: a query takes
 * the rest of a level's entries as the empty value, as the pipes group a missing field. */
#ifndef LC_VALSUM_H
#define LC_VALSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"

#define VS_FIELDS    32  /* Message fields listed at most. */
#define VS_VALUES    16  /* Distinct values of a field kept at most. */
#define VS_VALUE_MAX 64  /* Longest value kept, in bytes. */
#define VS_NAME_MAX  64  /* Longest field name listed. */
#define VS_MANY      255 /* nvalues of a field with too many values. */
#define VS_PARTIAL   1u  /* A flag: some names are not listed. */
enum { VS_MSG = 0, VS_SOURCE = 1 };

/* A block's entries: count of them, levels[i] their level bytes, src_lens[i] the lengths of
 * their sources, back to back in srcs, and their messages as tokf_build takes them. */
struct valsum_input {
    uint32_t count;
    const uint8_t *levels;
    const uint8_t *src_lens;
    const char *srcs;
    const char *msgs;
    size_t msgs_len;
    const char *msg_lens; /* count u32 lengths, or NULL: each message ends with '\n'. */
};

/* The summary of in's entries into *out (malloc'ed; free() it), *out_len bytes. Returns 0 or
 * -ENOMEM. */
int valsum_build(const struct valsum_input *in, uint8_t **out, uint32_t *out_len);

/* Whether p[0..len) is a well-formed summary (an index file's may be damaged). */
bool valsum_check(const uint8_t *p, size_t len);

/* What a summary knows of one field. */
enum valsum_found {
    VS_UNKNOWN, /* Too many values, or a partial summary without the name: read the block. */
    VS_ABSENT,  /* No entry of the block holds it (every one is the empty value). */
    VS_LISTED,  /* Its values are listed: *at points at the first, *nvalues of them. */
};

/* Look up the source (source true) or the message field name[0..nlen) in summary p[0..len)
 * (well-formed). */
enum valsum_found valsum_find(const uint8_t *p, size_t len, bool source, const char *name,
                              size_t nlen, const uint8_t **at, unsigned *nvalues);

/* The value at *at (one of those valsum_find listed): its bytes and per-level counts; moves
 * *at to the next. */
void valsum_value(const uint8_t **at, const char **v, size_t *vlen,
                  uint32_t counts[LC_LEVEL_COUNT]);

#endif
