/* syslog.h - syslog messages as senders emit them: RFC 5424, RFC 3164 (BSD), and RFC 6587
 * octet-counting framing. Pure functions over byte ranges (no allocation), fuzzed.
 *
 * PRI <N> gives the facility (N / 8) and the severity (N % 8); severities map to levels:
 * 0-2 (emerg, alert, crit) FATAL, 3 ERROR, 4 WARN, 5-6 (notice, info) INFO, 7 DEBUG. */
#ifndef LC_SYSLOG_H
#define LC_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum syslog_format { SYSLOG_NONE, SYSLOG_5424, SYSLOG_3164 };

/* Every pointer points into the parsed input; absent parts (or the NILVALUE "-") have length
 * 0. */
struct syslog_msg {
    enum syslog_format format;
    int facility, severity; /* From PRI. */
    int level;              /* enum lc_level (base/entry.h), from the severity. */
    int64_t ts_ms;          /* The message's own time, or INT64_MIN when absent/unparsable. */
    const char *host;
    size_t host_len;
    const char *app; /* APP-NAME (5424) or TAG (3164, without "[pid]:"). */
    size_t app_len;
    const char *procid; /* PROCID (5424) or the pid in TAG[pid] (3164). */
    size_t procid_len;
    const char *msgid; /* 5424 only. */
    size_t msgid_len;
    const char *sd; /* 5424 STRUCTURED-DATA as sent ("[id k=\"v\"]..."), or empty. */
    size_t sd_len;
    const char *msg; /* MSG (a UTF-8 BOM removed). */
    size_t msg_len;
};

/* Parse one message (no framing, no trailing newline). now_ms supplies the year that RFC 3164
 * timestamps lack (a date more than a day in the future is taken as last year) and is used
 * for nothing else. Returns 0 when p starts with a valid <PRI> (0..191): out is filled, with
 * format SYSLOG_5424 when the version "1 " follows PRI and the header is well formed, else
 * SYSLOG_3164 (with whatever of the BSD header could be recognised; at worst the rest is the
 * message). Returns -1 when p is not a syslog message (no valid PRI). */
int syslog_parse(const char *p, size_t n, int64_t now_ms, struct syslog_msg *out);

/* RFC 6587 octet counting, as the log port frames it: an octet-counted frame at s ("LEN <PRI>...",
 * LEN of 1 to 9 digits without a leading zero, PRI of 1 to 3 digits; with strict, a syslog
 * header after the PRI too: "1 ", a month, or an ISO date). Returns the frame's total length,
 * with the message at s[*off..], of which the first *body bytes are here to keep: all of it, or
 * max when the frame is longer (the caller skips the rest, once the kept part has parsed as
 * syslog). Returns 0 while more bytes are needed to tell or to complete the kept part (never
 * when eof: the input ends at n), and -1 when s is a plain line ("12 apples", "20240501 <WARN>
 * disk full", "404 <3> GET /"). */
long syslog_octet_frame(const char *s, size_t n, size_t max, bool strict, bool eof, size_t *off,
                        size_t *body);

/* The message's metadata as fields for the stored text: " host=H app=A procid=P msgid=M
 * facility=F" (absent parts left out; F a name such as local0 or daemon) followed by each
 * SD-PARAM as " SDID.name=value" (values with
 * spaces, quotes or backslashes are written in double quotes with \" and \\ escaped; the
 * SD escapes \" \\ \] are decoded first). Writes at most cap bytes (never cutting a field in
 * half) and returns the length written. */
size_t syslog_fields(const struct syslog_msg *m, char *out, size_t cap);

#endif
