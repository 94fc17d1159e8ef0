"""One ingest pipeline: every input form means the same entry whatever carried it.

Each form in FORMS is sent over TCP (newline-framed), TCP length-prefixed frames, UDP and
HTTP POST /api/v1/logs; the stored entries are read back through the JSON API and compared
field by field: level, event time, message, truncation flag and the sender's address."""
import json
import socket
import struct
import time
import urllib.parse

import pytest

from conftest import HOST

# (name, line with TAG where the carrier's name goes, whether the line carries its own time)
FORMS = [
    ("plain", b"plain form TAG hello world", False),
    ("plain-level", b"ERROR plain-level form TAG disk /dev/sda1 full", False),
    ("pipe", b"LOG|WARN|1700000000|pipe form TAG", True),
    ("colon", b"LOG:1700000001:DEBUG:colon form TAG", True),
    ("rfc5424", b'<11>1 2026-11-26T10:00:00.000Z web1 app 77 ID9 [x@1 k="v w"] rfc5424 form TAG',
     True),
    ("rfc3164", b"<28>Nov 26 10:00:00 web2 cron[12]: rfc3164 form TAG", True),
    ("json", b'{"message":"json form TAG","level":"error","ts":1700000002,"user":"bob","n":3}',
     True),
    ("json-blank", b'  {"msg":"json-blank form TAG","severity":4,"time":1700000003123}', True),
    ("json-nested", b'{"log":"json-nested form TAG","ctx":{"k":[1,2]},"lvl":"Warning"}', False),
    ("control", b"control form TAG \x01 tab\tand bad utf8 \xff\xfe end", False),
    ("utf8", "utf8 form TAG caf\u00e9 \u65e5\u672c".encode(), False),
]

CARRIERS = ["tcp", "framed", "udp", "http"]


def line_for(form, carrier):
    return form[1].replace(b"TAG", b"zz" + carrier.encode())


def send_tcp(s, lines):
    data = b"".join(l + b"\n" for l in lines)
    with s.connect_log() as c:
        c.sendall(data)
        # The two seed forms are answered; the rest are not.
        replies = c.readlines(2)
    assert replies[0].startswith(b"OK|") and replies[1] == b"ACK", replies


def send_framed(s, lines):
    data = b"".join(struct.pack(">I", len(l)) + l for l in lines)
    with s.connect_log() as c:
        c.sendall(data)
        # Replies come as frames too: "OK|id" and "ACK" without newlines.
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"ACK") < 1 and time.monotonic() < deadline:
            got += c.sock.recv(4096)
    assert b"OK|" in got and b"ACK" in got, got


def send_udp(s, lines):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for l in lines:
            u.sendto(l, (HOST, s.log_port))


def http_exchange(s, request):
    """One request on its own connection (Connection: close); the whole response."""
    with socket.create_connection((HOST, s.http_port), timeout=10) as c:
        c.sendall(request)
        resp = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return resp
            resp += chunk


def send_http(s, lines):
    body = b"".join(l + b"\n" for l in lines)
    resp = http_exchange(s, b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    head, _, payload = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp
    assert json.loads(payload)["stored"] == len(lines), payload


SENDERS = {"tcp": send_tcp, "framed": send_framed, "udp": send_udp, "http": send_http}


def entries(s, carrier):
    q = urllib.parse.quote("zz" + carrier)
    resp = http_exchange(s, b"GET /api/v1/query?q=%s&limit=100 HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n" % q.encode())
    head, _, payload = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp[:300]
    return json.loads(payload)["entries"]


def normalised(e, carrier):
    """The fields that must not depend on the carrier."""
    return {"level": e["level"],
            "message": e["message"].replace("zz" + carrier, "TAG"),
            "truncated": e.get("truncated", False),
            "source_host": e["source"].rsplit(":", 1)[0]}


def by_form(s, carrier):
    """The carrier's stored entries, by form name (each form's text names it: "<x> form")."""
    out = {}
    for e in entries(s, carrier):
        names = [f[0] for f in FORMS if e["message"].startswith(f[0] + " form ") or
                 " %s form " % f[0] in e["message"]]
        assert len(names) == 1, (carrier, e)
        assert names[0] not in out, (carrier, e)
        out[names[0]] = e
    return out


def test_each_form_means_the_same_entry_over_every_carrier(server):
    s = server()
    started_ms = int(time.time() * 1000)
    for carrier in CARRIERS:
        SENDERS[carrier](s, [line_for(f, carrier) for f in FORMS])
    for carrier in CARRIERS:
        s.wait_count(len(FORMS), "zz" + carrier, timeout=20)
    now_ms = int(time.time() * 1000)
    got = {c: by_form(s, c) for c in CARRIERS}
    for name, _, own_time in FORMS:
        base = got["tcp"][name]
        for carrier in CARRIERS:
            e = got[carrier][name]
            assert normalised(e, carrier) == normalised(base, "tcp"), (carrier, name, e, base)
            if own_time:   # the time written in the line, on every carrier
                assert e["ts_ms"] == base["ts_ms"] < started_ms - 86400000, (carrier, name, e)
            else:          # the arrival time
                assert started_ms - 1000 <= e["ts_ms"] <= now_ms + 1000, (carrier, name, e)


def test_fields_and_levels_of_the_forms(server):
    """The parsed meaning, checked once (the test above shows every carrier agrees)."""
    s = server()
    send_http(s, [line_for(f, "http") for f in FORMS])
    by = by_form(s, "http")
    assert by["plain"]["level"] == "INFO"
    assert by["plain"]["message"] == "plain form zzhttp hello world"
    assert by["plain-level"]["level"] == "ERROR"
    e = by["pipe"]
    assert e["level"] == "WARN" and e["ts_ms"] == 1700000000000 and e["message"] == "pipe form zzhttp"
    e = by["colon"]
    assert e["level"] == "DEBUG" and e["ts_ms"] == 1700000001000
    e = by["rfc5424"]
    assert e["level"] == "ERROR" and e["ts_ms"] == 1795687200000
    assert e["message"].startswith("rfc5424 form zzhttp host=web1 app=app procid=77 msgid=ID9"), e
    assert ' x@1.k="v w"' in e["message"], e
    e = by["rfc3164"]
    assert e["level"] == "WARN" and " host=web2 app=cron procid=12" in e["message"], e
    e = by["json"]
    assert e["level"] == "ERROR" and e["ts_ms"] == 1700000002000
    assert e["message"] == "json form zzhttp user=bob n=3", e
    e = by["json-blank"]
    assert e["level"] == "WARN" and e["ts_ms"] == 1700000003123
    e = by["json-nested"]
    assert e["level"] == "WARN" and ' ctx={"k":[1,2]}' in e["message"], e
    e = by["control"]
    assert e["message"] == "control form zzhttp \\x01 tab\\x09and bad utf8 \\xff\\xfe end", e
    assert by["utf8"]["message"] == "utf8 form zzhttp caf\u00e9 \u65e5\u672c"


@pytest.mark.parametrize("line, status", [
    (b"LOG|NOPE|1700000000|bad level", 400),          # TCP answers ERROR|...
    (b'{"message": broken json', 400),                  # TCP stores it as a plain line
])
def test_http_refuses_what_tcp_answers_with_an_error(server, line, status):
    """HTTP is all or nothing: a line TCP would refuse, or JSON that does not parse, fails
    the request (400 naming the line) rather than being stored differently."""
    s = server()
    body = b"fine line zzref\n" + line + b"\n"
    resp = http_exchange(s, b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
    assert resp.startswith(b"HTTP/1.1 %d" % status), resp
    assert b"line 2" in resp, resp
    assert s.count("zzref") == 0


def test_acknowledgements_are_pushed_to_every_reactor_in_request_order(server):
    """Durability is pushed: writers on several reactors (TCP framed lines and HTTP posts at
    once) each get exactly their replies, in request order, and an acknowledged line can be
    found the moment its reply arrives."""
    s = server("--threads", "2")
    results = {}

    def tcp_client(k):
        with s.connect_log() as c:
            ids = []
            for burst in range(20):
                lines = [b"LOG|INFO|1700000000|push c%d b%d n%d" % (k, burst, i)
                         for i in range(50)]
                c.sendall(b"".join(l + b"\n" for l in lines))
                for r in c.readlines(50):
                    assert r.startswith(b"OK|"), r
                    ids.append(int(r[3:]))
            results[("tcp", k)] = ids

    def http_client(k):
        for burst in range(10):
            body = [b"push h%d b%d n%d" % (k, burst, i) for i in range(30)]
            send_http(s, body)
        results[("http", k)] = True

    import threading
    threads = [threading.Thread(target=tcp_client, args=(k,)) for k in range(6)] + \
        [threading.Thread(target=http_client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    for k in range(6):
        ids = results[("tcp", k)]
        assert len(ids) == 1000 and ids == sorted(ids) and len(set(ids)) == 1000
        # The last acknowledged line of each client is already queryable.
        assert s.count('"push c%d b19 n49"' % k) == 1
    assert results[("http", 0)] and results[("http", 1)]
    assert s.count("push") == 6 * 1000 + 2 * 10 * 30


def test_irc_join_mid_stream_replay_then_live_without_a_gap(server):
    """A log channel's first listener subscribes the IRC stream to the fan-out while lines
    stream in: the replay and the live lines after it meet without a gap or a repeat, even for
    batches that were on their way when the stream subscribed (--fsync=always keeps them on
    their way longer)."""
    import re
    import threading
    s = server("--fsync", "always", "--irc-stream-rate", "1000000", "--irc-replay", "50")
    stop = threading.Event()

    def sender():
        with socket.create_connection((HOST, s.log_port), timeout=10) as c:
            for burst in range(4000):  # Until stopped; at most 2,000,000 lines.
                if stop.is_set():
                    return
                c.sendall(b"".join(b"seq %d\n" % (burst * 500 + k) for k in range(500)))
                time.sleep(0.004)

    t = threading.Thread(target=sender)
    t.start()
    try:
        time.sleep(1.0)
        with socket.create_connection((HOST, s.irc_port), timeout=10) as c:
            c.sendall(b"NICK gap\r\nUSER gap 0 * :gap\r\n")
            time.sleep(0.3)
            c.sendall(b"JOIN #logs-all\r\n")
            buf, end = b"", time.monotonic() + 2.0
            c.settimeout(0.2)
            while time.monotonic() < end:
                try:
                    buf += c.recv(1 << 20)
                except socket.timeout:
                    pass
    finally:
        stop.set()
        t.join(10)
    seqs = [int(m) for m in re.findall(rb"PRIVMSG #logs-all :.*?seq (\d+)", buf)]
    assert len(seqs) > 100, len(seqs)
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    # A stream that cannot keep up says so (lines suppressed, not sent); only then may it skip.
    if b"suppressed" not in buf and b"were not sent" not in buf:
        assert gaps == [], gaps[:5]
