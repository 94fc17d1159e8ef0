/* detect.h - which protocol a connection speaks, from its first bytes (seed 10.2).
 *
 * Every listener sniffs the first line before handing the connection to a protocol; the bytes
 * are not consumed, the chosen protocol reads them again. The rules, in order:
 *
 *   HTTP     the first line is `METHOD SP target SP HTTP/1.<digit>` (CR optional) with METHOD
 *            one of GET HEAD POST PUT DELETE OPTIONS PATCH and target starting with '/' or
 *            being '*'. An access-log line such as `GET /x 200` is not a request: without the
 *            version it stays a log line.
 *   IRC      the first line is an IRC registration command: `CAP LS[ 302]`, `CAP END`,
 *            `NICK <nick>`, `PASS <word>` or `USER <user> <mode> <unused> :<realname>`
 *            (commands in upper case, as clients send them; one parameter for NICK and PASS,
 *            so "NICK changed by admin" stays a log line).
 *   BINARY   the seed's binary protocol (section 7.2, binary.h): the first byte is the version
 *            0x01 and the second a request command 0x01..0x06 (LOG, QUERY, PING, STATS, AUTH,
 *            LOG_MS). No text line starts with a control byte, so this never takes a log line.
 *   DEFAULT  anything else: the listener's own role (log lines on the ingest port, commands
 *            on the query port).
 *
 * A decision needs at most the first line (DETECT_PEEK_MAX bytes at most): when the bytes so
 * far are a prefix of some HTTP or IRC form, the answer is DETECT_MORE. The first byte alone
 * rules out HTTP and IRC for nearly every log line (a digit, '<', '{', a lower-case letter),
 * so the ingest path pays one comparison per connection. */
#ifndef LC_DETECT_H
#define LC_DETECT_H

#include <stdbool.h>
#include <stddef.h>

#define DETECT_PEEK_MAX 8192 /* Longest first line looked at; past it: DEFAULT. */

enum detect_result {
    DETECT_MORE,    /* Not decided yet: wait for more bytes (or EOF). */
    DETECT_DEFAULT, /* The listener's own protocol. */
    DETECT_HTTP,
    DETECT_IRC,
    DETECT_BINARY,
};

/* Decide from p[0..n). eof: no more bytes will come (then the answer is never MORE). */
enum detect_result detect_protocol(const char *p, size_t n, bool eof);

const char *detect_name(enum detect_result r); /* "more", "default", "http", "irc", "binary" */

#endif
