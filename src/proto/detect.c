/* detect.c - protocol sniffing from a connection's first line (rules in detect.h).
 *
 * Each form is matched by a small cursor that answers YES (the whole first line matches, line
 * end included), SHORT (the bytes run out while they still match) or NO. The connection is
 * HTTP or IRC on a YES, waits on a SHORT, and is the listener's own protocol otherwise.
 *
 * Choices where the header leaves room:
 *   - A form needs its line end (LF, or CRLF). At EOF an unterminated first line is therefore
 *     DEFAULT: HTTP and IRC clients always end their lines, log senders often do not.
 *   - A bare CR must be followed by LF; "GET / HTTP/1.1\rX" is a log line.
 *   - The HTTP target is any run of bytes above SP other than DEL (the HTTP parser judges it
 *     strictly later); "*" must be followed by SP.
 *   - A NICK, PASS or USER word is any run of bytes above SP other than DEL, so "NICK :bob"
 *     is IRC; the USER realname after " :" is anything up to the line end, colour codes
 *     included, and may be empty.
 *   - The first line must end within DETECT_PEEK_MAX bytes, LF included. */
#include "proto/detect.h"

enum match { M_NO, M_SHORT, M_YES };

struct cur {
    const unsigned char *p;
    size_t n, i;
};

/* The literal s at the cursor. */
static enum match lit(struct cur *c, const char *s)
{
    for (; *s; s++, c->i++) {
        if (c->i == c->n)
            return M_SHORT;
        if (c->p[c->i] != (unsigned char)*s)
            return M_NO;
    }
    return M_YES;
}

static bool word_byte(unsigned char b)
{
    return b > ' ' && b != 0x7f;
}

/* One or more word bytes, then a byte that is not one (left unconsumed). */
static enum match word(struct cur *c)
{
    size_t s = c->i;
    while (c->i < c->n && word_byte(c->p[c->i]))
        c->i++;
    if (c->i == c->n)
        return M_SHORT;
    return c->i > s ? M_YES : M_NO;
}

/* LF or CRLF. */
static enum match eol(struct cur *c)
{
    if (c->i < c->n && c->p[c->i] == '\r')
        c->i++;
    return lit(c, "\n");
}

/* The better of two alternatives matched from the same position. */
static enum match alt(enum match a, enum match b)
{
    return a > b ? a : b;
}

#define SEQ(x)                                                                                     \
    do {                                                                                           \
        enum match r_ = (x);                                                                       \
        if (r_ != M_YES)                                                                           \
            return r_;                                                                             \
    } while (0)

static enum match http_form(const unsigned char *p, size_t n)
{
    static const char *const methods[] = {"GET ",    "HEAD ",    "POST ", "PUT ",
                                          "DELETE ", "OPTIONS ", "PATCH "};
    enum match m = M_NO;
    size_t start = 0;
    for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]) && m != M_YES; k++) {
        struct cur c = {p, n, 0};
        m = alt(m, lit(&c, methods[k]));
        start = c.i;
    }
    if (m != M_YES)
        return m;
    struct cur c = {p, n, start};
    if (c.i == n)
        return M_SHORT;
    if (p[c.i] == '*')
        c.i++;
    else if (p[c.i] == '/')
        SEQ(word(&c));
    else
        return M_NO;
    SEQ(lit(&c, " HTTP/1."));
    if (c.i == n)
        return M_SHORT;
    if (p[c.i] < '0' || p[c.i] > '9')
        return M_NO;
    c.i++;
    return eol(&c);
}

static enum match irc_cap(const unsigned char *p, size_t n)
{
    struct cur c = {p, n, 0};
    SEQ(lit(&c, "CAP "));
    size_t at = c.i;
    enum match end = lit(&c, "END");
    if (end == M_YES)
        return eol(&c);
    c.i = at;
    SEQ(alt(end, lit(&c, "LS")));
    at = c.i;
    enum match bare = eol(&c);
    if (bare != M_NO)
        return bare;
    c.i = at;
    SEQ(lit(&c, " 302"));
    return eol(&c);
}

/* NICK <nick> or PASS <word>: exactly one parameter. */
static enum match irc_one(const unsigned char *p, size_t n, const char *cmd)
{
    struct cur c = {p, n, 0};
    SEQ(lit(&c, cmd));
    SEQ(word(&c));
    return eol(&c);
}

static enum match irc_user(const unsigned char *p, size_t n)
{
    struct cur c = {p, n, 0};
    SEQ(lit(&c, "USER "));
    for (int k = 0; k < 3; k++) {
        SEQ(word(&c));
        SEQ(lit(&c, " "));
    }
    SEQ(lit(&c, ":"));
    while (c.i < n && p[c.i] != '\r' && p[c.i] != '\n' && p[c.i] != '\0')
        c.i++;
    return eol(&c);
}

static enum match irc_form(const unsigned char *p, size_t n)
{
    switch (p[0]) {
    case 'C':
        return irc_cap(p, n);
    case 'N':
        return irc_one(p, n, "NICK ");
    case 'P':
        return irc_one(p, n, "PASS ");
    case 'U':
        return irc_user(p, n);
    }
    return M_NO;
}

enum detect_result detect_protocol(const char *buf, size_t n, bool eof)
{
    const unsigned char *p = (const unsigned char *)buf;
    bool capped = n >= DETECT_PEEK_MAX; /* No more bytes will be looked at. */
    if (capped)
        n = DETECT_PEEK_MAX;
    if (n == 0)
        return eof ? DETECT_DEFAULT : DETECT_MORE;

    enum match m;
    switch (p[0]) {
    case 0x01: /* Binary: version 1, then a request command 1..6 (binary.h). */
        if (n == 1)
            return eof ? DETECT_DEFAULT : DETECT_MORE;
        return p[1] >= 0x01 && p[1] <= 0x06 ? DETECT_BINARY : DETECT_DEFAULT;
    case 'G':
    case 'H':
    case 'D':
    case 'O':
        m = http_form(p, n);
        if (m == M_YES)
            return DETECT_HTTP;
        break;
    case 'P': /* POST, PUT, PATCH or PASS. */
        m = http_form(p, n);
        if (m == M_YES)
            return DETECT_HTTP;
        m = alt(m, irc_form(p, n));
        if (m == M_YES)
            return DETECT_IRC;
        break;
    case 'C':
    case 'N':
    case 'U':
        m = irc_form(p, n);
        if (m == M_YES)
            return DETECT_IRC;
        break;
    default: /* A digit, '<', '{', a lower-case letter: nearly every log line. */
        return DETECT_DEFAULT;
    }
    return m == M_SHORT && !eof && !capped ? DETECT_MORE : DETECT_DEFAULT;
}

const char *detect_name(enum detect_result r)
{
    switch (r) {
    case DETECT_MORE:
        return "more";
    case DETECT_DEFAULT:
        return "default";
    case DETECT_HTTP:
        return "http";
    case DETECT_IRC:
        return "irc";
    case DETECT_BINARY:
        return "binary";
    }
    return "unknown";
}
