/* irc_channel.c - channels: finding, creating, joining and leaving them, their members and the
 * NAMES list; and the channel commands JOIN, PART, TOPIC, NAMES, LIST, KICK and INVITE. Log
 * channels (#logs-*) are channels too, set up by irc_stream.c when they are created; LogBot is
 * their operator without being a member. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
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
    ch->created_s = now_ms() / 1000;
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
    free(ch->bans.e);
    free(ch->excepts.e);
    free(ch);
}

void irc_chan_remove(struct irc_chan *ch, struct irc_client *cl)
{
    if (ch->is_log)
        irc_logs_replay_cancel(ch, cl);
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
    ch->members[ch->nmembers++] = (struct irc_member){.cl = cl, .op = op};
    cl->chans[cl->nchans++] = ch;
    return 0;
}

bool irc_chan_visible(struct irc_chan *ch, struct irc_client *cl)
{
    return !ch->mode_s || irc_chan_member(ch, cl);
}

bool irc_shares_chan(struct irc_client *cl, struct irc_client *o)
{
    for (int i = 0; i < cl->nchans; i++)
        if (irc_chan_member(cl->chans[i], o))
            return true;
    return false;
}

/* 353s then 366; a secret channel (symbol @) shows nothing to those outside it. */
static void names_reply(struct irc_client *cl, struct irc_chan *ch, bool end)
{
    char buf[IRC_LINE_MAX];
    size_t n = 0;
    bool member = irc_chan_member(ch, cl) != NULL;
    const char *sym = ch->mode_s ? "@" : "=";
    if (ch->is_log)
        n = (size_t)snprintf(buf, sizeof(buf), "@LogBot");
    for (int i = 0; member || !ch->mode_s ? i < ch->nmembers : false; i++) {
        const struct irc_member *m = &ch->members[i];
        if (!member && m->cl->invisible)
            continue;
        char who[IRC_NICKLEN + 100];
        if (cl->cap_userhost_in_names)
            snprintf(who, sizeof(who), "%s%s!%s@%s", irc_member_prefix(cl, m), m->cl->nick,
                     m->cl->user, m->cl->host);
        else
            snprintf(who, sizeof(who), "%s%s", irc_member_prefix(cl, m), m->cl->nick);
        if (n + strlen(who) + 1 > 400) {
            irc_numeric(cl, 353, "%s %s :%s", sym, ch->name, buf);
            n = 0;
        }
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", who);
    }
    if (n)
        irc_numeric(cl, 353, "%s %s :%s", sym, ch->name, buf);
    if (end)
        irc_numeric(cl, 366, "%s :End of /NAMES list.", ch->name);
}

static void topic_reply(struct irc_client *cl, struct irc_chan *ch, bool unset_too)
{
    if (ch->topic[0]) {
        irc_numeric(cl, 332, "%s :%s", ch->name, ch->topic);
        if (ch->topic_s)
            irc_numeric(cl, 333, "%s %s %lld", ch->name, ch->topic_by, (long long)ch->topic_s);
    } else if (unset_too) {
        irc_numeric(cl, 331, "%s :No topic is set", ch->name);
    }
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
        if (irc_chan_banned(ch, cl)) {
            irc_numeric(cl, 474, "%s :Cannot join channel (+b)", ch->name);
            return;
        }
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
    /* extended-join members get the account and realname too; away-notify ones hear that a
     * user who is away came in. */
    char line[IRC_LINE_MAX], ext[IRC_LINE_MAX], away[IRC_LINE_MAX];
    int n =
        snprintf(line, sizeof(line), ":%s!%s@%s JOIN %s", cl->nick, cl->user, cl->host, ch->name);
    int xn = snprintf(ext, sizeof(ext), "%s %s :%s", line, cl->account[0] ? cl->account : "*",
                      cl->realname);
    int an =
        snprintf(away, sizeof(away), ":%s!%s@%s AWAY :%s", cl->nick, cl->user, cl->host, cl->away);
    for (int i = 0; i < ch->nmembers; i++) {
        struct irc_client *o = ch->members[i].cl;
        if (o->cap_extended_join)
            irc_send_raw(o, ext, (size_t)xn);
        else
            irc_send_raw(o, line, (size_t)n);
        if (cl->away[0] && o->cap_away_notify && o != cl)
            irc_send_raw(o, away, (size_t)an);
    }
    topic_reply(cl, ch, false); /* RFC 2812: no 331 on JOIN, only on TOPIC. */
    names_reply(cl, ch, true);
    /* A draft/chathistory client asks for what it wants (the spec: no automatic playback). */
    if (ch->is_log && !cl->cap_chathistory)
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
        if (!m && ch->mode_s)
            irc_numeric(cl, 442, "%s :You're not on that channel", ch->name);
        else
            topic_reply(cl, ch, true);
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
    snprintf(ch->topic_by, sizeof(ch->topic_by), "%s", cl->nick);
    ch->topic_s = now_ms() / 1000;
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s TOPIC %s :%s", cl->nick, cl->user, cl->host, ch->name,
             ch->topic);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
}

void irc_cmd_names(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) { /* Every channel the client may see, then one 366. */
        for (struct irc_chan *ch = irc.chans; ch; ch = ch->next)
            if (irc_chan_visible(ch, cl))
                names_reply(cl, ch, false);
        irc_numeric(cl, 366, "* :End of /NAMES list.");
        return;
    }
    struct irc_chan *ch = irc_chan_find(argv[0]);
    if (ch) {
        names_reply(cl, ch, true);
        return;
    }
    /* Several channels: their 353s, then one 366 naming them all (Modern). */
    char names[IRC_LINE_MAX];
    snprintf(names, sizeof(names), "%s", argv[0]);
    char *save;
    for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save))
        if ((ch = irc_chan_find(n)) != NULL)
            names_reply(cl, ch, false);
    irc_numeric(cl, 366, "%s :End of /NAMES list.", argv[0]);
}

/* One LIST condition (ISUPPORT ELIST=MNU): a mask, "!mask", "<users" or ">users". */
static bool list_wants(struct irc_chan *ch, int users, const char *cond)
{
    if (cond[0] == '<' || cond[0] == '>') {
        int v = atoi(cond + 1);
        return cond[0] == '<' ? users < v : users > v;
    }
    if (cond[0] == '!')
        return !irc_mask_match(cond + 1, ch->name);
    return irc_mask_match(cond, ch->name);
}

void irc_cmd_list(struct irc_client *cl, int argc, char **argv)
{
    char conds[IRC_LINE_MAX] = "";
    if (argc)
        snprintf(conds, sizeof(conds), "%s", argv[0]);
    irc_numeric(cl, 321, "Channel :Users  Name");
    for (struct irc_chan *ch = irc.chans; ch; ch = ch->next) {
        if (!irc_chan_visible(ch, cl))
            continue;
        int users = ch->nmembers + (ch->is_log ? 1 : 0);
        char tmp[IRC_LINE_MAX], *save;
        memcpy(tmp, conds, sizeof(tmp));
        bool want = true;
        for (char *c = strtok_r(tmp, ",", &save); c && want; c = strtok_r(NULL, ",", &save))
            want = list_wants(ch, users, c);
        if (want)
            irc_numeric(cl, 322, "%s %d :%s", ch->name, users, ch->topic);
    }
    irc_numeric(cl, 323, ":End of /LIST");
}

static void kick_one(struct irc_client *cl, const char *chan, const char *nick, const char *why)
{
    struct irc_chan *ch = irc_chan_find(chan);
    if (!ch) {
        irc_numeric(cl, 403, "%s :No such channel", chan);
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
    struct irc_client *o = irc_client_find(nick);
    if (!o) {
        irc_numeric(cl, 401, "%s :No such nick/channel", nick);
        return;
    }
    if (!irc_chan_member(ch, o)) {
        irc_numeric(cl, 441, "%s %s :They aren't on that channel", o->nick, ch->name);
        return;
    }
    char line[IRC_LINE_MAX];
    snprintf(line, sizeof(line), ":%s!%s@%s KICK %s %s :%s", cl->nick, cl->user, cl->host, ch->name,
             o->nick, why);
    irc_chan_broadcast(ch, NULL, line, strlen(line));
    irc_chan_remove(ch, o);
}

/* KICK #chan a,b or KICK #a,#b a,b (pairs), up to IRC_MAXTARGETS users (TARGMAX). */
void irc_cmd_kick(struct irc_client *cl, int argc, char **argv)
{
    char chans[IRC_LINE_MAX], nicks[IRC_LINE_MAX];
    snprintf(chans, sizeof(chans), "%s", argv[0]);
    snprintf(nicks, sizeof(nicks), "%s", argv[1]);
    const char *why = argc > 2 && argv[2][0] ? argv[2] : cl->nick;
    bool one_chan = strchr(chans, ',') == NULL;
    char *cs, *ns, *c = strtok_r(chans, ",", &cs);
    int n = 0;
    for (char *nk = strtok_r(nicks, ",", &ns); nk && c && n < IRC_MAXTARGETS;
         nk = strtok_r(NULL, ",", &ns), n++) {
        kick_one(cl, c, nk, why);
        if (!one_chan)
            c = strtok_r(NULL, ",", &cs);
    }
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
