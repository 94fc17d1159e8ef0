#!/usr/bin/env bash
# bench/compare.sh - two builds side by side, for "no worse than before this change": ingest
# throughput at each connection count (plain and framed lines) and IRC delivery to 300 clients.
#
# usage: bench/compare.sh OLD_BUILD_DIR NEW_BUILD_DIR   (each holds logcasterd and logcaster)
#        make bench-compare OLD=<git-rev>               (builds both, then runs this)
#
# Figures on a shared machine drift by ±10-20% between runs, more than most changes move
# them, so the builds alternate run by run: each repetition runs every measurement once with
# each build, back to back, the old one first in odd repetitions and the new one first in even
# ones. Each run gets a fresh server on ephemeral ports with an empty data dir (bench/lib.sh,
# as bench/run.sh). Both servers are driven by the same client, the new build's logcaster, so
# that only the server differs. The last thing printed is one Markdown table of the medians.
#
# Environment knobs (defaults in brackets):
#   BENCH_LINES [1000000]        lines per ingest run; a run counts only if COUNT shows them all
#   BENCH_CONNECTIONS ["1 4 32"] connection counts for the plain and framed ingest runs
#   BENCH_REPEAT [3]             runs per measurement and build
#   BENCH_IRC_CLIENTS [300]      clients in #logs-all for the delivery runs (0 skips them)
#   BENCH_IRC_RATE [20000]       lines/s ingested during a delivery run
#   BENCH_IRC_SECONDS [5]        how long a delivery run sends
#   BENCH_OLD_LABEL, BENCH_NEW_LABEL   the builds' names in the report (default: the dirs)
#   BENCH_CLIENT                 the client binary for both [NEW_BUILD_DIR/logcaster]
#   LOGCASTERD_ARGS []           extra server options for both builds
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

old_dir=${1:?usage: bench/compare.sh OLD_BUILD_DIR NEW_BUILD_DIR}
new_dir=${2:?usage: bench/compare.sh OLD_BUILD_DIR NEW_BUILD_DIR}
old_label=${BENCH_OLD_LABEL:-$old_dir}
new_label=${BENCH_NEW_LABEL:-$new_dir}
client_bin=${BENCH_CLIENT:-$new_dir/logcaster}
lines=${BENCH_LINES:-1000000}
conns=${BENCH_CONNECTIONS:-1 4 32}
repeat=${BENCH_REPEAT:-3}
irc_clients=${BENCH_IRC_CLIENTS:-300}
irc_rate=${BENCH_IRC_RATE:-20000}
irc_seconds=${BENCH_IRC_SECONDS:-5}
read -r -a server_extra <<<"${LOGCASTERD_ARGS:-}"
run_extra=()
reuse_dir=
# No client command may take longer than this: a minute more than an ingest run at a slow
# 20,000 lines/s, or than a delivery run's sending time.
step_timeout=$((60 + lines / 20000 + irc_seconds))

for f in "$old_dir/logcasterd" "$new_dir/logcasterd" "$client_bin"; do
    [[ -x $f ]] || { echo "bench: $f not found; build it first" >&2; exit 1; }
done

bench_init
t_start=$(date +%s)

# Results: vals["metric|old"] holds the figures of the runs that counted, space-separated;
# fails["metric|old"] the number of runs that did not. Metrics keep their first-seen order.
declare -A vals=() fails=() seen=()
metrics=()
record() {
    local metric=$1 side=$2 value=$3
    [[ -n ${seen[$metric]:-} ]] || { seen[$metric]=1; metrics+=("$metric"); }
    if [[ -n $value ]]; then
        vals[$metric|$side]+="$value "
    else
        fails[$metric|$side]=$((${fails[$metric|$side]:-0} + 1))
    fi
}

# Point start_server at build $1 (old or new).
use_build() {
    if [[ $1 == old ]]; then server_bin=$old_dir/logcasterd; else server_bin=$new_dir/logcasterd; fi
}

# One ingest run against a fresh server of build $1 (old or new): mode $2, $3 connections.
# The client waits until COUNT shows every line stored; a run that is not verified does not
# count.
ingest_run() {
    local side=$1 mode=$2 c=$3 res lps metric
    metric="$(printf '%s, %d connection%s, lines/s' "$mode" "$c" "$([[ $c == 1 ]] || echo s)")"
    use_build "$side"
    run_extra=()
    start_server
    client_run bench --format "$mode" --connections "$c" --lines "$lines" || true
    res=$client_out
    stop_server
    lps=
    if [[ $res == ingest:* && $(field verified "$res") == yes ]]; then
        lps=$(field 'lines/s' "$res")
    fi
    record "$metric" "$side" "$lps"
    if [[ -n $lps ]]; then res="$lps lines/s"; else res="FAILED: ${res:-no result}"; fi
    printf '  %-4s %-24s %s\n' "$side" "$mode, $c conn." "$res"
}

# One delivery run against a fresh server of build $1: $irc_clients clients in #logs-all, the
# log port fed at $irc_rate lines/s for $irc_seconds s, the stream rate limit lifted so that
# every line goes to every client (as bench/run.sh's IRC section).
irc_run() {
    local side=$1 res port delivered expected all
    use_build "$side"
    run_extra=(--irc-port 0 --irc-stream-rate 1000000)
    start_server
    port=
    for _ in $(seq 100); do
        port=$(irc_port_of)
        [[ -n $port ]] && break
        sleep 0.05
    done
    [[ -n $port ]] || die "logcasterd printed no 'listening irc' line within 5 s"
    client_run bench-irc --irc-port "$port" --clients "$irc_clients" --rate "$irc_rate" \
        --seconds "$irc_seconds" || true
    res=$client_out
    stop_server
    run_extra=()
    if [[ $res != irc:* ]]; then
        for m in "deliveries/s" "latency p50, ms" "latency p99, ms" "latency max, ms" \
            "runs with every delivery"; do
            record "IRC $m" "$side" ""
        done
        printf '  %-4s %-24s FAILED: %s\n' "$side" "IRC" "${res:-no result}"
        return 0
    fi
    delivered=$(field delivered "$res")
    expected=$(field expected "$res")
    all=0
    [[ $delivered == "$expected" && $(field dropped "$res") == 0 ]] && all=1
    record "IRC deliveries/s" "$side" \
        "$(awk -v d="$delivered" -v s="$irc_seconds" 'BEGIN { printf "%.0f", d / s }')"
    record "IRC latency p50, ms" "$side" "$(field p50 "$res" | tr -d ms)"
    record "IRC latency p99, ms" "$side" "$(field p99 "$res" | tr -d ms)"
    record "IRC latency max, ms" "$side" "$(field max "$res" | tr -d ms)"
    record "IRC runs with every delivery" "$side" "$all"
    printf '  %-4s %-24s %s\n' "$side" "IRC" "${res#irc: }"
}

echo "LogCaster comparison, $(date -u '+%Y-%m-%d %H:%M UTC'), $(bench_machine)"
echo "old: $old_label ($old_dir/logcasterd)"
echo "new: $new_label ($new_dir/logcasterd)"
echo "client for both: $client_bin; $repeat repetition(s), the builds alternating run by run"
echo "ingest: $lines lines of about 120 bytes per run, fresh server (--fsync=batch), counted"
echo "only once COUNT shows every line stored"
if [[ $irc_clients -gt 0 ]]; then
    echo "IRC: $irc_clients clients in #logs-all, $irc_rate lines/s for $irc_seconds s"
    echo "(--irc-stream-rate 1000000: every line to every client)"
fi
for rep in $(seq "$repeat"); do
    if ((rep % 2)); then order=(old new); else order=(new old); fi
    echo
    echo "repetition $rep of $repeat (${order[0]} first)"
    for mode in plain framed; do
        for c in $conns; do
            ingest_run "${order[0]}" "$mode" "$c"
            ingest_run "${order[1]}" "$mode" "$c"
        done
    done
    if [[ $irc_clients -gt 0 ]]; then
        irc_run "${order[0]}"
        irc_run "${order[1]}"
    fi
done

# ---- The table: the median of each build's counted runs and the change from old to new.
cell() {
    local metric=$1 side=$2 n f x v
    read -r -a v <<<"${vals[$metric|$side]:-}"
    f=${fails[$metric|$side]:-0}
    if [[ $metric == "IRC runs with every delivery" ]]; then
        n=0
        for x in ${v[@]+"${v[@]}"}; do n=$((n + x)); done
        echo "$n of $((${#v[@]} + f))"
        return
    fi
    [[ ${#v[@]} -eq 0 ]] && { echo "FAILED"; return; }
    printf '%s' "$(median_of "${v[@]}")"
    [[ $f -eq 0 ]] || printf ' (%d of %d runs failed)' "$f" $((${#v[@]} + f))
    printf '\n'
}
echo
echo "Medians of $repeat runs each; change = (new - old) / old: higher is better for lines/s and"
echo "deliveries/s, lower for latencies. Finished $(date -u '+%Y-%m-%d %H:%M UTC'), \
$(($(date +%s) - t_start)) s in all."
echo
echo "| measurement | old median ($old_label) | new median ($new_label) | change |"
echo "|---|---|---|---|"
for m in "${metrics[@]}"; do
    o=$(cell "$m" old)
    n=$(cell "$m" new)
    change=$(awk -v a="${o%% *}" -v b="${n%% *}" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a > 0) printf "%+.1f%%", 100 * (b - a) / a }')
    [[ $m == "IRC runs with every delivery" ]] && change=
    echo "| $m | $o | $n | ${change:-n/a} |"
done
