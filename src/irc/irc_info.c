/* irc_info.c - what clients ask about the server and its users: WHO, WHOIS, USERHOST, ISON,
 * LUSERS, MOTD, VERSION and TIME, and the ISUPPORT and MOTD parts of the welcome. LogBot is not a
 * client: it is answered for here by name. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "irc/irc_internal.h"

void irc_send_isupport(struct irc_client *cl)
{
    irc_numeric(cl, 5,
                "CHANTYPES=# CASEMAPPING=rfc1459 NICKLEN=%d CHANNELLEN=%d TOPICLEN=300 "
                "PREFIX=(o)@ CHANMODES=,k,l,imnt MAXTARGETS=%d CHANLIMIT=#:%d NETWORK=LogCaster "
                ":are supported by this server",
                IRC_NICKLEN, IRC_CHANLEN, IRC_MAXTARGETS, IRC_MAXCHANS);
}

void irc_send_motd(struct irc_client *cl)
{
    irc_numeric(cl, 375, ":- %s Message of the day -", irc.name);
    irc_numeric(cl, 372, ":- Live logs: JOIN #logs-all or #logs-error; !help for commands.");
    irc_numeric(cl, 376, ":End of /MOTD command.");
}

/* ------------------------------------------------------------------------------------------ */
/* Commands. */

void irc_cmd_who(struct irc_client *cl, int argc, char **argv)
{
    const char *mask = argc ? argv[0] : "*";
    struct irc_chan *ch = argc ? irc_chan_find(mask) : NULL;
    if (ch) {
        if (ch->is_log)
            irc_numeric(cl, 352, "%s log system %s LogBot H@ :0 LogCaster log relay", ch->name,
                        irc.name);
        for (int i = 0; i < ch->nmembers; i++) {
            struct irc_client *o = ch->members[i].cl;
            irc_numeric(cl, 352, "%s %s %s %s %s %c%s :0 %s", ch->name, o->user, o->host, irc.name,
                        o->nick, o->away[0] ? 'G' : 'H', ch->members[i].op ? "@" : "", o->realname);
        }
    } else if (argc) {
        struct irc_client *o = irc_client_find(mask);
        if (o)
            irc_numeric(cl, 352, "* %s %s %s %s %c :0 %s", o->user, o->host, irc.name, o->nick,
                        o->away[0] ? 'G' : 'H', o->realname);
    }
    irc_numeric(cl, 315, "%s :End of /WHO list.", mask);
}

void irc_cmd_whois(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 431, ":No nickname given");
        return;
    }
    const char *nick = argv[argc - 1];
    if (irc.log_channels && irc_name_eq(nick, "LogBot")) {
        irc_numeric(cl, 311, "LogBot log system * :LogCaster log relay");
        char chans[400];
        size_t n = 0;
        for (struct irc_chan *ch = irc.chans; ch && n < sizeof(chans) - IRC_CHANLEN - 3;
             ch = ch->next)
            if (ch->is_log)
                n +=
                    (size_t)snprintf(chans + n, sizeof(chans) - n, "%s@%s", n ? " " : "", ch->name);
        if (n)
            irc_numeric(cl, 319, "LogBot :%s", chans);
        irc_numeric(cl, 318, "LogBot :End of /WHOIS list.");
        return;
    }
    struct irc_client *o = irc_client_find(nick);
    if (!o) {
        irc_numeric(cl, 401, "%s :No such nick/channel", nick);
        irc_numeric(cl, 318, "%s :End of /WHOIS list.", nick);
        return;
    }
    irc_numeric(cl, 311, "%s %s %s * :%s", o->nick, o->user, o->host, o->realname);
    char buf[400];
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < o->nchans && n < sizeof(buf) - 60; i++) {
        struct irc_member *m = irc_chan_member(o->chans[i], o);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s", n ? " " : "",
                              m && m->op ? "@" : "", o->chans[i]->name);
    }
    if (n)
        irc_numeric(cl, 319, "%s :%s", o->nick, buf);
    irc_numeric(cl, 312, "%s %s :LogCaster", o->nick, irc.name);
    if (o->away[0])
        irc_numeric(cl, 301, "%s :%s", o->nick, o->away);
    irc_numeric(cl, 318, "%s :End of /WHOIS list.", o->nick);
}

void irc_cmd_userhost(struct irc_client *cl, int argc, char **argv)
{
    char buf[400] = "";
    size_t n = 0;
    for (int i = 0; i < argc && i < 5; i++) {
        struct irc_client *o = irc_client_find(argv[i]);
        if (o && n < sizeof(buf) - 100)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=%c%s@%s", n ? " " : "", o->nick,
                                  o->away[0] ? '-' : '+', o->user, o->host);
    }
    irc_numeric(cl, 302, ":%s", buf);
}

void irc_cmd_ison(struct irc_client *cl, int argc, char **argv)
{
    char buf[400] = "";
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        char tmp[IRC_LINE_MAX];
        snprintf(tmp, sizeof(tmp), "%s", argv[i]);
        char *save;
        for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            struct irc_client *o = irc_client_find(t);
            if (o && n < sizeof(buf) - IRC_NICKLEN - 2)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", o->nick);
        }
    }
    irc_numeric(cl, 303, ":%s", buf);
}

void irc_cmd_lusers(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int users = 0, chans = 0;
    for (struct irc_client *o = irc.clients; o; o = o->next)
        users += o->registered;
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        chans++;
    irc_numeric(cl, 251, ":There are %d users and 1 services on 1 servers", users);
    irc_numeric(cl, 254, "%d :channels formed", chans);
    irc_numeric(cl, 255, ":I have %d clients and 0 servers", users);
}

void irc_cmd_motd(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_send_motd(cl);
}

void irc_cmd_version(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 351, "logcaster-0.1. %s :LogCaster log server", irc.name);
}

void irc_cmd_time(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    time_t t = time(NULL);
    struct tm tm;
    char buf[64];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    irc_numeric(cl, 391, "%s :%s", irc.name, buf);
}
