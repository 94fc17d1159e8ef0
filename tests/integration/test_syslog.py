"""Syslog on the ingest port, from util-linux `logger` (a real sender): RFC 5424 and RFC 3164,
newline-framed and RFC 6587 octet-counted, over TCP."""
import re
import shutil
import subprocess
import time

import pytest

import logdaemon
from conftest import HOST

pytestmark = pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger missing")


def logger(port, *args):
    subprocess.run(["logger", "--tcp", "-n", HOST, "-P", str(port)] + list(args), check=True,
                   timeout=10)


def rows(s, expr):
    return [(e.level, e.msg) for e in s.search(expr)]


@pytest.mark.parametrize("octets", [False, True], ids=["newline", "octet-count"])
def test_logger_rfc5424(server, octets):
    s = server()
    extra = ["--octet-count"] if octets else []
    logger(s.log_port, *extra, "--rfc5424", "-p", "local0.err", "-t", "nginx", "--msgid", "ID47",
           "--sd-id", "zoo@32473", "--sd-param", 'tiger="hungry"', "upstream timed out 5424")
    logger(s.log_port, *extra, "--rfc5424", "-p", "user.debug", "-t", "app", "debug 5424")
    s.wait_count(2, timeout=10)
    (lvl, msg), = rows(s, '"upstream timed out 5424"')
    assert lvl == "ERROR", msg
    assert msg.startswith("upstream timed out 5424 host="), msg
    assert re.search(r" app=nginx( |$)", msg) and " msgid=ID47" in msg, msg
    assert " zoo@32473.tiger=hungry" in msg, msg
    assert "<" not in msg.split(" host=")[0], msg        # PRI and header are not text
    (lvl, msg), = rows(s, '"debug 5424"')
    assert lvl == "DEBUG", msg
    # The fields are searchable as words (app=nginx) and as field:value queries.
    assert [m for _, m in rows(s, '"app=nginx"')] == [rows(s, '"upstream timed out"')[0][1]]
    assert [m for _, m in rows(s, 'app:nginx msgid:ID47 zoo@32473.tiger:hungry')] == \
        [rows(s, '"upstream timed out"')[0][1]]
    assert [m for _, m in rows(s, 'app:nginx msgid:ID47')] == [rows(s, '"upstream timed out"')[0][1]]
    assert [lvl for lvl, _ in rows(s, 'app:app')] == ["DEBUG"]
    # PRI's facility is a field too: local0.err and user.debug.
    assert [lvl for lvl, _ in rows(s, 'facility:local0')] == ["ERROR"]
    assert [lvl for lvl, _ in rows(s, 'facility:user')] == ["DEBUG"]
    assert rows(s, 'app:ngin') == [] and len(rows(s, 'app:ngin*')) == 1


@pytest.mark.parametrize("octets", [False, True], ids=["newline", "octet-count"])
def test_logger_rfc3164(server, octets):
    s = server()
    extra = ["--octet-count"] if octets else []
    logger(s.log_port, *extra, "--rfc3164", "-p", "daemon.warning", "-t", "cron",
           "bsd warning line")
    logger(s.log_port, *extra, "--rfc3164", "-p", "kern.crit", "-t", "kernel", "bsd crit line")
    s.wait_count(2, timeout=10)
    (lvl, msg), = rows(s, '"bsd warning line"')
    assert lvl == "WARN" and re.search(r" app=cron( |$)", msg) and " host=" in msg, msg
    (lvl, msg), = rows(s, '"bsd crit line"')
    assert lvl == "FATAL" and re.search(r" app=kernel( |$)", msg), msg


def test_octet_counted_frames_may_hold_newlines_and_mix_with_lines(server):
    s = server()
    body = b"<11>1 2026-11-26T10:00:00.000Z web1 app - - - first\nsecond half"
    frames = b"%d %s" % (len(body), body) + b"9 <14>x y z" + b"plain line after frames\n" + \
        b"12 apples and 3 pears\n"
    with s.connect_log() as c:
        c.sendall(frames)
    s.wait_count(4, timeout=10)
    (lvl, msg), = rows(s, "first")
    assert lvl == "ERROR" and msg.startswith("first\\x0asecond half host=web1 app=app"), msg
    assert s.search('"x y z"')[0].level == "INFO"
    assert s.count('"plain line after frames"') == 1
    assert s.count('"12 apples and 3 pears"') == 1     # digits then a space: still a line


def test_octet_counted_frame_longer_than_max_line_is_kept_cut_and_skipped_whole(server):
    """Found with syslog-ng: a frame over --max-line was read as newline-framed text, so lines
    inside the message became entries (a forged "20 <8>1 ..." one among them)."""
    s = server("--max-line", "200")
    body = (b"<11>1 2026-11-26T10:00:00Z web1 bigapp - - - big " + b"A" * 300 +
            b"\n20 <8>1 - forged - - - x\n" + b"B" * 300)
    frames = b"%d %s" % (len(body), body) + b"9 <14>x y z" + b"tail line\n"
    with s.connect_log() as c:
        for i in range(0, len(frames), 97):       # in pieces, so framing spans reads
            c.sendall(frames[i:i + 97])
            time.sleep(0.002)
    s.wait_count(3, timeout=10)
    (lvl, msg), = rows(s, "big")
    assert lvl == "ERROR" and msg.startswith("big AAAA"), msg
    assert s.count("forged") == 0 and s.count("BBB") == 0
    assert s.search('"x y z"')[0].level == "INFO" and s.count('"tail line"') == 1
    assert int(s.stats()["truncated"]) == 1


def udp_send(port, payload):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(payload, (HOST, port))


def test_logger_over_udp(server):
    s = server()
    assert ("udp", s.log_port) in s.listening
    for fmt, pri, text in (("--rfc5424", "local0.err", "udp five four two four"),
                           ("--rfc3164", "user.warning", "udp bsd line")):
        subprocess.run(["logger", "--udp", "-n", HOST, "-P", str(s.log_port), fmt, "-p", pri,
                        "-t", "udpapp", text], check=True, timeout=10)
    s.wait_count(2, timeout=10)
    (lvl, msg), = rows(s, '"udp five four two four"')
    assert lvl == "ERROR" and re.search(r" app=udpapp( |$)", msg), msg
    (lvl, msg), = rows(s, '"udp bsd line"')
    assert lvl == "WARN", msg
    assert int(s.stats()["udp_datagrams"]) == 2


def test_udp_datagram_with_several_lines_and_an_oversize_one(server):
    s = server("--max-line", "1000")
    udp_send(s.log_port, b"first plain line\nsecond ERROR line\n<12>third is syslog")
    udp_send(s.log_port, b"y" * 5000)                  # over --max-line: kept, cut, flagged
    s.wait_count(4, timeout=10)
    assert s.search('"second ERROR line"')[0].level == "ERROR"
    assert s.count('"third is syslog"') == 1
    st = s.stats()
    assert int(st["udp_datagrams"]) == 2 and int(st["truncated"]) == 1, st
    cut = [e for e in s.search("yyyy")]
    assert len(cut) == 1 and len(cut[0].msg) == 1000


def test_udp_syslog_datagram_is_one_message_newlines_and_all(server):
    """RFC 5426: one datagram, one message. syslog-ng sends a multi-line message raw."""
    s = server()
    udp_send(s.log_port, b"<11>1 2026-11-26T10:00:00Z web1 app - - - trace head\n\tat x.y(Z.java:1)\n")
    s.wait_count(1, timeout=10)
    (lvl, msg), = rows(s, "")
    assert lvl == "ERROR" and msg.startswith("trace head\\x0a\\x09at x.y(Z.java:1) host=web1"), msg


def test_udp_respects_the_log_deny_list(server):
    s = server("--log-deny", "127.0.0.1")
    udp_send(s.log_port, b"denied datagram")
    deadline = time.monotonic() + 5
    while int(s.stats()["udp_refused"]) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(s.stats()["udp_refused"]) == 1
    assert s.count("denied") == 0


# Run only where rsyslog is the installed log daemon: `make test` never swaps a machine's own.
# (/usr/sbin is not on every user's PATH.)
RSYSLOGD = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin")
RSYSLOG_SKIP = None if RSYSLOGD else logdaemon.skip_reason("rsyslog")


@pytest.mark.skipif(RSYSLOG_SKIP is not None, reason=str(RSYSLOG_SKIP))
def test_rsyslog_forwards_over_tcp_octet_counted_and_udp(server, tmp_path):
    """A foreground rsyslogd (Debian's) takes messages from logger on a private socket and
    forwards each twice with omfwd: over TCP with octet counting (RFC 5424 template) and over
    UDP (its traditional RFC 3164 format). Every copy arrives with its level, host and app."""
    import signal
    import socket
    import time
    s = server()
    work = tmp_path / "rsyslog"
    work.mkdir()
    sock = work / "log.sock"
    conf = work / "rsyslog.conf"
    conf.write_text(
        'global(workDirectory="%s")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        'input(type="imuxsock" Socket="%s" CreatePath="on")\n'
        '*.* action(type="omfwd" target="%s" port="%d" protocol="tcp" '
        'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")\n'
        '*.* action(type="omfwd" target="%s" port="%d" protocol="udp")\n'
        % (work, sock, HOST, s.log_port, HOST, s.log_port))
    rs = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "pid")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), rs.stderr.read1(4000) if rs.poll() is not None else "no socket"
        sent = [("local3.err", "myapp", "rsyslog forwarded error", "ERROR"),
                ("user.warning", "other", "rsyslog forwarded warning", "WARN"),
                ("daemon.info", "cron", "rsyslog forwarded info", "INFO")]
        for pri, tag, text, _ in sent:
            subprocess.run(["logger", "-u", str(sock), "-t", tag, "-p", pri, text], check=True,
                           timeout=10)
        s.wait_count(2 * len(sent), timeout=15)
        host = socket.gethostname().split(".")[0]
        for _, tag, text, level in sent:
            got = rows(s, '"%s"' % text)
            assert len(got) == 2, got                    # one over TCP, one over UDP
            for lvl, msg in got:
                assert lvl == level, got
                assert msg.startswith(text + " host="), msg   # no framing artefacts
                assert re.search(r" app=%s( |$)" % tag, msg), msg
                assert re.search(r" host=%s" % re.escape(host), msg), (msg, host)
            # host:<name> app:<tag> finds exactly these two copies.
            assert len(rows(s, 'host:%s app:%s "%s"' % (host, tag, text))) == 2
        assert len(rows(s, "app:myapp OR app:cron")) == 4
        assert int(s.stats()["udp_datagrams"]) == len(sent)
    finally:
        rs.send_signal(signal.SIGTERM)
        try:
            rs.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rs.kill()
            rs.wait(timeout=10)


def test_lines_that_only_look_octet_counted_stay_lines(server):
    """Found in review: a date-like number, a space and '<' must not start a frame (which would
    skip the next ~20 MB of the stream), and a bare number at the end of a read is a line."""
    s = server("--line-timeout", "2")
    with s.connect_log() as c:
        c.sendall(b"20240501 <WARN> disk full\n" + b"".join(b"after %d\n" % i for i in range(100)))
        c.sendall(b"12345\n")
        time.sleep(0.3)                    # "12345\n" is complete: no need to wait for more.
        s.wait_count(102, timeout=10)
    assert s.count('"disk full"') == 1 and s.count("12345") == 1


@pytest.mark.parametrize("first", [b"404 <3> GET /index.html", b"20240501 <4> disk full",
                                   b"12 <13>hello wor"])
def test_a_plain_first_line_shaped_like_a_frame_is_a_line(server, first):
    """Found in review: "LEN <PRI>" with any text after it was taken as a frame, so a plain line
    such as "404 <3> GET /" waited for 404 bytes and swallowed the lines after it. A connection's
    first frame needs a syslog header after its PRI; after a plain line, digits start lines."""
    s = server()
    with s.connect_log() as c:
        c.sendall(first + b"\n" + b"".join(b"after %d\n" % i for i in range(5)) +
                  b"30 <13>1 - h a - - - not a frame\n")
        s.wait_count(7, timeout=10)
    assert s.count('"%s"' % first.decode()) == 1
    assert s.count("after") == 5 and s.count('"30 <13>1 - h a"') == 1


def test_a_strict_first_frame_then_lenient_ones(server):
    """rsyslog's and logger's frames start "<PRI>1 " (RFC 5424), "<PRI>Mmm " (RFC 3164) or
    "<PRI>2026-" (an ISO date): the first frame may arrive in pieces that end anywhere."""
    s = server()
    body = b"<13>Nov 26 10:00:00 web1 app: bsd frame"
    frames = b"%d %s" % (len(body), body) + b"9 <14>x y z"
    with s.connect_log() as c:
        for i in range(len(frames)):
            c.sendall(frames[i:i + 1])
            time.sleep(0.001)
    s.wait_count(2, timeout=10)
    assert s.count('"bsd frame"') == 1 and s.count('"x y z"') == 1
