"""Ingest port: every line form, every error reply, level detection, escaping, stream framing
and pipelining."""
import re
import socket
import time

from conftest import run_in_thread


def test_colon_form_acks_and_errors(server):
    s = server()
    replies = s.send_framed([
        "LOG:1640995200:INFO:Server started",
        "LOG:abc:INFO:x",
        "LOG:12abc:INFO:x",
        "LOG:99999999999999999999999:INFO:x",
        "LOG:1640995200:BOGUS:x",
        "LOG:1640995200:INFO:",
        "LOG:1640995201:WARN:a:b:c",
    ])
    assert replies == [
        "ACK",
        "ERROR:invalid timestamp",
        "ERROR:invalid timestamp",
        "ERROR:invalid timestamp",
        "ERROR:unknown level",
        "ERROR:empty message",
        "ACK",
    ]
    # Only the accepted lines are stored; a ':' in the message is kept.
    rows = s.search("")
    assert [(r.level, r.ts, r.msg) for r in rows] == [
        ("INFO", 1640995200, "Server started"),
        ("WARN", 1640995201, "a:b:c"),
    ]


def test_colon_form_malformed_gets_error(server):
    s = server()
    lines = ["LOG:", "LOG:1", "LOG:1640995200:INFO"]
    replies = s.send_framed(lines)
    for line, r in zip(lines, replies):
        assert r.startswith("ERROR:"), (line, r)
    assert s.count() == 0


def test_pipe_form_ok_ids_and_errors(server):
    s = server()
    replies = s.send_framed([
        "LOG|ERROR|1640995200|first",
        "LOG|BOGUS|1640995200|x",
        "LOG|INFO|abc|x",
        "LOG|INFO|1640995200|",
        "LOG|INFO|1640995201|second",
    ])
    assert replies[1:4] == ["ERROR|unknown level", "ERROR|invalid timestamp",
                            "ERROR|empty message"]
    m1 = re.match(r"^OK\|(\d+)$", replies[0])
    m2 = re.match(r"^OK\|(\d+)$", replies[4])
    assert m1 and m2, replies
    id1, id2 = int(m1.group(1)), int(m2.group(1))
    assert id1 == 1 and id2 == 2, "ids start at 1 and refused lines take none: %r" % replies
    rows = s.search("")
    assert [(r.id, r.level, r.ts, r.msg) for r in rows] == [
        (1, "ERROR", 1640995200, "first"), (2, "INFO", 1640995201, "second")]


def test_pipe_form_malformed_gets_error(server):
    s = server()
    lines = ["LOG|", "LOG|INFO", "LOG|INFO|5"]
    replies = s.send_framed(lines)
    for line, r in zip(lines, replies):
        assert r.startswith("ERROR|"), (line, r)
    assert s.count() == 0


def test_pipe_form_defaults_and_pipes_in_message(server):
    s = server()
    t0 = int(time.time())
    replies = s.send_framed([
        "LOG|-|-|a|b|c disk ERROR here",       # level detected, receive time
        "LOG|||plain hello",                   # empty level and ts: same
        "LOG|WARN||x|y",                       # empty ts only
        "LOG|-|1640995200|Warning: low disk",  # detected level, given ts
        "LOG|DEBUG|1640995200|||",             # message made of pipes
    ])
    t1 = int(time.time())
    ids = [int(r.split("|")[1]) for r in replies if r.startswith("OK|")]
    assert len(ids) == 5, replies
    rows = {r.id: r for r in s.search("")}
    got = [(rows[i].level, rows[i].msg) for i in ids]
    assert got == [("ERROR", "a|b|c disk ERROR here"), ("INFO", "plain hello"),
                   ("WARN", "x|y"), ("WARN", "Warning: low disk"), ("DEBUG", "||")]
    for i in ids[:3]:
        assert t0 - 1 <= rows[i].ts <= t1 + 1, rows[i]
    assert rows[ids[3]].ts == 1640995200
    # A keyword may contain '|' too.
    assert s.query("QUERY|KEYWORD|a|b|c") == ["RESULT|1", "%d|ERROR|%d|a|b|c disk ERROR here"
                                              % (ids[0], rows[ids[0]].ts), "END"]


def test_ids_unique_and_increasing_across_connections_and_forms(server):
    s = server()
    ids = []
    for k in range(5):
        ids.append(s.log("INFO", 1640995200 + k, "m%d" % k))
        s.send_framed(["LOG:1640995200:INFO:colon %d" % k])
        s.send(["plain %d" % k])
    s.wait_count(15)
    assert ids == sorted(set(ids)), ids
    rows = s.search("")
    all_ids = [r.id for r in rows]
    assert all_ids == list(range(1, 16)), all_ids
    st = s.stats()
    assert st["first_id"] == "1" and st["last_id"] == "15", st


def test_crlf_line_endings(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"LOG|INFO|1640995200|crlf pipe\r\nLOG:1640995200:ERROR:crlf colon\r\n"
                  b"crlf plain WARN\r\n")
        assert c.readline() == b"OK|1"
        assert c.readline() == b"ACK"
    s.wait_count(3)
    rows = s.search("crlf")
    assert [(r.level, r.msg) for r in rows] == [
        ("INFO", "crlf pipe"), ("ERROR", "crlf colon"), ("WARN", "crlf plain WARN")]
    raw = b"".join(l + b"\n" for l in s.query_raw("SEARCH crlf"))
    assert b"\r" not in raw


def test_query_port_accepts_crlf(server):
    s = server()
    with s.connect_query() as c:
        c.sendall(b"PING\r\nCOUNT\r\n")
        assert c.readline() == b"PONG"
        assert c.readline() == b"COUNT|0"


LEVEL_CASES = [
    # (plain line, detected level)
    ("ERROR could not open file", "ERROR"),
    ("Error while reading", "ERROR"),
    ("2024-01-01 12:00:00 [WARN] disk 91% full", "WARN"),
    ("Warning: certificate expires soon", "WARN"),
    ("WARNING low memory", "WARN"),
    ("INFO user logged in", "INFO"),
    ("DEBUG cache miss for key 7", "DEBUG"),
    ("Debug mode enabled", "DEBUG"),
    ("FATAL out of memory", "FATAL"),
    ("CRITICAL kernel panic", "FATAL"),
    ("TRACE entering parse()", "TRACE"),
    ("nginx [warn] 1234#0: conflicting server name", "WARN"),
    ("ts=1 level=debug msg=hello", "DEBUG"),
    ("level=error msg=boom", "ERROR"),
    ("open failed, error: ENOENT", "ERROR"),
    # Lower-case prose words are not levels.
    ("no error was found, just a warning in prose", "INFO"),
    ("stack trace follows", "INFO"),
    ("nothing to see here", "INFO"),
    # Level words are whole words.
    ("error_count=5 while terrorists debugged", "INFO"),
    # Only the first 128 bytes are looked at.
    ("x" * 130 + " ERROR late", "INFO"),
    ("x" * 100 + " ERROR early", "ERROR"),
]


def test_level_detection_plain(server):
    s = server()
    s.send(["%03d %s" % (i, text) for i, (text, _) in enumerate(LEVEL_CASES)])
    s.wait_count(len(LEVEL_CASES))
    rows = s.search("")
    got = {int(r.msg[:3]): r.level for r in rows}
    wrong = [(text, want, got.get(i)) for i, (text, want) in enumerate(LEVEL_CASES)
             if got.get(i) != want]
    assert not wrong, "misdetected (line, expected, got): %r" % wrong


def test_level_detection_framed(server):
    s = server()
    replies = s.send_framed([
        "LOG|-|1|Warning: a",
        "LOG||1|FATAL b",
        "LOG|-|1|quiet c",
        "LOG|WARNING|1|d",
        "LOG|CRITICAL|1|e",
        "LOG|TRACE|1|f",
    ])
    assert all(r.startswith("OK|") for r in replies), replies
    rows = s.search("")
    assert [(r.level, r.msg) for r in rows] == [
        ("WARN", "Warning: a"), ("FATAL", "FATAL b"), ("INFO", "quiet c"),
        ("WARN", "d"), ("FATAL", "e"), ("TRACE", "f")]
    st = s.stats()
    assert st["level.WARN"] == "2" and st["level.FATAL"] == "2", st


def assert_no_raw_controls(data):
    bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})
    assert not bad, "raw control bytes %r in reply %r" % (bad, data[:300])


def test_control_chars_and_invalid_utf8_are_escaped(server):
    s = server()
    s.send([b"esc1 a\x01b\xff", b"esc2 tab\there\x1b[31mred\x7f",
            "esc3 caf\u00e9 \u65e5\u672c \U0001F600".encode(),
            b"esc4 bad \xc3\x28 over \xc0\xaf sur \xed\xa0\x80 nul\x00end"])
    s.wait_count(4)
    with s.connect_log() as c:
        c.sendall(b"LOG|INFO|1640995200|esc5 x\x02y\xfe\n")
        assert c.readline() == b"OK|5"
        c.sendall(b"LOG:1640995200:INFO:esc6 \x1b]0;title\x07\n")
        assert c.readline() == b"ACK"
    rows = s.search("esc")
    assert [r.msg for r in rows] == [
        "esc1 a\\x01b\\xff",
        "esc2 tab\\x09here\\x1b[31mred\\x7f",
        "esc3 caf\u00e9 \u65e5\u672c \U0001F600",
        "esc4 bad \\xc3( over \\xc0\\xaf sur \\xed\\xa0\\x80 nul\\x00end",
        "esc5 x\\x02y\\xfe",
        "esc6 \\x1b]0;title\\x07",
    ]
    # No reply form ever carries a raw control byte or invalid UTF-8.
    for cmd in ["SEARCH esc", "QUERY:esc", "QUERY|KEYWORD|esc", "QUERY keyword=esc"]:
        raw = b"".join(l + b"\n" for l in s.query_raw(cmd))
        assert_no_raw_controls(raw)
        raw.decode("utf-8")  # Raises on invalid UTF-8.


def test_empty_lines_ignored(server):
    s = server()
    s.send([b"", b"", b"\r", b"", b"one", b""])
    s.wait_count(1)
    time.sleep(0.2)
    assert s.count() == 1
    assert [r.msg for r in s.search("")] == ["one"]


def test_final_line_without_newline_is_stored(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"first line\nlast line without newline")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed() == b""
    s.wait_count(2)
    assert [r.msg for r in s.search("")] == ["first line", "last line without newline"]


def test_framed_final_line_without_newline_is_answered(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"LOG|INFO|1640995200|no newline")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed() == b"OK|1\n"
    assert [r.msg for r in s.search("")] == ["no newline"]


# Stream framing -----------------------------------------------------------------------------

def test_line_sent_one_byte_at_a_time(server):
    s = server()
    with s.connect_log() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = b"LOG|ERROR|1640995200|byte by byte message\n"
        for i in range(len(line)):
            c.sendall(line[i:i + 1])
            time.sleep(0.005)
        assert c.readline() == b"OK|1"
        line2 = b"LOG:1640995200:INFO:colon bytes\r\n"
        for i in range(len(line2)):
            c.sendall(line2[i:i + 1])
            time.sleep(0.002)
        assert c.readline() == b"ACK"
    assert [r.msg for r in s.search("")] == ["byte by byte message", "colon bytes"]


def test_many_lines_in_one_send(server):
    s = server()
    n = 1000
    data = b"".join(b"LOG|INFO|1640995200|batch %d\n" % i for i in range(n))
    with s.connect_log() as c:
        c.sendall(data)
        replies = c.readlines(n)
    assert replies == [b"OK|%d" % (i + 1) for i in range(n)]
    assert s.count("batch") == n


def test_line_split_at_every_position(server):
    s = server()
    line = b"LOG|WARN|1640995200|split line number XX\n"
    with s.connect_log() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for pos in range(1, len(line)):
            l = line.replace(b"XX", b"%02d" % pos)
            c.sendall(l[:pos])
            time.sleep(0.01)  # Let the first part arrive on its own.
            c.sendall(l[pos:])
            assert c.readline() == b"OK|%d" % pos, "split at %d" % pos
    rows = s.search("split")
    assert [r.msg for r in rows] == ["split line number %02d" % p for p in range(1, len(line))]
    assert all(r.level == "WARN" and r.ts == 1640995200 for r in rows)


def test_plain_line_split_across_sends(server):
    s = server()
    with s.connect_log() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(b"part one ")
        time.sleep(0.05)
        c.sendall(b"part two\r")
        time.sleep(0.05)
        c.sendall(b"\nsecond")
        time.sleep(0.05)
        c.sendall(b" line\n")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed() == b""
    s.wait_count(2)
    assert [r.msg for r in s.search("")] == ["part one part two", "second line"]


# Pipelining ---------------------------------------------------------------------------------

def test_pipelined_20000_framed_lines(server):
    s = server()
    n = 20000
    data = b"".join(b"LOG|INFO|-|msg %d\n" % i for i in range(n))
    with s.connect_log() as c:
        join = run_in_thread(c.sock.sendall, data)
        replies = c.readlines(n)
        join()
        # Nothing more than one reply per line.
        c.settimeout(0.3)
        try:
            extra = c.sock.recv(100)
        except socket.timeout:
            extra = b""
        assert extra == b"", "extra reply bytes %r" % extra
    ids = []
    for r in replies:
        m = re.match(rb"^OK\|(\d+)$", r)
        assert m, "not an OK reply: %r" % r
        ids.append(int(m.group(1)))
    assert all(a < b for a, b in zip(ids, ids[1:])), "ids not strictly increasing"
    assert s.count("msg") == n


def test_json_lines_on_the_ingest_port(server):
    """A line that is a JSON object: message, level and time from their usual field names,
    the other fields kept as key=value; a line that only looks like JSON stays plain."""
    s = server()
    s.send(['{"level":"error","msg":"payment failed","order":42,"user":{"id":7},'
            '"@timestamp":"2026-11-26T10:00:00.250Z"}',
            '{"severity":4,"message":"disk at 91%","host":"db-2","ts":1795000000123}',
            '{"log":"no level here","lvl":"bogus"}',
            '{not json at all ERROR'])
    s.wait_count(4, timeout=10)
    e, = s.search('"payment failed"')
    assert e.level == "ERROR" and e.ts == 1795687200   # 2026-11-26T10:00:00Z
    assert e.msg == 'payment failed order=42 user={"id":7}', e.msg
    # A nested object is written bare, quotes and all, and found as written (found in review).
    assert s.count('user:{"id":7}') == 1 and s.count('user:"{\\"id\\":7}"') == 1
    assert s.count('user:{"id":8}') == 0
    e, = s.search('"disk at 91%"')
    assert e.level == "WARN" and e.msg == "disk at 91% host=db-2" and e.ts == 1795000000
    e, = s.search('"no level here"')
    assert e.level == "INFO" and "lvl=bogus" in e.msg
    e, = s.search('"not json at all"')
    assert e.level == "ERROR" and e.msg == "{not json at all ERROR"
