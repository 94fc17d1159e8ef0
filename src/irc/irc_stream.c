/* irc_stream.c - log channels and the live log stream: every stored entry is relayed to the
 * #logs-* channels whose filter it matches; joining one (or LogBot's !tail) replays the newest
 * entries first. LogBot's !commands are in irc_logbot.c.
 *
 * The stream is a subscriber of the ingest fan-out (ingest/fanout.h) while any log channel
 * has members: each committed batch arrives once, in id order, and its entries are sent, with
 * IRCv3 server-time and message-tags for clients that asked for them. A channel over its rate limit
 * sends a count of suppressed lines instead; a client that cannot keep up is dropped (SendQ), never
 * waited for, so IRC never slows ingestion. */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "irc/irc_internal.h"
#include "query/qry.h"
#include "query/run.h"
#include "store/store.h"

#define IRC_STREAM_BEHIND_MS 2000 /* A client behind the stream this long is dropped (SendQ). */
#define PUMP_MAX             20000 /* Entries relayed per pump; beyond that the oldest are skipped. */

bool irc_chan_name_is_log(const char *name)
{
    return strncasecmp(name, "#logs-", 6) == 0 && name[6];
}

void irc_logs_set_topic(struct irc_chan *ch)
{
    if (ch->filter)
        snprintf(ch->topic, sizeof(ch->topic), "Live logs matching: %s | !help for commands",
                 ch->filter_text[0] ? ch->filter_text : "everything");
    else
        snprintf(ch->topic, sizeof(ch->topic),
                 "Custom log channel: set what it shows with !logfilter <query>");
}

void irc_logs_setup_chan(struct irc_chan *ch)
{
    char err[QRY_ERR_MAX];
    const char *suffix = ch->name + 6;
    ch->is_log = true;
    ch->mode_n = true;
    ch->mode_t = true;
    if (strcasecmp(suffix, "all") == 0) {
        qry_compile("", 0, 0, &ch->filter, err);
    } else if (lc_level_parse(suffix, strlen(suffix)) >= 0) {
        ch->filter = qry_level(suffix, strlen(suffix), err);
        snprintf(ch->filter_text, sizeof(ch->filter_text), "level:%s",
                 lc_level_name(lc_level_parse(suffix, strlen(suffix))));
    }
    irc_logs_set_topic(ch);
}

void irc_logs_init(void)
{
    static const char *const fixed[] = {"#logs-all",  "#logs-fatal", "#logs-error", "#logs-warn",
                                        "#logs-info", "#logs-debug", "#logs-trace"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        irc_chan_get(fixed[i]);
    irc.stream_id = store_done_id(irc.store);
}

/* ------------------------------------------------------------------------------------------ */
/* Formatting one entry as a channel message. */

/* IRCv3 tag value escaping: ; space \ CR LF. */
static size_t tag_escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        switch (s[i]) {
        case ';':
            out[o++] = '\\';
            out[o++] = ':';
            break;
        case ' ':
            out[o++] = '\\';
            out[o++] = 's';
            break;
        case '\\':
            out[o++] = '\\';
            out[o++] = '\\';
            break;
        default:
            out[o++] = s[i];
            break;
        }
    }
    out[o] = 0;
    return o;
}

/* The entry's fields as tags: every logfmt pair " key=value" in the message (how JSON lines
 * store their other fields, and what most structured loggers print), up to FIELD_TAGS of them,
 * as ";+logcaster/field-<key>=<value>". IRCv3 tag names allow letters, digits and '-', so
 * '_' and '.' in keys become '-'. */
#define FIELD_TAGS 12
static void field_tags(const char *m, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    int found = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && found < FIELD_TAGS; i++) {
        if (m[i] != ' ')
            continue;
        size_t k = i + 1, ke = k;
        while (ke < n && ke - k < 32 &&
               ((m[ke] >= 'a' && m[ke] <= 'z') || (m[ke] >= 'A' && m[ke] <= 'Z') ||
                (m[ke] >= '0' && m[ke] <= '9' && ke > k) || m[ke] == '_' ||
                (m[ke] == '.' && ke > k) || (m[ke] == '-' && ke > k)))
            ke++;
        if (ke == k || ke >= n || m[ke] != '=')
            continue;
        size_t v = ke + 1, ve = v;
        if (v < n && m[v] == '"') { /* A quoted value: up to the closing quote. */
            ve = v + 1;
            while (ve < n && m[ve] != '"')
                ve += m[ve] == '\\' && ve + 1 < n ? 2 : 1;
            if (ve >= n)
                continue;
            v++;
        } else {
            while (ve < n && m[ve] != ' ')
                ve++;
        }
        char key[40], val[200];
        size_t kl = 0;
        for (size_t j = k; j < ke; j++)
            key[kl++] = m[j] == '_' || m[j] == '.' ? '-' : m[j];
        key[kl] = 0;
        tag_escape(val, sizeof(val), m + v, ve - v);
        int w = snprintf(out + o, cap - o, ";+logcaster/field-%s=%s", key, val);
        if (w < 0 || (size_t)w >= cap - o) {
            out[o] = 0; /* No room for this one: stop before it, whole fields only. */
            break;
        }
        o += (size_t)w;
        found++;
        i = ve - 1;
    }
}

void irc_format_entry(const struct lc_entry *e, const char *chan, struct irc_formatted *f)
{
    time_t t = (time_t)(e->ts_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(f->chan, sizeof(f->chan), "%s", chan);
    /* The stored message is already escaped (no CR, LF or NUL): it cannot end the line. */
    int n = snprintf(f->text, sizeof(f->text), "[%s] %.*s %.*s", when, (int)e->source_len,
                     e->source, (int)e->msg_len, e->msg);
    if ((size_t)n >= sizeof(f->text)) {
        static const char cut[] = " [...cut]";
        n = (int)(sizeof(f->text) - sizeof(cut));
        while (n > 0 && ((unsigned char)f->text[n] & 0xc0) == 0x80)
            n--; /* Never cut inside a UTF-8 sequence. */
        memcpy(f->text + n, cut, sizeof(cut));
        n += (int)sizeof(cut) - 1;
    }
    f->text_len = (size_t)n;
    char iso[32];
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(f->time_tag, sizeof(f->time_tag), "time=%s.%03dZ", iso, (int)(e->ts_ms % 1000));
    char src[140];
    tag_escape(src, sizeof(src), e->source, e->source_len);
    /* The msgid comes first: a long entry's later pieces leave it out (irc_render_entry). */
    int ml = snprintf(f->tags, sizeof(f->tags), "msgid=" IRC_MSGID_PREFIX "%" PRIu64 ";", e->id);
    f->msgid_len = (size_t)ml;
    f->id = e->id;
    int tl = ml + snprintf(f->tags + ml, sizeof(f->tags) - (size_t)ml,
                           "+logcaster/id=%" PRIu64 ";+logcaster/level=%s;+logcaster/source=%s",
                           e->id, lc_level_name(e->level), src);
    field_tags(e->msg, e->msg_len, f->tags + tl, sizeof(f->tags) - (size_t)tl);
}

/* The tags a client gets: bit 0 server-time, bit 1 message-tags; bit 2: draft/multiline. */
static int tag_variant(const struct irc_client *cl)
{
    return (cl->cap_server_time ? 1 : 0) | (cl->cap_message_tags ? 2 : 0) |
           (cl->cap_multiline && cl->cap_batch ? 4 : 0);
}

/* The tags in front of one piece of an entry ("@a;b;c " or nothing): lead (may be NULL), then
 * what the variant asks for. Later pieces of a split entry leave out the msgid, which names
 * one message. Returns the length written to out (cap >= 1400 + lead). */
static size_t tag_head(const struct irc_formatted *f, int variant, const char *lead, bool first,
                       char *out, size_t cap)
{
    const char *parts[3] = {lead, variant & 1 ? f->time_tag : NULL,
                            variant & 2 ? f->tags + (first ? 0 : f->msgid_len) : NULL};
    size_t o = 0;
    for (int i = 0; i < 3; i++)
        if (parts[i] && parts[i][0] && o < cap)
            o += (size_t)snprintf(out + o, cap - o, "%c%s", o ? ';' : '@', parts[i]);
    if (o && o + 1 < cap)
        out[o++] = ' ';
    out[o < cap ? o : cap - 1] = 0;
    return o < cap ? o : cap - 1;
}

/* The escaped line feed (line_escape) that joins the lines of a multi-line entry. */
#define ML_BREAK     "\\x0a"
#define ML_BREAK_LEN 4

/* A multi-line entry (its text holds escaped line feeds) for a draft/multiline client: one
 * batch whose opening line carries the entry's tags (and lead), one PRIVMSG per line of the
 * entry, the first starting with "[time] source", and a line longer than IRC's 512 bytes
 * continued with draft/multiline-concat. Returns the bytes written to out, or 0 when the
 * entry has one line or its batch does not fit in cap (then it goes as plain lines). */
static size_t render_multiline(const struct irc_formatted *f, int variant, const char *lead,
                               char *out, size_t cap)
{
    if (!memmem(f->text, f->text_len, ML_BREAK, ML_BREAK_LEN))
        return 0;
    char head[1500], ref[32], msg[IRC_CHANLEN + 40];
    snprintf(ref, sizeof(ref), "lc%" PRIu64, f->id);
    size_t o = tag_head(f, variant & 3, lead, true, head, sizeof(head));
    int w =
        snprintf(out, cap, "%s" IRC_LOGBOT " BATCH +%s draft/multiline %s\r\n", head, ref, f->chan);
    if (w < 0 || (size_t)w >= cap)
        return 0;
    o = (size_t)w;
    const size_t msgl = (size_t)snprintf(msg, sizeof(msg), IRC_LOGBOT " PRIVMSG %s :", f->chan);
    const char *p = f->text, *end = f->text + f->text_len;
    while (p <= end) {
        const char *nl = memmem(p, (size_t)(end - p), ML_BREAK, ML_BREAK_LEN);
        const char *le = nl ? nl : end;
        bool concat = false;
        do { /* One line of the entry, in pieces that fit IRC's line. */
            size_t n = (size_t)(le - p), room = IRC_LINE_MAX - 2 - msgl;
            if (n > room) {
                n = room;
                while (n > 1 && ((unsigned char)p[n] & 0xc0) == 0x80)
                    n--; /* Never inside a UTF-8 sequence. */
            }
            w = snprintf(out + o, cap - o, "@batch=%s%s %s%.*s\r\n", ref,
                         concat ? ";draft/multiline-concat" : "", msg, (int)n, p);
            if (w < 0 || (size_t)w >= cap - o)
                return 0;
            o += (size_t)w;
            p += n;
            concat = true;
        } while (p < le);
        p = le + ML_BREAK_LEN;
    }
    w = snprintf(out + o, cap - o, IRC_LOGBOT " BATCH -%s\r\n", ref);
    if (w < 0 || (size_t)w >= cap - o)
        return 0;
    return o + (size_t)w;
}

/* One entry as the wire bytes of one or more PRIVMSGs (CRLF-terminated), for one tag variant,
 * with lead (a "batch=id" tag, or NULL) first among the tags. Text longer than IRC's 512-byte
 * line is split at UTF-8 boundaries; every piece carries the same tags (but the msgid) and
 * starts with the entry's "[time]", the later ones followed by "...", so each line reads as
 * part of a log entry. A client with draft/multiline (variant bit 2) gets an entry of several
 * lines as one batch instead (render_multiline). Returns the bytes written to out
 * (cap >= IRC_RENDER_CAP). */
static size_t render_entry(const struct irc_formatted *f, int variant, const char *lead, char *out,
                           size_t cap)
{
    if (variant & 4) {
        size_t ml = render_multiline(f, variant, lead, out, cap);
        if (ml)
            return ml;
        variant &= 3;
    }
    char head[1500];
    size_t tagl = tag_head(f, variant, lead, true, head, sizeof(head));
    const size_t body =
        (size_t)snprintf(head + tagl, sizeof(head) - tagl, IRC_LOGBOT " PRIVMSG %s :", f->chan);
    size_t pre = tagl + body;
    const size_t stamp = 21; /* "[YYYY-MM-DD HH:MM:SS]" */
    size_t o = 0;
    bool later = false;
    for (size_t off = 0; off < f->text_len;) {
        size_t cont = off ? stamp + 5 : 0;
        size_t room = IRC_LINE_MAX - 2 - body - cont; /* Tags do not count. */
        size_t n = f->text_len - off;
        if (n > room) {
            n = room;
            while (n > 1 && ((unsigned char)f->text[off + n] & 0xc0) == 0x80)
                n--;
        }
        if (off && !later && (variant & 2) && f->msgid_len) {
            /* The first later piece: the same head without the msgid, from now on. */
            tagl = tag_head(f, variant, lead, false, head, sizeof(head));
            snprintf(head + tagl, sizeof(head) - tagl, IRC_LOGBOT " PRIVMSG %s :", f->chan);
            pre = tagl + body;
            later = true;
        }
        if (o + pre + cont + n + 2 > cap)
            break;
        memcpy(out + o, head, pre);
        o += pre;
        if (cont) {
            memcpy(out + o, f->text, stamp);
            memcpy(out + o + stamp, " ... ", 5);
            o += cont;
        }
        memcpy(out + o, f->text + off, n);
        o += n;
        out[o++] = '\r';
        out[o++] = '\n';
        off += n;
    }
    return o;
}

#define RENDER_CAP IRC_RENDER_CAP

static void send_entry(struct irc_client *cl, const struct irc_formatted *f)
{
    static char out[RENDER_CAP];
    size_t n = render_entry(f, tag_variant(cl), NULL, out, sizeof(out));
    irc_send_wire(cl, out, n);
}

size_t irc_render_entry(const struct irc_client *cl, const struct irc_formatted *f,
                        const char *lead, char *out, size_t cap)
{
    return render_entry(f, tag_variant(cl), lead, out, cap);
}

/* ------------------------------------------------------------------------------------------ */
/* The live stream. */

/* Start a new one-second window for a log channel's rate limit, telling its members how many
 * lines the last window suppressed. */
static void roll_window(struct irc_chan *ch, int64_t now)
{
    if (now - ch->window_ms < 1000)
        return;
    if (ch->suppressed) {
        char line[200];
        int n = snprintf(line, sizeof(line),
                         IRC_LOGBOT " NOTICE %s :%d lines suppressed in the last %.1f s "
                                    "(over %d lines/s); use the query port or !query",
                         ch->name, ch->suppressed, (double)(now - ch->window_ms) / 1000.0,
                         irc.cfg->irc_stream_rate);
        irc_chan_broadcast(ch, NULL, line, (size_t)n);
    }
    ch->window_ms = now;
    ch->window_lines = 0;
    ch->suppressed = 0;
}

void irc_logs_tick(int64_t now)
{
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        if (ch->is_log && ch->suppressed)
            roll_window(ch, now);
}

struct replay;
static struct replay *replays; /* Replays still running (on the query pool). */
static void replay_hold(const struct irc_chan *ch, const struct irc_formatted *f);
static bool replaying(const struct irc_client *cl, const struct irc_chan *ch);

static unsigned pump_gen; /* Counts pumps, so a slow client is flushed at most once per pump. */

static void tell_skipped(struct irc_client *cl)
{
    if (cl->stream_skipped)
        irc_send(cl,
                 IRC_LOGBOT " NOTICE %s :%" PRIu64 " log lines were not sent to you: your "
                            "connection fell behind the stream. Use !query or the query port.",
                 cl->nick, cl->stream_skipped);
    cl->stream_skipped = 0;
    cl->behind_ms = 0;
}

/* Copy the pump's entries to one member, as many as its queue takes: up to half of
 * --out-limit (a quarter once it fell behind), after one immediate flush per pump (a fast
 * reader's kernel buffer takes a burst). Entries that do not fit are skipped for it and
 * counted; it is told how many once it has caught up. */
static void deliver(struct irc_chan *ch, struct irc_client *cl, int64_t now)
{
    int v = tag_variant(cl);
    const struct buf *w = &ch->pump[v];
    const uint32_t *ends = ch->pump_ends[v];
    size_t n = ch->pump_lines, soft = irc.cfg->out_limit / (cl->behind_ms ? 4 : 2);
    if (conn_out_pending(cl->c) >= soft && cl->flush_gen != pump_gen) {
        cl->flush_gen = pump_gen;
        if (conn_flush_now(cl->c) != 0)
            return;
    }
    size_t pend = conn_out_pending(cl->c);
    if (pend < soft && cl->behind_ms) {
        tell_skipped(cl);
        pend = conn_out_pending(cl->c);
        soft = irc.cfg->out_limit / 2;
    }
    size_t k = 0;
    if (pend < soft) {
        /* The most entries whose bytes fit in the room left, and at least one. */
        size_t room = soft - pend, lo = 1, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi + 1) / 2;
            if (ends[mid - 1] <= room)
                lo = mid;
            else
                hi = mid - 1;
        }
        k = lo;
    }
    if (k)
        irc_send_wire(cl, w->data, ends[k - 1]);
    if (k < n && !cl->closing) {
        cl->stream_skipped += n - k;
        if (!cl->behind_ms)
            cl->behind_ms = now;
    }
}

bool irc_logs_client_tick(struct irc_client *cl, int64_t now)
{
    if (!cl->behind_ms)
        return false;
    if (conn_out_pending(cl->c) < irc.cfg->out_limit / 4) {
        tell_skipped(cl);
        return false;
    }
    if (now - cl->behind_ms < IRC_STREAM_BEHIND_MS)
        return false;
    irc_sendq_exceeded(cl);
    return true;
}

static bool stream_visit(void *arg, const struct lc_entry *e)
{
    (void)arg;
    int64_t now = mono_ms();
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next) {
        if (!ch->is_log || !ch->filter || !ch->pump_variants || !qry_match(ch->filter, e))
            continue;
        roll_window(ch, now);
        if (ch->window_lines >= irc.cfg->irc_stream_rate) {
            ch->suppressed++;
            continue;
        }
        ch->window_lines++;
        struct irc_formatted f;
        irc_format_entry(e, ch->name, &f);
        if (replays && !ingest_ids_ordered())
            replay_hold(ch, &f);
        static char wire[RENDER_CAP];
        for (int v = 0; v < IRC_TAG_VARIANTS; v++) {
            if (!(ch->pump_variants & (1u << v)))
                continue;
            size_t n = render_entry(&f, v, NULL, wire, sizeof(wire));
            /* Out of memory: the entry is empty for this variant, the offsets stay right. */
            if (buf_append(&ch->pump[v], wire, n) < 0)
                n = 0;
            ch->pump_ends[v][ch->pump_lines] = (uint32_t)ch->pump[v].end;
        }
        ch->pump_lines++;
    }
    return true;
}

/* Before a pump: which tag variants each log channel's listening members use, and room for
 * the entries' end offsets. False when nobody listens anywhere. */
static bool pump_prepare(void)
{
    bool any = false;
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next) {
        ch->pump_variants = 0;
        ch->pump_lines = 0;
        if (!ch->is_log || !ch->filter)
            continue;
        for (int i = 0; i < ch->nmembers; i++) {
            struct irc_client *cl = ch->members[i].cl;
            if (!cl->logstream_off && !cl->closing)
                ch->pump_variants |= 1u << tag_variant(cl);
        }
        for (int v = 0; v < IRC_TAG_VARIANTS; v++) {
            if (!(ch->pump_variants & (1u << v)))
                continue;
            if (!ch->pump_ends[v])
                ch->pump_ends[v] = malloc((PUMP_MAX + 1) * sizeof(uint32_t));
            if (!ch->pump_ends[v]) {
                ch->pump_variants &= ~(1u << v);
                continue;
            }
            buf_consume(&ch->pump[v], buf_len(&ch->pump[v]));
        }
        any |= ch->pump_variants != 0;
    }
    return any;
}

void irc_logs_chan_free(struct irc_chan *ch)
{
    for (int v = 0; v < IRC_TAG_VARIANTS; v++) {
        buf_free(&ch->pump[v]);
        free(ch->pump_ends[v]);
    }
}

static void stream_notify(struct ingest_sub *sub)
{
    (void)sub;
    irc_logs_pump();
}

/* Whether some log channel has members: only then are committed entries worth copying. */
static bool stream_wanted(void)
{
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        if (ch->is_log && ch->filter && ch->nmembers > 0)
            return true;
    return false;
}

/* Subscribe to committed entries while anyone listens, and not otherwise. Entries decided
 * before the subscription are history (replay and !tail read them from the store). */
static bool stream_follow(void)
{
    bool want = stream_wanted() && irc.loop;
    if (!want && irc.sub.active)
        ingest_unsubscribe(&irc.sub);
    if (!want || irc.sub.active)
        return want;
    irc.sub.notify = stream_notify;
    irc.sub.max_entries = PUMP_MAX;
    if (ingest_subscribe(irc.loop, &irc.sub) < 0) {
        log_warn("irc: out of memory subscribing to the log stream; live lines wait");
        return false;
    }
    irc.stream_id = store_done_id(irc.store);
    return true;
}

/* One committed entry from the subscription: relayed unless replayed already. arg: whether
 * any channel has a listening member (else it is only passed over). */
static bool pump_visit(void *arg, const struct lc_entry *e)
{
    if (!ingest_ids_ordered()) /* A cluster member: every entry comes once, no replay. */
        return *(bool *)arg ? stream_visit(NULL, e) : true;
    if (e->id <= irc.stream_id)
        return true; /* Sent by a replay (or !tail) that caught up with the store. */
    irc.stream_id = e->id;
    return *(bool *)arg ? stream_visit(NULL, e) : true;
}

static void suppress_all(uint64_t n)
{
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        if (ch->is_log && ch->nmembers)
            ch->suppressed += (int)(n > 1000000000 ? 1000000000 : n);
}

void irc_logs_pump(void)
{
    uint64_t first = stream_follow() ? ingest_sub_next_id(&irc.sub) : 0;
    if (!first)
        return;
    pump_gen++;
    bool ready = pump_prepare();
    uint64_t dropped;
    ingest_sub_take(&irc.sub, 0, NULL, NULL, &dropped);
    if (dropped) {
        suppress_all(dropped); /* A burst beyond what IRC can carry: the newest go out. */
    } else if (first > irc.stream_id + 1 && ingest_ids_ordered()) {
        /* Batches that were on their way when the stream subscribed were not copied for it;
         * they are decided now (the queue's first entry is): read them from the store. */
        uint64_t from = irc.stream_id + 1, resume;
        if (first - from > PUMP_MAX) {
            suppress_all(first - from - PUMP_MAX);
            from = first - PUMP_MAX;
            irc.stream_id = from - 1;
        }
        qry_scan(irc.store, NULL, from, first - 1, true, (size_t)PUMP_MAX + 1, pump_visit, &ready,
                 &resume);
    }
    /* The queue holds about PUMP_MAX entries (its bound): take them all. */
    ingest_sub_take(&irc.sub, SIZE_MAX, pump_visit, &ready, &dropped);
    if (!ready)
        return;
    /* Each channel's entries go to each member in one copy. */
    int64_t now = mono_ms();
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next) {
        if (!ch->pump_lines)
            continue;
        /* Backwards: a member dropped for SendQ leaves the list (the last one takes its
         * place), and the ones behind it were served already. */
        for (int i = ch->nmembers - 1; i >= 0; i--) {
            if (i >= ch->nmembers)
                continue;
            struct irc_client *cl = ch->members[i].cl;
            if (!cl->logstream_off && !cl->closing && !(replays && replaying(cl, ch)))
                deliver(ch, cl, now);
        }
        for (int v = 0; v < IRC_TAG_VARIANTS; v++)
            buf_shrink(&ch->pump[v], 1 << 20);
        ch->pump_lines = 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Replay and queries. */

/* A replay runs on the query pool while the stream goes on. Until it has caught up, the
 * stream passes its client by on that channel; each round collects the newest matches of an id
 * range and sends them oldest first: first the channel's last n entries up to where the
 * stream stood at the join, then whatever the stream sent the others meanwhile, until a
 * round ends with nothing new. Nothing twice, nothing missed, and the reactor never scans. */
struct replay {
    struct replay *next;
    struct irc_client *cl;
    struct irc_chan *ch;
    struct qrun *run;
    uint64_t upto; /* This round covers ids up to here. */
    struct irc_formatted *rows;
    size_t n, max;
    /* A cluster member's replay is one round (ids are not in arrival order): the channel's
     * live lines that its client passes by meanwhile are held here, and follow the replay
     * (those it answered too are sent once). Beyond LIVE_HELD_MAX they count as suppressed. */
    struct irc_formatted *live;
    size_t nlive, caplive;
};

#define LIVE_HELD_MAX 1024

static bool replaying(const struct irc_client *cl, const struct irc_chan *ch)
{
    for (const struct replay *r = replays; r; r = r->next)
        if (r->cl == cl && r->ch == ch)
            return true;
    return false;
}

static void replay_free(struct replay *r)
{
    for (struct replay **pp = &replays; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    qrun_close(r->run);
    irc_client_wait(r->cl, false); /* Its next command may run now. */
    free(r->rows);
    free(r->live);
    free(r);
}

static void replay_hold(const struct irc_chan *ch, const struct irc_formatted *f)
{
    for (struct replay *r = replays; r; r = r->next) {
        if (r->ch != ch)
            continue;
        if (r->nlive == r->caplive && r->caplive < LIVE_HELD_MAX) {
            size_t cap = r->caplive ? 2 * r->caplive : 16;
            struct irc_formatted *g = realloc(r->live, cap * sizeof(*g));
            if (g) {
                r->live = g;
                r->caplive = cap;
            }
        }
        if (r->nlive < r->caplive)
            r->live[r->nlive++] = *f;
        else
            r->ch->suppressed++;
    }
}

/* A cluster replay's end: its rows, then the live lines held meanwhile that it lacks. */
static void replay_send_held(struct replay *r)
{
    for (size_t i = 0; i < r->nlive; i++) {
        bool sent = false;
        for (size_t k = 0; k < r->n && !sent; k++)
            sent = r->rows[k].id == r->live[i].id;
        if (!sent)
            send_entry(r->cl, &r->live[i]);
    }
}

void irc_logs_replay_cancel(struct irc_chan *ch, struct irc_client *cl)
{
    for (struct replay *r = replays, *next; r; r = next) {
        next = r->next;
        if (r->cl == cl && (!ch || r->ch == ch))
            replay_free(r);
    }
}

void irc_logs_replays_free(void)
{
    while (replays)
        replay_free(replays);
}

static bool replay_row(void *arg, const struct lc_entry *e)
{
    struct replay *r = arg;
    if (r->n < r->max)
        irc_format_entry(e, r->ch->name, &r->rows[r->n++]);
    return true;
}

static void replay_error(void *arg, const char *why)
{
    struct replay *r = arg;
    log_warn("irc: replay on %s for %s failed: %s", r->ch->name, r->cl->nick, why);
}

static const struct qrun_sink replay_sink = {.row = replay_row, .error = replay_error};

static void replay_ready(void *owner);

/* Start a round over ids (from, upto]: its newest max matches. False when there is nothing to
 * read (or no memory): the client is live then. */
/* Start the query of a round, over ids (lo, hi] (both 0: the whole store, a cluster's). */
static bool replay_start(struct replay *r, uint64_t lo, uint64_t hi, size_t max)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(r->ch->filter_text, strlen(r->ch->filter_text), now_ms(), &q, err) < 0)
        return false;
    struct irc_formatted *rows = realloc(r->rows, max * sizeof(*rows));
    if (!rows) {
        qry_free(q);
        return false;
    }
    r->rows = rows;
    r->n = 0;
    r->max = max;
    r->run = qrun_start_list(irc.loop, irc.store, q, lo, hi, false, max, replay_ready, r);
    return r->run != NULL;
}

static bool replay_round(struct replay *r, uint64_t from, size_t max)
{
    return r->upto > from && max > 0 && replay_start(r, from + 1, r->upto, max);
}

/* A cluster member: the channel's newest max entries across the cluster, in arrival order, in
 * one round (ids are not in arrival order there, so there are no rounds up to the stream):
 * the live lines that arrive while it runs are held for this client (replay_hold). */
static bool replay_cluster(struct replay *r, size_t max)
{
    return replay_start(r, 0, 0, max);
}

static void replay_ready(void *owner)
{
    struct replay *r = owner;
    if (qrun_drain(r->run, &replay_sink, r) != QX_DONE)
        return;
    qrun_close(r->run);
    r->run = NULL;
    for (size_t i = r->n; i-- > 0;) /* Oldest first. */
        send_entry(r->cl, &r->rows[i]);
    if (!ingest_ids_ordered()) {
        replay_send_held(r);
        replay_free(r);
        return;
    }
    /* What the stream sent the others while this round ran. */
    uint64_t from = r->upto;
    if (irc.sub.active && irc.stream_id > from) {
        r->upto = irc.stream_id;
        if (replay_round(r, from, (size_t)irc.cfg->irc_stream_rate))
            return;
    }
    replay_free(r); /* Caught up: the stream serves this client from now on. */
}

void irc_logs_replay(struct irc_client *cl, struct irc_chan *ch, int n)
{
    /* Catch the live stream up first (subscribing it, if this is its first listener): the
     * replay starts where the stream stands. */
    irc_logs_pump();
    if (!ch->filter || n <= 0 || replaying(cl, ch))
        return;
    struct replay *r = calloc(1, sizeof(*r));
    if (!r)
        return;
    r->cl = cl;
    r->ch = ch;
    r->upto = irc.sub.active ? irc.stream_id : store_done_id(irc.store);
    r->next = replays;
    replays = r;
    /* The replay is part of the JOIN's answer: the client's next command waits for it. */
    irc_client_wait(cl, true);
    if (!(ingest_ids_ordered() ? replay_round(r, 0, (size_t)n) : replay_cluster(r, (size_t)n)))
        replay_free(r);
}
