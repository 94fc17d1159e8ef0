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
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "proto/irc.h"
#include "proto/protocols.h"
#include "store/store.h"

/* Create the data directory and lock it, so two servers never share one. */
static int lock_data_dir(const char *dir)
{
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "logcasterd: cannot create data directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "logcasterd: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "logcasterd: data directory %s is in use by another logcasterd\n", dir);
        close(fd);
        return -1;
    }
    return fd; /* Held open (and locked) until exit. */
}

int main(int argc, char **argv)
{
    struct config cfg;
    config_defaults(&cfg);
    int r = config_parse(&cfg, argc, argv);
    if (r != 0)
        return r > 0 ? 0 : 2;
    log_verbosity = cfg.verbosity;
    /* Megabyte buffers (pending chunks, cached blocks) come and go on different threads; mapped
     * directly, their memory goes back to the system when freed instead of fragmenting the
     * heap, so the process size follows --memory-limit. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    /* Writes to a vanished peer must return EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM are taken synchronously by this thread; reactor threads inherit the
     * blocked mask and never see them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    int lock_fd = lock_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        return 1;
    struct store_config scfg = {
        .data_dir = cfg.data_dir,
        .cache_size = cfg.memory_limit,
        .fsync = (enum fsync_policy)cfg.fsync_policy,
        .fsync_interval_ms = cfg.fsync_interval_ms,
        .segment_size = cfg.segment_size,
        .compression_level = cfg.compression_level,
        .retention_size = cfg.retention_size,
        .retention_age_ms = cfg.retention_age_ms,
        .retention_min_free = cfg.retention_min_free,
    };
    struct store *store = store_open(&scfg);
    if (!store) {
        fprintf(stderr, "logcasterd: cannot open the store\n");
        return 1;
    }
    irc_init(store, &cfg);
    struct listener_spec listeners[4 + CONFIG_MAX_LISTEN] = {
        {"log", NULL, cfg.log_port, &proto_ingest, proto_pick},
        {"query", NULL, cfg.query_port, &proto_query, proto_pick},
        {"irc", NULL, cfg.irc_port, &proto_irc, proto_pick},
        {"http", NULL, cfg.http_port, &proto_http, proto_pick},
    };
    size_t nlisteners = 4;
    for (int i = 0; i < cfg.nlisten; i++) {
        const struct listen_extra *l = &cfg.listen[i];
        const struct proto *p = strcmp(l->role, "query") == 0  ? &proto_query
                                : strcmp(l->role, "irc") == 0  ? &proto_irc
                                : strcmp(l->role, "http") == 0 ? &proto_http
                                                               : &proto_ingest;
        listeners[nlisteners++] = (struct listener_spec){l->role, l->addr, l->port, p, proto_pick};
    }
    struct server *srv = server_start(&cfg, store, listeners, nlisteners);
    if (!srv) {
        store_close(store);
        return 1;
    }
    log_info("logcasterd started: %d threads, cache %zu MiB, data dir %s, fsync %s", cfg.threads,
             cfg.memory_limit >> 20, cfg.data_dir,
             cfg.fsync_policy == 0   ? "always"
             : cfg.fsync_policy == 1 ? "batch"
                                     : "never");

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    log_info("received %s: finishing received data and shutting down", strsignal(sig));
    server_stop(srv);
    struct store_stats st;
    store_get_stats(store, &st);
    log_info("stopped cleanly; %llu entries held", (unsigned long long)st.entries);
    irc_logs_free();
    store_close(store); /* Before server_free: the store's writer signals the reactors' fds. */
    server_free(srv);
    close(lock_fd);
    return 0;
}
