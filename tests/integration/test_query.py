"""Query port: the seed's examples byte for byte, every QUERY| type, the key=value form, the
query language through SEARCH and COUNT, limit semantics, errors, STATS, HELP, PING and
pipelined commands."""
import re
import time

import pytest

# A fixed data set: (level, ts or '-' for the receive time, message). Ids are 1..10 in order.
DATA = [
    ("INFO", 1700000000, "user alice logged in"),                    # 1
    ("WARN", 1700000060, "disk usage 91 percent on /var"),           # 2
    ("ERROR", 1700000120, "database connection failed: timeout"),    # 3
    ("DEBUG", 1700000180, "cache miss key=alpha"),                   # 4
    ("ERROR", 1700000240, "payment service timeout for order 42"),   # 5
    ("FATAL", 1700000300, "out of memory killing worker"),           # 6
    ("INFO", 1700000360, "user bob logged out"),                     # 7
    ("TRACE", 1700000420, "entering handler Timeout check"),         # 8
    ("INFO", "-", "recent deploy finished"),                         # 9
    ("WARN", "-", "recent warning about the error budget"),          # 10
]
OLD = list(range(1, 9))
RECENT = [9, 10]


def load(s):
    replies = s.send_framed(["LOG|%s|%s|%s" % d for d in DATA])
    assert replies == ["OK|%d" % i for i in range(1, len(DATA) + 1)], replies
    return s


@pytest.fixture
def loaded(server):
    """A fresh server holding DATA."""
    return load(server())


@pytest.fixture(scope="module")
def shared(module_server):
    """One server holding DATA, shared by the read-only tests of this module."""
    return load(module_server())


def ids(rows):
    return [r.id for r in rows]


def expected_row(i, ts=None):
    level, t, msg = DATA[i - 1]
    return "%d|%s|%s|%s" % (i, level, t if ts is None else ts, msg)


# The seed's examples ----------------------------------------------------------------------

def test_seed_section5_example_verbatim(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"LOG:1640995200:INFO:Server started\n")
        assert c.readline() == b"ACK"
        c.sendall(b"LOG:1640995300:ERROR:Database connection failed\n")
        assert c.readline() == b"ACK"
        c.sendall(b"LOG:1640995301:ERROR:File not found\n")
        assert c.readline() == b"ACK"
    with s.connect_query() as q:
        q.sendall(b"QUERY:ERROR\n")
        want = (b"RESULT:2\nLOG:1640995300:ERROR:Database connection failed\n"
                b"LOG:1640995301:ERROR:File not found\nEND\n")
        got = b""
        while len(got) < len(want):
            chunk = q.sock.recv(4096)
            assert chunk, "connection closed after %r" % got
            got += chunk
        assert got == want


def test_seed_section71_example_verbatim(server):
    s = server()
    with s.connect_log() as c:
        c.sendall(b"LOG|ERROR|1640995200|Database connection failed\n")
        r1 = c.readline()
        c.sendall(b"LOG|ERROR|1640995300|File not found\n")
        r2 = c.readline()
    m1, m2 = re.match(rb"^OK\|(\d+)$", r1), re.match(rb"^OK\|(\d+)$", r2)
    assert m1 and m2, (r1, r2)
    id1, id2 = int(m1.group(1)), int(m2.group(1))
    assert id2 > id1
    with s.connect_query() as q:
        q.sendall(b"QUERY|KEYWORD|error\n")
        want = (b"RESULT|2\n%d|ERROR|1640995200|Database connection failed\n"
                b"%d|ERROR|1640995300|File not found\nEND\n" % (id1, id2))
        got = b""
        while len(got) < len(want):
            chunk = q.sock.recv(4096)
            assert chunk, "connection closed after %r" % got
            got += chunk
        assert got == want


# QUERY:<keyword> and QUERY|<TYPE>|... -------------------------------------------------------

def test_query_colon_form(loaded):
    s = loaded
    assert s.query_raw("QUERY:timeout") == [
        b"RESULT:3",
        b"LOG:1700000120:ERROR:database connection failed: timeout",
        b"LOG:1700000240:ERROR:payment service timeout for order 42",
        b"LOG:1700000420:TRACE:entering handler Timeout check",
        b"END"]
    assert s.query("QUERY:nomatchanywhere") == ["RESULT:0", "END"]
    assert s.query("QUERY:connection failed") == [
        "RESULT:1", "LOG:1700000120:ERROR:database connection failed: timeout", "END"]
    assert s.query("QUERY:")[0].startswith("ERROR")
    assert s.query("PING") == ["PONG"]


def pipe_ids(s, cmd):
    lines = s.query(cmd)
    assert lines[0].startswith("RESULT|"), (cmd, lines)
    n = int(lines[0][7:])
    assert len(lines) == n + 2 and lines[-1] == "END", (cmd, lines)
    return [int(l.split("|", 1)[0]) for l in lines[1:-1]]


def test_query_pipe_types(loaded):
    s = loaded
    assert s.query("QUERY|KEYWORD|TIMEOUT") == ["RESULT|3"] + [expected_row(i) for i in (3, 5, 8)] + ["END"]
    assert pipe_ids(s, "QUERY|LEVEL|ERROR") == [3, 5]
    assert pipe_ids(s, "QUERY|LEVEL|>=WARN") == [2, 3, 5, 6, 10]
    assert pipe_ids(s, "QUERY|LEVEL|FATAL") == [6]
    assert pipe_ids(s, r"QUERY|REGEX|order \d+$") == [5]
    assert pipe_ids(s, "QUERY|REGEX|^user (alice|bob)") == [1, 7]
    assert pipe_ids(s, "QUERY|TIME|1700000060|1700000180") == [2, 3, 4]   # inclusive
    assert pipe_ids(s, "QUERY|TIME|1700000061|1700000179") == [3]
    assert pipe_ids(s, "QUERY|SINCE|15m") == RECENT
    assert pipe_ids(s, "QUERY|SOURCE|127.0.0.1") == list(range(1, 11))
    assert pipe_ids(s, "QUERY|SOURCE|10.99.") == []
    assert pipe_ids(s, "QUERY|EXPR|alice OR bob") == [1, 7]
    assert pipe_ids(s, "QUERY|EXPR|level:ERROR payment") == [5]


def test_query_pipe_errors(loaded):
    s = loaded
    for cmd in ["QUERY|BOGUS|x", "QUERY|REGEX|(unclosed", "QUERY|LEVEL|NOPE",
                "QUERY|TIME|abc|1700000000", "QUERY|KEYWORD|", "QUERY|SINCE|soon",
                "QUERY|EXPR|(a"]:
        lines = s.query(cmd)
        assert len(lines) == 1 and lines[0].startswith("ERROR|"), (cmd, lines)
    # The connection is still usable after all those errors.
    assert s.query("PING") == ["PONG"]
    assert pipe_ids(s, "QUERY|LEVEL|ERROR") == [3, 5]


# The key=value form -----------------------------------------------------------------------

def found(s, cmd):
    lines = s.query(cmd)
    m = re.match(r"^FOUND: (\d+)$", lines[0])
    assert m, (cmd, lines)
    assert len(lines) == int(m.group(1)) + 1
    for l in lines[1:]:
        assert re.match(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ", l), l
    return lines[1:]


def test_query_kv_form(loaded):
    s = loaded  # The server runs with TZ=UTC, so local time is UTC.
    assert s.query("QUERY keyword=timeout") == [
        "FOUND: 3",
        "[2023-11-14 22:15:20] database connection failed: timeout",
        "[2023-11-14 22:17:20] payment service timeout for order 42",
        "[2023-11-14 22:20:20] entering handler Timeout check"]
    assert found(s, "QUERY operator=OR keywords=alice,bob") == [
        "[2023-11-14 22:13:20] user alice logged in", "[2023-11-14 22:19:20] user bob logged out"]
    assert found(s, "QUERY operator=AND keywords=user,alice") == [
        "[2023-11-14 22:13:20] user alice logged in"]
    assert found(s, "QUERY keywords=user,logged") == [
        "[2023-11-14 22:13:20] user alice logged in", "[2023-11-14 22:19:20] user bob logged out"]
    assert found(s, "QUERY time_from=1700000060 time_to=1700000180") == [
        "[2023-11-14 22:14:20] disk usage 91 percent on /var",
        "[2023-11-14 22:15:20] database connection failed: timeout",
        "[2023-11-14 22:16:20] cache miss key=alpha"]
    assert found(s, r"QUERY regex=order\s[0-9]+") == [
        "[2023-11-14 22:17:20] payment service timeout for order 42"]
    assert len(found(s, "QUERY level=ERROR")) == 2
    assert len(found(s, "QUERY keyword=timeout level=ERROR")) == 2
    assert found(s, "QUERY keyword=timeout limit=1") == [    # the newest match
        "[2023-11-14 22:20:20] entering handler Timeout check"]
    assert s.query("QUERY keyword=nomatchanywhere") == ["FOUND: 0"]


def test_query_kv_operator_after_keywords(loaded):
    # The documented order: QUERY keyword=<w> keywords=a,b,c operator=AND|OR ...
    s = loaded
    assert found(s, "QUERY keywords=alice,bob operator=OR") == [
        "[2023-11-14 22:13:20] user alice logged in", "[2023-11-14 22:19:20] user bob logged out"]
    assert len(found(s, "QUERY keywords=user,alice operator=AND")) == 1


def test_query_kv_errors(loaded):
    s = loaded
    assert s.query_raw("QUERY keyword=x operator=XOR") == [b"ERROR: Operator must be AND or OR."]
    for cmd in ["QUERY regex=(", "QUERY level=NOPE", "QUERY time_from=abc",
                "QUERY nosuchparam=1"]:
        lines = s.query(cmd)
        assert len(lines) == 1 and lines[0].startswith("ERROR: "), (cmd, lines)
    assert s.query("PING") == ["PONG"]


# The query language -------------------------------------------------------------------------

@pytest.mark.parametrize("expr,want", [
    ("", list(range(1, 11))),
    ("user logged", [1, 7]),                      # words ANDed
    ("USER ALICE", [1]),                          # case-insensitive
    ("TIMEOUT", [3, 5, 8]),
    ("error", [3, 5, 10]),                        # level name: level ERROR or the word
    ("fatal", [6]),
    ("alice OR bob", [1, 7]),
    ("alice OR bob OR recent", [1, 7, 9, 10]),
    ("warning", [2, 10]),                         # WARNING names the WARN level
    ("user -alice", [7]),
    ("user NOT alice", [7]),
    ("(alice OR bob) logged", [1, 7]),
    ("timeout (database OR payment)", [3, 5]),
    ("-timeout -user -recent", [2, 4, 6]),
    ("-level:ERROR timeout", [8]),
    ("NOT (database OR payment) timeout", [8]),
    ("-(timeout OR user) level:>=WARN", [2, 6, 10]),
    ('"logged in"', [1]),
    ('"user bob"', [7]),
    ("level:ERROR", [3, 5]),
    ("level:>=WARN", [2, 3, 5, 6, 10]),
    ("level:>=ERROR", [3, 5, 6]),
    ("level:TRACE", [8]),
    ("source:127.0.0.1", list(range(1, 11))),
    ("source:10.99.", []),
    ("since:15m", RECENT),
    ("since:1h recent", RECENT),
    ("until:15m", OLD),
    ("from:1700000060 to:1700000180", [2, 3, 4]),
    ("from:2023-11-14T22:14:20Z to:2023-11-14T22:16:20Z", [2, 3, 4]),
    ("from:1700000300", [6, 7, 8] + RECENT),
    ("to:1700000000", [1]),
    (r"/order \d+/", [5]),
    ("/TIMEOUT/i", [3, 5, 8]),
    ("/Timeout/", [8]),
    ("regex:^user", [1, 7]),
    ("limit:3", [8, 9, 10]),                      # newest 3, printed oldest first
    ("timeout limit:2", [5, 8]),
    ("level:ERROR limit:1", [5]),
    ("limit:100 alice", [1]),
])
def test_search_language(shared, expr, want):
    s = shared
    rows = s.search(expr)
    assert ids(rows) == want, "SEARCH %s" % expr
    for r in rows:
        assert "%d|%s|%d|%s" % (r.id, r.level, r.ts, r.msg) == expected_row(r.id, r.ts)
    assert s.count(expr) == len(want) or "limit:" in expr, "COUNT %s" % expr


def test_search_and_bare_query_forms_agree(loaded):
    s = loaded
    assert s.query("QUERY alice OR bob") == s.query("SEARCH alice OR bob")
    assert s.query("search level:ERROR") == s.query("SEARCH level:ERROR")


def test_count(loaded):
    s = loaded
    assert s.query_raw("COUNT level:ERROR") == [b"COUNT|2"]
    assert s.query_raw("COUNT") == [b"COUNT|10"]
    assert s.query_raw("COUNT level:>=WARN") == [b"COUNT|5"]
    assert s.query_raw("COUNT nomatchanywhere") == [b"COUNT|0"]


@pytest.mark.parametrize("bad", [
    "(alice", "alice)", '"unterminated', "alice OR", "level:BOGUS", "level:", "since:soon",
    "/(/", "limit:abc", "from:notatime", "()",
])
def test_malformed_query_one_error_line(shared, bad):
    s = shared
    with s.connect_query() as q:
        q.sendall(("SEARCH %s\nPING\nCOUNT %s\nCOUNT level:ERROR\n" % (bad, bad)).encode())
        first = q.readline()
        assert first.startswith(b"ERROR"), (bad, first)
        assert q.readline() == b"PONG", "more than one line answered SEARCH %s" % bad
        assert q.readline().startswith(b"ERROR"), bad
        assert q.readline() == b"COUNT|2"


def test_unknown_command(loaded):
    s = loaded
    assert s.query_raw("FROBNICATE now") == [b"ERROR: unknown command 'FROBNICATE' (try HELP)"]
    assert s.query("PING") == ["PONG"]


def test_empty_command_lines_get_no_reply(loaded):
    s = loaded
    with s.connect_query() as q:
        q.sendall(b"\n\r\n   \nPING\n")
        assert q.readline() == b"PONG"


def test_stats(loaded):
    s = loaded
    s.send_framed(["LOG|BOGUS|1|refused"])
    st = s.stats()
    for key in ["entries", "appended", "evicted", "dropped", "truncated", "first_id", "last_id",
                "connections", "uptime_s", "memory_rss_bytes", "queries_queued", "queries_running",
                "queries_finished", "queries_cancelled", "queries_timed_out", "query_threads"] + [
            "level." + l for l in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")]:
        assert key in st, "STATS lacks %s: %r" % (key, st)
    text_keys = {"fsync_policy": r"^(always|batch|never)$", "store_error": r"^none$",
                 "compression_ratio": r"^\d+\.\d{3}$", "query_p50_ms": r"^\d+\.\d{3}$",
                 "query_p99_ms": r"^\d+\.\d{3}$", "query_wait_p99_ms": r"^\d+\.\d{3}$"}
    for k, v in st.items():
        assert re.match(text_keys.get(k, r"^-?\d+$"), v), "STATS %s %r is malformed" % (k, v)
    n = {k: int(v) for k, v in st.items() if v.lstrip("-").isdigit()}
    assert n["entries"] == 10 and n["appended"] == 10 and n["evicted"] == 0
    assert n["first_id"] == 1 and n["last_id"] == 10
    assert n["level.ERROR"] == 2 and n["level.INFO"] == 3 and n["level.WARN"] == 2
    assert n["level.FATAL"] == 1 and n["level.DEBUG"] == 1 and n["level.TRACE"] == 1
    assert sum(n["level." + l] for l in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")) == 10
    assert n["connections"] >= 1           # This query connection at least.
    assert n["truncated"] == 0
    assert n["memory_rss_bytes"] > 1 << 20
    assert n["uptime_s"] >= 0
    time.sleep(1.1)
    assert int(s.stats()["uptime_s"]) >= 1


def test_help_and_ping(loaded):
    s = loaded
    lines = s.query("HELP")
    assert len(lines) > 3 and lines[-1] == "END"
    text = "\n".join(lines)
    for word in ("SEARCH", "COUNT", "STATS", "PING", "QUERY", "level:", "limit:"):
        assert word in text, word
    assert s.query_raw("PING") == [b"PONG"]


def test_pipelined_query_commands_answered_in_order(loaded):
    s = loaded
    cmds, checks = [], []
    for i in range(200):
        k = i % 5
        if k == 0:
            cmds.append("PING"); checks.append(["PONG"])
        elif k == 1:
            cmds.append("COUNT level:ERROR"); checks.append(["COUNT|2"])
        elif k == 2:
            cmds.append("SEARCH alice OR bob")
            checks.append(["RESULT|2", expected_row(1), expected_row(7), "END"])
        elif k == 3:
            cmds.append("QUERY:payment")
            checks.append(["RESULT:1", "LOG:1700000240:ERROR:payment service timeout for order 42",
                           "END"])
        else:
            cmds.append("NOPE%d" % i)
            checks.append(["ERROR: unknown command 'NOPE%d' (try HELP)" % i])
    with s.connect_query() as q:
        q.sendall("".join(c + "\n" for c in cmds).encode())
        for cmd, want in zip(cmds, checks):
            assert [l.decode() for l in q.read_reply_raw()] == want, cmd
