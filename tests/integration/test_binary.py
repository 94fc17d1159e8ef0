"""The binary protocol (seed 7.2) and length-prefixed frames (seed 5.2), against the real
server: the spec is the comment at the top of src/proto/binary.h.

Log port: PING/PONG, LOG and LOG_MS acks in request order (pipelined too) and what is stored,
escaping, frames split over many writes, malformed payloads, untrusted headers, wrong-port
commands, the line limit, authentication and durability across kill -9. Query port: QUERY rows
and count-only answers, limits, bad expressions, STATS, LOG refused, authentication and a long
answer read slowly. Length-prefixed frames on the log port. Detection on an auto listener and
on the HTTP port."""
import json
import signal
import socket
import struct
import time
import urllib.request
from collections import namedtuple

import pytest

from conftest import HOST, IO_TIMEOUT, SockBase

LOG, QUERY, PING, STATS, AUTH, LOG_MS = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
REPLY, ROW, ERROR = 0x80, 0x90, 0xFF
E_VERSION, E_COMMAND, E_MALFORMED, E_TOO_LONG, E_AUTH, E_WRONG_PORT, E_QUERY = 1, 2, 3, 4, 5, 6, 8
LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
HDR = struct.Struct(">BBHI")

Frame = namedtuple("Frame", "version cmd seq payload")
BinRow = namedtuple("BinRow", "id ts_ms level flags msg")


# Wire helpers --------------------------------------------------------------------------------

def frame(cmd, payload=b"", seq=0, version=1, length=None):
    """One request: the 8-byte header, then the payload (length defaults to its size)."""
    return HDR.pack(version, cmd, len(payload) if length is None else length, seq) + payload


def log_payload(level, ts, msg, mlen=None):
    if isinstance(msg, str):
        msg = msg.encode()
    return struct.pack(">BIH", level, ts, len(msg) if mlen is None else mlen) + msg


def log_ms_payload(level, ts_ms, msg):
    if isinstance(msg, str):
        msg = msg.encode()
    return struct.pack(">BQ", level, ts_ms) + msg


def lp(payload):
    """A length-prefixed frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">I", len(payload)) + payload


class BinConn(SockBase):
    """A binary-protocol client; every read is bounded by the socket timeout."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed with %d of %d bytes: %r" % (len(self.buf), n,
                                                                   self.buf[:100]))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        version, cmd, length, seq = HDR.unpack(self.recv_exact(8))
        return Frame(version, cmd, seq, self.recv_exact(length))

    def expect(self, cmd, seq):
        f = self.read_frame()
        assert f.version == 1, f
        assert (f.cmd, f.seq) == (cmd, seq), "expected 0x%02x seq %d, got %r" % (cmd, seq, f)
        return f.payload

    def expect_ack(self, cmd, seq):
        p = self.expect(cmd | REPLY, seq)
        assert len(p) == 8, p
        return struct.unpack(">Q", p)[0]

    def expect_error(self, seq, code):
        f = self.read_frame()
        assert (f.version, f.cmd, f.seq) == (1, ERROR, seq), f
        assert len(f.payload) >= 2 and f.payload[0] == code, \
            "expected error code %d, got %r" % (code, f.payload)
        reason = f.payload[1:].decode()
        assert reason and all(0x20 <= ord(ch) < 0x7f for ch in reason), reason
        return reason

    def ping(self, seq=0xC0FFEE):
        self.send(frame(PING, seq=seq))
        assert self.expect(PING | REPLY, seq) == b""

    def log(self, level, ts, msg, seq=1):
        self.send(frame(LOG, log_payload(level, ts, msg), seq))
        return self.expect_ack(LOG, seq)

    def log_ms(self, level, ts_ms, msg, seq=1):
        self.send(frame(LOG_MS, log_ms_payload(level, ts_ms, msg), seq))
        return self.expect_ack(LOG_MS, seq)

    def auth(self, token, seq=77):
        self.send(frame(AUTH, token.encode(), seq))
        assert self.expect(AUTH | REPLY, seq) == b""

    def assert_closed(self):
        """The server closes without sending anything more."""
        rest = self.buf
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            rest += chunk
        assert rest == b"", "bytes after the last expected reply: %r" % rest[:200]

    # Query port -------------------------------------------------------------------------

    def query(self, expr, seq=5, count_only=False):
        """(count, rows) of a binary QUERY; rows is None for count-only."""
        self.send(frame(QUERY, bytes([1 if count_only else 0]) + expr.encode(), seq))
        p = self.expect(QUERY | REPLY, seq)
        assert len(p) == 8, p
        n = struct.unpack(">Q", p)[0]
        if count_only:
            return n, None
        rows = []
        for _ in range(n):
            rp = self.expect(ROW, seq)
            assert len(rp) >= 18, rp
            i, ts, level, flags = struct.unpack(">QqBB", rp[:18])
            rows.append(BinRow(i, ts, level, flags, rp[18:]))
        return n, rows

    def stats(self, seq=9):
        self.send(frame(STATS, seq=seq))
        text = self.expect(STATS | REPLY, seq).decode()
        assert text.endswith("\n"), text
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            out[k] = v
        return out


def bin_rows(s, expr=""):
    with BinConn(s.query_port) as q:
        n, rows = q.query(expr)
        assert n == len(rows)
        return rows


def wait_rows(s, n, expr="", timeout=20.0):
    s.wait_count(n, expr, timeout)
    return bin_rows(s, expr)


def read_lp(conn):
    """One length-prefixed reply frame from a BinConn."""
    n = struct.unpack(">I", conn.recv_exact(4))[0]
    return conn.recv_exact(n)


# Log port: PING, LOG, LOG_MS --------------------------------------------------------------------

def test_ping_pong_echoes_sequence(server):
    s = server()
    with BinConn(s.log_port) as c:
        seqs = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 12345]
        # A payload on PING is ignored; several pings pipelined come back in order.
        c.send(b"".join(frame(PING, b"ignored %d" % i if i % 2 else b"", seq)
                        for i, seq in enumerate(seqs)))
        for seq in seqs:
            f = c.read_frame()
            assert f == Frame(1, PING | REPLY, seq, b""), f
        c.ping(42)
    assert s.count() == 0


def test_log_and_log_ms_acked_and_stored(server):
    s = server()
    t0 = time.time()
    with BinConn(s.log_port) as c:
        c.send(frame(LOG, log_payload(4, 1640995200, "disk full on /var"), 10) +
               frame(LOG_MS, log_ms_payload(1, 1640995200123, "cache miss ms"), 11) +
               frame(PING, b"", 12) +
               frame(LOG, log_payload(5, 0, "fatal at receive time"), 13) +
               frame(LOG_MS, log_ms_payload(0, 0, "trace at receive time ms"), 14) +
               frame(LOG, log_payload(3, 0xFFFFFFFF, "far future"), 15))
        assert c.expect_ack(LOG, 10) == 1
        assert c.expect_ack(LOG_MS, 11) == 2
        assert c.expect(PING | REPLY, 12) == b""
        assert c.expect_ack(LOG, 13) == 3
        assert c.expect_ack(LOG_MS, 14) == 4
        assert c.expect_ack(LOG, 15) == 5
    t1 = time.time()
    rows = bin_rows(s)
    assert [(r.id, LEVELS[r.level], r.flags, r.msg) for r in rows] == [
        (1, "ERROR", 0, b"disk full on /var"), (2, "DEBUG", 0, b"cache miss ms"),
        (3, "FATAL", 0, b"fatal at receive time"), (4, "TRACE", 0, b"trace at receive time ms"),
        (5, "WARN", 0, b"far future")]
    assert rows[0].ts_ms == 1640995200000          # LOG: seconds.
    assert rows[1].ts_ms == 1640995200123          # LOG_MS: milliseconds.
    for r in rows[2:4]:                             # 0: the receive time.
        assert int(t0 * 1000) - 1000 <= r.ts_ms <= int(t1 * 1000) + 1000, r
    assert rows[4].ts_ms == 4294967295000          # u32 is unsigned.
    # The text query port shows the same entries (seconds there).
    text = s.search("")
    assert [(r.id, r.level, r.ts, r.msg) for r in text] == [
        (1, "ERROR", 1640995200, "disk full on /var"), (2, "DEBUG", 1640995200, "cache miss ms"),
        (3, "FATAL", rows[2].ts_ms // 1000, "fatal at receive time"),
        (4, "TRACE", rows[3].ts_ms // 1000, "trace at receive time ms"),
        (5, "WARN", 4294967295, "far future")]
    # And the HTTP API.
    with urllib.request.urlopen("http://%s:%d/api/v1/query?q=disk" % (HOST, s.http_port),
                                timeout=IO_TIMEOUT) as r:
        entries = json.loads(r.read())["entries"]
    assert [(e["id"], e["level"], e["ts_ms"], e["message"]) for e in entries] == [
        (1, "ERROR", 1640995200000, "disk full on /var")]


def test_log_ms_timestamp_edges(server):
    s = server()
    edges = [1, 999, 1700000000123, 9999999999999]   # The last: the text forms' limit (2286).
    with BinConn(s.log_port) as c:
        for i, ts in enumerate(edges):
            assert c.log_ms(2, ts, "edge %d" % ts, seq=i) == i + 1
        # Later ones would pin age retention for ever: refused (code 3), the stream goes on.
        for i, ts in enumerate([9999999999999 + 1, 253402300799999, (1 << 63) - 1]):
            c.send(frame(LOG_MS, log_ms_payload(2, ts, "too late"), 100 + i))
            assert "2286" in c.expect_error(100 + i, E_MALFORMED)
    assert [(r.ts_ms, r.msg) for r in bin_rows(s)] == [(ts, b"edge %d" % ts) for ts in edges]
    assert [(r.ts, r.msg) for r in s.search("edge")] == [(ts // 1000, "edge %d" % ts)
                                                         for ts in edges]


def test_pipelined_5000_frames_acked_in_order(server):
    s = server()
    n = 5000
    data = b"".join(
        frame(LOG, log_payload(i % 6, 1700000000 + i, "pipelined %d" % i), 1000 + i) if i % 2 == 0
        else frame(LOG_MS, log_ms_payload(i % 6, 1700000000000 + i, "pipelined %d" % i), 1000 + i)
        for i in range(n))
    with BinConn(s.log_port) as c:
        c.send(data)            # One write; the acks (16 bytes each) fit the socket buffers.
        ids = [c.expect_ack(LOG if i % 2 == 0 else LOG_MS, 1000 + i) for i in range(n)]
        c.ping(1)
    assert all(a < b for a, b in zip(ids, ids[1:])), "ids not increasing"
    assert ids[0] == 1 and ids[-1] == n
    rows = wait_rows(s, n)
    assert len(rows) == n
    for i, r in enumerate(rows):
        want_ts = (1700000000 + i) * 1000 if i % 2 == 0 else 1700000000000 + i
        assert (r.id, r.level, r.ts_ms, r.msg) == (ids[i], i % 6, want_ts,
                                                  b"pipelined %d" % i), r


def test_utf8_and_control_bytes_escaped_like_plain_lines(server):
    s = server()
    msgs = [b"esc1 a\x01b\xff", b"esc2 tab\there\x1b[31mred\x7f",
            "esc3 caf\u00e9 \u65e5\u672c \U0001F600".encode(),
            b"esc4 bad \xc3\x28 over \xc0\xaf sur \xed\xa0\x80 nul\x00end",
            b"esc5 back\\slash |pipe| :colon:"]
    s.send(msgs)        # Plain lines: the reference escaping.
    s.wait_count(len(msgs))
    plain = [r.msg for r in s.search("")]
    assert plain == ["esc1 a\\x01b\\xff", "esc2 tab\\x09here\\x1b[31mred\\x7f",
                     "esc3 caf\u00e9 \u65e5\u672c \U0001F600",
                     "esc4 bad \\xc3( over \\xc0\\xaf sur \\xed\\xa0\\x80 nul\\x00end",
                     "esc5 back\\slash |pipe| :colon:"]
    with BinConn(s.log_port) as c:
        for i, m in enumerate(msgs):
            c.log(2, 1700000000, m, seq=i)
            c.log_ms(2, 1700000000000, m, seq=100 + i)
        # Newlines and CR cannot come in a plain line; in a frame they are escaped too.
        c.log(2, 1700000000, b"esc6 two\nlines\r\n", seq=50)
    rows = s.search("")
    got = [r.msg for r in rows[len(msgs):]]
    want = []
    for p in plain:
        want += [p, p]
    assert got == want + ["esc6 two\\x0alines\\x0d\\x0a"]
    # Binary rows carry the stored (escaped) bytes too: valid UTF-8, no control bytes.
    for r in bin_rows(s):
        text = r.msg.decode("utf-8")
        assert not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in text), r


def test_frame_split_byte_by_byte(server):
    s = server()
    data = (frame(LOG, log_payload(4, 1640995200, "sent one byte at a time"), 7) +
            frame(LOG_MS, log_ms_payload(3, 1640995200999, "ms too"), 8) + frame(PING, b"", 9))
    with BinConn(s.log_port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        assert c.expect_ack(LOG, 7) == 1
        assert c.expect_ack(LOG_MS, 8) == 2
        assert c.expect(PING | REPLY, 9) == b""
    rows = bin_rows(s)
    assert [(r.level, r.ts_ms, r.msg) for r in rows] == [
        (4, 1640995200000, b"sent one byte at a time"), (3, 1640995200999, b"ms too")]


MALFORMED = [
    ("LOG empty", LOG, b""),
    ("LOG short 3", LOG, b"\x02\x00\x00"),
    ("LOG short 6", LOG, log_payload(2, 1, "")[:6]),
    ("LOG msg_length long", LOG, log_payload(2, 1, "abc", mlen=4)),
    ("LOG msg_length short", LOG, log_payload(2, 1, "abc", mlen=2)),
    ("LOG msg_length 65535", LOG, log_payload(2, 1, "abc", mlen=0xFFFF)),
    ("LOG level 6", LOG, log_payload(6, 1, "x")),
    ("LOG level 255", LOG, log_payload(255, 1, "x")),
    ("LOG_MS short 8", LOG_MS, log_ms_payload(2, 1, "")[:8]),
    ("LOG_MS level 9", LOG_MS, log_ms_payload(9, 1, "x")),
    ("LOG_MS ts over INT64_MAX", LOG_MS, log_ms_payload(2, 1 << 63, "x")),
    ("LOG_MS ts all ones", LOG_MS, log_ms_payload(2, (1 << 64) - 1, "x")),
]


def test_malformed_payloads_get_code_3_and_stream_continues(server):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(b"".join(frame(cmd, p, 500 + i) for i, (_, cmd, p) in enumerate(MALFORMED)) +
               frame(PING, b"", 999) + frame(LOG, log_payload(2, 1700000000, "after errors"), 1000))
        for i, (what, _, _) in enumerate(MALFORMED):
            reason = c.expect_error(500 + i, E_MALFORMED)
            assert reason, what
        assert c.expect(PING | REPLY, 999) == b""
        assert c.expect_ack(LOG, 1000) == 1       # Refused frames took no id.
    assert [r.msg for r in s.search("")] == ["after errors"]
    assert int(s.stats()["dropped"]) == len(MALFORMED)


@pytest.mark.parametrize("version,cmd,code", [
    (1, 0x00, E_COMMAND), (1, 0x07, E_COMMAND), (1, 0x81, E_COMMAND), (1, 0x90, E_COMMAND),
    (1, 0xFF, E_COMMAND), (2, PING, E_VERSION), (0, LOG, E_VERSION), (0xFF, 0xFF, E_VERSION)])
def test_untrusted_header_gets_error_then_close(server, version, cmd, code):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(frame(PING, b"", 1) + frame(LOG, log_payload(2, 1700000000, "before"), 2) +
               frame(cmd, b"xyz", 3, version=version) + frame(PING, b"", 4))
        assert c.expect(PING | REPLY, 1) == b""
        assert c.expect_ack(LOG, 2) == 1
        c.expect_error(3, code)
        c.assert_closed()
    assert [r.msg for r in s.search("")] == ["before"]


@pytest.mark.parametrize("first", [b"\x01\x07\x00\x00\x00\x00\x00\x05",
                                   b"\x01\x00\x00\x00\x00\x00\x00\x05"])
def test_untrusted_first_header_on_log_port(server, first):
    # 0x01 then a byte that is not a request: detection says "log", the first byte says binary.
    s = server()
    with BinConn(s.log_port) as c:
        c.send(first + frame(PING, b"", 6))
        c.expect_error(5, E_COMMAND)
        c.assert_closed()
    assert s.count() == 0


def test_query_and_stats_on_log_port_get_code_6(server):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(frame(QUERY, b"\x00level:ERROR", 1) + frame(QUERY, b"\x01", 2) +
               frame(STATS, b"", 3) + frame(PING, b"", 4))
        for seq in (1, 2, 3):
            c.expect_error(seq, E_WRONG_PORT)
        assert c.expect(PING | REPLY, 4) == b""
        assert c.log(2, 1700000000, "still open", seq=5) == 1


def test_message_longer_than_max_line_gets_code_4(server):
    s = server("--max-line", "1000")
    with BinConn(s.log_port) as c:
        c.send(frame(LOG, log_payload(2, 1700000000, "a" * 1001), 1) +
               frame(LOG, log_payload(2, 1700000000, "b" * 1000), 2) +
               frame(LOG_MS, log_ms_payload(2, 1700000000000, "c" * 1001), 3) +
               frame(LOG_MS, log_ms_payload(2, 1700000000000, "d" * 1000), 4) +
               frame(PING, b"", 5))
        c.expect_error(1, E_TOO_LONG)
        assert c.expect_ack(LOG, 2) == 1
        c.expect_error(3, E_TOO_LONG)
        assert c.expect_ack(LOG_MS, 4) == 2
        assert c.expect(PING | REPLY, 5) == b""
    rows = bin_rows(s)
    assert [(r.msg, r.flags) for r in rows] == [(b"b" * 1000, 0), (b"d" * 1000, 0)]


def test_frame_longer_than_line_limit_is_refused_and_skipped(server):
    s = server("--max-line", "100")
    big_log = frame(LOG, log_payload(2, 1700000000, "L" * 5000), 1)
    big_ms = frame(LOG_MS, log_ms_payload(2, 1700000000000, "M" * 60000), 2)
    big_ping = frame(PING, b"P" * 3000, 3)
    after = frame(LOG, log_payload(2, 1700000000, "small after big frames"), 4) + \
        frame(PING, b"", 5)
    # In one write, and again split into pieces so the server sees the header long before the
    # end of the payload: a frame always fits the input buffer, so it waits for the rest and
    # then refuses the message, whatever --max-line is.
    for split in (False, True):
        with BinConn(s.log_port) as c:
            data = big_log + big_ms + big_ping + after
            if split:
                for i in range(0, len(data), 1000):
                    c.send(data[i:i + 1000])
                    time.sleep(0.005)
            else:
                c.send(data)
            c.expect_error(1, E_TOO_LONG)
            c.expect_error(2, E_TOO_LONG)
            assert c.expect(PING | REPLY, 3) == b""
            c.expect_ack(LOG, 4)
            assert c.expect(PING | REPLY, 5) == b""
    assert [r.msg for r in s.search("")] == ["small after big frames"] * 2


def test_frame_near_line_limit_same_answer_however_it_arrives(server):
    s = server("--max-line", "100")
    msg = "n" * 95        # msg_length 95 <= 100, but header + payload = 8 + 7 + 95 = 110 > 101.
    data = frame(LOG, log_payload(2, 1700000000, msg), 1) + frame(PING, b"", 2)
    answers = []
    for split in (False, True):
        with BinConn(s.log_port) as c:
            if split:
                for i in range(len(data)):
                    c.send(data[i:i + 1])
                    time.sleep(0.002)
            else:
                c.send(data)
            f = c.read_frame()
            answers.append((f.cmd, f.payload[:1] if f.cmd == ERROR else b""))
            assert c.expect(PING | REPLY, 2) == b""
    assert answers[0] == answers[1], answers


# Log port: authentication ---------------------------------------------------------------------

def test_log_port_auth(server):
    s = server("--log-auth", "on", "--log-token", "T0k")
    for cmd, payload in ((LOG, log_payload(2, 1700000000, "unauthenticated")),
                         (LOG_MS, log_ms_payload(2, 1700000000000, "unauthenticated ms"))):
        with BinConn(s.log_port) as c:
            c.send(frame(cmd, payload, 3) + frame(PING, b"", 4))
            c.expect_error(3, E_AUTH)
            c.assert_closed()
    with BinConn(s.log_port) as c:
        c.send(frame(AUTH, b"wrong", 3) + frame(LOG, log_payload(2, 1, "after wrong"), 4))
        c.expect_error(3, E_AUTH)
        c.assert_closed()
    with BinConn(s.log_port) as c:
        c.ping(1)                         # PING needs no AUTH.
        c.auth("T0k", 2)
        assert c.log(4, 1700000000, "authenticated", seq=3) == 1
        assert c.log_ms(4, 1700000000000, "authenticated ms", seq=4) == 2
    assert [r.msg for r in s.search("")] == ["authenticated", "authenticated ms"]
    assert s.count("unauthenticated") == 0 and s.count("wrong") == 0


def test_log_token_without_log_auth_needs_no_auth(server):
    # --log-auth stays off by default: a token alone does not make AUTH required.
    s = server("--log-token", "T0k")
    with BinConn(s.log_port) as c:
        assert c.log(2, 1700000000, "no auth needed", seq=1) == 1
        c.auth("anything", 2)             # Accepted (nothing to check).
        assert c.log(2, 1700000000, "after auth", seq=3) == 2


def test_failed_reauth_error_comes_after_earlier_acks(server):
    s = server("--log-auth", "on", "--log-token", "T0k", "--fsync", "always")
    with BinConn(s.log_port) as c:
        c.send(frame(AUTH, b"T0k", 1) +
               b"".join(frame(LOG, log_payload(2, 1700000000, "x%d" % i), 10 + i)
                        for i in range(50)) +
               frame(AUTH, b"wrong", 2))
        assert c.expect(AUTH | REPLY, 1) == b""
        for i in range(50):
            c.expect_ack(LOG, 10 + i)
        c.expect_error(2, E_AUTH)
        c.assert_closed()


# Log port: durability -------------------------------------------------------------------------

def test_acked_ids_survive_kill_9(server, tmp_path):
    data_dir = str(tmp_path / "shared-data")
    s = server("--fsync", "always", "--data-dir", data_dir)
    acked = {}
    with BinConn(s.log_port) as c:
        for batch in range(4):
            frames = []
            for i in range(100):
                k = batch * 100 + i
                cmd = LOG if k % 2 else LOG_MS
                p = log_payload(k % 6, 1700000000 + k, "durable %d" % k) if cmd == LOG else \
                    log_ms_payload(k % 6, 1700000000000 + k, "durable %d" % k)
                frames.append(frame(cmd, p, k))
            c.send(b"".join(frames))
            for i in range(100):
                k = batch * 100 + i
                acked[c.expect_ack(LOG if k % 2 else LOG_MS, k)] = k
        # Unacknowledged frames in flight at the kill may or may not survive.
        c.send(b"".join(frame(LOG, log_payload(2, 1, "in flight %d" % i), 5000 + i)
                        for i in range(100)))
        rc = s.stop(signal.SIGKILL, timeout=10)
    assert rc == -signal.SIGKILL
    s2 = server("--data-dir", data_dir)
    rows = {r.id: r for r in bin_rows(s2, "durable")}
    for i, k in acked.items():
        r = rows.get(i)
        assert r is not None, "acked id %d (durable %d) lost after kill -9" % (i, k)
        want_ts = (1700000000 + k) * 1000 if k % 2 else 1700000000000 + k
        assert (r.msg, r.level, r.ts_ms) == (b"durable %d" % k, k % 6, want_ts)
    assert len(rows) == len(acked)
    # New ids continue after the recovered ones.
    with BinConn(s2.log_port) as c:
        assert c.log(2, 1700000000, "after restart") > max(acked)


# Query port -------------------------------------------------------------------------------------

QDATA = [  # (level, ts_ms, message, LOG_MS?)
    (2, 1700000000000, "user alice logged in", False),
    (4, 1700000060000, "database connection failed", False),
    (3, 1700000120500, "disk usage 91 percent", True),
    (5, 1700000180250, "out of memory", True),
    (4, 1700000240000, "payment failed for order 42", False),
    (0, 1700000300001, "entering handler", True),
]


@pytest.fixture(scope="module")
def qserver(module_server):
    s = module_server()
    with BinConn(s.log_port) as c:
        for i, (level, ts, msg, ms) in enumerate(QDATA):
            if ms:
                assert c.log_ms(level, ts, msg, seq=i) == i + 1
            else:
                assert c.log(level, ts // 1000, msg, seq=i) == i + 1
    return s


def test_query_rows(qserver):
    with BinConn(qserver.query_port) as q:
        n, rows = q.query("", seq=0xDEADBEEF)
        assert n == len(QDATA)
        assert rows == [BinRow(i + 1, ts, level, 0, msg.encode())
                        for i, (level, ts, msg, _) in enumerate(QDATA)]
        n, rows = q.query("failed", seq=2)
        assert [(r.id, r.msg) for r in rows] == [(2, b"database connection failed"),
                                                 (5, b"payment failed for order 42")]
        n, rows = q.query("level:>=ERROR", seq=3)
        assert [r.id for r in rows] == [2, 4, 5]
        # limit:N: the newest N matches, oldest first.
        n, rows = q.query("limit:2", seq=4)
        assert n == 2 and [r.id for r in rows] == [5, 6]
        n, rows = q.query("level:ERROR limit:1", seq=5)
        assert n == 1 and [r.id for r in rows] == [5]
        n, rows = q.query("nomatchanywhere", seq=6)
        assert n == 0 and rows == []
        q.ping(7)


def test_query_pipelined_answers_in_order(qserver):
    with BinConn(qserver.query_port) as q:
        q.send(frame(QUERY, b"\x00level:ERROR", 1) + frame(STATS, b"", 2) +
               frame(QUERY, b"\x01", 3) + frame(PING, b"", 4) +
               frame(QUERY, b"\x00limit:1", 5) + frame(PING, b"", 6))
        assert q.expect(QUERY | REPLY, 1) == struct.pack(">Q", 2)
        assert [q.expect(ROW, 1)[18:] for _ in range(2)] == [b"database connection failed",
                                                             b"payment failed for order 42"]
        assert b"entries %d\n" % len(QDATA) in q.expect(STATS | REPLY, 2)
        assert q.expect(QUERY | REPLY, 3) == struct.pack(">Q", len(QDATA))
        assert q.expect(PING | REPLY, 4) == b""
        assert q.expect(QUERY | REPLY, 5) == struct.pack(">Q", 1)
        assert q.expect(ROW, 5)[18:] == b"entering handler"
        assert q.expect(PING | REPLY, 6) == b""


def test_query_count_only(qserver):
    with BinConn(qserver.query_port) as q:
        assert q.query("", seq=1, count_only=True) == (len(QDATA), None)
        assert q.query("level:ERROR", seq=2, count_only=True) == (2, None)
        assert q.query("failed limit:1", seq=3, count_only=True)[0] in (1, 2)
        # Nothing but the count was sent: the next reply is the PONG.
        q.ping(4)


@pytest.mark.parametrize("bad", ["(alice", '"unterminated', "level:BOGUS", "/(/", "limit:abc"])
def test_query_bad_expression_code_8(qserver, bad):
    with BinConn(qserver.query_port) as q:
        q.send(frame(QUERY, b"\x00" + bad.encode(), 11) + frame(PING, b"", 12))
        q.expect_error(11, E_QUERY)
        assert q.expect(PING | REPLY, 12) == b""
        assert q.query("level:FATAL", seq=13)[0] == 1


def test_query_without_flags_byte_is_malformed(qserver):
    with BinConn(qserver.query_port) as q:
        q.send(frame(QUERY, b"", 1) + frame(PING, b"", 2))
        q.expect_error(1, E_MALFORMED)
        assert q.expect(PING | REPLY, 2) == b""


def test_query_stats(qserver):
    with BinConn(qserver.query_port) as q:
        st = q.stats(seq=21)
        assert int(st["entries"]) == len(QDATA), st
        text = qserver.stats()
        assert set(st) == set(text), (set(st) ^ set(text))
        q.ping(22)


def test_log_on_query_port_gets_code_6(qserver):
    with BinConn(qserver.query_port) as q:
        q.send(frame(LOG, log_payload(2, 1700000000, "wrong port"), 1) +
               frame(LOG_MS, log_ms_payload(2, 1700000000000, "wrong port"), 2) +
               frame(PING, b"", 3))
        q.expect_error(1, E_WRONG_PORT)
        q.expect_error(2, E_WRONG_PORT)
        assert q.expect(PING | REPLY, 3) == b""
        assert q.query("wrong", count_only=True) == (0, None)


def test_query_untrusted_header_closes(qserver):
    with BinConn(qserver.query_port) as q:
        q.send(frame(PING, b"", 1) + frame(0x09, b"", 2) + frame(PING, b"", 3))
        assert q.expect(PING | REPLY, 1) == b""
        q.expect_error(2, E_COMMAND)
        q.assert_closed()
    with BinConn(qserver.query_port) as q:
        q.send(frame(PING, b"", 1) + frame(PING, b"", 2, version=3))
        assert q.expect(PING | REPLY, 1) == b""
        q.expect_error(2, E_VERSION)
        q.assert_closed()


def test_query_port_auth(server):
    s = server("--query-token", "Qs3cret")
    for cmd, payload in ((QUERY, b"\x00"), (QUERY, b"\x01"), (STATS, b"")):
        with BinConn(s.query_port) as q:
            q.send(frame(cmd, payload, 4) + frame(PING, b"", 5))
            q.expect_error(4, E_AUTH)
            q.assert_closed()
    with BinConn(s.query_port) as q:
        q.send(frame(AUTH, b"Qs3cre", 1) + frame(QUERY, b"\x01", 2))
        q.expect_error(1, E_AUTH)
        q.assert_closed()
    with BinConn(s.query_port) as q:
        q.ping(1)                         # PING needs no AUTH.
        q.auth("Qs3cret", 2)
        assert q.query("", seq=3) == (0, [])
        assert int(q.stats(4)["entries"]) == 0


def test_long_answer_streams_to_a_slow_reader(server):
    s = server("--out-limit", "65536")
    n = 20000
    with BinConn(s.log_port) as c:
        for start in range(0, n, 5000):
            c.send(b"".join(frame(LOG_MS, log_ms_payload(i % 6, 1700000000000 + i,
                                                         "row %05d of the long answer" % i), i)
                            for i in range(start, start + 5000)))
            for i in range(start, start + 5000):
                c.expect_ack(LOG_MS, i)
    s.wait_count(n)
    with BinConn(s.query_port, timeout=20) as q:
        q.send(frame(QUERY, b"\x00", 33) + frame(PING, b"", 34))
        # Read slowly: small reads with pauses, so the server hits its output limit.
        data = b""
        deadline = time.monotonic() + 30
        expected = 8 + 8 + sum(8 + 18 + len("row %05d of the long answer" % i)
                               for i in range(n)) + 8
        paused = 0
        while len(data) < expected and time.monotonic() < deadline:
            chunk = q.sock.recv(16384)
            assert chunk, "closed after %d of %d bytes" % (len(data), expected)
            data += chunk
            if len(data) // 65536 > paused:     # About 2 s in all: far slower than the server.
                paused = len(data) // 65536
                time.sleep(0.1)
        assert len(data) == expected
        q.buf = data
        assert q.expect(QUERY | REPLY, 33) == struct.pack(">Q", n)
        for i in range(n):
            p = q.expect(ROW, 33)
            rid, ts, level, flags = struct.unpack(">QqBB", p[:18])
            assert (rid, ts, level, flags, p[18:]) == (
                i + 1, 1700000000000 + i, i % 6, 0, b"row %05d of the long answer" % i)
        assert q.expect(PING | REPLY, 34) == b""
        assert q.buf == b""


def test_row_flags_truncated_and_cut(server):
    s = server("--max-line", "70000")
    s.send([b"T" * 70001, b"C" * 69000])    # Cut and flagged; kept whole but over a row frame.
    s.wait_count(2)
    rows = bin_rows(s)
    # Bit 0: stored truncated; bit 1: cut to fit the row frame.
    assert [(r.flags, len(r.msg)) for r in rows] == [(3, 65535 - 18), (2, 65535 - 18)]
    assert rows[0].msg == b"T" * (65535 - 18) and rows[1].msg == b"C" * (65535 - 18)


# Length-prefixed frames ------------------------------------------------------------------------

def test_length_prefixed_plain_and_framed(server):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(lp("first line\nsecond line, same entry") + lp(b"") +
               lp("LOG|ERROR|1640995200|framed | with pipe") + lp(b"") + lp(b"") +
               lp("LOG:1640995300:WARN:colon form") + lp("LOG|BOGUS|1640995200|x") +
               lp("LOG|INFO|abc|x") + lp("plain after errors"))
        assert read_lp(c) == b"OK|2"
        assert read_lp(c) == b"ACK"
        assert read_lp(c) == b"ERROR|unknown level"
        assert read_lp(c) == b"ERROR|invalid timestamp"
    s.wait_count(4)
    rows = s.search("")
    assert [(r.id, r.level, r.msg) for r in rows] == [
        (1, "INFO", "first line\\x0asecond line, same entry"),
        (2, "ERROR", "framed | with pipe"), (3, "WARN", "colon form"),
        (4, "INFO", "plain after errors")]
    assert rows[1].ts == 1640995200 and rows[2].ts == 1640995300


def test_length_prefixed_too_large_closes(server):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(lp("LOG|INFO|1640995200|before") + struct.pack(">I", (1 << 20) + 1) + b"x" * 100)
        assert read_lp(c) == b"OK|1"
        assert read_lp(c) == b"ERROR|frame too large (limit 1048576 bytes)"
        c.assert_closed()
    # Exactly 1 MiB is allowed: a plain payload that long is kept cut at --max-line.
    with BinConn(s.log_port) as c:
        c.send(lp(b"m" * (1 << 20)) + lp("LOG|INFO|1640995200|after a MiB"))
        assert read_lp(c) == b"OK|3"
    rows = bin_rows(s)
    assert [(r.flags, len(r.msg)) for r in rows] == [(0, 6), (3, 65535 - 18), (0, 11)]
    assert [len(r.msg) for r in s.search("")] == [6, 65536, 11]


def test_length_prefixed_split_across_writes(server):
    s = server()
    data = lp("LOG|WARN|1640995200|split across writes") + lp("plain split")
    with BinConn(s.log_port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        assert read_lp(c) == b"OK|1"
    s.wait_count(2)
    assert [(r.level, r.msg) for r in s.search("")] == [("WARN", "split across writes"),
                                                        ("INFO", "plain split")]


def test_length_prefixed_over_max_line(server):
    s = server("--max-line", "100")
    with BinConn(s.log_port) as c:
        c.send(lp(b"p" * 250) + lp("LOG|INFO|1640995200|" + "f" * 200) +
               lp("LOG|INFO|1640995200|fits"))
        assert read_lp(c) == b"ERROR|line too long (limit 100 bytes)"
        assert read_lp(c) == b"OK|2"
    rows = bin_rows(s)
    assert [(r.flags, r.msg) for r in rows] == [(1, b"p" * 100), (0, b"fits")]
    assert int(s.stats()["truncated"]) == 1


# Detection on other listeners ---------------------------------------------------------------------

def test_binary_on_auto_listener_http_and_irc_ports(server):
    s = server("--listen", "127.0.0.1:0=auto")
    autos = [p for r, p in s.listening if r == "auto"]
    assert len(autos) == 1
    for k, port in enumerate([autos[0], s.http_port, s.irc_port]):
        with BinConn(port) as c:
            c.ping(k)
            assert c.log(4, 1700000000 + k, "binary on listener %d" % k, seq=10) == 2 * k + 1
            assert c.log_ms(1, 1700000000000 + k, "ms on listener %d" % k, seq=11) == 2 * k + 2
            # These listeners take binary as the log role.
            c.send(frame(QUERY, b"\x00", 12) + frame(PING, b"", 13))
            c.expect_error(12, E_WRONG_PORT)
            assert c.expect(PING | REPLY, 13) == b""
    rows = bin_rows(s)
    assert [(r.level, r.msg) for r in rows] == [
        (4, b"binary on listener 0"), (1, b"ms on listener 0"),
        (4, b"binary on listener 1"), (1, b"ms on listener 1"),
        (4, b"binary on listener 2"), (1, b"ms on listener 2")]
    # Length-prefixed frames are a log-port form; the auto listener's role is log too.
    with BinConn(autos[0]) as c:
        c.send(lp("LOG|INFO|1700000000|length-prefixed on auto"))
        assert read_lp(c) == b"OK|7"


def test_empty_message_is_refused_like_the_text_forms(server):
    s = server()
    with BinConn(s.log_port) as c:
        c.send(frame(LOG, log_payload(2, 1700000000, ""), 1) +
               frame(LOG_MS, log_ms_payload(2, 1700000000000, ""), 2))
        assert c.expect_error(1, E_MALFORMED) == "empty message"
        assert c.expect_error(2, E_MALFORMED) == "empty message"
        c.ping(3)
    assert s.count("") == 0


# Found in review -------------------------------------------------------------------------------

def test_length_prefixed_auth_answers_in_frames_and_skips_a_long_auth(server):
    s = server("--log-auth", "on", "--log-token", "T0k", "--max-line", "100")
    with BinConn(s.log_port) as c:                     # No AUTH first: a framed refusal.
        c.send(lp("hello"))
        assert read_lp(c) == b"ERROR|authentication required: send AUTH <token> first"
        c.assert_closed()
    with BinConn(s.log_port) as c:
        c.send(lp("AUTH nope"))
        assert read_lp(c) == b"ERROR|authentication failed"
        c.assert_closed()
    with BinConn(s.log_port) as c:
        # An AUTH frame longer than --max-line: its tail must not be read as frames.
        tail = lp("LOG|ERROR|1700000000|INJECTED")
        c.send(lp(b"AUTH T0k" + b" " * 150 + tail) + lp("LOG|INFO|1700000000|real"))
        assert read_lp(c).startswith(b"OK|")
    assert [r.msg for r in s.search("")] == ["real"]


def test_frames_of_max_line_bytes_wait_whole_across_reads(server):
    """With --max-line over the largest binary frame, a length-prefixed or octet-counted
    message of max_line bytes arrives in pieces with pauses: the server waits, never closes."""
    s = server("--max-line", "100000")
    body = "<14>1 - h app - - - " + "y" * (100000 - 20)
    for data in (lp("z" * 100000), b"%d %s" % (len(body), body.encode())):
        with BinConn(s.log_port) as c:
            c.send(data[:100002])
            time.sleep(0.3)
            c.send(data[100002:])
    wait_rows(s, 2)
    assert s.count("zzzz") == 1 and s.count("yyyy") == 1
    assert "cannot frame" not in s.stderr()
