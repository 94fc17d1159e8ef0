"""The query pool: queries run off the reactors, with cancellation, a timeout, a concurrency
limit and counters (README "Queries run on their own threads").

A deliberately slow query is a regular expression that backtracks on every line: /(a|aa)+b/
against a run of a's followed by "c b" explores every split of the run until PCRE2's match
limit stops it (no match), a quarter of a millisecond or more per line on this machine, so a
few thousand such lines make a scan that lasts about a second, and 20,000 several seconds."""
import re
import socket
import struct
import threading
import time

import pytest

from conftest import SourceConn, run_in_thread

SLOW = "/(a|aa)+b/"
A_RUN = "a" * 25


def slow_lines(tag, n):
    return ["INFO %s %d %s c b" % (tag, i, A_RUN) for i in range(n)]


def open_query(srv):
    s = socket.create_connection(("127.0.0.1", srv.query_port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_line(s, buf):
    while b"\n" not in buf[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed")
        buf[0] += chunk
    line, _, rest = buf[0].partition(b"\n")
    buf[0] = rest
    return line.decode()


def wait_stat(srv, key, pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = int(srv.stats().get(key, -1))
        if pred(v):
            return v
        time.sleep(0.05)
    pytest.fail("STATS %s never satisfied the condition (last %s)" % (key, srv.stats().get(key)))


def test_a_query_past_its_timeout_ends_with_an_error_naming_the_limit(server):
    srv = server("--query-timeout", "300ms")
    srv.send(slow_lines("tmo", 3000))
    srv.wait_count(3000)
    t0 = time.monotonic()
    lines = srv.query("COUNT " + SLOW)
    took = time.monotonic() - t0
    assert lines == ["ERROR|query timed out after 300 ms (--query-timeout)"], lines
    assert took < 20, took  # Stopped inside the scan, not after it.
    srv.wait_stat("queries_timed_out", 1)
    # SEARCH too, and the connection goes on serving.
    lines = srv.query("SEARCH " + SLOW)
    assert lines[-1] == "ERROR|query timed out after 300 ms (--query-timeout)", lines
    assert srv.count("tmo") == 3000
    # HTTP answers 504 with the same sentence.
    import urllib.request, urllib.error, urllib.parse
    url = "http://127.0.0.1:%d/api/v1/query?q=%s" % (srv.http_port, urllib.parse.quote(SLOW))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=30)
    assert e.value.code == 504
    assert "--query-timeout" in e.value.read().decode()


def close_hard(s):
    """Close with a reset, as a killed client's kernel does (a plain close() is a half-close
    to the server until it writes: the answer still goes out, and is refused then)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_a_client_that_goes_away_cancels_its_query(server):
    srv = server()
    srv.send(slow_lines("cxl", 20000))  # About 20 s of scanning: far longer than the test.
    srv.wait_count(20000)
    before = int(srv.stats()["queries_cancelled"])
    s = open_query(srv)
    s.sendall(("COUNT %s\n" % SLOW).encode())
    wait_stat(srv, "queries_running", lambda v: v >= 1)
    close_hard(s)
    wait_stat(srv, "queries_cancelled", lambda v: v == before + 1, timeout=10)
    wait_stat(srv, "queries_running", lambda v: v == 0, timeout=10)
    assert srv.count("cxl") == 20000


def test_queries_beyond_the_concurrency_limit_wait_their_turn(server):
    srv = server("--query-concurrency", "1", "--query-threads", "1")
    srv.send(slow_lines("conc", 20000))
    srv.wait_count(20000)
    slow = open_query(srv)
    slow.sendall(("COUNT %s\n" % SLOW).encode())
    wait_stat(srv, "queries_running", lambda v: v == 1)
    quick = open_query(srv)
    quick.sendall(b"COUNT conc\n")
    wait_stat(srv, "queries_queued", lambda v: v == 1)
    quick.settimeout(0.5)
    with pytest.raises(socket.timeout):  # It waits while the slow one holds the only slot.
        quick.recv(100)
    close_hard(slow)  # Cancelling the slow one lets the queued one run.
    quick.settimeout(30)
    buf = [b""]
    assert read_line(quick, buf) == "COUNT|20000"
    quick.close()
    wait_stat(srv, "queries_queued", lambda v: v == 0)
    metrics = __import__("urllib.request").request.urlopen(
        "http://127.0.0.1:%d/metrics" % srv.http_port, timeout=30).read().decode()
    assert re.search(r'^logcaster_queries_total\{result="cancelled"\} [1-9]', metrics, re.M)
    assert re.search(r'^logcaster_queries\{state="queued"\} 0$', metrics, re.M)


def test_framed_lines_are_acknowledged_while_heavy_scans_run(server):
    """The stall test: scans run on the pool, so the reactors keep acknowledging."""
    srv = server()
    srv.send(["INFO base %d latency_ms=%d" % (i, i % 2000) for i in range(100000)])
    srv.wait_count(100000)
    want = srv.count("/latency_ms=19[0-9][0-9]/")
    assert want == 100000 // 20
    stop = threading.Event()
    answers = []

    def scanner():
        s = open_query(srv)
        buf = [b""]
        while not stop.is_set():
            s.sendall(b"COUNT /latency_ms=19[0-9][0-9]/\n")
            answers.append(read_line(s, buf))
        s.close()

    joins = [run_in_thread(scanner) for _ in range(2)]
    try:
        time.sleep(0.2)
        with SourceConn(srv.log_port, timeout=60) as c:
            ids = []
            for k in range(20):
                ids += c.framed(["acked %d %d" % (k, i) for i in range(100)])
    finally:
        stop.set()
        for j in joins:
            j(60)
    assert len(ids) == 2000 and len(set(ids)) == 2000
    assert answers and all(a == "COUNT|%d" % want for a in answers), answers[:5]
    assert srv.count("acked") == 2000


def test_irc_and_http_queries_run_on_the_pool_too(server):
    """A query from every front end shows in the pool's counters."""
    srv = server()
    srv.send(["ERROR pooled %d" % i for i in range(50)])
    srv.wait_count(50)
    before = int(srv.stats()["queries_finished"])
    import urllib.request
    body = urllib.request.urlopen(
        "http://127.0.0.1:%d/api/v1/query?q=pooled&limit=5" % srv.http_port, timeout=30).read()
    assert b'"more":true' in body
    urllib.request.urlopen("http://127.0.0.1:%d/api/v1/histogram?q=pooled" % srv.http_port,
                           timeout=30).read()
    assert srv.count("pooled") == 50
    wait_stat(srv, "queries_finished", lambda v: v >= before + 3)
