/* binary.h - the seed's binary protocol (section 7.2) and length-prefixed frames (section 5.2).
 *
 * Binary frames. Every frame, request or reply, starts with an 8-byte header, big-endian:
 *
 *     version u8 = 1 | command u8 | length u16 (payload bytes after the header) | sequence u32
 *
 * Requests (a connection whose first byte is 0x01 speaks this on any port: the query port
 * serves it with the query role, every other port with the log role):
 *
 *   0x01 LOG     level u8 (0 TRACE .. 5 FATAL) | timestamp u32 (unix seconds, 0 = now)
 *                | msg_length u16 | message            msg_length must be length - 7
 *   0x02 QUERY   flags u8 (bit 0: count only) | expression (the query language, UTF-8)
 *   0x03 PING    any payload (ignored)
 *   0x04 STATS   no payload
 *   0x05 AUTH    the token                              (LogCaster's addition)
 *   0x06 LOG_MS  level u8 | timestamp_ms u64 (0 = now) | message (the rest of the payload)
 *                                                       (LogCaster's addition)
 *
 * Replies carry the request's sequence number and its command with bit 7 set:
 *
 *   0x81 / 0x86  ack for LOG / LOG_MS: id u64, sent once the entry is as durable as --fsync
 *                promises; acks and every other reply come in request order
 *   0x82         query answer: count u64 (rows that follow, or the count for count-only)
 *   0x90         one row of that answer: id u64 | ts_ms i64 | level u8 | flags u8 | message
 *                (flags bit 0: stored truncated; bit 1: cut to fit this frame)
 *   0x83         pong, no payload (after every earlier reply: a barrier for "all acked")
 *   0x84         stats: "key value\n" lines, as the query port's STATS
 *   0x85         authenticated, no payload
 *   0xFF         error: code u8 | reason (text)
 *
 * A malformed payload is answered with an error frame and the stream goes on (the header's
 * length still delimits the frame). A header that cannot be trusted (version other than 1,
 * unknown command) is answered with an error frame and the connection is closed: after it no
 * byte boundary can be known, and guessing would desynchronise silently.
 *
 * Length-prefixed frames (a connection whose first byte is 0x00, log port only):
 *
 *     length u32 BE | payload      payload: one log message in any text form the log port
 *                                  takes (plain, LOG|..., LOG:..., syslog, JSON), newlines kept
 *
 * Lengths over BIN_FRAME_MAX are refused with "ERROR|frame too large ..." in a frame and the
 * connection closes. Framed forms (LOG|..., LOG:...) get their reply in a frame. */
#ifndef LC_BINARY_H
#define LC_BINARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BIN_VERSION     1
#define BIN_HEADER      8
#define BIN_PAYLOAD_MAX 65535
#define BIN_FRAME_MAX   (1024 * 1024)    /* Length-prefixed payload cap (seed 5.2). */
#define BIN_TS_MS_MAX   9999999999999ull /* LOG_MS: the text forms' last second, in 2286. */

enum bin_cmd {
    BIN_LOG = 0x01,
    BIN_QUERY = 0x02,
    BIN_PING = 0x03,
    BIN_STATS = 0x04,
    BIN_AUTH = 0x05,
    BIN_LOG_MS = 0x06,
    BIN_REPLY = 0x80, /* Bit set on replies. */
    BIN_ROW = 0x90,
    BIN_ERROR = 0xFF,
};

enum bin_error {
    BIN_E_VERSION = 1,    /* Unsupported version: the connection closes. */
    BIN_E_COMMAND = 2,    /* Unknown command: the connection closes. */
    BIN_E_MALFORMED = 3,  /* The payload does not match the command. */
    BIN_E_TOO_LONG = 4,   /* Message over the server's line limit (framed logs are refused). */
    BIN_E_AUTH = 5,       /* Authentication required or failed: the connection closes. */
    BIN_E_WRONG_PORT = 6, /* LOG on the query port, QUERY or STATS on the log port. */
    BIN_E_STORE = 7,      /* The store could not take the entry. */
    BIN_E_QUERY = 8,      /* The expression does not parse. */
    BIN_E_INTERNAL = 9,
};

struct bin_header {
    uint8_t version, command;
    uint16_t length;
    uint32_t seq;
};

/* The header at p (n >= BIN_HEADER). */
struct bin_header bin_header_read(const unsigned char *p);
void bin_header_write(unsigned char *out, uint8_t command, uint16_t length, uint32_t seq);

/* True when h can be trusted to delimit a frame (version 1, a known request command). */
bool bin_request_known(const struct bin_header *h);

/* The next binary-protocol frame at s[0..n), as the log port walks a stream: 1 when it is whole
 * (payload at s + BIN_HEADER, h->length bytes), 0 when more bytes are needed (h is filled once
 * the header is here), -1 when the header cannot be trusted (the stream ends there; h says
 * what to answer). */
int bin_frame_next(const unsigned char *s, size_t n, struct bin_header *h);

/* The next length-prefixed frame at s[0..n) ([u32 BE length][one message]): its payload length
 * in *len, of which the first min(*len, max) bytes follow the prefix. Returns the bytes of
 * prefix and kept payload once they are here, 0 while they are not, and -1 when the length is
 * over BIN_FRAME_MAX (the stream cannot be trusted past it). */
long bin_length_frame(const unsigned char *s, size_t n, size_t max, size_t *len);

struct bin_log {
    int level;       /* 0..5 */
    int64_t ts_ms;   /* INT64_MIN: the receive time. */
    const char *msg; /* Borrowed from the payload. */
    size_t msg_len;
};

struct conn;

/* Queue one frame (header and payload) on c's output. */
void bin_send(struct conn *c, uint8_t command, uint32_t seq, const void *payload, size_t len);
/* An error frame: code and a reason (cut to 255 bytes). */
void bin_send_error(struct conn *c, uint32_t seq, uint8_t code, const char *why);

/* Parse a LOG or LOG_MS payload. Returns NULL, or the reason it is malformed (static text). */
const char *bin_log_parse(uint8_t command, const unsigned char *payload, size_t len,
                          struct bin_log *out);

static inline uint32_t bin_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t bin_get64(const unsigned char *p)
{
    return (uint64_t)bin_get32(p) << 32 | bin_get32(p + 4);
}
static inline void bin_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}
static inline void bin_put64(unsigned char *p, uint64_t v)
{
    bin_put32(p, (uint32_t)(v >> 32));
    bin_put32(p + 4, (uint32_t)v);
}

#endif
