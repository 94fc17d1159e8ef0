#!/usr/bin/env bash
# bench/cluster.sh - LogCaster as a cluster on NATS JetStream, on one machine: acknowledged
# ingest through three nodes beside a single node, query latency from a node that holds no
# data, and how fast a restarted node catches up.
#
# usage: bench/cluster.sh BUILD_DIR        (also a section of `make bench`; BENCH_CLUSTER=0
#                                           skips it there)
#
# The cluster is three JetStream nats-servers routed to each other and three logcasterd nodes
# (a, b, c) using them, all on 127.0.0.1 with ports picked at run time (the nodes port 0, read
# back from their "listening" lines), in a scratch directory that is removed on exit; every
# process started here is stopped on exit, whatever happens. Each node runs with
# --cluster-partitions 8 --cluster-replicas 3 --cluster-copies 2 (the defaults): a line is
# acknowledged once a majority of its partition stream's three replicas has it.
#
# 1. Ingest: for N in BENCH_CLUSTER_CONNECTIONS, a fresh cluster, then
#      logcaster --log-port PORT bench --framed --connections N --lines L --no-verify
#    against a, b and c at once (three processes). The aggregate is 3 L lines over the wall
#    time from the start of the first client to the exit of the last. Beside it, the same
#    command without --no-verify against one plain logcasterd (no --cluster) on a fresh data
#    dir, run just before that cluster starts (so that no cluster process shares the cores
#    with it). Each is run BENCH_REPEAT times; the median stands. After each cluster run the
#    script waits until every copy of every partition has caught up with its stream (the
#    lines are then queryable) and COUNT shows 3 L.
# 2. Queries, on the last cluster of step 1 (3 L entries): a fourth node joins, with a name
#    chosen so that rendezvous hashing gives it no partition (its STATS are checked and
#    shown), and `logcaster bench-query` runs the same requests on a (which holds some
#    partitions) and on that node (which asks the others for everything).
# 3. Catch-up: the fourth node and c stop (SIGTERM); L lines go through each of a and b
#    (framed, 4 connections); a and b take over c's partitions meanwhile (2 copies of 2
#    live nodes) and the script waits until they hold them caught up. Then c starts again
#    on its data dir, and the script measures the time until every partition it holds shows
#    lag=0 state=ready in STATS and its entries stop growing: entries replayed per second.
# 4. The floor: three fresh nats-servers alone, and bench/nats_floor.c (build/rel/bench/
#    nats-floor) publishing as many messages of the same size as the last ingest run did
#    (cluster_published_bytes / _batches in the nodes' STATS), of random bytes, to as many
#    streams of as many replicas: the nats-servers' CPU time for the bytes the lines cost,
#    with no node beside them.
# Each ingest line also shows the CPU seconds the nodes, nats-servers and clients used in its
# span (on a small machine the cluster is CPU-bound) and per line, and the end lists every
# warning or error the nodes and nats-servers logged. Without nats-server or curl the script says so
# and exits 0.
#
# Environment knobs (defaults in brackets):
#   BENCH_CLUSTER_LINES [BENCH_LINES or 2000000]  lines per node per ingest run (L)
#   BENCH_CLUSTER_CONNECTIONS ["4 32"]            connections per node
#   BENCH_CLUSTER_COPIES [2]                      --cluster-copies of every node
#   BENCH_REPEAT [1]                              runs per configuration (a cluster run is long)
#   BENCH_QUERY_RUNS [20]                         requests per query benchmark
#   LOGCASTERD_ARGS []                            extra options for every logcasterd
#   NATS_SERVER                                   the nats-server (default: PATH, /usr/sbin)
#   TMPDIR [/tmp]                                 where the scratch directory goes
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:?usage: bench/cluster.sh BUILD_DIR}
server_bin=$build/logcasterd
client_bin=$build/logcaster
lines=${BENCH_CLUSTER_LINES:-${BENCH_LINES:-2000000}}
conns=${BENCH_CLUSTER_CONNECTIONS:-4 32}
repeat=${BENCH_REPEAT:-1}
query_runs=${BENCH_QUERY_RUNS:-20}
read -r -a server_extra <<<"${LOGCASTERD_ARGS:-}"
run_extra=() # bench/lib.sh start_server: the single node
reuse_dir=
partitions=8
replicas=3
copies=${BENCH_CLUSTER_COPIES:-2}
host=127.0.0.1
rare_word=xyzzy-rare # the word `logcaster bench` puts in one line of every 100000
# No client command may take longer: 3 L lines at a slow 50,000 lines/s.
step_timeout=$((120 + 3 * lines / 50000))
# Nor may replicas take longer to catch up with everything sent.
settle_timeout=$((120 + 3 * lines / 20000))
start_timeout=30 # seconds a nats-server or node may take to be up and ready
stop_timeout=30  # seconds a process may take to exit after SIGTERM before it is killed

for f in "$server_bin" "$client_bin"; do
    [[ -x $f ]] || { echo "bench: $f not found; run make first" >&2; exit 1; }
done
nats_bin=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
if [[ ! -x $nats_bin ]]; then
    echo "cluster: no nats-server (Debian package nats-server: make deps-test); section skipped"
    exit 0
fi
if ! command -v curl >/dev/null; then
    echo "cluster: no curl (make deps-test); section skipped"
    exit 0
fi

bench_init
# A child dies with this script even when the script is killed (SIGKILL leaves no trap). In
# a session of its own, a Ctrl-C (or timeout(1)'s signal to its process group) reaches only
# this script, which stops the nodes before the nats-servers, as in a real shutdown. setsid
# execs without forking here: a background job of a script leads no process group.
launcher=()
command -v setpriv >/dev/null && launcher=(setpriv --pdeathsig TERM --)
command -v setsid >/dev/null && launcher=(setsid ${launcher[@]+"${launcher[@]}"})

# ---- Processes: the cluster's, by name, and the parallel clients. All are stopped on exit.
declare -A pid_of=() qport_of=() lport_of=() dir_of=()
nats_names=()
client_pids=()
cdir=        # the current cluster's directory
gen=0        # clusters started
nats_urls=

# Wait (stop_timeout at most) for process $1 to exit, then SIGKILL it; reap it.
reap() {
    local p=$1 i
    for ((i = stop_timeout * 10; i > 0; i--)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        echo "cluster: process $p still running $stop_timeout s after SIGTERM: killed" >&2
        kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
}

# Stop the named processes: SIGTERM to all at once, then each reaped.
stop_procs() {
    local n
    for n in "$@"; do
        # || true: one that died already may have been reaped (and set -e is on).
        [[ -z ${pid_of[$n]:-} ]] || kill -TERM "${pid_of[$n]}" 2>/dev/null || true
    done
    for n in "$@"; do
        if [[ -n ${pid_of[$n]:-} ]]; then
            reap "${pid_of[$n]}"
            unset "pid_of[$n]"
        fi
    done
    return 0
}

node_names() {
    local n
    for n in "${!pid_of[@]}"; do [[ $n != nats-* ]] && echo "$n"; done | sort
}

# The nodes first (they leave the cluster and publish what is pending), then NATS.
stop_cluster() {
    local p
    for p in ${client_pids[@]+"${client_pids[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${client_pids[@]+"${client_pids[@]}"}; do wait "$p" 2>/dev/null || true; done
    client_pids=()
    # shellcheck disable=SC2046 # names are single words
    stop_procs $(node_names)
    stop_procs ${nats_names[@]+"${nats_names[@]}"}
    nats_names=()
}

# Keep the nodes' and nats-servers' warnings and errors of the current cluster (its
# directory goes) for the end of the report.
collect_errors() {
    local f
    for f in "$cdir"/node-*.err "$cdir"/nats-*.log; do
        [[ -e $f ]] || continue
        # Less the nats-servers' complaints while they start one after the other.
        grep -E ' (error|warn): |^<[34]>|\[(ERR|WRN)\]' "$f" |
            grep -vE 'connect to route \(attempt|Healthcheck failed|Waiting for routing' |
            sed "s|^|cluster $gen $(basename "$f"): |" >>"$work/errors.log" || true
    done
}

cluster_cleanup() {
    trap '' INT TERM # A second signal must not cut the clean-up short, nor a failure.
    set +e
    stop_cluster
    bench_cleanup
}
trap cluster_cleanup EXIT

# Three JetStream nats-servers on free loopback ports, routed to each other, in a fresh
# directory; returns when each one's /healthz says ok (JetStream has a meta leader).
start_nats() {
    local ports i j n routes deadline
    gen=$((gen + 1))
    cdir=$work/cluster.$gen
    mkdir -p "$cdir"
    read -r -a ports < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))') || die "cannot pick free ports"
    nats_urls=
    for i in 0 1 2; do
        n=$((i + 1))
        routes=
        for j in 0 1 2; do
            [[ $j -ne $i ]] && routes+="        \"nats-route://$host:${ports[$((3 + j))]}\""$'\n'
        done
        cat >"$cdir/nats-$n.conf" <<EOF
server_name: "n$n"
listen: "$host:${ports[$i]}"
http: "$host:${ports[$((6 + i))]}"
max_payload: 8MB
jetstream {
    store_dir: "$cdir/nats-$n"
}
cluster {
    name: "logcaster-bench"
    listen: "$host:${ports[$((3 + i))]}"
    routes: [
$routes    ]
}
EOF
        nats_urls+="${nats_urls:+,}nats://$host:${ports[$i]}"
        "${launcher[@]}" "$nats_bin" -c "$cdir/nats-$n.conf" >"$cdir/nats-$n.log" 2>&1 </dev/null &
        pid_of[nats-$n]=$!
        nats_names+=("nats-$n")
    done
    deadline=$((SECONDS + start_timeout))
    for i in 0 1 2; do
        n=$((i + 1))
        until curl -sf --max-time 2 "http://$host:${ports[$((6 + i))]}/healthz" 2>/dev/null |
            grep -q '"ok"'; do
            if ! kill -0 "${pid_of[nats-$n]}" 2>/dev/null || ((SECONDS >= deadline)); then
                tail -n 20 "$cdir/nats-$n.log" >&2
                die "nats-server n$n not ready within $start_timeout s (or it exited)"
            fi
            sleep 0.2
        done
    done
}

# STATS of node $1 on stdout (nothing when it does not answer within 10 s).
node_stats() {
    timeout 15 "$client_bin" --query-port "${qport_of[$1]}" --timeout 10 stats 2>/dev/null || true
}
stat_of() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }

# Start node $1 (more logcasterd options after it) on its data dir in the current cluster's
# directory (kept across restarts); returns once it listens and says cluster_state ready.
start_node() {
    local name=$1 out err deadline st
    shift
    dir_of[$name]=$cdir/node-$name
    out=$cdir/node-$name.out
    err=$cdir/node-$name.err
    mkdir -p "${dir_of[$name]}"
    : >"$out"
    echo "==== start" >>"$err"
    "${launcher[@]}" "$server_bin" --bind "$host" --log-port 0 --query-port 0 --irc-port -1 \
        --http-port -1 --log-conn-rate 0 --query-conn-rate 0 --data-dir "${dir_of[$name]}" \
        --cluster "$nats_urls" --node-name "$name" --cluster-partitions "$partitions" \
        --cluster-replicas "$replicas" --cluster-copies "$copies" \
        ${server_extra[@]+"${server_extra[@]}"} "$@" >"$out" 2>>"$err" </dev/null &
    pid_of[$name]=$!
    deadline=$((SECONDS + start_timeout))
    while :; do
        if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
            tail -n 20 "$err" >&2
            die "logcasterd node $name exited during start-up"
        fi
        lport_of[$name]=$(sed -n 's/^listening log .*:\([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
        qport_of[$name]=$(sed -n 's/^listening query .*:\([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
        if [[ -n ${lport_of[$name]} && -n ${qport_of[$name]} ]]; then
            st=$(node_stats "$name")
            [[ $(stat_of cluster_state "$st") == ready ]] && return 0
        fi
        ((SECONDS < deadline)) || die "logcasterd node $name not ready within $start_timeout s"
        sleep 0.1
    done
}

# Node $1's partitions from its STATS ($2): "held ready entries list", where ready counts the
# held partitions at lag=0 state=ready, entries sums their held entries and list names them.
held_of() {
    awk '$1 ~ /^cluster_partition_[0-9]+$/ && $2 == "held" {
        p = substr($1, 19); n++; list = list (list == "" ? "" : ",") p
        ok = 0
        for (i = 3; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == "entries") e += kv[2]
            if ($i == "lag=0") ok++
            if ($i == "state=ready") ok++
        }
        if (ok == 2) r++
    } END { printf "%d %d %d %s\n", n, r, e, (list == "" ? "-" : list) }' <<<"$2"
}

# Wait (settle_timeout at most) until every partition is held by exactly `copies` live
# nodes, each copy caught up (lag=0 state=ready), and together they hold $1 x copies
# entries: everything sent. Prints the seconds it took, or fails.
wait_settled() {
    local want=$(($1 * copies)) t0=$EPOCHREALTIME deadline=$((SECONDS + settle_timeout))
    local n held ready entries list sum all nheld
    while :; do
        sum=0 all=yes nheld=0
        for n in $(node_names); do
            read -r held ready entries list < <(held_of "$n" "$(node_stats "$n")")
            [[ $ready -eq $held ]] || all=no
            sum=$((sum + entries))
            nheld=$((nheld + held))
        done
        if [[ $all == yes && $sum -eq $want && $nheld -eq $((partitions * copies)) ]]; then
            awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'
            return 0
        fi
        nodes_alive || return 1
        if ((SECONDS >= deadline)); then
            echo "cluster: not settled within $settle_timeout s: $sum of $want entries held" \
                "in $nheld partition copies (all caught up: $all)" >&2
            return 1
        fi
        sleep 0.5
    done
}

# Fails, saying which, when a node of the cluster has exited (nobody stopped it).
nodes_alive() {
    local n
    for n in $(node_names); do
        if ! kill -0 "${pid_of[$n]}" 2>/dev/null; then
            echo "cluster: node $n has exited; the end of its stderr:" >&2
            tail -n 5 "$cdir/node-$n.err" | sed 's/^/  /' >&2
            return 1
        fi
    done
}

# CPU seconds (user + system) used so far by the named processes together.
cpu_of() {
    local n t=0 tck v
    tck=$(getconf CLK_TCK)
    for n in "$@"; do
        [[ -n ${pid_of[$n]:-} && -r /proc/${pid_of[$n]}/stat ]] || continue
        v=$(sed 's/.*) //' "/proc/${pid_of[$n]}/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=
        t=$((t + ${v:-0}))
    done
    awk -v t="$t" -v k="$tck" 'BEGIN { printf "%.1f", t / k }'
}

# `logcaster bench --framed ARGS...` against each named node's log port at once (separate
# processes), outputs in $cdir/client.NAME.out/.err. Prints the aggregate lines/s: the lines
# all clients sent over the wall time from the first start to the last exit; fails when a
# client fails.
parallel_bench() {
    local per=$1 nconn=$2 n t0 t1 i rc failed=0
    local nodes=("${@:3}")
    client_pids=()
    t0=$EPOCHREALTIME
    for n in "${nodes[@]}"; do
        timeout "$step_timeout" "$client_bin" --log-port "${lport_of[$n]}" --timeout 10 bench \
            --framed --connections "$nconn" --lines "$per" --no-verify \
            >"$cdir/client.$n.out" 2>"$cdir/client.$n.err" &
        client_pids+=($!)
    done
    for i in "${!nodes[@]}"; do
        rc=0
        wait "${client_pids[$i]}" || rc=$?
        if [[ $rc -ne 0 ]] || ! grep -q '^ingest:' "$cdir/client.${nodes[$i]}.out"; then
            echo "cluster: the client against node ${nodes[$i]} failed (exit $rc):" >&2
            sed 's/^/  /' "$cdir/client.${nodes[$i]}.err" >&2
            failed=1
        fi
    done
    t1=$EPOCHREALTIME
    client_pids=()
    [[ $failed -eq 0 ]] || return 1
    awk -v a="$t0" -v b="$t1" -v n="$((per * ${#nodes[@]}))" 'BEGIN { printf "%.0f %.2f\n", n / (b - a), b - a }'
}

# The clients' CPU seconds (their own report on stderr), summed.
clients_cpu() {
    local n
    for n in "$@"; do
        sed -n 's/.*client cpu user \([0-9.]*\) s sys \([0-9.]*\) s.*/\1 \2/p' "$cdir/client.$n.err"
    done | awk '{ t += $1 + $2 } END { printf "%.1f", t }'
}

cluster_cmd="logcaster --log-port <a|b|c> bench --framed --connections N --lines $lines --no-verify"
single_cmd="logcaster bench --framed --connections N --lines $lines"

echo "LogCaster cluster benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(bench_machine), $build"
echo "$("$nats_bin" --version 2>&1 | head -n1) x 3 (JetStream, routed) and logcasterd nodes," \
    "all on $host; $partitions partitions, $replicas replicas, $copies copies"
echo "Target: 1,000,000 lines/s acknowledged after quorum (JetStream has the batch on a" \
    "majority of its partition's $replicas replicas), in aggregate through the nodes."
echo "Clients, nodes and nats-servers share the machine (load average now:" \
    "$(cut -d' ' -f1-3 /proc/loadavg))."

# ---- 1. Ingest: the cluster beside a single node.
echo
echo "ingest: each cluster run is a fresh cluster; $lines lines per node (3 x $lines in all)," \
    "3 clients at once; single node: fresh logcasterd without --cluster; median of $repeat"
declare -A agg_rows=() single_rows=() cpu_line_rows=()
pub_bytes=0 pub_batches=0 pub_lines=0
t_run_start=$(date +%s)
for c in $conns; do
    rows=() srows=()
    for r in $(seq "$repeat"); do
        [[ $gen -gt 0 ]] && { stop_cluster; collect_errors; rm -rf "$cdir"; }
        # The single node first, same command and connections, verified by COUNT: while no
        # cluster runs (its nodes' background work would share the cores with it).
        start_server
        sres=$(client bench --framed --connections "$c" --lines "$lines") || true
        stop_server
        start_nats
        for n in a b c; do start_node "$n"; done
        # Every node's (empty) partitions held before the clock starts.
        wait_settled 0 >/dev/null || die "the fresh cluster did not settle"
        cpu0=$(cpu_of a b c)
        ncpu0=$(cpu_of "${nats_names[@]}")
        if res=$(parallel_bench "$lines" "$c" a b c); then
            t_acked=$EPOCHREALTIME
            read -r lps secs <<<"$res"
            cpu_nodes=$(awk -v a="$cpu0" -v b="$(cpu_of a b c)" 'BEGIN { printf "%.1f", b - a }')
            cpu_nats=$(awk -v a="$ncpu0" -v b="$(cpu_of "${nats_names[@]}")" \
                'BEGIN { printf "%.1f", b - a }')
            cpu_cl=$(clients_cpu a b c)
            rows+=("$lps")
            printf '  %d connections/node, run %d: %s lines/s aggregate (%s s);' "$c" "$r" "$lps" "$secs"
            for n in a b c; do printf ' %s: %s' "$n" "$(field 'lines/s' " $(cat "$cdir/client.$n.out")")"; done
            echo
            awk -v s="$secs" -v a="$cpu_nodes" -v b="$cpu_nats" -v c="$cpu_cl" -v k="$(nproc)" \
                -v l="$((3 * lines))" 'BEGIN {
                printf "    CPU s in that time: nodes %.1f, nats-servers %.1f, clients %.1f = %.0f%% of %d CPUs;" \
                    " CPU-µs a line: nodes %.2f, nats-servers %.2f\n",
                    a, b, c, 100 * (a + b + c) / (s * k), k, 1e6 * a / l, 1e6 * b / l }'
            # What went to JetStream: the floor step (4) sends the same bytes to nats alone.
            pub_bytes=0 pub_batches=0 pub_lines=0
            for n in a b c; do # A node that does not answer STATS counts 0 (and it shows).
                st=$(node_stats "$n")
                v=$(stat_of cluster_published_bytes "$st")
                pub_bytes=$((pub_bytes + ${v:-0}))
                v=$(stat_of cluster_published_batches "$st")
                pub_batches=$((pub_batches + ${v:-0}))
                v=$(stat_of cluster_published_lines "$st")
                pub_lines=$((pub_lines + ${v:-0}))
            done
            cpu_line_rows[$c]=$(awk -v a="$cpu_nodes" -v b="$cpu_nats" -v l="$((3 * lines))" \
                'BEGIN { printf "%.2f %.2f", 1e6 * a / l, 1e6 * b / l }')
            awk -v b="$pub_bytes" -v m="$pub_batches" -v l="$pub_lines" 'BEGIN {
                if (m > 0 && l > 0)
                    printf "    published to JetStream: %d batches, %.1f MB, %.0f bytes a batch, %.1f bytes a line\n",
                        m, b / 1e6, b / m, b / l }'
            if st=$(wait_settled $((3 * lines))); then
                # COUNT may lag the copies' STATS a little (their stores write behind).
                first=
                for _ in $(seq $((settle_timeout * 5))); do
                    n=$(timeout 60 "$client_bin" --query-port "${qport_of[a]}" --timeout 30 count 2>&1) ||
                        n="FAILED ($n)"
                    first=${first:-$n}
                    [[ $n == "$((3 * lines))" ]] && break
                    sleep 0.2
                done
                echo "    every copy caught up (STATS) $st s after the last acknowledgement;" \
                    "COUNT on a then $first, $n after $(awk -v a="$t_acked" -v b="$EPOCHREALTIME" \
                        'BEGIN { printf "%.1f", b - a }') s"
            fi
        else
            echo "  $c connections/node, run $r: FAILED"
        fi
        if [[ $sres == ingest:* ]]; then
            srows+=("$(field 'lines/s' "$sres")")
            echo "    single node (run just before the cluster): $sres"
        else
            echo "    single node: FAILED"
        fi
    done
    agg_rows[$c]=$(median_of ${rows[@]+"${rows[@]}"})
    single_rows[$c]=$(median_of ${srows[@]+"${srows[@]}"})
done

# ---- 2. Queries from a node that holds no partition, on the last cluster of step 1.
# A name that ranks below `copies` of a, b, c for every partition (member.c: XXH3 of
# "NAME/p", highest first), so that joining moves no partition to it.
pick_name() {
    /usr/bin/python3 - "$partitions" "$copies" <<'EOF' 2>/dev/null || echo d
import ctypes, ctypes.util, sys
parts, copies = int(sys.argv[1]), int(sys.argv[2])
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
h = lib.XXH3_64bits
h.restype, h.argtypes = ctypes.c_uint64, [ctypes.c_char_p, ctypes.c_size_t]
def score(name, p):
    k = ("%s/%d" % (name, p)).encode()
    return h(k, len(k))
for i in range(100000):
    name = "d" if i == 0 else "d%d" % i
    if all(sum(score(o, p) > score(name, p) for o in "abc") >= copies for p in range(parts)):
        print(name)
        break
else:
    print("d")
EOF
}
q_labels=() q_args=()
q_row() { q_labels+=("$1"); shift; q_args+=("$(printf '%q ' "$@")"); }
q_row "COUNT (all entries)" --count
q_row "COUNT level:ERROR" --count -- level:ERROR
# Each client connection sends its buffer from the start, so the rare word is there only when
# a connection sends more than half of it (50,000 lines): 96 times at 2,000,000 lines per node.
q_row "SEARCH $rare_word limit:100" -- "$rare_word limit:100"
q_row "SEARCH timeout limit:100" -- "timeout limit:100"
q_row "SEARCH * | stats by (level) count()" -- "* | stats by (level) count()"
declare -A q_res=()
query_ok=
if [[ ${#rows[@]} -gt 0 ]] && [[ -n $(node_names) ]]; then
    echo
    d=$(pick_name)
    start_node "$d"
    sleep 4 # past the node's settling time (2.5 s), when it would take partitions
    st_d=$(node_stats "$d")
    read -r held_d _ _ list_d < <(held_of "$d" "$st_d")
    read -r held_a _ _ list_a < <(held_of a "$(node_stats a)")
    members=$(stat_of cluster_member_names "$st_d")
    echo "queries: $((3 * lines)) entries in the cluster of the last run; node $d joined" \
        "(members $members): $d holds $held_d partitions ($list_d), a holds $held_a ($list_a)"
    echo "  copies as $d sees them: $(awk '$1 ~ /^cluster_partition_[0-9]+_copies$/ {
        split($1, k, "_"); printf "%sp%s %s", (n++ ? ", " : ""), k[3], $2 }' <<<"$st_d")"
    if wait_settled $((3 * lines)) >/dev/null; then
        query_ok=yes
        for n in a "$d"; do
            for i in "${!q_labels[@]}"; do
                args=()
                eval "args=(${q_args[$i]})"
                cmd=(timeout "$step_timeout" "$client_bin" --query-port "${qport_of[$n]}" --timeout 60 bench-query)
                "${cmd[@]}" --runs 1 "${args[@]}" >/dev/null 2>&1 || true # warm-up
                if res=$("${cmd[@]}" --runs "$query_runs" "${args[@]}" 2>"$cdir/query.err") &&
                    [[ $res == query:* ]]; then
                    q_res[$n|$i]="$(field p50 "$res" | tr -d ms) $(field p99 "$res" | tr -d ms) $(field results "$res")"
                else
                    q_res[$n|$i]="FAILED - -"
                    sed 's/^/  /' "$cdir/query.err" >&2
                fi
                echo "  node $n: ${q_labels[$i]}: ${res:-FAILED}"
            done
        done
        read -r held_d _ _ list_d < <(held_of "$d" "$(node_stats "$d")")
        echo "  after the queries $d holds $held_d partitions (${list_d})"
    fi
    stop_procs "$d"
fi

# ---- 3. Catch-up of a restarted node.
catch=
if [[ -n $query_ok ]]; then
    echo
    st=$(node_stats c)
    read -r _ _ entries_c0 list_c0 < <(held_of c "$st")
    echo "catch-up: c holds partitions $list_c0 ($entries_c0 entries); stopping c (SIGTERM)"
    t0=$EPOCHREALTIME
    stop_procs c
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "  c exited %.1f s after SIGTERM\n", b - a }'
    if res=$(parallel_bench "$lines" 4 a b); then
        read -r lps secs <<<"$res"
        echo "  $lines lines through each of a and b (framed, 4 connections each): $lps lines/s" \
            "aggregate ($secs s)"
        if st=$(wait_settled $((5 * lines))); then
            read -r held_a _ _ list_a < <(held_of a "$(node_stats a)")
            read -r held_b _ _ list_b < <(held_of b "$(node_stats b)")
            echo "  a and b hold every partition caught up (a: $list_a; b: $list_b) $st s after" \
                "the last acknowledgement"
            # a's and b's copies of c's partitions, to compare with c's (with one copy each
            # partition is on one of them).
            st_ab=$(node_stats a; node_stats b)
            t0=$EPOCHREALTIME
            start_node c
            t_up=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
            # Until c holds what it held, all caught up, and its entries stay the same over
            # one poll: the time is that of the first poll that showed the final count.
            deadline=$((SECONDS + settle_timeout))
            prev=-1 t_prev="" t_held=""
            while :; do
                t_now=$EPOCHREALTIME
                read -r held ready entries list < <(held_of c "$(node_stats c)")
                [[ -z $t_held && $held -gt 0 ]] && t_held=$t_now
                if [[ $list == "$list_c0" && $ready -eq $held && $entries -eq $prev ]]; then
                    break
                fi
                [[ $entries -ne $prev ]] && t_prev=$t_now
                prev=$entries
                nodes_alive || break
                ((SECONDS < deadline)) || { echo "  c did not catch up within $settle_timeout s" \
                    "($entries entries, $ready of $held partitions ready)"; break; }
                sleep 0.2
            done
            if [[ $list == "$list_c0" && $ready -eq $held && $entries -eq $prev ]]; then
                catch=$(awk -v a="$t0" -v b="$t_prev" -v h="${t_held:-$t_prev}" -v n="$((entries - entries_c0))" \
                    -v up="$t_up" 'BEGIN {
                        printf "%d %.1f %.0f %.1f %.1f %.0f", n, b - a, n / (b - a), up, b - h,
                            (b > h ? n / (b - h) : 0) }')
                read -r c_n c_secs c_rate c_up _ c_held_rate <<<"$catch"
                echo "  c restarted: ready (cluster_state) after $c_up s, holding its partitions" \
                    "caught up after $c_secs s: $c_n entries replayed, $c_rate entries/s from the" \
                    "start ($c_held_rate/s from the first held partition in STATS)"
                # Its copies against those a and b held before c came back.
                st_c=$(node_stats c)
                same=yes
                for p in ${list_c0//,/ }; do
                    ea=$(awk -v k="cluster_partition_$p" '$1 == k { for (i = 3; i <= NF; i++) if ($i ~ /^entries=/) { print substr($i, 9); exit } }' <<<"$st_ab")
                    ec=$(awk -v k="cluster_partition_$p" '$1 == k { for (i = 3; i <= NF; i++) if ($i ~ /^entries=/) print substr($i, 9) }' <<<"$st_c")
                    [[ -n $ea && $ea == "$ec" ]] || same="no (partition $p: c $ec, a or b ${ea:-not held})"
                done
                echo "  c's partitions hold as many entries as a's or b's copies of them: $same"
                if st=$(wait_settled $((5 * lines))); then
                    read -r held_a _ _ _ < <(held_of a "$(node_stats a)")
                    read -r held_b _ _ _ < <(held_of b "$(node_stats b)")
                    echo "  a and b handed back c's partitions $st s later (now $held_a and $held_b held)"
                fi
            fi
        fi
    fi
fi
stop_cluster
collect_errors

# ---- 4. The floor: the nats-servers alone, for the bytes the last ingest run published.
floor_bin=$build/bench/nats-floor
floor=
echo
if [[ ! -x $floor_bin ]]; then
    echo "floor: $floor_bin not built (make $floor_bin); skipped"
elif ((pub_batches > 0 && pub_lines > 0)); then
    echo "floor: fresh nats-servers, no node; $pub_batches messages of $((pub_bytes / pub_batches))" \
        "random bytes (the last ingest run's batches) to $partitions streams of $replicas replicas," \
        "256 in flight, as the nodes publish them"
    start_nats
    ncpu0=$(cpu_of "${nats_names[@]}")
    if fres=$(timeout "$step_timeout" "$floor_bin" "$nats_urls" "$partitions" "$replicas" \
        "$((pub_bytes / pub_batches))" "$pub_batches" 256 2>&1); then
        cpu_floor=$(awk -v a="$ncpu0" -v b="$(cpu_of "${nats_names[@]}")" 'BEGIN { printf "%.1f", b - a }')
        echo "  $fres; nats-servers $cpu_floor CPU s"
        floor=$(awk -v c="$cpu_floor" -v l="$pub_lines" -v b="$pub_bytes" -v k="$(nproc)" 'BEGIN {
            printf "%.2f %.1f %.2f %d", 1e6 * c / l, b / l, c / l * 1e6, k }')
        read -r floor_us floor_bpl _ _ <<<"$floor"
        echo "  the nats-servers alone take $floor_us CPU-µs a line at $floor_bpl bytes a line:" \
            "1,000,000 lines/s would keep $(awk -v u="$floor_us" 'BEGIN { printf "%.2f", u }') of this" \
            "machine's $(nproc) CPUs busy with them alone"
    else
        echo "  FAILED: $fres"
    fi
    stop_cluster
    collect_errors
fi
echo
if [[ -s $work/errors.log ]]; then
    echo "warnings and errors of the nodes and nats-servers: $(wc -l <"$work/errors.log") line(s); the first 20:"
    head -n 20 "$work/errors.log" | sed 's/^/  /'
else
    echo "no warning or error from any node or nats-server"
fi

# ---- The tables.
echo
echo "cluster: $lines lines per node, medians of $repeat; $(($(date +%s) - t_run_start)) s in all"
echo
echo "| framed, acknowledged | connections per node | lines/s | command |"
echo "|---|---|---|---|"
for c in $conns; do
    echo "| cluster of 3 nodes, 3 clients at once (3 × $lines lines) | $c | ${agg_rows[$c]:-FAILED} |" \
        "\`${cluster_cmd/ N / $c }\` on each node, wall time from the first start to the last exit |"
    echo "| single node, no --cluster ($lines lines) | $c | ${single_rows[$c]:-FAILED} |" \
        "\`${single_cmd/ N / $c }\` |"
done
for c in $conns; do
    awk -v c="$c" -v a="${agg_rows[$c]:-}" -v s="${single_rows[$c]:-}" 'BEGIN {
        if (a > 0 && s > 0) printf "cluster ÷ single node at %d connections per node: %.2f\n", c, a / s }'
done
for c in $conns; do
    [[ -n ${cpu_line_rows[$c]:-} ]] || continue
    read -r un ut <<<"${cpu_line_rows[$c]}"
    echo "CPU-µs a line at $c connections per node: nodes $un, nats-servers $ut (1,000,000 lines/s" \
        "allows $(nproc) in all, clients included)"
done
[[ -n $floor ]] && echo "nats-servers alone for the same bytes (step 4): $floor_us CPU-µs a line"
echo "target: 1,000,000 lines/s acknowledged after quorum; load average at the end:" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n $query_ok ]]; then
    echo
    echo "| request, \`logcaster --query-port P bench-query --runs $query_runs ...\` |" \
        "from a: p50 ms | p99 ms | from $d (no partitions): p50 ms | p99 ms | results |"
    echo "|---|---|---|---|---|---|"
    for i in "${!q_labels[@]}"; do
        read -r a50 a99 ares <<<"${q_res[a|$i]}"
        read -r d50 d99 _ <<<"${q_res[$d|$i]}"
        echo "| \`${q_labels[$i]//|/\\|}\` | $a50 | $a99 | $d50 | $d99 | $ares |"
    done
fi
if [[ -n $catch ]]; then
    echo
    echo "| catch-up of c after a restart ($lines lines through each of a and b while it was down) | value |"
    echo "|---|---|"
    echo "| entries replayed | $c_n |"
    echo "| seconds from the start of the process until caught up (lag=0, entries steady) | $c_secs |"
    echo "| entries/s from the start | $c_rate |"
    echo "| entries/s from the first partition held | $c_held_rate |"
fi
