/* json.h - writing JSON: strings escaped for any input bytes, and a log entry as an object.
 * Shared by the HTTP API (responses, NDJSON, Server-Sent Events). */
#ifndef LC_JSON_H
#define LC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "core/buf.h"

/* Append s[0..n) as a JSON string literal (quotes included). Control bytes are escaped;
 * invalid UTF-8 becomes U+FFFD, so the output is always valid JSON. Returns 0 or -ENOMEM. */
int json_str(struct buf *b, const char *s, size_t n);

/* Append {"id":..,"ts":"2026-11-26T13:00:00.123Z","ts_ms":..,"level":"INFO",
 * "source":"ip:port","message":".."} (plus "truncated":true when flagged). */
int json_entry(struct buf *b, const struct lc_entry *e);

/* Format ms since the epoch as ISO-8601 UTC with milliseconds into out (at least 32 bytes). */
void json_iso_time(int64_t ms, char *out, size_t cap);

#endif
