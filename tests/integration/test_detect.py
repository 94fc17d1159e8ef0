"""Integration tests for protocol detection: every listener looks at a connection's first line
and hands it to HTTP, IRC or the listener's own role (log lines, query commands, ...).

HTTP and IRC work on every port, including when the first packet is a single byte; log lines
that merely look like requests or IRC commands stay log lines; IRC clients arriving through
different ports and reactor threads share one network; extra --listen listeners; --listen
errors; and the idle timeout of connections that never say anything.

Every read has a deadline.
"""
import json
import re
import socket
import subprocess
import time

import pytest

from conftest import HOST, LOGCASTERD, LineConn, server_env, SockBase

READ_TIMEOUT = 5.0


# ---- small clients ----------------------------------------------------------------------------

class Conn(SockBase):
    """A raw connection with bounded reads."""

    def __init__(self, port, timeout=READ_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""


    def _more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed; have %r" % self.buf[:300])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("closed; pending %r" % self.buf[:300])
        self.buf += chunk

    def until(self, marker, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            self._more(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._more(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readline(self, timeout=None):
        return self.until(b"\n", timeout).rstrip(b"\r\n").decode("utf-8", "replace")

    def wait_closed(self, timeout):
        """Seconds until the server closes the connection (it must send nothing)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            while True:
                self._more(deadline)
        except EOFError:
            assert self.buf == b"", "unexpected data before close: %r" % self.buf[:200]
            return time.monotonic() - t0

    def silent(self, wait=0.3):
        """No byte and no close within wait seconds."""
        try:
            self._more(time.monotonic() + wait)
        except socket.timeout:
            return not self.buf
        except EOFError:
            return False
        return False

    # HTTP ----------------------------------------------------------------------------------

    def http(self, method, target, body=None, headers=()):
        """Send one request and read its response: (status, headers dict, body bytes)."""
        hdrs = [("Host", "127.0.0.1")] + list(headers)
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            hdrs.append(("Content-Length", str(len(body))))
        self.send(("%s %s HTTP/1.1\r\n" % (method, target)
                   + "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n").encode()
                  + (body or b""))
        return self.http_response()

    def http_response(self):
        head = self.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        m = re.match(r"^HTTP/1\.1 (\d{3}) ", head[0])
        assert m, head
        hdrs = {}
        for l in head[1:-2]:
            k, _, v = l.partition(":")
            hdrs[k.lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        return int(m.group(1)), hdrs, self.exact(n)

    # IRC -----------------------------------------------------------------------------------

    def expect(self, pattern, timeout=None):
        """IRC: read lines until one matches; return it."""
        pat = re.compile(pattern)
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no line matching %r; got %r" % (pattern, seen[-20:]))
            try:
                line = self.readline(left)
            except socket.timeout:
                continue
            if line.startswith("PING "):
                self.send("PONG " + line[5:] + "\r\n")
            if pat.search(line):
                return line
            seen.append(line)

    def register(self, nick, split_first_byte=False):
        data = "NICK %s\r\nUSER u%s 0 * :Real %s\r\n" % (nick, nick, nick)
        if split_first_byte:
            self.send(data[:1])
            time.sleep(0.3)
            self.send(data[1:])
        else:
            self.send(data)
        self.expect(r"^:\S+ 001 %s " % re.escape(nick))
        self.expect(r"^:\S+ (376|422) %s " % re.escape(nick))

    def sync(self, tok):
        self.send("PING :%s\r\n" % tok)
        return self.expect(r" PONG .*%s" % tok)


def http_get(port, target):
    with Conn(port) as c:
        return c.http("GET", target)


def send_plain(port, lines, tail=b"\n"):
    """Lines on a fresh connection (the first one is what detection sees); waits for the
    server to close after our shutdown, and checks it answered nothing."""
    with LineConn(port) as c:
        c.sendall(b"\n".join((l.encode() if isinstance(l, str) else l) for l in lines) + tail)
        c.sock.shutdown(socket.SHUT_WR)
        rest = c.read_until_closed()
        assert rest == b"", "reply to plain lines %r: %r" % (lines, rest[:200])


def messages(s, expr):
    return [r.msg for r in s.search(expr)]


# ---- HTTP on every port ---------------------------------------------------------------------

def test_http_on_every_listener(server):
    s = server()
    ports = {"log": s.log_port, "query": s.query_port, "irc": s.irc_port, "http": s.http_port}
    stored = 0
    for role, port in ports.items():
        with Conn(port) as c:
            st, h, body = c.http("GET", "/healthz")
            assert (st, body) == (200, b"ok\n"), role
            # Kept alive, and the other endpoints are there.
            st, h, body = c.http("POST", "/api/v1/logs",
                                 "detect-http via %s one\n{\"msg\":\"detect-http via %s two\","
                                 "\"level\":\"error\"}\n" % (role, role))
            assert st == 200 and json.loads(body)["stored"] == 2, (role, body)
            stored += 2
            st, h, body = c.http("GET", "/api/v1/query?q=%%22via+%s%%22" % role)
            assert st == 200, role
            assert [e["message"] for e in json.loads(body)["entries"]] == [
                "detect-http via %s two" % role, "detect-http via %s one" % role]
            st, h, body = c.http("GET", "/")
            assert st == 200 and h["content-type"].startswith("text/html"), role
            assert c.silent(0.2)
    assert s.count("detect-http") == stored
    assert s.count("detect-http level:ERROR") == 4
    # Lines posted over HTTP count as HTTP whatever port they came through.
    st, _, body = http_get(s.log_port, "/metrics")
    m = re.search(r'^logcaster_ingested_lines_total\{protocol="http",level="ERROR"\} (\S+)$',
                  body.decode(), re.M)
    assert m and float(m.group(1)) == 4, body.decode()[:2000]


def test_live_tail_through_the_log_port(server):
    s = server()
    with Conn(s.log_port) as c:
        c.send("GET /api/v1/tail?q=tailcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.until(b"\r\n\r\n").decode()
        assert head.startswith("HTTP/1.1 200 ") and "text/event-stream" in head, head
        c.until(b": connected\n")
        send_plain(s.log_port, ["tailcheck through the log port", "something else"])
        c.until(b'"message":"tailcheck through the log port"')
        assert b"something else" not in c.buf


@pytest.mark.parametrize("role", ["log", "query", "irc"])
def test_http_request_whose_first_packet_is_one_byte(server, role):
    s = server()
    port = getattr(s, role + "_port")
    body = b"one byte first %s\n" % role.encode()
    req = (b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
           + body)
    with Conn(port) as c:
        c.send(req[:1])            # "P": POST, PUT, PATCH or PASS; or a log line.
        time.sleep(0.3)
        assert c.silent(0.1)
        c.send(req[1:5])
        time.sleep(0.2)
        c.send(req[5:])
        st, _, resp = c.http_response()
        assert st == 200 and json.loads(resp)["stored"] == 1, resp
        # A request sent a byte at a time after that.
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
            c.send(bytes([b]))
        assert c.http_response()[2] == b"ok\n"
    assert messages(s, "byte first") == ["one byte first %s" % role]


def test_pipelined_http_requests_in_the_first_packet(server):
    s = server()
    body = b"pipelined first packet\n"
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            b"GET /api/v1/query?q=pipelined HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            % (len(body), body))
    for port in (s.log_port, s.query_port, s.irc_port):
        with Conn(port) as c:
            c.send(data)
            assert c.http_response()[2] == b"ok\n"
            st, _, b = c.http_response()
            assert st == 200 and json.loads(b)["stored"] == 1
            st, h, b = c.http_response()
            assert st == 200 and json.loads(b)["entries"][0]["message"] == "pipelined first packet"
            assert c.wait_closed(3.0) is not None
    assert s.count("pipelined") == 3


# ---- IRC on every port ----------------------------------------------------------------------

@pytest.mark.parametrize("role", ["log", "query", "http", "irc"])
def test_irc_registration_on_every_listener(server, role):
    s = server()
    port = getattr(s, role + "_port")
    with Conn(port) as c:
        c.register("det%s" % role)
        c.send("JOIN #logs-error\r\n")
        c.expect(r" 366 det%s #logs-error " % role)
        c.sync("t1")
    with Conn(port) as c:      # The first packet is a single byte.
        c.register("one%s" % role, split_first_byte=True)
        c.sync("t2")
    with Conn(port) as c:      # CAP negotiation first, also split after one byte.
        c.send("C")
        time.sleep(0.3)
        c.send("AP LS 302\r\n")
        c.expect(r"^:\S+ CAP \* LS ")
        c.send("NICK cap%s\r\nUSER u 0 * :r\r\nCAP END\r\n" % role)
        c.expect(r" 001 cap%s " % role)
    # None of that was stored as log lines.
    assert s.count() == 0


def test_irc_password_first_on_the_log_port(server):
    s = server("--irc-password", "sesame")
    with Conn(s.log_port) as c:
        c.send("P")
        time.sleep(0.3)
        c.send("ASS sesame\r\nNICK pwok\r\nUSER u 0 * :r\r\n")
        c.expect(r" 001 pwok ")
    with Conn(s.log_port) as c:
        c.send("PASS wrong\r\nNICK pwbad\r\nUSER u 0 * :r\r\n")
        c.expect(r" 464 ")
    assert s.count() == 0


def test_irc_log_channel_fed_by_ingest_for_client_on_log_port(server):
    s = server()
    with Conn(s.log_port) as c:
        c.register("watcher")
        c.send("JOIN #logs-error\r\n")
        c.expect(r" 366 watcher #logs-error ")
        send_plain(s.log_port, ["ERROR detected-irc relay check", "INFO not for this channel"])
        line = c.expect(r"PRIVMSG #logs-error :.*detected-irc relay check")
        assert "not for this channel" not in line


def test_irc_registration_and_commands_in_one_packet(server):
    """Registration plus more commands in the first write, on ports whose connections may land
    on either reactor: nothing sent before the move to the IRC thread is lost."""
    s = server("--threads", "2")
    clients = []
    try:
        for i in range(6):
            c = Conn(s.log_port if i % 2 else s.query_port)
            clients.append(c)
            c.send("NICK burst%d\r\nUSER u 0 * :r\r\nJOIN #detect-burst\r\n"
                   "PRIVMSG #detect-burst :hi from burst%d\r\nPING :done%d\r\n" % (i, i, i))
            c.expect(r" 001 burst%d " % i)
            c.expect(r" 366 burst%d #detect-burst " % i)
            c.expect(r" PONG .*done%d" % i)
        # The last one's message reached everybody who had joined before.
        for c in clients[:-1]:
            c.expect(r"^:burst5!\S+ PRIVMSG #detect-burst :hi from burst5$")
    finally:
        for c in clients:
            c.close()
    # Registration, QUIT and EOF in one go.
    with Conn(s.log_port) as c:
        c.send("NICK gone\r\nUSER u 0 * :r\r\nQUIT :bye\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        c.expect(r"^ERROR ")
    assert s.count() == 0


def test_connections_are_counted_by_detected_protocol(server):
    s = server()
    irc = Conn(s.log_port)
    web = Conn(s.query_port)
    try:
        irc.register("counted")
        assert web.http("GET", "/healthz")[2] == b"ok\n"
        st, _, body = http_get(s.irc_port, "/metrics")
        text = body.decode()
        gauge = {m.group(1): float(m.group(2)) for m in re.finditer(
            r'^logcaster_connections\{protocol="(\w+)"\} (\S+)$', text, re.M)}
        assert gauge["irc"] == 1 and gauge["http"] == 2 and gauge["ingest"] == 0, gauge
    finally:
        irc.close()
        web.close()


@pytest.mark.parametrize("port", ["log_port", "query_port", "irc_port", "http_port"])
def test_binary_protocol_is_detected_on_every_port(server, port):
    """A binary PING (version 1, command 3) gets its PONG wherever it arrives."""
    s = server()
    with socket.create_connection((HOST, getattr(s, port)), timeout=10) as c:
        c.sendall(bytes([1, 3, 0, 0, 0, 0, 0, 42]))
        got = b""
        while len(got) < 8:
            chunk = c.recv(8 - len(got))
            assert chunk, "closed after %r" % got
            got += chunk
    assert got == bytes([1, 0x83, 0, 0, 0, 0, 0, 42])


def test_control_bytes_that_are_not_the_binary_protocol_stay_a_log_line(server):
    s = server()
    send_plain(s.log_port, [b"\x02\x01binary-looking line"])
    s.wait_count(1)
    assert [r.msg for r in s.search("")] == ["\\x02\\x01binary-looking line"]


# ---- lines that only look like HTTP or IRC ----------------------------------------------------

LOOKALIKES = [
    "GET /x 200 12ms",
    "GET /index.html 200 12ms",
    "NICK changed by admin",
    "USER admin logged in",
    "PASS rotation scheduled for bob",
    "POST /api/v1/logs 500 3ms",
    "CAP LS timeout on node 3",
    "CAP",
    "NICK",
    "GET / HTTP/1.1 from 10.0.0.1",
    "DELETE /users/7 HTTP/2.0",
    "get /lowercase HTTP/1.1",
    "OPTIONS * 204",
    "HEAD /x HTTP/1.",
    "PUT /a b HTTP/1.1",
    "USER a b c realname without colon",
]


def test_lookalike_first_lines_are_stored_as_logs(server):
    s = server()
    for line in LOOKALIKES:
        send_plain(s.log_port, [line])
    s.wait_count(len(LOOKALIKES), timeout=10)
    got = sorted(r.msg for r in s.search(""))
    assert got == sorted(LOOKALIKES)


def test_lookalike_sent_a_byte_at_a_time(server):
    s = server()
    for line in ("GET /x 200 12ms", "NICK changed by admin"):
        with LineConn(s.log_port) as c:
            for b in (line + "\n").encode():
                c.sendall(bytes([b]))
                time.sleep(0.002)
            c.sock.shutdown(socket.SHUT_WR)
            assert c.read_until_closed() == b""
    s.wait_count(2)
    assert sorted(r.msg for r in s.search("")) == ["GET /x 200 12ms", "NICK changed by admin"]


def test_later_lines_are_never_detected(server):
    s = server()
    send_plain(s.log_port, ["first plain line", "GET /healthz HTTP/1.1", "NICK bob",
                            "USER u 0 * :real", "CAP LS 302"])
    s.wait_count(5)
    assert [r.msg for r in s.search("")] == ["first plain line", "GET /healthz HTTP/1.1",
                                              "NICK bob", "USER u 0 * :real", "CAP LS 302"]


def test_unterminated_first_line_at_eof_is_a_log_line(server):
    s = server()
    send_plain(s.log_port, ["GET /eof HTTP/1.1"], tail=b"")
    send_plain(s.log_port, ["NICK solo"], tail=b"")
    send_plain(s.log_port, ["G"], tail=b"")
    s.wait_count(3)
    assert sorted(r.msg for r in s.search("")) == ["G", "GET /eof HTTP/1.1", "NICK solo"]


def test_framed_lines_still_work_on_the_log_port(server):
    s = server()
    with LineConn(s.log_port) as c:
        c.sendall(b"LOG|ERROR|1700000000|framed after detection\nLOG:1700000001:INFO:seed\n")
        assert re.match(rb"^OK\|\d+$", c.readline())
        assert c.readline() == b"ACK"
    assert s.count() == 2


# ---- the query port -------------------------------------------------------------------------

def test_query_port_still_answers_queries(server):
    s = server()
    send_plain(s.log_port, ["ERROR query port line", "GET /x 200 1ms"])
    s.wait_count(2)
    cases = [
        ("PING", ["PONG"]),
        ("COUNT", ["COUNT|2"]),
        ("COUNT level:ERROR", ["COUNT|1"]),
        ("QUERY|KEYWORD|GET", None),
        ("SEARCH GET", None),
        ("QUERY:ERROR", None),
    ]
    for cmd, want in cases:
        with LineConn(s.query_port) as c:       # The command is the first line.
            got = [l.decode() for l in c.request_raw(cmd)]
            if want is not None:
                assert got == want, cmd
            elif cmd == "QUERY:ERROR":
                assert got[0] == "RESULT:1" and got[1].endswith(":ERROR:ERROR query port line")
            else:
                assert got[0] == "RESULT|1" and got[1].endswith("|GET /x 200 1ms"), got
    with LineConn(s.query_port) as c:
        lines = c.request("HELP")
        assert lines[-1] == "END" and len(lines) > 2
        lines = c.request("STATS")
        assert "entries 2" in lines
    # A first command split after its first byte.
    for cmd, want in (("PING", "PONG"), ("COUNT", "COUNT|2"), ("QUIT", None)):
        with Conn(s.query_port) as c:
            c.send(cmd[:1])
            time.sleep(0.3)
            c.send(cmd[1:] + "\n")
            if want:
                assert c.readline() == want
            else:
                assert c.wait_closed(3.0) is not None


# ---- IRC state shared across ports and reactor threads ------------------------------------

def test_irc_clients_through_every_port_share_one_network(server):
    s = server("--threads", "2")
    ports = [s.log_port] * 6 + [s.query_port, s.http_port, s.irc_port]
    clients = []
    try:
        for i, port in enumerate(ports):
            c = Conn(port)
            clients.append(c)
            c.register("share%d" % i, split_first_byte=(i % 2 == 1))
        for i, c in enumerate(clients):
            c.send("JOIN #detect-shared\r\n")
            c.expect(r" 366 share%d #detect-shared " % i)
        # NAMES from a log-port client lists everyone.
        clients[0].send("NAMES #detect-shared\r\n")
        names = set()
        while True:
            line = clients[0].expect(r" (353|366) share0 ")
            if " 366 " in line:
                break
            names.update(n.lstrip("@+") for n in line.split(" :", 1)[1].split())
        assert names == {"share%d" % i for i in range(len(ports))}, names
        # A message from each of two clients reaches all the others.
        for sender in (0, 7):
            clients[sender].send("PRIVMSG #detect-shared :hello from %d\r\n" % sender)
            for i, c in enumerate(clients):
                if i != sender:
                    c.expect(r"^:share%d!\S+ PRIVMSG #detect-shared :hello from %d$"
                             % (sender, sender))
            clients[sender].sync("s%d" % sender)
            assert "hello from" not in clients[sender].buf.decode()
        # Private messages and nick clashes cross ports too.
        clients[6].send("PRIVMSG share2 :direct\r\n")
        clients[2].expect(r"^:share6!\S+ PRIVMSG share2 :direct$")
        with Conn(s.query_port) as dup:
            dup.send("NICK share3\r\nUSER u 0 * :r\r\n")
            dup.expect(r" 433 \S+ share3 ")
        # A quit is seen everywhere.
        clients[4].send("QUIT :bye\r\n")
        for i in (0, 6, 8):
            clients[i].expect(r"^:share4!\S+ QUIT ")
    finally:
        for c in clients:
            c.close()
    assert s.count() == 0


# ---- extra listeners --------------------------------------------------------------------------

def test_listen_auto(server):
    s = server("--listen", "127.0.0.1:0=auto")
    autos = [p for r, p in s.listening if r == "auto"]
    assert len(autos) == 1 and autos[0] not in (s.log_port, s.query_port, s.irc_port,
                                                 s.http_port)
    port = autos[0]
    # Plain lines are logs, whatever they look like; query commands too.
    send_plain(port, ["auto plain ERROR line", "PING", "COUNT"])
    send_plain(port, ["PING"])
    with LineConn(port) as c:                    # Framed lines work as on the log port.
        c.sendall(b"LOG|WARN|-|auto framed\n")
        assert re.match(rb"^OK\|\d+$", c.readline())
    s.wait_count(5)
    assert sorted(r.msg for r in s.search("")) == sorted(
        ["auto plain ERROR line", "PING", "COUNT", "PING", "auto framed"])
    # HTTP and IRC work there too.
    with Conn(port) as c:
        assert c.http("GET", "/healthz")[2] == b"ok\n"
        st, _, body = c.http("GET", "/api/v1/query?q=auto")
        assert st == 200 and len(json.loads(body)["entries"]) == 2
    with Conn(port) as c:
        c.register("autonick", split_first_byte=True)
        c.send("JOIN #logs-all\r\n")
        c.expect(r" 366 autonick #logs-all ")
    assert s.count() == 5


def test_listen_roles(server):
    s = server("--listen", "127.0.0.1:0=query", "--listen", "127.0.0.1:0=irc",
               "--listen", "127.0.0.1:0=http", "--listen", "127.0.0.1:0=log")
    extra = {}
    for role, port in s.listening:
        if port not in (s.log_port, s.query_port, s.irc_port, s.http_port):
            extra[role] = port
    assert set(extra) == {"query", "irc", "http", "log"}, s.listening
    send_plain(extra["log"], ["extra log listener line"])
    s.wait_count(1)
    with LineConn(extra["query"]) as c:
        assert c.request("PING") == ["PONG"]
        assert c.request("COUNT") == ["COUNT|1"]
    with Conn(extra["irc"]) as c:
        c.send("JOIN #x\r\n")              # Not a registration: the port's own role.
        c.expect(r" 451 ")
        c.register("extrairc")
    with Conn(extra["http"]) as c:
        c.send("hello there\r\n\r\n")      # Not a request line: HTTP answers 400.
        st, _, body = c.http_response()
        assert st == 400 and "error" in json.loads(body)
    # Every protocol is detected on each of them.
    for role, port in extra.items():
        assert http_get(port, "/healthz")[2] == b"ok\n", role
        with Conn(port) as c:
            c.register("x" + role)
    assert s.count() == 1


def test_listen_ipv6(server):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s = server("--listen", "[::1]:0=auto")
    port = [p for r, p in s.listening if r == "auto"][0]
    with socket.create_connection(("::1", port), timeout=5) as c:
        c.sendall(b"ipv6 auto line\n")
        c.shutdown(socket.SHUT_WR)
        c.settimeout(5)
        assert c.recv(100) == b""
    s.wait_count(1)
    assert [r.msg for r in s.search("")] == ["ipv6 auto line"]


def run_daemon(tmp_path, args, timeout=10):
    """Run logcasterd expecting it to exit by itself; returns (rc, stdout, stderr)."""
    cmd = [LOGCASTERD, "--bind", HOST, "--log-port", "0", "--query-port", "0", "--irc-port",
           "0", "--http-port", "0", "--data-dir", str(tmp_path / "data")] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=server_env())
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        pytest.fail("logcasterd %r kept running: %s" % (args, err.decode()[-2000:]))
    return p.returncode, out.decode(), err.decode()


def test_listen_prints_its_listening_line(tmp_path):
    cmd = [LOGCASTERD, "--bind", HOST, "--log-port", "0", "--query-port", "0", "--irc-port", "0",
           "--http-port", "0", "--data-dir", str(tmp_path / "data"),
           "--listen", "127.0.0.1:0=auto", "--listen", "127.0.0.1:0=http"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=server_env())
    try:
        lines = []
        deadline = time.monotonic() + 10
        while len(lines) < 7 and time.monotonic() < deadline:
            line = p.stdout.readline().decode()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        roles = [l.split(" ")[1] for l in lines]
        assert sorted(roles) == ["auto", "http", "http", "irc", "log", "query", "udp"], lines
        for l in lines:
            assert re.match(r"^listening (log|udp|query|irc|http|auto) 127\.0\.0\.1:\d+$", l), l
        auto = int([l for l in lines if l.split(" ")[1] == "auto"][0].rsplit(":", 1)[1])
        assert auto > 0
        with socket.create_connection((HOST, auto), timeout=5):
            pass
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err.decode()[-2000:]
    assert "AddressSanitizer" not in err.decode() and "runtime error" not in err.decode()


BAD_LISTEN = ["127.0.0.1:0=bogus", "127.0.0.1:0", "127.0.0.1=auto", ":0=auto", "=auto",
              "127.0.0.1:99999=auto", "127.0.0.1:-1=auto", "127.0.0.1:abc=auto",
              "127.0.0.1:0=", "[::1:0=auto", "127.0.0.1:0=AUTO", ""]


@pytest.mark.parametrize("value", BAD_LISTEN)
def test_listen_bad_value_exits_2(tmp_path, value):
    rc, out, err = run_daemon(tmp_path, ["--listen", value])
    assert rc == 2, (rc, err)
    assert "listening" not in out
    lines = [l for l in err.splitlines() if l.strip()]
    assert any("--listen" in l and ("'%s'" % value) in l for l in lines), err
    assert "AddressSanitizer" not in err and "runtime error" not in err


@pytest.mark.parametrize("value", ["127.0.0.1:=auto", "127.0.0.1: 0=auto"])
def test_listen_empty_or_blank_port_exits_2(tmp_path, value):
    rc, out, err = run_daemon(tmp_path, ["--listen", value], timeout=1.0)
    assert rc == 2, (rc, err)


def test_listen_more_than_four_exits_2(tmp_path):
    args = []
    for _ in range(5):
        args += ["--listen", "127.0.0.1:0=auto"]
    rc, out, err = run_daemon(tmp_path, args)
    assert rc == 2 and "listening" not in out
    assert "--listen" in err and "4" in err, err


def test_listen_unusable_address_fails_to_start(tmp_path):
    rc, out, err = run_daemon(tmp_path, ["--listen", "300.1.2.3:0=auto"])
    assert rc != 0 and "listening" not in out
    assert "300.1.2.3" in err, err


# ---- idle timeout -----------------------------------------------------------------------------

def test_silent_connections_closed_after_idle_timeout(server):
    s = server("--idle-timeout", "1", "--listen", "127.0.0.1:0=auto")
    auto = [p for r, p in s.listening if r == "auto"][0]
    conns = {}
    for role, port in (("log", s.log_port), ("query", s.query_port), ("irc", s.irc_port),
                       ("http", s.http_port), ("auto", auto)):
        conns[role] = Conn(port)
    # Undecided: a first line that could still become an HTTP request or an IRC command.
    conns["log-partial-http"] = Conn(s.log_port)
    conns["log-partial-http"].send("GET /pending")
    conns["query-partial-irc"] = Conn(s.query_port)
    conns["query-partial-irc"].send("NICK pend")
    # An HTTP connection idle after a complete request.
    conns["http-keepalive"] = Conn(s.http_port)
    assert conns["http-keepalive"].http("GET", "/healthz")[2] == b"ok\n"
    t0 = time.monotonic()
    try:
        for role, c in conns.items():
            left = 4.0 - (time.monotonic() - t0)
            try:
                c.wait_closed(max(left, 0.1))
            except socket.timeout:
                pytest.fail("%s connection still open %.1f s after --idle-timeout 1"
                            % (role, time.monotonic() - t0))
            assert time.monotonic() - t0 >= 0.9, (role, time.monotonic() - t0)
    finally:
        for c in conns.values():
            c.close()
    # A connection that talks now and then within the timeout stays open.
    with LineConn(s.query_port) as c:
        for _ in range(3):
            time.sleep(0.6)
            assert c.request("PING") == ["PONG"]
