# bench/qlines.awk - the lines of bench/query.sh: n log lines of about 120 bytes, the same for a
# given n and seed (mawk or gawk; about 1 M lines/s per core with mawk).
#
# usage: awk -v n=5000000 -v seed=1 -f bench/qlines.awk >lines.log
#
#   2026-12-07T02:13:53Z api-02 WARN http[4711]: retry 2 of 5 calling db-03 after reset
#       rid=00196e6a user=04217 latency_ms=1533           (one line; wrapped here)
#
# Every line carries rid=%08x (its line number from 0, in hex, so each rid is in exactly one
# line), user= five random digits and latency_ms= a random 1..2000. Levels are mixed about 70%
# INFO, 15% DEBUG, 10% WARN, 5% ERROR, written in upper case as the third word, where the
# server's level detection finds them; no lower-case level word (error, warn, ...) and no other
# upper-case one appears, so `rg ' ERROR '` counts what `COUNT level:ERROR` does. Of the
# messages, one in ten says "timeout", one in ten "retry", and one in ten both. The time stamps
# span one hour in order; the server stores plain lines with their arrival time anyway.
BEGIN {
    if (n == "")
        n = 5000000;
    srand(seed == "" ? 1 : seed);
    nh = split("web-01 web-02 web-03 web-04 api-01 api-02 db-01 db-02 cache-01 worker-07", host, " ");
    np = split("/api/v1/users /api/v1/orders /api/v2/search /login /api/v1/carts /healthz", path, " ");
    na = split("http billing auth scheduler cache", app, " ");
    for (i = 0; i < n; i++) {
        s = int(i * 3600 / n);
        r = rand() * 100;
        lv = r < 70 ? "INFO" : r < 85 ? "DEBUG" : r < 95 ? "WARN" : "ERROR";
        m = int(rand() * 10);
        if (m < 4)
            msg = sprintf("GET %s/%d 200", path[int(rand() * np) + 1], int(rand() * 100000));
        else if (m == 4)
            msg = sprintf("upstream timeout after %dms calling payment-svc", int(rand() * 5000) + 100);
        else if (m == 5)
            msg = sprintf("retry %d of 5 calling db-%02d after reset", int(rand() * 5) + 1, int(rand() * 8));
        else if (m == 6)
            msg = sprintf("retry %d of 5 after timeout from cache-%02d", int(rand() * 5) + 1, int(rand() * 8));
        else if (m == 7)
            msg = sprintf("cache lookup shard=%d hit ratio %d%%", int(rand() * 64), int(rand() * 100));
        else if (m == 8)
            msg = sprintf("job %08x finished items=%d", int(rand() * 2147483647), int(rand() * 1000));
        else
            msg = sprintf("session refreshed region=eu-west-%d", int(rand() * 3) + 1);
        printf "2026-12-07T02:%02d:%02dZ %s %s %s[%d]: %s rid=%08x user=%05d latency_ms=%d\n", \
            int(s / 60), s % 60, host[int(rand() * nh) + 1], lv, \
            app[int(rand() * na) + 1], int(rand() * 30000) + 1000, msg, i, \
            int(rand() * 100000), int(rand() * 2000) + 1;
    }
}
