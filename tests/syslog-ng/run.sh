#!/bin/bash
# `make test-syslog-ng`: the syslog-ng tests (tests/syslog-ng/) against one build tree.
#
# Debian's syslog-ng-core and rsyslog conflict (both are a system-log-daemon), so `make test`
# runs these tests only where syslog-ng is the machine's log daemon. This is the explicit swap:
# when syslog-ng-core is missing it installs it (apt removes the log daemon there was, rsyslog
# say), runs the tests, and then always puts back what the machine had: that daemon (apt
# removes syslog-ng-core), or no daemon at all; even when the tests fail or the run is
# interrupted. Where syslog-ng-core is installed already it changes nothing. It exits with the
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

# The installed packages that provide system-log-daemon (at most one: they conflict).
log_daemons() {
    dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 2>/dev/null |
        awk '/^ii/ && / system-log-daemon( |,|$)/ { print $2 }'
}
had=$(log_daemons)

restored=0
restore_log_daemon() {
    [ "$restored" -eq 1 ] && return 0
    restored=1
    if [ -n "$had" ]; then
        echo "== restoring $had (removes syslog-ng-core)"
        apt_install "$had" && return 0
        echo "test-syslog-ng: could not reinstall $had; run: apt-get install -y $had" >&2
    else
        echo "== removing syslog-ng-core (there was no system log daemon before)"
        $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
            remove -y -qq syslog-ng-core >/dev/null && return 0
        echo "test-syslog-ng: could not remove syslog-ng-core" >&2
    fi
    return 1
}
on_exit() {
    local rc=$?
    restore_log_daemon || { [ "$rc" -eq 0 ] && rc=1; }
    exit "$rc"
}

if [ "$had" = "syslog-ng-core" ]; then
    restored=1 # The machine's own log daemon: nothing to swap, nothing to put back.
else
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "== installing syslog-ng-core${had:+ (removes $had)}"
    if ! apt_install syslog-ng-core; then
        echo "could not install syslog-ng-core"
        echo "0 passed, 1 failed"
        exit 1
    fi
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
restore_log_daemon || f=$((f + 1))
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
