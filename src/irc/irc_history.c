/* irc_history.c - IRCv3 draft/chathistory on log channels: CHATHISTORY LATEST, BEFORE, AFTER,
 * AROUND, BETWEEN and TARGETS answered from the store, so that scrolling back in a modern client
 * is a log query.
 *
 * References. A log line's msgid is "lc-" and its entry id (irc_stream.c puts it on the live
 * lines and the join replay as well as on these answers), so a msgid reference is an exact
 * place in id order, the order the channel shows: paging back with the oldest msgid of each
 * answer never skips or repeats a line. The referenced entry need not match the channel's
 * filter (any lc- id is a place in the store). A timestamp reference selects by the entries'
 * own time (the time in the line, which need not grow with the id): BEFORE timestamp=T is the
 * newest entries, in id order, whose time is before T; AFTER the oldest whose time is after T;
 * AROUND the newest half before T and the oldest rest at or after it; BETWEEN the entries whose
 * time lies strictly between. When lines arrive in time order (the usual case) this is the
 * spec's meaning exactly; otherwise it is still consistent, but two lines with one timestamp can
 * fall on either side of a page, so msgids are the exact form (MSGREFTYPES=msgid,timestamp puts
 * them first).
 *
 * Answers. Like the join replay (irc_stream.c) an answer runs on the query pool and the
 * client's next command waits until it is queued; it goes out oldest first in a "chathistory"
 * batch (with `batch`), each entry as its live line with its own time and tags, and carries the
 * command's label on the batch. It reads ids up to where the live stream stands, so a member
 * gets each line once: in the answer or live. It is queued at most half of --out-limit at a
 * time, continued on resume and tick, so a long answer never trips the SendQ limit; it holds at
 * most HIST_BYTES_MAX rendered bytes, beyond which it is cut on the side away from its
 * reference (paging goes on from there without a gap).
 *
 * Other targets have no stored history: a channel one is on, or a nick, gets an empty batch; a
 * channel one is not on, or an unknown name, gets FAIL INVALID_TARGET. */
#define _GNU_SOURCE
#include <errno.h>
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

#define HIST_BYTES_MAX (8u << 20) /* Rendered bytes one answer holds (1000 entries of 8 KiB). */
#define HIST_TARGETS   64         /* Log channels TARGETS looks at. */

enum ref_type { REF_NONE, REF_ID, REF_TIME };

/* A message reference: "*", msgid=lc-<id> or timestamp=<ISO-8601>. */
struct hist_ref {
    enum ref_type type;
    uint64_t id;
    int64_t ms;
};

/* One scan: entry ids [lo, hi] whose time is in [from_ms, to_ms]: the newest max of them, or
 * the oldest when forward. */
struct hist_part {
    uint64_t lo, hi;
    int64_t from_ms, to_ms;
    bool forward;
    size_t max;
    struct qrun_bound klo, khi; /* A cluster's msgid references: places in arrival order. */
};

/* A log channel for TARGETS, and the time of its newest entry. */
struct hist_target {
    char name[IRC_CHANLEN + 1];
    char filter[256];
    int64_t ms;
    bool found;
};

struct hist {
    struct hist *next;
    struct irc_client *cl;
    char sub[8];                  /* The subcommand, for FAIL. */
    char target[IRC_CHANLEN + 1]; /* The channel asked about, as the client wrote it. */
    char chan[IRC_CHANLEN + 1];   /* Its own name, for the entries' PRIVMSG lines. */
    char filter[256];             /* Its filter's text, compiled afresh for each scan. */
    char label[72];               /* The command's label, for the batch; "" for none. */
    char lead[48];                /* "batch=<id>" on every line of the batch; "" without. */
    char batch[40];               /* The batch's id. */
    uint64_t upto;                /* The newest id read: where the live stream stood. */
    struct hist_part parts[2];    /* AROUND scans twice (before, then from the reference). */
    int nparts, part;
    struct hist_target *tg; /* TARGETS: the log channels, scanned one after the other. */
    size_t ntg, itg;
    int64_t t_lo, t_hi; /* TARGETS: the window (exclusive). */
    size_t t_limit;
    struct qrun *run;
    struct buf rows; /* The current scan's entries, rendered, in the order they came... */
    size_t *ends;    /* ...each ending here. */
    size_t nends, capends;
    struct buf wire; /* The answer as it goes out, oldest first. */
    size_t sent;     /* Bytes of wire queued on the connection. */
    bool full;       /* HIST_BYTES_MAX reached: the answer ends with what it has. */
    char error[QRY_ERR_MAX];
    struct irc_formatted f; /* Scratch for one entry. */
};

static struct hist *hists; /* Answers being read or sent, one per client at most. */

/* ------------------------------------------------------------------------------------------ */
/* Parameters. */

/* A parameter as it may be echoed in FAIL: no spaces or control bytes, not a trailing one. */
static const char *clean(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 1 < cap && o < 64; s++, o++)
        out[o] = (unsigned char)*s <= ' ' || *s == 0x7f || (o == 0 && *s == ':') ? '?' : *s;
    if (!o)
        out[o++] = '*';
    out[o] = 0;
    return out;
}

/* "YYYY-MM-DDThh:mm:ss[.fff]Z" as unix milliseconds. */
static bool parse_iso(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, se, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970)
        return false;
    s += n;
    int frac = 0, digits = 0;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*s - '0');
    if (digits == 0 && s[-1] == '.')
        return false;
    for (int i = digits; i < 3; i++)
        frac *= 10;
    if (strcmp(s, "Z") != 0)
        return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return true;
}

static void format_iso(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char s[24];
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", s, (int)(ms % 1000));
}

/* 0, -EINVAL for a malformed reference, -ENOENT for a msgid that is not a log line's. */
static int parse_ref(const char *s, bool star_ok, struct hist_ref *r)
{
    if (star_ok && strcmp(s, "*") == 0) {
        r->type = REF_NONE;
        return 0;
    }
    if (strncmp(s, "msgid=", 6) == 0) {
        const char *v = s + 6, *p = v + strlen(IRC_MSGID_PREFIX);
        if (strncmp(v, IRC_MSGID_PREFIX, strlen(IRC_MSGID_PREFIX)) != 0 || !*p)
            return -ENOENT;
        uint64_t id = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || id > (UINT64_MAX - 9) / 10)
                return -ENOENT;
            id = id * 10 + (uint64_t)(*p - '0');
        }
        if (id == 0)
            return -ENOENT;
        r->type = REF_ID;
        r->id = id;
        return 0;
    }
    if (strncmp(s, "timestamp=", 10) == 0 && parse_iso(s + 10, &r->ms)) {
        r->type = REF_TIME;
        return 0;
    }
    return -EINVAL;
}

/* The limit: a positive number, at most IRC_HISTORY_MAX (more is served as that many). */
static bool parse_limit(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return false;
    *out = v > IRC_HISTORY_MAX ? IRC_HISTORY_MAX : (size_t)v;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Planning: a subcommand as scans of id and time ranges. */

static void part_all(struct hist_part *p, uint64_t upto, bool forward, size_t max)
{
    *p = (struct hist_part){.lo = 1,
                            .hi = upto,
                            .from_ms = INT64_MIN,
                            .to_ms = INT64_MAX,
                            .forward = forward,
                            .max = max};
}

/* Narrow p to one side of r: before it (exclusive), or after it (exclusive, or from it on when
 * inclusive). */
static void part_side(struct hist_part *p, const struct hist_ref *r, bool after, bool inclusive)
{
    if (r->type == REF_ID && !irc.store) /* A cluster: no id order, the entry's place. */
        *(after ? &p->klo : &p->khi) = (struct qrun_bound){r->id, true, after && inclusive};
    else if (r->type == REF_ID && after)
        p->lo = inclusive ? r->id : r->id + 1;
    else if (r->type == REF_ID)
        p->hi = r->id - 1 < p->hi ? r->id - 1 : p->hi;
    else if (r->type == REF_TIME && after)
        p->from_ms = inclusive ? r->ms : r->ms + 1;
    else if (r->type == REF_TIME)
        p->to_ms = r->ms - 1;
}

/* The scans of h's subcommand (BETWEEN's two references are of one type). */
static void plan(struct hist *h, const struct hist_ref *r1, const struct hist_ref *r2, size_t limit)
{
    struct hist_part *p = h->parts;
    h->nparts = 1;
    if (strcmp(h->sub, "LATEST") == 0) {
        part_all(p, h->upto, false, limit);
        part_side(p, r1, true, false);
    } else if (strcmp(h->sub, "BEFORE") == 0) {
        part_all(p, h->upto, false, limit);
        part_side(p, r1, false, false);
    } else if (strcmp(h->sub, "AFTER") == 0) {
        part_all(p, h->upto, true, limit);
        part_side(p, r1, true, false);
    } else if (strcmp(h->sub, "AROUND") == 0) {
        /* The newest half before the reference, then the rest from it on (it included). */
        part_all(&p[0], h->upto, false, limit / 2);
        part_side(&p[0], r1, false, false);
        part_all(&p[1], h->upto, true, limit - limit / 2);
        part_side(&p[1], r1, true, true);
        h->nparts = 2;
    } else if (r1->type == REF_ID && !irc.store) {
        /* BETWEEN in a cluster: which reference is older is known once their entries are
         * found; the run takes the rows from the first one's side (run.h). */
        part_all(p, h->upto, true, limit);
        p->klo = (struct qrun_bound){r1->id, true, false};
        p->khi = (struct qrun_bound){r2->id, true, false};
        if (r1->id == r2->id)
            p->max = 0;
    } else { /* BETWEEN: from the first reference towards the second, both excluded. */
        bool forward = r1->type == REF_ID ? r1->id < r2->id : r1->ms < r2->ms;
        const struct hist_ref *a = forward ? r1 : r2, *b = forward ? r2 : r1;
        part_all(p, h->upto, forward, limit);
        part_side(p, a, true, false);
        part_side(p, b, false, false);
        if (r1->type == REF_ID ? r1->id == r2->id : r1->ms == r2->ms)
            p->max = 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sending. */

/* Queue more of h's answer, at most half of --out-limit pending at once, whole lines only.
 * True once it is all queued (or the client is gone). */
static bool hist_push(struct hist *h)
{
    struct irc_client *cl = h->cl;
    const char *p = buf_head(&h->wire);
    size_t len = buf_len(&h->wire), half = irc.cfg->out_limit / 2;
    while (h->sent < len && !cl->closing) {
        size_t pend = conn_out_pending(cl->c);
        if (pend >= half) {
            if (conn_flush_now(cl->c) != 0)
                return true;
            pend = conn_out_pending(cl->c);
            if (pend >= half)
                return false; /* Resume or the next tick goes on. */
        }
        size_t n = len - h->sent, room = half - pend;
        if (n > room) {
            const char *nl = memrchr(p + h->sent, '\n', room);
            if (!nl) /* One line longer than the room: it goes whole. */
                nl = memchr(p + h->sent + room, '\n', n - room);
            n = nl ? (size_t)(nl - (p + h->sent)) + 1 : n;
        }
        irc_send_wire(cl, p + h->sent, n);
        h->sent += n;
    }
    return true;
}

static void hist_free(struct hist *h)
{
    for (struct hist **pp = &hists; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    qrun_close(h->run);
    irc_client_wait(h->cl, false); /* Its next command may run now. */
    buf_free(&h->rows);
    buf_free(&h->wire);
    free(h->ends);
    free(h->tg);
    free(h);
}

void irc_history_continue(struct irc_client *cl)
{
    for (struct hist *h = hists; h; h = h->next)
        if (h->cl == cl && !h->run) {
            if (hist_push(h))
                hist_free(h);
            return;
        }
}

void irc_history_cancel(struct irc_client *cl)
{
    for (struct hist *h = hists, *next; h; h = next) {
        next = h->next;
        if (h->cl == cl)
            hist_free(h);
    }
}

void irc_history_free(void)
{
    while (hists)
        hist_free(hists);
}

/* "@label=X " for the first line of the answer, or "". */
static void label_prefix(const struct hist *h, char *out, size_t cap)
{
    if (h->label[0])
        snprintf(out, cap, "@label=%s ", h->label);
    else
        out[0] = 0;
}

static int target_cmp(const void *a, const void *b)
{
    const struct hist_target *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* TARGETS: the channels whose newest entry lies in the window, oldest first, up to the
 * limit. */
static void targets_lines(struct hist *h)
{
    qsort(h->tg, h->ntg, sizeof(*h->tg), target_cmp);
    size_t n = 0;
    for (size_t i = 0; i < h->ntg && n < h->t_limit; i++) {
        const struct hist_target *t = &h->tg[i];
        if (!t->found || t->ms <= h->t_lo || t->ms >= h->t_hi)
            continue;
        char when[40];
        format_iso(t->ms, when, sizeof(when));
        buf_printf(&h->wire, "%s%s%s:%s CHATHISTORY TARGETS %s %s\r\n", h->lead[0] ? "@" : "",
                   h->lead, h->lead[0] ? " " : "", irc.name, t->name, when);
        n++;
    }
}

/* Every scan ended: close the batch (or, after an error, answer FAIL instead) and send. */
static void hist_finish(struct hist *h)
{
    char lp[96];
    label_prefix(h, lp, sizeof(lp));
    if (h->error[0]) {
        buf_consume(&h->wire, buf_len(&h->wire));
        buf_printf(&h->wire,
                   "%s:%s FAIL CHATHISTORY MESSAGE_ERROR %s %s :Messages could not be "
                   "retrieved: %s\r\n",
                   lp, irc.name, h->sub, h->target, h->error);
    } else {
        if (h->tg)
            targets_lines(h);
        if (h->cl->cap_batch)
            buf_printf(&h->wire, ":%s BATCH -%s\r\n", irc.name, h->batch);
        else if (h->label[0] && buf_len(&h->wire) == 0)
            buf_printf(&h->wire, "%s:%s ACK\r\n", lp, irc.name);
    }
    if (hist_push(h))
        hist_free(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading. */

static bool hist_row(void *arg, const struct lc_entry *e)
{
    struct hist *h = arg;
    if (h->tg) { /* TARGETS: the newest entry is the only row. */
        h->tg[h->itg].ms = e->ts_ms;
        h->tg[h->itg].found = true;
        return true;
    }
    if (h->nends == h->capends) {
        size_t cap = h->capends ? 2 * h->capends : 64;
        size_t *ends = realloc(h->ends, cap * sizeof(*ends));
        if (!ends)
            goto oom;
        h->ends = ends;
        h->capends = cap;
    }
    static char out[IRC_RENDER_CAP];
    irc_format_entry(e, h->chan, &h->f);
    size_t n = irc_render_entry(h->cl, &h->f, h->lead[0] ? h->lead : NULL, out, sizeof(out));
    if (buf_append(&h->rows, out, n) < 0)
        goto oom;
    h->ends[h->nends++] = buf_len(&h->rows);
    if (buf_len(&h->rows) + buf_len(&h->wire) < HIST_BYTES_MAX)
        return true;
    h->full = true; /* Cut here: the rows so far are nearest the reference. */
    return false;
oom:
    snprintf(h->error, sizeof(h->error), "out of memory");
    return false;
}

static void hist_error(void *arg, const char *why)
{
    struct hist *h = arg;
    snprintf(h->error, sizeof(h->error), "%s", why);
}

static const struct qrun_sink hist_sink = {.row = hist_row, .error = hist_error};

/* The scan that ended: its rows join the answer oldest first. */
static void rows_done(struct hist *h, bool forward)
{
    const char *p = buf_head(&h->rows);
    int r = 0;
    if (forward)
        r = buf_append(&h->wire, p, buf_len(&h->rows));
    else
        for (size_t i = h->nends; i-- > 0 && r == 0;) {
            size_t start = i ? h->ends[i - 1] : 0;
            r = buf_append(&h->wire, p + start, h->ends[i] - start);
        }
    if (r < 0)
        snprintf(h->error, sizeof(h->error), "out of memory");
    buf_consume(&h->rows, buf_len(&h->rows));
    h->nends = 0;
}

static void hist_ready(void *owner);

/* Start a scan of filter over p. False when there is nothing to read (or it cannot run: then
 * h->error says why). */
static bool scan_start(struct hist *h, const char *filter, const struct hist_part *p)
{
    if (p->max == 0 || (irc.store && p->lo > p->hi) || p->from_ms > p->to_ms || !irc.loop)
        return false;
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(filter, strlen(filter), now_ms(), &q, err) < 0) {
        snprintf(h->error, sizeof(h->error), "%s", err);
        return false;
    }
    if (p->from_ms != INT64_MIN || p->to_ms != INT64_MAX) {
        struct qry *t = qry_time_range(p->from_ms, p->to_ms, err);
        if (!t) {
            qry_free(q);
            snprintf(h->error, sizeof(h->error), "%s", err);
            return false;
        }
        q = qry_and(q, t);
    }
    if (irc.store)
        h->run = qrun_start_list(irc.loop, irc.store, q, p->lo, p->hi, p->forward, p->max,
                                 hist_ready, h);
    else /* A cluster: its order, between the entries referred to. */
        h->run = qrun_start_order(irc.loop, q, p->klo, p->khi, p->forward, p->max, hist_ready, h);
    if (!h->run)
        snprintf(h->error, sizeof(h->error), "out of memory");
    return h->run != NULL;
}

/* Start the next scan, or finish when none is left. */
static void hist_next(struct hist *h)
{
    if (h->tg) {
        for (; h->itg < h->ntg && !h->error[0]; h->itg++) {
            struct hist_part p;
            part_all(&p, h->upto, false, 1);
            if (scan_start(h, h->tg[h->itg].filter, &p))
                return;
        }
    } else {
        for (; h->part < h->nparts && !h->error[0] && !h->full; h->part++)
            if (scan_start(h, h->filter, &h->parts[h->part]))
                return;
    }
    hist_finish(h);
}

static void hist_ready(void *owner)
{
    struct hist *h = owner;
    enum qexec_status st = qrun_drain(h->run, &hist_sink, h);
    if (st == QX_MORE || (st == QX_PAUSED && !h->full && !h->error[0]))
        return;
    qrun_close(h->run);
    h->run = NULL;
    if (h->tg) { /* A channel whose scan failed (a time-out, say) is left out, not the rest. */
        if (h->error[0])
            log_warn("irc: CHATHISTORY TARGETS left out %s: %s", h->tg[h->itg].name, h->error);
        h->error[0] = 0;
        h->itg++;
    } else {
        rows_done(h, h->parts[h->part].forward);
        h->part++;
    }
    hist_next(h);
}

/* ------------------------------------------------------------------------------------------ */
/* The command. */

/* A new answer for cl, its batch opened: the command's label moves onto the batch. */
static struct hist *hist_new(struct irc_client *cl, const char *sub, const char *type,
                             const char *target)
{
    struct hist *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cl = cl;
    snprintf(h->sub, sizeof(h->sub), "%s", sub);
    snprintf(h->target, sizeof(h->target), "%s", target ? target : "*");
    irc_label_detach(cl, h->label, sizeof(h->label));
    irc_logs_pump(); /* The live stream first: the answer reads up to where it stands. */
    h->upto = irc.sub.active ? irc.stream_id : store_done_id(irc.store);
    if (cl->cap_batch) {
        char lp[96];
        label_prefix(h, lp, sizeof(lp));
        irc_batch_id(h->batch, sizeof(h->batch));
        snprintf(h->lead, sizeof(h->lead), "batch=%s", h->batch);
        buf_printf(&h->wire, "%s:%s BATCH +%s %s%s%s\r\n", lp, irc.name, h->batch, type,
                   target ? " " : "", target ? target : "");
    }
    h->next = hists;
    hists = h;
    irc_client_wait(cl, true); /* The answer is the command's: the next one waits for it. */
    return h;
}

static void fail(struct irc_client *cl, const char *code, const char *sub, const char *what,
                 const char *text)
{
    char a[72], b[72];
    if (what)
        irc_send(cl, ":%s FAIL CHATHISTORY %s %s %s :%s", irc.name, code, clean(a, sizeof(a), sub),
                 clean(b, sizeof(b), what), text);
    else
        irc_send(cl, ":%s FAIL CHATHISTORY %s %s :%s", irc.name, code, clean(a, sizeof(a), sub),
                 text);
}

static void cmd_targets(struct irc_client *cl, char **argv)
{
    struct hist_ref a, b;
    size_t limit;
    if (parse_ref(argv[1], false, &a) < 0 || a.type != REF_TIME) {
        fail(cl, "INVALID_PARAMS", "TARGETS", argv[1],
             "Expected timestamp=YYYY-MM-DDThh:mm:ss.sssZ");
        return;
    }
    if (parse_ref(argv[2], false, &b) < 0 || b.type != REF_TIME) {
        fail(cl, "INVALID_PARAMS", "TARGETS", argv[2],
             "Expected timestamp=YYYY-MM-DDThh:mm:ss.sssZ");
        return;
    }
    if (!parse_limit(argv[3], &limit)) {
        fail(cl, "INVALID_PARAMS", "TARGETS", argv[3], "Invalid limit");
        return;
    }
    struct hist_target *tg = calloc(HIST_TARGETS, sizeof(*tg));
    struct hist *h = tg ? hist_new(cl, "TARGETS", "draft/chathistory-targets", NULL) : NULL;
    if (!h) {
        free(tg);
        fail(cl, "MESSAGE_ERROR", "TARGETS", NULL, "Out of memory");
        return;
    }
    h->tg = tg;
    for (struct irc_chan *ch = irc.chans; ch && h->ntg < HIST_TARGETS; ch = ch->next)
        if (ch->is_log && ch->filter) {
            struct hist_target *t = &tg[h->ntg++];
            snprintf(t->name, sizeof(t->name), "%s", ch->name);
            snprintf(t->filter, sizeof(t->filter), "%s", ch->filter_text);
        }
    h->t_lo = a.ms < b.ms ? a.ms : b.ms;
    h->t_hi = a.ms < b.ms ? b.ms : a.ms;
    h->t_limit = limit;
    hist_next(h);
}

void irc_cmd_chathistory(struct irc_client *cl, int argc, char **argv)
{
    static const char *const subs[] = {"LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS"};
    if (argc < 1) {
        irc_send(cl, ":%s FAIL CHATHISTORY NEED_MORE_PARAMS CHATHISTORY :Missing parameters",
                 irc.name);
        return;
    }
    char *sub = argv[0];
    for (char *c = sub; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    size_t k = 0;
    while (k < sizeof(subs) / sizeof(subs[0]) && strcmp(subs[k], sub) != 0)
        k++;
    if (k == sizeof(subs) / sizeof(subs[0])) {
        fail(cl, "UNKNOWN_COMMAND", sub, NULL, "Unknown subcommand");
        return;
    }
    bool between = strcmp(sub, "BETWEEN") == 0;
    if (argc < (between ? 5 : 4)) {
        fail(cl, "NEED_MORE_PARAMS", sub, NULL, "Missing parameters");
        return;
    }
    if (strcmp(sub, "TARGETS") == 0) {
        cmd_targets(cl, argv);
        return;
    }
    const char *target = argv[1];
    struct hist_ref r1 = {0}, r2 = {0};
    size_t limit;
    for (int i = 0; i < (between ? 2 : 1); i++) {
        int rc = parse_ref(argv[2 + i], strcmp(sub, "LATEST") == 0, i ? &r2 : &r1);
        if (rc < 0) {
            fail(cl, "INVALID_PARAMS", sub, argv[2 + i],
                 rc == -ENOENT ? "Unknown msgid: log lines' msgids are lc-<id>"
                               : "Expected msgid=, timestamp= or (LATEST) *");
            return;
        }
    }
    if (between && r1.type != r2.type) { /* Their order is not known before reading. */
        fail(cl, "INVALID_PARAMS", sub, argv[3], "BETWEEN takes two references of one type");
        return;
    }
    if (!parse_limit(argv[between ? 4 : 3], &limit)) {
        fail(cl, "INVALID_PARAMS", sub, argv[between ? 4 : 3], "Invalid limit");
        return;
    }
    struct irc_chan *ch = target[0] == '#' ? irc_chan_find(target) : NULL;
    bool known = ch ? ch->is_log || irc_chan_member(ch, cl) : irc_client_find(target) != NULL;
    if (!known) {
        fail(cl, "INVALID_TARGET", sub, target, "Messages could not be retrieved");
        return;
    }
    struct hist *h = hist_new(cl, sub, "chathistory", target);
    if (!h) {
        fail(cl, "MESSAGE_ERROR", sub, target, "Out of memory");
        return;
    }
    if (ch && ch->is_log && ch->filter) { /* Else: no stored history, an empty batch. */
        snprintf(h->chan, sizeof(h->chan), "%s", ch->name);
        snprintf(h->filter, sizeof(h->filter), "%s", ch->filter_text);
        plan(h, &r1, &r2, limit);
    }
    hist_next(h);
}
