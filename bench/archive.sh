#!/bin/bash
# bench/archive.sh LEVEL [LINES] - what the archiver makes of the bench's log lines.
#
# Starts build/rel/logcasterd on free ports with a fresh data directory, --segment-size 16M,
# --codec $BENCH_CODEC (lz4 unless set) and --archive-level LEVEL (0: no archiving), loads LINES (default 2,000,000) lines with
# `logcaster bench`, waits until every sealed segment is archived, and prints the sealed
# segments' size against their records and against the bytes received, and how long the
# archiver took after the load.
set -euo pipefail
level=${1:?usage: bench/archive.sh LEVEL [LINES]}
lines=${2:-2000000}
bin=$(cd "$(dirname "$0")/.." && pwd)/build/rel
dir=$(mktemp -d /tmp/logcaster-archive.XXXXXX)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lp=$(free_port) qp=$(free_port)
"$bin/logcasterd" --data-dir "$dir/data" --log-port "$lp" --query-port "$qp" --irc-port 0 \
    --http-port 0 --segment-size 16M --codec "${BENCH_CODEC:-lz4}" --archive-level "$level" \
    >"$dir/log" 2>&1 &
pid=$!
client() { "$bin/logcaster" --log-port "$lp" --query-port "$qp" "$@"; }
for _ in $(seq 50); do client ping >/dev/null 2>&1 && break; sleep 0.1; done
client bench --connections 4 --lines "$lines" >/dev/null 2>&1
t0=$(date +%s.%N)
sv() { awk -v k="$1" '$1 == k { print $2 }' <<<"$stats"; }
while :; do
    stats=$(client stats)
    [[ $level == 0 || $(sv segments_archived) -ge $(($(sv segments) - 1)) ]] && break
    sleep 0.2
done
t1=$(date +%s.%N)
# The sealed segments: all but the newest, with their entries from the ids in their names.
mapfile -t segs < <(ls "$dir/data"/*.seg | sort)
last=${segs[-1]##*/}
first=${segs[0]##*/}
entries=$(( 10#${last%.seg} - 10#${first%.seg} ))
bytes=0
for f in "${segs[@]:0:${#segs[@]}-1}"; do bytes=$((bytes + $(stat -c %s "$f"))); done
awk -v codec="${BENCH_CODEC:-lz4}" -v lvl="$level" -v b="$bytes" -v n="$entries" -v raw="$(sv raw_bytes)" \
    -v sent="$(sv bytes_received)" -v all="$(sv entries)" -v s=$((${#segs[@]} - 1)) \
    -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" 'BEGIN {
        r = raw / all; w = sent / all
        printf "%s archive level %s: %d sealed segments, %d entries, %.1f MB: %.2f%% of their records, %.2f%% of the bytes received; archiver done %.0f s after the load\n",
            codec, lvl, s, n, b / 1e6, 100 * b / (n * r), 100 * b / (n * w), t }'
