/* irc_multiline.c - IRCv3 draft/multiline: a client that negotiated it (with batch) may send
 * one message of several lines as a client batch:
 *   BATCH +ref draft/multiline <target>
 *   @batch=ref PRIVMSG <target> :line            (or NOTICE; all lines the same command)
 *   @batch=ref;draft/multiline-concat PRIVMSG <target> :rest of the line before
 *   BATCH -ref
 * The lines are collected here (the dispatcher in irc.c hands every line tagged with the open
 * batch's reference to irc_mline_line) and checked as they arrive, so a client that goes over
 * a limit learns it at once (FAIL BATCH MULTILINE_MAX_LINES/MAX_BYTES/INVALID_TARGET/INVALID);
 * the rest of a failed batch is dropped quietly up to its BATCH -ref. At BATCH -ref the message
 * goes to its recipients: as a draft/multiline batch to those with the capability (and batch),
 * and as its non-blank lines, one PRIVMSG each, to the others, with the msgid on the first
 * line only. The sender's echo (echo-message) is the batch, and a label given on BATCH +ref
 * (or BATCH -ref) is put on its opening line only, as the spec says; without echo-message the
 * label is answered with ACK.
 *
 * One batch open per client; its lines cost a quarter of a flood-control token each (a client
 * sends the whole batch at once), bounded by the line limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc/irc_internal.h"
#include "irc/irc_parse.h"

#define ML_REF_MAX 64 /* A batch reference we echo: printable, no ';' or space. */
#define ML_TYPE    "draft/multiline"
#define ML_CONCAT  "draft/multiline-concat"

struct ml_line {
    uint16_t off, len; /* Into text. */
    bool concat;       /* Joined to the line before with nothing between. */
};

struct irc_mline {
    char ref[ML_REF_MAX + 1];
    char target[IRC_CHANLEN + IRC_NICKLEN + 1];
    char cmd[8];                  /* PRIVMSG or NOTICE, from the first line. */
    char label[80];               /* labeled-response: from BATCH +ref; "" for none. */
    char ctags[IRC_TAGS_MAX + 1]; /* Client-only tags of BATCH +ref, ";"-separated. */
    bool failed;                  /* FAIL sent: the rest is dropped up to BATCH -ref. */
    int nlines;
    size_t bytes; /* Counted as the spec does: text plus one per line feed. */
    size_t used;  /* Of text. */
    struct ml_line line[IRC_MULTILINE_MAX_LINES];
    char text[IRC_MULTILINE_MAX_BYTES];
};

void irc_mline_free(struct irc_client *cl)
{
    free(cl->mline);
    cl->mline = NULL;
}

/* FAIL BATCH <code> ... :text, labeled when label is not empty. */
static void fail(struct irc_client *cl, const char *label, const char *code_and_args,
                 const char *text)
{
    char line[IRC_LINE_MAX + 100];
    int n = snprintf(line, sizeof(line), "%s%s%s:%s FAIL BATCH %s :%s", label[0] ? "@label=" : "",
                     label, label[0] ? " " : "", irc.name, code_and_args, text);
    if (n > 0)
        irc_send_tagged(cl, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Fail the open batch: tell the client and drop the rest of it up to BATCH -ref. */
static void fail_batch(struct irc_client *cl, const char *code_and_args, const char *text)
{
    fail(cl, "", code_and_args, text);
    cl->mline->failed = true;
}

/* A reference, label or target we echo: printable ASCII, no separators. */
static bool token_ok(const char *s, size_t max)
{
    if (!*s || strlen(s) > max)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == ';' || *s == ',')
            return false;
    return true;
}

/* The client-only tags ("+name[=value]") of tags, ";"-separated, into out. */
static void client_tags(const char *tags, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (const char *p = tags; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (p[0] == '+' && len > 1 && o + len + 2 < cap) {
            if (o)
                out[o++] = ';';
            memcpy(out + o, p, len);
            o += len;
            out[o] = 0;
        }
        p = end ? end + 1 : NULL;
    }
}

static void batch_open(struct irc_client *cl, int argc, char **argv)
{
    const char *ref = argv[0] + 1;
    if (argc < 2 || strcmp(argv[1], ML_TYPE) != 0) {
        fail(cl, "", "MULTILINE_INVALID", "Only draft/multiline batches can be sent");
        return;
    }
    if (!cl->cap_multiline || !cl->cap_batch) {
        fail(cl, "", "MULTILINE_INVALID", "Negotiate draft/multiline and batch first");
        return;
    }
    if (argc < 3 || !token_ok(ref, ML_REF_MAX) ||
        !token_ok(argv[2], sizeof(cl->mline->target) - 1)) {
        fail(cl, "", "MULTILINE_INVALID", "Invalid multiline batch");
        return;
    }
    if (cl->mline && !cl->mline->failed) { /* Batches do not nest: both are void. */
        irc_mline_free(cl);
        fail(cl, "", "MULTILINE_INVALID", "A multiline batch is already open");
        return;
    }
    if (irc.log_channels && irc_name_eq(argv[2], "LogBot")) {
        fail(cl, "", "MULTILINE_INVALID", "LogBot takes one-line commands");
        return;
    }
    irc_mline_free(cl);
    struct irc_mline *ml = calloc(1, sizeof(*ml));
    if (!ml) {
        fail(cl, "", "MULTILINE_INVALID", "Out of memory");
        return;
    }
    snprintf(ml->ref, sizeof(ml->ref), "%s", ref);
    snprintf(ml->target, sizeof(ml->target), "%s", argv[2]);
    client_tags(irc.tags, ml->ctags, sizeof(ml->ctags));
    /* The label belongs to the message's echo at BATCH -ref, not to this line (no ACK now). */
    irc_label_detach(cl, ml->label, sizeof(ml->label));
    cl->mline = ml;
}

bool irc_mline_line(struct irc_client *cl, struct irc_msg *m)
{
    struct irc_mline *ml = cl->mline;
    char ref[ML_REF_MAX + 2];
    if (!ml || !m->tags || strcmp(m->command, "BATCH") == 0 ||
        !irc_tag_get(m->tags, "batch", ref, sizeof(ref)))
        return false; /* Not part of a batch: an ordinary command. */
    if (ml->failed) {
        if (strcmp(ref, ml->ref) != 0)
            return false;
        cl->flood_tokens += 0.75; /* The rest of a failed batch: dropped, as cheap as kept. */
        return true;
    }
    if (strcmp(ref, ml->ref) != 0) {
        fail_batch(cl, "MULTILINE_INVALID", "Line of another batch inside a multiline batch");
        return true;
    }
    bool privmsg = strcmp(m->command, "PRIVMSG") == 0, notice = strcmp(m->command, "NOTICE") == 0;
    if ((!privmsg && !notice) || (ml->cmd[0] && strcmp(ml->cmd, m->command) != 0) || m->argc < 2) {
        fail_batch(cl, "MULTILINE_INVALID", "Multiline batches hold PRIVMSG or NOTICE lines only");
        return true;
    }
    if (!irc_name_eq(m->argv[0], ml->target)) {
        char args[IRC_LINE_MAX];
        snprintf(args, sizeof(args), "MULTILINE_INVALID_TARGET %s %.*s", ml->target,
                 token_ok(m->argv[0], 100) ? 100 : 1, token_ok(m->argv[0], 100) ? m->argv[0] : "*");
        fail_batch(cl, args, "Invalid multiline target");
        return true;
    }
    const char *text = m->argv[1];
    size_t len = strlen(text);
    char dummy[2];
    bool concat = irc_tag_get(m->tags, ML_CONCAT, dummy, sizeof(dummy));
    if (concat && len == 0) {
        fail_batch(cl, "MULTILINE_INVALID", "A blank line cannot be concatenated");
        return true;
    }
    if (ml->nlines == IRC_MULTILINE_MAX_LINES) {
        fail_batch(cl, "MULTILINE_MAX_LINES " IRC_STR(IRC_MULTILINE_MAX_LINES),
                   "Multiline batch max-lines exceeded");
        return true;
    }
    size_t bytes = ml->bytes + len + (ml->nlines && !concat);
    if (bytes > IRC_MULTILINE_MAX_BYTES) {
        fail_batch(cl, "MULTILINE_MAX_BYTES " IRC_STR(IRC_MULTILINE_MAX_BYTES),
                   "Multiline batch max-bytes exceeded");
        return true;
    }
    snprintf(ml->cmd, sizeof(ml->cmd), "%s", m->command);
    memcpy(ml->text + ml->used, text, len);
    ml->line[ml->nlines++] = (struct ml_line){(uint16_t)ml->used, (uint16_t)len, concat};
    ml->used += len;
    ml->bytes = bytes;
    /* The whole batch comes at once: its lines are cheap, and max-lines bounds them. */
    cl->flood_tokens += 0.75;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Delivery. */

/* What every copy of the message shares. */
struct ml_send {
    const struct irc_mline *ml;
    const struct irc_client *from;
    char prefix[IRC_NICKLEN + 100]; /* nick!user@host */
    char time_tag[48], msgid[32];
    char ref[40]; /* The reference of the batch we send (ours, not the client's). */
};

/* Send "@tags body" (or just body when tags is empty); body is cut to IRC's 510 bytes. */
static void emit(struct irc_client *to, const char *tags, const char *body, size_t blen)
{
    char buf[IRC_TAGS_MAX + IRC_LINE_MAX + 400];
    if (blen > IRC_LINE_MAX - 2)
        blen = IRC_LINE_MAX - 2;
    int n = tags[0] ? snprintf(buf, sizeof(buf), "@%s %.*s", tags, (int)blen, body)
                    : snprintf(buf, sizeof(buf), "%.*s", (int)blen, body);
    if (n > 0)
        irc_send_tagged(to, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void tag_cat(char *out, size_t cap, const char *tag)
{
    size_t o = strlen(out);
    if (tag[0])
        snprintf(out + o, cap - o, "%s%s", o ? ";" : "", tag);
}

/* The message's tags as to negotiated them: the label first (the echo), the msgid if asked. */
static void msg_tags(const struct ml_send *s, const struct irc_client *to, const char *label,
                     bool msgid, char *out, size_t cap)
{
    char t[IRC_ACCOUNTLEN + 80];
    out[0] = 0;
    if (label[0]) {
        snprintf(t, sizeof(t), "label=%s", label);
        tag_cat(out, cap, t);
    }
    if (to->cap_server_time)
        tag_cat(out, cap, s->time_tag);
    if (to->cap_message_tags && msgid) {
        snprintf(t, sizeof(t), "msgid=%s", s->msgid);
        tag_cat(out, cap, t);
    }
    if (to->cap_message_tags && s->from->bot)
        tag_cat(out, cap, "bot");
    if (to->cap_account_tag && s->from->account[0]) {
        snprintf(t, sizeof(t), "account=%s", s->from->account);
        tag_cat(out, cap, t);
    }
    if (to->cap_message_tags)
        tag_cat(out, cap, s->ml->ctags);
}

static void deliver(struct irc_client *to, const struct ml_send *s, const char *label)
{
    const struct irc_mline *ml = s->ml;
    static char tags[IRC_TAGS_MAX + 200];
    char body[IRC_LINE_MAX + IRC_MULTILINE_MAX_BYTES];
    int bl;
    if (to->cap_multiline && to->cap_batch) {
        msg_tags(s, to, label, true, tags, sizeof(tags));
        bl = snprintf(body, sizeof(body), ":%s BATCH +%s " ML_TYPE " %s", s->prefix, s->ref,
                      ml->target);
        emit(to, tags, body, (size_t)bl);
        for (int i = 0; i < ml->nlines; i++) {
            snprintf(tags, sizeof(tags), "batch=%s%s", s->ref,
                     ml->line[i].concat ? ";" ML_CONCAT : "");
            bl = snprintf(body, sizeof(body), ":%s %s %s :%.*s", s->prefix, ml->cmd, ml->target,
                          (int)ml->line[i].len, ml->text + ml->line[i].off);
            emit(to, tags, body, (size_t)bl);
        }
        bl = snprintf(body, sizeof(body), ":%s BATCH -%s", s->prefix, s->ref);
        emit(to, "", body, (size_t)bl);
        return;
    }
    /* Fallback: the lines as the client split them, blank ones left out, the msgid on the
     * first only. */
    bool first = true;
    for (int i = 0; i < ml->nlines; i++) {
        if (!ml->line[i].len)
            continue;
        msg_tags(s, to, first ? label : "", first, tags, sizeof(tags));
        bl = snprintf(body, sizeof(body), ":%s %s %s :%.*s", s->prefix, ml->cmd, ml->target,
                      (int)ml->line[i].len, ml->text + ml->line[i].off);
        emit(to, tags, body, (size_t)bl);
        first = false;
    }
}

static void batch_close(struct irc_client *cl, const char *ref)
{
    struct irc_mline *ml = cl->mline;
    char label[80];
    irc_label_detach(cl, label, sizeof(label)); /* A label on BATCH -ref counts as well. */
    if (!ml || strcmp(ref, ml->ref) != 0) {
        fail(cl, label, "MULTILINE_INVALID", "No such multiline batch open");
        return;
    }
    if (ml->label[0])
        snprintf(label, sizeof(label), "%s", ml->label);
    if (ml->failed) {
        irc_mline_free(cl);
        return;
    }
    bool blank = true;
    for (int i = 0; i < ml->nlines; i++)
        blank &= ml->line[i].len == 0;
    if (blank) { /* No lines, or only blank ones: nothing to say. */
        fail(cl, label, "MULTILINE_INVALID", "Invalid multiline batch");
        irc_mline_free(cl);
        return;
    }
    if (label[0] && cl->cap_labeled) {
        /* The answer is labeled as the dispatcher labels any: an error numeric carries the
         * label, and no answer at all (no echo-message) is ACK. */
        char tags[sizeof(label) + 8];
        snprintf(tags, sizeof(tags), "label=%s", label);
        irc_label_begin(cl, tags, "BATCH");
    }
    bool notice = strcmp(ml->cmd, "NOTICE") == 0; /* No error replies, as for NOTICE. */
    static struct ml_send s;
    s.ml = ml;
    s.from = cl;
    snprintf(s.prefix, sizeof(s.prefix), "%s!%s@%s", cl->nick, cl->user, cl->host);
    irc_message_stamp(s.time_tag, sizeof(s.time_tag), s.msgid, sizeof(s.msgid));
    irc_batch_id(s.ref, sizeof(s.ref));
    struct irc_client *away = NULL;
    bool sent = false;
    if (ml->target[0] == '#') {
        struct irc_chan *ch = irc_chan_find(ml->target);
        struct irc_member *m = ch ? irc_chan_member(ch, cl) : NULL;
        if (!ch) {
            if (!notice)
                irc_numeric(cl, 403, "%s :No such channel", ml->target);
        } else if ((ch->mode_n && !m) || (ch->mode_m && (!m || !(m->op || m->voice)))) {
            if (!notice)
                irc_numeric(cl, 404, "%s :Cannot send to channel", ch->name);
        } else {
            for (int i = 0; i < ch->nmembers; i++)
                if (ch->members[i].cl != cl)
                    deliver(ch->members[i].cl, &s, "");
            sent = true;
        }
    } else {
        struct irc_client *to = irc_client_find(ml->target);
        if (!to) {
            if (!notice)
                irc_numeric(cl, 401, "%s :No such nick/channel", ml->target);
        } else {
            if (to != cl || !cl->cap_echo_message) /* To oneself: the echo is the copy. */
                deliver(to, &s, "");
            away = to->away[0] && !notice ? to : NULL;
            sent = true;
        }
    }
    if (sent && cl->cap_echo_message) {
        /* The echo carries the label on its opening line; nothing else is the answer. */
        irc_label_bypass(true);
        deliver(cl, &s, label);
        irc_label_bypass(false);
        irc_label_detach(cl, label, sizeof(label));
    }
    if (away)
        irc_numeric(cl, 301, "%s :%s", away->nick, away->away);
    irc_mline_free(cl);
}

void irc_cmd_batch(struct irc_client *cl, int argc, char **argv)
{
    if (argv[0][0] == '+')
        batch_open(cl, argc, argv);
    else if (argv[0][0] == '-')
        batch_close(cl, argv[0] + 1);
    else
        fail(cl, "", "MULTILINE_INVALID", "Invalid batch reference");
}
