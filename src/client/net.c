/* net.c - connect with a timeout, write-all and line reading for the logcaster client.
 *
 * The connect follows the shape of the seed document's connect_with_timeout: a non-blocking
 * connect(), a wait for writability, then SO_ERROR for the verdict. It uses poll() instead of
 * select() so that descriptors above FD_SETSIZE are fine, and getaddrinfo() so host names and
 * IPv6 work. */
#include "client/net.h"
#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READER_MIN_CAP 65536 /* First allocation; also the smallest read we ask for. */

volatile sig_atomic_t lcc_interrupted;

int64_t lcc_now_ms(void)
{
    return mono_ms();
}

double lcc_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void lcc_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Wait until fd reports one of events or the deadline passes. Returns revents, or
 * -ETIMEDOUT, or another negative errno. */
int lcc_wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = events};
        int64_t left = deadline_ms - lcc_now_ms();
        int rc;

        if (lcc_interrupted)
            return -EINTR; /* The signal came before the wait: do not start one. */
        if (left < 0)
            left = 0;
        rc = poll(&pf, 1, (int)(left > 1000000000 ? 1000000000 : left));
        if (rc < 0) {
            if (errno == EINTR && !lcc_interrupted)
                continue;
            return -errno;
        }
        if (rc == 0)
            return -ETIMEDOUT;
        return pf.revents;
    }
}

/* One attempt on one resolved address. Returns a connected non-blocking fd or -errno. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd, rc, soerr = 0, one = 1;
    socklen_t sl = sizeof(soerr);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    do
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
        rc = -errno;
        goto fail;
    }
    if (rc < 0) {
        rc = lcc_wait_fd(fd, POLLOUT, deadline_ms);
        if (rc < 0)
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            rc = -errno;
            goto fail;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto fail;
        }
    }
    /* Requests and replies are small; do not let Nagle hold a lone PING back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:
    close(fd);
    return rc;
}

int lcc_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[16];
    int64_t deadline = lcc_now_ms() + timeout_ms;
    int rc, fd = -ECONNREFUSED;

    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = connect_addr(ai, deadline);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        /* Name the host the way the user wrote it; "[::1]" style for IPv6 literals. */
        const char *fmt =
            strchr(host, ':') ? "cannot connect to [%s]:%d: %s" : "cannot connect to %s:%d: %s";
        snprintf(err, errlen, fmt, host, port, strerror(-fd));
    }
    return fd;
}

int lcc_write_all(int fd, const void *buf, size_t len, int timeout_ms, bool drain)
{
    const char *p = buf;
    int64_t deadline = lcc_now_ms() + timeout_ms;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            deadline = lcc_now_ms() + timeout_ms; /* the timeout is for lack of progress */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rev = lcc_wait_fd(fd, POLLOUT | (drain ? POLLIN : 0), deadline);
        if (rev < 0)
            return rev;
        if (drain && (rev & POLLIN)) {
            char junk[4096];
            ssize_t r = recv(fd, junk, sizeof(junk), 0);
            if (r == 0)
                return -EPIPE;
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
        } else if ((rev & (POLLERR | POLLHUP)) && !(rev & POLLOUT)) {
            return -EPIPE;
        }
    }
    return 0;
}

void lcc_reader_init(struct lcc_reader *r)
{
    memset(r, 0, sizeof(*r));
}

void lcc_reader_free(struct lcc_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

void lcc_reader_reset(struct lcc_reader *r)
{
    r->start = r->end = r->scan = 0;
}

static int take_line(struct lcc_reader *r, char *nl, char **line, size_t *len)
{
    char *s = r->buf + r->start;
    size_t l = (size_t)(nl - s);

    r->start += l + (nl < r->buf + r->end ? 1 : 0);
    r->scan = 0;
    if (l > 0 && s[l - 1] == '\r')
        l--;
    s[l] = '\0';
    *line = s;
    *len = l;
    return 1;
}

int lcc_reader_next(struct lcc_reader *r, char **line, size_t *len)
{
    char *nl;

    if (r->start + r->scan >= r->end)
        return 0;
    nl = memchr(r->buf + r->start + r->scan, '\n', r->end - r->start - r->scan);
    if (!nl) {
        r->scan = r->end - r->start;
        return 0;
    }
    return take_line(r, nl, line, len);
}

int lcc_reader_rest(struct lcc_reader *r, char **line, size_t *len)
{
    if (lcc_reader_next(r, line, len))
        return 1;
    if (r->start >= r->end)
        return 0;
    /* fill() always leaves a spare byte, so the NUL fits after the last byte. */
    return take_line(r, r->buf + r->end, line, len);
}

int lcc_reader_space(struct lcc_reader *r, char **p, size_t *n)
{
    /* Move the unread tail to the front when that makes room; grow when it would not. */
    if (r->start > 0 && (r->start == r->end || r->cap - r->end < READER_MIN_CAP / 2)) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < READER_MIN_CAP / 2 + 1) {
        size_t ncap = r->cap ? r->cap * 2 : READER_MIN_CAP;
        char *nb = realloc(r->buf, ncap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = ncap;
    }
    *p = r->buf + r->end;
    *n = r->cap - r->end - 1; /* The spare byte takes the NUL of a last partial line. */
    return 0;
}

int lcc_reader_append(struct lcc_reader *r, const void *src, size_t len)
{
    while (len > 0) {
        char *p;
        size_t room;
        int rc = lcc_reader_space(r, &p, &room);
        if (rc < 0)
            return rc;
        if (room > len)
            room = len;
        memcpy(p, src, room);
        r->end += room;
        src = (const char *)src + room;
        len -= room;
    }
    return 0;
}

ssize_t lcc_reader_fill(struct lcc_reader *r, int fd)
{
    char *p;
    size_t room;
    ssize_t n;
    int rc = lcc_reader_space(r, &p, &room);

    if (rc < 0)
        return rc;
    for (;;) {
        n = read(fd, p, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        r->end += (size_t)n;
        return n;
    }
}

int lcc_read_line(struct lcc_reader *r, int fd, int timeout_ms, char **line, size_t *len)
{
    for (;;) {
        ssize_t n;
        int rev;

        if (lcc_reader_next(r, line, len))
            return 1;
        n = lcc_reader_fill(r, fd);
        if (n > 0)
            continue;
        if (n == 0)
            return 0;
        if (n != -EAGAIN)
            return (int)n;
        rev = lcc_wait_fd(fd, POLLIN, lcc_now_ms() + timeout_ms);
        if (rev < 0)
            return rev;
    }
}
