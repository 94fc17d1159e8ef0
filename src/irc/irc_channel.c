/* irc_channel.c - channels: finding, creating, joining and leaving them, their members and the
 * NAMES list; and the channel commands JOIN, PART, TOPIC, NAMES, LIST, KICK and INVITE. Log
 * channels (#logs-*) are channels too, set up by irc_stream.c when they are created; LogBot is
 * their operator without being a member. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "irc/irc_internal.h"
#include "query/qry.h"

/* ------------------------------------------------------------------------------------------ */
/* Channels. */

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
    if (irc.log_channels && irc_chan_name_is_log(name))
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

void irc_chan_free(struct irc_chan *ch)
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

void irc_chan_remove(struct irc_chan *ch, struct irc_client *cl)
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
        irc_chan_free(ch);
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
/* Commands. */

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

void irc_cmd_join(struct irc_client *cl, int argc, char **argv)
{
    if (strcmp(argv[0], "0") == 0) { /* Leave every channel. */
        while (cl->nchans) {
            struct irc_chan *ch = cl->chans[0];
            char line[IRC_LINE_MAX];
            snprintf(line, sizeof(line), ":%s!%s@%s PART %s", cl->nick, cl->user, cl->host,
                     ch->name);
            irc_chan_broadcast(ch, NULL, line, strlen(line));
            irc_chan_remove(ch, cl);
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

void irc_cmd_part(struct irc_client *cl, int argc, char **argv)
{
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
        irc_chan_remove(ch, cl);
    }
}

void irc_cmd_topic(struct irc_client *cl, int argc, char **argv)
{
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

void irc_cmd_names(struct irc_client *cl, int argc, char **argv)
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

void irc_cmd_list(struct irc_client *cl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    irc_numeric(cl, 321, "Channel :Users  Name");
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
        irc_numeric(cl, 322, "%s %d :%s", ch->name, ch->nmembers + (ch->is_log ? 1 : 0), ch->topic);
    irc_numeric(cl, 323, ":End of /LIST");
}

void irc_cmd_kick(struct irc_client *cl, int argc, char **argv)
{
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
    struct irc_client *o = irc_client_find(argv[1]);
    if (!o || !irc_chan_member(ch, o)) {
        irc_numeric(cl, 441, "%s %s :They aren't on that channel", argv[1], ch->name);
        return;
    }
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s KICK %s %s :%s", cl->nick, cl->user, cl->host, ch->name,
             o->nick, argc > 2 ? argv[2] : cl->nick);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
    irc_chan_remove(ch, o);
}

void irc_cmd_invite(struct irc_client *cl, int argc, char **argv)
{
    struct irc_client *o = irc_client_find(argv[0]);
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
