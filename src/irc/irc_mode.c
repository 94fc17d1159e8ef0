/* irc_mode.c - MODE, AWAY and SETNAME. Channel modes: the lists b (bans) and e (exceptions), the
 * parameter modes k and l, the flags i, m, n, s and t, and the member modes o and v (ISUPPORT
 * CHANMODES=be,k,l,imnst PREFIX=(ov)@+). User modes: i (invisible), w (wallops) and B (a bot,
 * ISUPPORT BOT=B). AWAY and SETNAME tell the change to the neighbours that asked (away-notify,
 * setname) and to extended-monitor watchers. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "irc/irc_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Ban and exception lists. */

/* "nick" -> "nick!*@*", "user@host" -> "*!user@host", as clients expect a mask to grow. */
static void normalise_mask(char *out, size_t cap, const char *in)
{
    const char *bang = strchr(in, '!'), *at = strchr(in, '@');
    if (bang || !at)
        snprintf(out, cap, "%s%s%s", in, bang ? "" : "!*", at ? "" : "@*");
    else
        snprintf(out, cap, "*!%s", in);
}

static struct irc_listent *list_find(struct irc_list *l, const char *mask)
{
    for (int i = 0; i < l->n; i++)
        if (irc_name_eq(l->e[i].mask, mask))
            return &l->e[i];
    return NULL;
}

/* 0 when added, 1 when already there, or -ENOSPC/-ENOMEM. */
static int list_add(struct irc_list *l, const char *mask, const char *setter)
{
    if (list_find(l, mask))
        return 1;
    if (l->n >= IRC_MAXLIST)
        return -ENOSPC;
    struct irc_listent *e = realloc(l->e, (size_t)(l->n + 1) * sizeof(*e));
    if (!e)
        return -ENOMEM;
    l->e = e;
    struct irc_listent *n = &l->e[l->n++];
    snprintf(n->mask, sizeof(n->mask), "%s", mask);
    snprintf(n->setter, sizeof(n->setter), "%s", setter);
    n->set_s = now_ms() / 1000;
    return 0;
}

static bool list_del(struct irc_list *l, const char *mask)
{
    struct irc_listent *e = list_find(l, mask);
    if (!e)
        return false;
    *e = l->e[--l->n];
    return true;
}

static bool list_matches(const struct irc_list *l, struct irc_client *cl)
{
    char full[IRC_NICKLEN + 100];
    snprintf(full, sizeof(full), "%s!%s@%s", cl->nick, cl->user, cl->host);
    for (int i = 0; i < l->n; i++)
        if (irc_mask_match(l->e[i].mask, full))
            return true;
    return false;
}

bool irc_chan_banned(struct irc_chan *ch, struct irc_client *cl)
{
    return list_matches(&ch->bans, cl) && !list_matches(&ch->excepts, cl);
}

static void send_list(struct irc_client *cl, struct irc_chan *ch, char mode)
{
    const struct irc_list *l = mode == 'b' ? &ch->bans : &ch->excepts;
    int item = mode == 'b' ? 367 : 348, end = mode == 'b' ? 368 : 349;
    for (int i = 0; i < l->n; i++)
        irc_numeric(cl, item, "%s %s %s %lld", ch->name, l->e[i].mask, l->e[i].setter,
                    (long long)l->e[i].set_s);
    irc_numeric(cl, end, "%s :End of channel %s list", ch->name, mode == 'b' ? "ban" : "exception");
}

/* ------------------------------------------------------------------------------------------ */
/* MODE. */

static void mode_is(struct irc_client *cl, struct irc_chan *ch)
{
    char modes[16] = "+", args[64] = "";
    const struct {
        bool on;
        char c;
    } flags[] = {{ch->mode_i, 'i'},
                 {ch->mode_m, 'm'},
                 {ch->mode_n, 'n'},
                 {ch->mode_s, 's'},
                 {ch->mode_t, 't'}};
    size_t n = 1;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (flags[i].on)
            modes[n++] = flags[i].c;
    bool member = irc_chan_member(ch, cl) != NULL;
    if (ch->key[0]) {
        modes[n++] = 'k';
        snprintf(args, sizeof(args), " %s", member ? ch->key : "*");
    }
    if (ch->limit) {
        modes[n++] = 'l';
        snprintf(args + strlen(args), sizeof(args) - strlen(args), " %d", ch->limit);
    }
    modes[n] = 0;
    irc_numeric(cl, 324, "%s %s%s", ch->name, modes, args);
    irc_numeric(cl, 329, "%s %lld", ch->name, (long long)ch->created_s);
}

/* The changes applied, as one MODE line: "+nt-k" and their parameters. */
struct mode_out {
    char modes[64];
    char args[400];
    char sign; /* The sign last written to modes, 0 for none yet. */
};

static void out_add(struct mode_out *o, bool add, char c, const char *arg)
{
    size_t n = strlen(o->modes);
    if (n + 3 >= sizeof(o->modes))
        return;
    if (o->sign != (add ? '+' : '-'))
        o->modes[n++] = o->sign = add ? '+' : '-';
    o->modes[n++] = c;
    o->modes[n] = 0;
    if (arg) {
        size_t a = strlen(o->args);
        snprintf(o->args + a, sizeof(o->args) - a, " %s", arg);
    }
}

static void user_mode(struct irc_client *cl, int argc, char **argv)
{
    struct irc_client *o = irc_client_find(argv[0]);
    if (!o) {
        irc_numeric(cl, 401, "%s :No such nick/channel", argv[0]);
        return;
    }
    if (o != cl) {
        irc_numeric(cl, 502, ":Can't change mode for other users");
        return;
    }
    if (argc < 2) {
        irc_numeric(cl, 221, "+%s%s%s%s", cl->bot ? "B" : "", cl->invisible ? "i" : "",
                    cl->oper ? "o" : "", cl->wallops ? "w" : "");
        return;
    }
    bool add = true, unknown = false;
    struct mode_out out = {0};
    for (const char *m = argv[1]; *m; m++) {
        bool *flag = *m == 'i'   ? &cl->invisible
                     : *m == 'w' ? &cl->wallops
                     : *m == 'B' ? &cl->bot
                                 : NULL;
        if (*m == '+' || *m == '-')
            add = *m == '+';
        else if (*m == 'o' && !add && cl->oper) /* Only OPER gives +o; anyone may drop it. */
            cl->oper = false, out_add(&out, add, 'o', NULL);
        else if (flag && *flag != add)
            *flag = add, out_add(&out, add, *m, NULL);
        else if (!flag && *m != 'o')
            unknown = true;
    }
    if (unknown)
        irc_numeric(cl, 501, ":Unknown MODE flag");
    if (out.modes[0])
        irc_send(cl, ":%s!%s@%s MODE %s %s", cl->nick, cl->user, cl->host, cl->nick, out.modes);
}

/* RFC 2812's key: 1 to 23 characters, none of them a space, comma or control. */
static bool valid_key(const char *k)
{
    if (!*k)
        return false;
    for (const char *p = k; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ',')
            return false;
    return true;
}

/* A positive decimal number of users, or 0 for anything else. */
static int parse_limit(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v <= 1000000 ? (int)v : 0;
}

static void chan_mode(struct irc_client *cl, struct irc_chan *ch, int argc, char **argv)
{
    struct irc_member *me = irc_chan_member(ch, cl);
    bool op = me && me->op, told_not_op = false;
    bool add = true;
    int arg = 2;
    struct mode_out out = {0};
    for (const char *m = argv[1]; *m; m++) {
        char c = *m;
        if (c == '+' || c == '-') {
            add = c == '+';
            continue;
        }
        const char *param = NULL;
        bool takes = strchr("beovk", c) || (c == 'l' && add);
        if (c == 'k' && !add) { /* "-k+l 2": -k takes one only if the later modes leave one. */
            int later = 0;
            bool ladd = add;
            for (const char *q = m + 1; *q; q++) {
                if (*q == '+' || *q == '-')
                    ladd = *q == '+';
                else
                    later += strchr("beovk", *q) || (*q == 'l' && ladd);
            }
            takes = argc - arg > later;
        }
        if (takes && arg < argc)
            param = argv[arg++];
        if ((c == 'b' || c == 'e') && !param) { /* A query, open to anyone. */
            send_list(cl, ch, c);
            continue;
        }
        if (!strchr("beovklimnst", c)) {
            irc_numeric(cl, 472, "%c :is unknown mode char to me", c);
            continue;
        }
        if (!op) {
            if (!told_not_op)
                irc_numeric(cl, 482, "%s :You're not channel operator", ch->name);
            told_not_op = true;
            continue;
        }
        if (takes && !param && c != 'k') {
            irc_numeric(cl, 461, "MODE :Not enough parameters");
            continue;
        }
        switch (c) {
        case 'b':
        case 'e': {
            char mask[128];
            normalise_mask(mask, sizeof(mask), param);
            struct irc_list *l = c == 'b' ? &ch->bans : &ch->excepts;
            if (add) {
                int rc = list_add(l, mask, cl->nick);
                if (rc == -ENOSPC)
                    irc_numeric(cl, 478, "%s %s :Channel list is full", ch->name, mask);
                if (rc == 0)
                    out_add(&out, add, c, mask);
            } else if (list_del(l, mask)) {
                out_add(&out, add, c, mask);
            }
            break;
        }
        case 'o':
        case 'v': {
            struct irc_client *o = irc_client_find(param);
            struct irc_member *om = o ? irc_chan_member(ch, o) : NULL;
            if (!o) {
                irc_numeric(cl, 401, "%s :No such nick/channel", param);
                continue;
            }
            if (!om) {
                irc_numeric(cl, 441, "%s %s :They aren't on that channel", o->nick, ch->name);
                continue;
            }
            if (c == 'o')
                om->op = add;
            else
                om->voice = add;
            out_add(&out, add, c, o->nick);
            break;
        }
        case 'k':
            if (!add) {
                if (ch->key[0])
                    out_add(&out, add, c, "*");
                ch->key[0] = 0;
            } else if (!param || !valid_key(param)) {
                irc_numeric(cl, 696, "%s k * :Invalid key", ch->name);
            } else {
                snprintf(ch->key, sizeof(ch->key), "%s", param);
                out_add(&out, add, c, ch->key);
            }
            break;
        case 'l':
            if (!add) {
                if (ch->limit)
                    out_add(&out, add, c, NULL);
                ch->limit = 0;
            } else if (!parse_limit(param)) {
                irc_numeric(cl, 696, "%s l %s :Invalid limit", ch->name, param[0] ? param : "*");
            } else {
                ch->limit = parse_limit(param);
                char tmp[16];
                snprintf(tmp, sizeof(tmp), "%d", ch->limit);
                out_add(&out, add, c, tmp);
            }
            break;
        default: {
            bool *flag = c == 'i'   ? &ch->mode_i
                         : c == 'm' ? &ch->mode_m
                         : c == 'n' ? &ch->mode_n
                         : c == 's' ? &ch->mode_s
                                    : &ch->mode_t;
            if (*flag != add)
                out_add(&out, add, c, NULL);
            *flag = add;
        }
        }
    }
    if (out.modes[0]) {
        char line[IRC_LINE_MAX + sizeof(out.args)]; /* irc_send_raw cuts it to 512. */
        snprintf(line, sizeof(line), ":%s!%s@%s MODE %s %s%s", cl->nick, cl->user, cl->host,
                 ch->name, out.modes, out.args);
        irc_chan_broadcast(ch, NULL, line, strlen(line));
    }
}

void irc_cmd_mode(struct irc_client *cl, int argc, char **argv)
{
    if (argv[0][0] != '#') {
        user_mode(cl, argc, argv);
        return;
    }
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (!ch) {
        irc_numeric(cl, 403, "%s :No such channel", argv[0]);
        return;
    }
    if (argc < 2)
        mode_is(cl, ch);
    else
        chan_mode(cl, ch, argc, argv);
}

/* A user-state line (AWAY, SETNAME) for the neighbours with the capability at cap_off, cl
 * itself if it has it and include_self, and extended-monitor watchers with it. */
static void tell_change(struct irc_client *cl, const char *line, size_t cap_off, bool include_self)
{
    irc_tell_neighbours(cl, line, include_self, cap_off);
    irc_monitor_notify(cl, line, cap_off);
}

void irc_cmd_away(struct irc_client *cl, int argc, char **argv)
{
    char line[IRC_LINE_MAX];
    if (argc && argv[0][0]) {
        snprintf(cl->away, sizeof(cl->away), "%s", argv[0]);
        irc_numeric(cl, 306, ":You have been marked as being away");
        snprintf(line, sizeof(line), ":%s!%s@%s AWAY :%s", cl->nick, cl->user, cl->host, cl->away);
    } else {
        cl->away[0] = 0;
        irc_numeric(cl, 305, ":You are no longer marked as being away");
        snprintf(line, sizeof(line), ":%s!%s@%s AWAY", cl->nick, cl->user, cl->host);
    }
    tell_change(cl, line, offsetof(struct irc_client, cap_away_notify), false);
}

/* IRCv3 setname: SETNAME :new realname, told to those with the capability (cl included). */
void irc_cmd_setname(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    if (!argv[0][0] || strlen(argv[0]) >= sizeof(cl->realname)) {
        irc_send(cl, ":%s FAIL SETNAME INVALID_REALNAME :Realname is not valid (1 to %zu bytes)",
                 irc.name, sizeof(cl->realname) - 1);
        return;
    }
    snprintf(cl->realname, sizeof(cl->realname), "%s", argv[0]);
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s SETNAME :%s", cl->nick, cl->user, cl->host,
             cl->realname);
    tell_change(cl, line, offsetof(struct irc_client, cap_setname), true);
}
