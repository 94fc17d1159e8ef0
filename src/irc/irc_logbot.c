/* irc_logbot.c - LogBot, the log relay every log channel has as its operator: it answers
 * !query, !stats, !help, !logstream, !logfilter and !tail, in the channel they were said in, or
 * privately when sent to LogBot. Queries run on the query pool (query/run.h); LogBot answers
 * when the pool is done, so the IRC reactor never scans. LogBot is an RFC 2812 service, not a
 * user: SERVLIST lists it and SQUERY talks to it (section 3.5), and LUSERS counts it apart. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/metrics.h"
#include "irc/irc_internal.h"
#include "query/pipe.h"
#include "query/qry.h"
#include "query/run.h"
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

/* A !query on its way: a count of the matches, then the newest few (or a piped query's
 * table). Replies go to a channel by name or to the asker by nick, looked up when the answer
 * comes: either may be gone by then. */
struct bot_job {
    struct bot_job *next;
    struct qrun *run;
    char target[IRC_CHANLEN + 1];
    char asker[IRC_NICKLEN + 1];
    struct irc_client *asker_cl; /* Waits (busy) for the answer; NULL once it left. */
    char expr[IRC_LINE_MAX];
    bool count_only, counting, failed;
    bool table_done; /* A piped query: its table was said as it came. */
    int64_t t0;      /* When it was asked (the latency histogram). */
    uint64_t total;
    struct irc_formatted rows[QUERY_SHOW];
    size_t nrows;
};

static struct bot_job *jobs;

static void job_say_begin(struct bot_job *j)
{
    bot_to = irc_client_find(j->asker);
}

static void q_count(void *arg, uint64_t n)
{
    struct bot_job *j = arg;
    if (j->counting || j->count_only)
        j->total = n;
}

static bool q_row(void *arg, const struct lc_entry *e)
{
    struct bot_job *j = arg;
    if (j->nrows < QUERY_SHOW)
        irc_format_entry(e, j->target, &j->rows[j->nrows++]);
    return true;
}

static void q_table(void *arg, const struct qtable *t)
{
    struct bot_job *j = arg;
    job_say_begin(j);
    bot_say(j->target, "%zu row%s%s", t->nrows, t->nrows == 1 ? "" : "s",
            t->nrows > QUERY_SHOW ? " (the first shown; the query port or HTTP gives all)" : "");
}

static bool q_table_row(void *arg, const struct qtable *t, size_t r)
{
    struct bot_job *j = arg;
    if (r < QUERY_SHOW) {
        char line[400];
        size_t n = qtable_row_kv(t, r, line, sizeof(line));
        job_say_begin(j);
        bot_say(j->target, "%.*s", (int)(n < sizeof(line) ? n : sizeof(line)), line);
    }
    return true;
}

static void q_error(void *arg, const char *why)
{
    struct bot_job *j = arg;
    j->failed = true;
    job_say_begin(j);
    bot_say(j->target, "error: %s", why);
}

static const struct qrun_sink bot_sink = {
    .count = q_count, .row = q_row, .table = q_table, .table_row = q_table_row, .error = q_error};

static void job_free(struct bot_job *j)
{
    if (j->asker_cl)
        irc_client_wait(j->asker_cl, false); /* Its next command may run now. */
    for (struct bot_job **pp = &jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    qrun_close(j->run);
    free(j);
}

static void job_ready(void *owner);

/* The count is in: now the newest rows (a search limited to QUERY_SHOW). */
static bool job_rows(struct bot_job *j)
{
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(j->expr, strlen(j->expr), now_ms(), &q, err) < 0)
        return false;
    if (qry_limit(q) == 0 || qry_limit(q) > QUERY_SHOW)
        qry_set_limit(q, QUERY_SHOW);
    j->counting = false;
    j->run = qrun_start(irc.loop, irc.store, q, false, 0, 0, job_ready, j);
    return j->run != NULL;
}

static void job_answer(struct bot_job *j)
{
    job_say_begin(j);
    if (j->count_only) {
        bot_say(j->target, "COUNT %s: %" PRIu64, j->expr[0] ? j->expr : "(everything)", j->total);
        return;
    }
    bot_say(j->target, "%" PRIu64 " match%s%s", j->total, j->total == 1 ? "" : "es",
            j->total ? " (newest shown; the query port or HTTP gives all)" : "");
    for (size_t i = 0; i < j->nrows; i++)
        bot_say(j->target, "%.*s", (int)(j->rows[i].text_len > 400 ? 400 : j->rows[i].text_len),
                j->rows[i].text);
}

static void job_ready(void *owner)
{
    struct bot_job *j = owner;
    enum qexec_status st = qrun_drain(j->run, &bot_sink, j);
    if (st != QX_DONE)
        return;
    qrun_close(j->run);
    j->run = NULL;
    if (!j->failed && j->counting && job_rows(j))
        return;
    metrics_query_observe(mono_ns() - j->t0);
    if (!j->failed && !j->table_done)
        job_answer(j);
    bot_to = NULL;
    job_free(j);
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
    if (count_only && qry_has_pipes(q)) {
        bot_say(target,
                "error: COUNT takes a filter without pipes (a pipe at %zu); use !query "
                "<expr> | <pipes> for a table",
                qpipes_bar(qry_pipes(q)));
        qry_free(q);
        return;
    }
    struct bot_job *j = calloc(1, sizeof(*j));
    if (!j) {
        qry_free(q);
        bot_say(target, "error: out of memory");
        return;
    }
    snprintf(j->target, sizeof(j->target), "%s", target);
    snprintf(j->asker, sizeof(j->asker), "%s", bot_to ? bot_to->nick : "");
    snprintf(j->expr, sizeof(j->expr), "%s", expr);
    j->count_only = count_only;
    j->t0 = mono_ns();
    /* A piped query answers with its table at once; a search counts every match first. */
    j->table_done = qry_has_pipes(q);
    j->counting = !j->table_done && !count_only; /* A search: its total comes first. */
    j->run = qrun_start(irc.loop, irc.store, q, !j->table_done, 0, 0, job_ready, j);
    if (!j->run) {
        free(j);
        bot_say(target, "error: out of memory");
        return;
    }
    j->next = jobs;
    jobs = j;
    /* The answer is the command's reply: the asker's next command waits for it. */
    j->asker_cl = bot_to;
    if (bot_to)
        irc_client_wait(bot_to, true);
}

void irc_logbot_client_gone(struct irc_client *cl)
{
    for (struct bot_job *j = jobs; j; j = j->next)
        if (j->asker_cl == cl)
            j->asker_cl = NULL;
}

/* Shutting down: every !query still running is cancelled. */
void irc_logbot_free(void)
{
    while (jobs)
        job_free(jobs);
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
            } else if (qry_has_pipes(q)) {
                qry_free(q);
                bot_say(reply_to, "error: a channel's filter takes no pipes");
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

/* LogBot's service type in SERVLIST, which RFC 2812 leaves to the server. */
#define BOT_SERVICE_TYPE "log"

/* SERVLIST [mask [type]]: 234 for LogBot when both match, then 235. */
void irc_cmd_servlist(struct irc_client *cl, int argc, char **argv)
{
    const char *mask = argc > 0 && argv[0][0] ? argv[0] : "*";
    const char *type = argc > 1 && argv[1][0] ? argv[1] : "*";
    if (irc.log_channels && irc_mask_match(mask, "LogBot") &&
        irc_mask_match(type, BOT_SERVICE_TYPE))
        irc_numeric(cl, 234, "LogBot %s * %s 0 :LogCaster log relay: SQUERY LogBot :!help",
                    irc.name, BOT_SERVICE_TYPE);
    irc_numeric(cl, 235, "%s %s :End of service listing", mask, type);
}

/* SQUERY <service> :<text>: the service is LogBot (or LogBot@<server name>), and the text goes to
 * it as a private message would; 408 for any other name. */
void irc_cmd_squery(struct irc_client *cl, int argc, char **argv)
{
    if (argc < 1) {
        irc_numeric(cl, 411, ":No recipient given (SQUERY)");
        return;
    }
    if (argc < 2 || !argv[1][0]) {
        irc_numeric(cl, 412, ":No text to send");
        return;
    }
    const char *name = argv[0], *at = strchr(name, '@');
    size_t len = at ? (size_t)(at - name) : strlen(name);
    bool bot = len == 6 && strncasecmp(name, "LogBot", 6) == 0 &&
               (!at || strcasecmp(at + 1, irc.name) == 0);
    if (!irc.log_channels || !bot) {
        irc_numeric(cl, 408, "%s :No such service", name);
        return;
    }
    irc_logbot_command(cl, "LogBot", argv[1]);
}
