"""Installing LogCaster like a real daemon: `make install` and `make uninstall` into temporary
DESTDIRs, the installed tree (files, modes, symlink, pkg-config file, systemd unit), the man
pages, the sample configuration, journald-style logging, and one clear line for each fatal
start-up error.

`make install` builds and installs the release tree (build/rel); `make test` builds it first
(mk/install.mk adds it to TEST_EXTRA), so here it only copies files. The checks of the client
library skip while the library (src/lib/logcaster.h) does not exist yet.
"""
import filecmp
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import HOST, LOGCASTERD, LOGCASTER, ROOT, assert_clean_stderr, server_env
from tlsutil import make_cert

MAKE_TIMEOUT = 600          # A cold build of build/rel takes about a minute on 2 cores.
RUN_TIMEOUT = 30
PORTS = ["--log-port", "0", "--query-port", "0", "--irc-port", "0", "--http-port", "0"]


def lc_version():
    with open(os.path.join(ROOT, "src", "core", "config.h")) as f:
        m = re.search(r'^#define LC_VERSION "([^"]+)"', f.read(), re.M)
    assert m, "no LC_VERSION in src/core/config.h"
    return m.group(1)


def library_missing():
    """Why the client library cannot be installed yet, or None when it can."""
    if not os.path.exists(os.path.join(ROOT, "src", "lib", "logcaster.h")):
        return "the client library does not exist yet (no src/lib/logcaster.h)"
    return None


def skip_without_library():
    why = library_missing()
    if why:
        pytest.skip(why)


def make(*args):
    """Run make in the source tree; fail the test with its output when it fails."""
    env = dict(os.environ)
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PREFIX", "DESTDIR", "SYSCONFDIR"):
        env.pop(var, None)   # Nothing from an enclosing `make test` may change the paths.
    p = subprocess.run(["make", "-C", ROOT, "--no-print-directory"] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=MAKE_TIMEOUT)
    assert p.returncode == 0, "make %s failed:\n%s" % (" ".join(args), p.stdout[-4000:])
    return p.stdout


def sysconfdir(prefix):
    return "/etc" if prefix == "/usr" else prefix + "/etc"


def expected_files(prefix):
    """Every file install writes under DESTDIR (relative paths), with its mode; the .so
    symlink maps to its target instead."""
    p = prefix.lstrip("/")
    files = {
        p + "/sbin/logcasterd": 0o755,
        p + "/bin/logcaster": 0o755,
        p + "/share/man/man8/logcasterd.8": 0o644,
        p + "/share/man/man1/logcaster.1": 0o644,
        p + "/share/bash-completion/completions/logcaster": 0o644,
        p + "/lib/systemd/system/logcaster.service": 0o644,
        sysconfdir(prefix).lstrip("/") + "/logcaster/logcaster.conf": 0o644,
    }
    if not library_missing():
        files.update({
            p + "/include/logcaster.h": 0o644,
            p + "/lib/liblogcaster.a": 0o644,
            p + "/lib/liblogcaster.so.1": 0o644,
            p + "/lib/liblogcaster.so": "liblogcaster.so.1",
            p + "/lib/pkgconfig/logcaster.pc": 0o644,
        })
    return files


def tree(root):
    """Every non-directory under root: relative path -> mode bits, or the target of a
    symlink."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            out[rel] = os.readlink(path) if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
    return out


def parse_unit(path):
    """A unit file as {section: [(key, value), ...]}."""
    sections, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                cur = sections.setdefault(line.strip("[]"), [])
                continue
            k, _, v = line.partition("=")
            cur.append((k, v))
    return sections


def unit_values(sections, section, key):
    return [v for k, v in sections.get(section, []) if k == key]


@pytest.fixture(scope="module", params=["/usr", "/usr/local"])
def installed(request, tmp_path_factory):
    """(destdir, prefix) after `make install DESTDIR=<tmp> PREFIX=<prefix>`."""
    prefix = request.param
    destdir = str(tmp_path_factory.mktemp("destdir"))
    make("install", "DESTDIR=" + destdir, "PREFIX=" + prefix)
    return destdir, prefix


# -- make install / make uninstall -----------------------------------------------------------

def test_install_writes_the_whole_tree_with_modes(installed):
    destdir, prefix = installed
    want = expected_files(prefix)
    got = tree(destdir)
    assert got == want, "installed tree differs:\n missing %s\n unexpected %s\n wrong mode %s" % (
        sorted(set(want) - set(got)), sorted(set(got) - set(want)),
        sorted((k, oct(got[k]) if isinstance(got[k], int) else got[k]) for k in want
               if k in got and got[k] != want[k]))
    p = prefix.lstrip("/")
    same = {
        p + "/sbin/logcasterd": "build/rel/logcasterd",
        p + "/bin/logcaster": "build/rel/logcaster",
        p + "/share/man/man8/logcasterd.8": "man/logcasterd.8",
        p + "/share/man/man1/logcaster.1": "man/logcaster.1",
        p + "/share/bash-completion/completions/logcaster": "etc/logcaster.bash-completion",
        sysconfdir(prefix).lstrip("/") + "/logcaster/logcaster.conf": "etc/logcaster.conf",
    }
    if not library_missing():
        same.update({
            p + "/include/logcaster.h": "src/lib/logcaster.h",
            p + "/lib/liblogcaster.a": "build/rel/liblogcaster.a",
            p + "/lib/liblogcaster.so.1": "build/rel/liblogcaster.so.1",
        })
    for dst, src in same.items():
        assert filecmp.cmp(os.path.join(destdir, dst), os.path.join(ROOT, src), shallow=False), \
            "%s is not a copy of %s" % (dst, src)


def test_installed_files_never_name_destdir(installed):
    destdir, _ = installed
    for rel in tree(destdir):
        path = os.path.join(destdir, rel)
        if os.path.islink(path):
            assert not os.readlink(path).startswith("/"), "absolute symlink %s" % rel
            continue
        with open(path, "rb") as f:
            assert destdir.encode() not in f.read(), "%s contains the DESTDIR path" % rel


def test_installed_client_and_server_run(installed):
    destdir, prefix = installed
    p = subprocess.run([os.path.join(destdir, prefix.lstrip("/"), "sbin", "logcasterd"),
                        "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and p.stdout.strip() == "logcasterd " + lc_version(), p
    p = subprocess.run([os.path.join(destdir, prefix.lstrip("/"), "bin", "logcaster"), "--help"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and p.stdout.startswith("usage: logcaster"), p


def test_uninstall_leaves_nothing(tmp_path):
    destdir = str(tmp_path / "stage")
    make("install", "DESTDIR=" + destdir, "PREFIX=/usr")
    assert tree(destdir)
    make("uninstall", "DESTDIR=" + destdir, "PREFIX=/usr")
    assert tree(destdir) == {}, "left behind: %s" % sorted(tree(destdir))
    assert not os.path.exists(os.path.join(destdir, "etc", "logcaster"))


def test_an_edited_configuration_is_kept(tmp_path):
    """install never overwrites an existing configuration; uninstall removes it only while it
    is still the sample."""
    destdir = str(tmp_path / "stage")
    conf = os.path.join(destdir, "usr", "local", "etc", "logcaster", "logcaster.conf")
    make("install", "DESTDIR=" + destdir)           # PREFIX defaults to /usr/local
    with open(conf, "a") as f:
        f.write("\n# edited by the administrator\n")
    out = make("install", "DESTDIR=" + destdir)
    assert "keeping" in out
    with open(conf) as f:
        assert f.read().endswith("# edited by the administrator\n")
    make("uninstall", "DESTDIR=" + destdir)
    assert sorted(tree(destdir)) == ["usr/local/etc/logcaster/logcaster.conf"]


# -- the systemd unit --------------------------------------------------------------------------

def test_unit_runs_the_installed_daemon_in_a_sandbox(installed):
    destdir, prefix = installed
    unit = parse_unit(os.path.join(destdir, prefix.lstrip("/"), "lib/systemd/system/"
                                   "logcaster.service"))
    svc = lambda key: unit_values(unit, "Service", key)
    assert svc("ExecStart") == ["%s/sbin/logcasterd --config %s/logcaster/logcaster.conf "
                                "--data-dir /var/lib/logcaster" % (prefix, sysconfdir(prefix))]
    assert svc("Type")[0] in ("simple", "exec")
    want = {
        "DynamicUser": "yes", "StateDirectory": "logcaster", "ProtectSystem": "strict",
        "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "", "Restart": "on-failure",
    }
    for key, value in want.items():
        assert svc(key) == [value], "%s=%s, expected %r" % (key, svc(key), value)
    assert "@system-service" in svc("SystemCallFilter")
    assert int(svc("LimitNOFILE")[0]) >= 10000 + 1024
    assert unit_values(unit, "Install", "WantedBy") == ["multi-user.target"]
    assert unit_values(unit, "Unit", "Documentation") == ["man:logcasterd(8)"]


def test_systemd_analyze_accepts_the_unit(tmp_path):
    """Installed without DESTDIR into a temporary prefix, so that the unit's ExecStart and its
    man page exist where the unit says."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (package systemd is not in "
                    "scripts/debian-packages-test.txt)")
    prefix = str(tmp_path / "usr")
    make("install", "PREFIX=" + prefix)
    unit = os.path.join(prefix, "lib", "systemd", "system", "logcaster.service")
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"))
    args = ["systemd-analyze", "verify"]
    if not shutil.which("man"):
        args.append("--man=no")
    p = subprocess.run(args + [unit], capture_output=True, text=True, env=env,
                       timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(), \
        "systemd-analyze verify: %s%s" % (p.stdout, p.stderr)
    make("uninstall", "PREFIX=" + prefix)
    assert tree(prefix) == {}


# -- man pages --------------------------------------------------------------------------------

def render_man(path):
    """The page as plain text, one long line per paragraph (no hyphenation, no wrapping), after
    checking that groff gives no warning."""
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rHY=0", "-rLL=1000n", "-P-cbou",
                        path], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 0 and p.stderr == "", "groff on %s: %s" % (path, p.stderr)
    return p.stdout.replace("\u2010", "-").replace("\u2212", "-")


def options_in(text):
    return set(re.findall(r"(?<![\w-])(--[A-Za-z][A-Za-z-]*|-[a-z])\b", text))


def expand_roles(opts):
    out = set()
    for o in opts:
        if "ROLE" in o:
            out.update(o.replace("ROLE", r) for r in ("log", "query", "irc", "http"))
        else:
            out.add(o)
    return out


def test_man_pages_render_without_warnings(installed):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (package groff-base)")
    destdir, prefix = installed
    man = os.path.join(destdir, prefix.lstrip("/"), "share", "man")
    for page, title in (("man8/logcasterd.8", "LOGCASTERD(8)"), ("man1/logcaster.1",
                                                                   "LOGCASTER(1)")):
        text = render_man(os.path.join(man, page))
        assert text.lstrip().startswith(title), text[:200]
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"):
            assert re.search(r"^%s$" % section, text, re.M), "%s has no %s" % (page, section)


def test_server_man_page_documents_every_flag():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (package groff-base)")
    text = render_man(os.path.join(ROOT, "man", "logcasterd.8"))
    p = subprocess.run([LOGCASTERD, "--help"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT, env=server_env())
    assert p.returncode == 0
    flags = options_in(p.stdout)
    assert "--data-dir" in flags and "--ROLE-allow" in flags and "-v" in flags
    documented = options_in(text)
    assert flags - documented == set(), "not in logcasterd.8: %s" % sorted(flags - documented)
    # And nothing that does not exist: every flag named in the page is one of --help's (with
    # ROLE spelled out, so --irc-token too), apart from other programs' (systemctl's).
    own = options_in("\n".join(l for l in text.splitlines() if "systemctl " not in l))
    unknown = expand_roles(own) - expand_roles(flags)
    assert unknown == set(), "logcasterd.8 names flags logcasterd lacks: %s" % sorted(unknown)
    assert "--ROLE-line-rate" not in documented   # Only --log-line-rate exists.


def test_client_man_page_documents_every_command_and_option():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (package groff-base)")
    text = render_man(os.path.join(ROOT, "man", "logcaster.1"))
    main = subprocess.run([LOGCASTER, "--help"], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=server_env())
    assert main.returncode == 0
    commands = re.findall(r"^  ([a-z][a-z-]+)  +\S", main.stdout.split("Commands:")[1]
                          .split("Global options")[0], re.M)
    assert "send" in commands and "bench-query" in commands
    all_flags = options_in(main.stdout)
    for cmd in commands:
        assert re.search(r"^   %s$" % re.escape(cmd), text, re.M), \
            "logcaster.1 has no section for %s" % cmd
        h = subprocess.run([LOGCASTER, cmd, "--help"], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, env=server_env())
        assert h.returncode == 0, h
        flags = options_in(h.stdout)
        all_flags |= flags
        documented = options_in(text)
        assert flags - documented == set(), \
            "logcaster %s options not in logcaster.1: %s" % (cmd, sorted(flags - documented))
    unknown = options_in(text) - all_flags
    assert unknown == set(), "logcaster.1 names options logcaster lacks: %s" % sorted(unknown)


# -- the sample configuration ------------------------------------------------------------------

def check_config(path):
    return subprocess.run([LOGCASTERD, "--config", path, "--check-config"], capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, env=server_env())


def test_sample_configuration_is_valid(installed):
    destdir, prefix = installed
    for path in (os.path.join(ROOT, "etc", "logcaster.conf"),
                 os.path.join(destdir, sysconfdir(prefix).lstrip("/"), "logcaster",
                              "logcaster.conf")):
        p = check_config(path)
        assert p.returncode == 0 and p.stdout.endswith("configuration OK\n"), p.stderr
        assert_clean_stderr(p.stderr, "logcasterd --check-config")
        assert "fsync = batch" in p.stdout


def test_sample_configuration_examples_are_valid(tmp_path):
    """Every commented-out setting of the sample, switched on, is still a valid configuration
    (with a real certificate for its TLS lines)."""
    cert, key = make_cert(tmp_path)
    lines = []
    with open(os.path.join(ROOT, "etc", "logcaster.conf")) as f:
        for line in f:
            m = re.match(r"^;([a-z-]+) = (.*)$", line)
            if m:
                value = {"tls-cert": cert, "tls-key": key}.get(m.group(1), m.group(2))
                line = "%s = %s\n" % (m.group(1), value)
            lines.append(line)
    assert sum(1 for l in lines if l.startswith("tls-")) == 2
    path = tmp_path / "all.conf"
    path.write_text("".join(lines))
    p = check_config(str(path))
    assert p.returncode == 0 and p.stdout.endswith("configuration OK\n"), p.stderr
    assert "listen = 0.0.0.0:6697=irc+tls" in p.stdout


# -- the client library through pkg-config ------------------------------------------------------

def pkg_config(destdir, prefix, *args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKG_CONFIG")}
    env["PKG_CONFIG_PATH"] = os.path.join(destdir, prefix.lstrip("/"), "lib", "pkgconfig")
    env.update(env_extra)
    p = subprocess.run(["pkg-config"] + list(args) + ["logcaster"], capture_output=True,
                       text=True, env=env, timeout=RUN_TIMEOUT)
    assert p.returncode == 0, "pkg-config %s: %s" % (" ".join(args), p.stderr)
    return p.stdout.split()


def test_pkg_config_file(installed):
    skip_without_library()
    destdir, prefix = installed
    with open(os.path.join(destdir, prefix.lstrip("/"), "lib", "pkgconfig",
                           "logcaster.pc")) as f:
        pc = f.read()
    assert re.search(r"^prefix=%s$" % re.escape(prefix), pc, re.M), pc
    assert re.search(r"^Name: ", pc, re.M) and re.search(r"^Description: \S", pc, re.M)
    assert re.search(r"^Version: %s$" % re.escape(lc_version()), pc, re.M), pc
    assert re.search(r"^Libs: -L\$\{libdir\} -llogcaster$", pc, re.M), pc
    assert re.search(r"^Libs.private: -pthread$", pc, re.M), pc
    assert re.search(r"^Cflags: -I\$\{includedir\}$", pc, re.M), pc

    # The file names the installed paths, without DESTDIR.
    system = {"PKG_CONFIG_ALLOW_SYSTEM_CFLAGS": "1", "PKG_CONFIG_ALLOW_SYSTEM_LIBS": "1"}
    assert pkg_config(destdir, prefix, "--cflags", "--libs", **system) == \
        ["-I%s/include" % prefix, "-L%s/lib" % prefix, "-llogcaster"]
    assert pkg_config(destdir, prefix, "--modversion") == [lc_version()]
    assert "-pthread" in pkg_config(destdir, prefix, "--static", "--libs")
    # Pointed at the staged tree, by the .pc file's location or by a sysroot.
    staged = ["-I%s%s/include" % (destdir, prefix), "-L%s%s/lib" % (destdir, prefix),
              "-llogcaster"]
    assert pkg_config(destdir, prefix, "--define-prefix", "--cflags", "--libs") == staged
    assert pkg_config(destdir, prefix, "--cflags", "--libs", PKG_CONFIG_SYSROOT_DIR=destdir,
                      **system) == staged


def test_a_program_builds_against_the_installed_library(installed, tmp_path):
    skip_without_library()
    destdir, prefix = installed
    flags = pkg_config(destdir, prefix, "--define-prefix", "--cflags", "--libs")
    src = tmp_path / "use.c"
    src.write_text("#include <logcaster.h>\nint main(void) { return 0; }\n")
    for extra, libs in (([], flags), (["-static"], pkg_config(destdir, prefix, "--define-prefix",
                                                              "--static", "--cflags", "--libs"))):
        p = subprocess.run(["cc"] + extra + [str(src), "-o", str(tmp_path / "use")] + libs,
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert p.returncode == 0, "cc %s: %s" % (" ".join(extra + libs), p.stderr)


# -- logging under systemd ---------------------------------------------------------------------

def run_server(tmp_path, extra, stderr_file, env_extra, poke=None):
    """Start logcasterd on ephemeral loopback ports with stderr to stderr_file, call
    poke(ports) once it listens, stop it with SIGTERM and return its stderr."""
    env = server_env()
    env.pop("JOURNAL_STREAM", None)
    env.update(env_extra)
    args = [LOGCASTERD, "--bind", HOST, "--data-dir", str(tmp_path / "data")] + PORTS + extra
    with open(stderr_file, "ab") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        ports, pending = {}, b""
        deadline = time.monotonic() + 15
        while "query" not in ports or "log" not in ports:
            left = deadline - time.monotonic()
            assert left > 0, "no listening lines"
            r, _, _ = select.select([proc.stdout], [], [], left)
            if r:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, "logcasterd exited: %s" % open(stderr_file).read()
                pending += chunk
                for m in re.finditer(rb"^listening (\w+) \S+:(\d+)$", pending, re.M):
                    ports[m.group(1).decode()] = int(m.group(2))
        if poke:
            poke(ports)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
    with open(stderr_file) as f:
        text = f.read()
    assert_clean_stderr(text)
    return text


def journal_env(path):
    st = os.stat(path)
    return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}


def refused_and_debug(ports):
    """A refused query connection logs a warning; with -v every connection logs a debug line."""
    with socket.create_connection((HOST, ports["query"]), timeout=10) as s:
        s.settimeout(10)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"ERROR|address not allowed"), data
    with socket.create_connection((HOST, ports["log"]), timeout=10) as s:
        s.sendall(b"LOG|INFO|-|hello\n")
        s.settimeout(10)
        assert s.recv(100).startswith(b"OK|")


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug): ")


def test_journal_stream_gives_priority_prefixed_lines(tmp_path):
    err = tmp_path / "stderr"
    err.touch()
    text = run_server(tmp_path, ["-v", "--query-deny", "127.0.0.1"], str(err), journal_env(err),
                      refused_and_debug)
    lines = text.splitlines()
    assert lines, "nothing logged"
    for line in lines:
        assert re.match(r"^<[3467]>(error|warn|info|debug): \S", line), \
            "not a journal line: %r" % line
        assert not STAMP.search(line[3:]) and not re.search(r"\d{4}-\d\d-\d\dT", line), line
    assert any(l.startswith("<4>warn: refused 127.0.0.1") for l in lines), lines
    assert any(l.startswith("<6>info: logcasterd started") for l in lines), lines
    assert any(l.startswith("<7>debug: log connection from 127.0.0.1") for l in lines), lines


def test_journal_stream_is_ignored_when_it_names_another_file(tmp_path):
    """JOURNAL_STREAM is inherited by children; it counts only while it names our stderr."""
    other = tmp_path / "other"
    other.touch()
    err = tmp_path / "stderr"
    for env in (journal_env(other), {}):
        err.write_text("")
        text = run_server(tmp_path, [], str(err), env)
        lines = text.splitlines()
        assert lines and all(STAMP.match(l) for l in lines), lines


def test_journal_stream_prefixes_start_up_errors(tmp_path):
    err = tmp_path / "stderr"
    err.touch()
    env = dict(server_env(), **journal_env(err))
    with open(err, "ab") as f:
        p = subprocess.run([LOGCASTERD, "--no-such-flag"], stderr=f, stdout=subprocess.DEVNULL,
                           env=env, timeout=RUN_TIMEOUT)
    assert p.returncode == 2
    assert err.read_text() == "<3>logcasterd: unknown option '--no-such-flag' (see --help)\n"


# -- fatal start-up errors ---------------------------------------------------------------------

def start_fails(tmp_path, args, data_dir=None):
    """Run logcasterd with args that must stop it at start-up; returns (status, stderr
    lines)."""
    data = data_dir or str(tmp_path / "data")
    p = subprocess.run([LOGCASTERD, "--bind", HOST, "--data-dir", data] + PORTS + list(args),
                       capture_output=True, text=True, timeout=RUN_TIMEOUT, env=server_env(),
                       stdin=subprocess.DEVNULL)
    assert_clean_stderr(p.stderr)
    assert "listening" not in p.stdout, p.stdout
    return p.returncode, p.stderr.splitlines()


def one_clear_line(lines, *words):
    assert len(lines) == 1, "expected one line, got %r" % lines
    assert lines[0].startswith("logcasterd: "), lines
    for w in words:
        assert w in lines[0], "%r not in %r" % (w, lines[0])


def test_bad_flag_and_bad_value(tmp_path):
    rc, lines = start_fails(tmp_path, ["--no-such-flag"])
    assert rc == 2
    one_clear_line(lines, "unknown option '--no-such-flag'")
    rc, lines = start_fails(tmp_path, ["--log-port", "70000"])
    assert rc == 2
    one_clear_line(lines, "invalid value '70000' for --log-port")
    rc, lines = start_fails(tmp_path, ["--data-dir"])
    assert rc == 2
    one_clear_line(lines, "'--data-dir' needs a value")


def test_bad_configuration(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[server]\nlog-port = 9999\nno-such-setting = 1\n")
    rc, lines = start_fails(tmp_path, ["--config", str(conf)])
    assert rc == 2
    one_clear_line(lines, "%s:3: unknown setting 'no-such-setting'" % conf)
    rc, lines = start_fails(tmp_path, ["--config", str(tmp_path / "missing.conf")])
    assert rc == 2
    one_clear_line(lines, "cannot read --config", "No such file or directory")


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["--log-port", str(port)]
        rc, lines = start_fails(tmp_path, ["--query-port", "0"] + args)
    assert rc == 1
    # The error, and listener.c's hint on what to do about it.
    assert lines[0] == "logcasterd: cannot listen on %s port %d for log: Address already in use" \
        % (HOST, port), lines
    assert lines[1:] == ["logcasterd: another process uses that port; pick another with "
                         "--log-port or stop it"], lines


def test_data_dir_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, lines = start_fails(tmp_path, [], data_dir=str(blocker / "data"))
    assert rc == 1
    one_clear_line(lines, "cannot create data directory %s/data: Not a directory" % blocker)


NOBODY = 65534   # Root ignores permission bits, so as root the server runs as nobody here.


def drop_to_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.mark.parametrize("with_lock", [False, True], ids=["empty", "old-lock"])
def test_data_dir_not_writable(tmp_path, with_lock):
    """A read-only data directory: empty, or with the LOCK file of an earlier run, which can
    still be opened and locked (the store would fail later, in several lines)."""
    root = os.geteuid() == 0
    # pytest's directories are private to root: use one that nobody can enter.
    base = tempfile.mkdtemp(prefix="lc-ro-") if root else str(tmp_path)
    try:
        os.chmod(base, 0o755)
        d = os.path.join(base, "data")
        os.mkdir(d)
        if with_lock:
            with open(os.path.join(d, "LOCK"), "w"):
                pass
            os.chmod(os.path.join(d, "LOCK"), 0o666)
        os.chmod(d, 0o555)
        p = subprocess.run([LOGCASTERD, "--bind", HOST, "--data-dir", d] + PORTS,
                           capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           env=server_env(), stdin=subprocess.DEVNULL,
                           preexec_fn=drop_to_nobody if root else None)
    finally:
        if os.path.isdir(d):
            os.chmod(d, 0o755)
        shutil.rmtree(base if root else d, ignore_errors=True)
    assert_clean_stderr(p.stderr)
    assert p.returncode == 1 and "listening" not in p.stdout
    if with_lock:
        one_clear_line(p.stderr.splitlines(),
                       "data directory %s is not writable: Permission denied" % d)
    else:
        one_clear_line(p.stderr.splitlines(), "data directory %s is not usable: cannot open "
                       "its LOCK file: Permission denied" % d)


def test_data_dir_in_use(tmp_path):
    err = tmp_path / "stderr"

    def second_server(ports):
        rc, lines = start_fails(tmp_path, [])
        assert rc == 1
        one_clear_line(lines, "data directory %s is in use by another logcasterd"
                       % (tmp_path / "data"))

    run_server(tmp_path, [], str(err), {}, second_server)
