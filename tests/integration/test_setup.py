"""Set-up that respects the machine: what `make run`, `make install`, `make test` and the others
install (scripts/install-deps.sh and its two lists), that no command installs a system log
daemon beside the machine's own, that --data-dir makes its missing parents owner-only, and that
`make run` leaves the clone as git has it.

The install script is only ever run with --dry-run here, against made-up dpkg databases
(DPKG_ADMINDIR), and apt only simulates (`apt-get -s`): nothing is installed."""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

import logdaemon
from conftest import HOST, LOGCASTERD, ROOT, SHUTDOWN_TIMEOUT, STARTUP_TIMEOUT, server_env

SCRIPT = os.path.join(ROOT, "scripts", "install-deps.sh")
RUN_LIST = os.path.join(ROOT, "scripts", "debian-packages.txt")
TEST_LIST = os.path.join(ROOT, "scripts", "debian-packages-test.txt")
DPKG_STATUS = "/var/lib/dpkg/status"
# What only the tests, the benchmarks and the cluster need: none of it belongs in the run list.
TEST_TOOLS = {"python3-pytest", "python3-selenium", "chromium", "chromium-driver", "irssi",
              "tmux", "weechat-headless", "weechat-plugins", "wrk", "curl", "clang",
              "libclang-rt-14-dev", "fonts-dejavu-core", "groff-base", "nats-server",
              "rsyslog", "syslog-ng-core"}
LOG_DAEMONS = {"rsyslog", "syslog-ng-core", "busybox-syslogd", "inetutils-syslogd",
               "socklog-run"}
APT_TIMEOUT = 120
MAKE_RUN_TIMEOUT = 300     # Building (about 10 s on an idle machine) and starting `make run`.

debian = pytest.mark.skipif(not shutil.which("dpkg-query") or not os.path.exists(DPKG_STATUS),
                            reason="not a Debian system: no dpkg database")


def read_list(path):
    with open(path) as f:
        return [w for line in f if not line.startswith("#") for w in line.split()]


def dry_run(*args, admindir=None):
    """The packages `install-deps.sh --dry-run ARGS` would install, in its order."""
    env = dict(os.environ)
    if admindir:
        env["DPKG_ADMINDIR"] = str(admindir)
    p = subprocess.run([SCRIPT, "--dry-run"] + list(args), capture_output=True, text=True,
                       timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    if out == "nothing to install":
        return []
    assert out.startswith("would install: ") and "\n" not in out, out
    return out[len("would install: "):].split()


# ---- made-up dpkg databases --------------------------------------------------------------

def stanzas(text):
    return [s for s in text.split("\n\n") if s.strip()]


def package_of(stanza):
    m = re.match(r"Package: (\S+)", stanza)
    return m.group(1) if m else None


def fake_db(tmp_path, name, drop=(), add=()):
    """A dpkg database: this machine's, less the packages in drop, plus the stanzas in add."""
    d = tmp_path / name
    d.mkdir()
    with open(DPKG_STATUS) as f:
        kept = [s for s in stanzas(f.read()) if package_of(s) not in drop]
    (d / "status").write_text("\n\n".join(kept + list(add)) + "\n")
    return d


def apt_show(pkgs):
    """{package: its candidate's stanza} from apt's lists, for those of pkgs apt knows. One
    apt-cache call for them all: each call costs about a second here."""
    p = subprocess.run(["apt-cache", "show", "--no-all-versions"] + sorted(pkgs),
                       capture_output=True, text=True, timeout=APT_TIMEOUT)
    found = {}
    for stanza in stanzas(p.stdout):
        found.setdefault(package_of(stanza), stanza)
    return found


def installed_stanza(shown, pkg):
    """pkg's stanza (from apt_show) as dpkg records an installed package. Its Depends are left
    out, so the made-up database holds no broken package for apt to complain about."""
    if pkg not in shown:
        pytest.skip("apt knows no %s package here (run apt-get update)" % pkg)
    keep = ("Package", "Version", "Architecture", "Maintainer", "Provides", "Conflicts",
            "Breaks", "Replaces", "Description")
    fields = [line for line in shown[pkg].splitlines()
              if line.split(":", 1)[0] in keep and not line.startswith(" ")]
    fields.insert(1, "Status: install ok installed")
    return "\n".join(fields)


def simulate(admindir, pkgs, *flags):
    """apt-get -s install pkgs against the database in admindir: (exit status, output)."""
    p = subprocess.run(["apt-get", "-s", "-o", "Dir::State::status=%s/status" % admindir,
                        "-o", "Debug::NoLocking=1", "install"] + list(flags) + list(pkgs),
                       capture_output=True, text=True, timeout=APT_TIMEOUT,
                       env=dict(os.environ, LC_ALL="C"), stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


def conflicts(stanza):
    """The names a package's stanza conflicts with or breaks (versions dropped)."""
    names = set()
    for line in stanza.splitlines():
        if line.startswith(("Conflicts:", "Breaks:")):
            for alt in re.split(r"[,|]", line.split(":", 1)[1]):
                if alt.strip():
                    names.add(alt.split()[0].split(":")[0])
    return names


def installed_names(admindir):
    """Every installed package of the database in admindir, and every name they provide."""
    p = subprocess.run(["dpkg-query", "--admindir=%s" % admindir, "-W", "-f",
                        "${db:Status-Abbrev}|${Package}|${Provides}\n"],
                       capture_output=True, text=True, timeout=60)
    names = set()
    for line in p.stdout.splitlines():
        status, pkg, provides = line.split("|", 2)
        if status.startswith("ii"):
            names.add(pkg)
            names.update(w.split()[0] for w in provides.split(",") if w.strip())
    return names


# ---- the two lists ---------------------------------------------------------------------

def test_run_list_holds_no_test_package():
    run, test = read_list(RUN_LIST), read_list(TEST_LIST)
    assert run and test
    assert not set(run) & TEST_TOOLS, set(run) & TEST_TOOLS
    assert not set(run) & set(test), set(run) & set(test)
    assert len(set(run)) == len(run) and len(set(test)) == len(test)
    # Neither list names a log daemon: only install-deps.sh decides that, from the machine.
    assert not (set(run) | set(test)) & LOG_DAEMONS
    # The cluster tests' packages are in the test list.
    assert "libnats-dev" in run  # The cluster's client library is linked by every build.
    assert {"nats-server", "python3-pytest"} <= set(test)


@debian
def test_each_target_asks_for_its_own_list(tmp_path):
    """On a machine with nothing installed: `run` names exactly the run list, `test` adds the
    test list, and only `test --log-daemon` (what `make test` runs) adds a log daemon."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "status").write_text("")
    run, test = read_list(RUN_LIST), read_list(TEST_LIST)
    assert dry_run("run", admindir=empty) == run
    assert dry_run("test", admindir=empty) == run + test
    assert dry_run("test", "--log-daemon", admindir=empty) == run + test + ["rsyslog"]
    # And the make targets call it so (make -n prints, runs nothing but sub-makes, also -n).
    calls = {}
    for target in ("run", "install", "test", "bench", "test-syslog-ng"):
        p = subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT, target,
                            "DESTDIR=%s/stage" % tmp_path], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        calls[target] = [line.strip() for line in p.stdout.splitlines()
                         if "install-deps.sh" in line]
    assert calls == {"run": ["scripts/install-deps.sh run"],
                     "install": ["scripts/install-deps.sh run"],
                     "test": ["scripts/install-deps.sh test --log-daemon"],
                     "bench": ["scripts/install-deps.sh test"],
                     "test-syslog-ng": ["scripts/install-deps.sh test"]}


# ---- no log daemon beside the machine's own ----------------------------------------------

@debian
@pytest.mark.skipif(not shutil.which("apt-get"), reason="no apt-get")
def test_install_script_never_names_a_conflicting_package(tmp_path):
    """For this machine and made-up ones (syslog-ng, rsyslog, no log daemon), in each mode: the
    packages the script names conflict with nothing installed, by apt's metadata, and apt's
    simulation of installing them removes nothing."""
    shown = apt_show(set(read_list(RUN_LIST) + read_list(TEST_LIST)) | LOG_DAEMONS)
    dbs = {
        "this machine": fake_db(tmp_path, "this"),
        "syslog-ng": fake_db(tmp_path, "syslog-ng", drop=LOG_DAEMONS,
                             add=[installed_stanza(shown, "syslog-ng-core")]),
        "rsyslog": fake_db(tmp_path, "rsyslog", drop=LOG_DAEMONS,
                           add=[installed_stanza(shown, "rsyslog")]),
        "no log daemon": fake_db(tmp_path, "none", drop=LOG_DAEMONS),
    }
    for what, db in dbs.items():
        have = installed_names(db)
        for mode in (["run"], ["test"], ["test", "--log-daemon"]):
            named = dry_run(*mode, admindir=db)
            for pkg in named:
                assert pkg in shown, "%s: apt knows no package %s" % (what, pkg)
                clash = conflicts(shown[pkg]) & have
                assert not clash, "%s, %s: %s conflicts with installed %s" % (what, mode, pkg,
                                                                             clash)
            # A log daemon only for `make test`, and only where there is none.
            daemons = set(named) & LOG_DAEMONS
            if mode == ["test", "--log-daemon"] and what == "no log daemon":
                assert daemons == {"rsyslog"}, named
            else:
                assert not daemons, (what, mode, named)
            if named:
                rc, out = simulate(db, named)
                assert rc == 0, (what, mode, out[-3000:])
                assert not re.search(r"^Remv ", out, re.M), (what, mode, out[-3000:])
    # The check has teeth: rsyslog on the syslog-ng machine is a removal, and the script's
    # --no-remove makes apt refuse it before changing anything.
    rc, out = simulate(dbs["syslog-ng"], ["rsyslog"])
    assert rc == 0 and re.search(r"^Remv syslog-ng-core", out, re.M), out[-3000:]
    rc, out = simulate(dbs["syslog-ng"], ["rsyslog"], "--no-remove")
    assert rc != 0 and "Remv" not in out, out[-3000:]


def test_skip_reason_names_the_machines_log_daemon():
    have = logdaemon.installed()
    reason = logdaemon.skip_reason("syslog-ng")
    assert "\n" not in reason and reason.startswith("syslog-ng is not installed")
    for pkg in have:
        assert pkg in reason
    if not have:
        assert "make test` installs rsyslog" in reason


# ---- --data-dir ------------------------------------------------------------------------

def start_and_stop(args, cwd):
    """Start logcasterd on ephemeral loopback ports, wait for its start-up line, SIGTERM it;
    returns its stderr."""
    p = subprocess.Popen([LOGCASTERD, "--bind", HOST, "--log-port", "0", "--query-port", "0",
                          "--irc-port", "0", "--http-port", "0"] + list(args),
                         cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=server_env(), text=True)
    lines = []
    watchdog = threading.Timer(STARTUP_TIMEOUT, p.kill)   # Bounds the reading loop.
    watchdog.start()
    try:
        for line in p.stderr:
            lines.append(line)
            if "logcasterd started" in line:
                break
        watchdog.cancel()
        p.send_signal(signal.SIGTERM)
        _, rest = p.communicate(timeout=SHUTDOWN_TIMEOUT)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


def started_dir(stderr):
    m = re.search(r"logcasterd started: .*, data dir (.*), fsync \w+$", stderr, re.M)
    assert m, stderr
    return m.group(1)


def test_data_dir_parents_are_created_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        data = tmp_path / "a" / "b" / "c" / "data"
        err = start_and_stop(["--data-dir", str(data)], cwd=tmp_path)
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, (d, oct(d.stat().st_mode))
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    assert (data / "LOCK").exists()
    assert started_dir(err) == str(data)


def test_relative_data_dir_is_logged_absolute_and_existing_parents_kept(tmp_path):
    (tmp_path / "x").mkdir(mode=0o755)
    os.chmod(tmp_path / "x", 0o755)
    err = start_and_stop(["--data-dir", "x/y//z/"], cwd=tmp_path)
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o755     # not changed
    assert stat.S_IMODE((tmp_path / "x" / "y").stat().st_mode) == 0o700
    assert (tmp_path / "x" / "y" / "z" / "LOCK").exists()
    assert started_dir(err) == str(tmp_path / "x" / "y" / "z")


def test_data_dir_under_a_file_still_fails_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    p = subprocess.run([LOGCASTERD, "--bind", HOST, "--log-port", "0", "--query-port", "0",
                        "--irc-port", "0", "--http-port", "0", "--data-dir",
                        str(tmp_path / "file" / "deeper" / "data")],
                       capture_output=True, text=True, timeout=30, env=server_env(),
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert p.stderr.splitlines() == ["logcasterd: cannot create data directory %s: Not a "
                                     "directory" % (tmp_path / "file" / "deeper" / "data")]


# ---- make run leaves the clone clean -----------------------------------------------------

def wait_count(port, n, timeout=10.0):
    """Poll the query port's COUNT until it answers n (True) or the time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(b"COUNT\n")
            if s.makefile("rb").readline().strip() == b"COUNT|%d" % n:
                return True
        time.sleep(0.05)
    return False


def copy_of_the_tree(dest):
    """A git repository at dest holding this tree's files as they are now (tracked and new
    ones git does not ignore), committed; None when this tree is not a git checkout."""
    p = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True, timeout=60)
    if p.returncode != 0:
        return None
    for rel in p.stdout.decode().split("\0"):
        src = os.path.join(ROOT, rel)
        if not rel or not os.path.lexists(src):
            continue                     # Deleted in the work tree.
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tree under test"]):
        subprocess.run(git + cmd, check=True, capture_output=True, timeout=60)
    return git


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_make_run_leaves_the_clone_clean(tmp_path):
    """`make run` in a copy of this tree, with every package already installed: it builds,
    starts, takes a line, stops on Ctrl-C (SIGINT to its process group), and git status is
    clean: its data went to build/data, which the start-up line names in full."""
    clone = tmp_path / "clone"
    clone.mkdir()
    git = copy_of_the_tree(clone)
    if git is None:
        pytest.skip("this tree is not a git checkout")
    # -O0: the same build, sooner. Ephemeral loopback ports, so it never meets another server.
    cmd = ["nice", "-n", "10", "make", "-j2", "--no-print-directory", "run", "OPT=-O0",
           "RUN_ARGS=--bind %s --log-port 0 --query-port 0 --irc-port 0 --http-port 0" % HOST]
    p = subprocess.Popen(cmd, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    out = []
    ports = {}
    # Bounds the build and the start: the reading loop ends when make is killed.
    watchdog = threading.Timer(MAKE_RUN_TIMEOUT, os.killpg, (p.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for line in p.stdout:
            out.append(line)
            m = re.match(r"listening (log|query) \S+:(\d+)$", line.strip())
            if m:
                ports[m.group(1)] = int(m.group(2))
            if "logcasterd started" in line:
                break
        watchdog.cancel()
        assert any("logcasterd started" in line for line in out), "".join(out[-50:])
        assert set(ports) == {"log", "query"}, "".join(out[-50:])
        with socket.create_connection((HOST, ports["log"]), timeout=10) as s:
            s.sendall(b"ERROR make run keeps its data in build/data\n")
        assert wait_count(ports["query"], 1), "".join(out[-50:])
        os.killpg(p.pid, signal.SIGINT)
        rest, _ = p.communicate(timeout=60)
        out.append(rest)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    text = "".join(out)
    assert "stopped cleanly; 1 entries held" in text, text[-3000:]
    assert started_dir(text) == str(clone / "build" / "data")
    assert list((clone / "build" / "data").glob("*.seg")), text[-3000:]
    status = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert status == "", status
