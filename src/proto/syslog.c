/* syslog.c - RFC 5424 and RFC 3164 (BSD) syslog messages and RFC 6587 octet counting.
 *
 * Strict where a mistake would be unsafe: the PRI, the bounds of the input, the characters and
 * lengths of every header field. Liberal where real senders deviate: an RFC 5424 header with a
 * malformed STRUCTURED-DATA keeps its header and the rest is the message; a malformed header
 * falls back to the BSD reading; BSD messages may lack the timestamp, the hostname or the tag,
 * or carry an RFC 3339 timestamp (rsyslog's forwarding formats). Timestamps are computed here
 * (days from the civil date) rather than with strptime/timegm, which depend on the locale and
 * the process's time zone. Everything returned points into the caller's bytes. */
#include "proto/syslog.h"

#include <stdbool.h>
#include <string.h>

#include "base/calendar.h"
#include "base/entry.h"

#define HOST_MAX   255 /* RFC 5424 field limits; the BSD TAG shares APP-NAME's. */
#define APP_MAX    48
#define PROCID_MAX 128
#define MSGID_MAX  32
#define SDNAME_MAX 32 /* SD-ID and PARAM-NAME. */
#define FRAC_MAX   9  /* Fraction digits accepted (RFC 5424 allows 6; nanoseconds are common). */

/* The times we compute: years 0000 to 9999. */
#define TS_MIN (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static const char bom[3] = {'\xef', '\xbb', '\xbf'};

/* Severity to enum lc_level: emerg, alert, crit, err, warning, notice, info, debug. */
static const int severity_level[8] = {LC_FATAL, LC_FATAL, LC_FATAL, LC_ERROR,
                                      LC_WARN,  LC_INFO,  LC_INFO,  LC_DEBUG};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* PRINTUSASCII (%d33-126), the alphabet of every RFC 5424 header field. */
static bool is_print(char c)
{
    return (unsigned char)c >= 33 && (unsigned char)c <= 126;
}

/* The end of the run of PRINTUSASCII bytes starting at p[i]. */
static size_t token_end(const char *p, size_t n, size_t i)
{
    while (i < n && is_print(p[i]))
        i++;
    return i;
}

/* The value of the k digits at p, or -1 if they are not all digits. */
static int digits(const char *p, size_t k)
{
    int v = 0;
    for (size_t i = 0; i < k; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* An optional ".fraction" at p[0..n): returns the bytes read (0 when absent, -1 when there are
 * no digits or too many) and sets *ms to its first three digits as milliseconds. */
static long fraction(const char *p, size_t n, int *ms)
{
    *ms = 0;
    if (n == 0 || p[0] != '.')
        return 0;
    size_t k = 0;
    while (1 + k < n && is_digit(p[1 + k])) {
        if (k < 3)
            *ms = *ms * 10 + (p[1 + k] - '0');
        k++;
    }
    if (k == 0 || k > FRAC_MAX)
        return -1;
    for (size_t i = k; i < 3; i++)
        *ms *= 10;
    return (long)(1 + k);
}

/* An RFC 3339 timestamp filling p[0..n): YYYY-MM-DD"T"hh:mm:ss[.frac](Z|+hh:mm|-hh:mm), with
 * 'T' and 'Z' in either case, the offset's colon optional and a missing offset read as UTC.
 * Returns false when p does not have that shape; otherwise true, with *ts the time or
 * INT64_MIN when a value is out of range (a 31st of February, hour 24). */
static bool parse_rfc3339(const char *p, size_t n, int64_t *ts)
{
    if (n < 19 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't') || p[13] != ':' ||
        p[16] != ':')
        return false;
    int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2);
    int h = digits(p + 11, 2), mi = digits(p + 14, 2), s = digits(p + 17, 2), ms;
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0)
        return false;
    size_t i = 19;
    long f = fraction(p + i, n - i, &ms);
    if (f < 0)
        return false;
    i += (size_t)f;
    int off = 0, oh = 0, om = 0; /* The offset in minutes east of UTC. */
    if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i < n && (p[i] == '+' || p[i] == '-')) {
        int sign = p[i] == '-' ? -1 : 1;
        i++;
        if (n - i == 5 && p[i + 2] == ':') {
            oh = digits(p + i, 2);
            om = digits(p + i + 3, 2);
        } else if (n - i == 4) {
            oh = digits(p + i, 2);
            om = digits(p + i + 2, 2);
        } else {
            return false;
        }
        if (oh < 0 || om < 0)
            return false;
        i = n;
        off = sign * (oh * 60 + om);
    }
    if (i != n)
        return false;
    *ts = lc_civil_ms(y, mo, d, h, mi, s, ms);
    if (*ts != INT64_MIN && (oh > 23 || om > 59))
        *ts = INT64_MIN;
    if (*ts != INT64_MIN)
        *ts -= off * 60000LL;
    return true;
}

/* A BSD timestamp at the start of p[0..n): "Mmm dd hh:mm:ss" with the day as "dd", " d" or
 * "d" and an optional fraction, followed by a space or the end. The year is the latest that
 * puts the time no more than a day after now_ms (so a date more than a day in the future is
 * last year's, and a sender a little ahead at New Year keeps its new year). Returns the bytes
 * of the timestamp (0 when p does not start with one) and sets *ts, INT64_MIN when a value is
 * out of range, or now_ms or the year found is outside years 0-9999. */
static size_t parse_bsd_time(const char *p, size_t n, int64_t now_ms, int64_t *ts)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    if (n < 14 || p[3] != ' ')
        return 0;
    int mo = 0;
    for (int k = 0; k < 12 && !mo; k++) {
        bool eq = true;
        for (int j = 0; j < 3; j++)
            eq = eq && (p[j] | 0x20) == months[3 * k + j];
        if (eq)
            mo = k + 1;
    }
    if (!mo)
        return 0;
    size_t i = 4;
    if (p[i] == ' ')
        i++; /* " 6" */
    size_t d0 = i;
    while (i < n && i - d0 < 3 && is_digit(p[i]))
        i++;
    if (i == d0 || i - d0 > 2)
        return 0;
    int d = digits(p + d0, i - d0);
    if (n - i < 9 || p[i] != ' ' || p[i + 3] != ':' || p[i + 6] != ':')
        return 0;
    int h = digits(p + i + 1, 2), mi = digits(p + i + 4, 2), s = digits(p + i + 7, 2), ms;
    if (h < 0 || mi < 0 || s < 0)
        return 0;
    i += 9;
    long f = fraction(p + i, n - i, &ms);
    if (f < 0)
        return 0;
    i += (size_t)f;
    if (i < n && p[i] != ' ')
        return 0;
    *ts = INT64_MIN;
    if (now_ms < TS_MIN || now_ms > TS_MAX)
        return i;
    int64_t day = now_ms / LC_MS_PER_DAY - (now_ms % LC_MS_PER_DAY < 0);
    int64_t year = lc_year_of_days(day);
    /* Eight years back reaches the previous 29th of February. */
    for (int64_t y = year + 1; y >= year - 8; y--) {
        if (y < 0 || y > 9999 || d > lc_days_in_month(y, mo))
            continue;
        int64_t t = lc_civil_ms(y, mo, d, h, mi, s, ms);
        if (t == INT64_MIN)
            break;
        if (t <= now_ms + LC_MS_PER_DAY) {
            *ts = t;
            break;
        }
    }
    return i;
}

/* ---- STRUCTURED-DATA ---- */

/* Walks STRUCTURED-DATA one SD-PARAM at a time. */
struct sd_iter {
    const char *p;
    size_t n, i;    /* i is the next byte to read. */
    const char *id; /* The current SD-ELEMENT's SD-ID. */
    size_t id_len;
    bool in_elem; /* Between the element's "[SD-ID" and its "]". */
};

/* An SD-NAME at p[0..n): 1-32 PRINTUSASCII but '=', ']' and '"'. Returns its length or 0. */
static size_t sd_name(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && i <= SDNAME_MAX && is_print(p[i]) && p[i] != '=' && p[i] != ']' && p[i] != '"')
        i++;
    return i > SDNAME_MAX ? 0 : i;
}

static bool sd_escaped(char c)
{
    return c == '"' || c == '\\' || c == ']';
}

/* The next SD-PARAM: returns 1 with its name and raw value (escapes not decoded), 0 at the end
 * of the STRUCTURED-DATA (it->i is then its length), -1 when it is malformed. Elements without
 * parameters are checked and skipped. A backslash before any other byte is a literal one. */
static int sd_next(struct sd_iter *it, const char **name, size_t *name_len, const char **val,
                   size_t *val_len)
{
    const char *p = it->p;
    size_t n = it->n;
    for (;;) {
        if (!it->in_elem) {
            if (it->i >= n || p[it->i] != '[')
                return 0;
            size_t k = sd_name(p + it->i + 1, n - it->i - 1);
            if (!k)
                return -1;
            it->id = p + it->i + 1;
            it->id_len = k;
            it->i += 1 + k;
            it->in_elem = true;
        }
        if (it->i >= n)
            return -1;
        if (p[it->i] == ']') {
            it->i++;
            it->in_elem = false;
            continue;
        }
        if (p[it->i] != ' ')
            return -1;
        size_t i = it->i + 1, k = sd_name(p + i, n - i);
        if (!k || i + k + 1 >= n || p[i + k] != '=' || p[i + k + 1] != '"')
            return -1;
        *name = p + i;
        *name_len = k;
        i += k + 2;
        size_t v = i;
        while (i < n && p[i] != '"')
            i += p[i] == '\\' && i + 1 < n && sd_escaped(p[i + 1]) ? 2 : 1;
        if (i >= n)
            return -1;
        *val = p + v;
        *val_len = i - v;
        it->i = i + 1;
        return 1;
    }
}

/* The length of the well-formed STRUCTURED-DATA (one or more SD-ELEMENTs) at the start of
 * p[0..n), or 0 if there is none. */
static size_t sd_span(const char *p, size_t n)
{
    struct sd_iter it = {.p = p, .n = n};
    const char *name, *val;
    size_t name_len, val_len;
    int r;
    if (n == 0 || p[0] != '[')
        return 0;
    while ((r = sd_next(&it, &name, &name_len, &val, &val_len)) == 1)
        ;
    return r == 0 ? it.i : 0;
}

/* ---- Messages ---- */

static void set_msg(struct syslog_msg *m, const char *p, size_t n)
{
    if (n >= 3 && memcmp(p, bom, 3) == 0) {
        p += 3;
        n -= 3;
    }
    m->msg = p;
    m->msg_len = n;
}

/* A header field, where the NILVALUE "-" is an absent part. */
static void set_field(const char **f, size_t *f_len, const char *p, size_t n)
{
    *f = p;
    *f_len = n == 1 && p[0] == '-' ? 0 : n;
}

/* RFC 5424 after the PRI at p[i]: "1" SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID,
 * then SP STRUCTURED-DATA [SP MSG]. The header must be well formed; STRUCTURED-DATA that is
 * missing or malformed is left empty and what follows the header is the message. Returns
 * false, with m untouched, when the header is not RFC 5424. */
static bool parse_5424(const char *p, size_t n, size_t i, struct syslog_msg *m)
{
    static const size_t max[5] = {64, HOST_MAX, APP_MAX, PROCID_MAX, MSGID_MAX};
    const char *f[5];
    size_t len[5];
    if (n - i < 2 || p[i] != '1' || p[i + 1] != ' ')
        return false;
    i += 2;
    for (int k = 0; k < 5; k++) {
        size_t e = token_end(p, n, i);
        if (e == i || e - i > max[k] || (e < n && p[e] != ' '))
            return false;
        if (k < 4 && e == n)
            return false;
        f[k] = p + i;
        len[k] = e - i;
        i = e < n ? e + 1 : e;
    }
    int64_t ts = INT64_MIN;
    if (!(len[0] == 1 && f[0][0] == '-') && !parse_rfc3339(f[0], len[0], &ts))
        return false;
    m->format = SYSLOG_5424;
    m->ts_ms = ts;
    set_field(&m->host, &m->host_len, f[1], len[1]);
    set_field(&m->app, &m->app_len, f[2], len[2]);
    set_field(&m->procid, &m->procid_len, f[3], len[3]);
    set_field(&m->msgid, &m->msgid_len, f[4], len[4]);
    size_t sd = sd_span(p + i, n - i);
    if (sd > 0 && (i + sd == n || p[i + sd] == ' ')) {
        m->sd = p + i;
        m->sd_len = sd;
        i += sd < n - i ? sd + 1 : sd;
    } else if (i < n && p[i] == '-' && (i + 1 == n || p[i + 1] == ' ')) {
        m->sd = p + i; /* NILVALUE */
        i += i + 1 < n ? 2 : 1;
    } /* Else it is missing or malformed, and the message starts here. */
    set_msg(m, p + i, n - i);
    return true;
}

/* A BSD TAG at p[0..n): 1-48 PRINTUSASCII but ':', '[' and ']', then "[pid]" (up to 128 such
 * bytes but '[' and ']') and ':', or either one alone, followed by a space or the end.
 * Returns the bytes up to the ':' or ']' included and sets app and procid, or returns 0. */
static size_t parse_tag(const char *p, size_t n, struct syslog_msg *m)
{
    size_t i = 0, pid = 0, pid_len = 0;
    while (i < n && is_print(p[i]) && p[i] != ':' && p[i] != '[' && p[i] != ']')
        i++;
    size_t tag_len = i;
    if (tag_len == 0 || tag_len > APP_MAX)
        return 0;
    bool has_pid = i < n && p[i] == '[';
    if (has_pid) {
        pid = ++i;
        while (i < n && is_print(p[i]) && p[i] != '[' && p[i] != ']')
            i++;
        if (i >= n || p[i] != ']' || i - pid > PROCID_MAX)
            return 0;
        pid_len = i - pid;
        i++;
    }
    if (i < n && p[i] == ':')
        i++;
    else if (!has_pid)
        return 0;
    if (i < n && p[i] != ' ')
        return 0;
    m->app = p;
    m->app_len = tag_len;
    m->procid = p + pid;
    m->procid_len = pid_len;
    return i;
}

static size_t skip_spaces(const char *p, size_t n, size_t i)
{
    while (i < n && p[i] == ' ')
        i++;
    return i;
}

/* RFC 3164 after the PRI at p[i]: [TIMESTAMP SP [HOSTNAME SP]] [TAG SP] MSG. The timestamp is
 * BSD or RFC 3339. A hostname is looked for only after a timestamp (senders that leave out the
 * timestamp leave out the hostname too), and only when the word there is not itself a tag, as
 * in logger's and rsyslog's local "<PRI>Mmm dd hh:mm:ss TAG[pid]: msg". */
static void parse_3164(const char *p, size_t n, size_t i, int64_t now_ms, struct syslog_msg *m)
{
    m->format = SYSLOG_3164;
    size_t k = parse_bsd_time(p + i, n - i, now_ms, &m->ts_ms);
    if (k == 0 && i < n && is_digit(p[i])) {
        size_t e = token_end(p, n, i);
        if ((e == n || p[e] == ' ') && parse_rfc3339(p + i, e - i, &m->ts_ms))
            k = e - i;
    }
    size_t tag = 0;
    if (k > 0) {
        i = skip_spaces(p, n, i + k);
        tag = parse_tag(p + i, n - i, m);
        size_t e = token_end(p, n, i);
        if (!tag && e > i && e - i <= HOST_MAX && (e == n || p[e] == ' ')) {
            set_field(&m->host, &m->host_len, p + i, e - i);
            i = skip_spaces(p, n, e);
        }
    }
    if (!tag)
        tag = parse_tag(p + i, n - i, m);
    if (tag) {
        i += tag;
        if (i < n)
            i++; /* The space after the tag. */
    }
    set_msg(m, p + i, n - i);
}

/* On -1, out has format SYSLOG_NONE, facility, severity and level -1, and no parts. */
int syslog_parse(const char *p, size_t n, int64_t now_ms, struct syslog_msg *out)
{
    *out = (struct syslog_msg){
        .format = SYSLOG_NONE, .facility = -1, .severity = -1, .level = -1, .ts_ms = INT64_MIN};
    if (!p || n < 3 || p[0] != '<')
        return -1;
    size_t i = 1;
    int pri = 0;
    while (i < n && i <= 4 && is_digit(p[i]))
        pri = pri * 10 + (p[i++] - '0');
    if (i == 1 || i > 4 || i >= n || p[i] != '>' || (i > 2 && p[1] == '0') || pri > 191)
        return -1;
    i++;
    out->facility = pri / 8;
    out->severity = pri % 8;
    out->level = severity_level[pri % 8];
    const char *end = p + n;
    out->host = out->app = out->procid = out->msgid = out->sd = out->msg = end;
    if (!parse_5424(p, n, i, out))
        parse_3164(p, n, i, now_ms, out);
    return 0;
}

/* Whether s[0..n) starts like the syslog message after a frame's PRI: an RFC 5424 VERSION
 * ("1 "), an RFC 3164 month ("May "), or an ISO date ("2024-"). 1 yes, 0 no, -1 too short. */
static int syslog_header_follows(const char *s, size_t n)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n >= 1 && s[0] == '1')
        return n < 2 ? -1 : s[1] == ' ';
    if (n >= 1 && s[0] >= '2' && s[0] <= '9') {
        for (size_t i = 1; i < 5; i++) {
            if (i == n)
                return -1;
            if (i < 4 ? s[i] < '0' || s[i] > '9' : s[i] != '-')
                return 0;
        }
        return 1;
    }
    if (n < 4)
        return n && (s[0] < 'A' || s[0] > 'S') ? 0 : -1;
    for (const char *m = months; *m; m += 3)
        if (memcmp(s, m, 3) == 0)
            return s[3] == ' ';
    return 0;
}

long syslog_octet_frame(const char *s, size_t n, size_t max, bool strict, bool eof, size_t *off,
                        size_t *body)
{
    size_t i = 0, len = 0;
    while (i < n && i < 10 && s[i] >= '0' && s[i] <= '9')
        len = len * 10 + (size_t)(s[i++] - '0');
    if (i == 10 || s[0] == '0')
        return -1;
    if (i == n)
        return eof ? -1 : 0;
    if (s[i] != ' ')
        return -1;
    size_t j = i + 1; /* The PRI: '<', 1 to 3 digits, '>'. */
    if (j == n)
        return eof ? -1 : 0;
    if (s[j] != '<')
        return -1;
    size_t digits = ++j;
    while (j < n && j < digits + 3 && s[j] >= '0' && s[j] <= '9')
        j++;
    if (j == n)
        return eof ? -1 : 0;
    if (j == digits || s[j] != '>')
        return -1;
    *off = i + 1;
    if (len < j + 1 - *off)
        return -1; /* Shorter than its own PRI. */
    if (strict) {
        size_t hdr = *off + len - (j + 1); /* The frame's bytes after the PRI. */
        size_t here = n - (j + 1);
        int h = syslog_header_follows(s + j + 1, here < hdr ? here : hdr);
        if (h == 0 || (h < 0 && (eof || here >= hdr)))
            return -1;
        if (h < 0)
            return 0;
    }
    *body = len < max ? len : max;
    if (*body < j + 1 - *off)
        return -1; /* A PRI longer than --max-line: never a frame worth skipping for. */
    if (n - *off < *body)
        return eof ? -1 : 0;
    return (long)(*off + len);
}

/* ---- Fields ---- */

/* The length of the valid UTF-8 sequence of two to four bytes at p[0..n), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t k = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (k == 0 || n < k)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xf0 && p[1] < 0x90)) /* overlong */
        return 0;
    if ((c == 0xed && p[1] > 0x9f) || (c == 0xf4 && p[1] > 0x8f)) /* surrogate, > U+10FFFF */
        return 0;
    return k;
}

static void put(char *dst, size_t *o, char c)
{
    if (dst)
        dst[*o] = c;
    (*o)++;
}

/* Encodes a value, decoding the SD escapes first when sd is set. Unquoted, bytes are copied
 * and *dirty is set if the value needs quoting (a space, quote, backslash, control byte or
 * invalid UTF-8). Quoted, '"' and '\' are escaped with a backslash and control bytes and
 * invalid UTF-8 are written as "\xHH". Returns the length, writing to dst unless it is NULL. */
static size_t encode(const char *v, size_t n, bool sd, bool quote, char *dst, bool *dirty)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (quote)
        put(dst, &o, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        bool bad = c < 0x20 || c == 0x7f;
        if (sd && c == '\\' && i + 1 < n && sd_escaped(v[i + 1])) {
            c = (unsigned char)v[i + 1];
            i += 2;
        } else if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)v + i, n - i);
            bad = k == 0;
            for (size_t j = 0; j < k; j++)
                put(dst, &o, v[i + j]);
            i += k ? k : 1;
            if (k)
                continue;
        } else {
            i++;
        }
        if (bad || c == ' ' || c == '"' || c == '\\')
            *dirty = true;
        if (bad && quote) {
            put(dst, &o, '\\');
            put(dst, &o, 'x');
            put(dst, &o, hex[c >> 4]);
            put(dst, &o, hex[c & 15]);
        } else {
            if (quote && (c == '"' || c == '\\'))
                put(dst, &o, '\\');
            put(dst, &o, (char)c);
        }
    }
    if (quote)
        put(dst, &o, '"');
    return o;
}

/* Appends " key=value" (key is k1 or "k1.k2") if it fits in cap; returns whether it did. */
static bool put_field(char *out, size_t cap, size_t *len, const char *k1, size_t k1_len,
                      const char *k2, size_t k2_len, const char *v, size_t v_len, bool sd)
{
    bool dirty = false;
    size_t vl = encode(v, v_len, sd, false, NULL, &dirty);
    bool quote = dirty || v_len == 0;
    if (quote)
        vl = encode(v, v_len, sd, true, NULL, &dirty);
    size_t need = 1 + k1_len + (k2 ? 1 + k2_len : 0) + 1 + vl;
    if (need > cap - *len)
        return false;
    char *o = out + *len;
    *o++ = ' ';
    memcpy(o, k1, k1_len);
    o += k1_len;
    if (k2) {
        *o++ = '.';
        memcpy(o, k2, k2_len);
        o += k2_len;
    }
    *o++ = '=';
    encode(v, v_len, sd, quote, o, &dirty);
    *len += need;
    return true;
}

/* Facility names as syslog senders and rsyslog write them (RFC 5424 table 1). */
static const char *const facility_names[24] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog", "lpr",    "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "audit",  "alert",  "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};

size_t syslog_fields(const struct syslog_msg *m, char *out, size_t cap)
{
    const char *fac = m->facility >= 0 && m->facility < 24 ? facility_names[m->facility] : "";
    const struct {
        const char *key, *v;
        size_t v_len;
    } hdr[5] = {{"host", m->host, m->host_len},
                {"app", m->app, m->app_len},
                {"procid", m->procid, m->procid_len},
                {"msgid", m->msgid, m->msgid_len},
                {"facility", fac, strlen(fac)}};
    size_t len = 0;
    for (int k = 0; k < 5; k++)
        if (hdr[k].v_len > 0 && !put_field(out, cap, &len, hdr[k].key, strlen(hdr[k].key), NULL, 0,
                                           hdr[k].v, hdr[k].v_len, false))
            return len;
    struct sd_iter it = {.p = m->sd, .n = m->sd_len};
    const char *name, *val;
    size_t name_len, val_len;
    while (sd_next(&it, &name, &name_len, &val, &val_len) == 1)
        if (!put_field(out, cap, &len, it.id, it.id_len, name, name_len, val, val_len, true))
            break;
    return len;
}
