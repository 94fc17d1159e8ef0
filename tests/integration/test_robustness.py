"""Load and abuse: 200 concurrent clients, a client that never reads, over-long lines, binary
garbage, shutdown with data in flight, a large streamed result, idle timeouts and the memory
budget."""
import random
import re
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import HOST, LineConn, run_in_thread


def assert_no_raw_controls(data):
    bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})
    assert not bad, "raw control bytes %r in %r" % (bad, data[:300])


# Concurrency ------------------------------------------------------------------------------

def test_200_concurrent_clients(server):
    s = server()
    nclients, nlines = 200, 50
    barrier = threading.Barrier(nclients, timeout=30)
    results = [None] * nclients

    def client(c):
        conn = LineConn(s.log_port)
        try:
            barrier.wait()
            ids = []
            # Send in two halves so that requests and replies interleave across clients.
            for half in (range(0, nlines // 2), range(nlines // 2, nlines)):
                conn.sendall("".join("LOG|INFO|-|client %03d line %02d\n" % (c, i)
                                     for i in half))
                for _ in half:
                    r = conn.readline()
                    m = re.match(rb"^OK\|(\d+)$", r)
                    assert m, "client %d got %r" % (c, r)
                    ids.append(int(m.group(1)))
            results[c] = ids
        finally:
            conn.close()

    joins = [run_in_thread(client, c) for c in range(nclients)]
    for j in joins:
        j(timeout=120)
    all_ids = []
    for c, ids in enumerate(results):
        assert len(ids) == nlines
        assert all(a < b for a, b in zip(ids, ids[1:])), "client %d ids not increasing" % c
        all_ids += ids
    assert len(set(all_ids)) == nclients * nlines, "duplicate ids"
    s.wait_count(nclients * nlines)
    rows = s.search("client")
    assert len(rows) == nclients * nlines
    assert {r.msg for r in rows} == {"client %03d line %02d" % (c, i)
                                     for c in range(nclients) for i in range(nlines)}
    assert {r.id for r in rows} == set(all_ids)


# A client that never reads its replies ------------------------------------------------------

def test_client_that_never_reads(server):
    s = server()
    rss0 = s.rss()
    silent = socket.create_connection((HOST, s.log_port), timeout=10)
    silent.settimeout(2.0)
    state = {"sent": 0, "blocked": False}
    chunk = b"".join(b"LOG|INFO|-|silent client line %06d\n" % i for i in range(2000))
    limit = 64 << 20

    def flood():
        try:
            while state["sent"] < limit:
                silent.sendall(chunk)
                state["sent"] += len(chunk)
        except socket.timeout:
            state["blocked"] = True   # The server stopped reading us: backpressure works.

    join = run_in_thread(flood)
    try:
        # Meanwhile other clients on both ports are served promptly.
        peak = 0
        for round_ in range(6):
            time.sleep(0.3)
            t0 = time.monotonic()
            with s.connect_query(timeout=2) as q:
                assert q.request("PING") == ["PONG"]
                assert q.request("COUNT level:ERROR") == ["COUNT|%d" % round_]
            with s.connect_log(timeout=2) as c:
                c.sendall(b"LOG|ERROR|-|other client %d\n" % round_)
                assert re.match(rb"^OK\|\d+$", c.readline())
            assert time.monotonic() - t0 < 2.0
            peak = max(peak, s.rss())
        join(timeout=60)
        # Without backpressure the server would read all 64 MB and queue the replies.
        assert state["blocked"], "sent %d bytes without ever blocking" % state["sent"]
        peak = max(peak, s.rss())
        assert peak - rss0 < 300 << 20, "RSS grew by %d MB" % ((peak - rss0) >> 20)
        assert s.count("other client") == 6
    finally:
        silent.close()
    assert s.alive()
    assert s.query("PING") == ["PONG"]


def test_silent_query_client_does_not_block_others(server):
    s = server()
    s.send(["bulk line %d with some padding to make it longer" % i for i in range(20000)])
    s.wait_count(20000)
    silent = socket.create_connection((HOST, s.query_port), timeout=10)
    try:
        # Ask for a large result many times and never read it.
        silent.settimeout(2.0)
        try:
            for _ in range(50):
                silent.sendall(b"SEARCH bulk\n")
        except socket.timeout:
            pass
        time.sleep(0.5)
        t0 = time.monotonic()
        with s.connect_query(timeout=2) as q:
            assert q.request("COUNT bulk") == ["COUNT|20000"]
        assert time.monotonic() - t0 < 2.0
    finally:
        silent.close()
    assert s.query("PING") == ["PONG"]


# Over-long lines --------------------------------------------------------------------------

def test_1mb_plain_line_without_newline_is_truncated(server):
    s = server()
    with s.connect_log() as c:
        big = b"a" * (1 << 20)
        for i in range(0, len(big), 64 << 10):
            c.sendall(big[i:i + (64 << 10)])
        # The truncated entry exists before the newline arrives.
        s.wait_stat("truncated", 1, timeout=20)
        c.sendall(b"\nline after the long one\nLOG|INFO|1640995200|framed after\n")
        assert c.readline() == b"OK|3"
    s.wait_count(3)
    rows = s.search("")
    assert [len(r.msg) for r in rows] == [65536, len("line after the long one"),
                                          len("framed after")]
    assert rows[0].msg == "a" * 65536
    assert rows[1].msg == "line after the long one"
    st = s.stats()
    assert st["truncated"] == "1" and st["entries"] == "3", st


def test_line_exactly_at_limit_is_kept(server):
    s = server("--max-line", "1K")
    with s.connect_log() as c:
        c.sendall(b"x" * 1024 + b"\n" + b"y" * 1025 + b"\n" +
                  b"LOG|INFO|1|" + b"z" * (1024 - 11) + b"\n" +
                  b"LOG|INFO|1|" + b"w" * (1024 - 10) + b"\n")
        assert c.readline() == b"OK|3"
        assert c.readline() == b"ERROR|line too long (limit 1024 bytes)"
    rows = s.search("")
    assert [(r.msg[0], len(r.msg)) for r in rows] == [("x", 1024), ("y", 1024), ("z", 1013)]
    assert s.stats()["truncated"] == "1"


def test_framed_too_long_lines_are_refused(server):
    s = server()
    with s.connect_log() as c:
        body = b"b" * (1 << 20)
        join = run_in_thread(c.sock.sendall, b"LOG|INFO|1640995200|" + body + b"\n" +
                             b"LOG:1640995200:INFO:" + body + b"\n" +
                             b"LOG|INFO|1640995200|short one\n")
        assert c.readline() == b"ERROR|line too long (limit 65536 bytes)"
        assert c.readline() == b"ERROR:line too long (limit 65536 bytes)"
        assert c.readline() == b"OK|1"
        join()
    assert [r.msg for r in s.search("")] == ["short one"]


def test_1mb_line_stored_whole_with_larger_limit(server):
    s = server("--max-line", "2M")
    body = "".join(chr(ord("a") + i % 26) for i in range(1 << 20))
    with s.connect_log() as c:
        c.sendall(body.encode() + b"\n")
        c.sendall(b"LOG|INFO|1640995200|" + body.encode() + b"\n")
        assert c.readline() == b"OK|2"
    rows = s.search("abcdefghij")
    assert len(rows) == 2
    assert rows[0].msg == body and rows[1].msg == body
    assert s.stats()["truncated"] == "0"


# Binary garbage -------------------------------------------------------------------------------

def test_binary_garbage_on_ingest_port(server):
    s = server()
    rnd = random.Random(1234)
    garbage = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    with s.connect_log() as c:
        join = run_in_thread(c.sock.sendall, garbage)
        join()
        c.sock.shutdown(socket.SHUT_WR)
        # Whatever comes back (random bytes may form a framed line now and then) ends in a close.
        rest = c.read_until_closed()
        for line in rest.split(b"\n")[:-1]:
            assert re.match(rb"^(OK\|\d+|ACK|ERROR[:|].*)$", line), line
    with s.connect_query() as q:
        assert q.request("PING") == ["PONG"]
    # Plain lines are not acknowledged: a framed line taken after them is, and ids become
    # durable in order, so once it is, every line before it can be counted.
    with s.connect_log() as c:
        c.sendall(b"LOG|INFO|1640995200|after the garbage\n")
        assert c.readline().startswith(b"OK|")
    n = s.count() - 1
    assert n > 1000, "most random lines should be stored, got %d" % n
    # Escaped random lines average about 1 KB: stay well under the default 1 MB out-limit.
    raw = b"".join(l + b"\n" for l in s.query_raw("SEARCH limit:400"))
    assert raw.startswith(b"RESULT|400\n")
    assert_no_raw_controls(raw)
    raw.decode("utf-8")
    assert b"\\x00" in raw  # NUL bytes are stored escaped.


def test_binary_garbage_on_query_port(server):
    s = server()
    s.send(["some entry"])
    rnd = random.Random(99)
    garbage = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    with s.connect_query() as c:
        got = bytearray()
        join = run_in_thread(c.sock.sendall, garbage)

        def reader():
            try:
                while True:
                    b = c.sock.recv(1 << 16)
                    if not b:
                        return
                    got.extend(b)
            except (socket.timeout, ConnectionResetError):
                return

        c.settimeout(3)
        rj = run_in_thread(reader)
        try:
            join()
        except (BrokenPipeError, ConnectionResetError):
            pass  # The server may hang up on garbage; that is fine.
        rj(timeout=30)
        # Every answer line is a clean protocol line: no raw control byte is echoed back.
        assert_no_raw_controls(bytes(got))
    assert s.alive()
    with s.connect_query() as q:
        assert q.request("PING") == ["PONG"]
        assert q.request("COUNT") == ["COUNT|1"]


# Shutdown -----------------------------------------------------------------------------------

def test_sigterm_with_data_in_flight(server):
    s = server()
    stop = threading.Event()
    outcomes = []

    def client(c):
        conn = socket.create_connection((HOST, s.log_port), timeout=10)
        conn.settimeout(10)
        sent = 0
        buf = b""
        replies = []
        try:
            while True:
                conn.sendall(b"".join(b"LOG|INFO|-|client %d line %d\n" % (c, sent + i)
                                      for i in range(200)))
                sent += 200
                while len(replies) < sent:
                    b = conn.recv(65536)
                    if not b:
                        raise ConnectionResetError("closed")
                    buf += b
                    *lines, buf = buf.split(b"\n")
                    replies += lines
                if stop.is_set():
                    break
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            pass  # The server closed the connection while shutting down.
        finally:
            conn.close()
        outcomes.append((c, sent, replies, buf))

    joins = [run_in_thread(client, c) for c in range(4)]
    time.sleep(0.8)  # Let the clients get going.
    assert s.count() > 0
    t0 = time.monotonic()
    rc = s.stop(signal.SIGTERM, timeout=15)
    elapsed = time.monotonic() - t0
    stop.set()
    for j in joins:
        j(timeout=30)
    assert rc == 0, "exit code %s after SIGTERM: %s" % (rc, s.stderr()[-3000:])
    assert elapsed < 8, "shutdown took %.1f s" % elapsed
    total = 0
    for c, sent, replies, tail in outcomes:
        assert len(replies) <= sent
        ids = []
        for r in replies:
            m = re.match(rb"^OK\|(\d+)$", r)
            assert m, "client %d got garbage %r" % (c, r)
            ids.append(int(m.group(1)))
        assert all(a < b for a, b in zip(ids, ids[1:]))
        assert tail == b"" or re.match(rb"^(O|OK|OK\|\d*)$", tail), tail
        total += len(ids)
    assert total > 0


def test_sigint_exits_zero(server):
    s = server()
    s.send(["before sigint"])
    s.wait_count(1)
    with s.connect_query() as q:  # An open idle connection must not hold up the exit.
        assert q.request("PING") == ["PONG"]
        rc = s.stop(signal.SIGINT, timeout=10)
    assert rc == 0, s.stderr()[-3000:]


def test_sigterm_closes_listeners(server):
    s = server()
    port = s.query_port
    assert s.stop(signal.SIGTERM, timeout=10) == 0
    try:
        socket.create_connection((HOST, port), timeout=2).close()
        connected = True
    except OSError:
        connected = False
    assert not connected


# A large result streams with bounded memory ----------------------------------------------------

def test_300k_row_result_streams(server):
    s = server()
    n = 300000
    data = b"".join(b"row %d\n" % i for i in range(n))
    with s.connect_log() as c:
        c.sendall(data)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed() == b""
    s.wait_count(n, timeout=90)
    rss0 = s.rss()
    peak = rss0
    with s.connect_query(timeout=10) as q:
        q.sendall(b"SEARCH row\n")
        time.sleep(1.0)   # A slow reader at first: the server must wait, not buffer it all.
        peak = max(peak, s.rss())
        first = q.readline()
        assert first == b"RESULT|%d" % n
        got = 0
        last_id = 0
        while got < n:
            line = q.readline()
            i, level, ts, msg = line.split(b"|", 3)
            assert int(i) > last_id and msg == b"row %d" % (int(i) - 1)
            last_id = int(i)
            got += 1
            if got % 20000 == 0:
                peak = max(peak, s.rss())
        assert q.readline() == b"END"
        assert q.request("PING") == ["PONG"]
    peak = max(peak, s.rss())
    assert peak - rss0 < 100 << 20, "RSS grew by %d MB while streaming" % ((peak - rss0) >> 20)
    # limit: is honoured on a large store: the newest N, oldest first.
    rows = s.search("row limit:3")
    assert [r.msg for r in rows] == ["row %d" % i for i in range(n - 3, n)]


# Idle timeout ---------------------------------------------------------------------------------

def test_idle_timeout_closes_idle_connections(server):
    s = server("--idle-timeout", "1")
    t0 = time.monotonic()
    idle_log = socket.create_connection((HOST, s.log_port), timeout=5)
    idle_query = socket.create_connection((HOST, s.query_port), timeout=5)
    busy = s.connect_query(timeout=5)
    try:
        idle_log.settimeout(5)
        idle_query.settimeout(5)
        # A connection that keeps talking is not closed.
        for _ in range(6):
            time.sleep(0.4)
            assert busy.request("PING") == ["PONG"]
        assert idle_log.recv(100) == b""
        assert idle_query.recv(100) == b""
        assert time.monotonic() - t0 < 4.0
        assert busy.request("PING") == ["PONG"]
        st = busy.request("STATS")
        n = dict(l.split(" ", 1) for l in st[:-1])
        assert int(n["connections_timed_out"]) >= 2, n
    finally:
        idle_log.close()
        idle_query.close()
        busy.close()


# Memory budget and retention ----------------------------------------------------------------

def test_small_cache_keeps_everything_queryable(server):
    """--memory-limit bounds the block cache only: older data is read back from disk."""
    s = server("--memory-limit", "4M", "--compression-level", "0")
    n = 60000
    pad = "p" * 89
    lines = ["mem %06d %s" % (i, pad) for i in range(n)]
    s.send(lines)
    s.wait_stat("entries", n, timeout=60)
    st = {k: int(v) for k, v in s.stats().items() if v.lstrip("-").isdigit()}
    assert st["evicted"] == 0 and st["entries"] == st["appended"] == n, st
    assert st["memory_store_bytes"] <= 6 << 20, st  # the budget plus the newest block
    oldest = s.search('"mem 000000 "')
    assert len(oldest) == 1 and oldest[0].id == 1
    assert s.count("mem") == n
    kept = s.search("mem limit:5")
    assert [r.id for r in kept] == list(range(n - 4, n + 1))


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_counts_past_a_small_cache_match_brute_force(server, codec):
    """A count that reads blocks past the cache matches messages where they are stored (no
    rows made); it must give what matching each line in full gives, here in Python: words,
    phrases, regexes, key=value pairs, comparisons, AND/OR/NOT, and the forms that need more
    than the message (levels), which take the other way."""
    s = server("--memory-limit", "4M", "--codec", codec)
    rng = random.Random(7)
    words = ["retry", "timeout", "refused", "ok", "cache", "Retry", "TIMEOUT"]
    lines = []
    for i in range(80000):
        w = rng.sample(words, 2)
        lines.append("%s %s svc=%s latency_ms=%d rid=%06x %s%s" % (
            rng.choice(["INFO", "WARN", "ERROR"]), w[0], rng.choice(["api", "db", "web"]),
            rng.randrange(2000), i, w[1],
            # A field in a few lines only: blocks without "rare_ms=" are skipped unread.
            " rare_ms=%d" % rng.randrange(300) if i % 5000 == 17 else ""))
    s.send(lines)
    s.wait_stat("entries", len(lines), timeout=60)
    low = [l.lower() for l in lines]

    def num(l, k):
        m = re.search(r"(?:^| )%s=(\d+)" % k, l)
        return int(m.group(1)) if m else None
    cases = {
        "retry": sum("retry" in l for l in low),
        "retry timeout": sum("retry" in l and "timeout" in l for l in low),
        "retry OR refused": sum("retry" in l or "refused" in l for l in low),
        "cache -ok": sum("cache" in l and "ok" not in l for l in low),
        '"retry timeout"': sum("retry timeout" in l for l in low),
        "/latency_ms=19[0-9][0-9]/": sum(bool(re.search(r"latency_ms=19[0-9][0-9]", l))
                                         for l in lines),
        "/rid=0000[0-9a-f]{2} /": sum(bool(re.search(r"rid=0000[0-9a-f]{2} ", l)) for l in lines),
        "svc:db": sum(" svc=db " in l for l in lines),
        "svc:db latency_ms:>1900": sum(" svc=db " in l and num(l, "latency_ms") > 1900
                                       for l in lines),
        "latency_ms:[100,110]": sum(100 <= num(l, "latency_ms") <= 110 for l in lines),
        "rare_ms:>100": sum((num(l, "rare_ms") or 0) > 100 for l in lines),
        "rare_ms:<=100 OR svc:web": sum(" svc=web " in l or (num(l, "rare_ms") is not None and
                                                           num(l, "rare_ms") <= 100)
                                        for l in lines),
        "-rare_ms:>100": sum(not (num(l, "rare_ms") or 0) > 100 for l in lines),
        "level:ERROR retry": sum(l.startswith("ERROR") and "retry" in l.lower() for l in lines),
        "xyzzy": 0,
    }
    for q, want in cases.items():
        assert s.count(q) == want, q
    st = s.stats()
    assert int(st["memory_store_bytes"]) <= 6 << 20, st   # Read past the cache, not into it.


def test_retention_size_deletes_oldest_segments(server):
    s = server("--segment-size", "1M", "--retention-size", "3M", "--compression-level", "0")
    n = 60000
    pad = "p" * 89
    lines = ["ret %06d %s" % (i, pad) for i in range(n)]
    s.send(lines)
    s.wait_stat("appended", n, timeout=60)
    # Retention runs on the writer's clock (a few times a second).
    deadline = time.time() + 10
    while True:
        st = {k: int(v) for k, v in s.stats().items() if v.lstrip("-").isdigit()}
        if (st["evicted"] > 0 and st["disk_bytes"] <= (3 << 20) + (1 << 20) and
                st["entries"] + st["evicted"] == st["appended"]):
            break
        assert time.time() < deadline, st
        time.sleep(0.2)
    assert st["entries"] + st["evicted"] == st["appended"] == n, st
    assert st["entries"] == s.count()
    assert st["first_id"] == st["evicted"] + 1 and st["last_id"] == n, st
    assert st["segments_deleted"] > 0, st
    assert s.search('"ret 000000 "') == []
    newest = s.search('"ret %06d "' % (n - 1))
    assert len(newest) == 1 and newest[0].id == n


# Connection limits and abrupt clients -----------------------------------------------------------

def test_max_connections(server):
    s = server("--max-connections", "4")
    conns = [socket.create_connection((HOST, s.query_port), timeout=5) for _ in range(6)]
    try:
        answers = []
        for c in conns:
            c.settimeout(3)
            try:
                c.sendall(b"PING\n")
                answers.append(c.recv(100))
            except (ConnectionResetError, BrokenPipeError):
                answers.append(b"")
        # Two reactor threads accept concurrently, so which two are refused is not fixed.
        assert sorted(answers) == [b""] * 2 + [b"PONG\n"] * 4, answers
    finally:
        for c in conns:
            c.close()
    time.sleep(0.3)
    # Freed slots are usable again; the refusals are counted.
    assert s.query("PING") == ["PONG"]
    st = s.stats()
    assert int(st["connections_refused"]) == 2, st


def test_overlong_query_command(server):
    s = server()
    with s.connect_query() as q:
        join = run_in_thread(q.sock.sendall, b"SEARCH " + b"a" * (1 << 20) + b"\nPING\n")
        first = q.readline()
        assert first.startswith(b"ERROR"), first[:200]
        assert q.readline() == b"PONG"
        join()
        assert q.request("COUNT") == ["COUNT|0"]


def test_clients_resetting_mid_reply(server):
    s = server()
    s.send(["entry number %d with a bit of text" % i for i in range(5000)])
    s.wait_count(5000)
    for _ in range(20):
        c = socket.create_connection((HOST, s.query_port), timeout=5)
        c.sendall(b"SEARCH entry\nSEARCH entry\n")
        # Close with RST while the answer is being written.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    for _ in range(20):
        c = socket.create_connection((HOST, s.log_port), timeout=5)
        c.sendall(b"".join(b"LOG|INFO|-|reset client %d\n" % i for i in range(2000)))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    assert s.alive()
    assert s.query("PING") == ["PONG"]
    time.sleep(0.5)
    assert int(s.stats()["connections"]) == 1  # Only our own query connection is left.


def test_query_half_close_answers_everything(server):
    s = server()
    s.send(["half close row %d" % i for i in range(3000)])
    s.wait_count(3000)
    with s.connect_query() as q:
        q.sendall(b"PING\nCOUNT\nSEARCH half\n")
        q.sock.shutdown(socket.SHUT_WR)
        data = q.read_until_closed()
    lines = data.split(b"\n")
    assert lines[:3] == [b"PONG", b"COUNT|3000", b"RESULT|3000"]
    assert len(lines) == 3 + 3000 + 2 and lines[-2:] == [b"END", b""]


def test_plain_lines_visible_while_connection_stays_open(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"live line one\n")
        s.wait_count(1, timeout=5)
        c.sendall(b"live line two\n")
        s.wait_count(2, timeout=5)


def test_mixed_forms_on_one_connection_keep_order(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"LOG|INFO|1|framed a\nplain b\nLOG:1:WARN:colon c\nLOG|BOGUS|1|x\n"
                  b"plain d\nLOG|INFO|1|framed e\n")
        assert c.readlines(4) == [b"OK|1", b"ACK", b"ERROR|unknown level", b"OK|5"]
    assert [(r.id, r.msg) for r in s.search("")] == [
        (1, "framed a"), (2, "plain b"), (3, "colon c"), (4, "plain d"), (5, "framed e")]


def flood_until_blocked(port, seconds=20):
    """Connect, send framed lines without reading until a send blocks for 1 s (or the server,
    timing the stuck connection out, resets it)."""
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.settimeout(1.0)
    chunk = b"".join(b"LOG|INFO|-|silent line %06d\n" % i for i in range(2000))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            return sock
    sock.close()
    raise AssertionError("sends never blocked: no backpressure")


def test_sigterm_with_a_client_that_never_reads(server):
    s = server("--shutdown-timeout", "2")
    silent = flood_until_blocked(s.log_port)
    try:
        t0 = time.monotonic()
        rc = s.stop(signal.SIGTERM, timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert rc == 0, s.stderr()[-3000:]
    assert elapsed < 6, "shutdown took %.1f s with --shutdown-timeout 2" % elapsed


def test_idle_timeout_closes_a_blocked_silent_client(server):
    s = server("--idle-timeout", "1")
    silent = flood_until_blocked(s.log_port)
    try:
        # Neither reading nor writing: the server cannot make progress with it.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            time.sleep(0.25)
            st = s.stats()
            if int(st["connections_timed_out"]) >= 1:
                break
        assert int(st["connections_timed_out"]) == 1, st
        assert int(st["connections"]) == 1, st   # Only the STATS connection is left.
    finally:
        silent.close()
    assert s.query("PING") == ["PONG"]


def test_slowloris_line_is_closed_after_line_timeout(server):
    """A line that never ends (one byte now and then, so the idle timeout never fires) is
    closed after --line-timeout on every line protocol, with one explicit last line; complete
    lines sent before it are kept, and a normal client is not affected."""
    s = server("--line-timeout", "2")
    ports = {"log": s.log_port, "query": s.query_port, "irc": s.irc_port}
    conns = {}
    for name, port in ports.items():
        c = socket.create_connection((HOST, port), timeout=10)
        if name == "log":
            c.sendall(b"INFO complete line before the slow one\n")
        c.sendall(b"x")
        conns[name] = c
    steady = LineConn(s.query_port)
    t0 = time.monotonic()
    closed = {}
    while len(closed) < len(conns) and time.monotonic() - t0 < 8:
        for name, c in conns.items():
            if name in closed:
                continue
            try:
                c.sendall(b"y")           # keeps it busy but never finishes the line
                c.settimeout(0.05)
                data = c.recv(4096)
                if not data or b"ERROR" in data:
                    closed[name] = (time.monotonic() - t0, data)
            except socket.timeout:
                pass
            except OSError:
                closed[name] = (time.monotonic() - t0, b"")
        steady.sendall(b"PING\n")
        assert steady.readline() == b"PONG"
        time.sleep(0.3)
    assert set(closed) == set(conns), closed
    for name, (after, data) in closed.items():
        assert 1.5 <= after <= 6, (name, after)
    assert b"ERROR|line not completed within 2 s" in closed["log"][1]
    assert b"(Line timeout)" in closed["irc"][1]
    assert s.count("complete line before the slow one") == 1
    assert "a line not completed within 2 s" in s.stderr()
    steady.close()
