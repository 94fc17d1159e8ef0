"""Fixtures for the LogCaster integration tests.

Every test starts its own logcasterd (the binary named by $LOGCASTERD, normally the
ASan+UBSan build) on ephemeral ports with a private data directory, talks to it over real
sockets, and at teardown stops it with SIGTERM and checks that it exited 0 without any
sanitizer report on stderr.
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

# The NATS JetStream fixtures, for every test module (also when another suite loads this file
# by its path: tests/syslog-ng).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natscluster import (logcaster_node, module_nats_cluster, nats_cluster,  # noqa: F401
                         nats_single)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOGCASTERD = os.environ.get("LOGCASTERD") or os.path.join(ROOT, "build", "asan", "logcasterd")
LOGCASTER = os.environ.get("LOGCASTER") or os.path.join(ROOT, "build", "asan", "logcaster")

HOST = "127.0.0.1"
IO_TIMEOUT = 10.0          # Longest wait for any single network read or write.
STARTUP_TIMEOUT = 15.0     # Longest wait for the "listening" lines.
SHUTDOWN_TIMEOUT = 20.0    # Longest wait for exit after SIGTERM (leak checking takes time).
# Tests open many connections a second from 127.0.0.1; the per-address connection rate limits
# are tested on their own (test_security.py), so the other tests switch them off.
NO_RATE_LIMITS = ["--log-conn-rate", "0", "--query-conn-rate", "0", "--irc-conn-rate", "0",
                  "--http-conn-rate", "0"]
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error", "LeakSanitizer")


def server_env():
    """Environment for the server: fixed time zone so FOUND lines are predictable."""
    env = dict(os.environ)
    env["TZ"] = "UTC"
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_clean_stderr(text, what="server"):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, "%s stderr contains %r:\n%s" % (what, marker, text[-6000:])


class SockBase:
    """What every test client over self.sock shares: close(), a context manager, send()."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)


class LineConn(SockBase):
    """A socket with a line reader; every wait is bounded by the socket timeout."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""   # Received bytes; those before pos are consumed.
        self.pos = 0


    def settimeout(self, t):
        self.sock.settimeout(t)

    def sendall(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self):
        """One line as bytes without its '\\n'. Raises EOFError when the peer closes first."""
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 1
                return line
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed; unterminated data %r"
                               % self.buf[self.pos:self.pos + 200])
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0

    def readlines(self, n):
        return [self.readline() for _ in range(n)]

    def read_until_closed(self):
        """Everything the peer sends until it closes (bounded by the socket timeout)."""
        data, self.buf, self.pos = self.buf[self.pos:], b"", 0
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return data
            data += chunk

    # Query protocol framing -------------------------------------------------------------

    def read_reply_raw(self):
        """One complete query-port answer as a list of byte lines, header and END included.

        RESULT:n / RESULT|n: n rows then END. FOUND: n: n rows. COUNT|n, PONG, ERROR...: one
        line. Anything else (STATS, HELP): lines up to END."""
        first = self.readline()
        lines = [first]
        m = re.match(rb"^RESULT[:|](\d+)$", first)
        if m:
            lines += self.readlines(int(m.group(1)))
            end = self.readline()
            lines.append(end)
            assert end == b"END", "expected END after %s rows, got %r" % (m.group(1), end[:200])
            return lines
        m = re.match(rb"^FOUND: (\d+)$", first)
        if m:
            lines += self.readlines(int(m.group(1)))
            return lines
        if first.startswith((b"COUNT|", b"PONG", b"ERROR")):
            return lines
        while lines[-1] != b"END":
            lines.append(self.readline())
        return lines

    def request_raw(self, cmd):
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.sendall(cmd + b"\n")
        return self.read_reply_raw()

    def request(self, cmd):
        return [decode(l) for l in self.request_raw(cmd)]


def decode(b):
    return b.decode("utf-8", "surrogateescape")


_OK_ID = re.compile(rb"^OK\|(\d+)$")


class SourceConn(LineConn):
    """A LineConn from a chosen source address (127.0.0.x), optionally wrapped in TLS."""

    def __init__(self, port, src=None, timeout=IO_TIMEOUT, tls=None, host=HOST):
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(src, 0) if src else None)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
            except BaseException:
                sock.close()
                raise
        sock.settimeout(timeout)
        self.sock = sock
        self.buf = b""
        self.pos = 0

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def read_exact(self, n):
        while len(self.buf) - self.pos < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("closed with %d of %d bytes" % (len(self.buf) - self.pos, n))
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def framed(self, lines):
        """Send framed LOG| lines; return their ids (every reply must be OK|<id>)."""
        self.sendall("".join("LOG|INFO|-|%s\n" % l for l in lines))
        ids = []
        for l in lines:
            reply = self.readline()
            m = _OK_ID.match(reply)
            assert m, "line %r answered %r" % (l, reply)
            ids.append(int(m.group(1)))
        return ids


class Row:
    """One row of a RESULT|n answer: <id>|<LEVEL>|<ts>|<message>."""

    def __init__(self, line):
        parts = line.split("|", 3)
        assert len(parts) == 4, "bad result row %r" % line
        self.id = int(parts[0])
        self.level = parts[1]
        self.ts = int(parts[2])
        self.msg = parts[3]

    def __repr__(self):
        return "Row(%d|%s|%d|%r)" % (self.id, self.level, self.ts, self.msg[:80])


class Server:
    def __init__(self, tmp_path, args, expect_exit=0, rate_limits=False):
        """rate_limits: keep the built-in connection rate limits (test_conn_rate.py)."""
        self.data_dir = str(tmp_path / "data")
        self.stderr_path = str(tmp_path / "stderr.txt")
        self.args = [LOGCASTERD, "--bind", HOST, "--log-port", "0", "--query-port", "0",
                     "--irc-port", "0", "--http-port", "0", "--data-dir", self.data_dir] + \
            ([] if rate_limits else NO_RATE_LIMITS) + list(args)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=server_env())
        self.pid = self.proc.pid
        self.killed = False         # The test stopped the server itself.
        self.log_port = self.query_port = None
        self._q = None
        self._read_listening()
        # Keep draining stdout so the server can never block on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _arg(self, flag):
        """The last value given for flag, or None."""
        vals = [self.args[i + 1] for i, a in enumerate(self.args[:-1]) if a == flag]
        return vals[-1] if vals else None

    def _read_listening(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        fd = self.proc.stdout.fileno()
        pending = b""
        self.irc_port = self.http_port = None
        self.listening = []   # (role, port) of every listener, extra --listen ones included
        expect = {"log", "query"}
        for role in ("irc", "http"):
            if self._arg("--%s-port" % role) != "-1":
                expect.add(role)
        expect.update(a.rsplit("=", 1)[1].replace("+tls", "") for i, a in enumerate(self.args)
                      if i > 0 and self.args[i - 1] == "--listen")
        while not expect <= {r for r, _ in self.listening}:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail_start("no 'listening' lines within %.0f s" % STARTUP_TIMEOUT)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                self._fail_start("server exited before listening")
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                m = re.match(rb"^listening (\w+) (\S+):(\d+)$", line.strip())
                if not m:
                    continue
                role, port = m.group(1).decode(), int(m.group(3))
                self.listening.append((role, port))
                if role in ("log", "query", "irc", "http") and \
                        getattr(self, role + "_port", None) is None:
                    setattr(self, role + "_port", port)

    def _fail_start(self, why):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        pytest.fail("%s (args %s, exit %s): %s" % (why, self.args, self.proc.returncode,
                                                  self.stderr()[-3000:]))

    def _drain_stdout(self):
        try:
            while self.proc.stdout.read(4096):
                pass
        except (OSError, ValueError):
            pass

    # Process ---------------------------------------------------------------------------

    def stderr(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT):
        """Deliver sig and wait for the exit; returns the exit code (kills on timeout)."""
        self.killed = True
        self.close_query()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                pytest.fail("server did not exit within %.0f s of signal %s" % (timeout, sig))
        return self.proc.returncode

    def teardown(self):
        self.close_query()
        if not self.killed:
            rc = self.stop()
            assert rc == 0, "server exit code %s after SIGTERM; stderr:\n%s" % (
                rc, self.stderr()[-6000:])
        elif self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()
        assert_clean_stderr(self.stderr())

    def rss(self):
        """Resident set size in bytes, from /proc/<pid>/status."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for pid %d" % self.pid)

    # Connections -----------------------------------------------------------------------

    def connect_log(self, timeout=IO_TIMEOUT):
        return LineConn(self.log_port, timeout)

    def connect_query(self, timeout=IO_TIMEOUT):
        return LineConn(self.query_port, timeout)

    def close_query(self):
        if self._q is not None:
            self._q.close()
            self._q = None

    @property
    def q(self):
        """A persistent query connection, shared by the helpers below."""
        if self._q is None:
            self._q = self.connect_query()
        return self._q

    # Ingest helpers --------------------------------------------------------------------

    def send(self, lines):
        """Send plain lines (str or bytes, without newlines) on a fresh connection, then close.

        Plain lines get no reply: use wait_count() to know they are stored."""
        data = b"".join((l.encode() if isinstance(l, str) else l) + b"\n" for l in lines)
        with self.connect_log() as c:
            c.sendall(data)
            c.sock.shutdown(socket.SHUT_WR)
            # The server closes after it has read everything: wait for that.
            rest = c.read_until_closed()
            assert rest == b"", "unexpected reply to plain lines: %r" % rest[:200]

    def send_framed(self, lines):
        """Send framed lines on a fresh connection; return one decoded reply per line."""
        data = b"".join((l.encode() if isinstance(l, str) else l) + b"\n" for l in lines)
        with self.connect_log() as c:
            c.sendall(data)
            return [decode(r) for r in c.readlines(len(lines))]

    def log(self, level, ts, msg):
        """Store one LOG| line; returns its id."""
        reply = self.send_framed(["LOG|%s|%s|%s" % (level, ts, msg)])[0]
        m = re.match(r"^OK\|(\d+)$", reply)
        assert m, "expected OK|<id>, got %r" % reply
        return int(m.group(1))

    # Query helpers ---------------------------------------------------------------------

    def query(self, cmd):
        """Send one query-port command; return the complete answer as a list of str lines."""
        return self.q.request(cmd)

    def query_raw(self, cmd):
        return self.q.request_raw(cmd)

    def search(self, expr):
        """SEARCH expr -> list of Row, after checking the RESULT|n header and END."""
        lines = self.query("SEARCH " + expr)
        assert lines[0].startswith("RESULT|"), "SEARCH %s -> %r" % (expr, lines[:3])
        n = int(lines[0][len("RESULT|"):])
        assert len(lines) == n + 2 and lines[-1] == "END"
        return [Row(l) for l in lines[1:-1]]

    def count(self, expr=""):
        lines = self.query(("COUNT " + expr) if expr else "COUNT")
        assert len(lines) == 1 and re.match(r"^COUNT\|\d+$", lines[0]), lines
        return int(lines[0].split("|")[1])

    def stats(self):
        lines = self.query("STATS")
        assert lines[-1] == "END", lines
        out = {}
        for l in lines[:-1]:
            k, _, v = l.partition(" ")
            out[k] = v
        return out

    def wait_count(self, n, expr="", timeout=60.0):
        """Poll COUNT until it equals n; fail on timeout or if it goes past n."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.count(expr)
            if got == n:
                return
            assert got < n, "COUNT %s is %d, more than the expected %d" % (expr, got, n)
            time.sleep(0.05)
        pytest.fail("COUNT %s stayed at %s, expected %d within %.0f s" % (expr, got, n, timeout))

    def wait_stat(self, key, n, timeout=60.0):
        """Poll STATS until key equals n."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.stats().get(key)
            if got is not None and int(got) == n:
                return
            time.sleep(0.05)
        pytest.fail("STATS %s stayed at %s, expected %d within %.0f s" % (key, got, n, timeout))


def _server_factory(tmp_path_factory, **server_kw):
    """start(*args) and finish(); server_kw goes to every Server (rate_limits=True keeps the
    built-in access policy)."""
    started = []

    def start(*args):
        s = Server(tmp_path_factory.mktemp("lc"), [str(a) for a in args], **server_kw)
        started.append(s)
        return s

    def finish():
        errors = []
        for s in started:
            try:
                s.teardown()
            except BaseException as e:  # Stop every server even if one fails its checks.
                errors.append(e)
        if errors:
            raise errors[0]

    return start, finish


@pytest.fixture
def server(tmp_path_factory):
    """Factory: server(*extra_args) starts a logcasterd; all are stopped and checked at teardown."""
    start, finish = _server_factory(tmp_path_factory)
    yield start
    finish()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """The same factory, for servers shared by the read-only tests of one module."""
    start, finish = _server_factory(tmp_path_factory)
    yield start
    finish()


def run_in_thread(fn, *args):
    """Run fn in a daemon thread; returns a joiner that re-raises fn's exception."""
    box = {}

    def body():
        try:
            box["result"] = fn(*args)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()

    def join(timeout=IO_TIMEOUT * 3):
        t.join(timeout)
        assert not t.is_alive(), "worker thread still running after %.0f s" % timeout
        if "error" in box:
            raise box["error"]
        return box.get("result")

    return join
