#!/usr/bin/env bash
# bench/run.sh - the `make bench` driver: ingest throughput and query latency of logcasterd,
# measured with `logcaster bench` and `logcaster bench-query`.
#
# Sections: ingest (plain and framed lines at each connection count), formats (syslog, JSON
# lines and binary frames at 4 connections, and liblogcaster's lc_bench when it is built),
# queries, HTTP, the durable store at scale, IRC, queries against ripgrep and acknowledgement
# latency under scans (bench/query.sh), the cluster on NATS JetStream (bench/cluster.sh: ingest
# through three nodes beside a single node, queries from a node without data, catch-up after a
# restart; skipped without nats-server), and a summary of every single-node ingest figure.
#
# usage: bench/run.sh BUILD_DIR        (BUILD_DIR holds logcasterd and logcaster)
#
# Every measurement gets a fresh server on ephemeral ports (127.0.0.1, port 0) with an empty
# data dir, so one run's stored data and memory never colour the next, and the peak RSS
# shown is that run's alone. The server is killed on exit, whatever happens.
#
# Environment knobs (defaults in brackets):
#   BENCH_LINES [2000000]        lines per ingest run (the formats section's too)
#   BENCH_CONNECTIONS ["1 4 32"] connection counts for the plain and framed ingest runs
#   BENCH_REPEAT [3]             runs per ingest configuration (and format); the median is shown
#   BENCH_QUERY_LINES [1000000]  entries loaded before the query benchmarks
#   BENCH_QUERY_RUNS [20]        requests per query benchmark
#   BENCH_RG_LINES [5000000]     lines of the ripgrep comparison (bench/query.sh; 0 skips it)
#   BENCH_CLUSTER [1]            0 skips the cluster section (bench/cluster.sh, which has knobs
#                                of its own and runs BENCH_REPEAT times, by default once)
#   LOGCASTERD_ARGS []           extra server options, e.g. "--threads 2"
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:?usage: bench/run.sh BUILD_DIR}
server_bin=$build/logcasterd
client_bin=$build/logcaster
lines=${BENCH_LINES:-2000000}
conns=${BENCH_CONNECTIONS:-1 4 32}
query_lines=${BENCH_QUERY_LINES:-1000000}
query_runs=${BENCH_QUERY_RUNS:-20}
repeat=${BENCH_REPEAT:-3}
read -r -a server_extra <<<"${LOGCASTERD_ARGS:-}"
store_lines=${BENCH_STORE_LINES:-20000000}
run_extra=()
reuse_dir=
rare_word=xyzzy-rare # the word `logcaster bench` puts in one line of every 100000
step_timeout=180     # seconds; no single client command may take longer

for f in "$server_bin" "$client_bin"; do
    [[ -x $f ]] || { echo "bench: $f not found; run make first" >&2; exit 1; }
done

bench_init

echo "LogCaster benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(bench_machine), $build"
echo "Client and server share the machine; the client sends from one epoll thread."
echo "Each ingest run starts a fresh server and sends $lines lines of about 120 bytes; each row"
echo "is the median (by lines/s) of $repeat runs. 'seconds' runs from the first byte until COUNT"
echo "shows every line stored; 'client CPU' is the client's user+sys time in that span."
echo
ingest_header() {
    printf '%-28s %12s %9s %9s %9s %10s %12s\n' "$1" "lines/s" "MB/s" "seconds" "verified" \
        "server RSS" "client CPU"
}

# One ingest configuration: $repeat runs of `logcaster bench ARGS...`, each against a fresh
# server, and one row for the run with the median lines/s. The row is also kept for the
# summary at the end.
summary=()
ingest_row() {
    local label=$1 rows=() res rss cpu_s median lps mbs secs ver
    shift
    for _ in $(seq "$repeat"); do
        start_server
        res=$(client bench "$@") || true
        rss=$(server_peak_mb)
        stop_server
        [[ $res == ingest:* ]] || continue
        cpu_s=$(sed -n 's/.*client cpu user \([0-9.]*\) s sys \([0-9.]*\) s.*/\1 \2/p' \
            "$work/client.err" | awk '{ printf "%.2f", $1 + $2 }')
        rows+=("$(field 'lines/s' "$res") $(field 'MB/s' "$res") $(field seconds "$res") $(field verified "$res") $rss $cpu_s")
    done
    if [[ ${#rows[@]} -eq 0 ]]; then
        printf '%-28s %12s\n' "$label" "FAILED"
        summary+=("$label|FAILED|")
        return 0
    fi
    # The run with the median lines/s stands for the configuration.
    median=$(printf '%s\n' "${rows[@]}" | sort -n -k1,1 | sed -n "$(((${#rows[@]} + 1) / 2))p")
    read -r lps mbs secs ver rss cpu_s <<<"$median"
    printf '%-28s %12s %9s %9s %9s %7s MB %10s s' "$label" "$lps" "$mbs" "$secs" "$ver" \
        "$rss" "$cpu_s"
    [[ ${#rows[@]} -lt $repeat ]] && printf '  (%d of %d runs failed)' \
        $((repeat - ${#rows[@]})) "$repeat"
    printf '\n'
    summary+=("$label|$lps|$mbs")
}

ingest_header "ingest"
for mode in plain framed; do
    for c in $conns; do
        ingest_row "$(printf '%s, %d connection%s' "$mode" "$c" "$([[ $c == 1 ]] || echo s)")" \
            --format "$mode" --connections "$c" --lines "$lines"
    done
done

# ---- The other wire formats of the ingest port, 4 connections each, against a fresh server
# with its defaults (--fsync=batch) like the rows above. The same content is wrapped as
# octet-counted RFC 5424 syslog, JSON lines and binary LOG_MS frames; in those the message
# text alone is about 120 bytes, so their lines are longer on the wire (MB/s counts the bytes
# sent). Binary frames are acknowledged one by one, like framed lines.
echo
echo "formats: 4 connections, $lines lines each run, same content as above; median of $repeat"
ingest_header "format"
for fmt in syslog json binary; do
    case $fmt in
    syslog) label="syslog RFC 5424, octet" ;;
    json) label="JSON lines" ;;
    binary) label="binary LOG_MS (acked)" ;;
    esac
    ingest_row "$label" --format "$fmt" --connections 4 --lines "$lines"
done

# The client library's own benchmark (make lib builds it): one thread calling lc_log() and
# then lc_flush() until every line is acknowledged. Skipped when it has not been built. With
# the URL's defaults (on_full=drop) the library drops what its queue cannot hold, so its
# dropped= count and COUNT afterwards are shown beside its own lines/s.
lc_lines=1000000
lc_ran=
if [[ -x $build/lc_bench ]]; then
    lc_ran=yes
    start_server
    res=$(timeout "$step_timeout" "$build/lc_bench" "logcaster://127.0.0.1:$log_port?on_full=block" "$lc_lines" \
        2>>"$work/client.log") || res="FAILED (exit $?) ${res:-}"
    stored=$(client count) || stored="?"
    stop_server
    echo "  liblogcaster (lc_bench, 1 thread, $lc_lines lines): $res"
    dropped=$(field dropped " $res")
    echo "  liblogcaster: COUNT afterwards $stored${dropped:+, dropped by the library $dropped}"
    note=
    [[ -n $dropped && $dropped != 0 ]] && note=" ($dropped dropped)"
    summary+=("liblogcaster lc_bench, 1 thread$note|$(field 'lines/s' " $res")|")
else
    echo "  liblogcaster: $build/lc_bench not built (make lib); skipped"
fi

echo
echo "query: $query_lines entries loaded (plain, 4 connections) into a fresh server;"
echo "each request $query_runs times over one connection, one at a time"
start_server
load=$(client bench --connections 4 --lines "$query_lines") || die "loading $query_lines entries failed"
echo "  load: $load"
printf '%-36s %10s %10s %10s %10s\n' "request" "p50 ms" "p99 ms" "max ms" "results"
query_row() {
    local label=$1 res
    shift
    if res=$(client bench-query --runs "$query_runs" "$@") && [[ $res == query:* ]]; then
        printf '%-36s %10s %10s %10s %10s\n' "$label" "$(field p50 "$res" | tr -d ms)" \
            "$(field p99 "$res" | tr -d ms)" "$(field max "$res" | tr -d ms)" \
            "$(field results "$res")"
    else
        printf '%-36s %10s\n' "$label" "FAILED"
    fi
}
query_row "SEARCH $rare_word (rare word)" -- "$rare_word"
query_row "SEARCH /timeout after [0-9]+ms/" -- '/timeout after [0-9]+ms/'
query_row "COUNT level:ERROR" --count -- 'level:ERROR'
query_row "COUNT (all entries)" --count
echo
echo "server peak RSS (VmHWM) after loading $query_lines entries and the queries: $(server_peak_mb) MB"
stop_server

# ---- HTTP: query requests/s with wrk over the same kind of data, and JSON-lines ingest.
http_conns=${BENCH_HTTP_CONNECTIONS:-32}
if command -v wrk >/dev/null && [[ $http_conns -gt 0 ]]; then
    echo
    echo "HTTP: $query_lines entries loaded; wrk, 2 threads, $http_conns connections, 5 s per URL"
    run_extra=(--http-port 0)
    start_server
    client bench --connections 4 --lines "$query_lines" >/dev/null || die "loading failed"
    printf '%-52s %12s %10s %10s\n' "GET" "requests/s" "p50 ms" "p99 ms"
    for url in "/api/v1/query?q=level:ERROR&limit=10" "/api/v1/query?q=$rare_word&limit=100" \
        "/api/v1/query?q=timeout&limit=100" "/api/v1/stats" "/metrics"; do
        out=$(timeout 60 wrk -t2 -c"$http_conns" -d5s --latency "http://127.0.0.1:$http_port$url" 2>&1) ||
            true
        rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
        p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
        p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
        non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
        printf '%-52s %12s %10s %10s%s\n' "$url" "${rps:-FAILED}" "$p50" "$p99" \
            "${non2xx:+  ($non2xx non-2xx answers)}"
    done
    stop_server
    # JSON lines over POST /api/v1/logs: 8 clients, each posting its 20,000-line body 10 times.
    json=$work/lines.json
    awk -v n=20000 'BEGIN { split("info info info info warn error debug", lv, " ");
        for (i = 0; i < n; i++)
            printf "{\"ts\":%d,\"level\":\"%s\",\"msg\":\"GET /api/v1/users/%d 200 %dms\",\"host\":\"web-%02d\",\"trace\":\"%08x%08x\"}\n",
                1795000000 + i, lv[i % 7 + 1], i * 7919 % 100000, i % 300, i % 12, i * 2654435761 % 4294967296, i }' \
        >"$json"
    start_server
    posts=10 clients=8
    t0=$(date +%s.%N)
    posters=()
    for _ in $(seq "$clients"); do
        (for _ in $(seq "$posts"); do
            timeout 60 curl -sf -H 'Content-Type: application/x-ndjson' --data-binary "@$json" \
                "http://127.0.0.1:$http_port/api/v1/logs" >/dev/null || echo "post failed" >&2
        done) &
        posters+=($!)
    done
    wait "${posters[@]}" # Not a bare wait: the server is a background job too.
    t1=$(date +%s.%N)
    stored=$(client count) || stored=0
    awk -v a="$t0" -v b="$t1" -v n="$stored" -v want=$((20000 * posts * clients)) -v sz="$(stat -c %s "$json")" \
        -v k=$((posts * clients)) 'BEGIN { printf "  POST /api/v1/logs, JSON lines, %d clients: %.0f lines/s, %.0f MB/s (%d of %d lines stored, each acknowledged durable)\n", 8, n / (b - a), k * sz / (b - a) / 1e6, n, want }'
    stop_server
    run_extra=()
fi

# ---- The durable store at scale: BENCH_STORE_LINES entries, then queries, restart, fsync.
if [[ $store_lines -gt 0 ]]; then
    echo
    echo "durable store: $store_lines entries loaded (plain, 4 connections, --fsync=batch);"
    echo "each request $query_runs times over one connection"
    start_server
    load=$(client bench --connections 4 --lines "$store_lines") || die "loading failed"
    echo "  load: $load"
    stats=$(client stats)
    stat() { awk -v k="$1" '$1 == k { print $2 }' <<<"$stats"; }
    on_disk() {
        awk -v raw="$(stat raw_bytes)" -v disk="$(stat disk_bytes)" -v sent="$(stat bytes_received)" \
            -v seg="$(stat segments)" -v arch="$(stat segments_archived)" -v when="$1" 'BEGIN { printf "  on disk %s: %.0f MB in %d segments (%d archived) for %.0f MB of lines received: %.1f%% of the lines, %.1f%% of the stored records\n", when, disk / 1e6, seg, arch, sent / 1e6, 100 * disk / sent, 100 * disk / raw }'
    }
    on_disk "when loaded"
    store_queries() {
        printf '%-36s %10s %10s %10s %10s\n' "request" "p50 ms" "p99 ms" "max ms" "results"
        query_row "SEARCH $rare_word limit:100" -- "$rare_word limit:100"
        query_row "COUNT level:ERROR" --count -- 'level:ERROR'
        query_row "SEARCH $1 limit:100" -- "$1 limit:100"
        query_row "COUNT $1" --count -- "$1"
        query_row "SEARCH /timeout after 4[0-9]{3}ms/ limit:100" -- '/timeout after 4[0-9]{3}ms/ limit:100'
    }
    echo "  queries on the fresh data:"
    store_queries since:1m
    # The archiver re-compresses sealed segments in the background (--archive-level): wait for
    # it (at most 10 minutes), then query the data as it stays. "The last minute" is then the
    # last minute of the data: by now it is more than a minute old.
    t0=$(date +%s.%N)
    for _ in $(seq 600); do
        stats=$(client stats)
        [[ $(stat segments_archived) -ge $(($(stat segments) - 1)) ]] && break
        sleep 1
    done
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  archiver done %.0f s after the load\n", b - a }'
    on_disk "after archiving"
    newest=$(stat newest_ts)
    echo "  queries on the archived data:"
    store_queries "from:$((newest - 59)) to:$newest"
    echo "  server peak RSS (VmHWM) holding $store_lines entries: $(server_peak_mb) MB"
    reuse_dir=$last_dir
    stop_server
    t0=$(date +%s.%N)
    start_server
    n=$(client count) || n=FAILED
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "  restart after a clean stop: %.2f s until COUNT answered (%s entries)\n", b - a, n }'
    stop_server
    reuse_dir=
    run_extra=(--fsync=always)
    start_server
    res=$(client bench --connections 32 --framed --lines 500000) || res=FAILED
    echo "  --fsync=always, framed, 32 connections: $res"
    stats=$(client stats)
    echo "  fsyncs: $(stat fsyncs), last fsync $(stat last_fsync_us) us"
    stop_server
    run_extra=()
fi

# ---- IRC: delivery latency to 300 clients in #logs-all at 20,000 lines/s, and the ingest
# rate with 300 reading IRC clients joined versus none (server defaults otherwise).
irc_clients=${BENCH_IRC_CLIENTS:-300}
if [[ $irc_clients -gt 0 ]]; then
    echo
    echo "IRC: $irc_clients clients joined to #logs-all"
    run_extra=(--irc-port 0 --irc-stream-rate 1000000)
    start_server
    res=$(client bench-irc --irc-port "$(irc_port_of)" --clients "$irc_clients" --rate 20000 \
        --seconds 5) || true
    echo "  20,000 lines/s for 5 s (--irc-stream-rate 1000000): $res"
    stop_server
    # Ingest at full speed without and with the clients joined (default stream rate),
    # alternating, $repeat times each; the medians are compared.
    run_extra=(--irc-port 0)
    bases=() withs=()
    for _ in $(seq "$repeat"); do
        start_server
        base=$(client bench --connections 4 --lines "$lines") || base=FAILED
        bases+=("$(field 'lines/s' "$base")")
        stop_server
        start_server
        client bench-irc --irc-port "$(irc_port_of)" --clients "$irc_clients" --hold 30 \
            >"$work/irc-hold.out" 2>&1 &
        hold_pid=$!
        for _ in $(seq 300); do
            grep -q 'holding' "$work/irc-hold.out" 2>/dev/null && break
            sleep 0.1
        done
        with=$(client bench --connections 4 --lines "$lines") || with=FAILED
        withs+=("$(field 'lines/s' "$with")")
        kill "$hold_pid" 2>/dev/null || true
        wait "$hold_pid" 2>/dev/null || true
        stop_server
    done
    run_extra=()
    base=$(median_of "${bases[@]}")
    with=$(median_of "${withs[@]}")
    echo "  ingest lines/s without IRC clients ($repeat runs): ${bases[*]}; median $base"
    echo "  ingest lines/s with $irc_clients IRC clients in #logs-all: ${withs[*]}; median $with"
    awk -v a="$base" -v b="$with" \
        'BEGIN { if (a > 0) printf "  ingest rate change with IRC clients: %+.1f%%\n", 100 * (b - a) / a }'
fi

# ---- Queries against ripgrep over the same lines, and acknowledgement latency under scans
# (bench/query.sh, its own fresh server; BENCH_RG_LINES=0 skips it).
if [[ ${BENCH_RG_LINES:-5000000} -gt 0 ]]; then
    echo
    "$(dirname "$0")/query.sh" "$build" || echo "bench: bench/query.sh failed" >&2
fi

# ---- The cluster on NATS JetStream: three nats-servers and three nodes of its own
# (bench/cluster.sh; it says so and skips itself when nats-server is missing).
if [[ ${BENCH_CLUSTER:-1} != 0 ]]; then
    echo
    "$(dirname "$0")/cluster.sh" "$build" || echo "bench: bench/cluster.sh failed" >&2
fi

# ---- Summary: every ingest figure above in one table.
echo
echo "summary: ingest, $lines lines per run${lc_ran:+ (lc_bench: $lc_lines, one run)}, median of $repeat"
printf '%-50s %12s %9s\n' "ingest" "lines/s" "MB/s"
for row in "${summary[@]}"; do
    IFS='|' read -r label lps mbs <<<"$row"
    printf '%-50s %12s %9s\n' "$label" "${lps:-?}" "$mbs"
done
