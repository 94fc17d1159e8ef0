/* index.h - a segment's index file: every block's summary, trigram and token filters, so
 * start-up reads no data of indexed segments. Format: "LCIDX" header, covered length, block count,
 * the blocks, and an XXH3-64 checksum of all that; written to a temporary file, fsync'ed and
 * renamed into place, so an index is either whole or absent. */
#ifndef LC_INDEX_H
#define LC_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "store/block.h"

/* Write the index of blocks[0..n) covering the segment's first `covered` bytes. 0 or -errno. */
int index_write(const char *path, uint64_t covered, struct block *const *blocks, size_t n);

/* Read an index, appending its blocks (belonging to seg) to *arr. Rejects a missing, corrupt
 * or stale (covered > file_size) index with -errno, leaving *n as it was. */
int index_read(const char *path, struct segment *seg, uint64_t file_size, struct block ***arr,
               size_t *n, size_t *cap, uint64_t *covered);

#endif
