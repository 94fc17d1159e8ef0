"""liblogcaster, the C client library, against a real logcasterd.

The C programs in tests/lib/ do the logging: lc_unit (no server: url parsing, arguments,
truncation, the drop counter, the spill file format) and lc_tool (logs lines as told and prints
the library's counters; see its header). They are built with ASan+UBSan into
build/asan/tests/lib/ by `make test`; each run's stderr must be free of sanitizer reports,
leaks included. Entries are checked through the query port and the HTTP API."""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import HOST, IO_TIMEOUT, LOGCASTERD, ROOT, assert_clean_stderr, closed_port

ETIMEDOUT = 110


def tool_dir():
    for d in (os.path.join(os.path.dirname(LOGCASTERD), "tests", "lib"),
              os.path.join(ROOT, "build", "asan", "tests", "lib")):
        if os.access(os.path.join(d, "lc_tool"), os.X_OK):
            return d
    pytest.fail("lc_tool is not built: run make build/asan/tests/lib/lc_tool")


def tool_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGCASTER_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.update(extra)
    return env


def url(port, params=""):
    return "logcaster://%s:%d%s" % (HOST, port, "?" + params if params else "")


class Result:
    """What lc_tool printed, parsed."""

    def __init__(self, out, err):
        self.out, self.err = out, err
        self.lines = out.splitlines()
        self.counters, self.flushed = {}, []
        self.final_flush = self.close_rc = self.close_ms = None
        self.last_error = None
        for l in self.lines:
            if l.startswith("counters "):
                self.counters = {k: int(v) for k, v in (p.split("=") for p in l.split()[1:])}
            elif l.startswith("flushed "):
                _, n, rc = l.split()
                self.flushed.append((int(n), int(rc)))
            elif l.startswith("final_flush "):
                self.final_flush = int(l.split()[1])
            elif l.startswith("last_error"):
                self.last_error = l[len("last_error "):]
            elif l.startswith("close "):
                _, rc, ms = l.split()
                self.close_rc, self.close_ms = int(rc), float(ms)

    def __getitem__(self, key):
        return self.counters[key]

    def __repr__(self):
        return "lc_tool output:\n%s\nstderr:\n%s" % (self.out[-3000:], self.err[-3000:])


def run_tool(u, *args, timeout=120, env=None):
    """Run lc_tool to the end; checks a clean exit and a clean stderr."""
    r = subprocess.run([os.path.join(tool_dir(), "lc_tool"), u] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env or tool_env())
    res = Result(r.stdout.decode(), r.stderr.decode("utf-8", "replace"))
    assert_clean_stderr(res.err, "lc_tool")
    assert r.returncode == 0, "lc_tool exit %d; %r" % (r.returncode, res)
    assert res.close_rc is not None, res
    return res


class ToolProc:
    """lc_tool running in the background, its stdout read line by line with a deadline."""

    def __init__(self, u, *args, env=None):
        self.proc = subprocess.Popen(
            [os.path.join(tool_dir(), "lc_tool"), u] + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env or tool_env())
        self.out = b""
        self.err = b""
        self._errt = threading.Thread(target=self._read_err, daemon=True)
        self._errt.start()

    def _read_err(self):
        self.err = self.proc.stderr.read()

    def wait_line(self, pred, timeout=60):
        """Read until a complete line satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            for l in self.out.decode().splitlines(True):
                if l.endswith("\n") and pred(l.rstrip("\n")):
                    return l.rstrip("\n")
            left = deadline - time.monotonic()
            assert left > 0, "lc_tool did not print the line waited for; so far:\n%s" % \
                self.out.decode()[-2000:]
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                assert chunk, "lc_tool exited early:\n%s\n%s" % (
                    self.out.decode()[-2000:], self.err.decode("utf-8", "replace")[-2000:])
                self.out += chunk

    def count_lines(self, prefix):
        return [l for l in self.out.decode().splitlines() if l.startswith(prefix)]

    def go(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout=120):
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("lc_tool did not finish within %d s: %s" % (timeout, self.out[-2000:]))
        self._errt.join(10)
        self.out += rest or b""
        res = Result(self.out.decode(), self.err.decode("utf-8", "replace"))
        assert_clean_stderr(res.err, "lc_tool")
        assert self.proc.returncode == 0, "lc_tool exit %d; %r" % (self.proc.returncode, res)
        return res

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def tools():
    """Background lc_tool processes, killed at the end if a test left them running."""
    started = []

    def start(*a, **kw):
        t = ToolProc(*a, **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def http_entries(s, q, limit):
    """Entries matching q through the HTTP API, oldest first, as dicts."""
    u = "http://%s:%d/api/v1/query?%s" % (HOST, s.http_port, urllib.parse.urlencode(
        {"q": q, "limit": limit, "format": "ndjson"}))
    with urllib.request.urlopen(u, timeout=IO_TIMEOUT) as r:
        rows = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
    return rows[::-1]


def messages(s, expr):
    """Messages of the entries matching expr, in id order (query port)."""
    return [r.msg for r in s.search(expr)]


# 1. No server needed --------------------------------------------------------------------------

def test_unit_program():
    r = subprocess.run([os.path.join(tool_dir(), "lc_unit")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, env=tool_env())
    out, err = r.stdout.decode(), r.stderr.decode("utf-8", "replace")
    assert_clean_stderr(err, "lc_unit")
    assert r.returncode == 0 and re.search(r"lc_unit: \d+ passed, 0 failed", out), out + err


@pytest.mark.parametrize("bad", ["", "http://127.0.0.1:9999", "logcaster://", "logcaster://h:99999",
                                 "logcaster://h?queue=0", "logcaster://h?on_full=sometimes",
                                 "logcaster://h?colour=blue", "logcaster://h?on_full=spill"])
def test_bad_url_fails_cleanly(bad):
    r = subprocess.run([os.path.join(tool_dir(), "lc_tool"), bad, "--lines", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=tool_env())
    assert r.returncode == 3, r
    assert r.stdout.decode().startswith("open_failed 22 "), r.stdout
    assert_clean_stderr(r.stderr.decode(), "lc_tool")


# 2. Delivery ----------------------------------------------------------------------------------

def test_lines_arrive_with_level_time_and_text(server):
    s = server()
    t0 = int(time.time() * 1000)
    r = run_tool(url(s.log_port), "--lines", 600, "--level", -1, "--prefix", "basic")
    t1 = int(time.time() * 1000)
    assert r.final_flush == 0 and r.close_rc == 0, r
    assert r.counters["logged"] == r.counters["acked"] == 600, r
    assert r["dropped"] == r["resent"] == r["rejected"] == r["reconnects"] == r["queued"] == 0
    assert r.last_error == ""
    rows = http_entries(s, "basic", 1000)
    names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    assert [e["message"] for e in rows] == ["basic 0 %d" % i for i in range(600)]
    assert [e["level"] for e in rows] == [names[i % 6] for i in range(600)]
    assert all(t0 <= e["ts_ms"] <= t1 for e in rows), (t0, t1, rows[0]["ts_ms"])
    assert all(a["ts_ms"] <= b["ts_ms"] for a, b in zip(rows, rows[1:]))

    # lc_log_raw: the given millisecond timestamps, exactly.
    base = 1700000000123
    r = run_tool(url(s.log_port), "--lines", 50, "--raw-ts", base, "--prefix", "rawts",
                 "--level", 4)
    assert r.final_flush == 0 and r["acked"] == 50, r
    rows = http_entries(s, "rawts", 100)
    assert [(e["ts_ms"], e["level"]) for e in rows] == [(base + i, "ERROR") for i in range(50)]

    # Any bytes: UTF-8 is kept, control characters are escaped by the server.
    r = run_tool(url(s.log_port), "--lines", 1, "--message", "caf\u00e9 | LOG:x \ttab %s %d")
    assert r["acked"] == 1, r
    assert messages(s, "caf\u00e9") == ["caf\u00e9 | LOG:x \\x09tab %s %d"]


def test_long_messages_cut_and_refused_entries_counted(server):
    s = server("--max-line", "2000")
    # Over the server's limit: refused (error code 4), counted, never resent; the connection
    # goes on and delivers the others.
    r = run_tool(url(s.log_port), "--lines", 30, "--size", 3000, "--long-every", 3,
                 "--prefix", "mixed")
    assert r.final_flush == 0, r
    assert r["rejected"] == 10 and r["acked"] == 20 and r["resent"] == 0, r
    assert r["reconnects"] == 0 and r["queued"] == 0, r
    assert "entry refused" in r.last_error and "too long" in r.last_error, r.last_error
    assert messages(s, "mixed") == ["mixed 0 %d " % i for i in range(30) if i % 3 != 2]



def test_message_over_a_frame_is_cut(server):
    """A message longer than a frame holds is cut by the library to LC_MAX_MESSAGE (65526)
    bytes and counted; the rest of it is not sent."""
    s = server()
    r = run_tool(url(s.log_port), "--lines", 2, "--size", 70000, "--prefix", "huge")
    assert r.final_flush == 0 and r["truncated"] == 2 and r["logged"] == 2, r
    assert r["acked"] == 2 and r["rejected"] == 0 and r["resent"] == 0, r
    msgs = messages(s, "huge")
    assert [len(m) for m in msgs] == [65526, 65526]
    assert all(m.startswith("huge 0 ") and m.endswith("xxx") for m in msgs)


def test_threads_share_a_pool_of_connections(server):
    s = server()
    r = run_tool(url(s.log_port, "connections=4&queue=100000"), "--threads", 4,
                 "--lines", 20000, "--prefix", "pool")
    assert r.final_flush == 0 and r.close_rc == 0, r
    assert r["logged"] == r["acked"] == 80000 and r["dropped"] == 0, r
    msgs = messages(s, "pool")
    assert len(msgs) == 80000
    assert set(msgs) == {"pool %d %d" % (t, i) for t in range(4) for i in range(20000)}
    # They came over four connections (an entry's source is its connection's ip:port).
    sources = {e["source"] for e in http_entries(s, "pool", 100000)}
    assert len(sources) == 4, sources


def test_block_mode_waits_for_room(server):
    s = server()
    r = run_tool(url(s.log_port, "queue=16&on_full=block&window=8"), "--lines", 5000,
                 "--prefix", "blk")
    assert r.final_flush == 0 and r["acked"] == 5000 and r["dropped"] == 0, r
    assert messages(s, "blk") == ["blk 0 %d" % i for i in range(5000)]


def test_shared_library_example(server):
    hello = os.path.join(ROOT, "build", "rel", "examples", "hello")
    so = os.path.join(ROOT, "build", "rel", "liblogcaster.so.1")
    if not (os.access(hello, os.X_OK) and os.path.exists(so)):
        pytest.skip("make lib has not been run")
    s = server()
    r = subprocess.run([hello, url(s.log_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, env=tool_env())
    assert r.returncode == 0 and r.stdout.decode().strip() == "logged 5, stored 5", r
    assert messages(s, "hello") == ["hello from liblogcaster"]
    assert s.count("counting") == 3
    # The shared object exports the API and nothing else.
    nm = subprocess.run(["nm", "-D", "--defined-only", so], stdout=subprocess.PIPE, check=True)
    names = sorted(l.split()[-1] for l in nm.stdout.decode().splitlines() if l.strip())
    assert names == sorted(["lc_open", "lc_log", "lc_logv", "lc_log_raw", "lc_flush", "lc_close",
                            "lc_counters", "lc_last_error", "lc_level_str", "lc_interrupt"]), names
    head = subprocess.run(["readelf", "-d", so], stdout=subprocess.PIPE, check=True).stdout
    assert b"Library soname: [liblogcaster.so.1]" in head


# 3. Server restarts ---------------------------------------------------------------------------

def restart_run(server, tmp_path, stop):
    """Log 20000 lines with a flush every 500 while the server is stopped (by stop) and
    started again on the same port and data. Every line that a successful flush covered must
    be stored, no line more than twice, and duplicates only within what was resent."""
    data = str(tmp_path / "shared-data")
    a = server("--data-dir", data, "--fsync", "always")
    port = a.log_port
    total = 20000
    t = ToolProc(url(port, "connect_timeout_ms=2000&queue=100000&window=2000"),
                 "--lines", total, "--flush-every", 500, "--flush-timeout", 60000,
                 "--pause-ms", 20, "--prefix", "rst", "--final-flush", 60000)
    t.wait_line(lambda l: l.startswith("flushed 2000 "))
    stop(a)
    # Keep the server down long enough that the client sees failed connects, then restart.
    time.sleep(0.7)
    b = server("--data-dir", data, "--fsync", "always", "--log-port", port)
    assert b.log_port == port
    r = t.finish()
    assert r.final_flush == 0 and r.close_rc == 0, r
    assert all(rc == 0 for _, rc in r.flushed), r.flushed
    assert r["acked"] >= total and r["dropped"] == 0 and r["rejected"] == 0, r
    assert r["reconnects"] >= 1, r
    msgs = messages(b, "rst")
    want = ["rst 0 %d" % i for i in range(total)]
    assert set(msgs) == set(want), "lost: %s" % sorted(set(want) - set(msgs))[:10]
    dups = len(msgs) - len(set(msgs))
    # Duplicates are entries that were in flight when the connection failed, and were resent.
    assert dups <= r["resent"] <= 2000 * r["reconnects"], (dups, r.counters)
    counts = {}
    for m in msgs:
        counts[m] = counts.get(m, 0) + 1
    assert max(counts.values()) <= 2
    # With one connection, the first copy of each line comes in the order logged.
    first = []
    seen = set()
    for m in msgs:
        if m not in seen:
            seen.add(m)
            first.append(m)
    assert first == want
    return r, dups


def test_server_killed_mid_stream_loses_nothing_flushed(server, tmp_path):
    def kill9(s):
        assert s.stop(signal.SIGKILL, timeout=10) == -signal.SIGKILL
    restart_run(server, tmp_path, kill9)


def test_server_clean_restart_mid_stream(server, tmp_path):
    def term(s):
        assert s.stop() == 0
    r, dups = restart_run(server, tmp_path, term)


# 4. A server that does not answer ---------------------------------------------------------------

class FakeServer:
    """Accepts connections and reads every byte, but never acknowledges a LOG_MS frame. With
    pong=True it answers the handshake (AUTH and PING), so entries get sent; it records the
    frames it received."""

    def __init__(self, pong):
        self.pong = pong
        self.lsock = socket.socket()
        self.lsock.bind((HOST, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.frames = []  # (command, seq, payload) of the first connection
        self.conns = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        socks = []
        self.lsock.settimeout(0.1)
        try:
            while not self.stop:
                try:
                    c, _ = self.lsock.accept()
                    self.conns += 1
                    threading.Thread(target=self._serve, args=(c, self.conns == 1),
                                     daemon=True).start()
                    socks.append(c)
                except socket.timeout:
                    pass
        finally:
            for c in socks:
                c.close()

    def _serve(self, c, record):
        buf = b""
        c.settimeout(0.2)
        while not self.stop:
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                ver, cmd, length, seq = struct.unpack(">BBHI", buf[:8])
                if len(buf) < 8 + length:
                    break
                payload, buf = buf[8:8 + length], buf[8 + length:]
                if record:
                    self.frames.append((cmd, seq, payload))
                if self.pong and cmd in (3, 5):
                    c.sendall(struct.pack(">BBHI", 1, cmd | 0x80, 0, seq))

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.lsock.close()


@pytest.mark.parametrize("pong", [False, True])
def test_server_that_never_acks(pong):
    fake = FakeServer(pong)
    try:
        t0 = time.time() * 1000
        r = run_tool(url(fake.port, "flush_timeout_ms=400&connect_timeout_ms=300"),
                     "--lines", 200, "--final-flush", 800, "--prefix", "fake", timeout=60)
        t1 = time.time() * 1000
    finally:
        fake.close()
    assert r.final_flush == -ETIMEDOUT and r.close_rc == -ETIMEDOUT, r
    assert r.close_ms < 1500, r       # lc_close waits flush_timeout_ms (400), not more.
    assert r["acked"] == 0 and r["queued"] == 200 and r["logged"] == 200, r
    if not pong:
        assert "no answer to the handshake" in r.last_error, r.last_error
        return
    # The frames: PING, then 200 LOG_MS pipelined without waiting, in order.
    cmds = [f[0] for f in fake.frames]
    assert cmds[0] == 3 and cmds[1:201] == [6] * 200, cmds[:10]
    seqs = [f[1] for f in fake.frames[:201]]
    assert seqs == list(range(1, 202))
    for i, (_, _, p) in enumerate(fake.frames[1:201]):
        level, ts = struct.unpack(">BQ", p[:9])
        assert level == 2 and t0 - 1 <= ts <= t1 + 1
        assert p[9:] == ("fake 0 %d" % i).encode()


def test_wrong_port_gives_a_clear_error(server):
    # The query port speaks the binary protocol too, but takes no LOG_MS (error code 6).
    s = server()
    r = run_tool(url(s.query_port, "connect_timeout_ms=1000&flush_timeout_ms=0"), "--lines", 1,
                 "--final-flush", 1000)
    assert r.final_flush == -ETIMEDOUT and r["acked"] == 0, r
    assert "server error: error 6" in r.last_error and "log port" in r.last_error, r.last_error
    # Something that is not LogCaster at all.
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(4)

    def answer():
        c, _ = lsock.accept()
        c.recv(100)
        c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        time.sleep(0.5)
        c.close()

    th = threading.Thread(target=answer, daemon=True)
    th.start()
    r = run_tool(url(lsock.getsockname()[1], "connect_timeout_ms=1000&flush_timeout_ms=0"),
                 "--lines", 1, "--final-flush", 300)
    th.join(5)
    lsock.close()
    assert "does not speak the binary protocol (it answered 'SSH-2.0-OpenSSH_9.2p1" in \
        r.last_error, r.last_error


# 5. Server down: drop and spill ------------------------------------------------------------------

def test_drop_mode_counts_exactly_the_overflow(server, tools):
    port = closed_port()
    t = tools(url(port, "queue=100&connect_timeout_ms=500"), "--lines", 250, "--wait-stdin",
              "--prefix", "drp", "--final-flush", 60000)
    t.wait_line(lambda l: l == "ready")
    before = [Result(l, "").counters for l in t.count_lines("counters ")][0]
    assert before["logged"] == 250 and before["dropped"] == 150 and before["queued"] == 100
    assert before["acked"] == 0
    s = server("--log-port", port)
    t.go()
    r = t.finish()
    assert r.final_flush == 0 and r["acked"] == 100 and r["dropped"] == 150, r
    assert "cannot connect" in r.last_error and "refused" in r.last_error.lower(), r.last_error
    assert messages(s, "drp") == ["drp 0 %d" % i for i in range(100)]


def test_spill_mode_loses_nothing_and_keeps_order(server, tools, tmp_path):
    port = closed_port()
    spill = tmp_path / "app.spill"
    t = tools(url(port, "queue=50&connect_timeout_ms=500&spill=%s" % spill), "--lines", 3000,
              "--wait-stdin", "--prefix", "spl", "--final-flush", 60000)
    t.wait_line(lambda l: l == "ready")
    before = [Result(l, "").counters for l in t.count_lines("counters ")][0]
    assert before["spilled"] == 2950 and before["queued"] == 50 and before["dropped"] == 0
    assert before["spill_queued"] == 2950
    assert os.path.getsize(str(spill)) > 2950 * 20
    s = server("--log-port", port)
    t.go()
    r = t.finish()
    assert r.final_flush == 0 and r["acked"] == 3000 and r["spill_queued"] == 0, r
    assert messages(s, "spl") == ["spl 0 %d" % i for i in range(3000)]
    assert os.path.getsize(str(spill)) == 16   # Emptied once everything was taken back.


def test_spill_file_carries_entries_to_the_next_process(server, tmp_path):
    port = closed_port()
    spill = tmp_path / "app.spill"
    # The server is down: 400 lines, 350 of them spilled; lc_close cannot deliver the 50 in
    # memory and saves them in front of the spilled ones.
    r1 = run_tool(url(port, "queue=50&flush_timeout_ms=300&connect_timeout_ms=300&spill=%s"
                      % spill), "--lines", 400, "--prefix", "gen1", "--final-flush", 200)
    assert r1.final_flush == -ETIMEDOUT and r1.close_rc == -ETIMEDOUT, r1
    assert r1["spilled"] == 350 and r1["queued"] == 50, r1
    s = server("--log-port", port)
    # A new process on the same spill file sends them first, then its own.
    r2 = run_tool(url(port, "spill=%s" % spill), "--lines", 20, "--prefix", "gen2")
    assert r2.final_flush == 0 and r2["acked"] == 420, r2
    assert messages(s, "gen1 OR gen2") == ["gen1 0 %d" % i for i in range(400)] + \
        ["gen2 0 %d" % i for i in range(20)]
    # And the file is used up: a third process sends nothing again.
    r3 = run_tool(url(port, "spill=%s" % spill), "--lines", 0)
    assert r3["acked"] == 0 and r3.final_flush == 0, r3
    assert s.count("gen1") == 400


# 6. Authentication ------------------------------------------------------------------------------

def test_auth_token(server):
    s = server("--log-auth", "on", "--log-token", "s3cret")
    r = run_tool(url(s.log_port, "token=s3cret"), "--lines", 10, "--prefix", "authurl")
    assert r.final_flush == 0 and r["acked"] == 10, r
    r = run_tool(url(s.log_port), "--lines", 10, "--prefix", "authenv",
                 env=tool_env(LOGCASTER_TOKEN="s3cret"))
    assert r.final_flush == 0 and r["acked"] == 10, r
    assert s.count("authurl") == 10 and s.count("authenv") == 10

    r = run_tool(url(s.log_port, "flush_timeout_ms=0"), "--lines", 3, "--final-flush", 1000)
    assert r.final_flush == -ETIMEDOUT and r["acked"] == 0, r
    assert "authentication required" in r.last_error, r.last_error

    t0 = time.monotonic()
    r = run_tool(url(s.log_port, "token=wrong&flush_timeout_ms=0"), "--lines", 3,
                 "--final-flush", 2000)
    assert time.monotonic() - t0 < 10
    assert r.final_flush == -ETIMEDOUT and r["acked"] == 0, r
    assert "authentication failed" in r.last_error, r.last_error
    # One failure, then a long backoff: the address is not locked out (5 failures a minute),
    # so a client with the right token still gets in.
    r = run_tool(url(s.log_port, "token=s3cret"), "--lines", 1, "--prefix", "stillok")
    assert r.final_flush == 0 and s.count("stillok") == 1, r
