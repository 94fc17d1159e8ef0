/* irc_logbot.c - LogBot, the log relay every log channel has as its operator: it answers
 * !query, !stats, !help, !logstream, !logfilter and !tail, in the channel they were said in, or
 * privately when sent to LogBot. Queries run to the end before the reply, on the IRC reactor. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "irc/irc_internal.h"
#include "query/exec.h"
#include "query/qry.h"
#include "store/store.h"

#define QUERY_SHOW 5 /* Rows !query prints. */

static void bot_say(const char *target, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static struct irc_client *bot_to; /* Who asked (for private replies). */

static void bot_say(const char *target, const char *fmt, ...)
{
    char text[IRC_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    char line[IRC_LINE_MAX + 64];
    int n = snprintf(line, sizeof(line), IRC_LOGBOT " PRIVMSG %s :%s", target, text);
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (target[0] == '#') {
        struct irc_chan *ch = irc_chan_find(target);
        if (ch)
            irc_chan_broadcast(ch, NULL, line, len);
    } else if (bot_to) {
        irc_send_raw(bot_to, line, len);
    }
}

struct qrun {
    uint64_t n;
    struct irc_formatted rows[QUERY_SHOW];
    size_t nrows;
    const char *target;
};

static void q_count(void *arg, uint64_t n)
{
    ((struct qrun *)arg)->n = n;
}

static bool q_row(void *arg, const struct lc_entry *e)
{
    struct qrun *r = arg;
    if (r->nrows < QUERY_SHOW)
        irc_format_entry(e, r->target, &r->rows[r->nrows++]);
    return true;
}

static void bot_query(const char *target, const char *expr)
{
    bool count_only = false;
    if (strncasecmp(expr, "COUNT", 5) == 0 && (expr[5] == ' ' || expr[5] == 0)) {
        count_only = true;
        expr += 5;
        while (*expr == ' ')
            expr++;
    }
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(expr, strlen(expr), now_ms(), &q, err) < 0) {
        bot_say(target, "error: %s", err);
        return;
    }
    struct qrun r = {.target = target};
    static const struct qexec_sink sink = {q_count, q_row};
    uint64_t total = 0;
    if (!count_only) {
        /* The total first (the count pass), then the newest few rows. */
        struct qry *all = NULL;
        qry_compile(expr, strlen(expr), now_ms(), &all, err);
        struct qexec *cx = all ? qexec_new(irc.store, all, true) : NULL;
        while (cx && qexec_step(cx, 1u << 20, &sink, &r) != QX_DONE)
            ;
        qexec_free(cx);
        total = r.n;
        if (qry_limit(q) == 0 || qry_limit(q) > QUERY_SHOW)
            qry_set_limit(q, QUERY_SHOW);
    }
    struct qexec *x = qexec_new(irc.store, q, count_only);
    if (!x) {
        bot_say(target, "error: out of memory");
        return;
    }
    while (qexec_step(x, 1u << 20, &sink, &r) != QX_DONE)
        ;
    qexec_free(x);
    if (!count_only)
        r.n = total;
    if (count_only) {
        bot_say(target, "COUNT %s: %" PRIu64, expr[0] ? expr : "(everything)", r.n);
        return;
    }
    bot_say(target, "%" PRIu64 " match%s%s", r.n, r.n == 1 ? "" : "es",
            r.n ? " (newest shown; the query port or HTTP gives all)" : "");
    for (size_t i = 0; i < r.nrows; i++)
        bot_say(target, "%.*s", (int)(r.rows[i].text_len > 400 ? 400 : r.rows[i].text_len),
                r.rows[i].text);
}

void irc_logbot_command(struct irc_client *cl, const char *target, const char *text)
{
    /* Private messages to LogBot are answered privately. */
    const char *reply_to = target[0] == '#' ? target : cl->nick;
    bot_to = cl;
    const char *arg = strchr(text, ' ');
    size_t cmdlen = arg ? (size_t)(arg - text) : strlen(text);
    while (arg && *arg == ' ')
        arg++;
    if (!arg)
        arg = "";
#define IS(name) (cmdlen == strlen(name) && strncasecmp(text, name, cmdlen) == 0)
    if (IS("!query")) {
        bot_query(reply_to, arg);
    } else if (IS("!stats")) {
        struct store_stats st;
        store_get_stats(irc.store, &st);
        bot_say(reply_to,
                "entries %" PRIu64 ", errors %" PRIu64 ", warnings %" PRIu64 ", on disk %" PRIu64
                " MB, uptime %lld s",
                st.entries, st.per_level[LC_ERROR] + st.per_level[LC_FATAL], st.per_level[LC_WARN],
                st.disk_bytes >> 20, (long long)((now_ms() - irc.started_ms) / 1000));
    } else if (IS("!help")) {
        bot_say(reply_to, "!query <expr> (or !query COUNT <expr>): search stored logs, e.g. "
                          "!query level:ERROR since:1h");
        bot_say(reply_to, "!stats | !logstream on|off | !logfilter <expr> (in a #logs-<name> "
                          "channel) | !tail <n>");
        bot_say(reply_to, "Channels: #logs-all, #logs-error, #logs-warn, #logs-info, "
                          "#logs-debug, #logs-trace, #logs-fatal, or any #logs-<name>");
    } else if (IS("!logstream")) {
        if (strcasecmp(arg, "off") == 0)
            cl->logstream_off = true;
        else if (strcasecmp(arg, "on") == 0)
            cl->logstream_off = false;
        bot_say(reply_to, "%s: live log lines are %s for you", cl->nick,
                cl->logstream_off ? "off" : "on");
    } else if (IS("!logfilter")) {
        struct irc_chan *ch = target[0] == '#' ? irc_chan_find(target) : NULL;
        if (!ch || !ch->is_log) {
            bot_say(reply_to, "!logfilter works in a #logs-<name> channel");
        } else if (!arg[0]) {
            bot_say(reply_to, "filter: %s",
                    ch->filter ? (ch->filter_text[0] ? ch->filter_text : "everything") : "none");
        } else {
            char err[QRY_ERR_MAX];
            struct qry *q = NULL;
            if (qry_compile(arg, strlen(arg), now_ms(), &q, err) < 0) {
                bot_say(reply_to, "error: %s", err);
            } else {
                qry_free(ch->filter);
                ch->filter = q;
                snprintf(ch->filter_text, sizeof(ch->filter_text), "%s", arg);
                irc_logs_set_topic(ch);
                irc_logs_pump(); /* A channel that now shows logs: the stream follows. */
                char line[IRC_LINE_MAX];
                int n =
                    snprintf(line, sizeof(line), IRC_LOGBOT " TOPIC %s :%s", ch->name, ch->topic);
                irc_chan_broadcast(ch, NULL, line, (size_t)n);
            }
        }
    } else if (IS("!tail")) {
        struct irc_chan *ch = target[0] == '#' ? irc_chan_find(target) : irc_chan_find("#logs-all");
        int n = atoi(arg);
        if (n <= 0 || n > 50)
            n = 10;
        if (ch)
            irc_logs_replay(cl, ch, n);
    } else if (target[0] != '#') {
        bot_say(reply_to, "unknown command; try !help");
    }
#undef IS
    bot_to = NULL;
}
