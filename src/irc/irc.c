/* irc.c - the IRC server's protocol object (port 6667): connections, framing, flood control and
 * time-outs; output; nick look-up; and the command table with its dispatcher, the one place that
 * lists every command, what it needs, and the file that handles it (see irc_internal.h). */
#define _GNU_SOURCE
#include "irc/irc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "irc/irc_internal.h"
#include "irc/irc_parse.h"
#include "proto/protocols.h"

#define FLOOD_RATE              10.0   /* Lines per second a client may send on average... */
#define FLOOD_BURST             40.0   /* ...and in one burst. */
#define IRC_PING_AFTER_MS       120000 /* Silence before the server sends PING. */
#define IRC_PING_TIMEOUT_MS     120000 /* Then the time the client has to answer. */
#define IRC_REGISTER_TIMEOUT_MS 60000  /* To finish NICK/USER (and CAP). */

struct irc_state irc;

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
    irc_client_quit(cl, "SendQ exceeded");
    char bye[160];
    snprintf(bye, sizeof(bye), "\r\nERROR :Closing Link: %s (SendQ exceeded)\r\n", cl->host);
    conn_abort(cl->c, bye);
}

void irc_send_tagged(struct irc_client *cl, const char *line, size_t len)
{
    if (irc_label_capturing(cl)) { /* A reply to a labeled command: sent when it ends. */
        irc_label_capture(line, len);
        return;
    }
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

struct irc_client *irc_client_find(const char *nick)
{
    for (struct irc_client *c = irc.clients; c; c = c->next)
        if (c->nick[0] && irc_name_eq(c->nick, nick))
            return c;
    return NULL;
}

bool irc_mask_match(const char *mask, const char *s)
{
    /* Iterative glob with one back-track point: linear enough for 128-byte masks. */
    const char *star = NULL, *retry = NULL;
    while (*s) {
        if (*mask == '*') {
            star = ++mask;
            retry = s;
        } else if (*mask && (*mask == '?' || fold(*mask) == fold(*s))) {
            mask++;
            s++;
        } else if (star) {
            mask = star;
            s = ++retry;
        } else {
            return false;
        }
    }
    while (*mask == '*')
        mask++;
    return *mask == 0;
}

const char *irc_member_prefix(const struct irc_client *to, const struct irc_member *m)
{
    if (m->op && m->voice && to->cap_multi_prefix)
        return "@+";
    return m->op ? "@" : m->voice ? "+" : "";
}

/* ------------------------------------------------------------------------------------------ */
/* The commands, as ngIRCd's My_Commands[]: the dispatcher checks when each may be sent and its
 * minimum number of parameters, so a handler starts with what it needs. */

enum cmd_when {
    ANYTIME,     /* Before and after registration. */
    REGISTERED,  /* Only after 001; before it, 451. */
    REGISTERING, /* Only before 001; after it, 462 (PASS and USER cannot be sent again). */
};

typedef void (*cmd_fn)(struct irc_client *cl, int argc, char **argv);

static const struct {
    const char *name;
    cmd_fn fn;
    enum cmd_when when;
    int min_params; /* Fewer parameters get 461 (commands with their own reply check it). */
} commands[] = {
    /* irc_login.c */
    {"CAP", irc_cmd_cap, ANYTIME, 1},
    {"PASS", irc_cmd_pass, REGISTERING, 1},
    {"NICK", irc_cmd_nick, ANYTIME, 0}, /* 431 */
    {"USER", irc_cmd_user, REGISTERING, 4},
    {"PING", irc_cmd_ping, ANYTIME, 0}, /* 409 */
    {"PONG", irc_cmd_pong, ANYTIME, 0},
    {"QUIT", irc_cmd_quit, ANYTIME, 0},
    /* irc_sasl.c */
    {"AUTHENTICATE", irc_cmd_authenticate, REGISTERING, 1},
    /* irc_channel.c */
    {"JOIN", irc_cmd_join, REGISTERED, 1},
    {"PART", irc_cmd_part, REGISTERED, 1},
    {"TOPIC", irc_cmd_topic, REGISTERED, 1},
    {"NAMES", irc_cmd_names, REGISTERED, 0}, /* 366 */
    {"LIST", irc_cmd_list, REGISTERED, 0},
    {"KICK", irc_cmd_kick, REGISTERED, 2},
    {"INVITE", irc_cmd_invite, REGISTERED, 2},
    /* irc_mode.c */
    {"MODE", irc_cmd_mode, REGISTERED, 1},
    {"AWAY", irc_cmd_away, REGISTERED, 0},
    {"SETNAME", irc_cmd_setname, REGISTERED, 1},
    /* irc_message.c */
    {"PRIVMSG", irc_cmd_privmsg, REGISTERED, 0}, /* 411, 412 */
    {"NOTICE", irc_cmd_notice, REGISTERED, 0},
    {"TAGMSG", irc_cmd_tagmsg, REGISTERED, 1},
    /* irc_multiline.c */
    {"BATCH", irc_cmd_batch, REGISTERED, 1},
    /* irc_info.c */
    {"WHO", irc_cmd_who, REGISTERED, 0},
    {"WHOIS", irc_cmd_whois, REGISTERED, 0}, /* 431 */
    {"USERHOST", irc_cmd_userhost, REGISTERED, 1},
    {"ISON", irc_cmd_ison, REGISTERED, 0},
    {"LUSERS", irc_cmd_lusers, REGISTERED, 0},
    {"MOTD", irc_cmd_motd, REGISTERED, 0},
    {"VERSION", irc_cmd_version, REGISTERED, 0},
    {"TIME", irc_cmd_time, REGISTERED, 0},
    {"INFO", irc_cmd_info, REGISTERED, 0},
    {"HELP", irc_cmd_help, REGISTERED, 0},
    {"HELPOP", irc_cmd_help, REGISTERED, 0},
    /* irc_monitor.c */
    {"MONITOR", irc_cmd_monitor, REGISTERED, 1},
    /* irc_oper.c */
    {"OPER", irc_cmd_oper, REGISTERED, 2},
    {"KILL", irc_cmd_kill, REGISTERED, 1},
    {"WALLOPS", irc_cmd_wallops, REGISTERED, 1},
    {"WHOWAS", irc_cmd_whowas, REGISTERED, 1},
    {"SERVLIST", irc_cmd_servlist, REGISTERED, 0},
    {"SQUERY", irc_cmd_squery, REGISTERED, 0}, /* 411, 412 */
    /* irc_history.c */
    {"CHATHISTORY", irc_cmd_chathistory, REGISTERED, 0}, /* FAIL NEED_MORE_PARAMS */
};

static void dispatch_command(struct irc_client *cl, struct irc_msg *m);

/* One line: [@tags] [:prefix] COMMAND params... [:trailing] */
static void dispatch(struct irc_client *cl, char *line)
{
    struct irc_msg m; /* A prefix is accepted and ignored; tags go to the handler (irc.tags). */
    if (irc_parse_line(line, strlen(line), &m) != 0)
        return; /* No command (an empty line, say): ignored. */
    char *cmd = m.command;
    for (char *c = cmd; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    if (cl->mline && irc_mline_line(cl, &m))
        return; /* A line of an open multiline batch: collected until BATCH -ref. */
    irc_label_begin(cl, m.tags, cmd);
    dispatch_command(cl, &m);
    irc_label_end();
}

/* The command of one parsed line, through the table. */
static void dispatch_command(struct irc_client *cl, struct irc_msg *m)
{
    char *cmd = m->command;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, cmd) != 0)
            continue;
        if (commands[i].when == REGISTERED && !cl->registered)
            irc_numeric(cl, 451, ":You have not registered");
        else if (commands[i].when == REGISTERING && cl->registered)
            irc_numeric(cl, 462, ":You may not reregister");
        else if (m->argc < commands[i].min_params)
            irc_numeric(cl, 461, "%s :Not enough parameters", commands[i].name);
        else {
            irc.tags = m->tags;
            commands[i].fn(cl, m->argc, m->argv);
            irc.tags = NULL;
        }
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
/* The protocol hooks (struct proto), called by the reactor. */

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
    irc.loop = conn_loop(c);
    return 0;
}

static void irc_close(struct conn *c)
{
    struct irc_client *cl = conn_state(c);
    if (!cl)
        return;
    if (!cl->closing)
        irc_client_quit(cl, "Connection closed");
    irc_logbot_client_gone(cl);
    irc_logs_replay_cancel(NULL, cl);
    irc_history_cancel(cl);
    irc_sasl_free(cl);
    irc_monitor_free(cl);
    irc_mline_free(cl);
    for (struct irc_client **pp = &irc.clients; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    free(cl);
}

void irc_client_wait(struct irc_client *cl, bool start)
{
    cl->waiting += start ? 1 : -1;
    conn_set_busy(cl->c, cl->waiting > 0);
}

static size_t irc_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct irc_client *cl = conn_state(c);
    size_t used = 0;
    while (used < n && !cl->closing && !cl->waiting) {
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
            irc_client_quit(cl, "Excess Flood");
            cl->closing = true;
            conn_close_after_flush(c);
            return n;
        }
        cl->flood_tokens -= 1.0;
        cl->last_seen_ms = now;
        cl->ping_sent = false;
        /* IRCv3 message tags: up to IRC_TAGS_MAX bytes before the 512 of the message proper. */
        char line[IRC_TAGS_MAX + 2 + IRC_LINE_MAX + 1];
        size_t l = len, tl = 0;
        while (l && p[used + l - 1] == '\r')
            l--;
        if (l && p[used] == '@') {
            const char *sp = memchr(p + used, ' ', l);
            tl = sp ? (size_t)(sp - (p + used)) + 1 : l;
            if (tl > IRC_TAGS_MAX + 2) { /* "@" and the space around the client's 4094. */
                used += take;
                irc_numeric(cl, 417, ":Input line was too long");
                continue;
            }
        }
        if (l > tl + IRC_LINE_MAX - 2)
            l = tl + IRC_LINE_MAX - 2; /* IRC's limit: the rest of the line is dropped. */
        memcpy(line, p + used, l);
        line[l] = 0;
        /* A NUL in the line would end it early anyway; make it explicit. */
        line[strnlen(line, l)] = 0;
        used += take;
        dispatch(cl, line);
    }
    if (eof && !cl->closing) {
        irc_client_quit(cl, "Connection closed");
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
    irc_history_continue(cl);
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
    irc_history_continue(cl);
    int64_t idle = now - cl->last_seen_ms;
    if (!cl->registered && idle > IRC_REGISTER_TIMEOUT_MS) {
        irc_send(cl, "ERROR :Closing Link: %s (Registration timed out)", cl->host);
        cl->closing = true;
        conn_close_after_flush(c);
    } else if (cl->ping_sent && idle > IRC_PING_AFTER_MS + IRC_PING_TIMEOUT_MS) {
        irc_send(cl, "ERROR :Closing Link: %s (Ping timeout)", cl->host);
        irc_client_quit(cl, "Ping timeout");
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

void irc_init(struct store *store, const struct config *cfg)
{
    irc.store = store;
    irc.cfg = cfg;
    irc.name = cfg->irc_server_name;
    irc.started_ms = now_ms();
    irc.log_channels = cfg->irc_log_channels != 0;
    if (irc.log_channels)
        irc_logs_init();
}

void irc_free(void)
{
    irc_logbot_free();
    irc_logs_replays_free();
    irc_history_free();
    while (irc.chans)
        irc_chan_free(irc.chans);
}
