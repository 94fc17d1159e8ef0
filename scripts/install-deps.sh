#!/bin/sh
# Install the Debian packages a make target needs, those that are missing (with sudo when not
# root). Quiet when all are there.
#
#   install-deps.sh run                building and running: debian-packages.txt
#                                      (`make run`, `make install`)
#   install-deps.sh test               that and debian-packages-test.txt
#                                      (`make bench`, `make test-syslog-ng`, the cluster tests)
#   install-deps.sh test --log-daemon  that and, only on a machine with no system log daemon at
#                                      all, Debian's default one, rsyslog (`make test`)
#   --dry-run                          before the list: print "would install: PKG..." (or
#                                      "nothing to install") and change nothing
#
# It never installs or removes a system log daemon beside one that is there: Debian's log
# daemons (rsyslog, syslog-ng-core, ...) conflict, so installing one removes the machine's own.
# The tests use whichever is installed. And apt runs with --no-remove: an install that would
# remove any package stops before changing anything.
#
# dpkg-query honours DPKG_ADMINDIR, so the tests point it at a made-up dpkg database.
set -eu
here=$(dirname "$0")

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then
    dry_run=1
    shift
fi
# The names, one a line, without the comments.
names() { grep -v '^#' "$here/$1"; }
case "${1:-}" in
run) packages=$(names debian-packages.txt) ;;
test) packages="$(names debian-packages.txt) $(names debian-packages-test.txt)" ;;
*)
    echo "usage: $0 [--dry-run] run|test [--log-daemon]" >&2
    exit 2
    ;;
esac
log_daemon=0
case "${2:-}" in
"") ;;
--log-daemon) log_daemon=1 ;;
*)
    echo "usage: $0 [--dry-run] run|test [--log-daemon]" >&2
    exit 2
    ;;
esac

installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

# A system log daemon is any installed package that provides system-log-daemon.
has_log_daemon() {
    dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null |
        grep '^ii' | grep -Eq '(^| |,)system-log-daemon(,|$| )'
}

missing=""
for p in $packages; do
    installed "$p" || missing="$missing $p"
done
if [ "$log_daemon" -eq 1 ] && ! has_log_daemon; then
    missing="$missing rsyslog"
fi

if [ "$dry_run" -eq 1 ]; then
    if [ -z "$missing" ]; then echo "nothing to install"; else echo "would install:$missing"; fi
    exit 0
fi
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
apt_get() { $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq
# shellcheck disable=SC2086 # the package names are words
apt_get install -y -qq --no-remove $missing >/dev/null
