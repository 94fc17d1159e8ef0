/* index.c - segment index files.
 *
 * Version 3 added each block's token filter after its trigram filter (u32 bits, then the bits;
 * 0 bits = none). Version 4 is the same layout, with token filters that hold every whole
 * key=value field (tokfilter.h): a version 3 filter lacks the fields whose value is one word,
 * so a query would wrongly rule its block out by one; its filters are passed over at loading.
 * Version 1, 3 and 4 files still load, without reading data: their blocks have no token
 * filter until the builder (tokbuild.c) makes it after start-up; meanwhile it never rules them
 * out (the trigram filter still does), and then the file is written again in the current
 * version. Version 2 (token filters of other elements and hashes, never released) is refused
 * like a damaged file: the segment's frames are read again. A block without a token filter in
 * a current file (0 bits) is one the builder had not reached when the file was written (at a
 * stop, or a sealed segment's index put off too long): the builder builds it after start-up,
 * and the writer writes the file again (segment.c).
 *
 * Version 5 adds the stripes' filters (tokfilter.h): after the u32 bits of the block's token
 * filter, u32 bits of each stripe's filter (0: none), then the block's filter and the stripes'
 * one after the other; and then the block's value summary (valsum.h): u32 length (0: none,
 * as when there is no token filter), then its bytes. Version 4 filters are passed over like
 * version 3 ones, so the builder makes them again with their stripes and summaries. */
#define _GNU_SOURCE
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/buf.h"
#include "store/tokfilter.h"
#include "store/valsum.h"

static const char idx_magic[8] = {'L', 'C', 'I', 'D', 'X', 0, 0, 5};
static const char idx_magic_v4[8] = {'L', 'C', 'I', 'D', 'X', 0, 0, 4}; /* Without stripes. */
static const char idx_magic_v1[8] = {'L', 'C', 'I', 'D', 'X', 0, 0, 1}; /* No token filters. */
static const char idx_magic_v3[8] = {'L', 'C', 'I', 'D', 'X', 0, 0, 3}; /* Older ones. */
#define BLOCK_FIXED (8 + 4 + 4 + 8 + 8 + 4 + 4 * LC_LEVEL_COUNT + 8 + 4 + 4)

int index_write(const char *path, uint64_t covered, struct block *const *blocks, size_t n)
{
    struct buf b = {0};
    uint64_t nb = n;
    int rc = buf_append(&b, idx_magic, 8) | buf_append(&b, &covered, 8) | buf_append(&b, &nb, 8);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct block *k = blocks[i];
        uint32_t log2 = k->filter_log2;
        rc |= buf_append(&b, &k->first_id, 8) | buf_append(&b, &k->count, 4) |
              buf_append(&b, &k->raw_len, 4) | buf_append(&b, &k->min_ts, 8) |
              buf_append(&b, &k->max_ts, 8) | buf_append(&b, &k->level_mask, 4) |
              buf_append(&b, k->level_counts, 4 * LC_LEVEL_COUNT) | buf_append(&b, &k->offset, 8) |
              buf_append(&b, &k->frame_len, 4) | buf_append(&b, &log2, 4) |
              buf_append(&b, k->filter, ((size_t)1 << log2) / 8);
        const uint64_t *tokens = block_tokens(k); /* The builder may set it meanwhile. */
        uint32_t tbits = tokens ? k->tokens_nbits : 0, sbits = tokens ? k->stripe_nbits : 0;
        rc |= buf_append(&b, &tbits, 4) | buf_append(&b, &sbits, 4);
        uint32_t vlen = tokens && k->values ? k->values_len : 0;
        if (tbits)
            rc |= buf_append(&b, tokens, tokf_bytes(tbits, sbits));
        rc |= buf_append(&b, &vlen, 4);
        if (vlen)
            rc |= buf_append(&b, k->values, vlen);
    }
    uint64_t sum = XXH3_64bits(buf_head(&b), buf_len(&b));
    rc |= buf_append(&b, &sum, 8);
    if (rc) {
        buf_free(&b);
        return -ENOMEM;
    }
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        buf_free(&b);
        return -errno;
    }
    size_t done = 0;
    while (done < buf_len(&b)) {
        ssize_t w = write(fd, buf_head(&b) + done, buf_len(&b) - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            buf_free(&b);
            return -e;
        }
        done += (size_t)w;
    }
    buf_free(&b);
    /* No fsync: the writer thread writes indexes, and one of some megabytes waiting for the
     * disk held up every acknowledgement behind it. An index only saves reading its segment's
     * frames at start-up; one a machine crash leaves short or empty fails its checksum and is
     * rebuilt from them, so nothing acknowledged depends on it. Its writeback starts now. */
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

int index_read(const char *path, struct segment *seg, uint64_t file_size, struct block ***arr,
               size_t *n, size_t *cap, uint64_t *covered)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < 32 || st.st_size > (1 << 30)) {
        close(fd);
        return -EINVAL;
    }
    size_t len = (size_t)st.st_size;
    char *d = malloc(len);
    if (!d || read(fd, d, len) != (ssize_t)len) {
        free(d);
        close(fd);
        return -EIO;
    }
    close(fd);
    uint64_t sum, nb;
    memcpy(&sum, d + len - 8, 8);
    memcpy(covered, d + 8, 8);
    memcpy(&nb, d + 16, 8);
    bool v1 = memcmp(d, idx_magic_v1, 8) == 0, v3 = memcmp(d, idx_magic_v3, 8) == 0,
         v4 = memcmp(d, idx_magic_v4, 8) == 0;
    if ((!v1 && !v3 && !v4 && memcmp(d, idx_magic, 8) != 0) || XXH3_64bits(d, len - 8) != sum ||
        *covered > file_size || nb > len / BLOCK_FIXED) {
        free(d);
        return -EINVAL;
    }
    size_t start = *n, off = 24;
    for (uint64_t i = 0; i < nb; i++) {
        struct block *k = calloc(1, sizeof(*k));
        uint32_t log2 = 0;
        if (!k || off + BLOCK_FIXED > len - 8)
            goto bad_k;
        memcpy(&k->first_id, d + off, 8);
        memcpy(&k->count, d + off + 8, 4);
        memcpy(&k->raw_len, d + off + 12, 4);
        memcpy(&k->min_ts, d + off + 16, 8);
        memcpy(&k->max_ts, d + off + 24, 8);
        memcpy(&k->level_mask, d + off + 32, 4);
        memcpy(k->level_counts, d + off + 36, 4 * LC_LEVEL_COUNT);
        off += 36 + 4 * LC_LEVEL_COUNT;
        memcpy(&k->offset, d + off, 8);
        memcpy(&k->frame_len, d + off + 8, 4);
        memcpy(&log2, d + off + 12, 4);
        off += 16;
        size_t fbytes = log2 >= 3 && log2 <= 24 ? ((size_t)1 << log2) / 8 : 0;
        if (!fbytes || off + fbytes > len - 8 || k->offset > *covered ||
            k->frame_len > *covered - k->offset || k->count == 0)
            goto bad_k;
        k->filter = malloc(fbytes);
        if (!k->filter)
            goto bad_k;
        memcpy(k->filter, d + off, fbytes);
        off += fbytes;
        k->filter_log2 = log2;
        k->seg = seg;
        if (!v1) {
            uint32_t tbits, sbits = 0;
            bool old = v3 || v4;
            if (off + (old ? 4 : 8) > len - 8)
                goto bad_k;
            memcpy(&tbits, d + off, 4);
            if (!old)
                memcpy(&sbits, d + off + 4, 4);
            off += old ? 4 : 8;
            size_t tbytes = tokf_bytes(tbits, sbits);
            if (tbits % TOKF_LINE || tbits > TOKF_MAX_BITS || sbits % TOKF_LINE ||
                sbits > TOKF_MAX_BITS / TOKF_STRIPES || (sbits && !tbits) || off + tbytes > len - 8)
                goto bad_k;
            if (tbits && old) { /* Built without some fields or stripes: made again. */
                off += tbytes;
            } else if (tbits) {
                if (!(k->tokens = aligned_alloc(64, tbytes)))
                    goto bad_k;
                memcpy(k->tokens, d + off, tbytes);
                k->tokens_nbits = tbits;
                k->stripe_nbits = sbits;
                off += tbytes;
            }
            uint32_t vlen = 0;
            if (!old) {
                if (off + 4 > len - 8)
                    goto bad_k;
                memcpy(&vlen, d + off, 4);
                off += 4;
                if (vlen > len - 8 - off || (vlen && !tbits) ||
                    (vlen && !valsum_check((const uint8_t *)d + off, vlen)))
                    goto bad_k;
            }
            if (vlen) {
                if (!(k->values = malloc(vlen)))
                    goto bad_k;
                memcpy(k->values, d + off, vlen);
                k->values_len = vlen;
                off += vlen;
            }
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            struct block **na = realloc(*arr, nc * sizeof(*na));
            if (!na)
                goto bad_k;
            *arr = na;
            *cap = nc;
        }
        (*arr)[(*n)++] = k;
        continue;
    bad_k:
        if (k) {
            free(k->filter);
            free(k->tokens);
            free(k->values);
        }
        free(k);
        for (size_t j = start; j < *n; j++) {
            free((*arr)[j]->filter);
            free((*arr)[j]->tokens);
            free((*arr)[j]->values);
            free((*arr)[j]);
        }
        *n = start;
        free(d);
        return -EINVAL;
    }
    free(d);
    return 0;
}
