/* buf.c - growable byte buffers. */
#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_compact(struct buf *b)
{
    if (b->start == 0)
        return;
    size_t n = buf_len(b);
    memmove(b->data, b->data + b->start, n);
    b->start = 0;
    b->end = n;
}

int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->end >= n)
        return 0;
    /* Reuse the consumed front before growing. */
    if (b->start && b->cap - buf_len(b) >= n) {
        buf_compact(b);
        return 0;
    }
    size_t need = buf_len(b) + n;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    buf_compact(b);
    char *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* p may be NULL then (an empty buffer's head). */
    if (buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (size_t want = 256;;) {
        if (buf_reserve(b, want) < 0)
            return -ENOMEM;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->end, b->cap - b->end, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -EINVAL;
        if ((size_t)n < b->cap - b->end) {
            b->end += (size_t)n;
            return 0;
        }
        want = (size_t)n + 1;
    }
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (buf_len(b) == 0 && b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = b->start = b->end = 0;
    }
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = b->start = b->end = 0;
}
