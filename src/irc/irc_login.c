/* irc_login.c - registration and leaving: CAP negotiation, PASS, NICK and USER up to the welcome
 * (001-005 and the MOTD), PING and PONG, and QUIT, with the QUIT every way of leaving sends.
 * The dispatcher (irc.c) has already checked the registration state and parameter count. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/policy.h"
#include "irc/irc_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Registration and leaving. */

bool irc_nick_valid(const char *n)
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
    irc_monitor_online(cl);
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

void irc_tell_neighbours(struct irc_client *cl, const char *line, bool include_self, size_t cap_off)
{
    for (struct irc_client *o = irc.clients; o; o = o->next) {
        if (cap_off != IRC_ANY_CAP && !*(const bool *)((const char *)o + cap_off))
            continue;
        if (o == cl) {
            if (include_self)
                irc_send_raw(o, line, strlen(line));
            continue;
        }
        if (irc_shares_chan(cl, o))
            irc_send_raw(o, line, strlen(line));
    }
}

void irc_client_quit(struct irc_client *cl, const char *reason)
{
    irc_whowas_remember(cl);
    if (cl->registered) {
        char line[IRC_LINE_MAX];
        snprintf(line, sizeof(line), ":%s!%s@%s QUIT :%s", cl->nick, cl->user, cl->host, reason);
        irc_tell_neighbours(cl, line, false, IRC_ANY_CAP);
        irc_monitor_offline(cl, cl->nick);
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

/* The capabilities offered, each a flag of struct irc_client. */
static const struct {
    const char *name;
    size_t off;
    const char *value; /* Shown to CAP LS 302 clients as name=value; NULL for none. */
} caps[] = {
    {"server-time", offsetof(struct irc_client, cap_server_time), NULL},
    {"message-tags", offsetof(struct irc_client, cap_message_tags), NULL},
    {"multi-prefix", offsetof(struct irc_client, cap_multi_prefix), NULL},
    {"echo-message", offsetof(struct irc_client, cap_echo_message), NULL},
    {"userhost-in-names", offsetof(struct irc_client, cap_userhost_in_names), NULL},
    {"sasl", offsetof(struct irc_client, cap_sasl), "PLAIN"},
    {"batch", offsetof(struct irc_client, cap_batch), NULL},
    {"labeled-response", offsetof(struct irc_client, cap_labeled), NULL},
    {"setname", offsetof(struct irc_client, cap_setname), NULL},
    {"away-notify", offsetof(struct irc_client, cap_away_notify), NULL},
    {"account-tag", offsetof(struct irc_client, cap_account_tag), NULL},
    {"extended-join", offsetof(struct irc_client, cap_extended_join), NULL},
    {"extended-monitor", offsetof(struct irc_client, cap_extended_monitor), NULL},
    {"draft/chathistory", offsetof(struct irc_client, cap_chathistory), NULL}, /* Log channels. */
    {"draft/multiline", offsetof(struct irc_client, cap_multiline),
     "max-bytes=" IRC_STR(IRC_MULTILINE_MAX_BYTES) ",max-lines=" IRC_STR(IRC_MULTILINE_MAX_LINES)},
};
#define NCAPS (sizeof(caps) / sizeof(caps[0]))

static bool *cap_flag(struct irc_client *cl, size_t i)
{
    return (bool *)((char *)cl + caps[i].off);
}

/* Whether the server offers caps[i]: chathistory only has history to give on log channels. */
static bool cap_offered(size_t i)
{
    return irc.log_channels || caps[i].off != offsetof(struct irc_client, cap_chathistory);
}

void irc_cmd_cap(struct irc_client *cl, int argc, char **argv)
{
    const char *nick = cl->nick[0] ? cl->nick : "*";
    char list[IRC_LINE_MAX];
    size_t n = 0;
    list[0] = 0;
    if (strcasecmp(argv[0], "LS") == 0) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        if (argc > 1 && atoi(argv[1]) >= 302)
            cl->cap_302 = true;
        for (size_t i = 0; i < NCAPS; i++)
            if (cap_offered(i))
                n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s%s%s", n ? " " : "",
                                      caps[i].name, caps[i].value && cl->cap_302 ? "=" : "",
                                      caps[i].value && cl->cap_302 ? caps[i].value : "");
        irc_send(cl, ":%s CAP %s LS :%s", irc.name, nick, list);
    } else if (strcasecmp(argv[0], "LIST") == 0) {
        for (size_t i = 0; i < NCAPS; i++)
            if (*cap_flag(cl, i))
                n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", n ? " " : "",
                                      caps[i].name);
        irc_send(cl, ":%s CAP %s LIST :%s", irc.name, nick, list);
    } else if (strcasecmp(argv[0], "REQ") == 0 && argc >= 2) {
        if (!cl->registered)
            cl->cap_negotiating = true;
        /* All or nothing, as the spec says: the changes apply only if every name is known. */
        bool want[NCAPS];
        for (size_t i = 0; i < NCAPS; i++)
            want[i] = *cap_flag(cl, i);
        char tmp[IRC_LINE_MAX];
        snprintf(tmp, sizeof(tmp), "%s", argv[1]);
        bool ok = true;
        for (char *save, *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            bool off = t[0] == '-';
            const char *name = off ? t + 1 : t;
            size_t i = 0;
            while (i < NCAPS && (strcmp(caps[i].name, name) != 0 || !cap_offered(i)))
                i++;
            if (i < NCAPS)
                want[i] = !off;
            else
                ok = false;
        }
        if (ok)
            for (size_t i = 0; i < NCAPS; i++)
                *cap_flag(cl, i) = want[i];
        irc_send(cl, ":%s CAP %s %s :%s", irc.name, nick, ok ? "ACK" : "NAK", argv[1]);
    } else if (strcasecmp(argv[0], "END") == 0) {
        cl->cap_negotiating = false;
        if (cl->sasl_state) { /* An authentication left half-way is over. */
            irc_sasl_free(cl);
            irc_numeric(cl, 906, ":SASL authentication aborted");
        }
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
    if (!irc_nick_valid(nick) || (irc.log_channels && irc_name_eq(nick, "LogBot"))) {
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
        irc_tell_neighbours(cl, line, true, IRC_ANY_CAP);
        irc_whowas_remember(cl);
    }
    /* Watchers hear of a new nick, not of a change of case. */
    bool renamed = cl->registered && !irc_name_eq(nick, cl->nick);
    if (renamed)
        irc_monitor_offline(cl, cl->nick);
    snprintf(cl->nick, sizeof(cl->nick), "%s", nick);
    cl->got_nick = true;
    if (renamed)
        irc_monitor_online(cl);
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
