"""End to end with a real IRC client: irssi (Debian's) under tmux, driven by send-keys and read
with capture-pane. A log line sent to the ingest port must show up in irssi's #logs-error
window, from @LogBot, and LogBot must answer !query there."""
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from conftest import HOST


def tmux(sock, *args):
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          timeout=10)


def screen_until(sock, needle, timeout=8.0):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = tmux(sock, "capture-pane", "-p", "-t", "lc", "-S", "-200").stdout
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError("%r not on irssi's screen within %.0f s; screen:\n%s" %
                         (needle, timeout, text))


@pytest.mark.skipif(not shutil.which("irssi") or not shutil.which("tmux"),
                    reason="irssi and tmux come from scripts/debian-packages-test.txt")
def test_irssi_sees_logs_and_queries(server, tmp_path):
    s = server()
    sock = "lc-" + uuid.uuid4().hex[:8]
    home = tmp_path / "irssi"
    home.mkdir()
    cmd = "TERM=xterm irssi --home=%s -c %s -p %d -n tester" % (home, HOST, s.irc_port)
    try:
        r = tmux(sock, "new-session", "-d", "-s", "lc", "-x", "200", "-y", "60", cmd)
        assert r.returncode == 0, r.stderr
        screen_until(sock, "Welcome to the LogCaster IRC network")
        tmux(sock, "send-keys", "-t", "lc", "/join #logs-error", "Enter")
        screen_until(sock, "Topic for #logs-error")
        t0 = time.monotonic()
        with socket.create_connection((HOST, s.log_port), timeout=5) as c:
            c.sendall(b"ERROR disk full on /dev/sdz9\nINFO not for this channel\n")
        text = screen_until(sock, "disk full on /dev/sdz9")
        assert time.monotonic() - t0 < 3.0
        assert "LogBot" in text
        assert "not for this channel" not in text
        tmux(sock, "send-keys", "-t", "lc", "!query COUNT level:ERROR", "Enter")
        screen_until(sock, "COUNT level:ERROR: 1")
    finally:
        tmux(sock, "kill-server")
