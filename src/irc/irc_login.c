/* irc_login.c - registration and leaving: CAP negotiation, PASS, NICK and USER up to the welcome
 * (001-005 and the MOTD), PING and PONG, and QUIT, with the QUIT every way of leaving sends.
 * The dispatcher (irc.c) has already checked the registration state and parameter count. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/policy.h"
#include "irc/irc_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Registration and leaving. */

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

static void welcome(struct irc_client *cl)
{
    cl->registered = true;
    irc_numeric(cl, 1, ":Welcome to the LogCaster IRC network %s!%s@%s", cl->nick, cl->user,
                cl->host);
    irc_numeric(cl, 2, ":Your host is %s, running logcaster-0.1", irc.name);
    irc_numeric(cl, 3, ":This server was created at start-up of logcasterd");
    irc_numeric(cl, 4, "%s logcaster-0.1 iw beiklmnostv klbeov", irc.name);
    int users = 0;
    for (struct irc_client *o = irc.clients; o; o = o->next)
        users += o->registered;
    if (users > irc.max_users)
        irc.max_users = users;
    irc_send_isupport(cl);
    irc_send_motd(cl);
}

static void maybe_welcome(struct irc_client *cl)
{
    if (cl->registered || !cl->got_nick || !cl->got_user || cl->cap_negotiating)
        return;
    if ((policy_auth_required(ROLE_IRC) && !cl->pass_ok) || cl->pass_bad) {
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

void irc_client_quit(struct irc_client *cl, const char *reason)
{
    irc_whowas_remember(cl);
    if (cl->registered) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s QUIT :%s", cl->nick, cl->user, cl->host, reason);
        tell_neighbours(cl, line, false);
    }
    while (cl->nchans)
        irc_chan_remove(cl->chans[0], cl);
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        for (int i = 0; i < ch->ninvited; i++)
            if (ch->invited[i] == cl)
                ch->invited[i--] = ch->invited[--ch->ninvited];
}

/* ------------------------------------------------------------------------------------------ */
/* Commands. */

void irc_cmd_cap(struct irc_client *cl, int argc, char **argv)
{
    const char *nick = cl->nick[0] ? cl->nick : "*";
    if (strcasecmp(argv[0], "LS") == 0) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        irc_send(cl,
                 ":%s CAP %s LS :server-time message-tags multi-prefix echo-message "
                 "userhost-in-names",
                 irc.name, nick);
    } else if (strcasecmp(argv[0], "LIST") == 0) {
        irc_send(cl, ":%s CAP %s LIST :%s%s%s%s%s", irc.name, nick,
                 cl->cap_server_time ? "server-time " : "",
                 cl->cap_message_tags ? "message-tags " : "",
                 cl->cap_multi_prefix ? "multi-prefix " : "",
                 cl->cap_echo_message ? "echo-message " : "",
                 cl->cap_userhost_in_names ? "userhost-in-names" : "");
    } else if (strcasecmp(argv[0], "REQ") == 0 && argc >= 2) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        /* All or nothing, as the spec says. */
        char tmp[IRC_LINE_MAX];
        snprintf(tmp, sizeof(tmp), "%s", argv[1]);
        bool st = cl->cap_server_time, mt = cl->cap_message_tags, mp = cl->cap_multi_prefix;
        bool em = cl->cap_echo_message, uh = cl->cap_userhost_in_names;
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
            else if (strcmp(name, "echo-message") == 0)
                em = !off;
            else if (strcmp(name, "userhost-in-names") == 0)
                uh = !off;
            else
                ok = false;
        }
        if (ok) {
            cl->cap_server_time = st;
            cl->cap_message_tags = mt;
            cl->cap_multi_prefix = mp;
            cl->cap_echo_message = em;
            cl->cap_userhost_in_names = uh;
        }
        irc_send(cl, ":%s CAP %s %s :%s", irc.name, nick, ok ? "ACK" : "NAK", argv[1]);
    } else if (strcasecmp(argv[0], "END") == 0) {
        cl->cap_negotiating = false;
        maybe_welcome(cl);
    } else {
        irc_numeric(cl, 410, "%s :Invalid CAP command", argv[0]);
    }
}

void irc_cmd_pass(struct irc_client *cl, int argc, char **argv)
{
    if (cl->pass_bad)
        return; /* One guess per connection. */
    cl->pass_ok =
        policy_check_token(ROLE_IRC, conn_sockaddr(cl->c), argv[0], strlen(argv[0]), mono_ms());
    if (!cl->pass_ok) {
        /* A wrong secret counts towards the address's lock-out at once and ends the connection
         * at registration (464, ERROR), as RFC 2812 says: the client's NICK and USER, already
         * on their way, then meet an answer rather than a reset. Guessing costs a connection
         * each time. */
        size_t plen;
        log_warn("irc: wrong PASS from %s", conn_peer(cl->c, &plen));
        cl->pass_bad = true;
    }
}

void irc_cmd_nick(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1 || !argv[0][0]) {
        irc_numeric(cl, 431, ":No nickname given");
        return;
    }
    const char *nick = argv[0];
    if (!valid_nick(nick) || (irc.log_channels && irc_name_eq(nick, "LogBot"))) {
        irc_numeric(cl, 432, "%s :Erroneous nickname", nick);
        return;
    }
    if (strcmp(nick, cl->nick) == 0)
        return; /* No change: nothing to tell (a change of case alone is a change). */
    struct irc_client *other = irc_client_find(nick);
    if (other && other != cl) {
        irc_numeric(cl, 433, "%s :Nickname is already in use", nick);
        return;
    }
    if (cl->registered) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s NICK :%s", cl->nick, cl->user, cl->host, nick);
        tell_neighbours(cl, line, true);
        irc_whowas_remember(cl);
    }
    snprintf(cl->nick, sizeof(cl->nick), "%s", nick);
    cl->got_nick = true;
    maybe_welcome(cl);
}

void irc_cmd_user(struct irc_client *cl, int argc, char **argv)
{
    if (!argv[0][0] || !argv[3][0]) {
        irc_numeric(cl, 461, "USER :Not enough parameters");
        return;
    }
    snprintf(cl->user, sizeof(cl->user), "~%.10s", argv[0]);
    snprintf(cl->realname, sizeof(cl->realname), "%s", argv[3]);
    cl->got_user = true;
    maybe_welcome(cl);
}

void irc_cmd_ping(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 409, ":No origin specified");
        return;
    }
    irc_send(cl, ":%s PONG %s :%s", irc.name, irc.name, argv[0]);
}

void irc_cmd_pong(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cl->ping_sent = false;
}

void irc_cmd_quit(struct irc_client *cl, int argc, char **argv)
{
    const char *reason = argc ? argv[0] : "Client Quit";
    irc_client_quit(cl, reason);
    irc_send(cl, "ERROR :Closing Link: %s (Quit: %s)", cl->host, reason);
    cl->closing = true;
    conn_close_after_flush(cl->c);
}
