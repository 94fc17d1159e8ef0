/* irc_info.c - what clients ask about the server and its users: WHO, WHOIS, USERHOST, ISON,
 * LUSERS, MOTD, VERSION and TIME, and the ISUPPORT and MOTD parts of the welcome. LogBot is not a
 * client but an RFC 2812 service (SERVLIST and SQUERY are in irc_logbot.c): it is answered for
 * here by name, and LUSERS counts it as a service, not a user. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "irc/irc_internal.h"

void irc_send_isupport(struct irc_client *cl)
{
    /* Two lines (three with log channels): one 005 must stay within 512 bytes and 13 tokens (RFC
     * 2812's 15 params). */
    irc_numeric(cl, 5,
                "CHANTYPES=# CASEMAPPING=rfc1459 NICKLEN=%d CHANNELLEN=%d TOPICLEN=300 "
                "PREFIX=(ov)@+ CHANMODES=be,k,l,imnst EXCEPTS=e MAXLIST=be:%d MODES=4 "
                "NETWORK=LogCaster :are supported by this server",
                IRC_NICKLEN, IRC_CHANLEN, IRC_MAXLIST);
    irc_numeric(cl, 5,
                "MAXTARGETS=%d CHANLIMIT=#:%d ELIST=MNU WHOX KEYLEN=%d "
                "TARGMAX=JOIN:,PART:,NAMES:,LIST:,KICK:%d,WHOIS:1,PRIVMSG:%d,NOTICE:%d,"
                "MONITOR:%d MONITOR=%d BOT=B :are supported by this server",
                IRC_MAXTARGETS, IRC_MAXCHANS, IRC_KEYLEN, IRC_MAXTARGETS, IRC_MAXTARGETS,
                IRC_MAXTARGETS, IRC_MONITOR, IRC_MONITOR);
    /* History comes from the log channels (irc_history.c); msgid references are exact. */
    if (irc.log_channels)
        irc_numeric(cl, 5,
                    "CHATHISTORY=%d MSGREFTYPES=msgid,timestamp :are supported by this server",
                    IRC_HISTORY_MAX);
}

void irc_send_motd(struct irc_client *cl)
{
    irc_numeric(cl, 375, ":- %s Message of the day -", irc.name);
    if (irc.log_channels)
        irc_numeric(cl, 372, ":- Live logs: JOIN #logs-all or #logs-error; !help for commands.");
    else
        irc_numeric(cl, 372, ":- LogCaster IRC server (log channels are off).");
    irc_numeric(cl, 376, ":End of /MOTD command.");
}

/* ------------------------------------------------------------------------------------------ */
/* Commands. */

/* WHOX (IRCv3 "WHO mask %fields,token"): the fields in their fixed order t c u i h s n f d l a o
 * r, whatever order they were asked in. */
static void whox_reply(struct irc_client *cl, struct irc_client *o, const char *chan,
                       const char *flags, const char *fields, const char *token)
{
    static const char order[] = "tcuihsnfdlaor";
    char line[IRC_LINE_MAX];
    size_t n = 0;
    line[0] = 0;
    for (const char *f = order; *f; f++) {
        if (!strchr(fields, *f))
            continue;
        char v[IRC_LINE_MAX];
        switch (*f) {
        case 't':
            snprintf(v, sizeof(v), "%s", token && token[0] ? token : "0");
            break;
        case 'c':
            snprintf(v, sizeof(v), "%s", chan);
            break;
        case 'u':
            snprintf(v, sizeof(v), "%s", o->user);
            break;
        case 'i':
        case 'h':
            snprintf(v, sizeof(v), "%s", o->host);
            break;
        case 's':
            snprintf(v, sizeof(v), "%s", irc.name);
            break;
        case 'n':
            snprintf(v, sizeof(v), "%s", o->nick);
            break;
        case 'f':
            snprintf(v, sizeof(v), "%s", flags);
            break;
        case 'd':
            snprintf(v, sizeof(v), "0");
            break;
        case 'l':
            snprintf(v, sizeof(v), "%lld", (long long)((mono_ms() - o->last_seen_ms) / 1000));
            break;
        case 'a':
            snprintf(v, sizeof(v), "%s", o->account[0] ? o->account : "0");
            break;
        case 'o':
            snprintf(v, sizeof(v), "n/a");
            break;
        case 'r':
            snprintf(v, sizeof(v), ":%s", o->realname);
            break;
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", n ? " " : "", v);
        if (n >= sizeof(line))
            break;
    }
    irc_numeric(cl, 354, "%s", line);
}

static void who_reply(struct irc_client *cl, struct irc_client *o, struct irc_chan *ch,
                      const char *fields, const char *token)
{
    struct irc_member *m = ch ? irc_chan_member(ch, o) : NULL;
    char flags[12];
    snprintf(flags, sizeof(flags), "%c%s%s%s", o->away[0] ? 'G' : 'H', o->oper ? "*" : "",
             o->bot ? "B" : "", m ? irc_member_prefix(cl, m) : "");
    const char *chan = ch ? ch->name : "*";
    if (fields)
        whox_reply(cl, o, chan, flags, fields, token);
    else
        irc_numeric(cl, 352, "%s %s %s %s %s %s :0 %s", chan, o->user, o->host, irc.name, o->nick,
                    flags, o->realname);
}

void irc_cmd_who(struct irc_client *cl, int argc, char **argv)
{
    const char *mask = argc && argv[0][0] ? argv[0] : "*";
    const char *fields = NULL, *token = NULL;
    char opts[64] = "";
    if (argc > 1 && argv[1][0] == '%') {
        snprintf(opts, sizeof(opts), "%s", argv[1] + 1);
        char *comma = strchr(opts, ',');
        if (comma) {
            *comma = 0;
            token = comma + 1;
        }
        fields = opts;
    }
    struct irc_chan *ch = mask[0] == '#' ? irc_chan_find(mask) : NULL;
    if (ch) {
        if (ch->is_log && !fields)
            irc_numeric(cl, 352, "%s log system %s LogBot H@ :0 LogCaster log relay", ch->name,
                        irc.name);
        bool member = irc_chan_member(ch, cl) != NULL;
        for (int i = 0; (member || !ch->mode_s) && i < ch->nmembers; i++)
            if (member || !ch->members[i].cl->invisible)
                who_reply(cl, ch->members[i].cl, ch, fields, token);
    } else if (mask[0] != '#') {
        /* A plain nick shows its user even if invisible; a mask shows the visible ones. */
        bool glob = strpbrk(mask, "*?") != NULL || strcmp(mask, "0") == 0;
        const char *pat = strcmp(mask, "0") == 0 ? "*" : mask;
        for (struct irc_client *o = irc.clients; o; o = o->next) {
            if (!o->registered || !irc_mask_match(pat, o->nick))
                continue;
            if (glob && o->invisible && o != cl && !irc_shares_chan(cl, o))
                continue;
            who_reply(cl, o, NULL, fields, token);
        }
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
        irc_numeric(cl, 312, "LogBot %s :LogCaster", irc.name);
        irc_numeric(cl, 313, "LogBot :is a network service"); /* As UnrealIRCd and InspIRCd say. */
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
    if (o->oper)
        irc_numeric(cl, 313, "%s :is an IRC operator", o->nick);
    if (o->account[0])
        irc_numeric(cl, 330, "%s %s :is logged in as", o->nick, o->account);
    if (o->bot)
        irc_numeric(cl, 335, "%s :is a bot", o->nick);
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
    int users = 0, invisible = 0, unknown = 0, chans = 0, opers = 0;
    for (struct irc_client *o = irc.clients; o; o = o->next) {
        opers += o->registered && o->oper;
        users += o->registered;
        invisible += o->registered && o->invisible;
        unknown += !o->registered;
    }
    if (users > irc.max_users)
        irc.max_users = users;
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        chans++;
    /* RFC 2812's 251 counts users and services; Modern's counts visible and invisible users, and
     * clients (irctest among them) read the last three numbers so. Both are said, the services
     * first. A service is no user: 255, 265 and 266 count users only. */
    int services = irc.log_channels ? 1 : 0; /* LogBot. */
    irc_numeric(cl, 251, ":There are %d services, %d users and %d invisible on 1 servers", services,
                users - invisible, invisible);
    if (opers)
        irc_numeric(cl, 252, "%d :operator(s) online", opers);
    if (unknown)
        irc_numeric(cl, 253, "%d :unknown connection(s)", unknown);
    irc_numeric(cl, 254, "%d :channels formed", chans);
    irc_numeric(cl, 255, ":I have %d clients and 0 servers", users);
    irc_numeric(cl, 265, "%d %d :Current local users %d, max %d", users, irc.max_users, users,
                irc.max_users);
    irc_numeric(cl, 266, "%d %d :Current global users %d, max %d", users, irc.max_users, users,
                irc.max_users);
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

void irc_cmd_info(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 371, ":LogCaster logcaster-0.1: a log server with an IRC face");
    irc_numeric(cl, 371, ":Live logs in #logs-* channels, queries through LogBot");
    irc_numeric(cl, 374, ":End of /INFO list.");
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

/* HELP [topic] (and HELPOP): Modern's 704, 705..., 706, or 524 for an unknown topic. */
static const struct {
    const char *topic, *text;
} help[] = {
    {"AWAY", "AWAY [:message] - mark yourself away, or back without a message"},
    {"CAP", "CAP LS [302] | REQ :caps | LIST | END - negotiate IRCv3 capabilities"},
    {"INVITE", "INVITE nick #channel - invite someone into a channel"},
    {"JOIN", "JOIN #a,#b [key,key] - join channels (#logs-* stream live logs)"},
    {"KICK", "KICK #channel nick[,nick] [:reason] - remove users from a channel"},
    {"LIST", "LIST [mask|!mask|<n|>n] - the channels and their topics"},
    {"MODE", "MODE target [modes [params]] - user modes iwB, channel modes beklimnstov"},
    {"MONITOR", "MONITOR +|- nick,nick | C | L | S - hear when nicks come and go"},
    {"NAMES", "NAMES [#channel] - who is on a channel"},
    {"NICK", "NICK nick - choose or change your nick"},
    {"NOTICE", "NOTICE target :text - a message that gets no automatic reply"},
    {"OPER", "OPER name password - become an IRC operator (--irc-oper)"},
    {"PART", "PART #channel [:reason] - leave a channel"},
    {"PRIVMSG", "PRIVMSG target[,target] :text - a message to users or channels"},
    {"QUIT", "QUIT [:reason] - leave the server"},
    {"SERVLIST", "SERVLIST [mask [type]] - the services (LogBot, with log channels)"},
    {"SETNAME", "SETNAME :realname - change your real name"},
    {"SQUERY", "SQUERY LogBot :!command - talk to a service, as a private message does"},
    {"TOPIC", "TOPIC #channel [:topic] - show or set a channel's topic"},
    {"WHO", "WHO mask [%fields,token] - users matching a mask or on a channel"},
    {"WHOIS", "WHOIS nick - about a user"},
    {"WHOWAS", "WHOWAS nick [count] - about a user who left"},
};

void irc_cmd_help(struct irc_client *cl, int argc, char **argv)
{
    const char *topic = argc && argv[0][0] ? argv[0] : "*";
    if (strcmp(topic, "*") == 0 || strcasecmp(topic, "index") == 0) {
        irc_numeric(cl, 704, "%s :LogCaster's IRC server. HELP <command> for one of:", topic);
        char line[400];
        size_t n = 0;
        for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", n ? " " : "", help[i].topic);
        irc_numeric(cl, 705, "%s :%s", topic, line);
        irc_numeric(cl, 705, "%s :In a #logs-* channel, !help lists LogBot's commands.", topic);
        irc_numeric(cl, 706, "%s :End of /HELP", topic);
        return;
    }
    for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++) {
        if (strcasecmp(topic, help[i].topic) == 0) {
            irc_numeric(cl, 704, "%s :%s", help[i].topic, help[i].text);
            irc_numeric(cl, 706, "%s :End of /HELP", help[i].topic);
            return;
        }
    }
    irc_numeric(cl, 524, "%s :No help available on this topic", topic);
}
