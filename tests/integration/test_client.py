"""The logcaster command-line client against a real server."""
import re
import subprocess
import time

import pytest

from conftest import LOGCASTER, assert_clean_stderr, closed_port, server_env


def lc(*args, stdin=b"", timeout=30):
    r = subprocess.run([LOGCASTER] + [str(a) for a in args], input=stdin, capture_output=True,
                       timeout=timeout, env=server_env())
    assert_clean_stderr(r.stderr.decode("utf-8", "replace"), "logcaster %s" % (args,))
    return r


def test_client_help():
    r = lc("--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for word in ("send", "query", "count", "stats", "--host", "--log-port", "--query-port"):
        assert word in out, word


def test_send_file(server, tmp_path):
    s = server()
    f = tmp_path / "app.log"
    f.write_bytes(b"service started\n"
                  b"ERROR payment failed | order 7\n"
                  b"\n"
                  b"Warning: slow request\n"
                  b"bad byte \x01 here\n")
    r = lc("--log-port", s.log_port, "send", f)
    assert r.returncode == 0, r.stderr
    assert "sent 4 lines, acknowledged 4, refused 0" in r.stderr.decode()
    rows = s.search("")
    assert [(r_.level, r_.msg) for r_ in rows] == [
        ("INFO", "service started"), ("ERROR", "ERROR payment failed | order 7"),
        ("WARN", "Warning: slow request"), ("INFO", "bad byte \\x01 here")]


def test_send_stdin_level_and_plain(server):
    s = server()
    r = lc("--log-port", s.log_port, "send", "--level", "ERROR", stdin=b"from stdin one\nfrom stdin two\n")
    assert r.returncode == 0, r.stderr
    r = lc("--log-port", s.log_port, "send", "--plain", stdin=b"plain one\nplain two without newline")
    assert r.returncode == 0, r.stderr
    s.wait_count(4)
    rows = s.search("")
    assert [(r_.level, r_.msg) for r_ in rows] == [
        ("ERROR", "from stdin one"), ("ERROR", "from stdin two"),
        ("INFO", "plain one"), ("INFO", "plain two without newline")]


def test_send_many_lines(server, tmp_path):
    s = server()
    f = tmp_path / "many.log"
    n = 20000
    f.write_text("".join("bulk line %d\n" % i for i in range(n)))
    r = lc("--log-port", s.log_port, "send", f)
    assert r.returncode == 0, r.stderr
    assert "acknowledged %d" % n in r.stderr.decode()
    assert s.count() == n


def test_send_refused_line_exits_1(server, tmp_path):
    s = server("--max-line", "64")
    f = tmp_path / "long.log"
    f.write_text("short\n" + "x" * 200 + "\nshort again\n")
    r = lc("--log-port", s.log_port, "send", f)
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert "line too long" in err and "long.log" in err and "2" in err, err
    assert [r_.msg for r_ in s.search("")] == ["short", "short again"]


def test_query_count_stats(server):
    s = server()
    s.send_framed(["LOG|ERROR|1640995200|Database connection failed",
                   "LOG|INFO|1640995250|Server started",
                   "LOG|ERROR|1640995300|File not found"])
    r = lc("--query-port", s.query_port, "query", "level:ERROR")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"1|ERROR|1640995200|Database connection failed\n"
                        b"3|ERROR|1640995300|File not found\n")
    r = lc("--query-port", s.query_port, "query", "--raw", "started")
    assert r.stdout == b"RESULT|1\n2|INFO|1640995250|Server started\nEND\n"
    r = lc("--query-port", s.query_port, "count")
    assert r.returncode == 0 and r.stdout == b"3\n", r
    r = lc("--query-port", s.query_port, "count", "level:ERROR")
    assert r.returncode == 0 and r.stdout == b"2\n", r
    r = lc("count", "--query-port", s.query_port, "--raw", "level:ERROR")
    assert r.stdout == b"COUNT|2\n", r
    r = lc("--query-port", s.query_port, "stats")
    assert r.returncode == 0, r.stderr
    st = dict(l.split(" ", 1) for l in r.stdout.decode().splitlines())
    assert st["entries"] == "3" and st["level.ERROR"] == "2", st


def test_query_error_exits_1(server):
    s = server()
    r = lc("--query-port", s.query_port, "query", "(unbalanced")
    assert r.returncode == 1, r
    assert r.stdout == b""
    assert r.stderr.decode().startswith("ERROR"), r.stderr


@pytest.mark.parametrize("cmd", [["query", "level:ERROR"], ["count"], ["stats"], ["ping"]])
def test_server_down_query_commands(cmd):
    port = closed_port()
    r = lc("--query-port", port, "--timeout", "2", *cmd, timeout=20)
    assert r.returncode != 0
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0], lines
    assert str(port) in lines[0]


def test_server_down_send(tmp_path):
    port = closed_port()
    f = tmp_path / "x.log"
    f.write_text("one line\n")
    r = lc("--log-port", port, "--timeout", "2", "send", "--retry-for", "0", f, timeout=20)
    assert r.returncode != 0
    lines = r.stderr.decode().splitlines()
    assert sum("cannot connect" in l for l in lines) == 1, lines
    assert re.search(r"cannot connect.*%d" % port, r.stderr.decode())


def test_send_waits_for_a_server_that_starts_later(server, tmp_path):
    port = closed_port()
    f = tmp_path / "late.log"
    f.write_text("".join("late line %d\n" % i for i in range(100)))
    proc = subprocess.Popen([LOGCASTER, "--log-port", str(port), "--timeout", "2", "send",
                             "--retry-for", "20", str(f)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env())
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "send gave up at once: %r" % (proc.communicate(),)
        s = server("--log-port", port)   # The later --log-port wins over the fixture's 0.
        assert s.log_port == port
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert_clean_stderr(err.decode("utf-8", "replace"), "logcaster send")
    assert "acknowledged 100" in err.decode()
    assert s.count("late") == 100


@pytest.mark.parametrize("fmt", ["framed", "binary"])
def test_bench_ack_latency(server, fmt):
    """bench --ack-latency paces the lines, acknowledged or not, and reports the
    send-to-acknowledgement times of every line, all of them stored."""
    s = server()
    t0 = time.monotonic()
    r = lc("--log-port", s.log_port, "--query-port", s.query_port, "bench", "--format", fmt,
           "--ack-latency", "500", "--connections", "2", "--lines", "300")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert re.search(r"^ingest: mode=%s connections=2 lines=300 .* verified=yes$" % fmt, out,
                     re.M), out
    m = re.search(r"^ack latency: lines=300 p50=([0-9.]+)ms p99=([0-9.]+)ms max=([0-9.]+)ms$",
                  out, re.M)
    assert m, out
    p50, p99, mx = (float(x) for x in m.groups())
    assert 0 < p50 <= p99 <= mx, out
    # 300 lines at 500 lines/s take about 0.6 s: the pace holds (a burst would take ~0).
    assert took >= 0.5, took
    assert s.count() == 300


def test_bench_ack_latency_needs_replies():
    r = lc("bench", "--format", "plain", "--ack-latency", "100")
    assert r.returncode == 64, r
    assert "--ack-latency" in r.stderr.decode()
