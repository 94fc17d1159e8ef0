/* buf.h - a growable byte buffer with a consumed prefix: bytes are appended at the end and
 * taken from the front; the front gap is reclaimed lazily by buf_compact. */
#ifndef LC_BUF_H
#define LC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t start; /* First unconsumed byte. */
    size_t end;   /* One past the last byte. */
    size_t cap;
};

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}
static inline char *buf_head(const struct buf *b)
{
    return b->data + b->start;
}
static inline void buf_consume(struct buf *b, size_t n)
{
    b->start += n;
    if (b->start == b->end)
        b->start = b->end = 0;
}

/* Make room for at least n more bytes at the end. Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_compact(struct buf *b);
/* Give memory back when the buffer is empty and larger than keep bytes. */
void buf_shrink(struct buf *b, size_t keep);
void buf_free(struct buf *b);

#endif
