"""`logcaster send --follow FILE`: ship appended lines like `tail -F`, through liblogcaster,
surviving rotation, with an exact summary at the end."""
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import LOGCASTER, assert_clean_stderr, closed_port, server_env


class Follower:
    def __init__(self, s, path, *args, tty=False):
        cmd = [LOGCASTER, "--log-port", str(s.log_port), "--timeout", "5", "send", "--follow",
               str(path)] + list(args)
        self.master = None
        if tty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE,
                                         env=server_env())
            os.close(slave)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=server_env())

    def tty_output(self, until, timeout=10):
        out, deadline = b"", time.monotonic() + timeout
        while until not in out and time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    out += os.read(self.master, 4096)
                except OSError:
                    break
        return out

    def stop(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail("send --follow did not stop")
        if self.master is not None:
            os.close(self.master)
        return self.proc.returncode, err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def append(path, *lines):
    with open(path, "a") as f:
        for l in lines:
            f.write(l + "\n")


def messages(s):
    return [r.msg for r in s.search("")]


def wait_for(s, n):
    s.wait_count(n, timeout=15)


@pytest.fixture
def follower():
    made = []

    def start(*a, **k):
        f = Follower(*a, **k)
        made.append(f)
        return f
    yield start
    for f in made:
        f.kill()


def test_only_new_lines_with_detected_levels_and_exact_summary(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    append(log, "old line, already there")
    f = follower(s, log)
    time.sleep(0.5)  # It starts at the end of the file.
    append(log, "ERROR payment failed", "WARN disk at 91%", "plain info line", "")
    wait_for(s, 3)
    rc, err = f.stop()
    assert rc == 0, err
    assert err.strip().splitlines()[-1] == "sent 3 lines, acknowledged 3, refused 0"
    got = s.search("")
    assert [(r.level, r.msg) for r in got] == [
        ("ERROR", "ERROR payment failed"), ("WARN", "WARN disk at 91%"),
        ("INFO", "plain info line")]
    assert_clean_stderr(s.stderr())


def test_from_start_and_a_fixed_level(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    append(log, "one", "two ERROR word")
    f = follower(s, log, "--from-start", "--level", "WARN")
    wait_for(s, 2)
    rc, err = f.stop(signal.SIGTERM)
    assert rc == 0, err
    assert [(r.level, r.msg) for r in s.search("")] == [("WARN", "one"), ("WARN", "two ERROR word")]


def test_rename_rotation_and_copytruncate_lose_nothing(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    append(log, "before rotation 1", "before rotation 2")
    wait_for(s, 2)
    # logrotate's default: rename, create anew; the writer still adds to the old file once.
    os.rename(log, tmp_path / "app.log.1")
    append(tmp_path / "app.log.1", "late line in the old file")
    append(log, "first in the new file")
    wait_for(s, 4)
    append(log, "second in the new file")
    wait_for(s, 5)
    # copytruncate: the file is emptied in place, then written from the start.
    with open(log, "r+") as fh:
        fh.truncate(0)
    time.sleep(0.4)
    append(log, "after truncation")
    wait_for(s, 6)
    rc, err = f.stop()
    assert rc == 0, err
    assert "was rotated" in err and "was truncated" in err, err
    assert err.strip().splitlines()[-1] == "sent 6 lines, acknowledged 6, refused 0"
    assert messages(s) == ["before rotation 1", "before rotation 2", "late line in the old file",
                           "first in the new file", "second in the new file", "after truncation"]


def test_a_file_that_appears_later_is_read_from_its_start(server, follower, tmp_path):
    s = server()
    log = tmp_path / "later.log"
    f = follower(s, log)
    time.sleep(0.4)
    append(log, "written before the follower saw the file")
    wait_for(s, 1)
    rc, err = f.stop()
    assert rc == 0 and "waiting for" in err, err


def test_partial_last_line_waits_for_its_newline(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    with open(log, "a") as fh:
        fh.write("half a li")
        fh.flush()
        time.sleep(0.4)
        assert s.count("") == 0
        fh.write("ne\n")
    wait_for(s, 1)
    assert messages(s) == ["half a line"]
    f.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "kill-9"])
def test_server_restart_while_following_loses_nothing(server, follower, tmp_path, sig):
    """The library keeps what was not acknowledged and resends it after reconnecting."""
    s = server("--fsync", "always")
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    append(log, *["before restart %d" % i for i in range(2000)])
    time.sleep(0.05)                    # Some of them in flight when the server goes.
    port, data = s.log_port, s.data_dir
    s.stop(sig, timeout=10)
    append(log, *["while down %d" % i for i in range(50)])
    time.sleep(0.3)
    s2 = server("--fsync", "always", "--data-dir", data, "--log-port", str(port))
    want = ["before restart %d" % i for i in range(2000)] + ["while down %d" % i for i in range(50)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(messages(s2)) & set(want)) < len(want):
        time.sleep(0.2)
    rc, err = f.stop()
    assert rc == 0, err
    assert err.strip().splitlines()[-1] == "sent 2050 lines, acknowledged 2050, refused 0"
    got = messages(s2)
    assert set(got) == set(want)
    # At-least-once: only lines in flight at the restart may be stored twice, in order.
    assert len(got) - len(want) <= 8192
    firsts = [got.index(w) for w in want]
    assert firsts == sorted(firsts)


def test_progress_line_on_a_terminal(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log, tty=True)
    time.sleep(0.3)
    append(log, *["line %d" % i for i in range(10)])
    wait_for(s, 10)
    out = f.tty_output(b"acknowledged 10")
    assert re.search(rb"lines 10 +\d+ lines/s +acknowledged 10", out), out
    rc, err = f.stop()
    assert rc == 0, err


def test_unreachable_server_exit_status(follower, tmp_path):
    port = closed_port()
    log = tmp_path / "app.log"
    log.write_text("")

    class Dead:
        log_port = port
    f = follower(Dead, log)
    time.sleep(0.3)
    append(log, "nobody listens")
    time.sleep(0.5)
    rc, err = f.stop()
    assert rc == 2, err
    assert "undelivered 1" in err, err


def test_stops_promptly_while_blocked_on_a_full_queue(follower, tmp_path):
    """The server is away and the library's queue (65,536 entries) is full: Ctrl-C still ends
    it within --timeout, with an exact summary."""
    log = tmp_path / "big.log"
    with open(log, "w") as fh:
        for i in range(70000):
            fh.write("line %d\n" % i)

    class Dead:
        log_port = closed_port()
    f = follower(Dead, log, "--from-start")
    time.sleep(1.5)
    t0 = time.monotonic()
    rc, err = f.stop(signal.SIGTERM)
    assert time.monotonic() - t0 < 10, err
    assert rc == 2, err
    m = re.search(r"sent (\d+) lines, acknowledged 0, refused 0, undelivered (\d+)", err)
    assert m and m.group(1) == m.group(2), err


def test_a_second_signal_stops_the_wait_for_acknowledgements(follower, tmp_path):
    """Found in review: a second Ctrl-C stayed pending and killed the process only after the
    wait. The first waits for acknowledgements (up to --timeout), the second ends it at once."""
    log = tmp_path / "app.log"
    log.write_text("")

    class Dead:
        log_port = closed_port()
    f = follower(Dead, log)
    time.sleep(0.3)
    append(log, "nobody listens")
    time.sleep(0.3)
    f.proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert f.proc.poll() is None          # Still waiting for the server (--timeout 5).
    t0 = time.monotonic()
    rc, err = f.stop(signal.SIGINT)
    assert time.monotonic() - t0 < 2, err
    assert rc == 128 + signal.SIGINT and "interrupted again" in err, (rc, err)


def test_a_line_longer_than_a_message_is_one_cut_entry(server, follower, tmp_path):
    s = server("--max-line", "1M")
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    append(log, "x" * 300000, "after the long one")
    wait_for(s, 2)
    rc, err = f.stop()
    assert rc == 0, err
    got = messages(s)
    assert len(got) == 2 and got[0] == "x" * 65526 and got[1] == "after the long one"


def test_writes_to_the_renamed_file_after_rotation_are_kept(server, follower, tmp_path):
    """A writer keeps appending to the renamed file until it reopens the path (logrotate's
    postrotate HUP comes later): those lines are read before the new file."""
    s = server()
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    with open(log, "a") as w:                 # The application's open descriptor.
        w.write("one\n")
        w.flush()
        wait_for(s, 1)
        os.rename(log, tmp_path / "app.log.1")
        append(log, "first in the new file")
        for word in ("two", "three"):
            time.sleep(0.3)                   # Within the grace period of each other.
            w.write(word + "\n")
            w.flush()
        w.write("half a li")                  # Its last line never gets a newline.
        w.flush()
    wait_for(s, 5)
    rc, err = f.stop()
    assert rc == 0, err
    assert messages(s) == ["one", "two", "three", "half a li", "first in the new file"]


def test_copytruncate_sends_the_partial_line_it_had(server, follower, tmp_path):
    s = server()
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log)
    time.sleep(0.3)
    with open(log, "a") as fh:
        fh.write("complete\npartial without newline")
    wait_for(s, 1)
    time.sleep(0.3)
    with open(log, "r+") as fh:
        fh.truncate(0)
    time.sleep(0.4)
    append(log, "after truncation")
    wait_for(s, 3)
    f.stop()
    assert messages(s) == ["complete", "partial without newline", "after truncation"]


def test_a_wrong_token_exits_1_with_the_reason(server, follower, tmp_path):
    s = server("--log-auth", "on", "--log-token", "right")
    log = tmp_path / "app.log"
    log.write_text("")
    f = follower(s, log, "--token", "wrong")
    time.sleep(0.3)
    append(log, "refused line")
    time.sleep(1.0)
    rc, err = f.stop()
    assert rc == 1, err
    assert re.search(r"undelivered 1: .*authentication failed", err), err
    assert s.count("") == 0
