"""Multi-line entries (--multiline): continuation lines of plain text join the entry before
them, per connection, within a window. Off by default."""
import re
import subprocess
import time

from conftest import LOGCASTERD, server_env

TRACE = [
    "ERROR java.lang.RuntimeException: boom",
    "\tat com.example.Foo.bar(Foo.java:10)",
    "\tat com.example.Main.main(Main.java:3)",
    "Caused by: java.io.IOException: disk full",
    "\t... 2 more",
]


def esc(text):
    """A joined message as stored: newlines and tabs escaped like any control byte."""
    return text.replace("\n", "\\x0a").replace("\t", "\\x09")


def test_off_by_default_every_line_is_an_entry(server):
    s = server()
    s.send(TRACE)
    s.wait_count(len(TRACE), timeout=10)
    assert [r.msg for r in s.search("")] == [esc(l) for l in TRACE]


def test_indented_lines_join_and_pattern_adds_more(server):
    s = server("--multiline-pattern", "^Caused by:")
    s.send(TRACE + ["next entry", "  its continuation"])
    s.wait_count(2, timeout=10)
    got = s.search("")
    assert [r.msg for r in got] == [esc("\n".join(TRACE)), esc("next entry\n  its continuation")]
    assert got[0].level == "ERROR" and got[1].level == "INFO"
    # A search finds the whole trace by a word from any of its lines.
    assert [r.id for r in s.search("IOException")] == [got[0].id]


def test_indentation_only_without_a_pattern(server):
    s = server("--multiline")
    s.send(TRACE)
    s.wait_count(2, timeout=10)
    assert [r.msg for r in s.search("")] == [esc("\n".join(TRACE[:3])), esc("\n".join(TRACE[3:]))]


def test_window_expiry_and_held_line_becomes_visible(server):
    s = server("--multiline", "--multiline-window", "200")
    with s.connect_log() as c:
        c.sendall(b"first line\n")
        # Held while a continuation may follow, then stored by the tick once the window passed.
        s.wait_count(1, timeout=10)
        time.sleep(0.3)
        c.sendall(b"  too late to join\n")
        s.wait_count(2, timeout=10)
    assert [r.msg for r in s.search("")] == ["first line", "  too late to join"]


def test_connections_do_not_mix_and_framed_lines_keep_order(server):
    s = server("--multiline", "--multiline-window", "5000")
    a, b = s.connect_log(), s.connect_log()
    try:
        a.sendall(b"from a\n")
        b.sendall(b"from b\n")
        a.sendall(b"  a continues\n")
        b.sendall(b"  b continues\nLOG|WARN|1700000000|framed after b\n")
        assert re.fullmatch(rb"OK\|\d+", b.readline())
    finally:
        a.close()
        b.close()
    s.wait_count(3, timeout=10)
    rows = {r.msg: r for r in s.search("")}
    assert set(rows) == {"from a\\x0a  a continues", "from b\\x0a  b continues",
                         "framed after b"}
    # b's held entry was stored before the framed line that followed it.
    assert rows["from b\\x0a  b continues"].id < rows["framed after b"].id


def test_close_and_eof_store_the_held_line(server):
    s = server("--multiline", "--multiline-window", "60000")
    with s.connect_log() as c:
        c.sendall(b"held until the end\n  with a continuation")  # no final newline
    s.wait_count(1, timeout=10)
    assert [r.msg for r in s.search("")] == ["held until the end\\x0a  with a continuation"]


def test_joined_entry_is_capped_at_max_line(server):
    s = server("--multiline", "--max-line", "100")
    s.send(["head"] + ["  " + "x" * 40] * 5)
    s.wait_count(1, timeout=10)
    (r,) = s.search("")
    assert len(r.msg.replace("\\x0a", "\n")) == 100 and r.msg.startswith("head\\x0a  xxx")


def test_bad_pattern_is_a_clear_start_up_error(tmp_path):
    p = subprocess.run([LOGCASTERD, "--multiline-pattern", "(", "--check-config"],
                       capture_output=True, text=True, timeout=10, env=server_env())
    assert p.returncode != 0
    assert "--multiline-pattern: missing closing parenthesis at offset 1" in p.stderr


def test_level_is_the_first_lines(server):
    s = server("--multiline")
    s.send(["request failed", "  ERROR code 5"])
    s.wait_count(1, timeout=10)
    assert [(r.level, r.msg) for r in s.search("")] == [("INFO", "request failed\\x0a  ERROR code 5")]


def test_throttled_continuations_still_join(server):
    """Found in review: with --log-line-rate the continuation lines wait unread; they count from
    when they arrived, so the trace stays one entry."""
    s = server("--multiline", "--multiline-window", "300", "--log-line-rate", "4")
    s.send(["trace %d head\n  at a\n  at b" % i for i in range(4)])
    s.wait_count(4, timeout=20)
    assert [r.msg for r in s.search("")] == ["trace %d head\\x0a  at a\\x0a  at b" % i
                                            for i in range(4)]
