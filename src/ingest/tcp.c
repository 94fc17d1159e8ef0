/* ingest.c - the log ingest protocol (port 9999): frame lines, parse, batch into the store,
 * reply to framed lines in request order.
 *
 * One input call turns every complete line in the read buffer into an entry that points into
 * that buffer (clean lines) or into a per-thread escape buffer (lines with control bytes or
 * invalid UTF-8), appends the whole batch with one store call, then writes the replies. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/policy.h"
#include "core/server.h"
#include "ingest/batch.h"
#include "ingest/pipeline.h"
#include "proto/auth.h"
#include "proto/binary.h"
#include "proto/ingest_parse.h"
#include "proto/json_line.h"
#include "proto/line.h"
#include "proto/protocols.h"
#include "proto/syslog.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static const char ERR_TOO_LONG[] = "line too long"; /* Replies add the limit. */

/* A reply owed to the client, in request order. Success replies wait until the store says
 * their entry is durable; errors found while parsing wait only for the replies before them. */
struct owed {
    uint64_t id;       /* Entry id; 0 when error is set. */
    const char *error; /* Static text, or NULL. */
    uint32_t seq;      /* Binary frames: the request's sequence number. */
    uint8_t form;      /* enum ingest_form (text replies). */
    uint8_t bin_cmd;   /* Binary frames: the request's command; 0 for text replies. */
    uint8_t code;      /* Binary frames: enum bin_error when error is set. */
};

#define OWED_MAX 65536 /* Replies owed before the connection stops being read. */

/* --multiline: a plain line is held (copied) until the next line shows whether continuation
 * lines follow; each continuation that arrives within the window is appended after a '\n'
 * (stored escaped, as "\x0a"). The held entry goes into the batch when another entry starts,
 * when the window passes (the connection's tick), at end of input and on close. */
struct held {
    char *text; /* Raw (unescaped) message, up to max_line bytes. */
    size_t len, cap;
    bool active, truncated;
    int level;              /* From the first line (-1: detect from the text). */
    int64_t recv_ms, ts_ms; /* Of the first line. */
    int64_t last_mono;      /* When the last line joined. */
};

/* How a connection frames its messages, from its first byte. */
enum ingest_mode {
    MODE_FIRST,  /* Nothing read yet. */
    MODE_LINES,  /* Text lines (and RFC 6587 octet-counted syslog). */
    MODE_LENGTH, /* Length-prefixed frames (first byte 0x00). */
    MODE_BINARY, /* The binary protocol (first byte 0x01). */
};

/* Whether a MODE_LINES connection sends RFC 6587 octet-counted frames, from its first
 * message: a sender frames every message the same way. */
enum octet_use {
    OCTET_UNKNOWN, /* Nothing taken yet: a frame needs a strict syslog header to count. */
    OCTET_YES,     /* Frames seen: later ones need only "LEN <PRI>". */
    OCTET_NO,      /* A plain line came first: digits start lines, never frames. */
};

struct ingest_conn {
    uint8_t mode;      /* enum ingest_mode */
    uint8_t octet;     /* enum octet_use */
    bool discarding;   /* Skipping the rest of an over-long line. */
    size_t skip;       /* Framed modes: payload bytes of a refused frame still to drop. */
    struct held *held; /* --multiline: the last plain line, while continuations may follow. */
    bool authed;       /* The first line was dealt with (see auth_first_line). */
    bool throttled;    /* Over --log-line-rate: reading waits for the next tick. */
    double line_rate;  /* Lines per second allowed, 0 = any (the policy at connect). */
    double tokens;     /* Lines it may still send now (token bucket, one second deep). */
    int64_t refill_ms;
    struct owed *owed; /* FIFO: [head, len) still to send. */
    size_t head, len, cap;
    struct ingest_waiter waiter; /* For the writer: a reply's id, or room in its queue. */
};

/* What to answer for message i of a batch, in order. */
struct reply {
    enum ingest_form form;
    const char *error; /* NULL: success. */
    size_t entry;      /* Index into the batch's entries when error is NULL and it logs. */
    uint32_t seq;      /* Binary frames (see struct owed). */
    uint8_t bin_cmd, code;
};

/* A connection's input call: the thread's entry batch and the replies its messages are owed.
 * Per thread, reused across calls, so the hot path never allocates. */
struct batch {
    struct ingest_batch *ib;
    struct reply replies[INGEST_BATCH_MAX];
    size_t nreplies;
    pcre2_match_data *ml_md; /* For --multiline-pattern. */
};
static __thread struct batch *tls_batch;
static pthread_key_t batch_key; /* Its destructor frees a thread's batch when the thread ends. */
static pthread_once_t batch_key_once = PTHREAD_ONCE_INIT;

static void batch_free(void *p)
{
    struct batch *b = p;
    pcre2_match_data_free(b->ml_md);
    free(b);
}

static void batch_key_init(void)
{
    if (pthread_key_create(&batch_key, batch_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

static struct batch *batch_get(size_t max_line)
{
    struct batch *b = tls_batch;
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        pthread_once(&batch_key_once, batch_key_init);
        pthread_setspecific(batch_key, b);
        tls_batch = b;
    }
    b->ib = ingest_batch_get(max_line);
    if (!b->ib)
        return NULL;
    b->nreplies = 0;
    return b;
}

/* Where lines come from: a TCP connection or a UDP datagram's sender. */
struct origin {
    struct ingest_conn *ic; /* Set only where continuation lines join (--multiline). */
    const struct config *cfg;
    int64_t read_ms; /* mono_ms when the input arrived. */
    struct server_counters *cnt;
    const char *peer;
    size_t peer_len;
};

static struct origin origin_of(struct conn *c)
{
    struct origin o = {conn_state(c),
                       conn_config(c),
                       conn_last_read_ms(c),
                       server_counters(conn_server(c)),
                       NULL,
                       0};
    if (!conn_config(c)->multiline || ((struct ingest_conn *)o.ic)->mode != MODE_LINES)
        o.ic = NULL; /* Only newline-framed text joins continuation lines. */
    o.peer = conn_peer(c, &o.peer_len);
    return o;
}

static void counter_add(struct conn *c, uint64_t *field, uint64_t n)
{
    (void)c;
    atomic_fetch_add_explicit((_Atomic uint64_t *)field, n, memory_order_relaxed);
}

/* Queue a reply, sent in order once its fate is known. */
static int owe(struct ingest_conn *ic, struct owed o)
{
    if (ic->len == ic->cap) {
        if (ic->head > 0) { /* Reuse the sent front before growing. */
            memmove(ic->owed, ic->owed + ic->head, (ic->len - ic->head) * sizeof(*ic->owed));
            ic->len -= ic->head;
            ic->head = 0;
        } else {
            size_t cap = ic->cap ? ic->cap * 2 : 256;
            struct owed *grown = realloc(ic->owed, cap * sizeof(*grown));
            if (!grown)
                return -ENOMEM;
            ic->owed = grown;
            ic->cap = cap;
        }
    }
    ic->owed[ic->len++] = o;
    return 0;
}

/* "OK|<id>\n" into p (room for 24 bytes); its length. Not printf: this runs for every line
 * acknowledged, and formatting was a visible part of the reactor's time in profiles. */
static int put_ok(char *p, uint64_t id)
{
    char digits[20];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    memcpy(p, "OK|", 3);
    for (int i = 0; i < nd; i++)
        p[3 + i] = digits[nd - 1 - i];
    p[3 + nd] = '\n';
    return nd + 4;
}

static void write_reply(struct conn *c, const struct owed *o, const char *err)
{
    char out[128], why[80];
    if (err == ERR_TOO_LONG) {
        snprintf(why, sizeof(why), "%s (limit %zu bytes)", err, conn_config(c)->max_line);
        err = why;
    }
    if (o->bin_cmd) {
        if (err) {
            bin_send_error(c, o->seq, o->error ? o->code : BIN_E_STORE, err);
        } else if (o->bin_cmd == BIN_LOG || o->bin_cmd == BIN_LOG_MS) {
            unsigned char id[8];
            bin_put64(id, o->id);
            bin_send(c, o->bin_cmd | BIN_REPLY, o->seq, id, sizeof(id));
        } else {
            bin_send(c, o->bin_cmd | BIN_REPLY, o->seq, NULL, 0);
        }
        return;
    }
    struct ingest_conn *ic = conn_state(c);
    bool framed = ic->mode == MODE_LENGTH; /* Replies as frames too, without the newline. */
    char *p = framed ? out + 4 : out;
    size_t cap = sizeof(out) - 4;
    int n;
    if (o->form == INGEST_PIPE)
        n = err ? snprintf(p, cap, "ERROR|%s\n", err) : put_ok(p, o->id);
    else if (err)
        n = snprintf(p, cap, "ERROR:%s\n", err);
    else {
        memcpy(p, "ACK\n", 4);
        n = 4;
    }
    if (n > (int)cap - 1)
        n = (int)cap - 1;
    if (framed) {
        bin_put32((unsigned char *)out, (uint32_t)(n - 1));
        conn_write(c, out, (size_t)n + 3);
    } else {
        conn_write(c, out, (size_t)n);
    }
}

/* Does a reply answer a stored entry (text lines, LOG, LOG_MS), rather than PING or AUTH? */
static bool answers_entry(uint8_t bin_cmd)
{
    return !bin_cmd || bin_cmd == BIN_LOG || bin_cmd == BIN_LOG_MS;
}

/* Be resumed once every id up to id is decided, or (0) after the writer's next commit. */
static int wait_writer(struct conn *c, uint64_t id)
{
    struct ingest_conn *ic = conn_state(c);
    return ingest_wait_conn(c, &ic->waiter, id);
}

/* Send the owed replies whose fate is known, in order; wait for the store for the rest. */
static void release_replies(struct conn *c)
{
    struct ingest_conn *ic = conn_state(c);
    uint64_t pending = 0;
    while (ic->head < ic->len) {
        const struct owed *o = &ic->owed[ic->head];
        const char *err = o->error;
        if (!err && answers_entry(o->bin_cmd)) {
            enum ingest_state state = ingest_ticket_state(&(struct ingest_ticket){o->id, o->id});
            if (state == INGEST_PENDING) {
                pending = o->id;
                break;
            }
            if (state == INGEST_FAILED)
                err = ingest_failure();
        }
        write_reply(c, o, err);
        ic->head++;
    }
    if (ic->head == ic->len)
        ic->head = ic->len = 0;
    bool owing = ic->len > ic->head;
    conn_hold(c, owing);
    if (owing && wait_writer(c, pending) < 0) {
        log_error("out of memory waiting for the store; closing %s", conn_peer(c, &(size_t){0}));
        conn_abort(c, NULL);
    }
}

/* Append everything batched, then queue the replies in order. */
static void batch_flush(struct conn *c, struct batch *b)
{
    struct ingest_conn *ic = conn_state(c);
    struct ingest_ticket t;
    const char *store_error = NULL;
    if (ingest_submit(b->ib, server_counters(conn_server(c)), SLOT_INGEST, &t) < 0)
        store_error = ingest_failure();
    for (size_t i = 0; i < b->nreplies; i++) {
        const struct reply *r = &b->replies[i];
        bool logs = answers_entry(r->bin_cmd);
        const char *err = r->error ? r->error : logs ? store_error : NULL;
        uint64_t id = err || !logs ? 0 : t.first_id + r->entry;
        uint8_t code = r->error ? r->code : BIN_E_STORE;
        if (owe(ic, (struct owed){id, err, r->seq, (uint8_t)r->form, r->bin_cmd, code}) < 0) {
            log_error("out of memory queueing replies; closing %s", conn_peer(c, &(size_t){0}));
            conn_close_after_flush(c);
            break;
        }
    }
    b->nreplies = 0;
    release_replies(c);
}

/* Stop reading while the store's queue is full or too many replies are owed. */
static bool must_pause(struct conn *c)
{
    struct ingest_conn *ic = conn_state(c);
    return ingest_backlogged() || ic->len - ic->head >= OWED_MAX;
}

/* Stop reading until the writer's next commit round. The wait is registered (joining the
 * registry the sink pokes) before the condition is read again: a backlog that cleared in
 * between is seen here, so no wake-up is lost on an idle node. */
static void pause_reading(struct conn *c)
{
    if (wait_writer(c, 0) < 0 ||
        (!must_pause(c) && ingest_wake_next_commit_waiters(conn_loop(c)) < 0)) {
        /* Nothing would wake it. */
        log_error("out of memory waiting for the store; closing %s", conn_peer(c, &(size_t){0}));
        conn_close_after_flush(c);
    }
}

/* Refill the line bucket; true when at least one line may be sent. */
static bool refill(struct ingest_conn *ic)
{
    int64_t now = mono_ms();
    ic->tokens += (double)(now - ic->refill_ms) * ic->line_rate / 1000.0;
    if (ic->tokens > ic->line_rate)
        ic->tokens = ic->line_rate < 1 ? 1 : ic->line_rate;
    ic->refill_ms = now;
    return ic->tokens >= 1;
}

static void flush_held(struct conn *c, bool closing);

static void ingest_tick(struct conn *c, int64_t now)
{
    struct ingest_conn *ic = conn_state(c);
    /* Not while input waits unread (throttled, or the store is behind): continuations may be
     * among it, and they count from when they arrived. */
    if (ic && ic->held && ic->held->active && !ic->throttled && !must_pause(c) &&
        now - ic->held->last_mono > conn_config(c)->multiline_window_ms)
        flush_held(c, false);
    if (ic && ic->throttled && refill(ic)) {
        ic->throttled = false;
        conn_set_busy(c, false);
    }
}

static void ingest_resume(struct conn *c)
{
    release_replies(c);
    struct ingest_conn *ic = conn_state(c);
    if (conn_draining(c))
        ic->throttled = false; /* Shutting down: what was sent is taken at full speed. */
    if (must_pause(c))
        pause_reading(c);
    else if (!ic->throttled)
        conn_set_busy(c, false);
}

static void add_reply(struct batch *b, enum ingest_form form, const char *error)
{
    b->replies[b->nreplies++] = (struct reply){form, error, ingest_batch_count(b->ib), 0, 0, 0};
}

static void add_bin_reply(struct batch *b, uint8_t cmd, uint32_t seq, uint8_t code,
                          const char *error)
{
    b->replies[b->nreplies++] =
        (struct reply){INGEST_PLAIN, error, ingest_batch_count(b->ib), seq, cmd, code};
}

static const char ERR_NO_MEMORY[] = "out of memory";

/* Add a parsed message as the batch's next entry, from the origin's sender. False when out of
 * memory: the caller answers or counts it as refused. */
static bool add_entry(const struct origin *o, struct batch *b, const struct ingest_msg *m,
                      int64_t now)
{
    if (ingest_batch_add(b->ib, m, o->peer, o->peer_len, now))
        return true;
    counter_add(NULL, &o->cnt->lines_rejected, 1);
    return false;
}

/* --multiline-pattern, compiled once (config.c has checked that it compiles). */
static pcre2_code *multiline_re(const char *pattern)
{
    static pcre2_code *re;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pcre2_code *r = __atomic_load_n(&re, __ATOMIC_ACQUIRE);
    if (r)
        return r;
    pthread_mutex_lock(&mu);
    if (!re) {
        int code;
        PCRE2_SIZE at;
        r = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &at, NULL);
        if (r)
            pcre2_jit_compile(r, PCRE2_JIT_COMPLETE);
        __atomic_store_n(&re, r, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&mu);
    return re;
}

static bool is_continuation(const struct config *cfg, struct batch *b, const char *line, size_t len)
{
    if (len > 0 && (line[0] == ' ' || line[0] == '\t'))
        return true;
    if (!cfg->multiline_pattern)
        return false;
    pcre2_code *re = multiline_re(cfg->multiline_pattern);
    if (!re || (!b->ml_md && !(b->ml_md = pcre2_match_data_create(1, NULL))))
        return false;
    return pcre2_match(re, (PCRE2_SPTR)line, len, 0, 0, b->ml_md, NULL) >= 0;
}

/* Move the held entry into the batch. */
static void release_held(const struct origin *o, struct batch *b)
{
    struct held *h = o->ic ? o->ic->held : NULL;
    if (!h || !h->active)
        return;
    h->active = false;
    struct ingest_msg m = {.kind = INGEST_TEXT,
                           .level = h->level,
                           .ts_ms = h->ts_ms,
                           .text = h->text,
                           .len = h->len,
                           .truncated = h->truncated};
    add_entry(o, b, &m, h->recv_ms);
}

/* Hold a plain line, or join it to the held one. False when out of memory (then the caller
 * stores the line on its own). */
static bool hold_line(const struct origin *o, struct batch *b, const struct ingest_msg *m,
                      int64_t now, const char *line, size_t len, size_t max)
{
    struct ingest_conn *ic = o->ic;
    if (!ic->held && !(ic->held = calloc(1, sizeof(*ic->held))))
        return false;
    struct held *h = ic->held;
    int64_t mono = o->read_ms; /* When the bytes arrived, not when they are looked at. */
    if (h->active && mono - h->last_mono <= o->cfg->multiline_window_ms &&
        is_continuation(o->cfg, b, line, len)) {
        size_t room = max > h->len ? max - h->len : 0;
        size_t add = 1 + len < room ? 1 + len : room;
        if (add > 0) {
            h->text[h->len] = '\n';
            memcpy(h->text + h->len + 1, line, add - 1);
            h->len += add;
        }
        h->truncated |= add < 1 + len || m->truncated;
        h->last_mono = mono;
        return true;
    }
    release_held(o, b);
    if (h->cap < max && !(h->text = realloc(h->text, (h->cap = max)))) {
        h->cap = 0;
        return false;
    }
    memcpy(h->text, m->text, m->len);
    h->len = m->len;
    h->truncated = m->truncated;
    /* The first line's level, not one a continuation happens to name. */
    h->level = m->level >= 0 ? m->level : line_detect_level(m->text, m->len);
    if (h->level < 0)
        h->level = LC_INFO;
    h->ts_ms = m->ts_ms;
    h->recv_ms = now;
    h->last_mono = mono;
    h->active = true;
    return true;
}

/* One message from a TCP stream or a UDP datagram: stored (or held, --multiline), and the
 * reply its form asks for queued. */
static void take_line(const struct origin *o, struct batch *b, const char *line, size_t len,
                      bool truncated, int64_t now)
{
    struct ingest_msg m;
    int r = ingest_parse_msg(b->ib, line, len, now, truncated ? INGEST_TRUNCATED : 0, &m);
    counter_add(NULL, &o->cnt->lines_in, 1);
    if (r < 0) {
        counter_add(NULL, &o->cnt->lines_rejected, 1);
        add_reply(b, m.form, m.error);
        return;
    }
    if (r > 0)
        return; /* Blank lines carry nothing. */
    if (o->ic && m.kind == INGEST_TEXT && m.form == INGEST_PLAIN &&
        hold_line(o, b, &m, now, line, len, o->cfg->max_line))
        return;
    release_held(o, b); /* Entries keep their order. */
    if (!add_entry(o, b, &m, now)) {
        if (m.form != INGEST_PLAIN)
            add_reply(b, m.form, ERR_NO_MEMORY);
        return;
    }
    if (m.form != INGEST_PLAIN) /* Answers the entry just added. */
        b->replies[b->nreplies++] =
            (struct reply){m.form, NULL, ingest_batch_count(b->ib) - 1, 0, 0, 0};
}
static int ingest_open(struct conn *c)
{
    struct ingest_conn *ic = calloc(1, sizeof(*ic));
    if (!ic)
        return -ENOMEM;
    ic->line_rate = policy_line_rate(ROLE_LOG);
    ic->tokens = ic->line_rate;
    ic->refill_ms = mono_ms();
    conn_set_state(c, ic);
    return 0;
}

static void ingest_close(struct conn *c)
{
    struct ingest_conn *ic = conn_state(c);
    flush_held(c, true);
    if (ic->held)
        free(ic->held->text);
    free(ic->held);
    ingest_wait_cancel(&ic->waiter);
    free(ic->owed);
    free(ic);
}

/* Make room in the batch for one more message and its reply, and a held one (--multiline)
 * that it may release. */
static void batch_room(struct conn *c, struct batch *b)
{
    if (b->nreplies == INGEST_BATCH_MAX || ingest_batch_full(b->ib))
        batch_flush(c, b);
}

/* Store what is held now: the window passed, the input ended or the connection closes. */
static void flush_held(struct conn *c, bool closing)
{
    struct ingest_conn *ic = conn_state(c);
    if (!ic->held || !ic->held->active)
        return;
    struct batch *b = batch_get(conn_config(c)->max_line);
    if (!b)
        return;
    struct origin o = origin_of(c);
    o.ic = ic;
    release_held(&o, b);
    if (!closing) {
        batch_flush(c, b);
        return;
    }
    /* No replies to send: a held line is plain text. */
    struct ingest_ticket t;
    ingest_submit(b->ib, o.cnt, SLOT_INGEST, &t);
}

/* Spend one line of the --log-line-rate bucket; true when reading must stop for now. */
static bool spend_token(struct conn *c, struct ingest_conn *ic)
{
    return ic->line_rate > 0 && --ic->tokens < 1 && !conn_draining(c);
}

/* A message over --max-line: plain text keeps its first max_line bytes, flagged; framed forms
 * are refused so the sender knows. s[0..avail) holds at least max_line bytes of it. */
static void take_too_long(struct conn *c, struct batch *b, const struct origin *org, const char *s,
                          size_t avail, int64_t now)
{
    struct server_counters *k = server_counters(conn_server(c));
    enum ingest_form form = ingest_form_of(s, avail);
    if (form == INGEST_PLAIN) {
        take_line(org, b, s, conn_config(c)->max_line, true, now);
        counter_add(c, &k->lines_truncated, 1);
    } else {
        counter_add(c, &k->lines_in, 1);
        counter_add(c, &k->lines_rejected, 1);
        add_reply(b, form, ERR_TOO_LONG);
    }
}

/* Newline-framed text (and octet-counted syslog). Returns the bytes used. */
static size_t input_lines(struct conn *c, struct batch *b, const char *p, size_t n, bool eof)
{
    struct ingest_conn *ic = conn_state(c);
    const struct config *cfg = conn_config(c);
    int64_t now = now_ms();
    struct origin org = origin_of(c);
    size_t used = 0;
    while (used < n) {
        const char *s = p + used;
        size_t avail = n - used, len = 0, take;
        if (ic->skip) { /* The rest of an octet-counted frame longer than --max-line. */
            size_t k = avail < ic->skip ? avail : ic->skip;
            ic->skip -= k;
            used += k;
            continue;
        }
        if (ic->discarding) {
            /* The tail of an over-long line: drop it up to its newline. */
            take = line_next(s, avail, &len);
            used += take ? take : avail;
            if (take)
                ic->discarding = false;
            continue;
        }
        if (*s >= '1' && *s <= '9' && ic->octet != OCTET_NO &&
            (ic->authed || !policy_auth_required(ROLE_LOG))) {
            /* Syslog over TCP with octet counting (RFC 6587): "LEN <PRI>..." frames, which
             * may hold newlines. Any other line starting with a digit is a line. */
            size_t off = 0, body = 0;
            long fl = syslog_octet_frame(s, avail, cfg->max_line, ic->octet == OCTET_UNKNOWN, eof,
                                         &off, &body);
            if (fl == 0)
                break; /* The rest of the frame is still on its way. */
            bool cut = fl > 0 && off + body < (size_t)fl;
            struct syslog_msg sm;
            if (cut && syslog_parse(s + off, body, now, &sm) < 0)
                fl = -1; /* Skipping a long way on a guess: only for real syslog. */
            if (fl > 0) {
                ic->authed = true; /* The first frame: no AUTH line was needed. */
                ic->octet = OCTET_YES;
                batch_room(c, b);
                take_line(&org, b, s + off, body, cut, now);
                if (cut) { /* Kept cut and flagged, like a long plain line; the rest skipped. */
                    counter_add(c, &server_counters(conn_server(c))->lines_truncated, 1);
                    ic->skip = (size_t)fl - off - body;
                }
                used += off + body;
                if (spend_token(c, ic))
                    break;
                continue;
            }
        }
        /* Found only now: octet-counted frames hold no newline to look for, and scanning the
         * whole buffer for one per frame made them quadratic. */
        take = line_next(s, avail, &len);
        bool too_long = (take ? len : avail) > cfg->max_line;
        if (!take && !too_long) {
            if (!eof)
                break;          /* Wait for the rest of the line. */
            take = len = avail; /* The peer's last line has no newline: keep it anyway. */
        }
        if (!ic->authed && too_long && !policy_auth_required(ROLE_LOG)) {
            ic->authed = true; /* Too long to be an AUTH line sent out of habit: a line. */
        } else if (!ic->authed) {
            /* An over-long first line is judged by its first max_line bytes: it is no way
             * around authentication. */
            int a = auth_first_line(c, ROLE_LOG, s, too_long ? cfg->max_line : len, NULL, false);
            if (a < 0) {
                batch_flush(c, b);
                conn_close_after_flush(c);
                return n;
            }
            ic->authed = true;
            if (a == 0) {
                used += take ? take : avail;
                ic->discarding = !take && !eof; /* The rest of an over-long AUTH line. */
                continue;
            }
        }
        if (ic->octet == OCTET_UNKNOWN)
            ic->octet = OCTET_NO;
        batch_room(c, b);
        if (too_long) {
            take_too_long(c, b, &org, s, avail, now);
            if (take) {
                used += take;
            } else {
                used += avail;
                ic->discarding = !eof;
            }
            continue;
        }
        take_line(&org, b, s, len, false, now);
        used += take;
        if (spend_token(c, ic))
            break; /* The rest waits for the bucket to refill. */
    }
    return used;
}

static const char ERR_FRAME_TOO_LARGE[] = "frame too large (limit 1048576 bytes)";

/* Length-prefixed frames: [u32 BE length][one message in any text form]. */
static size_t input_length(struct conn *c, struct batch *b, const char *p, size_t n)
{
    struct ingest_conn *ic = conn_state(c);
    size_t max = conn_config(c)->max_line;
    int64_t now = now_ms();
    struct origin org = origin_of(c);
    size_t used = 0;
    while (used < n) {
        const char *s = p + used;
        size_t avail = n - used;
        if (ic->skip) { /* The rest of an over-long frame. */
            size_t k = avail < ic->skip ? avail : ic->skip;
            ic->skip -= k;
            used += k;
            continue;
        }
        size_t len;
        long fl = bin_length_frame((const unsigned char *)s, avail, max, &len);
        if (fl < 0) {
            /* The stream cannot be trusted past a length this wrong: say so and close. */
            batch_flush(c, b);
            if (owe(ic, (struct owed){0, ERR_FRAME_TOO_LARGE, 0, INGEST_PIPE, 0, 0}) == 0)
                release_replies(c);
            conn_close_after_flush(c);
            return n;
        }
        if (fl == 0)
            break; /* The rest of the frame is on its way. */
        size_t body = (size_t)fl - 4;
        used += (size_t)fl;
        if (len == 0)
            continue;
        if (!ic->authed) {
            const char *why = NULL;
            int a = auth_check_line(c, ROLE_LOG, s + 4, body, false, &why);
            if (a < 0) { /* Said in a frame, as every reply on this connection. */
                batch_flush(c, b);
                if (owe(ic, (struct owed){0, why, 0, INGEST_PIPE, 0, 0}) == 0)
                    release_replies(c);
                conn_close_after_flush(c);
                return n;
            }
            ic->authed = true;
            if (a == 0) {
                ic->skip = len - body; /* The rest of an over-long AUTH frame. */
                continue;
            }
        }
        batch_room(c, b);
        if (len > max) {
            take_too_long(c, b, &org, s + 4, body, now);
            ic->skip = len - max;
        } else {
            take_line(&org, b, s + 4, len, false, now);
        }
        if (spend_token(c, ic))
            break;
    }
    return used;
}

/* End a binary connection with an error frame, after the replies owed before it. */
static size_t binary_fail(struct conn *c, struct batch *b, uint32_t seq, uint8_t cmd, uint8_t code,
                          const char *why, size_t n)
{
    batch_flush(c, b);
    if (owe(conn_state(c), (struct owed){0, why, seq, 0, cmd ? cmd : BIN_PING, code}) == 0)
        release_replies(c);
    conn_close_after_flush(c);
    return n;
}

/* The binary protocol on the log port: LOG, LOG_MS, PING and AUTH (binary.h). A frame waits
 * until it is whole: the server's input buffer always has room for the largest one. */
static size_t input_binary(struct conn *c, struct batch *b, const char *p, size_t n)
{
    struct ingest_conn *ic = conn_state(c);
    size_t max = conn_config(c)->max_line;
    struct server_counters *k = server_counters(conn_server(c));
    int64_t now = now_ms();
    struct origin org = origin_of(c);
    size_t used = 0;
    while (used < n) {
        const unsigned char *s = (const unsigned char *)p + used;
        size_t avail = n - used;
        struct bin_header h;
        int fr = bin_frame_next(s, avail, &h);
        if (fr < 0) {
            bool version = h.version != BIN_VERSION;
            return binary_fail(c, b, h.seq, h.command, version ? BIN_E_VERSION : BIN_E_COMMAND,
                               version ? "unsupported protocol version (this server speaks 1); "
                                         "closing"
                                       : "unknown command; closing",
                               n);
        }
        if (fr == 0)
            break; /* The rest of the frame is on its way. */
        batch_room(c, b);
        if (!ic->authed && policy_auth_required(ROLE_LOG) && h.command != BIN_AUTH &&
            h.command != BIN_PING)
            return binary_fail(c, b, h.seq, h.command, BIN_E_AUTH,
                               "authentication required: send AUTH (0x05) first", n);
        const unsigned char *payload = s + BIN_HEADER;
        used += BIN_HEADER + h.length;
        switch (h.command) {
        case BIN_LOG:
        case BIN_LOG_MS: {
            struct bin_log bl;
            const char *why = bin_log_parse(h.command, payload, h.length, &bl);
            counter_add(c, &k->lines_in, 1);
            if (!why && bl.msg_len > max)
                why = ERR_TOO_LONG;
            if (!why && bl.msg_len == 0)
                why = "empty message";
            if (why) {
                counter_add(c, &k->lines_rejected, 1);
                add_bin_reply(b, h.command, h.seq,
                              why == ERR_TOO_LONG ? BIN_E_TOO_LONG : BIN_E_MALFORMED, why);
                break;
            }
            struct ingest_msg m = {.kind = INGEST_TEXT,
                                   .level = bl.level,
                                   .ts_ms = bl.ts_ms,
                                   .text = bl.msg,
                                   .len = bl.msg_len,
                                   .borrowed = true};
            if (!add_entry(&org, b, &m, now)) {
                add_bin_reply(b, h.command, h.seq, BIN_E_STORE, ERR_NO_MEMORY);
                break;
            }
            b->replies[b->nreplies++] = (struct reply){
                INGEST_PLAIN, NULL, ingest_batch_count(b->ib) - 1, h.seq, h.command, 0};
            if (spend_token(c, ic))
                return used;
            break;
        }
        case BIN_PING:
            add_bin_reply(b, BIN_PING, h.seq, 0, NULL);
            break;
        case BIN_AUTH:
            if (policy_auth_required(ROLE_LOG) &&
                !policy_check_token(ROLE_LOG, conn_sockaddr(c), (const char *)payload, h.length,
                                    mono_ms())) {
                size_t plen;
                log_warn("ingest: authentication failed from %s", conn_peer(c, &plen));
                return binary_fail(c, b, h.seq, BIN_AUTH, BIN_E_AUTH, "authentication failed", n);
            }
            ic->authed = true;
            add_bin_reply(b, BIN_AUTH, h.seq, 0, NULL);
            break;
        default: /* QUERY, STATS */
            add_bin_reply(b, h.command, h.seq, BIN_E_WRONG_PORT,
                          "QUERY and STATS are served on the query port");
            break;
        }
    }
    return used;
}

static size_t ingest_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct ingest_conn *ic = conn_state(c);
    const struct config *cfg = conn_config(c);
    struct batch *b = batch_get(cfg->max_line);
    if (!b) {
        log_error("out of memory for an ingest batch; closing %s", conn_peer(c, &(size_t){0}));
        conn_close_after_flush(c);
        return n;
    }
    if (must_pause(c)) {
        conn_set_busy(c, true);
        pause_reading(c);
        return 0;
    }
    if (ic->line_rate > 0 && !conn_draining(c) && !refill(ic)) {
        /* Over its line rate: stop reading (TCP pushes back on the sender) until a tick
         * refills the bucket. Nothing is dropped. */
        ic->throttled = true;
        conn_set_busy(c, true);
        return 0;
    }
    if (ic->mode == MODE_FIRST && n > 0)
        ic->mode = p[0] == 0x00 ? MODE_LENGTH : p[0] == BIN_VERSION ? MODE_BINARY : MODE_LINES;
    size_t used;
    switch (ic->mode) {
    case MODE_LENGTH:
        used = input_length(c, b, p, n);
        break;
    case MODE_BINARY:
        used = input_binary(c, b, p, n);
        break;
    default:
        used = input_lines(c, b, p, n, eof);
        if (eof && used == n && ic->held) {
            struct origin o = origin_of(c);
            release_held(&o, b); /* Nothing more can join it. */
        }
        break;
    }
    batch_flush(c, b);
    return used;
}

const struct proto proto_ingest = {
    .name = "ingest",
    .open = ingest_open,
    .input = ingest_input,
    .resume = ingest_resume,
    .close = ingest_close,
    .tick = ingest_tick,
    .refuse = auth_refuse,
    .timeout = auth_line_timeout,
    .slot = SLOT_INGEST,
};
