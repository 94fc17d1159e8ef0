/* irc_internal.h - the IRC server's state and the calls its files share. Only src/irc/ includes
 * it; main.c takes irc.h.
 *
 * The files, one per concern, as ngIRCd splits its commands:
 *   irc.c          the protocol object: connections, framing, flood control, time-outs, output,
 *                  nick look-up, and the command table (the one place that lists every command)
 *   irc_parse.c    the line tokenizer
 *   irc_login.c    registration and leaving: CAP, PASS, NICK, USER, PING, PONG, QUIT
 *   irc_sasl.c     AUTHENTICATE: SASL PLAIN against the IRC tokens or the operator pair
 *   irc_label.c    IRCv3 labeled-response: a command's replies captured, labeled, batched
 *   irc_monitor.c  MONITOR and the notices it and away-notify/setname send to watchers
 *   irc_channel.c  channels, and JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE
 *   irc_mode.c     MODE, AWAY and SETNAME
 *   irc_message.c  PRIVMSG and NOTICE
 *   irc_multiline.c  BATCH: IRCv3 draft/multiline messages sent as client batches
 *   irc_info.c     WHO, WHOIS, USERHOST, ISON, LUSERS, MOTD, VERSION, TIME, and ISUPPORT
 *   irc_oper.c     OPER, KILL, WALLOPS, and WHOWAS with its history
 *   irc_logbot.c   LogBot's !commands, and SERVLIST and SQUERY (LogBot is an RFC 2812 service)
 *   irc_stream.c   log channels: their filters, the live log stream, and replay
 *   irc_history.c  CHATHISTORY (IRCv3 draft/chathistory): log channels' history from the store
 *
 * Every IRC connection lives on the first reactor (the listener is one_loop), so this state
 * is touched by one thread only and needs no locks. */
#ifndef LC_IRC_INTERNAL_H
#define LC_IRC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#include "base/entry.h"
#include "core/server.h"
#include "ingest/fanout.h"
#include "ingest/pipeline.h"

#define IRC_NICKLEN    30
#define IRC_CHANLEN    50
#define IRC_MAXCHANS   50 /* Channels one client may be on. */
#define IRC_LINE_MAX   512
#define IRC_TAGS_MAX   4094 /* Client tags of one line (IRCv3 message-tags). */
#define IRC_MAXTARGETS 4    /* Targets of one PRIVMSG/NOTICE. */
#define IRC_MAXINVITES 16   /* Pending invitations per channel. */
#define IRC_MAXLIST    100  /* Entries of one channel's ban (+b) or exception (+e) list. */
#define IRC_KEYLEN     23   /* RFC 2812's longest channel key; longer ones are cut. */
#define IRC_MONITOR    100  /* Nicks one client may MONITOR (ISUPPORT MONITOR=). */
#define IRC_ACCOUNTLEN 32   /* A SASL account name. */
/* draft/multiline: the most a client batch may hold (CAP value max-bytes, max-lines). */
#define IRC_MULTILINE_MAX_BYTES 4096
#define IRC_MULTILINE_MAX_LINES 32
#define IRC_STR_(x)             #x
#define IRC_STR(x)              IRC_STR_(x)

struct irc_chan;
struct irc_mline;
struct irc_msg;
struct qry;

struct irc_client {
    struct conn *c;
    char nick[IRC_NICKLEN + 1];
    char user[16];
    char realname[64];
    char host[64];
    bool registered, got_user, got_nick, pass_ok;
    bool pass_bad; /* A wrong PASS: refused (464) when NICK and USER complete registration. */
    bool cap_negotiating;
    bool cap_server_time, cap_message_tags, cap_multi_prefix, cap_echo_message;
    bool cap_userhost_in_names; /* NAMES shows nick!user@host. */
    bool logstream_off;         /* !logstream off: no live log lines for this client. */
    /* Live log lines are best effort: while the client's unsent output is above half of
     * --out-limit they are skipped and counted here, and it is told how many once it has
     * caught up. behind_ms is when it fell behind (0: it has not). */
    uint64_t stream_skipped;
    int64_t behind_ms;
    unsigned flush_gen; /* The pump that last tried an immediate flush for this client. */
    bool closing;
    int waiting;     /* Answers on the query pool (replays, !query) its next command waits for. */
    bool discarding; /* Dropping the rest of an endless line. */
    char away[128];
    bool invisible; /* User mode +i: hidden from WHO masks of those sharing no channel. */
    bool wallops;   /* User mode +w: receives WALLOPS. */
    bool oper;      /* User mode +o: gave OPER the --irc-oper name and password. */
    struct irc_chan *chans[IRC_MAXCHANS];
    int nchans;
    int64_t last_seen_ms; /* Last line received, for PING timeouts. */
    bool ping_sent;
    double flood_tokens; /* Input flood control: a token bucket. */
    int64_t flood_ms;
    struct irc_client *next;
    /* IRCv3 state, apart from what the live stream reads (kept at the front). */
    bool cap_sasl, cap_batch, cap_labeled, cap_setname, cap_away_notify, cap_account_tag;
    bool cap_extended_join, cap_extended_monitor;
    bool cap_chathistory;             /* draft/chathistory: no replay on join; CHATHISTORY asks. */
    bool cap_302;                     /* CAP LS 302: capability values (sasl=PLAIN) are shown. */
    char account[IRC_ACCOUNTLEN + 1]; /* Logged in with SASL as this; "" for none. */
    int sasl_state;                   /* 0 idle, 1 PLAIN chosen: the payload comes next. */
    int sasl_failures;                /* Failed AUTHENTICATEs on this connection. */
    char *sasl_buf;                   /* The base64 payload so far (sent in 400-byte pieces). */
    size_t sasl_len;
    bool bot;                         /* User mode +B: a bot (335 in WHOIS, the bot tag). */
    char (*monitor)[IRC_NICKLEN + 1]; /* The nicks it MONITORs (malloc'd, IRC_MONITOR slots). */
    int nmonitor;
    bool cap_multiline;      /* draft/multiline (used only with batch as well). */
    struct irc_mline *mline; /* The client batch it has open (irc_multiline.c), or NULL. */
};

struct irc_member {
    struct irc_client *cl;
    bool op, voice; /* +o and +v: voice may speak in a +m channel. */
};

/* One entry of a channel's +b or +e list, as modern servers show it (367: mask, setter, time). */
struct irc_listent {
    char mask[128];
    char setter[IRC_NICKLEN + 1];
    int64_t set_s; /* Unix seconds. */
};

struct irc_list {
    struct irc_listent *e;
    int n;
};

/* The ways a log line is rendered: bit 0 server-time, bit 1 message-tags, bit 2 draft/multiline
 * (with batch: an entry of several lines as one batch). */
#define IRC_TAG_VARIANTS 8

struct irc_chan {
    char name[IRC_CHANLEN + 1];
    char topic[300];
    struct irc_member *members;
    int nmembers, capmembers;
    bool mode_n, mode_t, mode_m, mode_i, mode_s;
    char key[IRC_KEYLEN + 1];
    struct irc_list bans, excepts; /* +b and +e. */
    int64_t created_s;             /* Unix seconds, for 329. */
    char topic_by[IRC_NICKLEN + 1];
    int64_t topic_s; /* When the topic was set (333), 0 for never. */
    int limit;
    struct irc_client *invited[IRC_MAXINVITES]; /* May join despite +i (once). */
    int ninvited;
    bool is_log;        /* A #logs-* channel: LogBot is its operator and streams into it. */
    struct qry *filter; /* Which entries it streams; NULL = none (custom channel, no filter). */
    char filter_text[256];
    int64_t window_ms; /* Stream rate limit: lines sent in the current second. */
    int window_lines, suppressed;
    /* The entries of the current pump, rendered once per tag variant its members use, and
     * where each entry ends; then copied to each member in one piece (irc_stream.c). */
    struct buf pump[IRC_TAG_VARIANTS];
    uint32_t *pump_ends[IRC_TAG_VARIANTS];
    uint32_t pump_lines;
    unsigned pump_variants;
    struct irc_chan *next;
};

struct irc_state {
    struct irc_client *clients;
    struct irc_chan *chans;
    struct store *store;
    const struct config *cfg;
    const char *name;      /* Server name. */
    uint64_t stream_id;    /* Last entry id streamed into log channels (or replayed up to). */
    struct ingest_sub sub; /* Committed entries, while any log channel has members. */
    struct ev_loop *loop;  /* The one loop every IRC connection lives on. */
    int64_t started_ms;
    bool log_channels; /* --irc-log-channels: #logs-* and LogBot exist; else a plain server. */
    int max_users;     /* Most registered clients at once, for 265/266. */
    const char *tags;  /* The handled line's IRCv3 tags (without '@'), or NULL; during it only. */
};

extern struct irc_state irc;

/* irc.c: output. Lines are cut to IRC's 512-byte limit. */
void irc_send(struct irc_client *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void irc_numeric(struct irc_client *cl, int num, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void irc_send_raw(struct irc_client *cl, const char *line, size_t len);
/* As irc_send_raw for a line that starts with IRCv3 tags (allowed past 512 bytes). */
void irc_send_tagged(struct irc_client *cl, const char *line, size_t len);
/* Queue complete CRLF-terminated lines as they are (the log stream's hot path). */
void irc_send_wire(struct irc_client *cl, const char *bytes, size_t len);
/* Drop cl with "SendQ exceeded": it cannot keep up with what it is sent. */
void irc_sendq_exceeded(struct irc_client *cl);

/* irc.c: names. Case-mapped (rfc1459) comparison of names. */
bool irc_name_eq(const char *a, const char *b);
/* The client with this nick (case-mapped), or NULL. */
struct irc_client *irc_client_find(const char *nick);
/* Glob match (* and ?) of s against mask, case-mapped as names are. */
bool irc_mask_match(const char *mask, const char *s);
/* The client's member prefix in ch: "@", "+", "" or with multi-prefix "@+". */
const char *irc_member_prefix(const struct irc_client *to, const struct irc_member *m);

/* irc_login.c: whether n is a valid nick (letters, digits, []\\`_^{|}-, not first a digit). */
bool irc_nick_valid(const char *n);
/* Send line to every client that shares a channel with cl (once each) and, if include_self, to
 * cl; only to those with the capability at offset cap_off in struct irc_client when that is
 * not (size_t)-1. */
void irc_tell_neighbours(struct irc_client *cl, const char *line, bool include_self,
                         size_t cap_off);
#define IRC_ANY_CAP ((size_t)-1)

/* irc_login.c: take cl out of every channel and invitation, telling its channels' members
 * "QUIT :reason" if it was registered. The caller closes the connection. */
void irc_client_quit(struct irc_client *cl, const char *reason);

/* irc_channel.c */
struct irc_chan *irc_chan_find(const char *name);
struct irc_chan *irc_chan_get(const char *name); /* Find or create (log channels set up). */
void irc_chan_broadcast(struct irc_chan *ch, struct irc_client *except, const char *line,
                        size_t len);
struct irc_member *irc_chan_member(struct irc_chan *ch, struct irc_client *cl);
/* Take cl off ch; an ordinary channel goes with its last member, a log channel stays. */
void irc_chan_remove(struct irc_chan *ch, struct irc_client *cl);
void irc_chan_free(struct irc_chan *ch); /* Unlink it from irc.chans and free it. */
/* Whether cl may see that ch exists with its members (not +s, or cl is on it). */
bool irc_chan_visible(struct irc_chan *ch, struct irc_client *cl);
/* Whether cl shares at least one channel with o. */
bool irc_shares_chan(struct irc_client *cl, struct irc_client *o);

/* irc_mode.c: whether cl matches ch's ban list and not its exception list. */
bool irc_chan_banned(struct irc_chan *ch, struct irc_client *cl);

/* irc_info.c: the parts of the welcome that commands also send. */
void irc_send_isupport(struct irc_client *cl); /* 005 */
void irc_send_motd(struct irc_client *cl);     /* 375, 372, 376 */

/* irc_stream.c: log channels and the live stream. */
#define IRC_LOGBOT    ":LogBot!log@system" /* LogBot's prefix. */
#define IRC_SPLIT_MAX 4096 /* Text of one entry sent over IRC; longer is cut, with a marker. */

/* One entry formatted for IRC once, then rendered per tag variant. */
struct irc_formatted {
    char chan[IRC_CHANLEN + 1];
    char text[IRC_SPLIT_MAX]; /* "[time] source message" */
    size_t text_len;
    char time_tag[48]; /* time=... */
    char tags[1200];   /* msgid=lc-<id>;+logcaster/... */
    size_t msgid_len;  /* Of "msgid=lc-<id>;" at the start of tags. */
    uint64_t id;       /* The entry's id (the reference of its draft/multiline batch). */
};

#define IRC_MSGID_PREFIX "lc-" /* A log line's msgid is this and its entry id. */
#define IRC_RENDER_CAP   (2 * IRC_SPLIT_MAX + 4 * 1400) /* Room for one rendered entry. */

void irc_logs_init(void);
bool irc_chan_name_is_log(const char *name);
void irc_logs_setup_chan(struct irc_chan *ch); /* Give a new #logs-* channel its filter. */
void irc_logs_set_topic(struct irc_chan *ch);  /* The topic that tells its filter. */
void irc_format_entry(const struct lc_entry *e, const char *chan, struct irc_formatted *f);
/* f as the PRIVMSG line(s) cl gets (the tags it negotiated), with lead ("batch=id", or NULL)
 * first among the tags; CRLF-terminated, into out (cap >= IRC_RENDER_CAP). Returns the bytes. */
size_t irc_render_entry(const struct irc_client *cl, const struct irc_formatted *f,
                        const char *lead, char *out, size_t cap);
void irc_logs_pump(void);                /* Stream entries stored since the last call. */
void irc_logs_tick(int64_t now_mono_ms); /* Report suppressed lines once a second. */
/* A client's share of the stream: tell it about skipped lines once it has caught up, or drop
 * it (SendQ) when it has been behind for IRC_STREAM_BEHIND_MS. True if it was dropped. */
bool irc_logs_client_tick(struct irc_client *cl, int64_t now_mono_ms);
void irc_logs_chan_free(struct irc_chan *ch); /* The channel's pump buffers. */
/* Send cl the channel's last n entries (on the query pool; the stream resumes for cl once the
 * replay caught up). */
void irc_logs_replay(struct irc_client *cl, struct irc_chan *ch, int n);
/* cl left ch (or, with ch NULL, the server): drop its replays. */
void irc_logs_replay_cancel(struct irc_chan *ch, struct irc_client *cl);
void irc_logs_replays_free(void);
void irc_logbot_free(void); /* Cancel the !queries still running. */
/* An answer for cl started or ended on the query pool: cl's input waits while any runs. */
void irc_client_wait(struct irc_client *cl, bool start);
void irc_logbot_client_gone(struct irc_client *cl); /* Its !queries answer without it. */

/* irc_history.c: CHATHISTORY's answers run on the query pool and go out paced by the
 * client's output queue. continue: send more of cl's answer if it has room (on resume and
 * tick). cancel: cl is leaving; drop its answer. free: at shutdown. */
#define IRC_HISTORY_MAX 1000 /* ISUPPORT CHATHISTORY=: the most entries one command returns. */
void irc_history_continue(struct irc_client *cl);
void irc_history_cancel(struct irc_client *cl);
void irc_history_free(void);

/* irc_logbot.c: a !command sent to target (a log channel, or "LogBot" in private). */
void irc_logbot_command(struct irc_client *cl, const char *target, const char *text);

/* The command handlers, one family per file, called only from the table in irc.c once the
 * client may send the command and has given at least its minimum number of parameters. argv
 * holds the parameters, the trailing one last; it points into the received line, which the
 * handler may change and must not keep. */
void irc_cmd_cap(struct irc_client *cl, int argc, char **argv);
void irc_cmd_pass(struct irc_client *cl, int argc, char **argv);
void irc_cmd_nick(struct irc_client *cl, int argc, char **argv);
void irc_cmd_user(struct irc_client *cl, int argc, char **argv);
void irc_cmd_ping(struct irc_client *cl, int argc, char **argv);
void irc_cmd_pong(struct irc_client *cl, int argc, char **argv);
void irc_cmd_quit(struct irc_client *cl, int argc, char **argv);
void irc_cmd_join(struct irc_client *cl, int argc, char **argv);
void irc_cmd_part(struct irc_client *cl, int argc, char **argv);
void irc_cmd_topic(struct irc_client *cl, int argc, char **argv);
void irc_cmd_names(struct irc_client *cl, int argc, char **argv);
void irc_cmd_list(struct irc_client *cl, int argc, char **argv);
void irc_cmd_kick(struct irc_client *cl, int argc, char **argv);
void irc_cmd_invite(struct irc_client *cl, int argc, char **argv);
void irc_cmd_mode(struct irc_client *cl, int argc, char **argv);
void irc_cmd_away(struct irc_client *cl, int argc, char **argv);
void irc_cmd_privmsg(struct irc_client *cl, int argc, char **argv);
void irc_cmd_notice(struct irc_client *cl, int argc, char **argv);
void irc_cmd_tagmsg(struct irc_client *cl, int argc, char **argv);
void irc_cmd_batch(struct irc_client *cl, int argc, char **argv);
void irc_cmd_who(struct irc_client *cl, int argc, char **argv);
void irc_cmd_whois(struct irc_client *cl, int argc, char **argv);
void irc_cmd_userhost(struct irc_client *cl, int argc, char **argv);
void irc_cmd_ison(struct irc_client *cl, int argc, char **argv);
void irc_cmd_lusers(struct irc_client *cl, int argc, char **argv);
void irc_cmd_motd(struct irc_client *cl, int argc, char **argv);
void irc_cmd_version(struct irc_client *cl, int argc, char **argv);
void irc_cmd_time(struct irc_client *cl, int argc, char **argv);
void irc_cmd_info(struct irc_client *cl, int argc, char **argv);
void irc_cmd_oper(struct irc_client *cl, int argc, char **argv);
void irc_cmd_kill(struct irc_client *cl, int argc, char **argv);
void irc_cmd_wallops(struct irc_client *cl, int argc, char **argv);
void irc_cmd_whowas(struct irc_client *cl, int argc, char **argv);
void irc_cmd_servlist(struct irc_client *cl, int argc, char **argv);
void irc_cmd_squery(struct irc_client *cl, int argc, char **argv);

void irc_cmd_setname(struct irc_client *cl, int argc, char **argv);
void irc_cmd_authenticate(struct irc_client *cl, int argc, char **argv);
void irc_cmd_monitor(struct irc_client *cl, int argc, char **argv);
void irc_cmd_help(struct irc_client *cl, int argc, char **argv);
void irc_cmd_chathistory(struct irc_client *cl, int argc, char **argv);

/* irc_message.c: a user message's "time=...Z" tag and a msgid unique in this server's life. */
void irc_message_stamp(char *time_tag, size_t tcap, char *msgid, size_t mcap);

/* irc_multiline.c: a line from a client with a multiline batch open: true if it was a line of
 * that batch (collected, or refused with FAIL), false for an ordinary command. free: forget
 * the open batch (at close). */
bool irc_mline_line(struct irc_client *cl, struct irc_msg *m);
void irc_mline_free(struct irc_client *cl);

/* irc_sasl.c: forget a connection's SASL state (at close). */
void irc_sasl_free(struct irc_client *cl);

/* irc_oper.c: whether name and password are the --irc-oper pair (compared in constant time). */
bool irc_oper_matches(const char *name, const char *password);

/* irc_monitor.c: cl came online (registered or took this nick) or went offline (quit or left
 * the nick): tell those who MONITOR the nick (730/731). */
void irc_monitor_online(struct irc_client *cl);
void irc_monitor_offline(struct irc_client *cl, const char *old_nick);
/* Send line to the extended-monitor clients (with the capability at cap_off) that MONITOR cl
 * and share no channel with it (those heard it as neighbours). */
void irc_monitor_notify(struct irc_client *cl, const char *line, size_t cap_off);
void irc_monitor_free(struct irc_client *cl);

/* irc_label.c: labeled-response. The dispatcher starts a capture before a command that carries
 * a label (from a client with the capability) and ends it after: what the command sent to that
 * client then goes out labeled, as one line, as a labeled-response batch, or as an ACK. While
 * a capture is on, irc_label_bypass(true) lets a line through unlabeled (a message to oneself,
 * as its recipient). */
void irc_label_begin(struct irc_client *cl, const char *tags, const char *command);
void irc_label_end(void);
bool irc_label_capturing(const struct irc_client *cl);
void irc_label_capture(const char *line, size_t len);
void irc_label_bypass(bool on);
/* The label of cl's command being captured, into out ("" for none), and the capture ends
 * without an answer of its own: for a command answered later (CHATHISTORY), which puts the
 * label on its batch. Lines captured so far go out unlabeled. */
void irc_label_detach(const struct irc_client *cl, char *out, size_t cap);
/* A fresh batch reference ("b1f3a…"), unique in this server's life. */
void irc_batch_id(char *out, size_t cap);
/* The value of tag name in a raw tags string (client form, not unescaped), into out; false when
 * absent. */
bool irc_tag_get(const char *tags, const char *name, char *out, size_t cap);

/* irc_oper.c: remember a registered client's nick for WHOWAS as it quits or changes nick. */
void irc_whowas_remember(const struct irc_client *cl);

#endif
