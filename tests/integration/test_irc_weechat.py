"""End to end with a real IRC client: WeeChat (Debian's weechat-headless), set up by -r commands
at start and driven afterwards through its FIFO pipe (the fifo plugin), read through the files
its logger plugin writes. WeeChat logs in with SASL PLAIN using the server's --irc-token, joins
#logs-error, must show a log line sent to the ingest port there, from LogBot, and LogBot must
answer its !query."""
import glob
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import HOST

TOKEN = "wee-t0ken"
ACCOUNT = "weeaccount"
NICK = "weetester"


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def log_until(path, needle, proc, timeout=10.0):
    """The text of WeeChat's log file once it holds needle (a regex), within timeout."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = read(path)
        if re.search(needle, text):
            return text
        assert proc.poll() is None, "weechat-headless exited (%s)" % proc.returncode
        time.sleep(0.1)
    raise AssertionError("%r not in %s within %.0f s; it holds:\n%s" %
                         (needle, os.path.basename(path), timeout, text[-3000:]))


def fifo_of(home, proc, timeout=10.0):
    """The path of WeeChat's FIFO pipe (weechat_fifo_<pid> in its runtime directory)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = glob.glob(os.path.join(home, "weechat_fifo_*"))
        if found:
            return found[0]
        assert proc.poll() is None, "weechat-headless exited (%s)" % proc.returncode
        time.sleep(0.1)
    raise AssertionError("no FIFO pipe in %s within %.0f s" % (home, timeout))


def fifo_send(fifo, *lines):
    """'buffer *text' lines: text (a command or a message) as if typed in that buffer. The
    pipe is opened without blocking: WeeChat always has it open for reading."""
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, "".join(l + "\n" for l in lines).encode())
    finally:
        os.close(fd)


def whois_account(port, nick):
    """The account WHOIS (330) shows for nick, asked over a raw connection of our own."""
    with socket.create_connection((HOST, port), timeout=5) as c:
        c.sendall(("PASS %s\r\nNICK rawcheck\r\nUSER r 0 * :r\r\nWHOIS %s\r\n" %
                   (TOKEN, nick)).encode())
        buf = b""
        deadline = time.monotonic() + 5
        while b" 318 " not in buf and time.monotonic() < deadline:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
        c.sendall(b"QUIT\r\n")
    m = re.search(r" 330 rawcheck %s (\S+) " % re.escape(nick), buf.decode("utf-8", "replace"))
    return m.group(1) if m else None


@pytest.mark.skipif(not shutil.which("weechat-headless"),
                    reason="weechat-headless comes from scripts/debian-packages-test.txt")
def test_weechat_sasl_logs_and_query(server, tmp_path):
    s = server("--irc-token", TOKEN)
    home = str(tmp_path / "weechat")
    os.mkdir(home)
    logs = os.path.join(home, "logs")
    # WeeChat 3.8 calls TLS "ssl" and 4.x "tls": turn off both (the other /set just fails). The
    # logger flushes each line at once, so the files show what WeeChat shows.
    setup = ";".join([
        "/set logger.file.flush_delay 0",
        "/set logger.file.path %s" % logs,
        "/set logger.file.mask $plugin.$name.weechatlog",
        "/set irc.server_default.autoreconnect off",
        "/server add lc %s/%d" % (HOST, s.irc_port),
        "/set irc.server.lc.ssl off",
        "/set irc.server.lc.tls off",
        "/set irc.server.lc.nicks %s" % NICK,
        "/set irc.server.lc.sasl_mechanism plain",
        "/set irc.server.lc.sasl_username %s" % ACCOUNT,
        "/set irc.server.lc.sasl_password %s" % TOKEN,
        "/set irc.server.lc.sasl_fail disconnect",
        "/set irc.server.lc.autojoin #logs-error",
        "/connect lc",
    ])
    # Only the plugins the test uses, and no scripts: nothing of the machine's own set-up.
    proc = subprocess.Popen(["weechat-headless", "--dir", home, "-P", "irc,logger,fifo", "-s",
                             "-r", setup],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        server_log = os.path.join(logs, "irc.server.lc.weechatlog")
        chan_log = os.path.join(logs, "irc.lc.#logs-error.weechatlog")
        text = log_until(server_log, r"SASL authentication successful", proc)
        assert "You are now logged in as %s" % ACCOUNT in text, text
        assert "Welcome to the LogCaster IRC network" in text, text
        log_until(chan_log, r"Topic for #logs-error", proc)  # Joined.
        assert whois_account(s.irc_port, NICK) == ACCOUNT
        t0 = time.monotonic()
        with socket.create_connection((HOST, s.log_port), timeout=5) as c:
            c.sendall(b"ERROR disk full on /dev/sdw9\nINFO not for this channel\n")
        text = log_until(chan_log, r"disk full on /dev/sdw9", proc)
        assert time.monotonic() - t0 < 3.0
        line = [l for l in text.splitlines() if "disk full on /dev/sdw9" in l][0]
        assert re.search(r"\t@?LogBot\t", line), line  # Said by LogBot.
        assert "not for this channel" not in text
        fifo_send(fifo_of(home, proc), "irc.lc.#logs-error *!query COUNT level:ERROR")
        log_until(chan_log, r"COUNT level:ERROR: 1", proc)
        fifo_send(fifo_of(home, proc), "irc.server.lc */quit")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
