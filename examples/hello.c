/* hello.c - the smallest program that logs to LogCaster with liblogcaster.
 *
 *     cc hello.c -llogcaster -o hello
 *     ./hello                                   # logcaster://127.0.0.1:9999
 *     ./hello 'logcaster://logs.example:9999?token=secret'
 *
 * It logs a few lines, waits until the server has stored them, and says how it went. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "logcaster.h"

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : NULL; /* NULL: $LOGCASTER_URL or the default. */
    lc_client *lc = lc_open(url);
    if (!lc) {
        fprintf(stderr, "hello: bad url: %s\n", strerror(errno));
        return 64;
    }
    lc_log(lc, LC_LOG_INFO, "hello from liblogcaster");
    for (int i = 1; i <= 3; i++)
        lc_log(lc, LC_LOG_DEBUG, "counting %d of %d", i, 3);
    lc_log(lc, LC_LOG_WARN, "this line was logged at level %s", lc_level_str(LC_LOG_WARN));

    int rc = lc_flush(lc, 5000); /* Wait up to 5 s for the server to store them. */
    if (rc < 0)
        fprintf(stderr, "hello: not stored yet: %s\n", lc_last_error(lc));
    struct lc_counters c;
    lc_counters(lc, &c);
    printf("logged %llu, stored %llu\n", (unsigned long long)c.logged, (unsigned long long)c.acked);
    lc_close(lc);
    return rc == 0 ? 0 : 1;
}
