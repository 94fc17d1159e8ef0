/* linetime.h - the time a log line starts with. Pure: no allocation, no locale, no time zone
 * of the process; the calendar is computed by hand (proleptic Gregorian, UTC).
 *
 * Recognised at the start of the line, after optional spaces and tabs:
 *   2026-12-07T03:04:05.123Z   RFC 3339 / ISO 8601: 'T', 't' or a space between date and
 *   2026-12-07 03:04:05,123    time, '/' instead of '-' in the date (nginx), a fraction of 1-9
 *   2026/12/07 03:04:05        digits after '.' or ',' (Python), a zone Z, +hh:mm, +hhmm or
 *                              +hh (also after one space: "... 03:04:05 +0000"), none = UTC;
 *   [2026-12-07 03:04:05]      the same inside brackets;
 *   Dec  7 03:04:05            BSD syslog, the year the one nearest the arrival time;
 *   [10/Oct/2000:13:55:36 -0700]   the common log format, also after "host ident user " as
 *                              in an Apache or nginx access line;
 *   1764158400[.123]           epoch seconds (10 digits, optional fraction);
 *   1764158400123              epoch milliseconds (13 digits).
 * The time must be followed by the end of the line, a space or tab, or one of ] ) , : ; | "
 * (the bracketed forms end at their ']'), so "404 not found" or "12345 items" are no times. */
#ifndef LC_LINETIME_H
#define LC_LINETIME_H

#include <stddef.h>
#include <stdint.h>

/* The time s[0..n) starts with, in milliseconds since the epoch, into *ts_ms. recv_ms (the
 * arrival time) picks the year of a BSD time and is used for nothing else. Returns the bytes
 * the time takes (leading blanks and a closing ']' included), or 0 when the line does not
 * start with one of the forms above or a value is out of range (a 30th of February, hour 24,
 * or a BSD time when recv_ms lies outside the years 0-9999); *ts_ms is then untouched. */
size_t linetime_parse(const char *s, size_t n, int64_t recv_ms, int64_t *ts_ms);

#endif
