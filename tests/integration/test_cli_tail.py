"""`logcaster tail` and the output formats of `logcaster query`, driving the real CLI against a
real server: order, -n backfill, a server restart with no gap and no duplicate, Ctrl-C, every
format parsed back, colour on a pseudo-terminal only, --token, TLS, and a tail that nobody
reads which must not hold up ingest or other clients."""
import json
import os
import pty
import queue
import re
import select
import shlex
import signal
import subprocess
import threading
import time

import pytest

from conftest import HOST, LOGCASTER, Server, assert_clean_stderr, server_env
from tlsutil import make_cert

WAIT = 30.0  # Longest wait for an expected line.


def cli_env(**extra):
    env = server_env()
    env.pop("NO_COLOR", None)
    env.pop("LOGCASTER_HOST", None)
    env.pop("LOGCASTER_TOKEN", None)
    env.update(extra)
    return env


def ports(s):
    return ["--host", "%s:%d" % (HOST, s.query_port), "--http-port", str(s.http_port)]


def lc(*args, env=None, timeout=30):
    r = subprocess.run([LOGCASTER] + [str(a) for a in args], capture_output=True,
                       timeout=timeout, env=env or cli_env())
    assert_clean_stderr(r.stderr.decode("utf-8", "replace"), "logcaster %s" % (args,))
    return r


class Tail:
    """A running `logcaster tail`, its stdout lines collected by a thread."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen([LOGCASTER] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env or cli_env())
        self.lines = queue.Queue()
        self.err = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode("utf-8", "replace").rstrip("\n"))

    def _read_err(self):
        for line in self.proc.stderr:
            self.err += line

    def take(self, n, timeout=WAIT):
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("got %d of %d lines: %r\nstderr: %s" % (
                    len(out), n, out[-5:], self.err.decode("utf-8", "replace")[-2000:]))
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def quiet(self, secs):
        """Nothing more arrives within secs."""
        try:
            extra = self.lines.get(timeout=secs)
        except queue.Empty:
            return
        raise AssertionError("unexpected line: %r" % extra)

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=WAIT)
        time.sleep(0.2)
        assert_clean_stderr(self.err.decode("utf-8", "replace"), "logcaster tail")
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)


@pytest.fixture
def tails():
    made = []

    def start(args, env=None):
        t = Tail(args, env)
        made.append(t)
        return t

    yield start
    for t in made:
        t.kill()


def raw_msgs(lines):
    return [l.split("|", 3)[3] for l in lines]


def test_tail_follows_new_lines_in_order_and_ctrl_c_exits_0(server, tails):
    s = server()
    s.log("INFO", 1700000000, "before the tail")
    t = tails(ports(s) + ["tail", "-n", "1", "--output", "raw"])
    assert raw_msgs(t.take(1)) == ["before the tail"]
    msgs = ["live line %03d" % i for i in range(200)]
    s.send_framed(["LOG|INFO|-|%s" % m for m in msgs])
    got = t.take(200)
    assert raw_msgs(got) == msgs
    ids = [int(l.split("|")[0]) for l in got]
    assert ids == sorted(ids) and len(set(ids)) == 200
    t.quiet(0.5)
    assert t.interrupt() == 0


def test_tail_backfill_and_filter(server, tails):
    s = server()
    for i in range(10):
        s.log("ERROR" if i % 2 else "INFO", 1700000000 + i, "old %d host=web%d" % (i, i % 3))
    t = tails(ports(s) + ["tail", "-n", "3", "--output", "raw", "level:>=WARN host:web*"])
    # The newest 3 matches of the 5 errors, oldest first, as tail -n prints them.
    assert raw_msgs(t.take(3)) == ["old 5 host=web2", "old 7 host=web1", "old 9 host=web0"]
    s.send_framed(["LOG|INFO|-|new info host=web1", "LOG|WARN|-|new warn host=web1",
                   "LOG|ERROR|-|new error host=db1", "LOG|FATAL|-|new fatal host=web7"])
    assert raw_msgs(t.take(2)) == ["new warn host=web1", "new fatal host=web7"]
    t.quiet(0.5)
    assert t.interrupt() == 0


def test_tail_survives_a_server_restart_without_gap_or_duplicate(tmp_path, tails):
    data = tmp_path / "shared"
    data.mkdir()
    run1 = tmp_path / "run1"
    run1.mkdir()
    os.symlink(str(data), str(run1 / "data"))
    s = Server(run1, [])
    servers = [s]
    try:
        s.log("INFO", 1700000000, "seed")
        t = tails(ports(s) + ["tail", "-n", "1", "--output", "raw", "--timeout", "2"])
        assert raw_msgs(t.take(1)) == ["seed"]
        s.send_framed(["LOG|INFO|-|before %d" % i for i in range(50)])
        assert raw_msgs(t.take(50)) == ["before %d" % i for i in range(50)]
        # Lines the tail may not have printed yet when the server goes away, then lines sent
        # right after the restart: all of them, once each, in order.
        s.send_framed(["LOG|INFO|-|racing %d" % i for i in range(50)])
        assert s.stop() == 0
        run2 = tmp_path / "run2"
        run2.mkdir()
        os.symlink(str(data), str(run2 / "data"))
        s2 = Server(run2, ["--log-port", str(s.log_port), "--query-port", str(s.query_port),
                           "--http-port", str(s.http_port)])
        servers.append(s2)
        s2.send_framed(["LOG|INFO|-|after %d" % i for i in range(50)])
        got = raw_msgs(t.take(100))
        assert got == ["racing %d" % i for i in range(50)] + ["after %d" % i for i in range(50)]
        t.quiet(1.0)
        assert b"reconnected" in t.err, t.err
        assert t.interrupt() == 0
    finally:
        for x in servers:
            x.teardown()


def test_every_output_format_parses_back(server, tails):
    s = server()
    when = 1700000000
    ids = [s.log("ERROR", when, 'disk "sda" full host=web1'),
           s.log("INFO", when + 1, "all good")]
    for mode in ("query", "tail"):
        for fmt in ("text", "json", "logfmt", "raw"):
            args = ports(s) + ["--output", fmt, "--utc"]
            if mode == "query":
                r = lc(*(["query"] + args + ["--since", "100000d"]))
                assert r.returncode == 0, r.stderr
                lines = r.stdout.decode().splitlines()
            else:
                t = tails(["tail", "-n", "2"] + args)
                lines = t.take(2)
                assert t.interrupt() == 0
            assert len(lines) == 2, (mode, fmt, lines)
            if fmt == "json":
                objs = [json.loads(l) for l in lines]
                assert [o["id"] for o in objs] == ids
                assert [o["level"] for o in objs] == ["ERROR", "INFO"]
                assert objs[0]["message"] == 'disk "sda" full host=web1'
                assert objs[0]["ts_ms"] == when * 1000 and objs[0]["source"].startswith("127.0.0.1:")
            elif fmt == "logfmt":
                kv = [dict((k, v.strip('"').replace('\\"', '"')) for k, v in
                           re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', l)) for l in lines]
                assert [k["id"] for k in kv] == [str(i) for i in ids]
                assert kv[0]["level"] == "ERROR" and kv[0]["msg"] == 'disk "sda" full host=web1'
                assert kv[0]["ts"] == "2023-11-14T22:13:20.000Z"
            elif fmt == "text":
                m = re.match(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\w+)\s+(\S+) (.*)$", lines[0])
                assert m, lines[0]
                assert m.group(1) == "2023-11-14 22:13:20.000" and m.group(2) == "ERROR"
                assert m.group(3).startswith("127.0.0.1:") and m.group(4) == 'disk "sda" full host=web1'
                assert "\033[" not in "".join(lines)  # a pipe: no colour
            else:
                assert lines == ["%d|ERROR|%d|disk \"sda\" full host=web1" % (ids[0], when),
                                 "%d|INFO|%d|all good" % (ids[1], when + 1)]


def test_local_time_follows_tz(server):
    s = server()
    s.log("INFO", 1700000000, "zoned")
    r = lc(*(ports(s) + ["query", "--output", "text", "zoned"]), env=cli_env(TZ="Asia/Kolkata"))
    assert r.stdout.decode().startswith("2023-11-15 03:43:20.000 INFO"), r.stdout


def run_on_pty(argv, env, timeout=WAIT):
    """Run argv with stdout (and stderr) on a pseudo-terminal; returns what it printed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return out.decode("utf-8", "replace")


def test_colour_on_a_terminal_not_in_a_pipe_and_no_color(server):
    s = server()
    s.log("ERROR", 1700000000, "red alert")
    argv = [LOGCASTER] + ports(s) + ["query", "red"]
    on_tty = run_on_pty([str(a) for a in argv], cli_env())
    assert "\033[31mERROR" in on_tty and "red alert" in on_tty, on_tty
    # On a terminal the default format is text, with the time and the level.
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}", on_tty), on_tty
    assert "\033[" not in run_on_pty([str(a) for a in argv], cli_env(NO_COLOR="1"))
    assert "\033[" not in run_on_pty([str(a) for a in argv + ["--color", "never"]], cli_env())
    piped = lc(*(argv[1:] + ["--output", "text"])).stdout.decode()
    assert "\033[" not in piped and "red alert" in piped
    forced = lc(*(argv[1:] + ["--output", "text", "--color", "always"])).stdout.decode()
    assert "\033[31mERROR" in forced
    # In a pipe the default stays the query port's raw lines, for scripts.
    assert re.match(r"^\d+\|ERROR\|1700000000\|red alert$", lc(*argv[1:]).stdout.decode())


def test_token_env_host_and_count(server, tails):
    s = server("--query-token", "s3cret", "--http-token", "s3cret")
    s.log("WARN", 1700000000, "guarded")
    env = cli_env(LOGCASTER_HOST="%s:%d" % (HOST, s.query_port), LOGCASTER_TOKEN="s3cret")
    r = lc("--http-port", s.http_port, "count", env=env)
    assert r.returncode == 0 and r.stdout == b"1\n", r
    r = lc("--http-port", s.http_port, "query", "--output", "json", "guarded", env=env)
    assert json.loads(r.stdout)["message"] == "guarded"
    r = lc("--http-port", s.http_port, "--token", "wrong", "query", "--output", "json",
           "guarded", env=env)
    assert r.returncode == 1, r
    t = tails(["--http-port", s.http_port, "tail", "-n", "1", "--output", "raw"], env=env)
    assert raw_msgs(t.take(1)) == ["guarded"]
    s.log("WARN", 1700000001, "guarded live")
    assert raw_msgs(t.take(1)) == ["guarded live"]
    assert t.interrupt() == 0
    r = lc(*(ports(s) + ["tail", "--output", "raw"]))  # no token: refused, not retried
    assert r.returncode == 1 and b"authentication" in r.stderr.lower(), r


def test_tail_over_tls(server, tails, tmp_path):
    cert, key = make_cert(tmp_path)
    s = server("--tls-cert", cert, "--tls-key", key)
    s.log("INFO", 1700000000, "secret seed")
    t = tails(ports(s) + ["--tls-ca", cert, "tail", "-n", "1", "--output", "raw"])
    assert raw_msgs(t.take(1)) == ["secret seed"]
    s.log("INFO", 1700000001, "secret live")
    assert raw_msgs(t.take(1)) == ["secret live"]
    assert t.interrupt() == 0
    r = lc(*(ports(s) + ["--tls-ca", cert, "count"]))
    assert r.stdout == b"2\n", r
    # Without the CA the certificate is not trusted: refused, exit 2.
    r = lc(*(ports(s) + ["--tls", "query", "--output", "raw", "secret"]))
    assert r.returncode == 2 and b"TLS" in r.stderr, r


def read_lines_from(fd, n, timeout=WAIT, buf=b""):
    """n lines from a pipe, waiting at most timeout; returns (lines, rest)."""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < n:
        left = deadline - time.monotonic()
        assert left > 0, "got %d of %d lines" % (buf.count(b"\n"), n)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 1 << 20)
            assert chunk, "pipe closed after %d lines" % buf.count(b"\n")
            buf += chunk
    lines = buf.split(b"\n")
    return [l.decode() for l in lines[:n]], b"\n".join(lines[n:])


def test_undrained_tail_does_not_hold_up_ingest_or_others(server, tails):
    s = server("--out-limit", "256K")
    s.log("INFO", 1700000000, "probe start")
    # A tail whose stdout is a pipe that nobody reads after its first line.
    r_fd, w_fd = os.pipe()
    slow = subprocess.Popen([LOGCASTER] + [str(a) for a in ports(s)] +
                            ["tail", "-n", "1", "--output", "json"],
                            stdout=w_fd, stderr=subprocess.PIPE, env=cli_env())
    os.close(w_fd)
    try:
        first, rest = read_lines_from(r_fd, 1)
        assert json.loads(first[0])["message"] == "probe start"
        good = tails(ports(s) + ["tail", "-n", "1", "--output", "raw", "probe"])
        assert raw_msgs(good.take(1)) == ["probe start"]
        big = "x" * 900
        t0 = time.monotonic()
        for batch in range(20):
            s.send_framed(["LOG|INFO|-|filler %d %d %s" % (batch, i, big) for i in range(500)])
        s.send_framed(["LOG|INFO|-|probe end"])
        took = time.monotonic() - t0
        assert took < 20, "ingest took %.1f s with a stuck tail" % took
        assert raw_msgs(good.take(1)) == ["probe end"]
        assert s.count() == 10002
        assert slow.poll() is None, "the stuck tail should still be waiting, not dead"
        # The server gives up on the stuck reader (it never waits for it)...
        deadline = time.monotonic() + WAIT
        while "dropping live tail" not in s.stderr():
            assert time.monotonic() < deadline, "the stuck tail was never dropped"
            time.sleep(0.2)
        # ...and once its output moves again the tail resumes where it was: every line once,
        # in order.
        lines, _ = read_lines_from(r_fd, 10001, buf=rest)
        objs = [json.loads(l) for l in lines]
        ids = [o["id"] for o in objs]
        assert ids == list(range(ids[0], ids[0] + 10001)), "gap or duplicate after the drop"
        assert objs[0]["message"].startswith("filler 0 0 ") and objs[-1]["message"] == "probe end"
        assert good.interrupt() == 0
        slow.send_signal(signal.SIGINT)
        assert slow.wait(timeout=WAIT) == 0
        err = slow.stderr.read().decode()
        assert "reconnected" in err, err
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait(timeout=WAIT)
        os.close(r_fd)
