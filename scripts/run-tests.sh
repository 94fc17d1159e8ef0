#!/bin/bash
# Run the whole suite against one build tree (the ASan+UBSan one from `make test`):
# unit tests, integration tests over real sockets, and a short run of every fuzzer.
# Ends with one line: "N passed, N failed".
set -u
build=${1:-build/asan}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0
failed=0
# What failed, by name, repeated just above the summary line: CI may keep only the end of
# the output.
failures=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== unit tests"
for t in "$build"/tests/unit/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    rc=$?
    echo "$out" | tail -n 20
    line=$(echo "$out" | grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    [ -n "$line" ] || { p=0; f=1; }
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ "$f" -ne 0 ] && failures+=("unit $(basename "$t"): $(echo "$out" | grep -m 3 -iE 'fail|error' | tr '\n' ' ')")
    passed=$((passed + p))
    failed=$((failed + f))
done

echo "== integration tests"
export LOGCASTERD="$root/$build/logcasterd" LOGCASTER="$root/$build/logcaster"
# -rs: every skipped test says why in one line (a real sender that is not installed, say).
# tests/syslog-ng runs in a pytest of its own (it has its own conftest.py); it runs where
# syslog-ng is the machine's log daemon and is skipped in one line elsewhere.
for dir in tests/integration tests/syslog-ng; do
    out=$(/usr/bin/python3 -m pytest -q -rsfE -p no:cacheprovider "$dir" 2>&1)
    rc=$?
    echo "$out" | tail -n 40
    p=$(echo "$out" | grep -Eo '[0-9]+ passed' | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
    f=$(echo "$out" | grep -Eo '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
    # Exit 5 is "no tests ran": syslog-ng's module skipped as a whole.
    [ $rc -ne 0 ] && [ $rc -ne 5 ] && [ "$f" -eq 0 ] && f=1
    [ "$f" -ne 0 ] && while IFS= read -r l; do failures+=("$l"); done \
        < <(echo "$out" | grep -E '^(FAILED|ERROR) ' | cut -c 1-300; [ $rc -gt 1 ] && [ $rc -ne 5 ] && echo "pytest $dir: exit $rc")
    passed=$((passed + p))
    failed=$((failed + f))
done

# The public IRC conformance suite (irctest), core profile with the tests it leaves out by
# default (OPER, multi-prefix: both supported), against a plain IRC server
# (--irc-log-channels off). It lives beside the project in ../shared (CI has it); it is
# someone else's code and is never copied into the project. irctest's controller does not
# name the server, so the name its tests expect is passed here. The two Faketime LIST tests are
# left out: they test ELIST C and T, which the server does not offer (they skip), and where
# Debian's faketime is installed the suite runs the server under its LD_PRELOAD, which an
# ASan binary refuses to start under.
irctest="$root/../shared/irctest"
if [ -x "$irctest/run.sh" ]; then
    echo "== irctest (core profile, --irc-log-channels off)"
    work=$(mktemp -d)
    args="--http-port 0 --irc-log-channels off --irc-server-name My.Little.Server"
    args="$args --irc-oper operuser:operpassword" # The operator irctest's OPER tests log in as.
    out=$(LOGCASTER_EXTRA_ARGS="$args" \
        OUT_DIR="$work/out" IRCTEST_DIR="$work/irctest" \
        timeout "${IRCTEST_SECONDS:=600}" "$irctest/run.sh" --keep-excluded "$build/logcasterd" \
        -- -k "not Faketime" 2>&1)
    rc=$?
    echo "$out" | tail -n 40
    sum=$(echo "$out" | grep -E '^(=+ )?[0-9]+ (passed|failed)' | tail -n 1)
    p=$(echo "$sum" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)
    f=$(echo "$sum" | grep -Eo '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1 # Timed out, or the runner failed before pytest.
    [ "$f" -ne 0 ] && failures+=("irctest: rc $rc; $(echo "$out" | grep -E '^(FAILED|ERROR) ' | cut -c 1-200 | tr '\n' ' ')")
    passed=$((passed + p))
    failed=$((failed + f))
    rm -rf "$work"
else
    echo "== irctest: skipped (no ../shared/irctest beside the project)"
fi

echo "== fuzzers (${FUZZ_SECONDS:=15} s each)"
if command -v clang >/dev/null; then
    # Build them all first, in parallel (they share one instrumented library); a target that
    # fails to build is reported below.
    targets=$(for src in tests/fuzz/fuzz_*.c; do echo "build/fuzz/$(basename "$src" .c)"; done)
    make --no-print-directory -s -j"$(nproc)" $targets >/dev/null 2>&1
    # A fuzzer is one thread: as many run at once as there are CPUs, each for FUZZ_SECONDS,
    # and they are reported in order once all are done (each one's exit status in a file).
    names=() dirs=() pids=()
    running() { # Those of pids still running (kill -0 sees them; no subshell's job table).
        local n=0 p
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
        echo "$n"
    }
    for src in tests/fuzz/fuzz_*.c; do
        [ -f "$src" ] || continue
        name=$(basename "$src" .c)
        if ! make --no-print-directory -s "build/fuzz/$name" >/dev/null 2>&1; then
            echo "fuzz $name: build failed"; failed=$((failed + 1)); failures+=("fuzz $name: build failed"); continue
        fi
        corpus=$(mktemp -d)
        [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
        while [ "$(running)" -ge "$(nproc)" ]; do sleep 0.2; done
        ( "build/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
            "$corpus" >"$corpus.log" 2>&1; echo $? >"$corpus.rc" ) &
        names+=("$name") dirs+=("$corpus") pids+=($!)
    done
    wait "${pids[@]}"
    for i in "${!names[@]}"; do
        name=${names[$i]} corpus=${dirs[$i]}
        if [ "$(cat "$corpus.rc" 2>/dev/null)" = 0 ]; then
            echo "fuzz $name: ok ($(grep -Eo 'Done [0-9]+ runs' "$corpus.log" | tail -n 1))"
            passed=$((passed + 1))
        else
            echo "fuzz $name: FAILED"; tail -n 30 "$corpus.log"; failed=$((failed + 1))
            failures+=("fuzz $name: $(grep -m 1 -E 'ERROR|SUMMARY' "$corpus.log")")
        fi
        rm -rf "$corpus" "$corpus.log" "$corpus.rc"
    done
else
    echo "clang not found: fuzzers not run"; failed=$((failed + 1))
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "== what failed"
    printf '%s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
