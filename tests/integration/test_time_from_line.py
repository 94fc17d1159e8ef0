"""The entry's time from the line itself (--time-from-line, --time-window).

Lines that start with a timestamp in each recognised form are sent over TCP; the HTTP API's
/api/v1/query shows each entry's ts_ms, which must be the line's time (computed here with
time.gmtime), and the message unchanged. since:/from:/to: and the histogram select by that
time; lines without a time, times outside the window and --time-from-line off keep the arrival
time."""
import json
import re
import socket
import subprocess
import time
import urllib.parse

from conftest import HOST, LOGCASTERD

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def http_get(s, path):
    """GET path on its own connection; the JSON body of a 200 answer."""
    with socket.create_connection((HOST, s.http_port), timeout=10) as c:
        c.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        resp = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, payload = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp[:300]
    return json.loads(payload)


def entries(s, q, **params):
    """{message: ts_ms} of the entries matching query q."""
    args = dict(q=q, limit=1000, **params)
    got = http_get(s, "/api/v1/query?" + urllib.parse.urlencode(args))["entries"]
    out = {e["message"]: e["ts_ms"] for e in got}
    assert len(out) == len(got), got
    return out


def iso(ms, sep="T", zone="Z"):
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02d%s%02d:%02d:%02d%s" % (t.tm_year, t.tm_mon, t.tm_mday, sep, t.tm_hour,
                                               t.tm_min, t.tm_sec, zone)


def clf(ms, hours):
    """The common log format's "[10/Oct/2000:13:55:36 -0700]" for ms, at UTC+hours."""
    t = time.gmtime(ms // 1000 + int(hours * 3600))
    sign, m = ("-" if hours < 0 else "+"), int(abs(hours) * 60)
    return "[%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d]" % (
        t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec, sign,
        m // 60, m % 60)


def whole_s(ms):
    return ms - ms % 1000


def lines_at(base_ms):
    """(line, expected ts_ms) for every form, at base_ms (a whole second) or near it."""
    b = base_ms
    t = time.gmtime(b // 1000)
    ymd = (t.tm_year, t.tm_mon, t.tm_mday)
    hms = (t.tm_hour, t.tm_min, t.tm_sec)
    local2 = time.gmtime(b // 1000 + 2 * 3600)  # The same moment at UTC+2.
    l2 = "%04d-%02d-%02dT%02d:%02d:%02d" % (local2.tm_year, local2.tm_mon, local2.tm_mday,
                                            local2.tm_hour, local2.tm_min, local2.tm_sec)
    return [
        (iso(b) + " ltf iso-z", b),
        (iso(b, zone=".123Z") + " ltf iso-ms", b + 123),
        (l2 + "+02:00 ltf iso-offset-colon", b),
        (l2 + ".5+0200 ltf iso-offset-plain", b + 500),
        (iso(b, zone="") + " ltf iso-no-zone", b),
        (iso(b, sep=" ", zone="") + " INFO ltf iso-space", b),
        (iso(b, sep=" ", zone=",250") + " INFO ltf python-comma", b + 250),
        ("%04d/%02d/%02d %02d:%02d:%02d" % (ymd + hms) + " [error] 1#1: ltf nginx", b),
        ("[" + iso(b, sep=" ", zone="") + "] [WARN] ltf bracketed", b),
        ("   " + iso(b) + " ltf leading-spaces", b),
        ("%s %2d %02d:%02d:%02d myhost app[1]: ltf bsd" % ((MONTHS[t.tm_mon - 1], t.tm_mday) + hms),
         b),
        (clf(b, 0) + " ltf clf", b),
        (clf(b, 5.5) + " ltf clf-east", b),
        ('192.0.2.7 - frank %s "GET /x HTTP/1.1" 200 5 ltf access' % clf(b, -7), b),
        ("%d ltf epoch-sec" % (b // 1000), b),
        ("%d.042 ltf epoch-frac" % (b // 1000), b + 42),
        ("%d ltf epoch-ms" % (b + 7), b + 7),
        ("LOG|INFO|-|" + iso(b) + " ltf pipe-dash", b),
        ('{"msg":"' + iso(b) + ' ltf json-no-time"}', b),
        ("<13>1 - host app - - - " + iso(b) + " ltf syslog-nil-time", b),
    ]


def by_tag(got, line):
    """The ts_ms of the stored entry whose message has the line's tag ("ltf NAME", last in
    what the line's sender wrote), checking that the text was stored as sent."""
    tag = re.search(r"ltf [\w-]+", line).group(0)
    found = [(m, ts) for m, ts in got.items() if re.search(re.escape(tag) + r"( |$)", m)]
    assert len(found) == 1, (tag, sorted(got))
    msg, ts = found[0]
    # The text as sent: the whole line, or the message part of the framed forms.
    sent = line.split("|", 3)[3] if line.startswith("LOG|") else \
        json.loads(line)["msg"] if line.startswith("{") else \
        line.split(" - - - ", 1)[1] if line.startswith("<13>1 ") else line
    assert msg.startswith(sent), (msg, sent)
    return ts


def send(s, lines):
    """Send lines on one TCP connection; the framed ones are answered, each with OK."""
    with s.connect_log() as c:
        c.sendall(b"".join(l.encode() + b"\n" for l in lines))
        c.sock.shutdown(socket.SHUT_WR)
        replies = c.read_until_closed().splitlines()
    assert len(replies) == sum(l.startswith("LOG|") for l in lines), replies
    assert all(r.startswith(b"OK|") for r in replies), replies


def send_and_read(s, lines, q="ltf"):
    t0 = int(time.time() * 1000)
    send(s, lines)
    s.wait_count(len(lines), q)
    t1 = int(time.time() * 1000)
    return entries(s, q), t0, t1


def test_every_form_gives_its_time(server):
    s = server()
    base = whole_s(int(time.time() * 1000)) - 2 * 3600 * 1000
    cases = lines_at(base)
    got, t0, t1 = send_and_read(s, [l for l, _ in cases])
    assert len(got) == len(cases)
    for line, want in cases:
        ts = by_tag(got, line)
        assert ts == want, "%r: ts_ms %d, expected %d (%+d ms)" % (line, ts, want, ts - want)


def test_lines_without_a_time_keep_the_arrival(server):
    s = server()
    lines = ["404 not found ltf", "12345 items ltf", "2026-12-07 report ltf",
             "1234567890 looks like 2009 ltf", "Decent people ltf", "ltf plain",
             "LOG|INFO|1700000000|2026-12-07T03:04:05Z own time ltf"]
    got, t0, t1 = send_and_read(s, lines)
    for line in lines[:-1]:
        assert t0 - 1000 <= got[line] <= t1 + 1000, (line, got[line], t0, t1)
    # A time of its own wins over the text's.
    assert got["2026-12-07T03:04:05Z own time ltf"] == 1700000000000


def test_since_from_to_and_histogram_use_the_line_time(server):
    s = server()
    now = int(time.time() * 1000)
    old = whole_s(now) - 3 * 3600 * 1000
    s.send(["%s ltq old one" % iso(old), "%s ltq old two" % iso(old + 1000),
            "ltq new arrival"])
    s.wait_count(3, "ltq")
    assert set(entries(s, "ltq since:1h")) == {"ltq new arrival"}
    assert set(entries(s, "ltq until:1h")) == {"%s ltq old one" % iso(old),
                                               "%s ltq old two" % iso(old + 1000)}
    assert set(entries(s, "ltq from:%s to:%s" % (iso(old), iso(old)))) == {
        "%s ltq old one" % iso(old)}
    assert s.count("ltq since:1h") == 1 and s.count("ltq until:1h") == 2
    # The API's from/to parameters, and the histogram's buckets.
    assert set(entries(s, "ltq", **{"from": old, "to": old + 1000})) == {
        "%s ltq old one" % iso(old), "%s ltq old two" % iso(old + 1000)}
    h = http_get(s, "/api/v1/histogram?" + urllib.parse.urlencode(
        {"q": "ltq", "from": old - 60000, "to": old + 60000, "step": "1m"}))
    assert h["total"] == 2, h
    h = http_get(s, "/api/v1/histogram?" + urllib.parse.urlencode({"q": "ltq"}))  # Last hour.
    assert h["total"] == 1, h


def test_the_window(server):
    s = server()
    now = int(time.time() * 1000)
    day = 86400 * 1000
    far_back, back, ahead, far_ahead = (whole_s(now) - 40 * day, whole_s(now) - 29 * day,
                                        whole_s(now) + 20 * 60000, whole_s(now) + 3 * 3600000)
    lines = ["%s ltw far back" % iso(far_back), "%s ltw back" % iso(back),
             "%s ltw ahead" % iso(ahead), "%s ltw far ahead" % iso(far_ahead)]
    got, t0, t1 = send_and_read(s, lines, "ltw")
    assert got[lines[1]] == back and got[lines[2]] == ahead
    for line in (lines[0], lines[3]):
        assert t0 - 1000 <= got[line] <= t1 + 1000, (line, got[line], t0, t1)

    s2 = server("--time-window", "1h")
    lines = ["%s ltw 30m back" % iso(whole_s(now) - 1800000),
             "%s ltw 2h back" % iso(whole_s(now) - 7200000),
             "%s ltw 30m ahead" % iso(whole_s(now) + 1800000),
             "%s ltw 2h ahead" % iso(whole_s(now) + 7200000)]
    got, t0, t1 = send_and_read(s2, lines, "ltw")
    assert got[lines[0]] == whole_s(now) - 1800000
    assert got[lines[2]] == whole_s(now) + 1800000
    for line in (lines[1], lines[3]):
        assert t0 - 1000 <= got[line] <= t1 + 1000, (line, got[line], t0, t1)


def test_off_keeps_the_arrival_time(server):
    s = server("--time-from-line", "off")
    base = whole_s(int(time.time() * 1000)) - 2 * 3600 * 1000
    cases = lines_at(base)
    got, t0, t1 = send_and_read(s, [l for l, _ in cases])
    for line, _ in cases:
        ts = by_tag(got, line)
        assert t0 - 1000 <= ts <= t1 + 1000, (line, ts, t0, t1)


def test_options_are_checked(tmp_path):
    for bad in (["--time-from-line", "maybe"], ["--time-window", "2x"],
                ["--time-window", ",1h"], ["--time-window", "1h,"]):
        r = subprocess.run([LOGCASTERD, "--check-config", "--data-dir", str(tmp_path)] + bad,
                           capture_output=True, timeout=30)
        assert r.returncode != 0 and bad[0].encode() in r.stderr, (bad, r.stderr)
    r = subprocess.run([LOGCASTERD, "--check-config", "--data-dir", str(tmp_path),
                        "--time-window", "2d"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"time-window = 2d,2d\n" in r.stdout, r
    r = subprocess.run([LOGCASTERD, "--check-config", "--data-dir", str(tmp_path)],
                       capture_output=True, timeout=30)
    assert b"time-from-line = on\n" in r.stdout and b"time-window = 30d,1h\n" in r.stdout, r
