/* irc_oper.c - server operators and what they may do: OPER (one operator, --irc-oper
 * NAME:PASSWORD), KILL and WALLOPS; and WHOWAS with the history of nicks that left or changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "irc/irc_internal.h"

#define WHOWAS_MAX 64 /* Nicks remembered, newest first out. */

/* ------------------------------------------------------------------------------------------ */
/* OPER, KILL and WALLOPS. */

/* Compares every byte, so the time taken says nothing about where a guess went wrong. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return diff == 0;
}

/* The --irc-oper password when name is its operator, else NULL. */
static const char *oper_password(const char *name)
{
    const char *conf = irc.cfg->irc_oper, *colon = conf ? strchr(conf, ':') : NULL;
    size_t nlen = colon ? (size_t)(colon - conf) : 0;
    if (!colon || strlen(name) != nlen || strncmp(name, conf, nlen) != 0)
        return NULL;
    return colon + 1;
}

bool irc_oper_matches(const char *name, const char *password)
{
    const char *want = oper_password(name);
    return want && same_secret(password, strlen(password), want, strlen(want));
}

void irc_cmd_oper(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    if (!oper_password(argv[0])) {
        irc_numeric(cl, 491, ":No O-lines for your host");
        return;
    }
    if (!irc_oper_matches(argv[0], argv[1])) {
        log_warn("irc: wrong OPER password for %s from %s", argv[0], cl->host);
        irc_numeric(cl, 464, ":Password incorrect");
        return;
    }
    log_info("irc: %s (%s) is now an operator", cl->nick, cl->host);
    cl->oper = true;
    irc_numeric(cl, 381, ":You are now an IRC operator");
    irc_send(cl, ":%s!%s@%s MODE %s :+o", cl->nick, cl->user, cl->host, cl->nick);
}

void irc_cmd_kill(struct irc_client *cl, int argc, char **argv)
{
    if (!cl->oper) {
        irc_numeric(cl, 481, ":Permission Denied- You're not an IRC operator");
        return;
    }
    struct irc_client *o = irc_client_find(argv[0]);
    if (!o) {
        irc_numeric(cl, 401, "%s :No such nick/channel", argv[0]);
        return;
    }
    char why[IRC_LINE_MAX];
    snprintf(why, sizeof(why), "Killed (%s (%s))", cl->nick, argc > 1 ? argv[1] : cl->nick);
    log_info("irc: %s killed %s: %s", cl->nick, o->nick, why);
    irc_client_quit(o, why);
    irc_send(o, "ERROR :Closing Link: %s (%s)", o->host, why);
    o->closing = true;
    conn_close_after_flush(o->c);
}

void irc_cmd_wallops(struct irc_client *cl, int argc, char **argv)
{
    if (!cl->oper) {
        irc_numeric(cl, 481, ":Permission Denied- You're not an IRC operator");
        return;
    }
    for (struct irc_client *o = irc.clients; o; o = o->next)
        if (o->registered && (o->wallops || o == cl))
            irc_send(o, ":%s!%s@%s WALLOPS :%s", cl->nick, cl->user, cl->host, argv[0]);
}

/* ------------------------------------------------------------------------------------------ */
/* WHOWAS. */

struct whowas {
    char nick[IRC_NICKLEN + 1];
    char user[16];
    char host[64];
    char realname[64];
    int64_t left_s;
};

static struct whowas history[WHOWAS_MAX];
static int history_next, history_len;

void irc_whowas_remember(const struct irc_client *cl)
{
    if (!cl->registered)
        return;
    struct whowas *w = &history[history_next];
    history_next = (history_next + 1) % WHOWAS_MAX;
    if (history_len < WHOWAS_MAX)
        history_len++;
    snprintf(w->nick, sizeof(w->nick), "%s", cl->nick);
    snprintf(w->user, sizeof(w->user), "%s", cl->user);
    snprintf(w->host, sizeof(w->host), "%s", cl->host);
    snprintf(w->realname, sizeof(w->realname), "%s", cl->realname);
    w->left_s = now_ms() / 1000;
}

/* WHOWAS nick[,nick] [count]: the newest entries first; a count of 0 or less means all. */
void irc_cmd_whowas(struct irc_client *cl, int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 0;
    char names[IRC_LINE_MAX];
    snprintf(names, sizeof(names), "%s", argv[0]);
    char *save;
    for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int i = 1; i <= history_len && (count <= 0 || found < count); i++) {
            const struct whowas *w = &history[(history_next - i + WHOWAS_MAX) % WHOWAS_MAX];
            if (!irc_mask_match(n, w->nick))
                continue;
            found++;
            irc_numeric(cl, 314, "%s %s %s * :%s", w->nick, w->user, w->host, w->realname);
            irc_numeric(cl, 312, "%s %s :%lld", w->nick, irc.name, (long long)w->left_s);
        }
        if (!found)
            irc_numeric(cl, 406, "%s :There was no such nickname", n);
    }
    irc_numeric(cl, 369, "%s :End of WHOWAS", argv[0]);
}
