/* transport.h - how a connection's bytes cross the wire (plain TCP, TLS), behind one small
 * table of calls as Redis's connection.h: the connection code has one I/O path and asks the
 * transport, never whether the connection is encrypted.
 *
 * A struct stream is a connected non-blocking socket plus its transport's session. It moves
 * whole between reactors when a connection is handed over, so a TLS session goes with its
 * socket. */
#ifndef LC_TRANSPORT_H
#define LC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct stream;

struct transport {
    const char *name;
    /* Like recv: > 0 bytes read, 0 at the peer's clean end, -EAGAIN when nothing can be read
     * now, another -errno when the stream failed. Sets s->read_wants_write when the read
     * waits for the socket to become writable rather than readable (a TLS handshake step). */
    ssize_t (*read)(struct stream *s, void *p, size_t n);
    /* Like send, never blocking and never raising SIGPIPE: > 0 bytes taken, -EAGAIN when the
     * socket is full, another -errno when the stream failed. */
    ssize_t (*write)(struct stream *s, const void *p, size_t n);
    /* Bytes read from the socket and held inside the transport (decrypted TLS records):
     * epoll cannot see them, so the caller reads them without waiting for an event. */
    size_t (*pending)(const struct stream *s);
    /* End the session (one try at TLS close_notify) and free it; the socket stays open. */
    void (*shutdown)(struct stream *s);
    /* A read shorter than asked means the socket is empty now (plain TCP; not TLS, which
     * returns one record at a time), which saves a read that would only say EAGAIN. */
    bool short_read_drains;
};

struct stream {
    const struct transport *tp;
    int fd;
    void *session;         /* The transport's per-connection state (TLS: the SSL), or NULL. */
    bool read_wants_write; /* The last read must wait until the socket is writable. */
};

/* Plain TCP: s->fd as it is. */
extern const struct transport transport_tcp;

/* A plain stream on a connected socket. */
static inline struct stream stream_tcp(int fd)
{
    return (struct stream){.tp = &transport_tcp, .fd = fd};
}

/* End the session and close the socket. */
void stream_close(struct stream *s);

#endif
