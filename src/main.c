/* main.c - logcasterd: parse flags, open the store, start the listeners, wait for a signal,
 * shut down gracefully. Wiring only. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/tls.h"
#include "ingest/fanout.h"
#include "ingest/pipeline.h"
#include "irc/irc.h"
#include "proto/protocols.h"
#include "query/pool.h"
#include "query/run.h"
#include "store/store.h"

/* mkdir -p for the parents of dir. The parents are made owner-only (0700): they exist only to
 * hold the data directory, and nobody else needs to look inside. */
static int make_parents(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path[0] ? strchr(path + 1, '/') : NULL; p; p = strchr(p + 1, '/')) {
        if (p[-1] == '/' || p[1] == '\0')
            continue; /* "a//b" and a trailing "/" name no new directory. */
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* Create the data directory (and its missing parents) and lock it, so two servers never share
 * one. */
static int lock_data_dir(const char *dir)
{
    if (make_parents(dir) < 0 || (mkdir(dir, 0750) < 0 && errno != EEXIST)) {
        fprintf(stderr, "logcasterd: cannot create data directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr,
                "logcasterd: data directory %s is not usable: cannot open its LOCK file: %s\n", dir,
                strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "logcasterd: data directory %s is in use by another logcasterd\n", dir);
        close(fd);
        return -1;
    }
    /* A directory we may not write to can still hold a writable LOCK from an earlier run:
     * say so here in one line, rather than through the store's first failed segment. */
    if (access(dir, W_OK | X_OK) < 0) {
        fprintf(stderr, "logcasterd: data directory %s is not writable: %s\n", dir,
                strerror(errno));
        close(fd);
        return -1;
    }
    return fd; /* Held open (and locked) until exit. */
}

/* The address a role listens on: --bind, or loopback when it requires authentication but has
 * no secret to check (secure by default: nobody else can reach it unauthenticated). */
static const char *role_bind(const struct config *cfg, enum policy_role role, const char *name)
{
    const struct policy *p = &cfg->policy[role];
    if (!p->auth || p->ntokens > 0)
        return NULL;
    const char *lo = strchr(cfg->bind_addr, ':') ? "::1" : "127.0.0.1";
    if (strcmp(cfg->bind_addr, lo) != 0 && strcmp(cfg->bind_addr, "localhost") != 0)
        log_warn("%s: authentication is required but no --%s-token is set: listening on %s only",
                 name, name, lo);
    return lo;
}

/* SIGHUP: read the configuration again (file and flags) and apply the access policies. Other
 * settings need a restart; the log says so when they changed. */
static void reload(int argc, char **argv, const struct config *running)
{
    struct config fresh;
    config_defaults(&fresh);
    if (config_parse(&fresh, argc, argv) != 0) {
        log_error("reload: the configuration has errors (see above); keeping the current one");
        return;
    }
    policy_set(fresh.policy);
    if (fresh.log_port != running->log_port || fresh.query_port != running->query_port ||
        fresh.irc_port != running->irc_port || fresh.http_port != running->http_port ||
        strcmp(fresh.data_dir, running->data_dir) != 0 || fresh.threads != running->threads)
        log_warn("reload: ports, data dir and threads change only with a restart");
    log_info("reload: access policies applied%s%s", running->config_file ? " from " : "",
             running->config_file ? running->config_file : "");
}

int main(int argc, char **argv)
{
    log_init(); /* First: it decides how every later line on stderr looks. */
    struct config cfg;
    config_defaults(&cfg);
    int r = config_parse(&cfg, argc, argv);
    if (r != 0)
        return r > 0 ? 0 : 2;
    if (cfg.check_config) {
        if (cfg.tls_cert && tls_init(cfg.tls_cert, cfg.tls_key) < 0)
            return 2;
        tls_cleanup();
        config_print(&cfg, stdout);
        printf("\nconfiguration OK\n");
        return 0;
    }
    log_verbosity = cfg.verbosity;
    policy_set(cfg.policy);
    if (cfg.tls_cert && tls_init(cfg.tls_cert, cfg.tls_key) < 0)
        return 2;
    /* Megabyte buffers (pending chunks, cached blocks) come and go on different threads; mapped
     * directly, their memory goes back to the system when freed instead of fragmenting the
     * heap, so the process size follows --memory-limit. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    /* Every connection is a descriptor: take the hard limit (10,000 idle clients must fit). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    /* Writes to a vanished peer must return EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM are taken synchronously by this thread; reactor threads inherit the
     * blocked mask and never see them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    int lock_fd = lock_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        return 1;
    /* A single node writes to its own store; a cluster member to JetStream, and its store is
     * the partitions it holds (src/cluster). */
    struct store *store = NULL;
    if (cfg.cluster_urls) {
        if (cluster_start(&cfg) < 0)
            return 1;
        ingest_init_sink(cluster_sink_ops(), cluster_sink());
        ingest_live_external(); /* Live entries come back from the streams. */
    } else {
        struct store_config scfg = {
            .data_dir = cfg.data_dir,
            .cache_size = cfg.memory_limit,
            .fsync = (enum fsync_policy)cfg.fsync_policy,
            .fsync_interval_ms = cfg.fsync_interval_ms,
            .segment_size = cfg.segment_size,
            .codec = cfg.codec,
            .compression_level = cfg.compression_level,
            .archive_level = cfg.archive_level,
            .retention_size = cfg.retention_size,
            .retention_age_ms = cfg.retention_age_ms,
            .retention_min_free = cfg.retention_min_free,
        };
        store = store_open(&scfg);
        if (!store) {
            fprintf(stderr, "logcasterd: cannot open the store\n");
            return 1;
        }
        ingest_init(store);
    }
    ingest_set_line_time(cfg.time_from_line, cfg.time_back_ms, cfg.time_ahead_ms);
    protocols_set_store(store);
    qrun_set_memory_limit(cfg.query_memory);
    struct qpool_cfg qcfg = {.threads = cfg.query_threads,
                             .concurrency = cfg.query_concurrency,
                             .timeout_ms = cfg.query_timeout_ms};
    if (qpool_start(&qcfg) < 0) {
        fprintf(stderr, "logcasterd: cannot start the query threads\n");
        cluster_stop();
        store_close(store);
        return 1;
    }
    irc_init(store, &cfg);
    struct listener_spec listeners[4 + CONFIG_MAX_LISTEN] = {
        {"log", role_bind(&cfg, ROLE_LOG, "log"), cfg.log_port, &proto_ingest, proto_pick, ROLE_LOG,
         false, ingest_datagram},
        {"query", role_bind(&cfg, ROLE_QUERY, "query"), cfg.query_port, &proto_query, proto_pick,
         ROLE_QUERY, false, NULL},
        {"irc", role_bind(&cfg, ROLE_IRC, "irc"), cfg.irc_port, &proto_irc, proto_pick, ROLE_IRC,
         false, NULL},
        {"http", role_bind(&cfg, ROLE_HTTP, "http"), cfg.http_port, &proto_http, proto_pick,
         ROLE_HTTP, false, NULL},
    };
    size_t nlisteners = 4;
    static const struct proto *const role_protos[ROLE_COUNT] = {&proto_ingest, &proto_query,
                                                                &proto_irc, &proto_http};
    for (int i = 0; i < cfg.nlisten; i++) {
        const struct listen_extra *l = &cfg.listen[i];
        int role = strcmp(l->role, "query") == 0  ? ROLE_QUERY
                   : strcmp(l->role, "irc") == 0  ? ROLE_IRC
                   : strcmp(l->role, "http") == 0 ? ROLE_HTTP
                                                  : ROLE_LOG;
        /* An explicit address is the operator's choice, even for a role without a secret. */
        listeners[nlisteners++] = (struct listener_spec){
            l->role, l->addr, l->port, role_protos[role], proto_pick, role, l->tls, NULL};
    }
    struct server *srv = server_start(&cfg, listeners, nlisteners);
    if (!srv) {
        qpool_stop();
        cluster_stop();
        store_close(store);
        return 1;
    }
    /* The absolute path, so the log says where the data is whatever directory we started in. */
    char *data_abs = realpath(cfg.data_dir, NULL);
    log_info("logcasterd started: %d threads, cache %zu MiB, data dir %s, fsync %s", cfg.threads,
             cfg.memory_limit >> 20, data_abs ? data_abs : cfg.data_dir,
             cfg.fsync_policy == 0   ? "always"
             : cfg.fsync_policy == 1 ? "batch"
                                     : "never");
    free(data_abs);

    int sig = 0;
    for (;;) {
        if (sigwait(&stop_signals, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reload(argc, argv, &cfg);
    }
    log_info("received %s: finishing received data and shutting down", strsignal(sig));
    server_stop(srv);
    /* The connections closed, cancelling their queries; LogBot's answers to channels outlive
     * their askers, so IRC goes next; then the pool finishes every cancelled query, before
     * the store they read closes. */
    cluster_quiesce();
    irc_free();
    qpool_stop();
    cluster_stop(); /* After the pool: no query reads a partition any more. */
    struct store_stats st;
    store_get_stats(store, &st);
    log_info("stopped cleanly; %llu entries held", (unsigned long long)st.entries);
    store_close(store); /* Before server_free: the store's writer signals the reactors' fds. */
    server_free(srv);
    close(lock_fd);
    policy_free();
    tls_cleanup();
    return cluster_failed() ? 2 : 0;
}
