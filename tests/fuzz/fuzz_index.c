/* fuzz_index.c - arbitrary bytes as a segment's index file: index_read must reject damage
 * (bad magic, checksum, counts, offsets beyond the covered length) and never crash. Half the
 * inputs get a valid checksum so the block parser itself is reached. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/log.h"
#include "store/index.h"
#include "store/valsum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 32 || size > (1 << 20))
        return 0;
    char *d = malloc(size);
    memcpy(d, data, size);
    if (data[0] & 1) {
        static const char *const versions[] = {"LCIDX\0\0\1", "LCIDX\0\0\3", "LCIDX\0\0\4",
                                               "LCIDX\0\0\5"};
        memcpy(d, versions[data[0] >> 1 & 3], 8); /* Every version read. */
        uint64_t sum = XXH3_64bits(d, size - 8);
        memcpy(d + size - 8, &sum, 8);
    }
    int fd = memfd_create("idx", 0);
    if (fd < 0 || write(fd, d, size) != (ssize_t)size) {
        free(d);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct block **arr = NULL;
    size_t n = 0, cap = 0;
    uint64_t covered = 0;
    if (index_read(path, NULL, UINT64_MAX / 2, &arr, &n, &cap, &covered) == 0) {
        for (size_t i = 0; i < n; i++) {
            lc_assert(arr[i]->offset + arr[i]->frame_len <= covered);
            lc_assert(arr[i]->filter && arr[i]->count > 0);
            lc_assert(arr[i]->tokens || (!arr[i]->tokens_nbits && !arr[i]->stripe_nbits));
            lc_assert(!arr[i]->stripe_nbits || arr[i]->tokens_nbits);
            if (arr[i]->values) { /* Checked at loading: reading it stays inside. */
                const uint8_t *at;
                unsigned nv;
                if (valsum_find(arr[i]->values, arr[i]->values_len, data[size - 1] & 1, "status", 6,
                                &at, &nv) == VS_LISTED)
                    for (unsigned k = 0; k < nv; k++) {
                        const char *v;
                        size_t len;
                        uint32_t c[LC_LEVEL_COUNT];
                        valsum_value(&at, &v, &len, c);
                        lc_assert(at <= arr[i]->values + arr[i]->values_len);
                    }
            }
            free(arr[i]->filter);
            free(arr[i]->tokens);
            free(arr[i]->values);
            free(arr[i]);
        }
    } else {
        lc_assert(n == 0);
    }
    free(arr);
    close(fd);
    free(d);
    return 0;
}
