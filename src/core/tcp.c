/* tcp.c - the plain TCP transport (see transport.h): the socket's own recv and send. */
#include "core/transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t tcp_read(struct stream *s, void *p, size_t n)
{
    ssize_t k = recv(s->fd, p, n, 0);
    if (k >= 0)
        return k;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static ssize_t tcp_write(struct stream *s, const void *p, size_t n)
{
    /* The socket is non-blocking already; MSG_DONTWAIT also covers one that is not. */
    ssize_t k = send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k > 0)
        return k;
    if (k == 0)
        return -EPIPE; /* Nothing taken of a non-empty write: the stream is no use. */
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static size_t tcp_pending(const struct stream *s)
{
    (void)s;
    return 0; /* The kernel holds every unread byte, and epoll sees them. */
}

static void tcp_shutdown(struct stream *s)
{
    (void)s; /* No session: closing the socket ends the stream. */
}

const struct transport transport_tcp = {
    .name = "tcp",
    .read = tcp_read,
    .write = tcp_write,
    .pending = tcp_pending,
    .shutdown = tcp_shutdown,
    .short_read_drains = true,
};

void stream_close(struct stream *s)
{
    s->tp->shutdown(s);
    s->session = NULL;
    close(s->fd);
    s->fd = -1;
}
