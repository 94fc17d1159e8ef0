/* batch.h - the one way from a received message to a stored entry, for every carrier (TCP,
 * UDP, HTTP, later the cluster's stream).
 *
 * A message in any form -- RFC 5424/3164 syslog, a JSON object, the seed's framed forms
 * ("LOG|..", "LOG:.."), plain text -- is parsed by ingest_parse_msg and added to a batch by
 * ingest_batch_add, which escapes it (or borrows it when clean) and detects its level. The
 * batch then goes to the writer whole through ingest_submit (pipeline.h). The same bytes mean
 * the same entry whatever carried them. */
#ifndef LC_INGEST_BATCH_H
#define LC_INGEST_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "core/buf.h"
#include "proto/ingest_parse.h"

#define INGEST_BATCH_MAX   4096       /* Entries a carrier puts in a batch before submitting. */
#define INGEST_BATCH_BYTES (1u << 20) /* Escaped text a carrier batches before submitting. */
#define INGEST_FIELDS_MAX  2048       /* Bytes of host=, app=, ... fields a syslog line gains. */

/* Flags for ingest_parse_msg. */
#define INGEST_TRUNCATED   0x1 /* The line was cut at --max-line: store it cut and flagged. */
#define INGEST_JSON_ONLY   0x2 /* Every line must be a JSON object (a JSON content type). */
#define INGEST_JSON_STRICT 0x4 /* A line that looks like JSON must parse, else it is refused. */

enum ingest_kind {
    INGEST_TEXT,   /* Plain text or one of the seed's framed forms. */
    INGEST_SYSLOG, /* RFC 5424 or 3164: the header's parts become fields. */
    INGEST_JSON,   /* A JSON object: message, level and time fields; the rest key=value. */
};

/* One message, parsed, before it becomes an entry. */
struct ingest_msg {
    enum ingest_kind kind;
    enum ingest_form form; /* How the sender expects an answer (INGEST_PLAIN: none). */
    const char *error;     /* Refused, with this reason (static or the batch's); NULL: take it. */
    int level;             /* enum lc_level, or -1: detect from the text. */
    int64_t ts_ms;         /* INT64_MIN: the receive time. */
    const char *text;      /* The raw (unescaped) message. */
    size_t len;
    bool truncated; /* Cut at --max-line (by the carrier or here). */
    bool borrowed;  /* text lies in the caller's input: the entry may point at it if clean. */
};

struct ingest_batch;

/* The calling thread's batch, ready for messages of up to max_line bytes. Every carrier on a
 * thread shares it: a carrier submits (or drops) its batch before its call returns. NULL when
 * out of memory. Freed when the thread ends. */
struct ingest_batch *ingest_batch_get(size_t max_line);

/* Whether a message without a time of its own takes the time its text starts with
 * (proto/linetime.h), and how far before (back_ms) or after (ahead_ms) its arrival that time
 * may lie; beyond, the arrival time is the entry's time. Call once, before any carrier runs
 * (--time-from-line, --time-window; until then: on, 30 days back, 1 hour ahead). */
void ingest_set_line_time(bool on, int64_t back_ms, int64_t ahead_ms);

/* Parse line[0..len) (one message, no framing newline). Always fills m; m->error is set when
 * the line must be refused (a malformed framed line; a non-JSON line under the JSON flags).
 * Syslog and JSON messages are composed in the batch's scratch, valid until the next call.
 * A message without a time of its own may take its text's (ingest_set_line_time); m->ts_ms is
 * INT64_MIN when it has none, and the arrival time then counts.
 * Returns 0 for a message to store, 1 for a blank line (nothing to store), -1 when refused. */
int ingest_parse_msg(struct ingest_batch *b, const char *line, size_t len, int64_t now_ms,
                     unsigned flags, struct ingest_msg *m);

/* Add m as the batch's next entry, from source (borrowed until submitted), received at
 * now_ms. Text that is not borrowed is copied; borrowed text must stay valid until the batch
 * is submitted. Returns the entry, or NULL when out of memory. */
struct lc_entry *ingest_batch_add(struct ingest_batch *b, const struct ingest_msg *m,
                                  const char *source, size_t source_len, int64_t now_ms);

/* Entries in the batch, and the batch's entry array (ids set once submitted). */
size_t ingest_batch_count(const struct ingest_batch *b);
struct lc_entry *ingest_batch_entries(struct ingest_batch *b);

/* True when a carrier that can submit in pieces should submit now (INGEST_BATCH_MAX entries
 * less room for two more, or INGEST_BATCH_BYTES of text). */
bool ingest_batch_full(const struct ingest_batch *b);

/* Forget every entry (after submitting, or to drop a refused request). */
void ingest_batch_reset(struct ingest_batch *b);

#endif
