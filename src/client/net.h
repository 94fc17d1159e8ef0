/* net.h - the client's sockets: connect with a timeout, write everything, read lines.
 *
 * Every socket this module hands out is non-blocking; the helpers below wait with poll() so
 * that each wait has a deadline and a dead server shows up as -ETIMEDOUT instead of a hang.
 * Writes use MSG_NOSIGNAL, so a closed peer is -EPIPE, never SIGPIPE. */
#ifndef LCC_NET_H
#define LCC_NET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Connect to host:port (name or address, IPv4 or IPv6; each resolved address is tried in
 * turn) within timeout_ms. Returns a non-blocking fd with TCP_NODELAY set, or a negative
 * errno with err holding one sentence like "cannot connect to 127.0.0.1:9998: Connection
 * refused". */
int lcc_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen);

/* Write all len bytes, retrying after EINTR and partial writes, waiting at most timeout_ms
 * for the socket to accept more. With drain set, bytes the peer sends meanwhile are read and
 * thrown away so that a peer which answers cannot deadlock us. Returns 0 or a negative errno
 * (-ETIMEDOUT, -EPIPE, -ECONNRESET, ...). */
int lcc_write_all(int fd, const void *buf, size_t len, int timeout_ms, bool drain);

/* Set by a signal handler (tail's SIGINT) to make every wait return -EINTR instead of
 * resuming. */
extern volatile sig_atomic_t lcc_interrupted;

/* Wait until fd reports one of events (poll flags) or the monotonic deadline_ms passes
 * (INT64_MAX: no deadline). Returns the revents, -ETIMEDOUT, -EINTR once lcc_interrupted is
 * set, or another negative errno. */
int lcc_wait_fd(int fd, short events, int64_t deadline_ms);

/* Milliseconds on the monotonic clock. */
int64_t lcc_now_ms(void);
/* Seconds on the monotonic clock, with nanosecond resolution. */
double lcc_now_s(void);
/* Sleep ms milliseconds, resuming after signals. */
void lcc_sleep_ms(int64_t ms);

/* A growable buffer that splits a byte stream into lines. */
struct lcc_reader {
    char *buf;
    size_t cap;
    size_t start; /* First byte not yet returned. */
    size_t end;   /* One past the last byte read. */
    size_t scan;  /* Bytes before this offset (from start) hold no '\n'. */
};

void lcc_reader_init(struct lcc_reader *r);
void lcc_reader_free(struct lcc_reader *r);  /* Safe on a zeroed or already freed reader. */
void lcc_reader_reset(struct lcc_reader *r); /* Drop buffered bytes, keep the memory. */

/* Return 1 and the next complete line in *line and *len (a trailing "\r" removed, NUL written in
 * place of the '\n'), or 0 when no complete line is buffered. The line is borrowed: valid
 * until the next call that reads or fills. */
int lcc_reader_next(struct lcc_reader *r, char **line, size_t *len);

/* After EOF: return 1 and whatever partial line is left (as lcc_reader_next), or 0. */
int lcc_reader_rest(struct lcc_reader *r, char **line, size_t *len);

/* Room for at least half a buffer of new bytes at *p (*n bytes; moving or growing the
 * buffer as needed); the caller adds what it wrote to r->end. Returns 0 or -ENOMEM. */
int lcc_reader_space(struct lcc_reader *r, char **p, size_t *n);

/* Add len bytes to the buffer. Returns 0 or -ENOMEM. */
int lcc_reader_append(struct lcc_reader *r, const void *src, size_t len);

/* One read() from fd into the buffer (growing it when a line does not fit). Returns bytes
 * read, 0 at EOF, -EAGAIN when nothing is ready, or another negative errno. */
ssize_t lcc_reader_fill(struct lcc_reader *r, int fd);

/* Read the next line from a socket, waiting at most timeout_ms between bytes. Returns 1 with
 * the line (borrowed as above), 0 if the peer closed, or a negative errno (-ETIMEDOUT). */
int lcc_read_line(struct lcc_reader *r, int fd, int timeout_ms, char **line, size_t *len);

#endif
