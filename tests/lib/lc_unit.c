/* lc_unit.c - unit tests of liblogcaster that need no server: url parsing, argument checks,
 * truncation, the drop counter, and the spill file format (append, take back, reopen, torn
 * and damaged tails, locking, the rewrite at close). Ends with "lc_unit: N passed, N failed". */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lc_internal.h"

static int passed, failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/* A TCP port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_url_defaults(void)
{
    struct lcl_cfg c;
    char err[256];
    unsetenv("LOGCASTER_TOKEN");
    CHECK(lcl_cfg_parse("logcaster://example.org", &c, err, sizeof err) == 0);
    CHECK(strcmp(c.host, "example.org") == 0 && strcmp(c.port, "9999") == 0);
    CHECK(c.queue == 65536 && c.on_full == LCL_DROP && c.connections == 1 && c.window == 8192);
    CHECK(c.connect_timeout_ms == 5000 && c.flush_timeout_ms == 5000);
    CHECK(c.token == NULL && c.spill == NULL);
    lcl_cfg_free(&c);

    CHECK(lcl_cfg_parse("LOGCASTER://10.1.2.3:7000/?token=a%2Fb%3D&queue=10&connections=4"
                        "&window=100&connect_timeout_ms=250&flush_timeout_ms=0&on_full=block",
                        &c, err, sizeof err) == 0);
    CHECK(strcmp(c.host, "10.1.2.3") == 0 && strcmp(c.port, "7000") == 0);
    CHECK(c.token && strcmp(c.token, "a/b=") == 0);
    CHECK(c.queue == 10 && c.connections == 4 && c.window == 100 && c.on_full == LCL_BLOCK);
    CHECK(c.connect_timeout_ms == 250 && c.flush_timeout_ms == 0);
    lcl_cfg_free(&c);

    CHECK(lcl_cfg_parse("logcaster://[::1]:1234?spill=/tmp/x.spill", &c, err, sizeof err) == 0);
    CHECK(strcmp(c.host, "::1") == 0 && strcmp(c.port, "1234") == 0);
    CHECK(c.on_full == LCL_SPILL && strcmp(c.spill, "/tmp/x.spill") == 0);
    lcl_cfg_free(&c);

    setenv("LOGCASTER_TOKEN", "from-env", 1);
    CHECK(lcl_cfg_parse("logcaster://h", &c, err, sizeof err) == 0);
    CHECK(c.token && strcmp(c.token, "from-env") == 0);
    lcl_cfg_free(&c);
    CHECK(lcl_cfg_parse("logcaster://h?token=url", &c, err, sizeof err) == 0);
    CHECK(c.token && strcmp(c.token, "url") == 0); /* The url wins. */
    lcl_cfg_free(&c);
    unsetenv("LOGCASTER_TOKEN");
}

static void test_url_errors(void)
{
    static const char *const bad[] = {
        "",
        "http://h:9999",
        "logcaster://",
        "logcaster://:9999",
        "logcaster://h:",
        "logcaster://h:0",
        "logcaster://h:65536",
        "logcaster://h:12x",
        "logcaster://h:-1",
        "logcaster://h/path",
        "logcaster://h#frag",
        "logcaster://[::1",
        "logcaster://[::1]x",
        "logcaster://bad host",
        "logcaster://h?queue",
        "logcaster://h?queue=0",
        "logcaster://h?queue=abc",
        "logcaster://h?queue=12abc",
        "logcaster://h?queue=-5",
        "logcaster://h?queue=99999999999999999999",
        "logcaster://h?connections=0",
        "logcaster://h?connections=65",
        "logcaster://h?window=0",
        "logcaster://h?connect_timeout_ms=0",
        "logcaster://h?flush_timeout_ms=x",
        "logcaster://h?on_full=maybe",
        "logcaster://h?on_full=spill",
        "logcaster://h?spill=/tmp/s&on_full=drop",
        "logcaster://h?bogus=1",
        "logcaster://h?token=",
        "logcaster://h?token=%zz",
        "logcaster://h?token=%4",
        "logcaster://h?token=a%00b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct lcl_cfg c;
        char err[256];
        int rc = lcl_cfg_parse(bad[i], &c, err, sizeof err);
        if (rc != -EINVAL || !err[0])
            fprintf(stderr, "url '%s' was accepted (rc %d)\n", bad[i], rc);
        CHECK(rc == -EINVAL && err[0]);
        errno = 0;
        lc_client *lc = lc_open(bad[i]);
        CHECK(lc == NULL && errno == EINVAL);
        lc_close(lc);
    }
    struct lcl_cfg c;
    char err[256];
    CHECK(lcl_cfg_parse("logcaster://h?colour=blue", &c, err, sizeof err) == -EINVAL);
    CHECK(strstr(err, "colour") != NULL);
}

static void test_open_env_and_args(void)
{
    char url[64];
    snprintf(url, sizeof url, "logcaster://127.0.0.1:%d?flush_timeout_ms=50", closed_port());
    setenv("LOGCASTER_URL", url, 1);
    lc_client *lc = lc_open(NULL);
    CHECK(lc != NULL);
    CHECK(lc_log(lc, 6, "x") == -EINVAL);
    CHECK(lc_log(lc, -1, "x") == -EINVAL);
    CHECK(lc_log_raw(lc, LC_LOG_INFO, -5, "x", 1) == -EINVAL);
    CHECK(lc_log_raw(lc, LC_LOG_INFO, 0, NULL, 3) == -EINVAL);
    CHECK(lc_log_raw(lc, LC_LOG_INFO, 0, "", 0) == -EINVAL); /* The server refuses those. */
    CHECK(lc_log(lc, LC_LOG_INFO, "%s", "") == -EINVAL);
    CHECK(lc_log_raw(lc, LC_LOG_INFO, 0, "x", 1) == 0);
    CHECK(lc_flush(lc, 0) == -ETIMEDOUT);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(lc_close(lc) == -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(ms < 1000);
    unsetenv("LOGCASTER_URL");
    CHECK(lc_close(NULL) == 0);
    CHECK(strcmp(lc_level_str(LC_LOG_WARN), "WARN") == 0 && strcmp(lc_level_str(9), "?") == 0);
}

/* Queue bound and drop counter: nothing can be sent, so the queue fills and stays full. */
static void test_drop_and_truncation(void)
{
    char url[96];
    snprintf(url, sizeof url, "logcaster://127.0.0.1:%d?queue=5&flush_timeout_ms=0", closed_port());
    lc_client *lc = lc_open(url);
    CHECK(lc != NULL);
    int dropped = 0;
    for (int i = 0; i < 8; i++)
        dropped += lc_log(lc, LC_LOG_INFO, "line %d", i) == -EAGAIN;
    CHECK(dropped == 3);

    struct lc_counters c;
    lc_counters(lc, &c);
    CHECK(c.logged == 8 && c.dropped == 3 && c.queued == 5 && c.acked == 0);
    lc_close(lc);

    /* A message over LC_MAX_MESSAGE is cut at a character boundary. */
    snprintf(url, sizeof url, "logcaster://127.0.0.1:%d?flush_timeout_ms=0", closed_port());
    lc = lc_open(url);
    size_t n = 70001;
    char *big = malloc(n);
    big[0] = 'a'; /* Then 'é' (c3 a9) from byte 1: LC_MAX_MESSAGE (even) is inside one. */
    for (size_t i = 1; i < n; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    CHECK(lc_log_raw(lc, LC_LOG_INFO, 0, big, n) == 0);
    CHECK(lc_log(lc, LC_LOG_INFO, "%s", "short") == 0);
    big[n - 1] = '\0';
    CHECK(lc_log(lc, LC_LOG_INFO, "%s", big) == 0); /* Through the printf path too. */
    lc_counters(lc, &c);
    CHECK(c.truncated == 2 && c.queued == 3);
    pthread_mutex_lock(&lc->mu);
    size_t len0 = 0, len2 = 0;
    struct lcl_rec *r = lc->pending.head; /* Senders take nothing while disconnected. */
    CHECK(r && r->next && r->next->next);
    if (r && r->next && r->next->next) {
        const unsigned char *m = lcl_rec_msg(r, &len0);
        CHECK(len0 == LC_MAX_MESSAGE - 1);
        CHECK(m[len0 - 2] == 0xC3 && m[len0 - 1] == 0xA9); /* Ends with a whole 'é'. */
        CHECK(lcl_rec_level(r) == LC_LOG_INFO);
        lcl_rec_msg(r->next->next, &len2);
        CHECK(len2 == len0);
    }
    pthread_mutex_unlock(&lc->mu);
    free(big);
    lc_close(lc);
}

static struct lcl_rec *rec(int level, int64_t ts, const char *msg)
{
    return lcl_rec_new(level, ts, msg, strlen(msg));
}

static int same(struct lcl_rec *r, int level, int64_t ts, const char *msg)
{
    size_t n;
    const unsigned char *m = lcl_rec_msg(r, &n);
    return lcl_rec_level(r) == level && lcl_rec_ts(r) == ts && n == strlen(msg) &&
           memcmp(m, msg, n) == 0;
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_spill_file(void)
{
    char dir[] = "/tmp/lc_unit.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/spill", dir);
    struct lcl_spill sp, sp2;
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0 && sp.count == 0);
    CHECK(lcl_spill_open(&sp2, path, err, sizeof err) == -EBUSY); /* Locked. */
    CHECK(strstr(err, "in use") != NULL);
    err[0] = '\0';
    const char *msgs[] = {"first", "", "third \x01 line", "fourth"};
    for (int i = 0; i < 4; i++) {
        struct lcl_rec *r = rec(i, 1700000000000 + i, msgs[i]);
        CHECK(lcl_spill_append(&sp, r) == 0);
        free(r);
    }
    CHECK(sp.count == 4);
    struct lcl_list out = {0};
    uint64_t ticket = 10;
    CHECK(lcl_spill_take(&sp, 2, &out, &ticket) == 2 && ticket == 12 && sp.count == 2);
    CHECK(out.n == 2 && same(out.head, 0, 1700000000000, "first") && out.head->ticket == 10);
    CHECK(same(out.tail, 1, 1700000000001, "") && out.tail->ticket == 11);
    lcl_list_free(&out);
    CHECK(lcl_spill_close(&sp, NULL, 0) == 0);

    /* Reopen: the two taken back are not sent again. */
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0 && sp.count == 2 && !err[0]);
    /* Close with records from memory: they go in front. */
    struct lcl_rec *mem[2] = {rec(4, 5, "mem a"), rec(5, 6, "mem b")};
    CHECK(lcl_spill_close(&sp, mem, 2) == 0);
    free(mem[0]);
    free(mem[1]);
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0 && sp.count == 4);
    ticket = 1;
    CHECK(lcl_spill_take(&sp, 100, &out, &ticket) == 4 && sp.count == 0);
    struct lcl_rec *r = out.head;
    CHECK(same(r, 4, 5, "mem a") && same(r->next, 5, 6, "mem b"));
    CHECK(same(r->next->next, 2, 1700000000002, "third \x01 line"));
    CHECK(same(out.tail, 3, 1700000000003, "fourth"));
    lcl_list_free(&out);
    CHECK(size_of(path) == 16); /* Emptied: the file starts again. */

    /* A torn append (the process died in write()) is cut off at the next open. */
    r = rec(2, 7, "whole");
    CHECK(lcl_spill_append(&sp, r) == 0);
    free(r);
    CHECK(lcl_spill_close(&sp, NULL, 0) == 0);
    off_t good = size_of(path);
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(write(fd, "\x20\x00\x00\x00\x01\x02", 6) == 6);
    close(fd);
    err[0] = '\0';
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0 && sp.count == 1);
    CHECK(strstr(err, "6 bytes") != NULL && size_of(path) == good);
    lcl_spill_close(&sp, NULL, 0);

    /* A damaged record: it and what follows are cut off. */
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0);
    r = rec(2, 8, "second");
    CHECK(lcl_spill_append(&sp, r) == 0);
    free(r);
    lcl_spill_close(&sp, NULL, 0);
    fd = open(path, O_RDWR);
    CHECK(pwrite(fd, "X", 1, good + 12) == 1); /* Inside the second record's message. */
    close(fd);
    err[0] = '\0';
    CHECK(lcl_spill_open(&sp, path, err, sizeof err) == 0 && sp.count == 1);
    CHECK(err[0] != '\0' && size_of(path) == good);
    lcl_spill_close(&sp, NULL, 0);

    /* Not a spill file: refused, and left alone. */
    char other[160];
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    fd = open(other, O_WRONLY | O_CREAT, 0600);
    CHECK(write(fd, "dear diary, today I logged", 26) == 26);
    close(fd);
    err[0] = '\0';
    CHECK(lcl_spill_open(&sp, other, err, sizeof err) == -EINVAL && strstr(err, "not a"));
    CHECK(size_of(other) == 26);
    errno = 0;
    char url[256];
    snprintf(url, sizeof url, "logcaster://127.0.0.1:1?spill=%s", other);
    CHECK(lc_open(url) == NULL && errno == EINVAL);
    snprintf(url, sizeof url, "logcaster://127.0.0.1:1?spill=%s/no/such/dir/f", dir);
    CHECK(lc_open(url) == NULL && errno == ENOENT);

    /* Two clients on one spill file: the second is refused. */
    snprintf(url, sizeof url, "logcaster://127.0.0.1:%d?spill=%s&flush_timeout_ms=0", closed_port(),
             path);
    lc_client *a = lc_open(url);
    CHECK(a != NULL);
    errno = 0;
    CHECK(lc_open(url) == NULL && errno == EBUSY);
    lc_close(a);

    unlink(other);
    unlink(path);
    rmdir(dir);
    CHECK(lcl_crc32(0, "123456789", 9) == 0xCBF43926u); /* The standard check value. */
}

int main(void)
{
    test_url_defaults();
    test_url_errors();
    test_open_env_and_args();
    test_drop_and_truncation();
    test_spill_file();
    printf("lc_unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
