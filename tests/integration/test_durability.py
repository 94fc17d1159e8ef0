"""Durability of the on-disk store: crashes (kill -9) at several points with --fsync=always and
batch, torn tails, corrupted segments, clean restarts, rotation and retention, queries during
ingest, a full disk (a small tmpfs made by the test) and a segment removed under the server.

Every server runs on a data directory shared across restarts: each start gets its own run
directory (for its stderr) whose "data" entry is a symlink to the shared directory."""
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import IO_TIMEOUT, Server, assert_clean_stderr, decode

SEG_HDR = b"LCSEG\0\0\x03"           # version 3 (may hold LZ4 frames); byte 8 is 'A' once archived
FRAME_HDR = struct.Struct("<4sIQQIIII")  # magic, payload_len, checksum, first_id, count,
assert FRAME_HDR.size == 40             # raw_len, codec, reserved
OK_RE = re.compile(r"^OK\|(\d+)$")
MB = 1 << 20


# Helpers ------------------------------------------------------------------------------------

class Store:
    """One data directory and the servers started on it, one after another."""

    def __init__(self, base, data=None):
        self.base = base
        self.data = str(data) if data else str(base / "shared-data")
        os.makedirs(self.data, exist_ok=True)
        self.runs = []

    def start(self, *args):
        run = self.base / ("run%d" % len(self.runs))
        run.mkdir()
        os.symlink(self.data, str(run / "data"))
        s = Server(run, [str(a) for a in args])
        self.runs.append(s)
        return s

    def path(self, name):
        return os.path.join(self.data, name)

    def segs(self):
        return sorted(f for f in os.listdir(self.data) if re.match(r"^\d{20}\.seg$", f))

    def seg_bytes(self):
        total = 0
        for f in self.segs():
            try:
                total += os.path.getsize(self.path(f))
            except FileNotFoundError:
                pass
        return total


@pytest.fixture
def stores(tmp_path_factory):
    """Factory: stores() -> a Store; every server started on one is stopped and checked."""
    made = []

    def make(data=None):
        st = Store(tmp_path_factory.mktemp("dur"), data)
        made.append(st)
        return st

    yield make
    errors = []
    for st in made:
        for s in st.runs:
            try:
                if getattr(s, "checked", False):  # stop_clean() already checked it.
                    s._stderr.close()
                    continue
                s.teardown()
            except BaseException as e:
                errors.append(e)
    if errors:
        raise errors[0]


def kill9(s):
    rc = s.stop(signal.SIGKILL, timeout=10)
    assert rc == -signal.SIGKILL, "server exited by itself (%s) before kill -9: %s" % (
        rc, s.stderr()[-3000:])


def stop_clean(s):
    rc = s.stop()
    s.checked = True
    err = s.stderr()
    assert rc == 0, "exit code %s after SIGTERM; stderr:\n%s" % (rc, err[-4000:])
    assert_clean_stderr(err)


def frames_of(path):
    """[(offset, payload_len, first_id, count)] of the frames of a segment file, in order."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == SEG_HDR, "%s: bad segment header %r" % (path, data[:16])
    out, off = [], 16
    while off + 40 <= len(data):
        magic, plen, _sum, first, count, _raw, _codec, _r = FRAME_HDR.unpack_from(data, off)
        assert magic == b"LCFR", "%s: no frame magic at %d" % (path, off)
        out.append((off, plen, first, count))
        off += 40 + plen
    assert off == len(data), "%s: %d trailing bytes after the last frame" % (path, len(data) - off)
    return out


def flip_bytes(path, offset, n=16):
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xA5 for b in old))


def parse_row(line):
    parts = line.split("|", 3)
    assert len(parts) == 4, "garbled row %r" % line[:200]
    assert re.match(r"^\d+$", parts[0]) and re.match(r"^-?\d+$", parts[2]), \
        "garbled row %r" % line[:200]
    return int(parts[0]), parts[1], int(parts[2]), parts[3]


def read_result(conn):
    """One RESULT|n answer: checks n rows then END; returns [(id, level, ts, msg)]."""
    head = decode(conn.readline())
    m = re.match(r"^RESULT\|(\d+)$", head)
    assert m, "expected RESULT|n, got %r" % head[:200]
    n = int(m.group(1))
    rows = [parse_row(decode(l)) for l in conn.readlines(n)]
    end = conn.readline()
    assert end == b"END", "after RESULT|%d rows: expected END, got %r" % (n, end[:200])
    return rows


def search(s, expr="", conn=None):
    conn = conn or s.q
    conn.sendall(("SEARCH " + expr).rstrip() + "\n")
    return read_result(conn)


def ingest(s, msgs, level="INFO", ts="-", chunk=2000):
    """Pipeline framed lines on one connection (a thread reads the replies); returns replies."""
    c = s.connect_log(timeout=30)
    replies = []

    def reader():
        for _ in range(len(msgs)):
            replies.append(decode(c.readline()))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i in range(0, len(msgs), chunk):
            c.sendall("".join("LOG|%s|%s|%s\n" % (level, ts, m) for m in msgs[i:i + chunk]))
        t.join(60)
        assert not t.is_alive(), "replies missing: got %d of %d" % (len(replies), len(msgs))
    finally:
        c.close()
    assert len(replies) == len(msgs), "got %d replies for %d lines" % (len(replies), len(msgs))
    return replies


def ingest_ok(s, msgs, **kw):
    """ingest() and require OK for every line; returns the ids."""
    ids = []
    for m, r in zip(msgs, ingest(s, msgs, **kw)):
        g = OK_RE.match(r)
        assert g, "line %r refused: %r" % (m[:60], r)
        ids.append(int(g.group(1)))
    assert all(a < b for a, b in zip(ids, ids[1:])), "ids not increasing"
    return ids


def unique_msgs(tag, n, size=40):
    """n distinct messages of about size+len(tag) bytes (random hex, not compressible much)."""
    raw = os.urandom(n * (size // 2)).hex()
    step = size
    return ["%s-%d-%s" % (tag, i, raw[i * step:(i + 1) * step]) for i in range(n)]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("timed out after %.0f s waiting for %s (last %r)" % (timeout, what, last))


class Pipeliner:
    """One ingest connection: a sender thread pipelines framed lines `LOG|INFO|-|c<k>-<n>-<hex>`
    (at most `window` unanswered), a receiver thread records the replies in order."""

    def __init__(self, port, k, window=3000, batch=100, pause=0.01):
        self.k, self.window, self.batch, self.pause = k, window, batch, pause
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.sent, self.replies = [], []
        self.cv = threading.Condition()
        self.stop_flag = False
        self.rx_done = False
        self.error = None
        self.tx = threading.Thread(target=self._send, daemon=True)
        self.rx = threading.Thread(target=self._recv, daemon=True)
        self.tx.start()
        self.rx.start()

    def _send(self):
        n = 0
        try:
            while True:
                with self.cv:
                    while (not self.stop_flag and not self.rx_done
                           and len(self.sent) - len(self.replies) > self.window):
                        self.cv.wait(0.5)
                    if self.stop_flag or self.rx_done:
                        return
                pad = os.urandom(self.batch * 12).hex()
                msgs = ["c%d-%d-%s" % (self.k, n + i, pad[i * 24:i * 24 + 8 + (n + i) % 17])
                        for i in range(self.batch)]
                n += self.batch
                with self.cv:
                    self.sent.extend(msgs)
                self.sock.sendall("".join("LOG|INFO|-|%s\n" % m for m in msgs).encode())
                time.sleep(self.pause)  # Keep the volume to verify modest.
        except OSError:
            pass  # The server died.

    def _recv(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                with self.cv:
                    self.replies.extend(decode(l) for l in lines)
                    self.cv.notify_all()
        except OSError:
            pass
        finally:
            with self.cv:
                self.rx_done = True
                self.cv.notify_all()

    def finish(self, timeout=15):
        with self.cv:
            self.stop_flag = True
            self.cv.notify_all()
        self.tx.join(timeout)
        # A live server answers what was sent; then the receiver is let go.
        deadline = time.monotonic() + timeout
        with self.cv:
            while not self.rx_done and len(self.replies) < len(self.sent) \
                    and time.monotonic() < deadline:
                self.cv.wait(0.2)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.rx.join(timeout)
        assert not self.tx.is_alive() and not self.rx.is_alive(), "client %d hung" % self.k
        self.sock.close()

    def acked(self):
        """{id: message} of the acknowledged lines; also checks that no reply was an error."""
        out = {}
        assert len(self.replies) <= len(self.sent)
        for i, r in enumerate(self.replies):
            m = OK_RE.match(r)
            assert m, "client %d line %d (%r) got %r" % (self.k, i, self.sent[i], r)
            out[int(m.group(1))] = self.sent[i]
        return out


# 1, 2. Crashes ----------------------------------------------------------------------------

def check_all_present(s, acked, sent_set, t0):
    """Every acknowledged id is there with its exact message; no row is garbled."""
    rows = search(s)
    ids = [r[0] for r in rows]
    assert all(a < b for a, b in zip(ids, ids[1:])), "ids not strictly increasing after restart"
    now = time.time()
    by_id = {}
    for rid, level, ts, msg in rows:
        assert level == "INFO", "garbled row %r" % ((rid, level, ts, msg),)
        assert re.match(r"^c\d-\d+-[0-9a-f]{8,24}$", msg) and msg in sent_set, \
            "row %d holds a message that was never sent: %r" % (rid, msg[:200])
        assert t0 - 5 <= ts <= now + 5, "row %d has a garbled timestamp %d" % (rid, ts)
        by_id[rid] = msg
    missing = [i for i in acked if i not in by_id]
    assert not missing, "%d acknowledged ids lost after kill -9, e.g. %s (of %d acked)" % (
        len(missing), sorted(missing)[:10], len(acked))
    wrong = [(i, acked[i], by_id[i]) for i in acked if by_id[i] != acked[i]]
    assert not wrong, "%d acknowledged ids hold other content, e.g. %r" % (len(wrong), wrong[:3])
    assert len(set(by_id.values())) == len(by_id), "a message is stored twice"
    count = s.count()
    assert count == len(rows), "COUNT %d but SEARCH returned %d rows" % (count, len(rows))
    assert count >= len(acked)
    return rows


def crash_run(stores, policy, kill_after):
    st = stores()
    args = ["--fsync", policy]
    t0 = time.time()
    a = st.start(*args)
    clients = [Pipeliner(a.log_port, k) for k in range(4)]
    time.sleep(kill_after * 0.8)
    early = sum(len(c.replies) for c in clients)
    time.sleep(kill_after * 0.2)
    progress = sum(len(c.replies) for c in clients)
    kill9(a)
    for c in clients:
        c.finish()
    acked = {}
    for c in clients:
        acked.update(c.acked())
    sent_set = set()
    for c in clients:
        sent_set.update(c.sent)
    assert progress > 0 and len(acked) > 0, "nothing was acknowledged before the kill"
    # Mid-stream: acknowledgements were still coming in just before the kill.
    assert progress > early, "ingest had stalled before the kill"

    b = st.start(*args)
    rows = check_all_present(b, acked, sent_set, t0)
    top = max([r[0] for r in rows] + list(acked))
    new_id = b.log("INFO", "-", "after-crash-%s" % policy)
    assert new_id > top, "new id %d not above the earlier ids (max %d)" % (new_id, top)
    stop_clean(b)

    # A clean restart after the recovery serves the same rows, plus the new one.
    c = st.start(*args)
    rows2 = search(c)
    assert rows2 == rows + [(new_id, "INFO", rows2[-1][2], "after-crash-%s" % policy)], \
        "the stored entries changed across the clean restart after recovery"
    return len(acked)


@pytest.mark.parametrize("kill_after", [0.3, 1.0, 2.0])
def test_crash_fsync_always_keeps_acknowledged_lines(stores, kill_after):
    n = crash_run(stores, "always", kill_after)
    assert n > 0


@pytest.mark.parametrize("kill_after", [0.3, 1.0, 2.0])
def test_crash_fsync_batch_keeps_acknowledged_lines(stores, kill_after):
    n = crash_run(stores, "batch", kill_after)
    assert n > 0


def test_batch_fsync_follows_writes_and_only_writes(stores):
    """--fsync batch: an fdatasync (on the syncer thread) follows written lines within
    --fsync-interval, and an idle store is not synced again and again."""
    a = stores().start("--fsync", "batch", "--fsync-interval", "50")
    ingest_ok(a, ["batch %d" % i for i in range(20)])
    before = int(a.stats()["fsyncs"])
    ingest_ok(a, ["more %d" % i for i in range(20)])
    wait_for(lambda: int(a.stats()["fsyncs"]) > before, 5, "an fsync after the write")
    time.sleep(0.3)  # Any fsync still due for the write is done by now.
    idle = int(a.stats()["fsyncs"])
    time.sleep(0.5)  # Ten intervals with nothing written.
    assert int(a.stats()["fsyncs"]) == idle
    stop_clean(a)


def test_kill_right_after_restart_then_write_and_restart(stores):
    """kill -9 a server that wrote nothing (its fresh segment stays empty on disk); the next
    run's acknowledged lines must survive that run's clean stop."""
    st = stores()
    a = st.start()
    ids = ingest_ok(a, ["first %d" % i for i in range(10)])
    stop_clean(a)
    b = st.start()
    assert b.count() == 10
    kill9(b)  # Leaves an empty segment named after the next id.
    c = st.start()
    assert c.count() == 10
    nid = c.log("INFO", "-", "second")
    assert nid == ids[-1] + 1
    assert [r[3] for r in search(c)] == ["first %d" % i for i in range(10)] + ["second"]
    stop_clean(c)
    d = st.start()
    rows = search(d)
    assert [r[3] for r in rows] == ["first %d" % i for i in range(10)] + ["second"], \
        "line acknowledged as OK|%d lost after a clean stop; on disk: %s" % (nid, st.segs())


# 3. Torn tail -----------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", ["half-header", "header-and-part-payload"])
def test_torn_tail_is_truncated(stores, garbage):
    st = stores()
    a = st.start()
    msgs = unique_msgs("torn", 3000)
    ids = ingest_ok(a, msgs)
    stop_clean(a)
    seg = st.path(st.segs()[-1])
    idx = seg[:-4] + ".idx"
    size = os.path.getsize(seg)
    assert os.path.exists(idx), "no index written at clean shutdown"
    if garbage == "half-header":
        junk = FRAME_HDR.pack(b"LCFR", 5000, 1234, ids[-1] + 1, 10, 9000, 1, 0)[:20]
    else:
        junk = FRAME_HDR.pack(b"LCFR", 5000, 1234, ids[-1] + 1, 10, 9000, 1, 0) + os.urandom(777)
    with open(seg, "ab") as f:
        f.write(junk + os.urandom(100))
    os.unlink(idx)

    b = st.start()
    err = b.stderr()
    assert re.search(r"torn tail.*truncated", err), "no 'torn tail' report:\n%s" % err[-3000:]
    assert os.path.getsize(seg) == size, "torn tail not truncated: %d bytes, was %d" % (
        os.path.getsize(seg), size)
    rows = search(b)
    assert [(r[0], r[3]) for r in rows] == list(zip(ids, msgs))
    nid = b.log("WARN", "-", "after torn tail")
    assert nid > ids[-1]
    assert b.stats()["damaged_bytes"] == "0", "a torn tail is not damage elsewhere"
    stop_clean(b)
    c = st.start()
    rows = search(c)
    assert [(r[0], r[3]) for r in rows] == list(zip(ids, msgs)) + [(nid, "after torn tail")]


# 4. Corruption in closed segments --------------------------------------------------------

def test_corruption_in_closed_segment(stores):
    st = stores()
    args = ["--segment-size", "1M"]
    a = st.start(*args)
    msgs = unique_msgs("corr", 60000, size=80)  # about 5.5 MB raw, half that compressed
    ids = ingest_ok(a, msgs)
    stop_clean(a)
    content = dict(zip(ids, msgs))
    segs = st.segs()
    assert len(segs) >= 3, "expected at least 3 segments, got %s" % segs
    # (a) First segment: damage a frame in the middle of its payload, drop its index.
    first = st.path(segs[0])
    fr = frames_of(first)
    victim = fr[len(fr) // 2]
    off, plen, vfirst, vcount = victim
    flip_bytes(first, off + 40 + plen // 2)
    os.unlink(first[:-4] + ".idx")
    lost_a = set(range(vfirst, vfirst + vcount))
    # (b) Second segment, index kept: only reading the block can notice.
    second = st.path(segs[1])
    fr2 = frames_of(second)
    assert os.path.exists(second[:-4] + ".idx")
    off2, plen2, vfirst2, vcount2 = fr2[len(fr2) // 2]
    flip_bytes(second, off2 + 40 + plen2 // 2)
    lost_b = set(range(vfirst2, vfirst2 + vcount2))

    b = st.start(*args)
    err = b.stderr()
    m = re.search(r"%s: damaged bytes (\d+)\.\.(\d+)" % re.escape(segs[0]), err)
    assert m, "no damaged range reported for %s:\n%s" % (segs[0], err[-3000:])
    assert int(m.group(1)) == off, "damaged range starts at %s, the bad frame at %d" % (
        m.group(1), off)
    assert int(b.stats()["damaged_bytes"]) > 0
    # A search touching the block of (b): no garbage, the block is skipped and logged.
    probe = content[vfirst2 + vcount2 // 2]
    lines = b.query("QUERY|KEYWORD|" + probe)
    assert lines[0].startswith("RESULT|"), lines[:3]
    for l in lines[1:-1]:
        rid, _, _, msg = parse_row(l)
        assert content.get(rid) == msg, "corrupt row served: %r" % l[:200]
    wait_for(lambda: "unreadable or corrupt" in b.stderr(), 5,
             "the corrupt block to be reported")
    rows = search(b)
    assert b.alive()
    got = {}
    for rid, level, _, msg in rows:
        assert content.get(rid) == msg and level == "INFO", "corrupt row served: %r" % (
            (rid, level, msg[:100]),)
        got[rid] = msg
    missing = [i for i in ids if i not in got and i not in lost_a and i not in lost_b]
    assert not missing, "%d entries outside the damaged frames are missing, e.g. %s" % (
        len(missing), missing[:10])
    assert not lost_a & set(got), "entries of the damaged frame were served"
    # The counts agree with what can be served.
    assert b.count() == len(rows), "COUNT %d but SEARCH serves %d rows" % (b.count(), len(rows))
    assert b.query("PING") == ["PONG"]


# 5. Clean restart -------------------------------------------------------------------------

LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def test_restart_preserves_ids_and_queries(stores):
    st = stores()
    args = ["--segment-size", "1M"]
    a = st.start(*args)
    base_ts = 1700000000
    ids = []
    for lvl_i, lvl in enumerate(LEVELS):
        msgs = ["%s disk %s node-%d %s" % (lvl.lower(), "full" if i % 7 == 0 else "ok", i % 13,
                                           os.urandom(20).hex()) for i in range(4000)]
        ids += ingest_ok(a, msgs, level=lvl, ts=str(base_ts + lvl_i * 1000))
    queries = ["", "level:ERROR", "disk full", "node-3 -level:INFO",
               "from:%d to:%d" % (base_ts + 1000, base_ts + 2000), "/node-1[02]/"]
    before = {q: search(a, q) for q in queries}
    counts = {q: a.count(q) for q in queries}
    s1 = a.stats()
    assert int(s1["last_id"]) == ids[-1]
    stop_clean(a)

    for run in range(2):
        b = st.start(*args)
        err = b.stderr()
        assert re.search(r"recovered .*\(0 unindexed bytes read\)", err), \
            "a clean restart read unindexed data:\n%s" % err[-3000:]
        for q in queries:
            assert search(b, q) == before[q], "SEARCH %s differs after restart" % q
            assert b.count(q) == counts[q], "COUNT %s differs after restart" % q
        s2 = b.stats()
        for k in ["entries", "first_id", "last_id", "oldest_ts", "newest_ts"] + \
                ["level." + l for l in LEVELS]:
            assert s2[k] == s1[k], "STATS %s was %s, after restart %s" % (k, s1[k], s2[k])
        if run == 0:
            stop_clean(b)
    nid = b.log("ERROR", "-", "next line")
    assert nid == ids[-1] + 1, "next id %d, expected %d" % (nid, ids[-1] + 1)


# 6. Rotation and retention ---------------------------------------------------------------

def test_rotation_and_retention_by_size(stores):
    st = stores()
    limit, segsize = 3 * MB, 1 * MB
    a = st.start("--segment-size", "1M", "--retention-size", "3M", "--compression-level", "0")
    peak = [0]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            peak[0] = max(peak[0], st.seg_bytes())
            time.sleep(0.01)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    ids, msgs = [], []
    try:
        for part in range(4):  # 4 x ~2 MB
            m = unique_msgs("ret%d" % part, 20000, size=96)
            ids += ingest_ok(a, m)
            msgs += m
    finally:
        done.set()
        t.join(5)
    content = dict(zip(ids, msgs))
    wait_for(lambda: st.seg_bytes() <= limit, 5, ".seg files to shrink to --retention-size")
    s = a.stats()
    assert int(s["segments_deleted"]) > 0
    assert int(s["entries"]) + int(s["evicted"]) == int(s["appended"]) == len(ids), s
    assert int(s["entries"]) < len(ids)
    assert peak[0] <= limit + 2 * segsize + 256 * 1024, \
        "the .seg files reached %d bytes with --retention-size %d and --segment-size %d" % (
            peak[0], limit, segsize)
    rows = search(a)
    assert rows, "nothing left"
    assert rows[0][0] > ids[0], "the oldest entry survived retention"
    assert rows[-1][0] == ids[-1], "the newest entry is gone"
    assert [r[0] for r in rows] == ids[-len(rows):], "retention left a hole"
    for rid, _, _, msg in rows:
        assert content[rid] == msg
    assert a.count() == int(s["entries"]) == len(rows)
    assert int(s["segments"]) == len(st.segs())


def test_retention_by_age(stores):
    st = stores()
    a = st.start("--segment-size", "1M", "--compression-level", "0", "--retention-age", "1d")
    old_ts = int(time.time()) - 2 * 86400
    old_ids = ingest_ok(a, unique_msgs("old", 12000, size=96), ts=str(old_ts))  # ~1.4 MB
    new_msgs = unique_msgs("new", 2000)
    new_ids = ingest_ok(a, new_msgs)
    first_seg = "%020d.seg" % old_ids[0]
    wait_for(lambda: int(a.stats()["segments_deleted"]) >= 1, 5,
             "--retention-age to delete the old segment")
    assert not os.path.exists(st.path(first_seg)), "%s still on disk" % first_seg
    s = a.stats()
    assert int(s["entries"]) + int(s["evicted"]) == int(s["appended"]), s
    rows = search(a)
    got = {r[0]: r[3] for r in rows}
    assert old_ids[0] not in got, "the oldest entry survived --retention-age"
    assert all(got.get(i) == m for i, m in zip(new_ids, new_msgs)), "new entries were deleted"
    assert all(r[2] >= old_ts for r in rows)
    # A restart with the same retention keeps the new entries.
    stop_clean(a)
    b = st.start("--retention-age", "1d")
    time.sleep(1.5)  # Let the writer run its retention pass.
    got = {r[0]: r[3] for r in search(b)}
    assert all(got.get(i) == m for i, m in zip(new_ids, new_msgs)), \
        "new entries deleted by --retention-age after restart"


# 7. Queries during ingest ----------------------------------------------------------------

def test_queries_during_ingest_are_consistent(stores):
    st = stores()
    a = st.start("--segment-size", "1M")
    clients = [Pipeliner(a.log_port, k, window=2000, pause=0.02) for k in range(2)]
    q = a.connect_query(timeout=30)
    last_count = last_kw = 0
    results = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            n = a.count()
            assert n >= last_count, "COUNT went down from %d to %d" % (last_count, n)
            last_count = n
            for expr in ('"c1-"', '"c0-" limit:300', "/c1-[0-9]*7-/", ""):
                q.sendall("SEARCH %s\n" % expr)
                rows = read_result(q)
                rids = [r[0] for r in rows]
                assert all(x < y for x, y in zip(rids, rids[1:])), \
                    "SEARCH %s: ids not strictly increasing" % expr
                if expr == "":
                    assert len(rows) >= n, "SEARCH saw %d rows after COUNT %d" % (len(rows), n)
                if expr == '"c0-" limit:300':
                    assert len(rows) <= 300
                for r in rows:
                    assert r[1] == "INFO" and re.match(r"^c\d-\d+-[0-9a-f]+$", r[3]), \
                        "garbled row %r" % (r,)
                    if expr == '"c1-"':
                        assert r[3].startswith("c1-"), "SEARCH %s returned %r" % (expr, r)
                results += 1
            q.sendall('COUNT "c1-"\n')
            kw = int(decode(q.readline()).split("|")[1])
            assert kw >= last_kw, "COUNT \"c1-\" went down from %d to %d" % (last_kw, kw)
            last_kw = kw
    finally:
        q.close()
        for c in clients:
            c.finish()
    acked = {}
    for c in clients:
        acked.update(c.acked())
    assert results > 8 and last_count > 0
    # Every acknowledged line is stored.
    wait_for(lambda: a.count() >= len(acked), 10, "COUNT to reach the acknowledged lines")
    got = {r[0]: r[3] for r in search(a)}
    assert all(got.get(i) == m for i, m in acked.items())


def test_queries_while_retention_deletes_read_whole_entries(stores):
    """Readers hold blocks, not the store's lock: retention deletes segments under running
    queries (and the cache is small, so blocks are read from their files). Every row is whole,
    ids increase, a promised row deleted meanwhile comes as the marker row at the end, and the
    server stays clean under the sanitizers."""
    st = stores()
    a = st.start("--segment-size", "1M", "--retention-size", "4M", "--compression-level", "0",
                 "--memory-limit", "4M")
    clients = [Pipeliner(a.log_port, k, window=4000, batch=200, pause=0) for k in range(2)]
    q = a.connect_query(timeout=30)
    marker = "(entry deleted before it could be sent)"
    searches = 0
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline or int(a.stats()["segments_deleted"]) < 2:
            assert time.monotonic() < deadline + 20, "retention never deleted two segments"
            for expr in ("", "/c1-[0-9]*7-/", '"c0-" limit:500'):
                q.sendall("SEARCH %s\n" % expr)
                rows = [r for r in read_result(q)]
                real = [r for r in rows if r[3] != marker]
                assert rows[:len(real)] == real, "SEARCH %s: a marker row before a real one" % expr
                rids = [r[0] for r in real]
                assert all(x < y for x, y in zip(rids, rids[1:])), \
                    "SEARCH %s: ids not strictly increasing" % expr
                for r in real:
                    assert r[1] == "INFO" and re.match(r"^c\d-\d+-[0-9a-f]+$", r[3]), \
                        "garbled row %r" % (r,)
                searches += 1
            q.sendall('COUNT "c1-"\n')
            assert re.match(r"^COUNT\|\d+$", decode(q.readline()))
    finally:
        q.close()
        for c in clients:
            c.finish()
    assert searches >= 6
    s = a.stats()
    assert int(s["entries"]) + int(s["evicted"]) == int(s["appended"]), s
    stop_clean(a)


# 8. Disk full ----------------------------------------------------------------------------

class Tmpfs:
    def __init__(self, path, size):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", self.path],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            if "permission denied" in p.stderr.lower() or "must be superuser" in p.stderr.lower() \
                    or "operation not permitted" in p.stderr.lower():
                pytest.skip("cannot mount a tmpfs here (EPERM): %s" % p.stderr.strip())
            pytest.fail("mount tmpfs failed: %s" % p.stderr)

    def umount(self):
        p = subprocess.run(["umount", self.path], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            subprocess.run(["umount", "-l", self.path], capture_output=True, timeout=30)


def kill_all(st):
    for s in st.runs:
        if s.alive():
            s.stop(signal.SIGKILL, timeout=10)


def send_batch(conn, msgs):
    conn.sendall("".join("LOG|INFO|-|%s\n" % m for m in msgs))
    return [decode(r) for r in conn.readlines(len(msgs))]


def test_disk_full_no_false_acknowledgements(stores, tmp_path):
    fs = Tmpfs(tmp_path / "mnt", "24m")
    st = None
    try:
        filler = os.path.join(fs.path, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (6 * MB))
        st = stores(os.path.join(fs.path, "data"))
        args = ["--retention-min-free", "0", "--segment-size", "1M", "--compression-level", "0"]
        a = st.start(*args)
        acked, refused = {}, []
        first_error = None
        extra = 0
        conn = a.connect_log(timeout=30)
        for batch in range(400):  # at most 400 x 100 KB = 40 MB
            msgs = unique_msgs("full%d" % batch, 100, size=1000)
            for m, r in zip(msgs, send_batch(conn, msgs)):
                g = OK_RE.match(r)
                if g:
                    acked[int(g.group(1))] = m
                else:
                    assert r.startswith("ERROR|"), "reply %r" % r
                    refused.append((batch, m, r))
                    if first_error is None:
                        first_error = batch
            if first_error is not None:
                extra += 1
                if extra > 40:  # 4 MB more after the first refusal
                    break
        assert first_error is not None, "40 MB went into a 24 MB tmpfs without an error"
        last = [r for r in refused if r[0] == batch]
        assert len(last) == 100, \
            "with the disk full, %d of the last 100 lines were acknowledged" % (100 - len(last))
        assert a.alive() and a.query("PING") == ["PONG"]
        s = a.stats()
        assert int(s["write_errors"]) > 0, s
        assert int(s["failed_entries"]) >= len(refused), s
        assert "no space" in s["store_error"].lower(), "store_error is %r" % s["store_error"]
        assert "No space left on device" in a.stderr()
        # Space comes back: writing resumes by itself.
        os.unlink(filler)
        ok_again = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ok_again:
            msgs = unique_msgs("again", 50, size=200)
            reps = send_batch(conn, msgs)
            for m, r in zip(msgs, reps):
                g = OK_RE.match(r)
                if g:
                    acked[int(g.group(1))] = m
            ok_again = all(OK_RE.match(r) for r in reps)
            if not ok_again:
                time.sleep(0.2)
        conn.close()
        assert ok_again, "writes were still refused after space returned"
        assert a.stats()["store_error"] == "none"
        stop_clean(a)
        # Every acknowledged line is on disk; no refused line is.
        b = st.start(*args)
        got = {r[0]: r[3] for r in search(b)}
        lost = [i for i in acked if got.get(i) != acked[i]]
        assert not lost, "%d acknowledged lines lost after the disk filled, e.g. ids %s" % (
            len(lost), lost[:10])
        stored = set(got.values())
        ghosts = [m for _, m, _ in refused if m in stored]
        assert not ghosts, "%d lines answered ERROR were stored anyway" % len(ghosts)
        stop_clean(b)
    finally:
        if st:
            kill_all(st)
        fs.umount()


def test_min_free_above_free_space_refuses_writes(stores, tmp_path):
    fs = Tmpfs(tmp_path / "mnt", "24m")
    st = None
    try:
        st = stores(os.path.join(fs.path, "data"))
        a = st.start("--retention-min-free", "100M")
        msgs = unique_msgs("nospace", 20)
        reps = ingest(a, msgs)
        assert all(r.startswith("ERROR|") for r in reps), \
            "writes accepted below --retention-min-free: %r" % reps[:5]
        s = a.stats()
        assert "retention-min-free" in s["store_error"], s["store_error"]
        assert int(s["write_errors"]) > 0 and int(s["entries"]) == 0
        assert a.count() == 0
        assert a.alive()
        stop_clean(a)
    finally:
        if st:
            kill_all(st)
        fs.umount()


# 9. A segment removed under the server ---------------------------------------------------

@pytest.mark.parametrize("history", ["fresh", "after-restart"])
def test_active_segment_removed(stores, history):
    st = stores()
    a = st.start()
    ids0 = ingest_ok(a, unique_msgs("before", 1000))
    if history == "after-restart":
        stop_clean(a)
        a = st.start()
        ids0 += ingest_ok(a, unique_msgs("before2", 1000))
    active = st.segs()[-1]
    os.unlink(st.path(active))
    acked, errors = {}, 0
    conn = a.connect_log()
    for batch in range(20):
        msgs = unique_msgs("after%d" % batch, 50)
        for m, r in zip(msgs, send_batch(conn, msgs)):
            g = OK_RE.match(r)
            if g:
                acked[int(g.group(1))] = m
            else:
                assert r == "ERROR|store unavailable", r
                errors += 1
        time.sleep(0.02)
    last = send_batch(conn, ["final line"])[0]
    conn.close()
    assert OK_RE.match(last), "the server does not write again after the removal: %r" % last
    acked[int(last.split("|")[1])] = "final line"
    assert a.alive()
    assert "removed while in use" in a.stderr()
    rc = a.stop()  # Checked below, after the data.
    a.checked = True
    a_err = a.stderr()
    b = st.start()
    got = {r[0]: r[3] for r in search(b)}
    nid = b.log("INFO", "-", "after restart")
    problems = []
    lost = sorted(i for i in acked if got.get(i) != acked[i])
    if lost:
        problems.append("%d lines acknowledged after the segment was removed are gone after the "
                        "restart (%d refused), e.g. ids %s" % (len(lost), errors, lost[:10]))
    if nid <= max(acked):
        problems.append("after the restart the id %d was issued again (ids up to %d had been "
                        "acknowledged)" % (nid, max(acked)))
    if rc != 0:
        problems.append("exit code %s after SIGTERM; stderr:\n%s" % (rc, a_err[-2500:]))
    assert not problems, "\n".join(problems)
    assert_clean_stderr(a_err)


# Archiving (--archive-level) ------------------------------------------------------------------

def loglike_msgs(tag, n):
    """Lines shaped like real logs (words from small sets, numbers, an id): what a higher zstd
    level wins on. (Mostly random hex is no good: level 1 stores it smaller than 3 to 12.)"""
    rng = random.Random(n)
    paths = ["/api/v1/users", "/api/v1/orders", "/login", "/static/app.js", "/api/v2/search"]
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    return ["%s %d %s %s %d %dms user=%s shard=%d region=eu-west-%d req=%08x" % (
        tag, i, rng.choice(["GET", "POST"]), rng.choice(paths), rng.choice([200, 200, 404, 500]),
        rng.randrange(1, 900), rng.choice(users), rng.randrange(64), rng.randrange(1, 4),
        rng.getrandbits(32)) for i in range(n)]


def archived_segs(st):
    out = []
    for f in st.segs():
        with open(st.path(f), "rb") as fh:
            if fh.read(9)[8:9] == b"A":
                out.append(f)
    return out


def all_archived(s):
    st = s.stats()
    assert int(st["segments"]) >= 3, "too little data to seal two segments: %s" % st
    return int(st["segments_archived"]) == int(st["segments"]) - 1


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_archiver_recompresses_sealed_segments_losslessly(stores, codec):
    """Sealed segments are rewritten at --archive-level: the same ids, entries and answers,
    fewer bytes on disk; a restart reads them from their new indexes."""
    msgs = loglike_msgs("arch", 160000)
    plain_store = stores()
    plain = plain_store.start("--segment-size", "1M", "--archive-level", "0", "--codec", codec)
    assert ingest_ok(plain, msgs) == list(range(1, len(msgs) + 1))
    st = stores()
    args = ["--segment-size", "1M", "--archive-level", "12", "--codec", codec]
    a = st.start(*args)
    assert ingest_ok(a, msgs) == list(range(1, len(msgs) + 1))
    wait_for(lambda: all_archived(a), 180, "every sealed segment archived")
    segs = st.segs()
    assert archived_segs(st) == segs[:-1], "not archived: %s" % (set(segs[:-1]) -
                                                                 set(archived_segs(st)))
    for f in segs:
        frames_of(st.path(f))          # Whole frames only, after the rewrite too.
    assert not [f for f in os.listdir(st.data) if f.endswith(".arch")]
    sp, sa = plain.stats(), a.stats()
    assert sa["raw_bytes"] == sp["raw_bytes"] and sa["entries"] == sp["entries"]
    assert int(sa["disk_bytes"]) < 0.9 * int(sp["disk_bytes"]), (sa["disk_bytes"],
                                                                  sp["disk_bytes"])
    assert "archived 00000000000000000001.seg at %s level 12" % codec in a.stderr()

    def answers(s):
        strip = lambda rows: [(r[0], r[1], r[3]) for r in rows]   # Receive times differ.
        return {q: (strip(search(s, q)), s.count(q)) for q in
                ["", "login", "user:bob -POST", "/ 1[0-9]ms /", "arch-nothing"]}
    want = answers(plain)
    assert answers(a) == want
    stop_clean(a)
    b = st.start(*args)
    assert re.search(r"recovered .*\(0 unindexed bytes read\)", b.stderr()), b.stderr()[-2000:]
    assert answers(b) == want
    # Kept across the restart (the segment written before it is archived now too).
    assert int(b.stats()["segments_archived"]) >= int(sa["segments_archived"])
    assert b.log("INFO", "-", "after the archive") == len(msgs) + 1


def test_codecs_mix_in_one_store(stores):
    """--codec applies to what is written from then on: a store written with zstd, then lz4,
    then zstd again reads every entry whatever each frame holds, after each restart and once
    the archiver has rewritten the sealed segments in the codec of the day."""
    st = stores()
    msgs, ids = [], []
    for n, (codec, count) in enumerate([("zstd", 120000), ("lz4", 60000), ("zstd", 60000)]):
        s = st.start("--segment-size", "1M", "--codec", codec, "--archive-level", "9")
        assert s.count("") == len(msgs)
        more = loglike_msgs("mix%d" % n, count)
        ids += ingest_ok(s, more)
        msgs += more
        wait_for(lambda: all_archived(s), 180, "every sealed segment archived")
        assert s.count("") == len(msgs)
        for k in range(n + 1):
            assert s.count("mix%d" % k) == sum(m.startswith("mix%d " % k) for m in msgs)
        stop_clean(s)
    segs = st.segs()
    with open(st.path(segs[-1]), "rb") as fh:
        assert fh.read(8) == b"LCSEG\0\0\3"   # Version 3: may hold LZ4 frames.
    # Segments the version before wrote (2, archived or not: zstd frames only) are still read.
    for f, hdr in [(segs[0], b"LCSEG\0\0\2A"), (segs[-1], b"LCSEG\0\0\2")]:
        with open(st.path(f), "r+b") as fh:
            fh.write(hdr)
    s = st.start("--segment-size", "1M")
    assert [(r[0], r[3]) for r in search(s)] == list(zip(ids, msgs))
    assert s.stats()["damaged_bytes"] == "0"
    # The newest one takes LZ4 frames from now on: it says it is version 3 again.
    with open(st.path(segs[-1]), "rb") as fh:
        assert fh.read(8) == b"LCSEG\0\0\3"
    with open(st.path(segs[0]), "rb") as fh:
        assert fh.read(9) == b"LCSEG\0\0\2A"     # Sealed ones are left as they are.


@pytest.mark.parametrize("kill_after", [0.05, 0.4, 1.5])
def test_kill_during_archiving_loses_nothing(stores, kill_after):
    """kill -9 while sealed segments are being rewritten (level 19 is slow): every entry is
    there after the restart, each segment whole in its old or its new form."""
    msgs = loglike_msgs("k9", 100000)
    st = stores()
    a = st.start("--segment-size", "1M", "--archive-level", "19")
    ids = ingest_ok(a, msgs)
    time.sleep(kill_after)
    kill9(a)
    b = st.start("--segment-size", "1M", "--archive-level", "0")
    assert not [f for f in os.listdir(st.data) if f.endswith(".arch")], "a stale .arch file"
    rows = search(b)
    assert [(r[0], r[3]) for r in rows] == list(zip(ids, msgs))
    assert b.stats()["damaged_bytes"] == "0"
    for f in st.segs():
        frames_of(st.path(f))


def test_queries_while_archiving_see_every_entry(stores):
    msgs = loglike_msgs("live", 160000)
    st = stores()
    a = st.start("--segment-size", "1M", "--archive-level", "15")
    ingest_ok(a, msgs)
    logins = sum(" /login " in m for m in msgs)
    # The archiver runs at nice 19: on a busy machine it waits for idle CPU.
    deadline = time.monotonic() + 180
    while not all_archived(a):
        assert a.count("") == len(msgs)
        assert a.count("login") == logins
        assert time.monotonic() < deadline, "archiving did not finish in 180 s"
    assert a.count("req") == len(msgs) and logins > 0


def test_archiver_keeps_out_of_the_space_retention_keeps_free(stores, tmp_path):
    """Found in review: the archiver's copy of a segment could push free space under
    --retention-min-free, and retention then deleted data to make room for it. It starts a copy
    only when the copy fits beside min-free (and 16 MiB of slack)."""
    fs = Tmpfs(tmp_path / "mnt", "64m")
    try:
        st = stores(os.path.join(fs.path, "data"))
        # 64 MB free at first; the sealed segments leave about 60 MB, under 50M + 1M + 16 MiB.
        a = st.start("--segment-size", "1M", "--archive-level", "12",
                     "--retention-min-free", "50M")
        ingest_ok(a, loglike_msgs("space", 160000))
        time.sleep(2.5)                  # The archivers look every second.
        s1 = a.stats()
        assert int(s1["segments"]) >= 3, s1
        assert s1["segments_archived"] == "0" and s1["segments_deleted"] == "0", s1
        assert not [f for f in os.listdir(st.data) if f.endswith(".arch")]
        kill_all(st)
    finally:
        fs.umount()
