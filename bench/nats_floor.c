/* nats_floor.c - what the nats-servers alone cost for the bytes a cluster publishes: the floor
 * under LogCaster's cluster ingest on a machine.
 *
 * Publishes MSGS messages of BYTES random (incompressible) bytes, asynchronously with at most
 * INFLIGHT unconfirmed, round robin over STREAMS file-storage streams of REPLICAS replicas,
 * each message with a Nats-Msg-Id as LogCaster's publisher sets them (publish.c, link.c: the
 * same stream settings), and waits for every confirmation. Prints one line:
 *   nats-floor: messages=N bytes=N seconds=S MB/s=R msgs/s=R client_cpu=S
 * The streams (named "floor-<pid>-N") are deleted at the end. bench/cluster.sh runs it against
 * the nats-servers of its cluster and reads their CPU time around it.
 *
 * usage: nats-floor URLS STREAMS REPLICAS BYTES MSGS INFLIGHT
 * Built by `make bench` (build/rel/bench/nats-floor). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

static _Atomic long acked, failed;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
    (void)js;
    (void)arg;
    if (pa && !pae)
        atomic_fetch_add(&acked, 1);
    else
        atomic_fetch_add(&failed, 1);
    natsMsg_Destroy(msg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int die(const char *what, natsStatus s)
{
    fprintf(stderr, "nats-floor: %s: %s\n", what, natsStatus_GetText(s));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: nats-floor URLS STREAMS REPLICAS BYTES MSGS INFLIGHT\n");
        return 2;
    }
    const char *urls = argv[1];
    int nstreams = atoi(argv[2]), replicas = atoi(argv[3]);
    long bytes = atol(argv[4]), msgs = atol(argv[5]), inflight = atol(argv[6]);
    if (nstreams < 1 || nstreams > 64 || replicas < 1 || bytes < 1 || bytes > (8 << 20) ||
        msgs < 1 || inflight < 1) {
        fprintf(stderr, "nats-floor: STREAMS 1..64, REPLICAS >= 1, BYTES 1..8 MiB, MSGS and "
                        "INFLIGHT >= 1\n");
        return 2;
    }
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    const char *servers[16];
    int nservers = 0;
    char *list = strdup(urls), *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u && nservers < 16; u = strtok_r(NULL, ",", &save))
        servers[nservers++] = u;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, servers, nservers);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, o);
    if (s != NATS_OK)
        return die("connect", s);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.MaxPending = inflight;
    jo.PublishAsync.StallWait = 60000; /* A full window waits for room, it does not fail. */
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
        return die("jetstream", s);

    char names[64][64], subjects[64][64];
    for (int i = 0; i < nstreams; i++) {
        snprintf(names[i], sizeof(names[i]), "floor-%d-%d", (int)getpid(), i);
        snprintf(subjects[i], sizeof(subjects[i]), "floor.%d.%d", (int)getpid(), i);
        const char *subj[1] = {subjects[i]};
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = names[i];
        sc.Subjects = subj;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Replicas = replicas;
        sc.Duplicates = (int64_t)120 * 1000 * 1000 * 1000;
        sc.MaxMsgSize = 8 << 20;
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        if ((s = js_AddStream(&si, js, &sc, NULL, &jerr)) != NATS_OK)
            return die("add stream", s);
        jsStreamInfo_Destroy(si);
    }

    char *payload = malloc((size_t)bytes);
    if (!payload)
        return die("payload", NATS_NO_MEMORY);
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (long i = 0; i < bytes; i++) { /* xorshift: incompressible, as compressed batches are */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        payload[i] = (char)(x >> 24);
    }
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < msgs; i++) {
        natsMsg *m = NULL;
        char id[32];
        snprintf(id, sizeof(id), "%d-%ld", (int)getpid(), i);
        s = natsMsg_Create(&m, subjects[i % nstreams], NULL, payload, (int)bytes);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        if (s == NATS_OK)
            s = js_PublishMsgAsync(js, &m, NULL);
        if (m)
            natsMsg_Destroy(m);
        if (s != NATS_OK)
            return die("publish", s);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
        return die("waiting for confirmations", s);
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    printf("nats-floor: messages=%ld bytes=%ld seconds=%.3f MB/s=%.1f msgs/s=%.0f "
           "client_cpu=%.2f failed=%ld\n",
           atomic_load(&acked), atomic_load(&acked) * bytes, secs,
           (double)atomic_load(&acked) * (double)bytes / secs / 1e6,
           (double)atomic_load(&acked) / secs, cpu, atomic_load(&failed));
    fflush(stdout);
    for (int i = 0; i < nstreams; i++) {
        jsErrCode jerr = 0;
        js_DeleteStream(js, names[i], NULL, &jerr);
    }
    free(payload);
    free(list);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return atomic_load(&failed) ? 1 : 0;
}
