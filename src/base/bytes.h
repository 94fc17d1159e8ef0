/* bytes.h - little-endian integers in byte buffers at any alignment, as the store's frames
 * and the cluster's wire forms write them (this machine is little-endian: memcpy is the
 * whole conversion, and the compiler makes it one move). */
#ifndef LC_BASE_BYTES_H
#define LC_BASE_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void put32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline void put64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t get64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

#endif
