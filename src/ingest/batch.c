/* batch.c - messages in any form become entries of a batch (see batch.h).
 *
 * Escaped text goes to an arena of chunks, so an entry's pointer never moves while the batch
 * grows: a TCP connection submits every INGEST_BATCH_MAX entries, while an HTTP request, all
 * or nothing, keeps its whole body in one batch. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/batch.h"
#include "proto/json_line.h"
#include "proto/line.h"
#include "proto/linetime.h"
#include "proto/syslog.h"

#define CHUNK_MIN (2u << 20) /* Arena chunk size, unless one message needs more. */

/* Whether and within which window a message without a time of its own takes the time its text
 * starts with. Set once by ingest_set_line_time before any carrier runs, read-only after; the
 * initial values are --time-from-line's and --time-window's defaults. */
static struct {
    bool on;
    int64_t back_ms, ahead_ms;
} line_time = {true, 30 * 86400000LL, 3600000LL};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
};

struct ingest_batch {
    struct lc_entry *entries;
    size_t n, cap;
    struct chunk *text; /* Arena of escaped messages; the newest chunk first. */
    size_t text_used;   /* Bytes taken from the arena since the last reset. */
    char *compose;      /* A syslog message with its fields, before escaping. */
    size_t compose_cap;
    struct buf json; /* A JSON line's message with its fields, before escaping. */
    char why[160];   /* A JSON line's parse error, for m->error. */
};

static __thread struct ingest_batch *tls_batch;
static pthread_key_t batch_key; /* Its destructor frees a thread's batch when the thread ends. */
static pthread_once_t batch_key_once = PTHREAD_ONCE_INIT;

static void chunks_free(struct chunk *c)
{
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void batch_free(void *p)
{
    struct ingest_batch *b = p;
    free(b->entries);
    chunks_free(b->text);
    free(b->compose);
    buf_free(&b->json);
    free(b);
}

static void batch_key_init(void)
{
    if (pthread_key_create(&batch_key, batch_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

struct ingest_batch *ingest_batch_get(size_t max_line)
{
    struct ingest_batch *b = tls_batch;
    if (!b) {
        b = calloc(1, sizeof(*b));
        b->entries = b ? malloc(INGEST_BATCH_MAX * sizeof(*b->entries)) : NULL;
        if (!b || !b->entries) {
            free(b);
            return NULL;
        }
        b->cap = INGEST_BATCH_MAX;
        pthread_once(&batch_key_once, batch_key_init);
        pthread_setspecific(batch_key, b);
        tls_batch = b;
    }
    if (b->compose_cap < max_line + INGEST_FIELDS_MAX) {
        char *m = realloc(b->compose, max_line + INGEST_FIELDS_MAX);
        if (!m)
            return NULL;
        b->compose = m;
        b->compose_cap = max_line + INGEST_FIELDS_MAX;
    }
    return b;
}

/* Senders' framing artefacts are not text: rsyslog's templates add a space before the message
 * and a newline inside octet-counted frames. The header's parts follow as fields. */
static void compose_syslog(struct ingest_batch *b, const struct syslog_msg *sm,
                           struct ingest_msg *m)
{
    const char *msg = sm->msg;
    size_t len = sm->msg_len;
    while (len && (*msg == ' ' || *msg == '\t'))
        msg++, len--;
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    size_t room = b->compose_cap - INGEST_FIELDS_MAX;
    size_t n = len < room ? len : room;
    memcpy(b->compose, msg, n);
    n += syslog_fields(sm, b->compose + n, INGEST_FIELDS_MAX);
    m->kind = INGEST_SYSLOG;
    m->level = sm->level;
    m->ts_ms = sm->ts_ms;
    m->text = b->compose;
    m->len = n;
    m->borrowed = false;
}

/* A JSON object line: 0, or -1 when it does not parse (the reason in b->why). */
static int compose_json(struct ingest_batch *b, const char *line, size_t len, struct ingest_msg *m)
{
    struct json_line jl;
    buf_consume(&b->json, buf_len(&b->json));
    if (json_line_parse(line, len, &b->json, &jl, b->why, sizeof(b->why)) < 0)
        return -1;
    size_t room = b->compose_cap; /* --max-line and room for fields, as syslog. */
    m->kind = INGEST_JSON;
    m->level = jl.level;
    m->ts_ms = jl.ts_ms;
    m->text = b->json.data + jl.msg_off;
    m->len = jl.msg_len < room ? jl.msg_len : room;
    m->truncated = m->len < jl.msg_len;
    m->borrowed = false;
    return 0;
}

void ingest_set_line_time(bool on, int64_t back_ms, int64_t ahead_ms)
{
    line_time.on = on;
    line_time.back_ms = back_ms;
    line_time.ahead_ms = ahead_ms;
}

/* A message that carries no time (plain text, LOG| with '-', syslog or JSON without one) takes
 * the one its text starts with, when that lies within the window around its arrival: a time
 * far off is more likely a number that looks like one, or a sender's clock gone wrong, than
 * the time the event happened. The text itself is left as it came. */
static void time_from_text(struct ingest_msg *m, int64_t now_ms)
{
    int64_t ts;
    if (!line_time.on || m->ts_ms != INT64_MIN || !linetime_parse(m->text, m->len, now_ms, &ts))
        return;
    /* Unsigned differences: no overflow whatever the window. */
    bool near = ts >= now_ms ? (uint64_t)ts - (uint64_t)now_ms <= (uint64_t)line_time.ahead_ms
                             : (uint64_t)now_ms - (uint64_t)ts <= (uint64_t)line_time.back_ms;
    if (near)
        m->ts_ms = ts;
}

int ingest_parse_msg(struct ingest_batch *b, const char *line, size_t len, int64_t now_ms,
                     unsigned flags, struct ingest_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->truncated = flags & INGEST_TRUNCATED;
    m->ts_ms = INT64_MIN;
    if (len == 0)
        return 1; /* Blank lines carry nothing, whatever the form. */
    struct syslog_msg sm;
    if (!(flags & INGEST_JSON_ONLY) && len > 3 && line[0] == '<' &&
        syslog_parse(line, len, now_ms, &sm) == 0) {
        compose_syslog(b, &sm, m);
        time_from_text(m, now_ms);
        return 0;
    }
    bool json_only = flags & INGEST_JSON_ONLY;
    if (!m->truncated && (json_only || json_line_looks(line, len))) {
        if (compose_json(b, line, len, m) == 0) {
            time_from_text(m, now_ms);
            return 0;
        }
        if (json_only || (flags & INGEST_JSON_STRICT)) {
            m->error = b->why;
            return -1;
        }
        /* Only looked like JSON: a plain line after all. */
    }
    struct ingest_line il;
    ingest_parse(line, len, &il);
    m->kind = INGEST_TEXT;
    m->form = il.form;
    m->error = il.error;
    m->level = il.level;
    m->ts_ms = il.ts_ms;
    m->text = il.msg;
    m->len = il.msg_len;
    m->borrowed = true;
    if (il.error)
        return -1;
    time_from_text(m, now_ms);
    return 0;
}

/* Room for n more bytes of escaped text, or NULL. */
static char *arena_room(struct ingest_batch *b, size_t n)
{
    struct chunk *c = b->text;
    if (c && c->cap - c->used >= n)
        return c->data + c->used;
    size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
    struct chunk *fresh = malloc(sizeof(*fresh) + cap);
    if (!fresh)
        return NULL;
    fresh->next = c;
    fresh->used = 0;
    fresh->cap = cap;
    b->text = fresh;
    return fresh->data;
}

struct lc_entry *ingest_batch_add(struct ingest_batch *b, const struct ingest_msg *m,
                                  const char *source, size_t source_len, int64_t now_ms)
{
    if (b->n == b->cap) {
        struct lc_entry *grown = realloc(b->entries, 2 * b->cap * sizeof(*grown));
        if (!grown)
            return NULL;
        b->entries = grown;
        b->cap *= 2;
    }
    struct lc_entry *e = &b->entries[b->n];
    if (m->borrowed && line_is_clean(m->text, m->len)) {
        e->msg = m->text;
        e->msg_len = m->len;
    } else {
        char *dst = arena_room(b, 4 * m->len);
        if (!dst)
            return NULL;
        e->msg_len = line_escape(m->text, m->len, dst);
        e->msg = dst;
        b->text->used += e->msg_len;
        b->text_used += e->msg_len;
    }
    e->id = 0;
    e->recv_ms = now_ms;
    e->ts_ms = m->ts_ms == INT64_MIN ? now_ms : m->ts_ms;
    e->flags = m->truncated ? LC_ENTRY_TRUNCATED : 0;
    e->source = source;
    e->source_len = source_len;
    int level = m->level >= 0 ? m->level : line_detect_level(e->msg, e->msg_len);
    e->level = (uint8_t)(level >= 0 ? level : LC_INFO);
    b->n++;
    return e;
}

size_t ingest_batch_count(const struct ingest_batch *b)
{
    return b->n;
}

struct lc_entry *ingest_batch_entries(struct ingest_batch *b)
{
    return b->entries;
}

bool ingest_batch_full(const struct ingest_batch *b)
{
    return b->n + 2 > INGEST_BATCH_MAX || b->text_used >= INGEST_BATCH_BYTES;
}

void ingest_batch_reset(struct ingest_batch *b)
{
    b->n = 0;
    b->text_used = 0;
    if (!b->text)
        return;
    /* Keep one chunk of the usual size; give back what a large request grew. */
    struct chunk *keep = b->text;
    chunks_free(keep->next);
    keep->next = NULL;
    keep->used = 0;
    if (keep->cap > CHUNK_MIN) {
        free(keep);
        b->text = NULL;
    }
    if (b->cap > INGEST_BATCH_MAX) {
        struct lc_entry *shrunk = realloc(b->entries, INGEST_BATCH_MAX * sizeof(*shrunk));
        if (shrunk) {
            b->entries = shrunk;
            b->cap = INGEST_BATCH_MAX;
        }
    }
}
