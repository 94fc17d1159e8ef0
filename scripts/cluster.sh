#!/bin/bash
# A local LogCaster cluster to try out (`make cluster`): three JetStream nats-servers clustered
# on 127.0.0.1 (n1, n2, n3) and three logcasterd nodes (a, b, c) using them, in the foreground.
# Prints every node's ports; Ctrl-C (or SIGTERM) stops them all, and so does the exit of any
# one of them (the script then exits 1).
#
#   scripts/cluster.sh [BUILD_DIR]     the binaries of BUILD_DIR (default build/rel)
#
# Everything lives under build/cluster/ and is kept from one run to the next (rm -rf it for a
# fresh cluster): nats-N.conf, nats-N/ (JetStream store), nats-N.log; node-X/ (data
# directory), node-X.log (stderr), node-X.out (stdout).
#
# Ports. By default the nats-servers get free loopback ports picked at start (client, route,
# monitoring; a route list must name them before the servers start) and the logcasterd nodes
# port 0 (each listener picks one), read back from their "listening" lines. With
# CLUSTER_PORT_BASE=P every port is fixed instead:
#   nats n1..n3   client P+0..P+2   route P+10..P+12   monitoring (HTTP) P+20..P+22
#   node a        ingest P+100  query P+101  IRC P+102  HTTP P+103   (b: P+110..., c: P+120...)
# Environment:
#   CLUSTER_PORT_BASE  fixed ports as above (default: picked at start)
#   CLUSTER_ARGS       extra logcasterd options for every node, e.g. "--cluster-replicas 3"
#   CLUSTER_NAME       --cluster-name of the nodes (default: the daemon's, logcaster)
#   NATS_SERVER        the nats-server binary (default: from PATH, else /usr/sbin/nats-server)
#   CLUSTER_DIR        where it all lives (default build/cluster)
set -u
build=${1:-build/rel}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

dir=${CLUSTER_DIR:-build/cluster}
[[ $dir == /* ]] || dir=$root/$dir # Absolute: the nats configs name it from any directory.
nats_bin=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
names=(a b c)
host=127.0.0.1
start_timeout=20 # Seconds a process may take to be up (nats: monitoring answers; node: listening).
stop_timeout=15  # Seconds all may take to exit after SIGTERM before they are killed.

die() {
    echo "cluster: $*" >&2
    exit 1
}

[[ -x $build/logcasterd ]] || die "no $build/logcasterd (make $build/logcasterd)"
[[ -x $nats_bin ]] || die "no nats-server at $nats_bin (Debian package nats-server: make deps-test)"
command -v curl >/dev/null || die "curl is missing (make deps-test)"
mkdir -p "$dir" || die "cannot create $dir"

# The lines of log file $1 from this script's last start of that process on (the "====" line).
last_run() {
    awk '/^==== /{n=0} {line[n++]=$0} END{for (i = (n > 15 ? n - 15 : 0); i < n; i++) print line[i]}' "$1"
}

# Every process started, by pid, and what it is, for cleanup and the death watch.
pids=()
declare -A what=()
stopping=0

# shellcheck disable=SC2317 # reached through the trap
cleanup() {
    stopping=1
    trap '' INT TERM
    [[ ${#pids[@]} -eq 0 ]] && return
    local p left
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    # Wait for them all, at most stop_timeout seconds, then SIGKILL what is left.
    for ((left = stop_timeout * 10; left > 0; left--)); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            echo "cluster: ${what[$p]} still running after ${stop_timeout} s: killed" >&2
            kill -KILL "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
    done
    pids=()
    echo "cluster: stopped"
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

# A child dies with this script even when the script is killed (SIGKILL leaves no trap).
launcher=()
command -v setpriv >/dev/null && launcher=(setpriv --pdeathsig TERM --)

# ---- Ports
if [[ -n ${CLUSTER_PORT_BASE:-} ]]; then
    base=$CLUSTER_PORT_BASE
    if ! [[ $base =~ ^[0-9]+$ ]] || ((base == 0 || base + 123 > 65535)); then
        die "CLUSTER_PORT_BASE=$base: want a port number from 1 to 65412"
    fi
    nats_ports=() route_ports=() http_ports=()
    for i in 0 1 2; do
        nats_ports+=($((base + i)))
        route_ports+=($((base + 10 + i)))
        http_ports+=($((base + 20 + i)))
    done
    node_ports() { # node index -> "ingest query irc http"
        local p=$((base + 100 + 10 * $1))
        echo "$p $((p + 1)) $((p + 2)) $((p + 3))"
    }
else
    # Nine distinct free ports: all bound at once, then released.
    read -r -a free < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))') || die "cannot pick free ports"
    nats_ports=("${free[@]:0:3}")
    route_ports=("${free[@]:3:3}")
    http_ports=("${free[@]:6:3}")
    node_ports() { echo "0 0 0 0"; }
fi

# ---- NATS: three JetStream servers, routed to each other
urls=""
for i in 0 1 2; do
    n=$((i + 1))
    routes=""
    for j in 0 1 2; do
        [[ $j -ne $i ]] && routes+="        \"nats-route://$host:${route_ports[$j]}\""$'\n'
    done
    # The cluster's name stays the same from run to run: the JetStream stores belong to it.
    cat >"$dir/nats-$n.conf" <<EOF
# Written by scripts/cluster.sh (make cluster) on every start.
server_name: "n$n"
listen: "$host:${nats_ports[$i]}"
http: "$host:${http_ports[$i]}"
max_payload: 8MB
jetstream {
    store_dir: "$dir/nats-$n"
}
cluster {
    name: "logcaster-demo"
    listen: "$host:${route_ports[$i]}"
    routes: [
$routes    ]
}
EOF
    urls+="${urls:+,}nats://$host:${nats_ports[$i]}"
done

for n in 1 2 3; do
    echo "==== $(date -u '+%F %T') scripts/cluster.sh" >>"$dir/nats-$n.log"
    "${launcher[@]}" "$nats_bin" -c "$dir/nats-$n.conf" >>"$dir/nats-$n.log" 2>&1 </dev/null &
    pids+=($!)
    what[$!]="nats-server n$n"
done

# JetStream is usable once every server's /healthz says ok (in contact with a meta leader).
# On existing stores the election of a metadata leader can take several seconds.
echo "cluster: starting nats-servers n1 n2 n3, waiting for JetStream (logs: $dir/nats-N.log)"
deadline=$((SECONDS + start_timeout))
for i in 0 1 2; do
    n=$((i + 1))
    until curl -sf --max-time 2 "http://$host:${http_ports[$i]}/healthz" 2>/dev/null |
        grep -q '"ok"'; do
        p=${pids[$i]}
        if ! kill -0 "$p" 2>/dev/null; then
            wait "$p"
            echo "cluster: nats-server n$n exited with status $? at start; $dir/nats-$n.log:" >&2
            last_run "$dir/nats-$n.log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "cluster: JetStream on n$n not ready within $start_timeout s; $dir/nats-$n.log:" >&2
            last_run "$dir/nats-$n.log" >&2
            exit 1
        fi
        sleep 0.2
    done
done

print_nats() {
    printf '\n%-6s %-8s %-8s %-10s %s\n' nats client route monitor store
    for i in 0 1 2; do
        printf '%-6s %-8s %-8s %-10s %s\n' "n$((i + 1))" "${nats_ports[$i]}" "${route_ports[$i]}" \
            "${http_ports[$i]}" "$dir/nats-$((i + 1))"
    done
    printf '%s\n\n' "--cluster $urls"
}
print_nats

# ---- logcasterd nodes a, b, c
# shellcheck disable=SC2206 # CLUSTER_ARGS is split into words on purpose
extra=(${CLUSTER_ARGS:-})
[[ -n ${CLUSTER_NAME:-} ]] && extra=(--cluster-name "$CLUSTER_NAME" "${extra[@]}")
declare -A ports=()
for k in 0 1 2; do
    name=${names[$k]}
    read -r p_log p_query p_irc p_http < <(node_ports "$k")
    out="$dir/node-$name.out"
    : >"$out"
    echo "==== $(date -u '+%F %T') scripts/cluster.sh" >>"$dir/node-$name.log"
    "${launcher[@]}" "$build/logcasterd" --bind "$host" --log-port "$p_log" --query-port "$p_query" \
        --irc-port "$p_irc" --http-port "$p_http" --data-dir "$dir/node-$name" \
        --cluster "$urls" --node-name "$name" "${extra[@]}" >"$out" 2>>"$dir/node-$name.log" </dev/null &
    pid=$!
    pids+=("$pid")
    what[$pid]="logcasterd node $name"
    # Its four "listening ROLE ADDR:PORT" lines.
    deadline=$((SECONDS + start_timeout))
    while [[ $(grep -cE '^listening (log|query|irc|http) ' "$out") -lt 4 ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            rc=$?
            echo "cluster: logcasterd node $name exited with status $rc at start; $dir/node-$name.log:" >&2
            last_run "$dir/node-$name.log" >&2
            if grep -q "unknown option '--cluster" "$dir/node-$name.log"; then
                echo "cluster: this $build/logcasterd has no cluster support yet (--cluster);" \
                    "the nats-servers were up: see the table above" >&2
            fi
            exit 1
        fi
        ((SECONDS >= deadline)) && die "logcasterd node $name printed no 'listening' lines within $start_timeout s"
        sleep 0.1
    done
    for role in log query irc http; do
        ports[$name.$role]=$(sed -n "s/^listening $role .*:\([0-9][0-9]*\)\$/\1/p" "$out" | head -n1)
    done
done

# ---- The nodes' table
print_nodes() {
    printf '\n%-6s %-8s %-8s %-8s %-8s %s\n' node ingest query irc http data
    for name in "${names[@]}"; do
        printf '%-6s %-8s %-8s %-8s %-8s %s\n' "$name" "${ports[$name.log]}" "${ports[$name.query]}" \
            "${ports[$name.irc]}" "${ports[$name.http]}" "$dir/node-$name"
    done
    echo
    echo "all on $host; e.g. $build/logcaster --log-port ${ports[a.log]} send FILE;" \
        "$build/logcaster --query-port ${ports[b.query]} query 'level:ERROR'"
}
print_nodes
echo "cluster: running; Ctrl-C stops it"

# ---- Until Ctrl-C or the death of any process
wait -n "${pids[@]}"
rc=$?
[[ $stopping -eq 1 ]] && exit 130
for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
        echo "cluster: ${what[$p]} exited (status $rc): stopping the others" >&2
        break
    fi
done
exit 1
