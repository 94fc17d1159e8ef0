/* linetime.c - the time a log line starts with (see linetime.h).
 *
 * This runs for every plain line, so it is written to say no quickly: the first byte picks the
 * one or two forms it can start, each form checks its fixed punctuation before any arithmetic,
 * and the only form that looks past the first word (an access line's "host ident user [") stops
 * at the third space. No strptime, no timegm: both depend on the locale and the process's time
 * zone, and strptime is far slower than a look at fixed offsets. */
#include "proto/linetime.h"
#include "base/calendar.h"

#include <stdbool.h>

#define FRAC_MAX 9   /* Fraction digits accepted (nanoseconds). */
#define WORD_MAX 256 /* Longest host, ident or user word of an access line. */

/* The years the calendar handles: 0000 to 9999. */
#define TS_MIN (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define TS_MAX 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
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

/* What may follow a time: the end, a blank, or punctuation that closes a field. A letter, a
 * digit, '-' or '.' means the number or date goes on, so it was not a time. */
static bool ends(const char *s, size_t n, size_t i)
{
    if (i == n)
        return true;
    switch (s[i]) {
    case ' ':
    case '\t':
    case ']':
    case ')':
    case ',':
    case ':':
    case ';':
    case '|':
    case '"':
        return true;
    }
    return false;
}

/* A UTC time from its fields (base/calendar.h), years 0..9999 only. */
static int64_t civil_ms(int64_t y, int mo, int d, int h, int mi, int s, int ms)
{
    return y < 0 || y > 9999 ? INT64_MIN : lc_civil_ms(y, mo, d, h, mi, s, ms);
}

/* ---- Pieces ---- */

/* An optional fraction at s[i]: sep followed by 1 to FRAC_MAX digits. Returns the bytes read
 * (0 when absent), or -1 when there are too many digits; *ms gets the first three. A sep not
 * followed by a digit is no fraction (Python's "..,123" has one, "05, next" has none). */
static long fraction(const char *s, size_t n, size_t i, bool comma, int *ms)
{
    *ms = 0;
    if (i + 1 >= n || !(s[i] == '.' || (comma && s[i] == ',')) || !is_digit(s[i + 1]))
        return 0;
    size_t k = 0;
    while (i + 1 + k < n && is_digit(s[i + 1 + k])) {
        if (k < 3)
            *ms = *ms * 10 + (s[i + 1 + k] - '0');
        k++;
    }
    if (k > FRAC_MAX)
        return -1;
    for (size_t j = k; j < 3; j++)
        *ms *= 10;
    return (long)(1 + k);
}

/* A zone offset at s[i]: +hh:mm, +hhmm or +hh (or '-'). Returns its bytes (0 when there is
 * none) and sets *min to the minutes east of UTC; -1 when it is cut short ("+05:3") or a value
 * is out of range. */
static long offset(const char *s, size_t n, size_t i, int *min)
{
    if (i + 3 > n || (s[i] != '+' && s[i] != '-'))
        return 0;
    int sign = s[i] == '-' ? -1 : 1;
    int oh = digits(s + i + 1, 2), om = 0;
    if (oh < 0)
        return 0;
    long len = 3;
    if (i + 3 < n && s[i + 3] == ':') {
        if (i + 6 > n || (om = digits(s + i + 4, 2)) < 0)
            return -1;
        len = 6;
    } else if (i + 3 < n && is_digit(s[i + 3])) {
        if (i + 5 > n || (om = digits(s + i + 3, 2)) < 0)
            return -1;
        len = 5;
    }
    if (oh > 23 || om > 59)
        return -1;
    *min = sign * (oh * 60 + om);
    return len;
}

/* ---- Forms ---- */

/* ISO 8601 at s[i]: "YYYY-MM-DD" or "YYYY/MM/DD", 'T', 't' or ' ', "hh:mm:ss", a fraction, a
 * zone. Returns the index after it (0: none). */
static size_t iso(const char *s, size_t n, size_t i, int64_t *ts)
{
    if (n - i < 19)
        return 0;
    const char *p = s + i;
    char ds = p[4];
    if ((ds != '-' && ds != '/') || p[7] != ds || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
        p[13] != ':' || p[16] != ':')
        return 0;
    int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2);
    int h = digits(p + 11, 2), mi = digits(p + 14, 2), sec = digits(p + 17, 2), ms;
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return 0;
    size_t j = i + 19;
    long f = fraction(s, n, j, true, &ms);
    if (f < 0)
        return 0;
    j += (size_t)f;
    int off = 0, spaced = 0;
    long z;
    if (j < n && (s[j] == 'Z' || s[j] == 'z')) {
        j++;
    } else if ((z = offset(s, n, j, &off)) != 0) {
        if (z < 0)
            return 0;
        j += (size_t)z;
    } else if (j + 1 < n && s[j] == ' ' && (z = offset(s, n, j + 1, &spaced)) >= 5 &&
               ends(s, n, j + 1 + (size_t)z)) {
        /* "2026-12-07 03:04:05 +0000" (Go, Ruby); never "+hh" alone: "05 -10 degrees". */
        off = spaced;
        j += 1 + (size_t)z;
    }
    if (!ends(s, n, j))
        return 0;
    int64_t t = civil_ms(y, mo, d, h, mi, sec, ms);
    if (t == INT64_MIN)
        return 0;
    *ts = t - off * 60000LL;
    return j;
}

/* The month of three letters at p (any case), 1-12, or 0. */
static int month(const char *p)
{
    static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    char a = (char)(p[0] | 0x20), b = (char)(p[1] | 0x20), c = (char)(p[2] | 0x20);
    for (int k = 0; k < 12; k++)
        if (names[3 * k] == a && names[3 * k + 1] == b && names[3 * k + 2] == c)
            return k + 1;
    return 0;
}

/* The time of month mo, day d, ... in the year that puts it nearest recv_ms (ties: the
 * earlier), or INT64_MIN. The nearest is this year's, last year's or next year's, but for a
 * 29th of February, which may need four years either side. */
static int64_t nearest_year(int64_t recv_ms, int mo, int d, int h, int mi, int s, int ms)
{
    if (recv_ms < TS_MIN || recv_ms > TS_MAX)
        return INT64_MIN;
    int64_t year = lc_year_of_days(recv_ms / LC_MS_PER_DAY - (recv_ms % LC_MS_PER_DAY < 0));
    int64_t best = INT64_MIN, best_dist = INT64_MAX;
    int span = mo == 2 && d == 29 ? 4 : 1;
    for (int64_t y = year - span; y <= year + span; y++) {
        int64_t t = civil_ms(y, mo, d, h, mi, s, ms);
        if (t == INT64_MIN)
            continue;
        int64_t dist = t > recv_ms ? t - recv_ms : recv_ms - t;
        if (dist < best_dist) {
            best = t;
            best_dist = dist;
        }
    }
    return best;
}

/* BSD syslog at s[i]: "Mmm dd hh:mm:ss", the day as "dd", " d" or "d", an optional fraction.
 * Returns the index after it (0: none). */
static size_t bsd(const char *s, size_t n, size_t i, int64_t recv_ms, int64_t *ts)
{
    if (n - i < 14 || s[i + 3] != ' ')
        return 0;
    int mo = month(s + i);
    if (!mo)
        return 0;
    size_t j = i + 4;
    if (s[j] == ' ')
        j++; /* " 7" */
    size_t d0 = j;
    while (j < n && j - d0 < 3 && is_digit(s[j]))
        j++;
    if (j == d0 || j - d0 > 2 || n - j < 9 || s[j] != ' ' || s[j + 3] != ':' || s[j + 6] != ':')
        return 0;
    int d = digits(s + d0, j - d0);
    int h = digits(s + j + 1, 2), mi = digits(s + j + 4, 2), sec = digits(s + j + 7, 2), ms;
    if (h < 0 || mi < 0 || sec < 0)
        return 0;
    j += 9;
    long f = fraction(s, n, j, false, &ms);
    if (f < 0)
        return 0;
    j += (size_t)f;
    if (!ends(s, n, j))
        return 0;
    int64_t t = nearest_year(recv_ms, mo, d, h, mi, sec, ms);
    if (t == INT64_MIN)
        return 0;
    *ts = t;
    return j;
}

/* The common log format at s[i] (the '['): "[10/Oct/2000:13:55:36 -0700]", the zone optional.
 * Returns the index after the ']' (0: none). */
static size_t clf(const char *s, size_t n, size_t i, int64_t *ts)
{
    if (n - i < 22)
        return 0;
    const char *p = s + i;
    if (p[0] != '[' || p[3] != '/' || p[7] != '/' || p[12] != ':' || p[15] != ':' || p[18] != ':')
        return 0;
    int d = digits(p + 1, 2), mo = month(p + 4), y = digits(p + 8, 4);
    int h = digits(p + 13, 2), mi = digits(p + 16, 2), sec = digits(p + 19, 2), ms;
    if (d < 0 || !mo || y < 0 || h < 0 || mi < 0 || sec < 0)
        return 0;
    size_t j = i + 21;
    long f = fraction(s, n, j, false, &ms);
    if (f < 0)
        return 0;
    j += (size_t)f;
    int off = 0;
    if (j < n && s[j] == ' ') {
        long z = offset(s, n, j + 1, &off);
        if (z < 5) /* Always four digits in this form. */
            return 0;
        j += 1 + (size_t)z;
    }
    if (j >= n || s[j] != ']')
        return 0;
    int64_t t = civil_ms(y, mo, d, h, mi, sec, ms);
    if (t == INT64_MIN)
        return 0;
    *ts = t - off * 60000LL;
    return j + 1;
}

/* Epoch seconds (10 digits, an optional fraction) or milliseconds (13 digits) at s[i]. */
static size_t epoch(const char *s, size_t n, size_t i, int64_t *ts)
{
    size_t j = i;
    int64_t v = 0;
    while (j < n && is_digit(s[j]) && j - i <= 13) {
        v = v * 10 + (s[j] - '0');
        j++;
    }
    int ms = 0;
    if (j - i == 10) {
        long f = fraction(s, n, j, false, &ms);
        if (f < 0)
            return 0;
        j += (size_t)f;
        v = v * 1000 + ms;
    } else if (j - i == 13) {
        long f = fraction(s, n, j, false, &ms); /* Microseconds and beyond: dropped. */
        if (f < 0)
            return 0;
        j += (size_t)f;
    } else {
        return 0;
    }
    if (!ends(s, n, j))
        return 0;
    *ts = v;
    return j;
}

/* An access line at s[i]: three words ("host ident user", e.g. "192.0.2.1 - frank") and a
 * common-log-format time. */
static size_t access_line(const char *s, size_t n, size_t i, int64_t *ts)
{
    size_t j = i;
    for (int w = 0; w < 3; w++) {
        size_t w0 = j;
        while (j < n && s[j] != ' ' && s[j] != '[' && j - w0 < WORD_MAX)
            j++;
        if (j == w0 || j >= n || s[j] != ' ')
            return 0;
        j++;
    }
    return j < n && s[j] == '[' ? clf(s, n, j, ts) : 0;
}

size_t linetime_parse(const char *s, size_t n, int64_t recv_ms, int64_t *ts_ms)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n)
        return 0;
    int64_t t = 0;
    size_t end = 0;
    char c = s[i];
    if (c == '[') {
        end = clf(s, n, i, &t);
        if (!end && (end = iso(s, n, i + 1, &t)) != 0)
            end = end < n && s[end] == ']' ? end + 1 : 0;
    } else if ((unsigned char)c <= ' ' || c == 0x7f) {
        return 0; /* A control byte: nothing starts with one. */
    } else {
        if (is_digit(c))
            end = n - i > 4 && (s[i + 4] == '-' || s[i + 4] == '/') ? iso(s, n, i, &t)
                                                                    : epoch(s, n, i, &t);
        else if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
            end = bsd(s, n, i, recv_ms, &t);
        if (!end)
            end = access_line(s, n, i, &t);
    }
    if (end)
        *ts_ms = t;
    return end;
}
