"""Which system log daemon this machine has, for the real-sender tests.

Debian's log daemons (rsyslog, syslog-ng-core, ...) all provide system-log-daemon and conflict,
so a machine has at most one. `make test` never swaps it: the rsyslog test runs where rsyslog is
installed, the syslog-ng tests (tests/syslog-ng/) where syslog-ng is, and the other kind's tests
are skipped with skip_reason()'s one line. Only a machine with none gets rsyslog from
`make test` (scripts/install-deps.sh test --log-daemon)."""
import re
import subprocess


def installed(admindir=None):
    """The installed packages that provide system-log-daemon, sorted (dpkg's database, or the
    one in admindir)."""
    cmd = ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Provides}\\n"]
    if admindir:
        cmd.insert(1, "--admindir=" + admindir)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return []          # Not a Debian system: no dpkg, no packages to name.
    found = []
    for line in out.splitlines():
        status, _, rest = line.partition("|")
        pkg, _, provides = rest.partition("|")
        if status.startswith("ii") and "system-log-daemon" in re.split(r"[,\s]+", provides):
            found.append(pkg)
    return sorted(found)


def skip_reason(wanted):
    """One line on why `wanted`'s tests (rsyslog or syslog-ng) do not run here."""
    have = installed()
    if have:
        return ("%s is not installed: this machine's log daemon is %s, which `make test` never "
                "replaces (`make test-syslog-ng` swaps on purpose)" % (wanted, ", ".join(have)))
    return ("%s is not installed, nor any system log daemon (`make test` installs rsyslog on "
            "such a machine)" % wanted)
