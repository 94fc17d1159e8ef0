"""Integration tests for the HTTP/1.1 server of logcasterd: framing (keep-alive, pipelining,
100-continue, chunked bodies, HEAD), the error statuses and limits, and every endpoint
(console assets, /healthz, /api/v1/stats, /api/v1/query in JSON and NDJSON, /api/v1/histogram,
/api/v1/tail as Server-Sent Events, POST /api/v1/logs, /metrics).

Precise tests drive raw sockets through the small client below; a few use curl, as a real
client would. Every read has a deadline.
"""
import contextlib
import datetime
import email.utils
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import HOST, LineConn, Server, SockBase, assert_clean_stderr, run_in_thread

READ_TIMEOUT = 5.0     # Longest wait for an expected response.
LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
REASONS = {
    200: ("OK",), 100: ("Continue",),
    400: ("Bad Request",), 404: ("Not Found",), 405: ("Method Not Allowed",),
    408: ("Request Timeout",), 411: ("Length Required",),
    413: ("Content Too Large", "Payload Too Large"), 414: ("URI Too Long",),
    431: ("Request Header Fields Too Large",), 501: ("Not Implemented",),
    505: ("HTTP Version Not Supported",),
}
DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                     r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
ISO_MS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BASE = 1700000000      # 2023-11-14T22:13:20Z: event times of the loaded data sets.


# ---- a raw HTTP client ----------------------------------------------------------------------

class Resp:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers          # [(name, value)] in order
        self.body = body                # bytes, or None for a stream whose body is not read
        self.raw_head = raw_head

    def header(self, name):
        vals = self.all(name)
        return vals[0] if vals else None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Resp(%d %s %r %r)" % (self.status, self.reason, self.headers,
                                      (self.body or b"")[:300])


class Http(SockBase):
    """A raw HTTP/1.1 connection; every wait is bounded."""

    def __init__(self, port, timeout=READ_TIMEOUT, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""


    def _more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete response within the deadline; have %r"
                                 % self.buf[:300])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("connection closed; pending %r" % self.buf[:300])
        self.buf += chunk

    def _until(self, marker, deadline):
        while marker not in self.buf:
            self._more(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._more(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self, timeout=None):
        """The status line and headers of the next response (body not read)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        raw = self._until(b"\r\n\r\n", deadline)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3}) (.*)$", lines[0])
        assert m, "bad status line %r" % lines[0]
        headers = []
        for l in lines[1:]:
            k, sep, v = l.partition(":")
            assert sep and k and k == k.strip(), "bad header line %r" % l
            headers.append((k, v.strip()))
        return Resp(m.group(1), int(m.group(2)), m.group(3), headers, None, raw)

    def read_chunk(self, timeout=None):
        """The payload of the next chunk of a chunked body (b'' for the last one, whose
        trailer section is consumed too)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        line = self._until(b"\r\n", deadline)
        size = int(line[:-2].split(b";")[0], 16)
        if size == 0:
            self._until(b"\r\n", deadline)      # No trailers from this server.
            return b""
        data = self._exact(size, deadline)
        assert self._exact(2, deadline) == b"\r\n", "chunk not followed by CRLF"
        return data

    def read_response(self, head=False, timeout=None):
        r = self.read_head(timeout)
        deadline = time.monotonic() + (timeout or self.timeout)
        if 100 <= r.status < 200 or head or r.status in (204, 304):
            r.body = b""
        elif (r.header("Transfer-Encoding") or "").lower() == "chunked":
            parts = []
            while True:
                c = self.read_chunk(max(deadline - time.monotonic(), 0.001))
                if not c:
                    break
                parts.append(c)
            r.body = b"".join(parts)
        elif r.header("Content-Length") is not None:
            r.body = self._exact(int(r.header("Content-Length")), deadline)
        else:
            r.body = self.read_until_closed(timeout)
        return r

    def request(self, data, head=False, timeout=None):
        self.send(data)
        return self.read_response(head=head, timeout=timeout)

    def read_until_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._more(deadline)
        except EOFError:
            out, self.buf = self.buf, b""
            return out

    def closed_within(self, timeout=3.0):
        """True when the server closes (EOF or reset) within timeout without sending
        anything more; False when it stays open that long."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._more(deadline)
                assert False, "unexpected bytes after the response: %r" % self.buf[:300]
        except EOFError:
            return not self.buf
        except socket.timeout:
            return False

    def is_open(self, wait=0.3):
        """Nothing arrives and the connection is not closed within wait seconds."""
        deadline = time.monotonic() + wait
        try:
            self._more(deadline)
        except socket.timeout:
            return not self.buf
        except EOFError:
            return False
        return False


def req(method, target, headers=(), body=None, version="HTTP/1.1", host=True):
    """A request as bytes: Host (HTTP/1.1) and Content-Length (when body) added unless
    given."""
    hdrs = list(headers)
    names = {k.lower() for k, _ in hdrs}
    if host and version == "HTTP/1.1" and "host" not in names:
        hdrs.insert(0, ("Host", "127.0.0.1"))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
    return head.encode() + (body or b"")


def chunked(body, sizes=(7,), ext="", trailers=""):
    """body in chunks of the given sizes (cycled), each size line with ext; then trailers."""
    if isinstance(body, str):
        body = body.encode()
    out, i, k = [], 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        k += 1
        out.append(b"%x%s\r\n%s\r\n" % (n if i + n <= len(body) else len(body) - i,
                                         ext.encode(), body[i:i + n]))
        i += n
    out.append(b"0%s\r\n%s\r\n" % (ext.encode(), trailers.encode()))
    return b"".join(out)


def fetch(port, method, target, headers=(), body=None, version="HTTP/1.1"):
    with Http(port) as c:
        return c.request(req(method, target, headers, body, version), head=method == "HEAD")


def get(port, target, headers=()):
    return fetch(port, "GET", target, headers)


def get_json(port, target, headers=()):
    r = get(port, target, headers)
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json"), r
    return r.json()


def post_logs(port, body, headers=()):
    r = fetch(port, "POST", "/api/v1/logs", headers, body)
    return r


def q(s):
    return urllib.parse.quote(s, safe="")


def check_common(r, streamed=False, head=False):
    """The headers every response carries."""
    assert r.version == "HTTP/1.1", r
    assert r.reason in REASONS.get(r.status, (r.reason,)), r
    for name in ("Server", "Date", "Content-Type", "Cache-Control"):
        assert len(r.all(name)) == 1, "%s: %r" % (name, r.headers)
    assert r.header("Server")
    assert DATE_RE.match(r.header("Date")), r.header("Date")
    when = email.utils.parsedate_to_datetime(r.header("Date")).timestamp()
    assert abs(when - time.time()) < 5, r.header("Date")
    assert r.header("Cache-Control") == "no-store"
    if streamed:
        assert r.all("Transfer-Encoding") == ["chunked"], r
        assert r.header("Content-Length") is None, r
    else:
        assert len(r.all("Content-Length")) == 1, r
        assert r.header("Transfer-Encoding") is None, r
        if not head:
            assert int(r.header("Content-Length")) == len(r.body), r


def check_error(r, status, close=True):
    """An error response: the status, a JSON {"error": "..."} body, and (close) the
    Connection: close header. Returns the error message."""
    assert r.status == status, "expected %d, got %r" % (status, r)
    check_common(r)
    assert r.header("Content-Type").startswith("application/json"), r
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
    if close:
        assert r.header("Connection") == "close", r
    return body["error"]


def curl(*args, timeout=10):
    p = subprocess.run(["curl", "-sS", "--max-time", "8"] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p


def iso_ms(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def load_framed(s, rows):
    """Store (level, ts, message) rows as LOG| lines on one connection.
    Returns (ids, source) where source is the connection's ip:port."""
    with LineConn(s.log_port) as c:
        src = "%s:%d" % c.sock.getsockname()[:2]
        c.sendall("".join("LOG|%s|%s|%s\n" % r for r in rows))
        replies = [c.readline().decode() for _ in rows]
    ids = []
    for r in replies:
        m = re.match(r"^OK\|(\d+)$", r)
        assert m, replies
        ids.append(int(m.group(1)))
    return ids, src


def send_plain(port, lines):
    """Plain lines on a fresh ingest connection; waits until the server closed it."""
    with LineConn(port) as c:
        c.sendall(b"".join((l.encode() if isinstance(l, str) else l) + b"\n" for l in lines))
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed() == b""


# ---- servers --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_srv(module_server):
    """Default limits: protocol-level tests. Holds one entry, so that no query of these tests
    comes back empty (see test_query_with_no_matches)."""
    s = module_server()
    load_framed(s, [("INFO", "-", "plain seed entry")])
    return s


@contextlib.contextmanager
def own_server(tmp_path, *args):
    """A server whose exit status and sanitizer report are checked inside the test itself
    (not at fixture teardown), so that a strict xfail covers a crash too."""
    s = Server(tmp_path, [str(a) for a in args])
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            rc = s.stop()
        else:
            s.killed = True
            rc = s.proc.returncode
        s._stderr.close()
    assert rc == 0, "server exit code %s; stderr:\n%s" % (rc, s.stderr()[-3000:])
    assert_clean_stderr(s.stderr())


@pytest.fixture(scope="module")
def limits_srv(module_server):
    """Small limits for the 408/413/431 tests."""
    return module_server("--http-request-timeout", "1", "--http-max-body", "1K",
                         "--http-max-header", "1K", "--max-line", "256")


def dataset():
    """30 entries, 10 s apart from BASE, levels cycling, some with 'disk'."""
    rows = []
    for i in range(30):
        ms = (i * 37) % 1000
        rows.append((LEVELS[i % 6], "%d.%03d" % (BASE + 10 * i, ms),
                     "qapi entry %02d%s" % (i, " disk full" if i % 4 == 0 else "")))
    return rows


@pytest.fixture(scope="module")
def loaded(module_server):
    """A server holding dataset(); returns (server, rows with ids and ts_ms, source)."""
    s = module_server()
    rows = dataset()
    ids, src = load_framed(s, rows)
    out = []
    for (lvl, ts, msg), i in zip(rows, ids):
        sec, ms = ts.split(".")
        out.append({"id": i, "level": lvl, "ts_ms": int(sec) * 1000 + int(ms), "message": msg})
    return s, out, src


# ---- framing: headers, keep-alive, pipelining, 100-continue, chunked, HEAD ------------------

def test_healthz_and_common_headers(plain_srv):
    with Http(plain_srv.http_port) as c:
        r = c.request(req("GET", "/healthz"))
        assert r.status == 200 and r.body == b"ok\n", r
        check_common(r)
        assert r.header("Content-Type").startswith("text/plain")
        assert r.header("Connection") is None, "HTTP/1.1 keeps the connection by default"
        # Kept alive: the same connection answers again.
        r2 = c.request(req("GET", "/healthz"))
        assert r2.status == 200 and r2.body == b"ok\n"
        assert c.is_open()


def test_connection_close_is_honoured(plain_srv):
    with Http(plain_srv.http_port) as c:
        r = c.request(req("GET", "/healthz", [("Connection", "close")]))
        assert r.status == 200 and r.body == b"ok\n"
        assert r.header("Connection") == "close"
        assert c.closed_within(3.0)


def test_http10_closes_unless_keep_alive(plain_srv):
    with Http(plain_srv.http_port) as c:
        r = c.request(req("GET", "/healthz", version="HTTP/1.0"))
        assert r.status == 200 and r.body == b"ok\n"
        check_common(r)
        assert r.header("Connection") == "close"
        assert c.closed_within(3.0)
    with Http(plain_srv.http_port) as c:
        for _ in range(3):
            r = c.request(req("GET", "/healthz", [("Connection", "keep-alive")],
                              version="HTTP/1.0"))
            assert r.status == 200 and r.body == b"ok\n"
            assert r.header("Connection") != "close"
        assert c.is_open()
        # The last one without keep-alive closes.
        r = c.request(req("GET", "/healthz", version="HTTP/1.0"))
        assert r.header("Connection") == "close"
        assert c.closed_within(3.0)


def test_pipelined_requests_are_answered_in_order(server):
    s = server()
    body_a = "pipelined alpha ERROR one\n"
    data = (req("POST", "/api/v1/logs", body=body_a)
            + req("GET", "/api/v1/query?q=pipelined")
            + req("GET", "/healthz")
            + req("HEAD", "/app.css")
            + req("POST", "/api/v1/logs", [("Transfer-Encoding", "chunked")],
                  body=chunked("pipelined beta WARN two\n", sizes=(5,)))
            + req("GET", "/api/v1/stats")
            + req("GET", "/api/v1/query?q=pipelined&limit=1", [("Connection", "close")]))
    with Http(s.http_port) as c:
        c.send(data)
        r1 = c.read_response()
        assert r1.status == 200 and r1.json()["stored"] == 1, r1
        r2 = c.read_response()
        assert [e["message"] for e in r2.json()["entries"]] == ["pipelined alpha ERROR one"]
        r3 = c.read_response()
        assert r3.body == b"ok\n"
        r4 = c.read_response(head=True)
        assert r4.status == 200 and r4.header("Content-Type").startswith("text/css")
        r5 = c.read_response()
        assert r5.status == 200 and r5.json()["stored"] == 1
        assert r5.json()["first_id"] == r1.json()["first_id"] + 1
        r6 = c.read_response()
        assert r6.json()["entries"] == 2
        r7 = c.read_response()
        assert [e["message"] for e in r7.json()["entries"]] == ["pipelined beta WARN two"]
        assert r7.json()["more"] is True
        assert r7.header("Connection") == "close"
        assert c.closed_within(3.0)


def test_many_pipelined_requests_in_one_write(plain_srv):
    n = 200
    targets = ["/healthz" if i % 2 else "/api/v1/stats" for i in range(n)]
    with Http(plain_srv.http_port) as c:
        c.send(b"".join(req("GET", t) for t in targets))
        for t in targets:
            r = c.read_response()
            assert r.status == 200
            if t == "/healthz":
                assert r.body == b"ok\n"
            else:
                assert "entries" in r.json()
        assert c.is_open()


def test_pipelined_error_answers_then_closes(plain_srv):
    data = (req("GET", "/healthz")
            + b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"
            + req("GET", "/healthz"))
    with Http(plain_srv.http_port) as c:
        c.send(data)
        assert c.read_response().body == b"ok\n"
        check_error(c.read_response(), 400)
        assert c.closed_within(3.0), "the request after the bad one must not be answered"


def test_expect_100_continue(plain_srv):
    body = b"continued line ERROR one\ncontinued line two\n"
    with Http(plain_srv.http_port) as c:
        c.send(req("POST", "/api/v1/logs", [("Expect", "100-continue"),
                                             ("Content-Length", str(len(body)))]))
        # The interim response comes before any of the body is sent.
        r = c.read_head(timeout=3.0)
        assert (r.version, r.status, r.reason) == ("HTTP/1.1", 100, "Continue"), r
        assert r.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        r = c.read_response()
        assert r.status == 200 and r.json()["stored"] == 2, r
        # Kept alive; a request without a body gets no 100.
        r = c.request(req("GET", "/api/v1/query?q=continued", [("Expect", "100-continue")]))
        assert r.status == 200 and len(r.json()["entries"]) == 2, r


def test_expect_100_continue_with_chunked_body(plain_srv):
    with Http(plain_srv.http_port) as c:
        c.send(req("POST", "/api/v1/logs", [("Expect", "100-continue"),
                                             ("Transfer-Encoding", "chunked")]))
        assert c.read_head(timeout=3.0).status == 100
        c.send(chunked("chunk-continued a\nchunk-continued b\n", sizes=(4,)))
        r = c.read_response()
        assert r.status == 200 and r.json()["stored"] == 2, r


def test_expect_100_continue_refused_body_gets_413_not_100(limits_srv):
    with Http(limits_srv.http_port) as c:
        c.send(req("POST", "/api/v1/logs", [("Expect", "100-continue"),
                                             ("Content-Length", "5000")]))
        check_error(c.read_response(timeout=3.0), 413)
        assert c.closed_within(3.0)


def test_chunked_body_any_split_extensions_trailers(server):
    s = server()
    lines = ["chunksplit ERROR first %d" % 0, "chunksplit second", '{"msg":"chunksplit third",'
             '"level":"warn"}']
    body = "\n".join(lines) + "\n"
    variants = [
        chunked(body, sizes=(1,)),
        chunked(body, sizes=(3, 11, 2)),
        chunked(body, sizes=(len(body),), ext=";name=value;flag"),
        chunked(body, sizes=(10,), ext=' ;q="quoted;str"'),
        chunked(body, sizes=(16,), trailers="X-Checksum: abc\r\nX-Other: 1\r\n"),
    ]
    wire = [req("POST", "/api/v1/logs", [("Transfer-Encoding", "chunked")], body=v)
            for v in variants]
    stored = 0
    with Http(s.http_port) as c:
        for w in wire:
            r = c.request(w)
            assert r.status == 200 and r.json()["stored"] == 3, (w, r)
            stored += 3
        # One request split at every byte position into two writes.
        w = wire[2]
        for cut in range(1, len(w)):
            c.send(w[:cut])
            time.sleep(0.001)
            c.send(w[cut:])
            r = c.read_response()
            assert r.status == 200 and r.json()["stored"] == 3, (cut, r)
            stored += 3
        # And one sent a byte at a time.
        for b in wire[1]:
            c.send(bytes([b]))
        r = c.read_response()
        assert r.status == 200 and r.json()["stored"] == 3
        stored += 3
    s.wait_count(stored, timeout=10)
    assert s.count("chunksplit third level:WARN") == stored // 3


def test_head_has_headers_without_body(plain_srv):
    for path in ("/", "/app.js", "/app.css", "/healthz", "/api/v1/stats",
                 "/api/v1/query?q=plain", "/metrics"):
        get_r = get(plain_srv.http_port, path)
        with Http(plain_srv.http_port) as c:
            c.send(req("HEAD", path) + req("GET", "/healthz"))
            h = c.read_response(head=True)
            assert h.status == 200, (path, h)
            check_common(h, head=True)
            assert h.header("Content-Type") == get_r.header("Content-Type")
            if path in ("/", "/app.js", "/app.css", "/healthz"):
                assert int(h.header("Content-Length")) == len(get_r.body), path
            # No body bytes: the next response follows the head directly.
            nxt = c.read_response()
            assert nxt.status == 200 and nxt.body == b"ok\n", (path, nxt)


def test_head_of_an_error_has_no_body(plain_srv):
    with Http(plain_srv.http_port) as c:
        c.send(req("HEAD", "/nope"))
        h = c.read_response(head=True)
        assert h.status == 404 and int(h.header("Content-Length")) > 0, h
        assert h.header("Content-Type").startswith("application/json")
        assert c.buf == b""
        try:
            c._more(time.monotonic() + 0.3)
        except (socket.timeout, EOFError):
            pass
        assert c.buf == b"", "body bytes after a HEAD response: %r" % c.buf


def test_head_on_ndjson_stream_ends_the_request(plain_srv):
    """HEAD of a streamed response: the chunked headers only, and the connection goes on to
    the next request."""
    with Http(plain_srv.http_port) as c:
        c.send(req("HEAD", "/api/v1/query?format=ndjson") + req("GET", "/healthz"))
        h = c.read_response(head=True, timeout=3.0)
        assert h.status == 200, h
        check_common(h, streamed=True, head=True)
        assert h.header("Content-Type").startswith("application/x-ndjson")
        assert c.read_response(timeout=3.0).body == b"ok\n"


def test_head_on_tail_ends_the_request(plain_srv):
    with Http(plain_srv.http_port) as c:
        c.send(req("HEAD", "/api/v1/tail", [("Accept", "text/event-stream")])
               + req("GET", "/healthz"))
        h = c.read_response(head=True, timeout=3.0)
        assert h.status == 200 and h.header("Content-Type") == "text/event-stream", h
        assert c.read_response(timeout=1.5).body == b"ok\n"


# ---- error statuses ---------------------------------------------------------------------------

BIG = "x" * 9000
ERROR_CASES = [
    # (id, raw request, status)
    ("space-before-colon", b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("header-without-colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    ("no-host-11", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    ("two-content-length", b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           b"Content-Length: 3\r\n\r\nab", 400),
    ("request-line-no-version", b"GET /healthz\r\nHost: x\r\n\r\n", 400),
    ("duplicate-host", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("control-byte-in-header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400),
    ("non-ascii-target", b"GET /h\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("cl-and-te", b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-in-http10", b"POST /api/v1/logs HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n", 400),
    ("content-length-not-a-number", b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: 1x\r\n\r\n", 400),
    ("bad-chunk-size", b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                       b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-without-crlf", b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                           b"chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    ("bad-limit", req("GET", "/api/v1/query?limit=abc"), 400),
    ("limit-zero", req("GET", "/api/v1/query?limit=0"), 400),
    ("limit-too-big", req("GET", "/api/v1/query?limit=10001"), 400),
    ("limit-negative", req("GET", "/api/v1/query?limit=-5"), 400),
    ("bad-before", req("GET", "/api/v1/query?before=x"), 400),
    ("bad-percent", req("GET", "/api/v1/query?q=%zz"), 400),
    ("bad-from", req("GET", "/api/v1/query?from=yesterday-ish"), 400),
    ("bad-query", req("GET", "/api/v1/query?q=" + q("(disk")), 400),
    ("bad-step", req("GET", "/api/v1/histogram?step=fast"), 400),
    ("unknown-path", req("GET", "/nope"), 404),
    ("unknown-api", req("GET", "/api/v2/query"), 404),
    ("post-query", req("POST", "/api/v1/query", body=b""), 405),
    ("get-logs", req("GET", "/api/v1/logs"), 405),
    ("delete-logs", req("DELETE", "/api/v1/logs"), 405),
    ("post-healthz", req("POST", "/healthz", body=b"x"), 405),
    ("post-no-length", req("POST", "/api/v1/logs"), 411),
    ("body-over-64M", req("POST", "/api/v1/logs", [("Content-Length", str(64 * 2**20 + 1))]),
     413),
    ("target-8193", req("GET", "/" + "a" * 8192), 414),
    ("target-9000-query", req("GET", "/api/v1/query?q=" + BIG), 414),
    ("head-over-16K", req("GET", "/healthz", [("X-Big", "y" * 17000)]), 431),
    ("unknown-method", req("BREW", "/nope"), 501),
    ("unknown-method-known-path", req("BREW", "/healthz"), 501),
    ("te-gzip", req("POST", "/api/v1/logs", [("Transfer-Encoding", "gzip")]), 501),
    ("te-gzip-chunked", req("POST", "/api/v1/logs", [("Transfer-Encoding", "gzip, chunked")]),
     501),
    ("http-2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http-1.2", b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    ("post-invalid-json", req("POST", "/api/v1/logs", body=b'ok line\n{"message":\n'), 400),
    ("post-line-over-max-line", req("POST", "/api/v1/logs", body=b"L" * 70000 + b"\n"), 413),
    ("ndjson-limit", req("GET", "/api/v1/query?format=ndjson&limit=10000001"), 400),
    ("histogram-2001-buckets", req("GET", "/api/v1/histogram?from=0&to=2001000&step=1s"), 400),
    ("tail-bad-query", req("GET", "/api/v1/tail?q=" + q("a OR")), 400),
]

# Errors answered by the endpoint handlers (after the request was read) leave the connection
# open: no "Connection: close" and the next request is served.
HANDLER_ERRORS = {
    "bad-limit", "limit-zero", "limit-too-big", "limit-negative", "bad-before", "bad-percent",
    "bad-from", "bad-query", "bad-step", "unknown-path", "unknown-api", "post-query", "get-logs",
    "delete-logs", "post-healthz", "unknown-method", "unknown-method-known-path",
    "post-invalid-json", "post-line-over-max-line", "ndjson-limit", "histogram-2001-buckets",
    "tail-bad-query"}
def _cases(xfails):
    out = []
    for n, r, st in ERROR_CASES:
        marks = [pytest.mark.xfail(strict=True, reason=xfails[n])] if n in xfails else []
        out.append(pytest.param(n, r, st, id=n, marks=marks))
    return out


@pytest.mark.parametrize("name,raw,status", _cases({}))
def test_error_status_and_json_body(plain_srv, name, raw, status):
    with Http(plain_srv.http_port) as c:
        c.send(raw)
        r = c.read_response(timeout=3.0)
        check_error(r, status, close=False)
        if status == 405:
            allow = r.header("Allow")
            assert allow is not None, r
            methods = {m.strip() for m in allow.split(",")}
            if "/api/v1/logs" in raw.decode("latin-1").split("\r\n")[0]:
                assert methods == {"POST"}, allow
            else:
                assert "GET" in methods and "POST" not in methods, allow


@pytest.mark.parametrize("name,raw,status", _cases({}))
def test_error_closes_the_connection(plain_srv, name, raw, status):
    with Http(plain_srv.http_port) as c:
        c.send(raw)
        r = c.read_response(timeout=3.0)
        check_error(r, status, close=True)
        assert c.closed_within(3.0), "connection not closed after a %d" % status


def test_error_after_keep_alive_request_closes(plain_srv):
    """An error in the second request of a kept-alive connection is answered, then the
    connection closes (no keep-alive past an error)."""
    for bad, status in ((req("GET", "/nope"), 404),
                        (req("GET", "/api/v1/logs"), 405),
                        (req("GET", "/api/v1/query?q=" + q("a)")), 400)):
        with Http(plain_srv.http_port) as c:
            assert c.request(req("GET", "/healthz")).status == 200
            check_error(c.request(bad), status)
            assert c.closed_within(3.0), status


def test_bad_query_message_matches_query_language(plain_srv):
    for expr in ("(disk", "a)", "level:BOGUS", "since:xyz", "/(/", '"open', "a OR"):
        lines = plain_srv.query("SEARCH " + expr)
        assert len(lines) == 1 and lines[0].startswith("ERROR|"), lines
        want = lines[0][len("ERROR|"):]
        for ep in ("query", "histogram", "tail"):
            r = get(plain_srv.http_port, "/api/v1/%s?q=%s" % (ep, q(expr)))
            assert check_error(r, 400, close=False) == want, (ep, expr, r)


# ---- limits and timeouts ------------------------------------------------------------------

def test_408_slow_head(limits_srv):
    with Http(limits_srv.http_port) as c:
        t0 = time.monotonic()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        got = None
        while time.monotonic() - t0 < 4.0:
            try:
                c.send(b"X-Drip: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                got = c.read_response(timeout=0.25)
                break
            except socket.timeout:
                pass
            except EOFError:
                break
        took = time.monotonic() - t0
        assert got is not None, "no 408 within 4 s (buffer %r)" % c.buf[:200]
        check_error(got, 408)
        assert 0.8 <= took <= 3.0, took


def test_408_slow_request_line(limits_srv):
    with Http(limits_srv.http_port) as c:
        t0 = time.monotonic()
        c.send(b"GET /healthz")
        got = None
        while time.monotonic() - t0 < 3.0:
            try:
                c.send(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                got = c.read_response(timeout=0.25)
                break
            except socket.timeout:
                pass
            except EOFError:
                break
        assert got is not None, "no 408 within 3 s"
        check_error(got, 408)


def test_408_slow_body(limits_srv):
    for hdrs, body in (([("Content-Length", "100")], b"y" * 10),
                       ([("Transfer-Encoding", "chunked")], b"5\r\nabcde\r\n")):
        with Http(limits_srv.http_port) as c:
            t0 = time.monotonic()
            c.send(req("POST", "/api/v1/logs", hdrs) + body)
            r = c.read_response(timeout=4.0)
            took = time.monotonic() - t0
            check_error(r, 408)
            assert 0.8 <= took <= 3.0, took
            assert c.closed_within(3.0)


def test_request_split_within_timeout_and_idle_keep_alive_is_fine(limits_srv):
    with Http(limits_srv.http_port) as c:
        data = req("GET", "/healthz")
        for i in range(0, len(data), 8):     # About 0.4 s in all, under the 1 s limit.
            c.send(data[i:i + 8])
            time.sleep(0.07)
        assert c.read_response().body == b"ok\n"
        time.sleep(1.3)                       # Idle between requests: not a slow request.
        assert c.is_open(0.1)
        assert c.request(req("GET", "/healthz")).body == b"ok\n"


def test_413_body_limit(limits_srv):
    s = limits_srv
    before = s.count()
    # Content-Length over the limit: refused from the head alone.
    with Http(s.http_port) as c:
        c.send(req("POST", "/api/v1/logs", [("Content-Length", "1025")]))
        check_error(c.read_response(timeout=3.0), 413)
        assert c.closed_within(3.0)
    # Exactly at the limit is fine (4 lines of 255 bytes, each under --max-line).
    body = b"".join((b"at-limit %d " % i).ljust(255, b"p") + b"\n" for i in range(4))
    assert len(body) == 1024
    r = post_logs(s.http_port, body)
    assert r.status == 200 and r.json()["stored"] == 4, r
    n = 4
    # A chunked body that grows past the limit.
    with Http(s.http_port) as c:
        c.send(req("POST", "/api/v1/logs", [("Transfer-Encoding", "chunked")])
               + (b"c8\r\n" + b"over-limit line ERROR " + b"q" * 177 + b"\n\r\n") * 6)
        check_error(c.read_response(timeout=3.0), 413)
    s.wait_count(before + n, timeout=5)
    assert s.count("over-limit") == 0


def test_413_line_longer_than_max_line(limits_srv):
    s = limits_srv
    before = s.count()
    body = "maxline ok one\n" + "maxline long " + "L" * 300 + "\nmaxline ok two\n"
    r = post_logs(s.http_port, body)
    err = check_error(r, 413, close=False)
    assert re.search(r"\bline 2\b", err), err
    time.sleep(0.2)
    assert s.count() == before and s.count("maxline") == 0


def test_limits_boundaries(limits_srv):
    s = limits_srv
    # A head of exactly --http-max-header bytes is fine, one more byte is not.
    base = req("GET", "/healthz", [("X-Pad", "")])
    pad = 1024 - len(base)
    exact = req("GET", "/healthz", [("X-Pad", "p" * pad)])
    assert len(exact) == 1024
    with Http(s.http_port) as c:
        r = c.request(exact)
        assert r.status == 200 and r.body == b"ok\n", r
    with Http(s.http_port) as c:
        r = c.request(req("GET", "/healthz", [("X-Pad", "p" * (pad + 1))]))
        check_error(r, 431)
    # A line of exactly --max-line bytes is stored, one more byte is refused.
    before = s.count()
    r = post_logs(s.http_port, b"maxline-exact " + b"e" * (256 - 14) + b"\n")
    assert r.status == 200 and r.json()["stored"] == 1, r
    r = post_logs(s.http_port, b"maxline-over " + b"o" * (257 - 13) + b"\n")
    check_error(r, 413, close=False)
    assert s.count() == before + 1
    assert s.count("maxline-exact") == 1


def test_431_head_limit(limits_srv):
    s = limits_srv
    r = get(s.http_port, "/healthz", [("X-Pad", "p" * 700)])     # Under 1K: fine.
    assert r.status == 200 and r.body == b"ok\n", r
    with Http(s.http_port) as c:
        c.send(req("GET", "/healthz", [("X-Pad", "p" * 1100)]))
        check_error(c.read_response(timeout=3.0), 431)
        assert c.closed_within(3.0)
    # Many small headers count too, and the head need not be complete to be refused.
    with Http(s.http_port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200)
        check_error(c.read_response(timeout=3.0), 431)


def test_default_limits_16k_head_ok(plain_srv):
    r = get(plain_srv.http_port, "/healthz", [("X-Big", "y" * 15000)])
    assert r.status == 200 and r.body == b"ok\n", r
    r = get(plain_srv.http_port, "/" + "a" * 8191)      # A target of exactly 8192 bytes.
    assert r.status == 404, r
    with Http(plain_srv.http_port) as c:
        r = c.request(req("GET", "/" + "a" * 16000 + "/", [("X-Pad", "p")]))
        assert r.status == 414, r


# ---- console assets -----------------------------------------------------------------------

def test_console_assets_with_curl(plain_srv):
    base = "http://%s:%d" % (HOST, plain_srv.http_port)
    bodies = {}
    for path, ctype in (("/", "text/html"), ("/index.html", "text/html"),
                        ("/app.js", "text/javascript"), ("/app.css", "text/css")):
        p = curl("-i", base + path)
        assert p.returncode == 0, p
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        assert status == b"HTTP/1.1 200 OK", head
        hdrs = {l.split(b":", 1)[0].lower(): l.split(b":", 1)[1].strip()
                for l in head.split(b"\r\n")[1:]}
        assert hdrs[b"content-type"].decode().split(";")[0] == ctype, hdrs
        assert int(hdrs[b"content-length"]) == len(body) > 0
        assert hdrs[b"cache-control"] == b"no-store"
        bodies[path] = body
    assert bodies["/"] == bodies["/index.html"]
    html = bodies["/"].decode().lower()
    assert "<html" in html and "app.js" in html and "app.css" in html


def test_curl_reuses_the_connection(plain_srv):
    base = "http://%s:%d" % (HOST, plain_srv.http_port)
    p = curl("-v", "-o", "/dev/null", "-o", "/dev/null", base + "/healthz", base + "/app.css")
    assert p.returncode == 0, p
    assert re.search(rb"Re-?using existing connection", p.stderr), p.stderr.decode()
    assert p.stderr.count(b"< HTTP/1.1 200 OK") == 2


def test_curl_http10_and_head(plain_srv):
    base = "http://%s:%d" % (HOST, plain_srv.http_port)
    p = curl("-i", "--http1.0", base + "/healthz")
    assert p.returncode == 0, p
    assert p.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in p.stdout and p.stdout.endswith(b"\r\n\r\nok\n")
    p = curl("-I", base + "/")
    assert p.returncode == 0, p
    assert p.stdout.startswith(b"HTTP/1.1 200 OK\r\n") and p.stdout.endswith(b"\r\n\r\n")


def test_store_that_cannot_write_gives_503(server, tmp_path):
    st = os.statvfs(str(tmp_path))
    free_g = st.f_bavail * st.f_frsize // 2**30
    s = server("--retention-min-free", "%dG" % (free_g + 1000))
    r = post_logs(s.http_port, "cannot be stored\n")
    check_error(r, 503, close=False)
    assert s.count() == 0
    deadline = time.monotonic() + 5
    while True:
        r = get(s.http_port, "/healthz")
        if r.status == 503:
            break
        assert r.status == 200 and time.monotonic() < deadline, r
        time.sleep(0.1)
    check_common(r)
    assert r.body != b"ok\n"


# ---- /api/v1/stats ------------------------------------------------------------------------

def test_stats(server):
    s = server()
    rows = [("ERROR", "%d.250" % (BASE + 5), "stats one"),
            ("INFO", "%d" % BASE, "stats two"),
            ("WARN", "%d.999" % (BASE + 100), "stats three"),
            ("ERROR", "%d" % (BASE + 50), "stats four")]
    load_framed(s, rows)
    send_plain(s.log_port, ["stats plain line", "DEBUG stats plain two"])
    s.wait_count(6)
    with Http(s.http_port) as c:
        r = c.request(req("GET", "/api/v1/stats"))
        check_common(r)
        st = r.json()
    for key in ("entries", "appended", "bytes_received", "raw_bytes", "disk_bytes",
                "compression_ratio", "segments", "connections", "connections_current",
                "uptime_s", "fsync_policy", "oldest_ts_ms", "newest_ts_ms", "per_level",
                "level.INFO", "level.ERROR"):
        assert key in st, key
    assert st["entries"] == 6 and st["appended"] == 6
    assert st["per_level"] == {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 1, "ERROR": 2,
                               "FATAL": 0}
    for l in LEVELS:
        assert st["level." + l] == st["per_level"][l]
    assert st["oldest_ts_ms"] == BASE * 1000
    assert st["newest_ts_ms"] >= int(time.time() * 1000) - 60000     # The plain lines: now.
    assert st["bytes_received"] >= 60
    assert st["raw_bytes"] > 0 and st["disk_bytes"] > 0 and st["segments"] >= 1
    assert isinstance(st["compression_ratio"], (int, float))
    assert st["fsync_policy"] == "batch"
    assert st["connections_current"] >= 1
    assert isinstance(st["uptime_s"], int) and st["uptime_s"] >= 0
    # The STATS of the query port agree.
    qs = s.stats()
    assert int(qs["entries"]) == st["entries"] and int(qs["level.ERROR"]) == st["level.ERROR"]


# ---- /api/v1/query ------------------------------------------------------------------------

def test_query_entries_fields_and_order(loaded):
    s, rows, src = loaded
    with Http(s.http_port) as c:
        r = c.request(req("GET", "/api/v1/query"))
    check_common(r)
    d = r.json()
    assert set(d) >= {"query", "limit", "more", "took_ms", "entries"}, d.keys()
    assert d["query"] == "" and d["limit"] == 100 and d["more"] is False
    assert isinstance(d["took_ms"], (int, float)) and d["took_ms"] >= 0
    want = list(reversed(rows))
    assert [e["id"] for e in d["entries"]] == [w["id"] for w in want]
    for e, w in zip(d["entries"], want):
        assert set(e) >= {"id", "ts", "ts_ms", "level", "source", "message"}, e
        assert e["ts_ms"] == w["ts_ms"] and e["level"] == w["level"]
        assert e["message"] == w["message"] and e["source"] == src
        assert ISO_MS_RE.match(e["ts"]) and e["ts"] == iso_ms(w["ts_ms"]), e


def test_query_filters_and_encoding(loaded):
    s, rows, _ = loaded
    d = get_json(s.http_port, "/api/v1/query?q=" + q("level:ERROR"))
    assert d["query"] == "level:ERROR"
    assert [e["id"] for e in d["entries"]] == [r["id"] for r in reversed(rows)
                                               if r["level"] == "ERROR"]
    d = get_json(s.http_port, "/api/v1/query?q=disk+full+-level:TRACE")
    assert d["query"] == "disk full -level:TRACE"
    assert [e["id"] for e in d["entries"]] == [
        r["id"] for r in reversed(rows) if "disk" in r["message"] and r["level"] != "TRACE"]
    d = get_json(s.http_port, "/api/v1/query?q=" + q('"entry 07" OR "entry 13"'))
    assert [e["message"] for e in d["entries"]] == ["qapi entry 13", "qapi entry 07"]


def test_query_limit_and_paging(loaded):
    s, rows, _ = loaded
    want = [r["id"] for r in reversed(rows)]
    for limit in (7, 10, 30, 31):
        got, before, pages = [], None, []
        while True:
            url = "/api/v1/query?limit=%d" % limit + ("&before=%d" % before if before else "")
            d = get_json(s.http_port, url)
            assert d["limit"] == limit
            ids = [e["id"] for e in d["entries"]]
            assert len(ids) <= limit
            got += ids
            pages.append((len(ids), d["more"]))
            # "more" says whether older matches than the ones shown exist.
            assert d["more"] == (len(got) < len(want)), (limit, pages)
            if not d["more"]:
                break
            before = ids[-1]
            assert len(pages) < 10
        assert got == want, limit
    # before: only ids below it.
    mid = rows[10]["id"]
    d = get_json(s.http_port, "/api/v1/query?before=%d&limit=3" % mid)
    assert [e["id"] for e in d["entries"]] == [rows[9]["id"], rows[8]["id"], rows[7]["id"]]
    d = get_json(s.http_port, "/api/v1/query?before=%d" % (rows[-1]["id"] + 1000))
    assert len(d["entries"]) == 30
    # The extreme limits.
    assert get_json(s.http_port, "/api/v1/query?limit=1")["more"] is True
    assert len(get_json(s.http_port, "/api/v1/query?limit=10000")["entries"]) == 30


def test_query_from_to_ms_and_iso_inclusive(loaded):
    s, rows, _ = loaded
    lo, hi = rows[5]["ts_ms"], rows[9]["ts_ms"]
    want = [r["id"] for r in reversed(rows[5:10])]
    for f, t in ((lo, hi), (iso_ms(lo), iso_ms(hi))):
        d = get_json(s.http_port, "/api/v1/query?from=%s&to=%s" % (q(str(f)), q(str(t))))
        assert [e["id"] for e in d["entries"]] == want, (f, t)
    # One millisecond inside on each side drops the ends.
    d = get_json(s.http_port, "/api/v1/query?from=%d&to=%d" % (lo + 1, hi - 1))
    assert [e["id"] for e in d["entries"]] == want[1:-1]
    # Only one bound; combined with q.
    d = get_json(s.http_port, "/api/v1/query?from=%d" % rows[27]["ts_ms"])
    assert [e["id"] for e in d["entries"]] == [r["id"] for r in reversed(rows[27:])]
    d = get_json(s.http_port, "/api/v1/query?to=%s&q=disk" % q(iso_ms(rows[8]["ts_ms"])))
    assert [e["id"] for e in d["entries"]] == [rows[8]["id"], rows[4]["id"], rows[0]["id"]]


def test_query_more_when_older_match_lies_past_a_scan_slice(server):
    """limit reached in one slice of the scan, with the next (older) match beyond it: more is
    still true."""
    s = server()
    load_framed(s, [("INFO", "-", "slice-probe oldest")])
    send_plain(s.log_port, ["filler %d" % i for i in range(70000)])
    load_framed(s, [("INFO", "-", "slice-probe newest")])
    s.wait_count(70002, timeout=30)
    d = get_json(s.http_port, "/api/v1/query?limit=1&q=" + q("-filler"))
    assert [e["message"] for e in d["entries"]] == ["slice-probe newest"]
    assert d["more"] is True, d


def test_query_with_no_matches(tmp_path):
    """Empty results (an empty store, no match, before the first id, from after to): the
    server answers, and survives (the sanitizer build once crashed on memcpy(NULL, 0))."""
    with own_server(tmp_path) as s:
        d = get_json(s.http_port, "/api/v1/query")                  # Empty store.
        assert d["entries"] == [] and d["more"] is False
        ids, _ = load_framed(s, [("INFO", "%d" % (BASE + i), "nomatch %d" % i) for i in range(3)])
        for url in ("/api/v1/query?q=nosuchwordanywhere",
                    "/api/v1/query?before=%d" % ids[0],
                    "/api/v1/query?before=0",
                    "/api/v1/query?from=%d&to=%d" % ((BASE + 2) * 1000, BASE * 1000)):
            d = get_json(s.http_port, url)
            assert d["entries"] == [] and d["more"] is False, url
        assert get(s.http_port, "/healthz").body == b"ok\n"


def test_query_escaping_in_json(server):
    s = server()
    msg = 'quote " back \\ tab\there ctl\x01 üñí €'
    with LineConn(s.log_port) as c:
        c.sendall(b"LOG|INFO|-|" + msg.encode() + b"\n")
        assert c.readline().startswith(b"OK|")
    d = get_json(s.http_port, "/api/v1/query")
    assert d["entries"][0]["message"] == 'quote " back \\ tab\\x09here ctl\\x01 üñí €'


# ---- NDJSON -------------------------------------------------------------------------------

def test_query_ndjson(loaded):
    s, rows, _ = loaded
    full = get_json(s.http_port, "/api/v1/query?q=disk")["entries"]
    for hdrs, extra in (([("Accept", "application/x-ndjson")], ""),
                        ([("Accept", "text/html, application/x-ndjson;q=0.9")], ""),
                        ([], "&format=ndjson")):
        with Http(s.http_port) as c:
            r = c.request(req("GET", "/api/v1/query?q=disk" + extra, hdrs))
        check_common(r, streamed=True)
        assert r.header("Content-Type").startswith("application/x-ndjson"), r
        assert r.body.endswith(b"\n")
        got = [json.loads(l) for l in r.body.decode().splitlines()]
        assert got == full, hdrs
    # Limits: up to 10,000,000 for NDJSON.
    r = get(s.http_port, "/api/v1/query?format=ndjson&limit=10000000&q=disk")
    assert r.status == 200 and len(r.body.splitlines()) == len(full)
    r = get(s.http_port, "/api/v1/query?format=ndjson&limit=3")
    assert [json.loads(l)["id"] for l in r.body.splitlines()] == \
        [x["id"] for x in list(reversed(rows))[:3]]
    with Http(s.http_port) as c:
        check_error(c.request(req("GET", "/api/v1/query?format=ndjson&limit=10000001")), 400,
                    close=False)
    with Http(s.http_port) as c:
        check_error(c.request(req("GET", "/api/v1/query?q=" + q("(x"),
                                  [("Accept", "application/x-ndjson")])), 400, close=False)


def test_query_ndjson_large_slow_reader(server):
    """More than 10,000 rows, read by a client with a small receive buffer that starts late:
    the stream pauses and resumes, every row comes once, newest first."""
    s = server("--out-limit", "64K", "--sndbuf", "65536")
    n = 12000
    send_plain(s.log_port, ["ndjson bulk %05d %s" % (i, "w" * 60) for i in range(n)])
    s.wait_count(n, timeout=20)
    with Http(s.http_port, rcvbuf=8192, timeout=20) as c:
        c.send(req("GET", "/api/v1/query?limit=11000&format=ndjson"))
        time.sleep(0.5)
        r = c.read_response(timeout=20)
    assert r.status == 200
    lines = r.body.decode().splitlines()
    assert len(lines) == 11000
    msgs = [json.loads(l)["message"] for l in lines]
    assert msgs == ["ndjson bulk %05d %s" % (i, "w" * 60) for i in range(n - 1, n - 11001, -1)]
    with Http(s.http_port) as c:
        check_error(c.request(req("GET", "/api/v1/query?limit=11000")), 400, close=False)


def test_curl_ndjson(loaded):
    s, rows, _ = loaded
    p = curl("-N", "-H", "Accept: application/x-ndjson",
             "http://%s:%d/api/v1/query?q=level:WARN" % (HOST, s.http_port))
    assert p.returncode == 0, p
    got = [json.loads(l)["id"] for l in p.stdout.decode().splitlines()]
    assert got == [r["id"] for r in reversed(rows) if r["level"] == "WARN"]


# ---- /api/v1/histogram --------------------------------------------------------------------

def histo(port, params):
    d = get_json(port, "/api/v1/histogram?" + urllib.parse.urlencode(params))
    assert set(d) >= {"query", "from_ms", "to_ms", "step_ms", "total", "levels", "buckets"}, d
    assert d["levels"] == LEVELS
    step = d["step_ms"]
    assert step > 0 and d["from_ms"] % step == 0, d
    assert [b["ts_ms"] for b in d["buckets"]] == \
        [d["from_ms"] + k * step for k in range(len(d["buckets"]))]
    assert d["to_ms"] == d["from_ms"] + step * len(d["buckets"]), d
    assert all(len(b["counts"]) == 6 for b in d["buckets"])
    assert d["total"] == sum(sum(b["counts"]) for b in d["buckets"])
    return d


def test_histogram_counts_match_data_and_count(loaded):
    s, rows, _ = loaded
    frm, to = BASE * 1000, (BASE + 300) * 1000
    d = histo(s.http_port, {"from": frm, "to": to, "step": "1m"})
    assert d["step_ms"] == 60000
    assert d["from_ms"] == frm - frm % 60000          # Rounded down to a whole minute.
    assert d["from_ms"] <= frm and d["to_ms"] >= to and d["to_ms"] - to < 60000
    assert d["query"] == ""
    want = {}
    for r in rows:
        if frm <= r["ts_ms"] <= to:
            k = (r["ts_ms"] - d["from_ms"]) // 60000
            want.setdefault(k, [0] * 6)[LEVELS.index(r["level"])] += 1
    for k, b in enumerate(d["buckets"]):
        assert b["counts"] == want.get(k, [0] * 6), (k, b)
    assert d["total"] == sum(1 for r in rows if frm <= r["ts_ms"] < d["to_ms"])
    # Each bucket and level equals COUNT over the same range on the query port.
    for b in d["buckets"]:
        lo, hi = b["ts_ms"], b["ts_ms"] + d["step_ms"] - 1
        for i, lvl in enumerate(LEVELS):
            n = s.count("from:%s to:%s level:%s" % (iso_ms(lo), iso_ms(hi), lvl))
            assert n == b["counts"][i], (b, lvl, n)


def test_histogram_query_iso_range_and_numeric_step(loaded):
    s, rows, _ = loaded
    frm, to = iso_ms(BASE * 1000 + 5000), iso_ms((BASE + 125) * 1000 - 1)
    d = histo(s.http_port, {"q": "disk", "from": frm, "to": to, "step": "15000"})
    assert d["step_ms"] == 15000 and d["query"] == "disk"
    assert d["from_ms"] == (BASE * 1000 + 5000) // 15000 * 15000
    # Buckets count their whole step: the range is rounded out to whole buckets.
    sel = [r for r in rows if "disk" in r["message"]
           and d["from_ms"] <= r["ts_ms"] < d["to_ms"]]
    assert d["to_ms"] >= (BASE + 125) * 1000 and (d["to_ms"] - d["from_ms"]) % 15000 == 0
    assert d["total"] == len(sel) >= 3        # Entries 4, 8 and 12, and those sharing buckets.
    for r in sel:
        b = d["buckets"][(r["ts_ms"] - d["from_ms"]) // 15000]
        assert b["counts"][LEVELS.index(r["level"])] >= 1
    for step, ms in (("10s", 10000), ("1h", 3600000), ("1m30s", 90000)):
        d = histo(s.http_port, {"from": BASE * 1000, "to": (BASE + 300) * 1000, "step": step})
        assert d["step_ms"] == ms
        assert d["total"] == 30


def test_histogram_default_step_and_range(loaded):
    s, rows, _ = loaded
    for span in (10000, 3600000, 86400000, 7 * 86400000, 400 * 86400000):
        d = histo(s.http_port, {"from": BASE * 1000, "to": BASE * 1000 + span})
        assert 1 <= len(d["buckets"]) <= 120, (span, d["step_ms"], len(d["buckets"]))
        assert d["to_ms"] >= BASE * 1000 + span
    # Default range: the last hour.
    t0 = int(time.time() * 1000)
    d = histo(s.http_port, {})
    t1 = int(time.time() * 1000)
    assert len(d["buckets"]) <= 120
    assert t0 - 3600000 - d["step_ms"] < d["from_ms"] <= t1 - 3600000, (t0, t1, d)
    assert t0 <= d["to_ms"] <= t1 + d["step_ms"], (t0, t1, d)
    assert d["total"] == 0        # All the data is from 2023.
    # The query's own bounds.
    d = histo(s.http_port, {"q": "from:%d to:%d" % (BASE, BASE + 99)})
    assert d["from_ms"] <= BASE * 1000 and d["to_ms"] >= (BASE + 99) * 1000
    assert d["total"] == 10
    t0 = int(time.time() * 1000)
    d = histo(s.http_port, {"q": "since:10m"})
    t1 = int(time.time() * 1000)
    assert t0 - 600000 - d["step_ms"] < d["from_ms"] <= t1 - 600000, (t0, t1, d)
    assert t0 <= d["to_ms"] <= t1 + d["step_ms"], (t0, t1, d)


def test_histogram_buckets_count_their_whole_range(loaded):
    s, rows, _ = loaded
    # from = BASE+5 s; the first 1-minute bucket starts 25 s earlier and holds entry 0 (BASE).
    d = histo(s.http_port, {"from": BASE * 1000 + 5000, "to": (BASE + 95) * 1000, "step": "1m"})
    assert d["from_ms"] < rows[0]["ts_ms"] < BASE * 1000 + 5000
    for b in d["buckets"]:
        lo, hi = b["ts_ms"], b["ts_ms"] + d["step_ms"] - 1
        for i, lvl in enumerate(LEVELS):
            n = s.count("from:%s to:%s level:%s" % (iso_ms(lo), iso_ms(hi), lvl))
            assert b["counts"][i] == n, (b, lvl, n)
    assert d["total"] == s.count("from:%s to:%s" % (iso_ms(d["from_ms"]), iso_ms(d["to_ms"] - 1)))


def test_histogram_counts_recent_entries(server):
    s = server()
    send_plain(s.log_port, ["recent ERROR a", "recent b", "recent WARN c", "recent ERROR d"])
    s.wait_count(4)
    d = histo(s.http_port, {"q": "since:10m recent"})
    tot = [0] * 6
    for b in d["buckets"]:
        tot = [x + y for x, y in zip(tot, b["counts"])]
    assert tot == [0, 0, 1, 1, 2, 0] and d["total"] == 4
    d = histo(s.http_port, {})
    assert d["total"] == 4


def test_histogram_bucket_limit(loaded):
    s, _, _ = loaded
    frm = BASE * 1000
    d = histo(s.http_port, {"from": frm, "to": frm + 2000 * 1000, "step": "1s"})
    assert len(d["buckets"]) == 2000
    for params in ({"from": frm, "to": frm + 2000 * 1000 + 1, "step": "1s"},
                   {"from": frm, "to": frm + 3600 * 1000, "step": "1s"},
                   {"from": frm, "to": frm + 1000, "step": "0"},
                   {"from": frm + 1000, "to": frm},
                   {"from": "garbage"}):
        with Http(s.http_port) as c:
            r = c.request(req("GET", "/api/v1/histogram?" + urllib.parse.urlencode(params)))
            check_error(r, 400, close=False)


# ---- /api/v1/tail -------------------------------------------------------------------------

class Tail:
    """A live tail: the SSE stream over a raw connection."""

    def __init__(self, port, query="", headers=(), rcvbuf=None):
        self.c = Http(port, rcvbuf=rcvbuf)
        target = "/api/v1/tail" + ("?q=" + q(query) if query else "")
        self.c.send(req("GET", target, [("Accept", "text/event-stream")] + list(headers)))
        self.text = ""

    def start(self):
        r = self.c.read_head()
        assert r.status == 200, r
        check_common(r, streamed=True)
        assert r.header("Content-Type").split(";")[0] == "text/event-stream", r
        self.wait_for(lambda t: ": connected\n" in t, "the ': connected' comment")
        assert self.text.startswith("retry: 2000\n"), self.text[:100]
        return r

    def wait_for(self, pred, what, timeout=READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not pred(self.text):
            left = deadline - time.monotonic()
            assert left > 0, "tail: no %s; got %r" % (what, self.text[-500:])
            try:
                chunk = self.c.read_chunk(timeout=left)
            except socket.timeout:
                continue
            assert chunk, "tail stream ended"
            self.text += chunk.decode()
        return self.text

    def events(self):
        """Complete 'log' events so far: list of (id, data dict)."""
        out = []
        for block in self.text.split("\n\n")[:-1]:
            fields = {}
            for line in block.split("\n"):
                if line.startswith(":") or not line:
                    continue
                k, _, v = line.partition(":")
                fields[k] = v[1:] if v.startswith(" ") else v
            if fields.get("event") == "log":
                out.append((int(fields["id"]), json.loads(fields["data"])))
        return out

    def wait_events(self, n, timeout=READ_TIMEOUT):
        self.wait_for(lambda t: len(self.events()) >= n, "%d events" % n, timeout)
        return self.events()

    def close(self):
        self.c.close()


def test_tail_streams_only_new_matching_entries(server):
    s = server()
    load_framed(s, [("ERROR", "-", "tail before the request")])
    t = Tail(s.http_port, "level:ERROR")
    t2 = Tail(s.http_port, "disk")
    try:
        t.start()
        t2.start()
        ids, src = load_framed(s, [("ERROR", "-", "tail new one"), ("INFO", "-", "tail skip disk"),
                                   ("ERROR", "-", "tail new two disk")])
        send_plain(s.log_port, ["ERROR tail plain three"])
        ev = t.wait_events(3)
        assert [e[0] for e in ev] == [ids[0], ids[2], ids[2] + 1]
        posted = post_logs(s.http_port, "ERROR tail posted four\ntail posted skip\n").json()
        ev4 = t.wait_events(4)[3]
        assert ev4[0] == posted["first_id"] and ev4[1]["message"] == "ERROR tail posted four"
        assert [e[1]["message"] for e in ev] == ["tail new one", "tail new two disk",
                                                 "ERROR tail plain three"]
        for i, data in ev:
            assert data["id"] == i and data["level"] == "ERROR"
            assert ISO_MS_RE.match(data["ts"]) and isinstance(data["ts_ms"], int)
        assert ev[0][1]["source"] == src
        ev2 = t2.wait_events(2)
        assert [e[0] for e in ev2] == [ids[1], ids[2]]
        # Nothing else arrives.
        time.sleep(0.3)
        t.wait_for(lambda _: True, "")
        assert len(t.events()) == 4 and "tail before" not in t.text
    finally:
        t.close()
        t2.close()


def test_tail_resumes_after_last_event_id(server):
    s = server()
    ids, _ = load_framed(s, [("ERROR", "-", "resume %d" % i) for i in range(5)]
                         + [("INFO", "-", "resume info")])
    t = Tail(s.http_port, "level:ERROR", [("Last-Event-ID", str(ids[1]))])
    try:
        t.start()
        ev = t.wait_events(3)
        assert [e[0] for e in ev] == ids[2:5]
        assert [e[1]["message"] for e in ev] == ["resume 2", "resume 3", "resume 4"]
        new, _ = load_framed(s, [("ERROR", "-", "resume new")])
        ev = t.wait_events(4)
        assert [e[0] for e in ev] == ids[2:5] + new
    finally:
        t.close()


def test_tails_started_mid_stream_miss_nothing_and_repeat_nothing(server):
    """The fan-out: tails that start while lines stream in get every matching entry from their
    first one on, once each, in id order -- including entries that were on their way when the
    tail subscribed, which only the store has (--fsync=always keeps batches on their way to
    the writer longer)."""
    s = server("--fsync", "always")
    acked = []
    stop = threading.Event()

    lock = threading.Lock()

    def sender(k):
        # Two batches in flight at a time, so some are always on their way to the writer.
        with LineConn(s.log_port) as c:
            sent = []
            for b in range(k, 400, 4):
                if stop.is_set():
                    return
                level = "ERROR" if b % 2 else "INFO"
                c.sendall("".join("LOG|%s|-|midstream %d.%d\n" % (level, b, i)
                                  for i in range(50)))
                sent.append(level)
                time.sleep(0.01)
                if len(sent) == 2:
                    got = [c.readline().decode() for _ in range(50)]
                    assert all(r.startswith("OK|") for r in got), got
                    with lock:
                        acked.extend((int(r[3:]), sent[0]) for r in got)
                    sent.pop(0)
            for level in sent:
                got = [c.readline().decode() for _ in range(50)]
                with lock:
                    acked.extend((int(r[3:]), level) for r in got)

    senders = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in senders:
        t.start()
    tails = []
    try:
        for query in ("midstream", "midstream level:ERROR"):
            time.sleep(0.2)
            # Continue after the newest acknowledged line: everything after it must arrive,
            # from the store (decided before the tail subscribed, or on its way then) or from
            # the fan-out.
            with lock:
                last = max(i for i, _ in acked)
            tail = Tail(s.http_port, query, headers=[("Last-Event-ID", str(last))])
            tail.start()
            tails.append((query, tail, last))
        for t in senders:
            t.join(60)
            assert not t.is_alive()
        assert len(acked) == 400 * 50
        for query, tail, last in tails:
            want_all = sorted(i for i, lvl in acked if query == "midstream" or lvl == "ERROR")
            want = [i for i in want_all if i > last]
            ev = tail.wait_events(len(want), timeout=30)
            ids = [e[0] for e in ev]
            assert ids == want, (query, len(ids), len(want), sorted(set(want) - set(ids))[:5])
            assert 0 < len(want) < len(want_all), "the tail started while lines streamed in"
    finally:
        stop.set()
        for t in senders:
            t.join(10)
        for _, tail, _ in tails:
            tail.close()


def test_tail_never_reading_client_is_dropped(server):
    """A tail that never reads is disconnected once its unsent output passes --out-limit;
    ingest and a reading tail go on meanwhile."""
    s = server("--out-limit", "64K", "--sndbuf", "65536")
    slow = Tail(s.http_port, "", rcvbuf=4096)
    fast = Tail(s.http_port, "")
    try:
        assert slow.c.read_head().status == 200      # Then never read again.
        fast.start()
        n, batch = 6000, 50
        lines = ["dropped-tail line %05d %s" % (i, "d" * 120) for i in range(n)]
        reader = run_in_thread(fast.wait_events, n, 30.0)
        t0 = time.monotonic()
        with LineConn(s.log_port) as c:     # At a pace a reading client can follow.
            for i in range(0, n, batch):
                c.sendall("".join(l + "\n" for l in lines[i:i + batch]))
                time.sleep(0.01)
        s.wait_count(n, timeout=20)
        assert time.monotonic() - t0 < 20
        ev = reader(40)
        assert [e[1]["message"] for e in ev] == lines, "the reading tail missed entries"
        # The never-reading tail is gone: only the reading one (and this request) remain.
        deadline = time.monotonic() + 10
        while True:
            m, _ = scrape(s.http_port)
            if val(m, "logcaster_connections", protocol="http") == 2:
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.1)
        got = slow.c.read_until_closed(timeout=10)
        assert len(got) < n * 150, "the never-reading tail was sent everything"
        # Other clients go on.
        assert get(s.http_port, "/healthz").body == b"ok\n"
        assert s.count("dropped-tail") == n
    finally:
        slow.close()
        fast.close()


def test_tail_reading_client_survives_a_burst(server):
    s = server()            # Default --out-limit 1M.
    t = Tail(s.http_port, "")
    try:
        t.start()
        n = 20000
        body = "".join("burst line %05d %s\n" % (i, "b" * 80) for i in range(n))
        reader = run_in_thread(t.wait_events, n, 30.0)
        r = post_logs(s.http_port, body)
        assert r.status == 200 and r.json()["stored"] == n, r
        ev = reader(40)
        assert len(ev) == n and ev[-1][1]["message"].startswith("burst line 19999")
    finally:
        t.close()


def test_tail_closed_by_client_is_released(server):
    s = server()
    tails = [Tail(s.http_port, "q%d" % i) for i in range(3)]
    for t in tails:
        t.start()
    m, _ = scrape(s.http_port)
    assert val(m, "logcaster_connections", protocol="http") == 4
    for t in tails:
        t.close()
    deadline = time.monotonic() + 3
    while val(m, "logcaster_connections", protocol="http") != 1:
        assert time.monotonic() < deadline, "closed tails still counted"
        time.sleep(0.1)
        m, _ = scrape(s.http_port)


def test_sigterm_with_open_tail_exits_promptly(server):
    s = server()
    t = Tail(s.http_port, "")
    try:
        t.start()
        t0 = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - t0 < 3.0, "a live tail held up the shutdown"
        # The stream is ended or the connection closed.
        try:
            while t.c.read_chunk(timeout=3.0):
                pass
        except EOFError:
            pass
    finally:
        t.close()


def test_tail_last_event_id_edge_values(server):
    s = server()
    load_framed(s, [("ERROR", "-", "edge %d" % i) for i in range(3)])
    for last in ("abc", "LAST", "LAST+100", "-1", ""):
        top = get_json(s.http_port, "/api/v1/stats")["last_id"]
        last = last.replace("LAST+100", str(top + 100)).replace("LAST", str(top))
        t = Tail(s.http_port, "", [("Last-Event-ID", last)] if last else [])
        try:
            t.start()
            new, _ = load_framed(s, [("INFO", "-", "edge new %s" % last)])
            ev = t.wait_events(1)
            assert [e[0] for e in ev] == new, (last, ev)
        finally:
            t.close()


def test_curl_tail(server):
    s = server()
    p = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "1.5",
                          "http://%s:%d/api/v1/tail?q=curltail" % (HOST, s.http_port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 1.2
        while True:
            m, _ = scrape(s.http_port)
            if val(m, "logcaster_connections", protocol="http") >= 2:
                break
            assert time.monotonic() < deadline, "curl's tail did not connect"
            time.sleep(0.05)
        time.sleep(0.2)     # Its request read and the tail started.
        send_plain(s.log_port, ["curltail hello", "unrelated line"])
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = out.decode()
    assert text.startswith("retry: 2000\n"), text
    assert "event: log\n" in text and '"message":"curltail hello"' in text, text
    assert "unrelated" not in text


# ---- POST /api/v1/logs ----------------------------------------------------------------------

def test_post_logs_forms_and_fields(server):
    s = server()
    body = "\n".join([
        "postform plain ERROR disk full",                                       # 1
        "LOG|WARN|1700000000.5|postform framed message",                        # 2
        '{"message":"postform json one","level":"error","ts":1700000001,"user":"bob","n":3}',
        '{"msg":"postform json two","severity":4,"time":1700000002123}',       # 4
        '{"log":"postform json three","lvl":"Warning","timestamp":"2023-11-14T22:13:23.5Z"}',
        '{"message":"postform json four","@timestamp":"2023-11-14T22:13:24Z","level":3}',
        '{"message":"postform json five","level":"info","tags":["a","b"],"ctx":{"k":1},'
        '"note":"two words"}',                                                  # 7
        '{"message":"postform json six","severity":0}',                         # 8
        '{"message":"postform json seven","severity":7}',                       # 9
        "",                                                                     # blank
        '  {"message":"postform json eight","ts":1700000010.25,"level":"debug"}',
        "postform [warn] detected from text",
        '{"message":"postform json nine","ts":"1700000011000"}',
        "postform no newline at the end"])
    t0 = int(time.time() * 1000)
    with Http(s.http_port) as c:
        src = "%s:%d" % c.sock.getsockname()[:2]
        r = c.request(req("POST", "/api/v1/logs", [("Content-Type", "text/plain")], body))
        check_common(r)
        assert r.status == 200, r
        d = r.json()
        assert d["stored"] == 13 and d["last_id"] - d["first_id"] == 12, d
        # Queryable at once, on the same connection and elsewhere.
        e = c.request(req("GET", "/api/v1/query?q=postform")).json()["entries"]
    t1 = int(time.time() * 1000)
    assert s.count("postform") == 13
    e = list(reversed(e))
    assert [x["id"] for x in e] == list(range(d["first_id"], d["last_id"] + 1))
    assert all(x["source"] == src for x in e)
    by = {x["message"].split(" ")[2] if x["message"].startswith("postform json") else
          x["message"]: x for x in e}

    def chk(key, level, ts_ms=None, msg=None):
        x = by[key]
        assert x["level"] == level, x
        if ts_ms is None:
            assert t0 - 1000 <= x["ts_ms"] <= t1 + 1000, x
        else:
            assert x["ts_ms"] == ts_ms, x
        if msg is not None:
            assert x["message"] == msg, x

    chk("postform plain ERROR disk full", "ERROR")
    chk("postform framed message", "WARN", 1700000000500)
    chk("one", "ERROR", 1700000001000, "postform json one user=bob n=3")
    chk("two", "WARN", 1700000002123, "postform json two")
    chk("three", "WARN", 1700000003500, "postform json three")
    chk("four", "ERROR", 1700000004000, "postform json four")
    chk("five", "INFO")
    five = by["five"]["message"]
    assert five.startswith("postform json five ") and " tags=" in five and " ctx=" in five \
        and " note=" in five and "two words" in five, five
    chk("six", "FATAL", None, "postform json six")
    chk("seven", "DEBUG", None, "postform json seven")
    chk("eight", "DEBUG", 1700000010250, "postform json eight")
    chk("postform [warn] detected from text", "WARN")
    chk("nine", "INFO", 1700000011000, "postform json nine")
    chk("postform no newline at the end", "INFO")


def test_post_logs_line_endings_escaping_and_unicode(server):
    s = server()
    body = (b"crlf one\r\ncrlf two\r\n"
            b"ctl \x1b[31mred\x07 and bad utf8 \xff\xfe end\n"
            b'{"message":"caf\\u00e9 \\u2603 two\\nlines\\ttab","level":"warn"}\n')
    r = post_logs(s.http_port, body)
    assert r.status == 200 and r.json()["stored"] == 4, r
    d = get_json(s.http_port, "/api/v1/query")
    got = [e["message"] for e in reversed(d["entries"])]
    assert got == ["crlf one", "crlf two",
                   "ctl \\x1b[31mred\\x07 and bad utf8 \\xff\\xfe end",
                   "caf\u00e9 \u2603 two\\x0alines\\x09tab"], got
    assert d["entries"][0]["level"] == "WARN"


def test_post_logs_all_or_nothing(server):
    s = server()
    good = '{"message":"aon good","level":"info"}'
    cases = [
        # (content type, body, bad line number)
        ("text/plain", "aon plain one\n%s\n{\"message\": broken\naon plain four\n" % good, 3),
        ("text/plain", "aon a\naon b\n{\"message\":\"unterminated\n", 3),
        ("application/x-ndjson", "%s\n%s\naon plain in ndjson\n" % (good, good), 3),
        ("application/json", "%s\naon plain in json\n%s\n" % (good, good), 2),
        ("application/x-ndjson; charset=utf-8", "\n%s\n[1,2]\n" % good, 3),
        ("text/plain", "aon x\nLOG|BOGUS|123|bad level\n", 2),
    ]
    for ctype, body, bad in cases:
        before = get_json(s.http_port, "/api/v1/stats")["entries"]
        with Http(s.http_port) as c:
            r = c.request(req("POST", "/api/v1/logs", [("Content-Type", ctype)], body))
            err = check_error(r, 400, close=False)
            assert re.search(r"\bline %d\b" % bad, err), (ctype, body, err)
        time.sleep(0.1)
        assert get_json(s.http_port, "/api/v1/stats")["entries"] == before
        assert s.count("aon") == 0, (ctype, body)
    # The same JSON-only body, valid, is stored.
    r = post_logs(s.http_port, "%s\n%s\n" % (good, good),
                  [("Content-Type", "application/x-ndjson")])
    assert r.status == 200 and r.json()["stored"] == 2, r
    assert s.count("aon") == 2


def test_post_logs_empty_and_blank_bodies(server):
    s = server()
    for body in ("", "\n\n\n"):
        r = post_logs(s.http_port, body)
        assert r.status == 200, r
        assert r.json()["stored"] == 0
    assert s.count() == 0


def test_post_logs_large_batch_and_curl(server, tmp_path):
    s = server()
    n = 20000
    path = tmp_path / "batch.log"
    path.write_text("".join("curlbatch %05d %s\n" % (i, "ERROR" if i % 10 == 0 else "ok")
                            for i in range(n)))
    # With Expect: 100-continue, curl waits for the interim response before the body.
    p = curl("-v", "--data-binary", "@%s" % path, "-H", "Content-Type: text/plain",
             "-H", "Expect: 100-continue",
             "http://%s:%d/api/v1/logs" % (HOST, s.http_port), timeout=30)
    assert p.returncode == 0, p
    d = json.loads(p.stdout)
    assert d["stored"] == n and d["last_id"] - d["first_id"] == n - 1, d
    assert b"HTTP/1.1 100 Continue" in p.stderr, p.stderr[-2000:]
    assert s.count("curlbatch") == n and s.count("curlbatch level:ERROR") == n // 10
    # Chunked upload with curl.
    p = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@%s" % path,
             "http://%s:%d/api/v1/logs" % (HOST, s.http_port), timeout=30)
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["stored"] == n
    assert s.count("curlbatch") == 2 * n


# ---- /metrics -------------------------------------------------------------------------------

SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")(?:,[a-zA-Z_][a-zA-Z0-9_]*='
    r'"(?:[^"\\\n]|\\.)*")*,?)?\})?'
    r' (-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)|NaN|\+Inf|-Inf)'
    r'(?: -?[0-9]+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def scrape(port):
    """GET /metrics, checked against the text exposition format. Returns
    {(name, frozenset(labels)): value} and {family: type}."""
    with Http(port) as c:
        r = c.request(req("GET", "/metrics"))
    assert r.status == 200, r
    check_common(r)
    ctype = r.header("Content-Type")
    assert ctype.replace(" ", "").startswith("text/plain;version=0.0.4"), ctype
    text = r.body.decode()
    assert text.endswith("\n")
    helps, types, samples, order = {}, {}, {}, []
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            assert name not in helps and h, line
            helps[name] = h
        elif line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            assert t in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, "two TYPE lines for %s" % name
            assert not any(s[0] == name or s[0].startswith(name + "_") and
                           types.get(name) is None for s in samples), line
            types[name] = t
            order.append(name)
        else:
            assert not line.startswith("#") and line, "unexpected line %r" % line
            m = SAMPLE_RE.match(line)
            assert m, "not a sample line: %r" % line
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            lab = frozenset(LABEL_RE.findall(labels))
            fam = name
            if name not in types:
                for suf in ("_bucket", "_sum", "_count"):
                    if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                        fam = name[:-len(suf)]
            assert fam in types, "sample %s before its TYPE" % name
            assert fam == order[-1], "sample %s not grouped with its family" % name
            assert (name, lab) not in samples, "duplicate sample %r" % line
            samples[(name, lab)] = float(value)
    for fam, t in types.items():
        assert fam in helps, "no HELP for %s" % fam
        if t == "counter":
            assert fam.endswith("_total"), fam
    return samples, types


def val(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, "no sample %s%r" % (name, labels)
    return samples[key]


def test_metrics_format_and_families(server):
    s = server()
    samples, types = scrape(s.http_port)
    want = {
        "logcaster_ingested_lines_total": "counter", "logcaster_received_bytes_total": "counter",
        "logcaster_rejected_lines_total": "counter", "logcaster_truncated_lines_total": "counter",
        "logcaster_evicted_lines_total": "counter", "logcaster_connections": "gauge",
        "logcaster_connections_accepted_total": "counter",
        "logcaster_connections_refused_total": "counter",
        "logcaster_query_duration_seconds": "histogram", "logcaster_store_entries": "gauge",
        "logcaster_store_raw_bytes": "gauge", "logcaster_store_disk_bytes": "gauge",
        "logcaster_store_compression_ratio": "gauge", "logcaster_store_segments": "gauge",
        "logcaster_store_pending_bytes": "gauge", "logcaster_fsyncs_total": "counter",
        "logcaster_fsync_last_seconds": "gauge", "logcaster_uptime_seconds": "gauge",
    }
    for fam, t in want.items():
        assert types.get(fam) == t, (fam, types.get(fam))
    for proto in ("ingest", "http"):
        for lvl in LEVELS:
            assert val(samples, "logcaster_ingested_lines_total", protocol=proto, level=lvl) == 0
    for proto in ("ingest", "query", "irc", "http"):
        val(samples, "logcaster_connections", protocol=proto)
        val(samples, "logcaster_received_bytes_total", protocol=proto)
    assert val(samples, "logcaster_connections", protocol="http") >= 1    # This scrape.
    assert val(samples, "logcaster_store_entries") == 0
    assert val(samples, "logcaster_uptime_seconds") >= 0


def histogram_ok(samples, fam):
    buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                      if n == fam + "_bucket"), key=lambda x: x[0])
    assert buckets and buckets[-1][0] == float("inf")
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), "buckets not cumulative: %r" % buckets
    assert vals[-1] == val(samples, fam + "_count")
    assert val(samples, fam + "_sum") >= 0
    return val(samples, fam + "_count")


def test_metrics_counters_move(server):
    s = server("--max-line", "1K")
    m0, _ = scrape(s.http_port)
    q0 = histogram_ok(m0, "logcaster_query_duration_seconds")
    acc0 = val(m0, "logcaster_connections_accepted_total")
    # Ingest port: 2 ERROR + 1 INFO plain, one truncated (INFO), one framed refused.
    plain = ["ERROR metric one", "ERROR metric two", "metric three", "metric long " + "x" * 2000]
    send_plain(s.log_port, plain)
    with LineConn(s.log_port) as c:
        c.sendall("LOG|BOGUS|-|metric refused\nLOG|WARN|-|metric framed\n")
        assert c.readline().startswith(b"ERROR|") and c.readline().startswith(b"OK|")
    # HTTP: one WARN, one INFO, one FATAL.
    body = "WARN metric http a\nmetric http b\n{\"message\":\"metric http c\",\"level\":\"fatal\"}\n"
    assert post_logs(s.http_port, body).json()["stored"] == 3
    s.wait_count(8)
    # Queries: one on the query port, one over HTTP, one histogram.
    s.search("metric")
    get_json(s.http_port, "/api/v1/query?q=metric")
    get_json(s.http_port, "/api/v1/histogram")
    with LineConn(s.log_port) as held:      # An open ingest connection while scraping.
        held.sendall(b"metric held\n")
        s.wait_count(9)
        m1, _ = scrape(s.http_port)
        assert val(m1, "logcaster_connections", protocol="ingest") >= 1

    def d(name, **labels):
        return val(m1, name, **labels) - val(m0, name, **labels)

    assert d("logcaster_ingested_lines_total", protocol="ingest", level="ERROR") == 2
    assert d("logcaster_ingested_lines_total", protocol="ingest", level="INFO") == 3
    assert d("logcaster_ingested_lines_total", protocol="ingest", level="WARN") == 1
    assert d("logcaster_ingested_lines_total", protocol="http", level="WARN") == 1
    assert d("logcaster_ingested_lines_total", protocol="http", level="INFO") == 1
    assert d("logcaster_ingested_lines_total", protocol="http", level="FATAL") == 1
    assert d("logcaster_ingested_lines_total", protocol="http", level="ERROR") == 0
    assert d("logcaster_received_bytes_total", protocol="ingest") >= \
        sum(len(p) + 1 for p in plain) + len("LOG|BOGUS|-|metric refused\n") * 2
    assert d("logcaster_received_bytes_total", protocol="http") >= len(body)
    assert d("logcaster_received_bytes_total", protocol="query") >= len("SEARCH metric\n")
    assert d("logcaster_rejected_lines_total") == 1
    assert d("logcaster_truncated_lines_total") == 1
    assert d("logcaster_evicted_lines_total") == 0
    assert d("logcaster_connections_accepted_total") >= 8
    assert val(m1, "logcaster_connections_accepted_total") - acc0 >= 8
    assert histogram_ok(m1, "logcaster_query_duration_seconds") - q0 >= 2
    assert val(m1, "logcaster_store_entries") == 9
    assert val(m1, "logcaster_store_raw_bytes") > 0
    assert val(m1, "logcaster_store_disk_bytes") > 0
    assert val(m1, "logcaster_store_segments") >= 1
    assert val(m1, "logcaster_fsyncs_total") >= val(m0, "logcaster_fsyncs_total")
    # Connections: the gauge goes back down once the clients leave.
    deadline = time.monotonic() + 5
    while True:
        m2, _ = scrape(s.http_port)
        if val(m2, "logcaster_connections", protocol="ingest") == 0:
            break
        assert time.monotonic() < deadline, "ingest connection gauge stays up"
        time.sleep(0.1)
    assert val(m2, "logcaster_connections", protocol="http") == 1


def test_metrics_query_histogram_counts_query_port_queries(server):
    s = server()
    load_framed(s, [("INFO", "-", "qport metric")])
    m0, _ = scrape(s.http_port)
    for _ in range(3):
        s.search("qport")
    s.count("qport")
    m1, _ = scrape(s.http_port)
    assert histogram_ok(m1, "logcaster_query_duration_seconds") - \
        histogram_ok(m0, "logcaster_query_duration_seconds") >= 4
