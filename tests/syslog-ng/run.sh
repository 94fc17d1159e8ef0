#!/bin/bash
# `make test-syslog-ng`: the syslog-ng tests (tests/syslog-ng/) against one build tree.
#
# Debian's syslog-ng-core and rsyslog conflict, and `make test` needs rsyslog. So this installs
# syslog-ng-core (apt removes rsyslog), runs the tests, and then always puts rsyslog back (apt
# removes syslog-ng-core), even when the tests fail or the run is interrupted. It exits with the
# tests' status and ends with one line: "N passed, N failed".
set -u
build=${1:-build/asan}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
apt_install() {
    # Waits for the dpkg lock rather than failing when another apt is running; refreshes the
    # package lists once if the install fails with the cached ones.
    local a=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq)
    $sudo_cmd "${a[@]}" "$@" >/dev/null && return 0
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        $sudo_cmd "${a[@]}" "$@" >/dev/null
}

restored=0
restore_rsyslog() {
    [ "$restored" -eq 1 ] && return 0
    restored=1
    echo "== restoring rsyslog (removes syslog-ng-core)"
    if apt_install rsyslog; then
        return 0
    fi
    echo "test-syslog-ng: could not reinstall rsyslog; run: apt-get install -y rsyslog" >&2
    return 1
}
on_exit() {
    local rc=$?
    restore_rsyslog || { [ "$rc" -eq 0 ] && rc=1; }
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== installing syslog-ng-core (removes rsyslog)"
if ! apt_install syslog-ng-core; then
    echo "could not install syslog-ng-core"
    echo "0 passed, 1 failed"
    exit 1
fi

echo "== syslog-ng tests ($(/usr/sbin/syslog-ng --version 2>/dev/null | head -n 1))"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LOGCASTERD="$root/$build/logcasterd" LOGCASTER="$root/$build/logcaster"
export LOGCASTER_REQUIRE_SYSLOG_NG=1
out=$(/usr/bin/python3 -m pytest -q -rxXs -p no:cacheprovider tests/syslog-ng 2>&1)
rc=$?
echo "$out" | tail -n 60
p=$(echo "$out" | grep -Eo '[0-9]+ passed' | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
f=$(echo "$out" | grep -Eo '[0-9]+ (failed|error)' | awk '{s+=$1} END {print s+0}')
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
restore_rsyslog || f=$((f + 1))
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
