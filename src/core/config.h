/* config.h - every setting of logcasterd, read from the command line and an INI file.
 *
 * Each option is described once, in the option table (config_table.c): its flag and INI key,
 * its type, the field it sets, its default, its range and its help text. That table drives
 * the flags, the configuration file, the defaults, --help and the --check-config print-out;
 * config.c is the machinery that reads it. Other modules see only struct config. */
#ifndef LC_CONFIG_H
#define LC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/policy.h"

#define LC_VERSION "0.2.0"

#define CONFIG_MAX_LISTEN 4
#define CONFIG_MAX_OPTS   100 /* Room in the option table (config.c asserts it fits). */

struct config {
    const char *bind_addr;      /* Address every listener binds to. */
    int log_port;               /* Ingest listener; -1 = disabled. */
    int query_port;             /* Query listener; -1 = disabled. */
    int irc_port;               /* IRC listener; -1 = disabled. */
    int http_port;              /* HTTP listener (API and web console); -1 = disabled. */
    size_t http_max_body;       /* Largest request body accepted. */
    size_t http_max_header;     /* Largest request head (request line and headers). */
    int http_request_timeout_s; /* A request must arrive whole within this time. */
    /* Extra listeners from --listen ADDR:PORT=ROLE. */
    struct listen_extra {
        char addr[64];
        int port;
        char role[8]; /* auto, log, query, irc, http */
        bool tls;     /* ROLE+tls: TLS connections only. */
    } listen[CONFIG_MAX_LISTEN];
    const char *tls_cert, *tls_key; /* PEM files; TLS is offered on every listener when set. */
    int nlisten;
    struct policy policy[ROLE_COUNT]; /* Per listener role: --log-allow, --query-token, ... */
    const char *config_file;          /* --config: read before the other flags apply. */
    bool check_config;                /* --check-config: validate, print, exit. */
    const char *irc_server_name;      /* The IRC server name (prefix of its messages). */
    int irc_stream_rate;              /* Lines per second per log channel before suppression. */
    int irc_replay;                   /* Entries replayed on joining a log channel. */
    int irc_log_channels;             /* 1: #logs-* channels and LogBot; 0: a plain server. */
    const char *irc_oper;             /* "NAME:PASSWORD" of the one IRC operator, or NULL. */
    const char *data_dir;             /* Created if missing; holds the lock file. */
    int threads;                      /* Reactor threads. */
    size_t max_line;                  /* Longest accepted line in bytes. */
    bool multiline;                   /* Join continuation lines to the entry before them. */
    const char *multiline_pattern;    /* PCRE2: more continuation lines (NULL: indented only). */
    int multiline_window_ms;          /* A continuation must arrive within this. */
    int time_from_line;               /* 1: a leading time in the text is the entry's time. */
    int64_t time_back_ms;             /* That time may lie this long before the arrival, */
    int64_t time_ahead_ms;            /* and this long after it; else the arrival time counts. */
    size_t memory_limit;              /* Cache of decompressed blocks, bytes. */
    int query_threads;                /* Query pool threads. */
    int query_concurrency;            /* Queries running at once; more wait. */
    int64_t query_timeout_ms;         /* A query ends with an error after this; 0 = never. */
    size_t query_memory;              /* Memory one query's pipes may use, bytes. */
    int fsync_policy;                 /* enum fsync_policy (store.h). */
    int fsync_interval_ms;            /* Group-commit interval of --fsync=batch. */
    size_t segment_size;              /* Seal segments at this size. */
    int codec;                        /* FRAME_LZ4 or FRAME_ZSTD (store/frame.h). */
    int compression_level;            /* Level for new frames, 0 = none. */
    int archive_level;                /* Sealed segments re-compressed at this level; 0 = no. */
    uint64_t retention_size;          /* Total bytes of segments kept; 0 = unlimited. */
    int64_t retention_age_ms;         /* 0 = keep forever. */
    uint64_t retention_min_free;      /* Free disk space always left. */
    size_t out_limit;                 /* Unsent reply bytes per connection before reading pauses. */
    int max_connections;  /* Across all listeners; more are accepted and closed at once. */
    int idle_timeout_s;   /* Close connections silent this long; 0 = never. */
    int line_timeout_s;   /* A started line must end within this; 0 = no limit. */
    int backlog;          /* listen() backlog. */
    bool reuseport;       /* SO_REUSEPORT on listeners. */
    int keepalive_idle_s; /* TCP keepalive: idle time before probes; 0 disables keepalive. */
    int keepalive_interval_s;
    int keepalive_count;
    int user_timeout_ms;    /* TCP_USER_TIMEOUT; 0 = kernel default. */
    int rcvbuf, sndbuf;     /* SO_RCVBUF / SO_SNDBUF; 0 = kernel default (autotuning). */
    int shutdown_timeout_s; /* Longest graceful-shutdown flush. */
    int verbosity;
    /* The cluster (src/cluster): set when --cluster names NATS servers. */
    const char *cluster_urls;        /* "nats://h1:4222,nats://h2:4222"; NULL: a single node. */
    const char *node_name;           /* This node's name in the cluster (default: the host name). */
    const char *cluster_name;        /* Prefix of every stream, bucket and subject. */
    int cluster_partitions;          /* Fixed when the cluster is first created. */
    int cluster_replicas;            /* JetStream copies of every stream. */
    int cluster_copies;              /* Nodes that keep each partition queryable. */
    int64_t cluster_ack_timeout_ms;  /* A batch JetStream has not confirmed by then fails. */
    int64_t cluster_missing_wait_ms; /* A new copy's wait for what its stream let go. */
    const char *cluster_creds;       /* NATS credentials file. */
    const char *cluster_user, *cluster_password;
    const char *cluster_tls_ca, *cluster_tls_cert, *cluster_tls_key;
    /* Which options the file or the flags set: bit (1 << role) of the option's slot (bit 0
     * for options that are not per role). Kept by config.c, for rules such as "a rate set
     * without a burst gets the burst of its rate". */
    uint8_t given[CONFIG_MAX_OPTS];
};

/* Every option's default (the option table's). */
void config_defaults(struct config *c);

/* Read --config FILE (if given), then the other flags, into c. Returns 0 to run, 1 when
 * --help/--version was printed, or -1 after printing each error (one clear line that names
 * the option, with FILE:LINE for the file's) to stderr. Strings in c point into argv or into
 * copies kept for the life of the process. */
int config_parse(struct config *c, int argc, char **argv);

/* The effective configuration, INI-style, one line per option of the table, secrets not shown
 * (for --check-config). */
void config_print(const struct config *c, FILE *out);

#endif
