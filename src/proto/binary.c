/* binary.c - frame headers and LOG payloads of the binary protocol (binary.h). */
#include "proto/binary.h"

#include <string.h>

#include "core/server.h"

_Static_assert(BIN_HEADER + BIN_PAYLOAD_MAX <= CONN_MIN_INPUT, "a whole frame fits the input");

struct bin_header bin_header_read(const unsigned char *p)
{
    return (struct bin_header){p[0], p[1], (uint16_t)(p[2] << 8 | p[3]), bin_get32(p + 4)};
}

void bin_header_write(unsigned char *out, uint8_t command, uint16_t length, uint32_t seq)
{
    out[0] = BIN_VERSION;
    out[1] = command;
    out[2] = (unsigned char)(length >> 8);
    out[3] = (unsigned char)length;
    bin_put32(out + 4, seq);
}

bool bin_request_known(const struct bin_header *h)
{
    return h->version == BIN_VERSION && h->command >= BIN_LOG && h->command <= BIN_LOG_MS;
}

int bin_frame_next(const unsigned char *s, size_t n, struct bin_header *h)
{
    if (n < BIN_HEADER)
        return 0;
    *h = bin_header_read(s);
    if (!bin_request_known(h))
        return -1;
    return n - BIN_HEADER >= h->length ? 1 : 0;
}

long bin_length_frame(const unsigned char *s, size_t n, size_t max, size_t *len)
{
    if (n < 4)
        return 0;
    *len = bin_get32(s);
    if (*len > BIN_FRAME_MAX)
        return -1;
    size_t body = *len > max ? max : *len;
    return n - 4 >= body ? (long)(4 + body) : 0;
}

const char *bin_log_parse(uint8_t command, const unsigned char *payload, size_t len,
                          struct bin_log *out)
{
    if (command == BIN_LOG) {
        if (len < 7)
            return "LOG payload shorter than its 7-byte head";
        size_t mlen = (size_t)payload[5] << 8 | payload[6];
        if (mlen != len - 7)
            return "LOG msg_length does not match the frame length";
        uint32_t ts = bin_get32(payload + 1);
        out->ts_ms = ts ? (int64_t)ts * 1000 : INT64_MIN;
        out->msg = (const char *)payload + 7;
        out->msg_len = mlen;
    } else if (command == BIN_LOG_MS) {
        if (len < 9)
            return "LOG_MS payload shorter than its 9-byte head";
        uint64_t ts = bin_get64(payload + 1);
        if (ts > BIN_TS_MS_MAX)
            return "LOG_MS timestamp past the year 2286";
        out->ts_ms = ts ? (int64_t)ts : INT64_MIN;
        out->msg = (const char *)payload + 9;
        out->msg_len = len - 9;
    } else {
        return "not a LOG command";
    }
    if (payload[0] > 5)
        return "level must be 0 (TRACE) to 5 (FATAL)";
    out->level = payload[0];
    return NULL;
}

void bin_send(struct conn *c, uint8_t command, uint32_t seq, const void *payload, size_t len)
{
    unsigned char h[BIN_HEADER];
    bin_header_write(h, command, (uint16_t)len, seq);
    conn_write(c, h, sizeof(h));
    if (len)
        conn_write(c, payload, len);
}

void bin_send_error(struct conn *c, uint32_t seq, uint8_t code, const char *why)
{
    unsigned char p[256];
    size_t n = strlen(why);
    if (n > sizeof(p) - 1)
        n = sizeof(p) - 1;
    p[0] = code;
    memcpy(p + 1, why, n);
    bin_send(c, BIN_ERROR, seq, p, n + 1);
}
