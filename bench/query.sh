#!/usr/bin/env bash
# bench/query.sh - LogCaster's queries beside ripgrep over the same lines, and how long a framed
# line waits for its acknowledgement while full-scan queries run.
#
# usage: bench/query.sh BUILD_DIR [OLD_BUILD_DIR]
#        make bench-query [OLD=<git-rev>]        (also the last section of `make bench`)
#
# 1. bench/qlines.awk writes BENCH_RG_LINES lines of about 120 bytes to one plain file, each
#    with rid=<its line number in hex>, user=<5 random digits>, latency_ms=<1..2000>, a level
#    and now and then "retry" and "timeout". A fresh server (bench/lib.sh: ephemeral ports,
#    empty data dir, its defaults) is fed the same file with `logcaster send --plain`, and
#    the script waits until COUNT shows every line, then until the archiver has re-compressed
#    the sealed segments (as the data stays; the archiver takes CPU while it works).
# 2. Each query runs once to warm up and then BENCH_RG_RUNS times, on both sides, and the
#    median stands: LogCaster's is `logcaster bench-query` (request to last byte of the reply
#    over an open connection), ripgrep's the wall time of the rg command or pipeline over the
#    file, warm in the page cache (process start-up included, a millisecond or two). A query
#    the server answers with ERROR is shown as "unsupported".
# 3. `logcaster bench --format framed --ack-latency` sends BENCH_ACK_RATE lines/s over
#    BENCH_ACK_CONNECTIONS connections for BENCH_ACK_SECONDS, once with the server idle and
#    once while two other connections run `COUNT /latency_ms=19[0-9][0-9]/` (a full scan) in a
#    loop.
# With OLD_BUILD_DIR, steps 1-3 run against that build's server too (same file, same client,
# this build's), and the table gets a column for each; ripgrep is measured once.
# The output ends with the two tables in Markdown.
#
# Environment knobs (defaults in brackets):
#   BENCH_RG_LINES [5000000]     lines in the file and the server (20000000 for the large run)
#   BENCH_RG_RUNS [5]            timed runs per query and side, after one warm-up run
#   BENCH_ACK_RATE [1000]        lines/s of the acknowledgement-latency runs, in all
#   BENCH_ACK_CONNECTIONS [2]    connections they use
#   BENCH_ACK_SECONDS [10]       how long each runs
#   BENCH_OLD_LABEL, BENCH_NEW_LABEL   the builds' names in the tables (default: the dirs)
#   LOGCASTERD_ARGS []           extra server options
#   TMPDIR [/tmp]                where the file (about 121 bytes a line) and the data go
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

new_dir=${1:?usage: bench/query.sh BUILD_DIR [OLD_BUILD_DIR]}
old_dir=${2:-}
client_bin=$new_dir/logcaster
nlines=${BENCH_RG_LINES:-5000000}
runs=${BENCH_RG_RUNS:-5}
ack_rate=${BENCH_ACK_RATE:-1000}
ack_conns=${BENCH_ACK_CONNECTIONS:-2}
ack_secs=${BENCH_ACK_SECONDS:-10}
new_label=${BENCH_NEW_LABEL:-$new_dir}
old_label=${BENCH_OLD_LABEL:-$old_dir}
read -r -a server_extra <<<"${LOGCASTERD_ARGS:-}"
run_extra=()
reuse_dir=
scan='/latency_ms=19[0-9][0-9]/' # the full scan of the latency runs, and one of the rows
# No client command may take longer: loading at a slow 100,000 lines/s, or 20 scans.
step_timeout=$((120 + nlines / 100000))

for f in "$new_dir/logcasterd" "$client_bin" ${old_dir:+"$old_dir/logcasterd"}; do
    [[ -x $f ]] || { echo "bench: $f not found; build it first" >&2; exit 1; }
done
have_rg=
command -v rg >/dev/null && have_rg=yes

# ---- The rows: label, LogCaster's request (COUNT or SEARCH, then the expression) and the
# ripgrep equivalent ($F is the file; "-" when there is no fair one). rg is case-sensitive
# where LogCaster's words are not; the file writes these words in one case only, so the
# answers agree, and the results columns show whether they do.
labels=() ops=() exprs=() rgs=()
row() { labels+=("$1"); ops+=("$2"); exprs+=("$3"); rgs+=("$4"); }
# The rid needles, each where its line exists: lines 1666666, 2500007, 6666666 and 10000007.
for hex in 00196e6a 002625a7 0065b9aa 00989687; do
    [[ $((16#$hex)) -lt $nlines ]] || continue
    row "COUNT rid=$hex" COUNT "rid=$hex" "rg -c rid=$hex \$F"
done
row "COUNT user:12345" COUNT "user:12345" "rg -c -w user=12345 \$F"
row "COUNT user=12345 latency_ms=777" COUNT "user=12345 latency_ms=777" \
    "rg user=12345 \$F | rg -c latency_ms=777"
row "COUNT user:12345 latency_ms:777" COUNT "user:12345 latency_ms:777" \
    "rg -w user=12345 \$F | rg -c -w latency_ms=777"
row "COUNT xyzzy-never-there" COUNT "xyzzy-never-there" "rg -c xyzzy-never-there \$F"
row "COUNT level:ERROR" COUNT "level:ERROR" "rg -c ' ERROR ' \$F"
row "COUNT $scan" COUNT "$scan" "rg -c 'latency_ms=19[0-9][0-9]' \$F"
row "COUNT retry timeout" COUNT "retry timeout" "rg retry \$F | rg -c timeout"
row "SEARCH * | stats by (level) count()" SEARCH "* | stats by (level) count()" \
    "rg -o ' (DEBUG|INFO|WARN|ERROR) ' \$F | LC_ALL=C sort | uniq -c"

bench_init
t_start=$(date +%s)
F=$work/lines.log

echo "LogCaster queries against ripgrep, $(date -u '+%Y-%m-%d %H:%M UTC'), $(bench_machine)"
echo "builds: $new_label ($new_dir)${old_dir:+; $old_label ($old_dir)}; client $client_bin"
rg_version="not installed"
[[ -n $have_rg ]] && rg_version=$(rg --version) && rg_version=${rg_version%%$'\n'*}
echo "rg: $rg_version"
t0=$EPOCHREALTIME
nice -n 10 awk -v n="$nlines" -v seed=1 -f "$(dirname "$0")/qlines.awk" >"$F"
t1=$EPOCHREALTIME
awk -v a="$t0" -v b="$t1" -v n="$nlines" -v sz="$(stat -c %s "$F")" 'BEGIN {
    printf "generated %d lines, %.0f MB (%.0f bytes a line) in %.1f s\n", n, sz / 1e6, sz / n, b - a }'

# Wall time of `eval CMD` in ms (its stdout in $work/rg.out).
ms_of() {
    local t0 t1
    t0=$EPOCHREALTIME
    eval "$1" >"$work/rg.out" 2>/dev/null || true
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}

# ---- ripgrep: once to warm up (and fill the page cache), then $runs times.
declare -A rg_ms=() rg_res=()
if [[ -n $have_rg ]]; then
    cat "$F" >/dev/null
    for i in "${!labels[@]}"; do
        cmd=${rgs[$i]//\$F/$F}
        ms_of "$cmd" >/dev/null
        times=()
        for _ in $(seq "$runs"); do times+=("$(ms_of "$cmd")"); done
        rg_ms[$i]=$(median_of "${times[@]}")
        if [[ ${ops[$i]} == COUNT ]]; then
            rg_res[$i]=$(head -n1 "$work/rg.out")
            rg_res[$i]=${rg_res[$i]:-0}
        else
            rg_res[$i]="$(wc -l <"$work/rg.out") rows"
            rg_stats=$(awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1 }' "$work/rg.out")
        fi
        printf '  rg %-40s %11s ms  %s\n' "${labels[$i]}" "${rg_ms[$i]}" "${rg_res[$i]}"
    done
fi

# ---- One build's server: load the file, the queries, the acknowledgement latency. Results
# go to lc_ms[side|i], lc_res[side|i], ack[side|idle], ack[side|scan].
declare -A lc_ms=() lc_res=() ack=() load=()
stats=
stat_of() { awk -v k="$1" '$1 == k { print $2 }' <<<"$stats"; }
lc_stats=()
measure_build() {
    local side=$1 dir=$2 n t0 t1 res="" rc i scanners=() s cnt
    server_bin=$dir/logcasterd
    echo
    echo "$side: $dir/logcasterd"
    start_server
    t0=$EPOCHREALTIME
    client_run send --plain "$F" || die "loading $F failed"
    for _ in $(seq $((step_timeout * 10))); do
        n=$(client count) || n=0
        [[ $n -ge $nlines ]] && break
        sleep 0.1
    done
    t1=$EPOCHREALTIME
    [[ $n -eq $nlines ]] || die "COUNT shows $n entries, expected $nlines"
    load[$side]=$(awk -v a="$t0" -v b="$t1" -v n="$nlines" \
        'BEGIN { printf "%.1f s, %.2f M lines/s", b - a, n / (b - a) / 1e6 }')
    echo "  loaded with send --plain, COUNT $n after ${load[$side]}"
    # The archiver re-compresses the sealed segments in the background for a while after a
    # load (--archive-level): wait for it (10 minutes at most), so that it takes no CPU from
    # the measurements and they see the data as it stays.
    t0=$EPOCHREALTIME
    for _ in $(seq 600); do
        stats=$(client stats)
        [[ $(stat_of segments_archived) -ge $(($(stat_of segments) - 1)) ]] && break
        sleep 1
    done
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" -v s="$(stat_of segments)" -v z="$(stat_of segments_archived)" \
        'BEGIN { printf "  archiver done %.0f s later (%d of %d segments archived)\n", b - a, z, s }'
    for i in "${!labels[@]}"; do
        cnt=()
        [[ ${ops[$i]} == COUNT ]] && cnt=(--count)
        rc=0
        # The warm-up run; an ERROR answer (exit 1) is expected from a build without the
        # query's feature, so its complaint is not shown.
        client_run bench-query --runs 1 ${cnt[@]+"${cnt[@]}"} -- "${exprs[$i]}" 2>/dev/null ||
            rc=$?
        if [[ $rc -eq 0 ]]; then
            res=$(client bench-query --runs "$runs" ${cnt[@]+"${cnt[@]}"} -- "${exprs[$i]}") ||
                rc=$?
        fi
        if [[ $rc -eq 1 ]]; then
            # The server answered ERROR: the query is not supported by this build.
            lc_ms[$side|$i]=unsupported
            lc_res[$side|$i]=unsupported
        elif [[ $rc -ne 0 || $res != query:* ]]; then
            lc_ms[$side|$i]=FAILED
            lc_res[$side|$i]=FAILED
        else
            lc_ms[$side|$i]=$(field p50 "$res" | tr -d ms)
            lc_res[$side|$i]=$(field results "$res")
            [[ ${ops[$i]} == SEARCH ]] && lc_res[$side|$i]+=" rows"
        fi
        printf '  %-43s %11s ms  %s\n' "${labels[$i]}" "${lc_ms[$side|$i]/unsupported/ -}" \
            "${lc_res[$side|$i]}"
    done
    if [[ ${lc_ms[$side|$((${#labels[@]} - 1))]} != unsupported ]]; then
        lc_stats+=("$side: $(client query -- "${exprs[-1]}" | tr '\n' ' ')")
    fi

    # Acknowledgement latency, idle and under two looping full scans.
    client_run bench --format framed --ack-latency "$ack_rate" --connections "$ack_conns" \
        --duration "$ack_secs" || true
    ack[$side|idle]=$(grep '^ack latency:' <<<"$client_out" || true)
    echo "  idle: ${ack[$side|idle]:-FAILED}"
    rm -f "$work/stop-scans"
    for s in 1 2; do
        (
            k=0
            while [[ ! -e $work/stop-scans ]] &&
                timeout "$step_timeout" "$client_bin" --query-port "$query_port" --timeout 60 \
                    count -- "$scan" >/dev/null 2>&1; do
                k=$((k + 1))
            done
            echo "$k" >"$work/scans.$s"
        ) &
        scanners+=($!)
    done
    sleep 1 # Both scans are under way before the first line goes.
    client_run bench --format framed --ack-latency "$ack_rate" --connections "$ack_conns" \
        --duration "$ack_secs" || true
    ack[$side|scan]=$(grep '^ack latency:' <<<"$client_out" || true)
    touch "$work/stop-scans"
    wait "${scanners[@]}" # Not a bare wait: the server is a background job too.
    ack[$side|scans]=$(($(cat "$work/scans.1") + $(cat "$work/scans.2")))
    echo "  under scans: ${ack[$side|scan]:-FAILED} (${ack[$side|scans]} scans finished meanwhile)"
    stop_server
}

sides=(new)
[[ -n $old_dir ]] && sides=(old new)
for side in "${sides[@]}"; do
    if [[ $side == old ]]; then measure_build old "$old_dir"; else measure_build new "$new_dir"; fi
done

# ---- The tables.
label_of() { if [[ $1 == old ]]; then echo "$old_label"; else echo "$new_label"; fi; }
md() { echo "${1//|/\\|}"; } # a pipe inside a Markdown cell
echo
echo "$nlines lines, $(stat -c %s "$F" | awk '{ printf "%.0f MB", $1 / 1e6 }');" \
    "medians of $runs runs after one warm-up; finished $(date -u '+%Y-%m-%d %H:%M UTC')," \
    "$(($(date +%s) - t_start)) s in all"
for side in "${sides[@]}"; do echo "loaded into $(label_of "$side"): ${load[$side]}"; done
echo
hdr="| query |"
sep="|---|"
for side in "${sides[@]}"; do
    hdr+=" LogCaster $(label_of "$side"), ms |"
    sep+="---|"
done
if [[ ${#sides[@]} -gt 1 ]]; then
    hdr+=" rg, ms | rg ÷ LogCaster $new_label | results LogCaster $new_label | results rg | rg command |"
else
    hdr+=" rg, ms | rg ÷ LogCaster | results LogCaster | results rg | rg command |"
fi
sep+="---|---|---|---|---|"
echo "$hdr"
echo "$sep"
for i in "${!labels[@]}"; do
    line="| \`$(md "${labels[$i]}")\` |"
    for side in "${sides[@]}"; do line+=" ${lc_ms[$side|$i]} |"; done
    last=${sides[-1]}
    ratio=$(awk -v a="${lc_ms[$last|$i]}" -v b="${rg_ms[$i]:-}" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a > 0) printf "%.1f×", b / a; else print "—" }')
    rgcmd="—"
    [[ ${rgs[$i]} != - ]] && rgcmd="\`$(md "${rgs[$i]}")\`"
    line+=" ${rg_ms[$i]:-—} | $ratio | ${lc_res[$last|$i]} | ${rg_res[$i]:-—} | $rgcmd |"
    echo "$line"
done
[[ -n ${rg_stats:-} ]] && echo && echo "stats by level, rg: $rg_stats"
for s in ${lc_stats[@]+"${lc_stats[@]}"}; do echo "stats by level, LogCaster $s"; done
echo
echo "| framed line → OK, $ack_conns connections, $ack_rate lines/s for $ack_secs s |" \
    "p50 ms | p99 ms | max ms |"
echo "|---|---|---|---|"
for side in "${sides[@]}"; do
    for k in idle scan; do
        res=${ack[$side|$k]:-}
        what="idle"
        [[ $k == scan ]] && what="while 2 connections loop \`COUNT $scan\` (${ack[$side|scans]} scans)"
        [[ ${#sides[@]} -gt 1 ]] && what="$(label_of "$side"): $what"
        if [[ -n $res ]]; then
            printf '| %s | %s | %s | %s |\n' "$what" "$(field p50 "$res" | tr -d ms)" \
                "$(field p99 "$res" | tr -d ms)" "$(field max "$res" | tr -d ms)"
        else
            echo "| $what | FAILED | | |"
        fi
    done
done
