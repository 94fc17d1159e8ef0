"""syslog-ng (Debian's syslog-ng-core) forwarding to LogCaster's ingest port.

Each test starts its own logcasterd (the integration tests' `server` fixture) and its own
foreground `syslog-ng -F` with a private config, persist file, control socket and pid file in
a temporary directory (no system paths, no systemd, no capabilities managed). syslog-ng reads
two unix-dgram sockets in that directory:
- in5424.sock, with flags(syslog-protocol): the test writes RFC 5424 messages to it, so host,
  app, procid, msgid, structured data, severity and time are all chosen by the test;
- inbsd.sock, the traditional local format: util-linux `logger -u` writes to it, and syslog-ng
  fills in the local host name.
It forwards everything with network()/syslog() destinations to LogCaster's log port over
loopback: RFC 5424 over TCP with octet counting (syslog()), RFC 5424 over TCP newline-framed
(network() flags(syslog-protocol)), RFC 5424 over UDP, and the traditional BSD format over
UDP and TCP. Every message must arrive once, with its level (from the severity), its host, app
and other fields, and its own timestamp.

`make test` runs them where syslog-ng is the machine's system log daemon, and skips them in one
line elsewhere (Debian's syslog-ng-core and rsyslog conflict, and `make test` never swaps them).
`make test-syslog-ng` runs them anywhere: it installs syslog-ng-core when missing (removing
rsyslog) and puts back the machine's own log daemon afterwards. $SYSLOG_NG names another
syslog-ng binary.
"""
import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import HOST, IO_TIMEOUT, logdaemon


def find_syslog_ng():
    exe = os.environ.get("SYSLOG_NG") or shutil.which("syslog-ng")
    if not exe and os.access("/usr/sbin/syslog-ng", os.X_OK):
        exe = "/usr/sbin/syslog-ng"
    return exe


SYSLOG_NG = find_syslog_ng()
# `make test-syslog-ng` sets this: there, a missing syslog-ng is a failure, not a skip.
REQUIRED = os.environ.get("LOGCASTER_REQUIRE_SYSLOG_NG") == "1"

if SYSLOG_NG is None and not REQUIRED:
    # One skip for the whole module, so the report says why in one line.
    pytest.skip(logdaemon.skip_reason("syslog-ng"), allow_module_level=True)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
WAIT = 15.0               # Longest wait for forwarded messages to be stored.


class SyslogNg:
    """One foreground syslog-ng with its own files in a short temporary directory (unix socket
    paths are limited to 108 bytes, so not under pytest's tmp_path)."""

    def __init__(self, destinations, options=""):
        self.dir = tempfile.mkdtemp(prefix="lc-sng-")
        self.sock5424 = os.path.join(self.dir, "in5424.sock")
        self.sockbsd = os.path.join(self.dir, "inbsd.sock")
        self.conf = os.path.join(self.dir, "syslog-ng.conf")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        dests = "".join('destination d%d { %s persist-name("d%d")); };\n' % (i, d[:-1], i)
                        for i, d in enumerate(destinations))
        text = (
            "@version: 3.38\n"
            "options { keep-hostname(yes); use-dns(no); use-fqdn(no); stats-freq(0); %s };\n"
            'source s_5424 { unix-dgram("%s" flags(syslog-protocol)); };\n'
            'source s_bsd { unix-dgram("%s"); };\n'
            "%s"
            "log { source(s_5424); source(s_bsd); %s };\n"
            % (options, self.sock5424, self.sockbsd, dests,
               " ".join("destination(d%d);" % i for i in range(len(destinations)))))
        with open(self.conf, "w") as f:
            f.write(text)
        self.config_text = text
        self._err = open(self.stderr_path, "wb")
        # TZ=UTC: the BSD format's local time is then UTC, which is how LogCaster reads it.
        env = dict(os.environ, TZ="UTC")
        self.proc = subprocess.Popen(
            [SYSLOG_NG, "-F", "-e", "--no-caps", "-f", self.conf,
             "-R", os.path.join(self.dir, "syslog-ng.persist"),
             "-c", os.path.join(self.dir, "syslog-ng.ctl"),
             "-p", os.path.join(self.dir, "syslog-ng.pid")],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err, env=env)
        self.rc = None
        self.start_failed = False   # Already reported: teardown only stops and cleans up.

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.start_failed = True
                pytest.fail("syslog-ng exited with %s at start-up:\n%s\nconfig:\n%s"
                            % (self.proc.returncode, self.stderr()[-3000:], self.config_text))
            if os.path.exists(self.sock5424) and os.path.exists(self.sockbsd) and \
                    "syslog-ng starting up" in self.stderr():
                return
            time.sleep(0.05)
        self.start_failed = True
        pytest.fail("syslog-ng not ready within %.0f s:\n%s" % (START_TIMEOUT,
                                                                 self.stderr()[-3000:]))

    def send5424(self, pri, ts, host, app, procid, msgid, sd, text):
        msg = "<%d>1 %s %s %s %s %s %s %s" % (pri, ts, host, app, procid, msgid, sd, text)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as u:
            u.settimeout(IO_TIMEOUT)
            u.sendto(msg.encode("utf-8"), self.sock5424)

    def logger(self, pri, tag, text):
        subprocess.run(["logger", "-u", self.sockbsd, "-p", pri, "-t", tag, text], check=True,
                       timeout=10)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Always leaves no process behind."""
        if self.rc is not None:
            return self.rc
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                    self.rc = "killed after %.0f s" % STOP_TIMEOUT
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self._err.close()
        if self.rc is None:
            self.rc = self.proc.returncode
        return self.rc

    def stop_and_check(self):
        try:
            rc = self.stop()
            err = self.stderr()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.start_failed:
            return
        assert rc == 0, "syslog-ng exit status %s after SIGTERM:\n%s" % (rc, err[-3000:])
        bad = [l for l in err.splitlines() if re.search(r"error|broken|fail", l, re.I)]
        assert not bad, "syslog-ng reported problems:\n%s" % "\n".join(bad[-20:])


@pytest.fixture
def syslog_ng(server):
    """Factory: syslog_ng(*destination_drivers, options=...) starts a configured syslog-ng.

    It depends on `server` so it is torn down first: every syslog-ng is stopped (killed if
    need be) before the servers get their SIGTERM."""
    started = []

    def start(*destinations, options=""):
        if SYSLOG_NG is None:
            pytest.fail("syslog-ng not found (install syslog-ng-core or set $SYSLOG_NG)")
        s = SyslogNg(destinations, options)
        started.append(s)
        s.wait_ready()
        return s

    yield start
    errors = []
    for s in started:
        try:
            s.stop_and_check()
        except BaseException as e:  # Stop every syslog-ng even if one fails its checks.
            errors.append(e)
    if errors:
        raise errors[0]


# The destination drivers: (driver, transport, RFC 5424 or BSD).
DESTS = {
    "tcp-rfc5424-octet": ('syslog("{h}" port({p}) transport("tcp"))', "tcp", True),
    "tcp-rfc5424-newline": ('network("{h}" port({p}) transport("tcp") flags(syslog-protocol))',
                            "tcp", True),
    "udp-rfc5424": ('syslog("{h}" port({p}) transport("udp"))', "udp", True),
    "udp-bsd": ('network("{h}" port({p}) transport("udp"))', "udp", False),
    "tcp-bsd": ('network("{h}" port({p}) transport("tcp"))', "tcp", False),
}


def dest(name, port, extra=""):
    driver = DESTS[name][0].format(h=HOST, p=port)
    return driver[:-1] + (" " + extra if extra else "") + ")"


# (facility, severity, host, app, procid, msgid, structured data, text, level). Every severity,
# an SD element, a notice whose text names another level, and a message in non-ASCII UTF-8.
MSGS = [
    (0, 0, "web1", "kernel", "-", "-", "-", "sngsev0 emergency the rack is on fire", "FATAL"),
    (1, 1, "web1", "watchdog", "77", "-", "-", "sngsev1 alert raised by watchdog", "FATAL"),
    (3, 2, "db-2", "raid", "-", "DISK", "-", "sngsev2 critical array degraded", "FATAL"),
    (16, 3, "web1", "nginx", "4242", "ID47", '[zoo@32473 tiger="hungry" eats="meat"]',
     "sngsev3 upstream timed out", "ERROR"),
    (3, 4, "edge.example.net", "haproxy", "-", "-", "-", "sngsev4 backend slow", "WARN"),
    (4, 5, "db-2", "sshd", "991", "-", "-", "sngsev5 notice whose text says ERROR", "INFO"),
    (1, 6, "web1", "app", "-", "-", "-", "sngsev6 Grüße aus Köln — 日本語 ✓ naïve café", "INFO"),
    (23, 7, "web1", "debugger", "5", "-", "-", "sngsev7 debug details", "DEBUG"),
]
SD_FIELDS = {'[zoo@32473 tiger="hungry" eats="meat"]':
             " zoo@32473.tiger=hungry zoo@32473.eats=meat"}
LOGGER_MSG = ("daemon.warning", "sngcron", "sngbsd from logger through the local socket", "WARN")


def event_time():
    """Whole seconds, an hour ago (so it differs from the receive time), in this UTC year (the
    BSD format has no year, and LogCaster reads it as the current one)."""
    now = int(time.time())
    year_start = calendar.timegm((time.gmtime(now).tm_year, 1, 1, 0, 0, 0))
    return max(now - 3600, year_start)


def rfc3339(ts, frac=""):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + frac + "Z"


def local_host():
    return socket.gethostname().split(".")[0]


FACILITIES = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "audit", "alert", "clock"] + \
    ["local%d" % i for i in range(8)]


def expected_text(m, rfc5424):
    """The stored message, without syslog-ng's own [meta sequenceId=...] element."""
    fac, _, host, app, procid, msgid, sd, text, _ = m
    out = "%s host=%s app=%s" % (text, host, app)
    if procid != "-":
        out += " procid=" + procid
    if rfc5424 and msgid != "-":    # The BSD format carries neither MSGID nor structured data.
        out += " msgid=" + msgid
    out += " facility=" + FACILITIES[fac]
    if rfc5424:
        out += SD_FIELDS.get(sd, "")
    return out


def settle(s, n):
    """After COUNT reached n, make sure nothing else (a fragment, a duplicate) follows."""
    time.sleep(0.5)
    assert s.count() == n, [repr(r) for r in s.search("limit:50")]


def http_entries(s, q):
    url = "http://%s:%d/api/v1/query?%s" % (HOST, s.http_port,
                                            urllib.parse.urlencode({"q": q, "limit": 1000}))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(url, timeout=IO_TIMEOUT) as r:
        return json.load(r)["entries"]


@pytest.mark.parametrize("name", list(DESTS))
def test_every_severity_host_and_app_arrive(server, syslog_ng, name):
    s = server()
    _, transport, rfc5424 = DESTS[name]
    ng = syslog_ng(dest(name, s.log_port))
    t0 = event_time()
    for i, m in enumerate(MSGS):
        fac, sev, host, app, procid, msgid, sd, text, _ = m
        ng.send5424(fac * 8 + sev, rfc3339(t0 + i), host, app, procid, msgid, sd, text)
    pri, tag, ltext, llevel = LOGGER_MSG
    ng.logger(pri, tag, ltext)
    n = len(MSGS) + 1
    s.wait_count(n, timeout=WAIT)
    settle(s, n)

    meta = r"( meta\.sequenceId=\d+)?" if rfc5424 else ""
    for i, m in enumerate(MSGS):
        rows = s.search('"%s"' % m[7].split()[0])
        assert len(rows) == 1, rows
        r = rows[0]
        assert r.level == m[8], (m, r)
        assert re.fullmatch(re.escape(expected_text(m, rfc5424)) + meta, r.msg), (r.msg, m)
        assert r.ts == t0 + i, (r, m)            # the message's own time, not the receive time
    (r,) = s.search('"%s"' % ltext)
    assert r.level == llevel, r
    assert re.fullmatch(re.escape("%s host=%s app=%s" % (ltext, local_host(), tag)) +
                        r"( procid=\d+)? facility=daemon" + meta, r.msg), (r.msg, local_host())
    assert abs(r.ts - time.time()) < 120, r

    # The fields and the non-ASCII text are searchable; levels come from the severities.
    assert s.count('"app=nginx"') == 1 and s.count('"host=db-2"') == 2
    assert s.count("facility:local0") == 1 and s.count("facility:kern") == 1
    assert s.count('"日本語"') == 1 and s.count("köln") == 1
    assert [s.count("level:" + l) for l in ("FATAL", "ERROR", "WARN", "INFO", "DEBUG")] == \
        [3, 1, 2, 2, 1]
    assert s.count("source:127.0.0.1:") == n
    assert int(s.stats()["udp_datagrams"]) == (n if transport == "udp" else 0)


def test_rfc5424_time_zones_and_fractions(server, syslog_ng):
    """syslog-ng rewrites each timestamp into the destination's time-zone() with frac-digits()
    digits; whatever the offset, LogCaster must store the same instant, to the millisecond."""
    s = server()
    ng = syslog_ng(dest("tcp-rfc5424-octet", s.log_port, 'frac-digits(3) time-zone("+05:30")'),
                   dest("udp-rfc5424", s.log_port, 'frac-digits(6) time-zone("-08:00")'))
    t0 = event_time()
    sent = [(t0 * 1000 + 125, rfc3339(t0, ".125")),
            (t0 * 1000 + 61500, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + 61 + 7200))
             + ".5+02:00"),
            (t0 * 1000 + 3599999, rfc3339(t0 + 3599, ".999999"))]
    for i, (_, ts) in enumerate(sent):
        ng.send5424(8 + 3, ts, "web1", "tzapp", "-", "-", "-", "sngtime%d" % i)
    s.wait_count(2 * len(sent), timeout=WAIT)
    for i, (ms, ts) in enumerate(sent):
        got = http_entries(s, "sngtime%d" % i)
        assert len(got) == 2, got
        for e in got:
            # frac-digits(3) and (6) keep .999999 as .999 ms; every copy is the same instant.
            assert e["ts_ms"] == ms, (ts, e)
            assert e["level"] == "ERROR" and e["message"].startswith(
                "sngtime%d host=web1 app=tzapp" % i), e


def test_octet_counted_message_keeps_its_newline(server, syslog_ng):
    """syslog-ng passes a message's newline through as it is; with octet counting LogCaster
    keeps the message whole, the newline escaped."""
    s = server()
    ng = syslog_ng(dest("tcp-rfc5424-octet", s.log_port))
    ng.send5424(8 + 4, rfc3339(event_time()), "web1", "multi", "-", "-", "-",
                "sngmulti first line\nsecond line")
    s.wait_count(1, timeout=WAIT)
    settle(s, 1)
    (r,) = s.search("sngmulti")
    assert r.level == "WARN" and \
        r.msg.startswith("sngmulti first line\\x0asecond line host=web1 app=multi"), r.msg


@pytest.mark.parametrize("names", [("tcp-rfc5424-octet", "tcp-rfc5424-newline"),
                                   ("tcp-bsd",)], ids=["rfc5424", "bsd"])
def test_a_thousand_messages_in_order(server, syslog_ng, names):
    """1000 messages through each TCP destination: none lost, none split or merged across the
    reads and batches of the server, each with the level of its severity."""
    s = server()
    ng = syslog_ng(*[dest(n, s.log_port) for n in names])
    levels = ["FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG"]
    t0 = event_time()
    n = 1000
    for i in range(n):
        ng.send5424(8 + i % 8, rfc3339(t0), "bulkhost", "bulk", str(i), "-", "-",
                    "sngbulk seq=%04d padding %s" % (i, "x" * (i % 300)))
    total = n * len(names)
    s.wait_count(total, timeout=WAIT)
    settle(s, total)
    seen = {}
    for r in s.search('"app=bulk"'):
        m = re.fullmatch(r"sngbulk seq=(\d{4}) padding x* host=bulkhost app=bulk procid=(\d+)"
                         r" facility=user( meta\.sequenceId=\d+)?", r.msg)
        assert m and m.group(1) == "%04d" % int(m.group(2)), r.msg
        i = int(m.group(2))
        assert r.level == levels[i % 8] and r.ts == t0, r
        seen[i] = seen.get(i, 0) + 1
    assert seen == {i: len(names) for i in range(n)}


def test_octet_counted_frame_over_max_line(server, syslog_ng):
    """syslog-ng may send a message bigger than LogCaster's --max-line (64 KiB by default) when
    its log-msg-size() allows it. The frame's length says where it ends, so the message should
    be kept cut and flagged like an over-long line, keeping its severity and fields, and nothing
    inside it may be read as framing. (It once fell back to newline framing: it was
    stored as a plain line with its "LEN <PRI>1 ..." header, and a line inside the message
    that looked like a frame ("20 <8>1 - forged ...") was stored as a forged syslog entry.)"""
    s = server()
    ng = syslog_ng(dest("tcp-rfc5424-octet", s.log_port), options="log-msg-size(200000);")
    ts = rfc3339(event_time())
    ng.send5424(8 + 6, ts, "web1", "small", "-", "-", "-", "sngbefore")
    ng.send5424(8 + 3, ts, "web1", "bigapp", "-", "-", "-",
                "sngbig " + "A" * 70000 + "\n20 <8>1 - forged - - - x\ntail")
    ng.send5424(8 + 6, ts, "web1", "small", "-", "-", "-", "sngafter")
    deadline = time.monotonic() + WAIT
    while s.count("sngafter") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    rows = s.search("limit:20")
    assert s.count("forged") == 0, rows
    assert len(rows) == 3, rows
    (big,) = s.search("sngbig")
    assert big.level == "ERROR" and big.msg.startswith("sngbig AAAA"), big
    assert int(s.stats()["truncated"]) == 1
