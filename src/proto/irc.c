/* irc.c - the IRC server (port 6667): framing, registration with CAP negotiation, and the
 * commands, dispatched from a table. Log channels and LogBot live in irc_logs.c. */
#define _GNU_SOURCE
#include "proto/irc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/policy.h"
#include "proto/irc_parse.h"
#include "proto/protocols.h"
#include "query/qry.h"
#include "store/store.h"

#define IRC_MAXPARAMS           15
#define FLOOD_RATE              10.0   /* Lines per second a client may send on average... */
#define FLOOD_BURST             40.0   /* ...and in one burst. */
#define IRC_PING_AFTER_MS       120000 /* Silence before the server sends PING. */
#define IRC_PING_TIMEOUT_MS     120000 /* Then the time the client has to answer. */
#define IRC_REGISTER_TIMEOUT_MS 60000  /* To finish NICK/USER (and CAP). */

struct irc_state irc;

static void client_quit(struct irc_client *cl, const char *reason);

/* ------------------------------------------------------------------------------------------ */
/* Output. */

void irc_send_raw(struct irc_client *cl, const char *line, size_t len)
{
    irc_send_tagged(cl, line, len > IRC_LINE_MAX - 2 ? IRC_LINE_MAX - 2 : len);
}

void irc_send_wire(struct irc_client *cl, const char *bytes, size_t len)
{
    if (cl->closing)
        return;
    conn_write(cl->c, bytes, len);
    if (conn_out_full(cl->c) && conn_flush_now(cl->c) == 0 && conn_out_full(cl->c))
        irc_sendq_exceeded(cl);
}

void irc_sendq_exceeded(struct irc_client *cl)
{
    /* A reader that cannot keep up is dropped, never waited for. */
    log_info("irc: dropping %s (%s): SendQ exceeded", cl->nick[0] ? cl->nick : "*", cl->host);
    cl->closing = true;
    client_quit(cl, "SendQ exceeded");
    char bye[160];
    snprintf(bye, sizeof(bye), "\r\nERROR :Closing Link: %s (SendQ exceeded)\r\n", cl->host);
    conn_abort(cl->c, bye);
}

void irc_send_tagged(struct irc_client *cl, const char *line, size_t len)
{
    char buf[IRC_LINE_MAX + 8200];
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    memcpy(buf, line, len);
    buf[len] = '\r';
    buf[len + 1] = '\n';
    irc_send_wire(cl, buf, len + 2);
}

void irc_send(struct irc_client *cl, const char *fmt, ...)
{
    char line[IRC_LINE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    irc_send_raw(cl, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void irc_numeric(struct irc_client *cl, int num, const char *fmt, ...)
{
    char rest[IRC_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof(rest), fmt, ap);
    va_end(ap);
    irc_send(cl, ":%s %03d %s %s", irc.name, num, cl->nick[0] ? cl->nick : "*", rest);
}

/* ------------------------------------------------------------------------------------------ */
/* Names. */

static char fold(char c)
{
    /* rfc1459 case mapping: []\~ are the upper case of {}|^. */
    if (c >= 'A' && c <= 'Z')
        return (char)(c + 32);
    if (c == '[')
        return '{';
    if (c == ']')
        return '}';
    if (c == '\\')
        return '|';
    if (c == '~')
        return '^';
    return c;
}

bool irc_name_eq(const char *a, const char *b)
{
    while (*a && *b && fold(*a) == fold(*b))
        a++, b++;
    return *a == 0 && *b == 0;
}

static bool valid_nick(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > IRC_NICKLEN || isdigit((unsigned char)n[0]) || n[0] == '-')
        return false;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("[]\\`_^{|}-", *p))
            return false;
    return true;
}

static bool valid_chan(const char *n)
{
    size_t len = strlen(n);
    if (len < 2 || len > IRC_CHANLEN || n[0] != '#')
        return false;
    for (const char *p = n; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ',' || *p == 7 || *p == ':')
            return false;
    return true;
}

static struct irc_client *find_nick(const char *nick)
{
    for (struct irc_client *c = irc.clients; c; c = c->next)
        if (c->nick[0] && irc_name_eq(c->nick, nick))
            return c;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Channels. */

struct irc_chan *irc_chan_find(const char *name)
{
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        if (irc_name_eq(ch->name, name))
            return ch;
    return NULL;
}

struct irc_chan *irc_chan_get(const char *name)
{
    struct irc_chan *ch = irc_chan_find(name);
    if (ch)
        return ch;
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    ch->mode_n = ch->mode_t = true;
    ch->next = irc.chans;
    irc.chans = ch;
    if (irc_chan_name_is_log(name))
        irc_logs_setup_chan(ch);
    return ch;
}

struct irc_member *irc_chan_member(struct irc_chan *ch, struct irc_client *cl)
{
    for (int i = 0; i < ch->nmembers; i++)
        if (ch->members[i].cl == cl)
            return &ch->members[i];
    return NULL;
}

void irc_chan_broadcast(struct irc_chan *ch, struct irc_client *except, const char *line,
                        size_t len)
{
    for (int i = 0; i < ch->nmembers; i++)
        if (ch->members[i].cl != except)
            irc_send_raw(ch->members[i].cl, line, len);
}

static void chan_free(struct irc_chan *ch)
{
    for (struct irc_chan **pp = &irc.chans; *pp; pp = &(*pp)->next) {
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    }
    qry_free(ch->filter);
    irc_logs_chan_free(ch);
    free(ch->members);
    free(ch);
}

static void chan_remove(struct irc_chan *ch, struct irc_client *cl)
{
    for (int i = 0; i < ch->nmembers; i++) {
        if (ch->members[i].cl == cl) {
            ch->members[i] = ch->members[--ch->nmembers];
            break;
        }
    }
    for (int i = 0; i < cl->nchans; i++) {
        if (cl->chans[i] == ch) {
            cl->chans[i] = cl->chans[--cl->nchans];
            break;
        }
    }
    /* Log channels exist from start-up and stay; others go with their last member. */
    if (ch->nmembers == 0 && !ch->is_log)
        chan_free(ch);
}

static int chan_add(struct irc_chan *ch, struct irc_client *cl)
{
    if (ch->nmembers == ch->capmembers) {
        int cap = ch->capmembers ? ch->capmembers * 2 : 8;
        struct irc_member *m = realloc(ch->members, (size_t)cap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        ch->members = m;
        ch->capmembers = cap;
    }
    /* The first member of an ordinary channel is its operator; log channels have LogBot. */
    bool op = ch->nmembers == 0 && !ch->is_log;
    ch->members[ch->nmembers++] = (struct irc_member){cl, op};
    cl->chans[cl->nchans++] = ch;
    return 0;
}

static void names_reply(struct irc_client *cl, struct irc_chan *ch)
{
    char buf[IRC_LINE_MAX];
    size_t n = 0;
    if (ch->is_log)
        n = (size_t)snprintf(buf, sizeof(buf), "@LogBot");
    for (int i = 0; i < ch->nmembers; i++) {
        const struct irc_member *m = &ch->members[i];
        if (n + strlen(m->cl->nick) + 3 > 400) {
            irc_numeric(cl, 353, "= %s :%s", ch->name, buf);
            n = 0;
        }
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s", n ? " " : "", m->op ? "@" : "",
                              m->cl->nick);
    }
    if (n)
        irc_numeric(cl, 353, "= %s :%s", ch->name, buf);
    irc_numeric(cl, 366, "%s :End of /NAMES list.", ch->name);
}

/* ------------------------------------------------------------------------------------------ */
/* Registration and leaving. */

static void welcome(struct irc_client *cl)
{
    cl->registered = true;
    irc_numeric(cl, 1, ":Welcome to the LogCaster IRC network %s!%s@%s", cl->nick, cl->user,
                cl->host);
    irc_numeric(cl, 2, ":Your host is %s, running logcaster-0.1", irc.name);
    irc_numeric(cl, 3, ":This server was created at start-up of logcasterd");
    irc_numeric(cl, 4, "%s logcaster-0.1 io imntklo", irc.name);
    irc_numeric(cl, 5,
                "CHANTYPES=# CASEMAPPING=rfc1459 NICKLEN=%d CHANNELLEN=%d TOPICLEN=300 "
                "PREFIX=(o)@ CHANMODES=,k,l,imnt MAXTARGETS=%d CHANLIMIT=#:%d NETWORK=LogCaster "
                ":are supported by this server",
                IRC_NICKLEN, IRC_CHANLEN, IRC_MAXTARGETS, IRC_MAXCHANS);
    irc_numeric(cl, 375, ":- %s Message of the day -", irc.name);
    irc_numeric(cl, 372, ":- Live logs: JOIN #logs-all or #logs-error; !help for commands.");
    irc_numeric(cl, 376, ":End of /MOTD command.");
}

static void maybe_welcome(struct irc_client *cl)
{
    if (cl->registered || !cl->got_nick || !cl->got_user || cl->cap_negotiating)
        return;
    if (policy_auth_required(ROLE_IRC) && !cl->pass_ok) {
        irc_numeric(cl, 464, ":Password incorrect");
        irc_send(cl, "ERROR :Closing Link: %s (Bad password)", cl->host);
        cl->closing = true;
        conn_close_after_flush(cl->c);
        return;
    }
    welcome(cl);
}

/* Tell everyone sharing a channel with cl (and cl) a line once each, e.g. QUIT or NICK. */
static void tell_neighbours(struct irc_client *cl, const char *line, bool include_self)
{
    for (struct irc_client *o = irc.clients; o; o = o->next) {
        if (o == cl) {
            if (include_self)
                irc_send_raw(o, line, strlen(line));
            continue;
        }
        bool shares = false;
        for (int i = 0; i < cl->nchans && !shares; i++)
            shares = irc_chan_member(cl->chans[i], o) != NULL;
        if (shares)
            irc_send_raw(o, line, strlen(line));
    }
}

static void client_quit(struct irc_client *cl, const char *reason)
{
    if (cl->registered) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s QUIT :%s", cl->nick, cl->user, cl->host, reason);
        tell_neighbours(cl, line, false);
    }
    while (cl->nchans)
        chan_remove(cl->chans[0], cl);
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        for (int i = 0; i < ch->ninvited; i++)
            if (ch->invited[i] == cl)
                ch->invited[i--] = ch->invited[--ch->ninvited];
}

/* ------------------------------------------------------------------------------------------ */
/* Commands. Each gets the parameters (trailing included as the last). */

typedef void (*cmd_fn)(struct irc_client *cl, int argc, char **argv);

static bool need(struct irc_client *cl, const char *cmd, int argc, int n)
{
    if (argc >= n)
        return true;
    irc_numeric(cl, 461, "%s :Not enough parameters", cmd);
    return false;
}

static void cmd_cap(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "CAP", argc, 1))
        return;
    const char *nick = cl->nick[0] ? cl->nick : "*";
    if (strcasecmp(argv[0], "LS") == 0) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        irc_send(cl, ":%s CAP %s LS :server-time message-tags multi-prefix", irc.name, nick);
    } else if (strcasecmp(argv[0], "LIST") == 0) {
        irc_send(cl, ":%s CAP %s LIST :%s%s%s", irc.name, nick,
                 cl->cap_server_time ? "server-time " : "",
                 cl->cap_message_tags ? "message-tags " : "",
                 cl->cap_multi_prefix ? "multi-prefix" : "");
    } else if (strcasecmp(argv[0], "REQ") == 0 && argc >= 2) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        /* All or nothing, as the spec says. */
        char tmp[IRC_LINE_MAX];
        snprintf(tmp, sizeof(tmp), "%s", argv[1]);
        bool st = cl->cap_server_time, mt = cl->cap_message_tags, mp = cl->cap_multi_prefix;
        bool ok = true;
        for (char *save, *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            bool off = t[0] == '-';
            const char *name = off ? t + 1 : t;
            if (strcmp(name, "server-time") == 0)
                st = !off;
            else if (strcmp(name, "message-tags") == 0)
                mt = !off;
            else if (strcmp(name, "multi-prefix") == 0)
                mp = !off;
            else
                ok = false;
        }
        if (ok) {
            cl->cap_server_time = st;
            cl->cap_message_tags = mt;
            cl->cap_multi_prefix = mp;
        }
        irc_send(cl, ":%s CAP %s %s :%s", irc.name, nick, ok ? "ACK" : "NAK", argv[1]);
    } else if (strcasecmp(argv[0], "END") == 0) {
        cl->cap_negotiating = false;
        maybe_welcome(cl);
    } else {
        irc_numeric(cl, 410, "%s :Invalid CAP command", argv[0]);
    }
}

static void cmd_pass(struct irc_client *cl, int argc, char **argv)
{
    if (cl->registered) {
        irc_numeric(cl, 462, ":You may not reregister");
        return;
    }
    if (!need(cl, "PASS", argc, 1))
        return;
    cl->pass_ok =
        policy_check_token(ROLE_IRC, conn_sockaddr(cl->c), argv[0], strlen(argv[0]), mono_ms());
    if (!cl->pass_ok) {
        /* One guess per connection: a wrong secret ends it at once (and counts towards the
         * address's lock-out), so guessing costs a connection each time. */
        size_t plen;
        log_warn("irc: wrong PASS from %s", conn_peer(cl->c, &plen));
        irc_numeric(cl, 464, ":Password incorrect");
        irc_send(cl, "ERROR :Closing Link: %s (Bad password)", cl->host);
        cl->closing = true;
        conn_close_after_flush(cl->c);
    }
}

static void cmd_nick(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1 || !argv[0][0]) {
        irc_numeric(cl, 431, ":No nickname given");
        return;
    }
    const char *nick = argv[0];
    if (!valid_nick(nick) || irc_name_eq(nick, "LogBot")) {
        irc_numeric(cl, 432, "%s :Erroneous nickname", nick);
        return;
    }
    struct irc_client *other = find_nick(nick);
    if (other && other != cl) {
        irc_numeric(cl, 433, "%s :Nickname is already in use", nick);
        return;
    }
    if (cl->registered) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s NICK :%s", cl->nick, cl->user, cl->host, nick);
        tell_neighbours(cl, line, true);
    }
    snprintf(cl->nick, sizeof(cl->nick), "%s", nick);
    cl->got_nick = true;
    maybe_welcome(cl);
}

static void cmd_user(struct irc_client *cl, int argc, char **argv)
{
    if (cl->registered) {
        irc_numeric(cl, 462, ":You may not reregister");
        return;
    }
    if (!need(cl, "USER", argc, 4))
        return;
    snprintf(cl->user, sizeof(cl->user), "~%.10s", argv[0]);
    snprintf(cl->realname, sizeof(cl->realname), "%s", argv[3]);
    cl->got_user = true;
    maybe_welcome(cl);
}

static void cmd_ping(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 409, ":No origin specified");
        return;
    }
    irc_send(cl, ":%s PONG %s :%s", irc.name, irc.name, argv[0]);
}

static void cmd_pong(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cl->ping_sent = false;
}

static void cmd_quit(struct irc_client *cl, int argc, char **argv)
{
    const char *reason = argc ? argv[0] : "Client Quit";
    client_quit(cl, reason);
    irc_send(cl, "ERROR :Closing Link: %s (Quit: %s)", cl->host, reason);
    cl->closing = true;
    conn_close_after_flush(cl->c);
}

static void join_one(struct irc_client *cl, const char *name, const char *key)
{
    if (!valid_chan(name)) {
        irc_numeric(cl, 403, "%s :No such channel", name);
        return;
    }
    struct irc_chan *ch = irc_chan_find(name);
    if (ch && irc_chan_member(ch, cl))
        return;
    if (cl->nchans >= IRC_MAXCHANS) {
        irc_numeric(cl, 405, "%s :You have joined too many channels", name);
        return;
    }
    if (ch) {
        if (ch->key[0] && (!key || strcmp(key, ch->key) != 0)) {
            irc_numeric(cl, 475, "%s :Cannot join channel (+k)", ch->name);
            return;
        }
        if (ch->limit && ch->nmembers >= ch->limit) {
            irc_numeric(cl, 471, "%s :Cannot join channel (+l)", ch->name);
            return;
        }
        bool invited = false;
        for (int i = 0; i < ch->ninvited; i++)
            if (ch->invited[i] == cl) {
                invited = true;
                ch->invited[i] = ch->invited[--ch->ninvited];
                break;
            }
        if (ch->mode_i && !invited) {
            irc_numeric(cl, 473, "%s :Cannot join channel (+i)", ch->name);
            return;
        }
    }
    ch = irc_chan_get(name);
    if (!ch || chan_add(ch, cl) < 0)
        return;
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s JOIN %s", cl->nick, cl->user, cl->host, ch->name);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
    if (ch->topic[0])
        irc_numeric(cl, 332, "%s :%s", ch->name, ch->topic);
    else
        irc_numeric(cl, 331, "%s :No topic is set", ch->name);
    names_reply(cl, ch);
    if (ch->is_log)
        irc_logs_replay(cl, ch, irc.cfg->irc_replay);
}

static void cmd_join(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "JOIN", argc, 1))
        return;
    if (strcmp(argv[0], "0") == 0) { /* Leave every channel. */
        while (cl->nchans) {
            struct irc_chan *ch = cl->chans[0];
            char line[IRC_LINE_MAX];
            snprintf(line, sizeof(line), ":%s!%s@%s PART %s", cl->nick, cl->user, cl->host,
                     ch->name);
            irc_chan_broadcast(ch, NULL, line, strlen(line));
            chan_remove(ch, cl);
        }
        return;
    }
    char names[IRC_LINE_MAX], keys[IRC_LINE_MAX] = "";
    snprintf(names, sizeof(names), "%s", argv[0]);
    if (argc > 1)
        snprintf(keys, sizeof(keys), "%s", argv[1]);
    char *ns, *ks, *k = strtok_r(keys, ",", &ks);
    for (char *n = strtok_r(names, ",", &ns); n; n = strtok_r(NULL, ",", &ns)) {
        join_one(cl, n, k);
        k = k ? strtok_r(NULL, ",", &ks) : NULL;
    }
}

static void cmd_part(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "PART", argc, 1))
        return;
    char names[IRC_LINE_MAX];
    snprintf(names, sizeof(names), "%s", argv[0]);
    char *save;
    for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        struct irc_chan *ch = irc_chan_find(n);
        if (!ch) {
            irc_numeric(cl, 403, "%s :No such channel", n);
            continue;
        }
        if (!irc_chan_member(ch, cl)) {
            irc_numeric(cl, 442, "%s :You're not on that channel", ch->name);
            continue;
        }
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s PART %s :%s", cl->nick, cl->user, cl->host,
                 ch->name, argc > 1 ? argv[1] : "");
        irc_chan_broadcast(ch, NULL, line, strlen(line));
        chan_remove(ch, cl);
    }
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
    char *save;
    for (char *t = strtok_r(targets, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char line[IRC_LINE_MAX];
        int n = snprintf(line, sizeof(line), ":%s!%s@%s %s %s :%s", cl->nick, cl->user, cl->host,
                         cmd, t, argv[1]);
        size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
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
            if (!(bang && ch->is_log) && ((ch->mode_n && !m) || (ch->mode_m && (!m || !m->op)))) {
                if (!notice)
                    irc_numeric(cl, 404, "%s :Cannot send to channel", ch->name);
                continue;
            }
            irc_chan_broadcast(ch, cl, line, len);
            if (bang && !notice && ch->is_log)
                irc_logbot_command(cl, m ? ch->name : "LogBot", argv[1]);
        } else if (irc_name_eq(t, "LogBot")) {
            if (!notice)
                irc_logbot_command(cl, "LogBot", argv[1]);
        } else {
            struct irc_client *to = find_nick(t);
            if (!to) {
                if (!notice)
                    irc_numeric(cl, 401, "%s :No such nick/channel", t);
                continue;
            }
            irc_send_raw(to, line, len);
            if (to->away[0] && !notice)
                irc_numeric(cl, 301, "%s :%s", to->nick, to->away);
        }
    }
}

static void cmd_privmsg(struct irc_client *cl, int argc, char **argv)
{
    message(cl, argc, argv, "PRIVMSG");
}

static void cmd_notice(struct irc_client *cl, int argc, char **argv)
{
    message(cl, argc, argv, "NOTICE");
}

static void cmd_topic(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "TOPIC", argc, 1))
        return;
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (!ch) {
        irc_numeric(cl, 403, "%s :No such channel", argv[0]);
        return;
    }
    struct irc_member *m = irc_chan_member(ch, cl);
    if (argc < 2) {
        if (ch->topic[0])
            irc_numeric(cl, 332, "%s :%s", ch->name, ch->topic);
        else
            irc_numeric(cl, 331, "%s :No topic is set", ch->name);
        return;
    }
    if (!m) {
        irc_numeric(cl, 442, "%s :You're not on that channel", ch->name);
        return;
    }
    if (ch->mode_t && !m->op) {
        irc_numeric(cl, 482, "%s :You're not channel operator", ch->name);
        return;
    }
    snprintf(ch->topic, sizeof(ch->topic), "%s", argv[1]);
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s TOPIC %s :%s", cl->nick, cl->user, cl->host, ch->name,
             ch->topic);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
}

static void cmd_names(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 366, "* :End of /NAMES list.");
        return;
    }
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (ch)
        names_reply(cl, ch);
    else
        irc_numeric(cl, 366, "%s :End of /NAMES list.", argv[0]);
}

static void cmd_list(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 321, "Channel :Users  Name");
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        irc_numeric(cl, 322, "%s %d :%s", ch->name, ch->nmembers + (ch->is_log ? 1 : 0), ch->topic);
    irc_numeric(cl, 323, ":End of /LIST");
}

static void cmd_who(struct irc_client *cl, int argc, char **argv)
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
        struct irc_client *o = find_nick(mask);
        if (o)
            irc_numeric(cl, 352, "* %s %s %s %s %c :0 %s", o->user, o->host, irc.name, o->nick,
                        o->away[0] ? 'G' : 'H', o->realname);
    }
    irc_numeric(cl, 315, "%s :End of /WHO list.", mask);
}

static void cmd_whois(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 431, ":No nickname given");
        return;
    }
    const char *nick = argv[argc - 1];
    if (irc_name_eq(nick, "LogBot")) {
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
    struct irc_client *o = find_nick(nick);
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

static void cmd_mode(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "MODE", argc, 1))
        return;
    if (argv[0][0] != '#') {
        if (!irc_name_eq(argv[0], cl->nick)) {
            irc_numeric(cl, 502, ":Cant change mode for other users");
            return;
        }
        irc_numeric(cl, 221, "+i");
        return;
    }
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (!ch) {
        irc_numeric(cl, 403, "%s :No such channel", argv[0]);
        return;
    }
    if (argc < 2) {
        char modes[16] = "+";
        if (ch->mode_i)
            strcat(modes, "i");
        if (ch->mode_m)
            strcat(modes, "m");
        if (ch->mode_n)
            strcat(modes, "n");
        if (ch->mode_t)
            strcat(modes, "t");
        if (ch->key[0])
            strcat(modes, "k");
        if (ch->limit)
            strcat(modes, "l");
        irc_numeric(cl, 324, "%s %s", ch->name, modes);
        return;
    }
    struct irc_member *me = irc_chan_member(ch, cl);
    if (!me || !me->op) {
        irc_numeric(cl, 482, "%s :You're not channel operator", ch->name);
        return;
    }
    bool add = true;
    int arg = 2;
    char applied[64] = "";
    char applied_args[256] = "";
    for (const char *m = argv[1]; *m; m++) {
        char one[4] = {0};
        switch (*m) {
        case '+':
            add = true;
            continue;
        case '-':
            add = false;
            continue;
        case 'n':
            ch->mode_n = add;
            break;
        case 't':
            ch->mode_t = add;
            break;
        case 'm':
            ch->mode_m = add;
            break;
        case 'i':
            ch->mode_i = add;
            break;
        case 'k':
            if (add) {
                if (arg >= argc)
                    continue;
                snprintf(ch->key, sizeof(ch->key), "%s", argv[arg++]);
                strncat(applied_args, " ", sizeof(applied_args) - strlen(applied_args) - 1);
                strncat(applied_args, ch->key, sizeof(applied_args) - strlen(applied_args) - 1);
            } else {
                ch->key[0] = 0;
            }
            break;
        case 'l':
            if (add) {
                if (arg >= argc)
                    continue;
                ch->limit = atoi(argv[arg++]);
                char tmp[16];
                snprintf(tmp, sizeof(tmp), " %d", ch->limit);
                strncat(applied_args, tmp, sizeof(applied_args) - strlen(applied_args) - 1);
            } else {
                ch->limit = 0;
            }
            break;
        case 'o': {
            if (arg >= argc)
                continue;
            struct irc_client *o = find_nick(argv[arg++]);
            struct irc_member *om = o ? irc_chan_member(ch, o) : NULL;
            if (!om) {
                irc_numeric(cl, 441, "%s %s :They aren't on that channel", argv[arg - 1], ch->name);
                continue;
            }
            om->op = add;
            strncat(applied_args, " ", sizeof(applied_args) - strlen(applied_args) - 1);
            strncat(applied_args, o->nick, sizeof(applied_args) - strlen(applied_args) - 1);
            break;
        }
        default:
            irc_numeric(cl, 472, "%c :is unknown mode char to me", *m);
            continue;
        }
        one[0] = add ? '+' : '-';
        one[1] = *m;
        strncat(applied, one, sizeof(applied) - strlen(applied) - 1);
    }
    if (applied[0]) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s MODE %s %s%s", cl->nick, cl->user, cl->host,
                 ch->name, applied, applied_args);
        irc_chan_broadcast(ch, NULL, line, strlen(line));
    }
}

static void cmd_kick(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "KICK", argc, 2))
        return;
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (!ch) {
        irc_numeric(cl, 403, "%s :No such channel", argv[0]);
        return;
    }
    struct irc_member *me = irc_chan_member(ch, cl);
    if (!me) {
        irc_numeric(cl, 442, "%s :You're not on that channel", ch->name);
        return;
    }
    if (!me->op) {
        irc_numeric(cl, 482, "%s :You're not channel operator", ch->name);
        return;
    }
    struct irc_client *o = find_nick(argv[1]);
    if (!o || !irc_chan_member(ch, o)) {
        irc_numeric(cl, 441, "%s %s :They aren't on that channel", argv[1], ch->name);
        return;
    }
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s KICK %s %s :%s", cl->nick, cl->user, cl->host, ch->name,
             o->nick, argc > 2 ? argv[2] : cl->nick);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
    chan_remove(ch, o);
}

static void cmd_invite(struct irc_client *cl, int argc, char **argv)
{
    if (!need(cl, "INVITE", argc, 2))
        return;
    struct irc_client *o = find_nick(argv[0]);
    if (!o) {
        irc_numeric(cl, 401, "%s :No such nick/channel", argv[0]);
        return;
    }
    struct irc_chan *ch = irc_chan_find(argv[1]);
    struct irc_member *me = ch ? irc_chan_member(ch, cl) : NULL;
    if (ch && !me) {
        irc_numeric(cl, 442, "%s :You're not on that channel", ch->name);
        return;
    }
    if (ch && irc_chan_member(ch, o)) {
        irc_numeric(cl, 443, "%s %s :is already on channel", o->nick, ch->name);
        return;
    }
    if (ch && ch->mode_i && !me->op) {
        irc_numeric(cl, 482, "%s :You're not channel operator", ch->name);
        return;
    }
    if (ch && ch->ninvited < IRC_MAXINVITES)
        ch->invited[ch->ninvited++] = o;
    irc_numeric(cl, 341, "%s %s", o->nick, argv[1]);
    irc_send(o, ":%s!%s@%s INVITE %s :%s", cl->nick, cl->user, cl->host, o->nick, argv[1]);
}

static void cmd_userhost(struct irc_client *cl, int argc, char **argv)
{
    char buf[400] = "";
    size_t n = 0;
    for (int i = 0; i < argc && i < 5; i++) {
        struct irc_client *o = find_nick(argv[i]);
        if (o && n < sizeof(buf) - 100)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=%c%s@%s", n ? " " : "", o->nick,
                                  o->away[0] ? '-' : '+', o->user, o->host);
    }
    if (!argc) {
        irc_numeric(cl, 461, "USERHOST :Not enough parameters");
        return;
    }
    irc_numeric(cl, 302, ":%s", buf);
}

static void cmd_away(struct irc_client *cl, int argc, char **argv)
{
    if (argc && argv[0][0]) {
        snprintf(cl->away, sizeof(cl->away), "%s", argv[0]);
        irc_numeric(cl, 306, ":You have been marked as being away");
    } else {
        cl->away[0] = 0;
        irc_numeric(cl, 305, ":You are no longer marked as being away");
    }
}

static void cmd_ison(struct irc_client *cl, int argc, char **argv)
{
    char buf[400] = "";
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        char tmp[IRC_LINE_MAX];
        snprintf(tmp, sizeof(tmp), "%s", argv[i]);
        char *save;
        for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            struct irc_client *o = find_nick(t);
            if (o && n < sizeof(buf) - IRC_NICKLEN - 2)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", o->nick);
        }
    }
    irc_numeric(cl, 303, ":%s", buf);
}

static void cmd_lusers(struct irc_client *cl, int argc, char **argv)
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

static void cmd_motd(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 375, ":- %s Message of the day -", irc.name);
    irc_numeric(cl, 372, ":- Live logs: JOIN #logs-all or #logs-error; !help for commands.");
    irc_numeric(cl, 376, ":End of /MOTD command.");
}

static void cmd_version(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 351, "logcaster-0.1. %s :LogCaster log server", irc.name);
}

static void cmd_time(struct irc_client *cl, int argc, char **argv)
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

static const struct {
    const char *name;
    cmd_fn fn;
    bool before_registration; /* Allowed before 001. */
} commands[] = {
    {"CAP", cmd_cap, true},          {"PASS", cmd_pass, true},
    {"NICK", cmd_nick, true},        {"USER", cmd_user, true},
    {"PING", cmd_ping, true},        {"PONG", cmd_pong, true},
    {"QUIT", cmd_quit, true},        {"JOIN", cmd_join, false},
    {"PART", cmd_part, false},       {"PRIVMSG", cmd_privmsg, false},
    {"NOTICE", cmd_notice, false},   {"TOPIC", cmd_topic, false},
    {"NAMES", cmd_names, false},     {"LIST", cmd_list, false},
    {"WHO", cmd_who, false},         {"WHOIS", cmd_whois, false},
    {"MODE", cmd_mode, false},       {"KICK", cmd_kick, false},
    {"AWAY", cmd_away, false},       {"ISON", cmd_ison, false},
    {"LUSERS", cmd_lusers, false},   {"MOTD", cmd_motd, false},
    {"INVITE", cmd_invite, false},   {"USERHOST", cmd_userhost, false},
    {"VERSION", cmd_version, false}, {"TIME", cmd_time, false},
};

/* ------------------------------------------------------------------------------------------ */
/* Parsing one line: [@tags] [:prefix] COMMAND params... [:trailing] */

static void dispatch(struct irc_client *cl, char *line)
{
    struct irc_msg m; /* Client tags and a prefix are accepted and ignored. */
    if (irc_parse_line(line, strlen(line), &m) != 0)
        return; /* No command (an empty line, say): ignored. */
    char *cmd = m.command;
    int argc = m.argc;
    char **argv = m.argv;
    for (char *c = cmd; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, cmd) != 0)
            continue;
        if (!cl->registered && !commands[i].before_registration) {
            irc_numeric(cl, 451, ":You have not registered");
            return;
        }
        commands[i].fn(cl, argc, argv);
        return;
    }
    if (cl->registered) {
        /* Echoed back: control bytes (a stray CR or tab) become '?', never wire syntax. */
        for (char *q = cmd; *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        irc_numeric(cl, 421, "%.64s :Unknown command", cmd);
    } else
        irc_numeric(cl, 451, ":You have not registered");
}

/* ------------------------------------------------------------------------------------------ */
/* The protocol table. */

static int irc_open(struct conn *c)
{
    struct irc_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    cl->c = c;
    size_t plen;
    const char *peer = conn_peer(c, &plen);
    /* The host part of "ip:port" / "[ip6]:port". */
    const char *colon = memrchr(peer, ':', plen);
    size_t hl = colon ? (size_t)(colon - peer) : plen;
    if (hl >= sizeof(cl->host))
        hl = sizeof(cl->host) - 1;
    memcpy(cl->host, peer, hl);
    cl->host[hl] = 0;
    cl->last_seen_ms = mono_ms();
    cl->flood_tokens = FLOOD_BURST;
    cl->flood_ms = mono_ms();
    cl->next = irc.clients;
    irc.clients = cl;
    conn_set_state(c, cl);
    irc_logs_pump();    /* Entries stored before anyone listened are history, not news. */
    conn_wait_store(c); /* Be woken for new log entries. */
    return 0;
}

static void irc_close(struct conn *c)
{
    struct irc_client *cl = conn_state(c);
    if (!cl)
        return;
    if (!cl->closing)
        client_quit(cl, "Connection closed");
    for (struct irc_client **pp = &irc.clients; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    free(cl);
}

static size_t irc_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct irc_client *cl = conn_state(c);
    size_t used = 0;
    while (used < n && !cl->closing) {
        const char *nl = memchr(p + used, '\n', n - used);
        size_t len, take;
        if (cl->discarding) { /* The rest of an endless line, up to its newline. */
            used = nl ? (size_t)(nl - p) + 1 : n;
            cl->discarding = !nl;
            continue;
        }
        if (!nl) {
            if (n - used < 8192 && !eof)
                break;
            /* An endless line: keep its start as one line, like an over-long one, and drop
             * the rest up to its newline (it must not run as a command of its own). */
            len = take = n - used;
            cl->discarding = !eof;
        } else {
            len = (size_t)(nl - (p + used));
            take = len + 1;
        }
        /* Flood control: a token bucket refilled at FLOOD_RATE per second. */
        int64_t now = mono_ms();
        cl->flood_tokens += (double)(now - cl->flood_ms) * FLOOD_RATE / 1000.0;
        if (cl->flood_tokens > FLOOD_BURST)
            cl->flood_tokens = FLOOD_BURST;
        cl->flood_ms = now;
        if (cl->flood_tokens < 1.0 && cl->registered) {
            irc_send(cl, "ERROR :Closing Link: %s (Excess Flood)", cl->host);
            client_quit(cl, "Excess Flood");
            cl->closing = true;
            conn_close_after_flush(c);
            return n;
        }
        cl->flood_tokens -= 1.0;
        cl->last_seen_ms = now;
        cl->ping_sent = false;
        char line[IRC_LINE_MAX + 1];
        size_t l = len;
        while (l && p[used + l - 1] == '\r')
            l--;
        if (l > IRC_LINE_MAX - 2)
            l = IRC_LINE_MAX - 2; /* IRC's limit: the rest of the line is dropped. */
        memcpy(line, p + used, l);
        line[l] = 0;
        /* A NUL in the line would end it early anyway; make it explicit. */
        line[strnlen(line, l)] = 0;
        used += take;
        dispatch(cl, line);
    }
    if (eof && !cl->closing) {
        client_quit(cl, "Connection closed");
        cl->closing = true;
    }
    /* A client that cannot keep up with what it is sent is dropped, never waited for. */
    return cl->closing ? n : used;
}

static void irc_resume(struct conn *c)
{
    struct irc_client *cl = conn_state(c);
    if (!cl)
        return;
    irc_logs_pump();
    if (!cl->closing)
        conn_wait_store(c);
}

/* Silent clients are pinged, and dropped if the PING goes unanswered. */
static void irc_tick(struct conn *c, int64_t now)
{
    struct irc_client *cl = conn_state(c);
    if (!cl || cl->closing)
        return;
    irc_logs_tick(now);
    if (irc_logs_client_tick(cl, now))
        return;
    int64_t idle = now - cl->last_seen_ms;
    if (!cl->registered && idle > IRC_REGISTER_TIMEOUT_MS) {
        irc_send(cl, "ERROR :Closing Link: %s (Registration timed out)", cl->host);
        cl->closing = true;
        conn_close_after_flush(c);
    } else if (cl->ping_sent && idle > IRC_PING_AFTER_MS + IRC_PING_TIMEOUT_MS) {
        irc_send(cl, "ERROR :Closing Link: %s (Ping timeout)", cl->host);
        client_quit(cl, "Ping timeout");
        cl->closing = true;
        conn_close_after_flush(c);
    } else if (!cl->ping_sent && idle > IRC_PING_AFTER_MS) {
        irc_send(cl, "PING :%s", irc.name);
        cl->ping_sent = true;
    }
}

/* A connection refused by the access policy: ERR_PASSWDMISMATCH-style 465, then ERROR. */
static int irc_refuse(char *out, size_t cap, const struct config *cfg, const char *peer,
                      enum policy_verdict v)
{
    const char *why = policy_verdict_text(v);
    return snprintf(out, cap, ":%s 465 * :%s\r\nERROR :Closing Link: %s (%s)\r\n",
                    cfg->irc_server_name, why, peer, why);
}

static int irc_line_timeout(struct conn *c, char *out, size_t cap)
{
    size_t len;
    return snprintf(out, cap, "ERROR :Closing Link: %s (Line timeout)\r\n", conn_peer(c, &len));
}

const struct proto proto_irc = {
    .name = "irc",
    .open = irc_open,
    .input = irc_input,
    .resume = irc_resume,
    .close = irc_close,
    .tick = irc_tick,
    .refuse = irc_refuse,
    .timeout = irc_line_timeout,
    .one_loop = true,
    .slot = SLOT_IRC,
};

/* Called once by main before the listener starts. */
void irc_init(struct store *store, const struct config *cfg)
{
    irc.store = store;
    irc.cfg = cfg;
    irc.name = cfg->irc_server_name;
    irc.started_ms = now_ms();
    irc_logs_init();
}
