"""logcasterd's command line: --help, refused values, bind errors."""
import socket
import subprocess

import pytest

from conftest import HOST, LOGCASTERD, assert_clean_stderr, server_env

BASE = ["--bind", HOST, "--log-port", "0", "--query-port", "0", "--irc-port", "0"]


def run(args, tmp_path, timeout=15):
    return subprocess.run([LOGCASTERD] + args + ["--data-dir", str(tmp_path / "data")],
                          capture_output=True, timeout=timeout, env=server_env(),
                          stdin=subprocess.DEVNULL)


def test_help_documents_every_flag():
    r = subprocess.run([LOGCASTERD, "--help"], capture_output=True, timeout=15, env=server_env())
    assert r.returncode == 0
    text = r.stdout.decode()
    for flag in ["--bind", "--log-port", "--query-port", "--data-dir", "--threads",
                 "--max-line", "--memory-limit", "--idle-timeout", "--out-limit",
                 "--max-connections", "--backlog", "--reuseport", "--keepalive-idle",
                 "--keepalive-interval", "--keepalive-count", "--user-timeout", "--rcvbuf",
                 "--sndbuf", "--shutdown-timeout", "--help"]:
        assert flag in text, "--help does not mention %s" % flag
    assert_clean_stderr(r.stderr.decode(), "logcasterd --help")


def test_version():
    r = subprocess.run([LOGCASTERD, "--version"], capture_output=True, timeout=15,
                       env=server_env())
    assert r.returncode == 0 and r.stdout.strip(), r


@pytest.mark.parametrize("args,mention", [
    (["--log-port", "70000"], "--log-port"),
    (["--query-port", "abc"], "--query-port"),
    (["--threads", "0"], "--threads"),
    (["--max-line", "-5"], "--max-line"),
    (["--memory-limit", "12X"], "--memory-limit"),
    (["--idle-timeout", "-1"], "--idle-timeout"),
    (["--bogus"], "--bogus"),
    (["--threads"], "--threads"),             # missing value
    (["unexpected-argument"], "unexpected-argument"),
])
def test_invalid_values_are_refused(tmp_path, args, mention):
    r = run(BASE + args, tmp_path)
    assert r.returncode != 0, "%s accepted" % args
    err = r.stderr.decode()
    assert_clean_stderr(err, "logcasterd %s" % args)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % err
    assert mention in lines[0], "message %r does not name %s" % (lines[0], mention)
    assert b"listening" not in r.stdout


@pytest.mark.parametrize("role", ["log", "query"])
def test_port_in_use(tmp_path, role):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind((HOST, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        args = ["--bind", HOST, "--log-port", "0", "--query-port", "0", "--irc-port", "0"]
        args[args.index("--%s-port" % role) + 1] = str(port)
        r = run(args, tmp_path)
    finally:
        holder.close()
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "Address already in use" in err, err
    assert str(port) in err, err
    assert_clean_stderr(err, "logcasterd")
