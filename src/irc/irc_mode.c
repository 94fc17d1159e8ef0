/* irc_mode.c - MODE (the channel modes i, m, n, t, k, l and o; a user's own mode is always +i)
 * and AWAY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc/irc_internal.h"

void irc_cmd_mode(struct irc_client *cl, int argc, char **argv)
{
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
            struct irc_client *o = irc_client_find(argv[arg++]);
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

void irc_cmd_away(struct irc_client *cl, int argc, char **argv)
{
    if (argc && argv[0][0]) {
        snprintf(cl->away, sizeof(cl->away), "%s", argv[0]);
        irc_numeric(cl, 306, ":You have been marked as being away");
    } else {
        cl->away[0] = 0;
        irc_numeric(cl, 305, ":You are no longer marked as being away");
    }
}
