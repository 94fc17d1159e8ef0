/* irc_monitor.c - IRCv3 MONITOR: a client names up to IRC_MONITOR nicks and hears when each
 * comes online (730 RPL_MONONLINE, "nick!user@host") or goes offline (731 RPL_MONOFFLINE), by
 * registering, quitting or changing nick. "MONITOR + a,b" adds and answers each one's state,
 * "- a,b" removes, "C" clears, "L" lists (732, 733) and "S" answers every state; past the
 * limit, 734. Only nicks are monitored, never masks (the spec's privacy point): anything else
 * is ignored. With extended-monitor, watchers that share no channel with the nick also get
 * its AWAY (away-notify) and SETNAME (setname) lines.
 *
 * Lists are per client and short; the notices run only when someone registers, quits or
 * changes nick, so a scan over the clients is enough (no index). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "irc/irc_internal.h"

void irc_monitor_free(struct irc_client *cl)
{
    free(cl->monitor);
    cl->monitor = NULL;
    cl->nmonitor = 0;
}

static bool watches(const struct irc_client *w, const char *nick)
{
    for (int i = 0; i < w->nmonitor; i++)
        if (irc_name_eq(w->monitor[i], nick))
            return true;
    return false;
}

void irc_monitor_online(struct irc_client *cl)
{
    for (struct irc_client *w = irc.clients; w; w = w->next)
        if (w->nmonitor && w->registered && watches(w, cl->nick))
            irc_numeric(w, 730, ":%s!%s@%s", cl->nick, cl->user, cl->host);
}

void irc_monitor_offline(struct irc_client *cl, const char *old_nick)
{
    for (struct irc_client *w = irc.clients; w; w = w->next)
        if (w != cl && w->nmonitor && w->registered && watches(w, old_nick))
            irc_numeric(w, 731, ":%s", old_nick);
}

void irc_monitor_notify(struct irc_client *cl, const char *line, size_t cap_off)
{
    for (struct irc_client *w = irc.clients; w; w = w->next)
        if (w != cl && w->nmonitor && w->cap_extended_monitor &&
            *(const bool *)((const char *)w + cap_off) && watches(w, cl->nick) &&
            !irc_shares_chan(cl, w))
            irc_send_raw(w, line, strlen(line));
}

/* Numerics listing nicks, comma-separated, several lines if needed. */
struct nick_list {
    struct irc_client *to;
    int num;
    char buf[400];
    size_t n;
};

static void list_flush(struct nick_list *l)
{
    if (l->n)
        irc_numeric(l->to, l->num, ":%s", l->buf);
    l->n = 0;
}

static void list_add(struct nick_list *l, const char *item)
{
    if (l->n + strlen(item) + 2 > sizeof(l->buf))
        list_flush(l);
    l->n += (size_t)snprintf(l->buf + l->n, sizeof(l->buf) - l->n, "%s%s", l->n ? "," : "", item);
}

/* 730 for the nicks online, 731 for the others, of the given list (NULL: cl's whole list). */
static void send_states(struct irc_client *cl, char *targets)
{
    struct nick_list on = {.to = cl, .num = 730}, off = {.to = cl, .num = 731};
    char *save = NULL;
    char *t = targets ? strtok_r(targets, ",", &save) : NULL;
    for (int i = 0; targets ? t != NULL : i < cl->nmonitor; i++) {
        const char *nick = targets ? t : cl->monitor[i];
        struct irc_client *o = irc_client_find(nick);
        if (o && o->registered) {
            char full[IRC_NICKLEN + 100];
            snprintf(full, sizeof(full), "%s!%s@%s", o->nick, o->user, o->host);
            list_add(&on, full);
        } else {
            list_add(&off, nick);
        }
        if (targets)
            t = strtok_r(NULL, ",", &save);
    }
    list_flush(&on);
    list_flush(&off);
}

static void add(struct irc_client *cl, const char *targets)
{
    char tmp[IRC_LINE_MAX], added[IRC_LINE_MAX];
    size_t an = 0;
    added[0] = 0;
    snprintf(tmp, sizeof(tmp), "%s", targets);
    char *save;
    for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!irc_nick_valid(t))
            continue; /* Masks and other non-nicks: not monitorable. */
        if (!watches(cl, t)) {
            if (cl->nmonitor >= IRC_MONITOR) {
                /* 734 names the rest of the list, from this one on. */
                irc_numeric(cl, 734, "%d %s :Monitor list is full.", IRC_MONITOR,
                            targets + (t - tmp));
                break;
            }
            if (!cl->monitor && !(cl->monitor = malloc(IRC_MONITOR * sizeof(*cl->monitor))))
                break;
            snprintf(cl->monitor[cl->nmonitor++], IRC_NICKLEN + 1, "%s", t);
        }
        if (an + strlen(t) + 2 < sizeof(added))
            an += (size_t)snprintf(added + an, sizeof(added) - an, "%s%s", an ? "," : "", t);
    }
    if (an)
        send_states(cl, added);
}

static void del(struct irc_client *cl, const char *targets)
{
    char tmp[IRC_LINE_MAX];
    snprintf(tmp, sizeof(tmp), "%s", targets);
    char *save;
    for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
        for (int i = 0; i < cl->nmonitor; i++)
            if (irc_name_eq(cl->monitor[i], t)) {
                memcpy(cl->monitor[i], cl->monitor[--cl->nmonitor], IRC_NICKLEN + 1);
                break;
            }
}

void irc_cmd_monitor(struct irc_client *cl, int argc, char **argv)
{
    char op = argv[0][0];
    if ((op == '+' || op == '-') && argc < 2) {
        irc_numeric(cl, 461, "MONITOR :Not enough parameters");
        return;
    }
    switch (op) {
    case '+':
        add(cl, argv[1]);
        break;
    case '-':
        del(cl, argv[1]);
        break;
    case 'C':
    case 'c':
        cl->nmonitor = 0;
        break;
    case 'L':
    case 'l': {
        struct nick_list l = {.to = cl, .num = 732};
        for (int i = 0; i < cl->nmonitor; i++)
            list_add(&l, cl->monitor[i]);
        list_flush(&l);
        irc_numeric(cl, 733, ":End of MONITOR list");
        break;
    }
    case 'S':
    case 's':
        send_states(cl, NULL);
        break;
    default:
        irc_numeric(cl, 421, "MONITOR :Unknown MONITOR subcommand %c", op);
    }
}
