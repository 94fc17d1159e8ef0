# shellcheck shell=bash disable=SC2034,SC2154
# bench/lib.sh - what bench/run.sh and bench/compare.sh share: a fresh logcasterd per
# measurement on ephemeral ports (127.0.0.1, port 0) with an empty data dir, the client run
# against it with a time limit, and clean-up on exit. Sourced, never run (so the variables
# below are the caller's, which the shellcheck directive above accepts).
#
# The caller sets, before calling bench_init:
#   server_bin, client_bin   the binaries (server_bin may change between measurements)
#   step_timeout             seconds any one client command may take
#   server_extra, run_extra  arrays of extra server options (all runs; the next runs)
#   reuse_dir                when set, start_server uses this data dir instead of a fresh one
# and gets from start_server: server_pid, log_port, query_port, http_port, last_dir, run_no.

# Make the scratch directory and the traps: on exit, whatever happens, the client and the
# server are stopped and the scratch directory removed.
bench_init() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/logcaster-bench.XXXXXX")
    server_pid=
    client_pid=
    log_port=
    query_port=
    http_port=
    run_no=0
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}

bench_cleanup() {
    # timeout(1) passes the TERM on to the client it runs.
    if [[ -n $client_pid ]]; then
        kill "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
        client_pid=
    fi
    stop_server
    rm -rf "$work"
}

die() {
    echo "bench: $*" >&2
    exit 1
}

# Start a fresh server and wait (10 s at most) for both "listening" lines on its stdout.
start_server() {
    run_no=$((run_no + 1))
    local dir=${reuse_dir:-$work/data.$run_no} out=$work/server.$run_no.out
    local err=$work/server.$run_no.err
    last_dir=$dir
    mkdir -p "$dir"
    "$server_bin" --bind 127.0.0.1 --log-port 0 --query-port 0 --irc-port -1 --http-port -1 \
        --log-conn-rate 0 --query-conn-rate 0 --irc-conn-rate 0 --http-conn-rate 0 \
        --data-dir "$dir" \
        ${server_extra[@]+"${server_extra[@]}"} ${run_extra[@]+"${run_extra[@]}"} >"$out" \
        2>"$err" &
    server_pid=$!
    for _ in $(seq 200); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid" 2>/dev/null || true
            server_pid=
            cat "$err" >&2
            die "logcasterd exited during start-up"
        fi
        log_port=$(sed -n 's/^listening log .*:\([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
        query_port=$(sed -n 's/^listening query .*:\([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
        http_port=$(sed -n 's/^listening http .*:\([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
        [[ -n $log_port && -n $query_port ]] && return 0
        sleep 0.05
    done
    die "logcasterd did not print both 'listening' lines within 10 s"
}

# The IRC port of the running server (started with --irc-port 0), or nothing.
irc_port_of() {
    sed -n 's/^listening irc .*:\([0-9][0-9]*\)$/\1/p' "$work/server.$run_no.out" | head -n1
}

# Peak resident set size of the running server, in MB.
server_peak_mb() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status" 2>/dev/null || echo "?"
}

# Run the client against the current server and leave its stdout in client_out; its stderr
# goes to $work/client.err (and is appended to $work/client.log), failures are reported on
# stderr. The client runs in the background so that a signal interrupts the wait and
# bench_cleanup can stop it at once instead of after step_timeout.
client_run() {
    local err=$work/client.err out=$work/client.$BASHPID.out rc=0
    timeout "$step_timeout" "$client_bin" --log-port "$log_port" --query-port "$query_port" \
        --timeout 10 "$@" >"$out" 2>"$err" &
    client_pid=$!
    wait "$client_pid" || rc=$?
    client_pid=
    client_out=$(<"$out")
    rm -f "$out"
    if [[ $rc -ne 0 ]]; then
        echo "bench: logcaster $* failed (exit $rc):" >&2
        sed 's/^/  /' "$err" >&2
        kill -0 "$server_pid" 2>/dev/null || echo "  (logcasterd is no longer running)" >&2
    fi
    cat "$err" >>"$work/client.log"
    return $rc
}

# The same with the client's stdout on stdout, for res=$(client ...).
client() {
    local rc=0
    client_run "$@" || rc=$?
    printf '%s\n' "$client_out"
    return $rc
}

# Pick key=value out of a result line.
field() { sed -n "s|.*[[:space:]]$1=\([^[:space:]]*\).*|\1|p" <<<"$2"; }

# The median of the numbers given (the lower middle one of an even count), or nothing.
median_of() {
    printf '%s\n' "$@" | sort -n | awk 'NF { v[++n] = $1 } END { if (n) print v[int((n + 1) / 2)] }'
}

# The machine, for the first line of a report.
bench_machine() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
    echo "$(nproc) CPUs${cpu:+ ($cpu)}"
}
