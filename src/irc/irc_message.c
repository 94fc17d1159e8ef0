/* irc_message.c - PRIVMSG, NOTICE and TAGMSG to channels and nicks, up to IRC_MAXTARGETS targets
 * each. A "!" message in a log channel, or any message to LogBot, also goes to LogBot
 * (irc_logbot.c). NOTICE gets no error replies, as the RFC says.
 *
 * IRCv3: each recipient gets the tags it negotiated: "time=" with server-time; "msgid=" and the
 * sender's client-only tags ("+name=value") with message-tags; TAGMSG goes only to those with
 * message-tags; "bot" from a +B sender with message-tags; "account=" from a logged-in sender
 * with account-tag. The sender gets its own message back with echo-message. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "irc/irc_internal.h"

/* One user message, rendered for each recipient by deliver(). */
struct umsg {
    char line[IRC_LINE_MAX]; /* ":nick!user@host CMD target :text", without tags. */
    size_t len;
    char time_tag[48];            /* "time=...Z" */
    char msgid[32];               /* Unique per message, the same for every copy of it. */
    char ctags[IRC_TAGS_MAX + 1]; /* The sender's client-only tags, ";"-separated. */
    size_t ctags_len;
    bool tags_only; /* TAGMSG: only for message-tags clients. */
    bool bot;       /* The sender is +B. */
    char account[IRC_ACCOUNTLEN + 1];
};

/* Append one tag to the tag section being built in buf (n bytes so far, '@' first). */
static void tag_add(char *buf, size_t cap, size_t *n, const char *name, const char *value,
                    size_t vlen)
{
    int w = snprintf(buf + *n, cap - *n, "%s%s%s%.*s", *n > 1 ? ";" : "", name, value ? "=" : "",
                     value ? (int)vlen : 0, value ? value : "");
    if (w > 0)
        *n = *n + (size_t)w < cap ? *n + (size_t)w : cap - 1;
}

static void deliver(struct irc_client *to, const struct umsg *u)
{
    bool t = to->cap_server_time, mt = to->cap_message_tags;
    bool acct = to->cap_account_tag && u->account[0];
    if (u->tags_only && !mt)
        return;
    if (!t && !mt && !acct) {
        irc_send_raw(to, u->line, u->len);
        return;
    }
    char buf[IRC_TAGS_MAX + IRC_LINE_MAX + 160];
    size_t n = 1;
    buf[0] = '@';
    if (t) /* time_tag is "time=...": a whole tag already. */
        tag_add(buf, sizeof(buf), &n, u->time_tag, NULL, 0);
    if (mt)
        tag_add(buf, sizeof(buf), &n, "msgid", u->msgid, strlen(u->msgid));
    if (mt && u->bot)
        tag_add(buf, sizeof(buf), &n, "bot", NULL, 0);
    if (acct)
        tag_add(buf, sizeof(buf), &n, "account", u->account, strlen(u->account));
    if (mt && u->ctags_len)
        tag_add(buf, sizeof(buf), &n, u->ctags, NULL, 0);
    if (n + 1 + u->len > sizeof(buf))
        return;
    buf[n++] = ' ';
    memcpy(buf + n, u->line, u->len);
    irc_send_tagged(to, buf, n + u->len);
}

/* The client-only tags of the line being handled: those whose name starts with '+'. */
static void client_tags(struct umsg *u)
{
    u->ctags_len = 0;
    if (!irc.tags)
        return;
    const char *p = irc.tags;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (p[0] == '+' && len > 1 && u->ctags_len + len + 1 < sizeof(u->ctags)) {
            if (u->ctags_len)
                u->ctags[u->ctags_len++] = ';';
            memcpy(u->ctags + u->ctags_len, p, len);
            u->ctags_len += len;
        }
        p += len + (end != NULL);
    }
    u->ctags[u->ctags_len] = 0;
}

void irc_message_stamp(char *time_tag, size_t tcap, char *msgid, size_t mcap)
{
    static uint64_t seq;
    int64_t now = now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t sl = strftime(time_tag, tcap, "time=%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(time_tag + sl, tcap - sl, ".%03dZ", (int)(now % 1000));
    snprintf(msgid, mcap, "%" PRIx64 "-%" PRIu64, (uint64_t)irc.started_ms, ++seq);
}

static void stamp(struct umsg *u)
{
    irc_message_stamp(u->time_tag, sizeof(u->time_tag), u->msgid, sizeof(u->msgid));
}

static void message(struct irc_client *cl, int argc, char **argv, const char *cmd)
{
    bool notice = strcmp(cmd, "NOTICE") == 0, tagmsg = strcmp(cmd, "TAGMSG") == 0;
    bool quiet = notice || tagmsg; /* No error replies. */
    if (argc < 1) {
        if (!quiet)
            irc_numeric(cl, 411, ":No recipient given (%s)", cmd);
        return;
    }
    if (!tagmsg && (argc < 2 || !argv[1][0])) {
        if (!notice)
            irc_numeric(cl, 412, ":No text to send");
        return;
    }
    const char *text = tagmsg ? "" : argv[1];
    char targets[IRC_LINE_MAX];
    snprintf(targets, sizeof(targets), "%s", argv[0]);
    int ntargets = 1;
    for (const char *c = targets; *c; c++)
        ntargets += *c == ',';
    if (ntargets > IRC_MAXTARGETS) {
        if (!quiet)
            irc_numeric(cl, 407, "%s :Too many recipients (at most %d)", argv[0], IRC_MAXTARGETS);
        return;
    }
    static struct umsg u; /* 5 KiB: one thread runs IRC, and this is not re-entered. */
    stamp(&u);
    client_tags(&u);
    u.tags_only = tagmsg;
    u.bot = cl->bot;
    snprintf(u.account, sizeof(u.account), "%s", cl->account);
    char *save;
    for (char *t = strtok_r(targets, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int n = tagmsg ? snprintf(u.line, sizeof(u.line), ":%s!%s@%s TAGMSG %s", cl->nick, cl->user,
                                  cl->host, t)
                       : snprintf(u.line, sizeof(u.line), ":%s!%s@%s %s %s :%s", cl->nick, cl->user,
                                  cl->host, cmd, t, text);
        u.len = (size_t)n < IRC_LINE_MAX - 2 ? (size_t)n : IRC_LINE_MAX - 2;
        if (t[0] == '#') {
            struct irc_chan *ch = irc_chan_find(t);
            if (!ch) {
                if (!quiet)
                    irc_numeric(cl, 403, "%s :No such channel", t);
                continue;
            }
            struct irc_member *m = irc_chan_member(ch, cl);
            bool bang = text[0] == '!';
            /* LogBot commands always work in log channels; chat obeys +n and +m. */
            if (!(bang && ch->is_log) &&
                ((ch->mode_n && !m) || (ch->mode_m && (!m || !(m->op || m->voice))))) {
                if (!quiet)
                    irc_numeric(cl, 404, "%s :Cannot send to channel", ch->name);
                continue;
            }
            for (int i = 0; i < ch->nmembers; i++)
                if (ch->members[i].cl != cl)
                    deliver(ch->members[i].cl, &u);
            if (cl->cap_echo_message)
                deliver(cl, &u);
            if (bang && !quiet && ch->is_log)
                irc_logbot_command(cl, m ? ch->name : "LogBot", text);
        } else if (irc.log_channels && irc_name_eq(t, "LogBot")) {
            if (!quiet)
                irc_logbot_command(cl, "LogBot", text);
        } else {
            struct irc_client *to = irc_client_find(t);
            if (!to) {
                if (!quiet)
                    irc_numeric(cl, 401, "%s :No such nick/channel", t);
                continue;
            }
            /* To oneself: the recipient's copy is not the reply (labeled-response labels the
             * echo only). */
            irc_label_bypass(to == cl);
            deliver(to, &u);
            irc_label_bypass(false);
            if (cl->cap_echo_message)
                deliver(cl, &u);
            if (to->away[0] && !quiet)
                irc_numeric(cl, 301, "%s :%s", to->nick, to->away);
        }
    }
}

void irc_cmd_privmsg(struct irc_client *cl, int argc, char **argv)
{
    message(cl, argc, argv, "PRIVMSG");
}

void irc_cmd_notice(struct irc_client *cl, int argc, char **argv)
{
    message(cl, argc, argv, "NOTICE");
}

void irc_cmd_tagmsg(struct irc_client *cl, int argc, char **argv)
{
    message(cl, argc, argv, "TAGMSG");
}
