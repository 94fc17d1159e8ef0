/* irc_message.c - PRIVMSG and NOTICE to channels and nicks, up to IRC_MAXTARGETS targets each.
 * A "!" message in a log channel, or any message to LogBot, also goes to LogBot
 * (irc_logbot.c). NOTICE gets no error replies, as the RFC says. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "irc/irc_internal.h"

/* One user message to one client: with "@time=" when it negotiated server-time. tagged is
 * the line with that tag in front, line the tag-less one inside it. */
static void deliver(struct irc_client *to, const char *tagged, size_t tagged_len, const char *line,
                    size_t len)
{
    if (to->cap_server_time)
        irc_send_tagged(to, tagged, tagged_len);
    else
        irc_send_raw(to, line, len);
}

static void message(struct irc_client *cl, int argc, char **argv, const char *cmd)
{
    bool notice = strcmp(cmd, "NOTICE") == 0;
    if (argc < 1) {
        if (!notice)
            irc_numeric(cl, 411, ":No recipient given (%s)", cmd);
        return;
    }
    if (argc < 2 || !argv[1][0]) {
        if (!notice)
            irc_numeric(cl, 412, ":No text to send");
        return;
    }
    char targets[IRC_LINE_MAX];
    snprintf(targets, sizeof(targets), "%s", argv[0]);
    int ntargets = 1;
    for (const char *c = targets; *c; c++)
        ntargets += *c == ',';
    if (ntargets > IRC_MAXTARGETS) {
        if (!notice)
            irc_numeric(cl, 407, "%s :Too many recipients (at most %d)", argv[0], IRC_MAXTARGETS);
        return;
    }
    /* "@time=2024-05-01T12:00:00.000Z " for server-time clients (IRCv3). */
    char stamp[64];
    int64_t now = now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t sl = strftime(stamp, sizeof(stamp), "@time=%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sl, sizeof(stamp) - sl, ".%03dZ ", (int)(now % 1000));
    sl = strlen(stamp);
    char *save;
    for (char *t = strtok_r(targets, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char tagged[64 + IRC_LINE_MAX];
        memcpy(tagged, stamp, sl);
        char *line = tagged + sl;
        int n = snprintf(line, IRC_LINE_MAX, ":%s!%s@%s %s %s :%s", cl->nick, cl->user, cl->host,
                         cmd, t, argv[1]);
        size_t len = (size_t)n < IRC_LINE_MAX - 2 ? (size_t)n : IRC_LINE_MAX - 2;
        size_t tlen = sl + len;
        if (t[0] == '#') {
            struct irc_chan *ch = irc_chan_find(t);
            if (!ch) {
                if (!notice)
                    irc_numeric(cl, 403, "%s :No such channel", t);
                continue;
            }
            struct irc_member *m = irc_chan_member(ch, cl);
            bool bang = argv[1][0] == '!';
            /* LogBot commands always work in log channels; chat obeys +n and +m. */
            if (!(bang && ch->is_log) &&
                ((ch->mode_n && !m) || (ch->mode_m && (!m || !(m->op || m->voice))))) {
                if (!notice)
                    irc_numeric(cl, 404, "%s :Cannot send to channel", ch->name);
                continue;
            }
            for (int i = 0; i < ch->nmembers; i++)
                if (ch->members[i].cl != cl)
                    deliver(ch->members[i].cl, tagged, tlen, line, len);
            if (cl->cap_echo_message)
                deliver(cl, tagged, tlen, line, len);
            if (bang && !notice && ch->is_log)
                irc_logbot_command(cl, m ? ch->name : "LogBot", argv[1]);
        } else if (irc.log_channels && irc_name_eq(t, "LogBot")) {
            if (!notice)
                irc_logbot_command(cl, "LogBot", argv[1]);
        } else {
            struct irc_client *to = irc_client_find(t);
            if (!to) {
                if (!notice)
                    irc_numeric(cl, 401, "%s :No such nick/channel", t);
                continue;
            }
            deliver(to, tagged, tlen, line, len);
            if (cl->cap_echo_message)
                deliver(cl, tagged, tlen, line, len);
            if (to->away[0] && !notice)
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
