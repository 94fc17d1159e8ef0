"""Views of a cluster in its order: arrival time, then id.

A cluster has no single id order (each node numbers its own lines), so a view that starts or
continues at an entry — HTTP before= paging, CHATHISTORY, a live tail's Last-Event-ID, LogBot's
!tail, the console's histogram — reads every partition's copy in arrival order, exactly, and
merges them. Each test sends framed lines to several nodes and checks every view against the
acknowledged lines, by id and text: every entry once, no gaps, in order.
"""
import json
import os
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import HOST, LineConn
from natscluster import LogcasterNode
from test_cluster import all_rows, count_or_error, send_acked, start_nodes, wait_count


def get(node, path):
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (HOST, node.http_port, path),
                                    timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def key(e):
    """An entry's place in the cluster's order (LOG|..|-| lines: their time is the arrival)."""
    return (e["ts_ms"], e["id"])


@pytest.fixture(scope="module")
def module_nodes(module_nats_cluster, tmp_path_factory):
    """Three nodes shared by the module's tests; stopped and checked after them."""
    made = []

    def factory(cluster, name, *args):
        made.append(LogcasterNode(tmp_path_factory.mktemp("node-%s" % name), cluster, name,
                                  *args))
        return made[-1]

    yield start_nodes(module_nats_cluster, factory, ["a", "b", "c"])
    for n in made:
        n.teardown()


@pytest.fixture(scope="module")
def three(module_nodes):
    """Three nodes and 3 x 300 acknowledged lines, sent to all three at once."""
    import threading
    nodes = module_nodes
    acked, errs = {}, []

    def send(k, n):
        got, errors = send_acked(n, ["pagex node%d line %d" % (k, i) for i in range(300)],
                                 conns=2, pace=0.01)
        acked.update(got)
        errs.extend(errors)

    ts = [threading.Thread(target=send, args=(k, n)) for k, n in enumerate(nodes)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errs and len(acked) == 900
    for n in nodes:
        wait_count(n, "pagex", 900)
    return nodes, acked


def test_http_pages_back_through_the_whole_cluster(three):
    nodes, acked = three
    for n in nodes:
        seen, before, pages = [], None, 0
        while True:
            q = "/api/v1/query?q=pagex&limit=37" + ("&before=%d" % before if before else "")
            status, body = get(n, q)
            assert status == 200, body
            entries = body["entries"]
            assert all(acked[e["id"]] == e["message"] for e in entries)
            seen += entries
            pages += 1
            if not body["more"]:
                break
            assert len(entries) == 37
            before = entries[-1]["id"]
        assert pages == (900 + 36) // 37
        ids = [e["id"] for e in seen]
        assert len(ids) == len(set(ids)) == 900  # Each once, none missing.
        assert [key(e) for e in seen] == sorted((key(e) for e in seen), reverse=True)
    # The same order as the whole list at once.
    status, body = get(nodes[0], "/api/v1/query?q=pagex&limit=1000")
    assert [e["id"] for e in body["entries"]] == ids
    # Paging with a filter that matches few, and before an entry it does not match.
    status, body = get(nodes[1], "/api/v1/query?q=%s&limit=5&before=%d" % (
        urllib.parse.quote("pagex node2"), ids[450]))
    want = [e for e in seen[451:] if "node2" in e["message"]][:5]
    assert [e["id"] for e in body["entries"]] == [e["id"] for e in want]
    # SEARCH with a limit: the newest in the same order, oldest first.
    from test_cluster import query_lines
    lines = query_lines(nodes[2], "SEARCH pagex limit:25")
    assert lines[0] == "RESULT|25" and lines[-1] == "END"
    assert [int(l.split("|", 1)[0]) for l in lines[1:-1]] == ids[:25][::-1]
    # An id no node holds: a clear error.
    status, body = get(nodes[2], "/api/v1/query?q=pagex&before=12345")
    assert status == 400 and "no entry 12345 in the cluster" in body["error"], body


def test_histogram_counts_the_whole_cluster(three):
    nodes, acked = three
    now = int(time.time() * 1000)
    for n in nodes:
        status, body = get(n, "/api/v1/histogram?q=pagex&step=1s&from=%d&to=%d"
                           % (now - 600000, now + 1000))
        assert status == 200, body
        assert body["total"] == 900
        info = body["levels"].index("INFO")
        assert sum(b["counts"][info] for b in body["buckets"]) == 900
        assert sum(sum(b["counts"]) for b in body["buckets"]) == 900
        # Every bucket holds exactly the lines whose time falls within it.
        status, listed = get(n, "/api/v1/query?q=pagex&limit=1000")
        want = {}
        for e in listed["entries"]:
            k = (e["ts_ms"] - body["from_ms"]) // 1000
            want[k] = want.get(k, 0) + 1
        got = {i: b["counts"][info] for i, b in enumerate(body["buckets"]) if b["counts"][info]}
        assert got == want
    status, body = get(nodes[0], "/api/v1/histogram?q=%s&step=1s&from=%d&to=%d"
                       % (urllib.parse.quote("pagex node1 level:ERROR"), now - 600000, now))
    assert status == 200 and body["total"] == 0, body
    status, body = get(nodes[0], "/api/v1/histogram?q=%s"
                       % urllib.parse.quote("pagex | stats count()"))
    assert status == 400 and "without pipes" in body["error"], body


def cluster_order(node, tag):
    """The ids of tag's entries in the cluster's order, oldest first (HTTP, one page)."""
    status, body = get(node, "/api/v1/query?q=%s&limit=10000" % urllib.parse.quote(tag))
    assert status == 200 and not body["more"], body
    return [e["id"] for e in reversed(body["entries"])]


def test_chathistory_pages_through_the_whole_cluster(three):
    from test_irc import Irc
    from test_irc_chathistory import CAPS, filtered_channel, history, ids
    nodes, acked = three
    order = cluster_order(nodes[0], "pagex")
    assert sorted(order) == sorted(acked)
    c = Irc(nodes[1].irc_port)
    try:
        c.register("scroller", caps=CAPS)
        chan = filtered_channel(c, "pagex")
        _, _, rows = history(c, "LATEST %s * 100" % chan)
        assert ids(rows) == order[-100:]  # Oldest first, the newest 100.
        assert all(acked[int(t["+logcaster/id"])] in text for t, text in rows)
        got = ids(rows)
        while True:  # Scrolling back with the oldest msgid: every entry once, no gap.
            _, _, rows = history(c, "BEFORE %s msgid=lc-%d 150" % (chan, got[0]))
            if not rows:
                break
            got = ids(rows) + got
        assert got == order
        x = order[400]
        _, _, rows = history(c, "AFTER %s msgid=lc-%d 50" % (chan, x))
        assert ids(rows) == order[401:451]
        _, _, rows = history(c, "AROUND %s msgid=lc-%d 20" % (chan, x))
        assert ids(rows) == order[390:410]
        a, b = order[100], order[200]
        _, _, rows = history(c, "BETWEEN %s msgid=lc-%d msgid=lc-%d 1000" % (chan, a, b))
        assert ids(rows) == order[101:200]
        # From the newer reference: the newest ones before it, still oldest first.
        _, _, rows = history(c, "BETWEEN %s msgid=lc-%d msgid=lc-%d 10" % (chan, b, a))
        assert ids(rows) == order[190:200]
        # An id no node holds: the answer says it could not be read.
        c.send("CHATHISTORY BEFORE %s msgid=lc-12345 10" % chan)
        line, _ = c.expect(r"FAIL CHATHISTORY MESSAGE_ERROR BEFORE")
        assert "no entry 12345 in the cluster" in line, line
    finally:
        c.close()


def test_tail_command_replays_the_newest_of_the_cluster(three):
    from test_irc import Irc
    nodes, acked = three
    order = cluster_order(nodes[2], "pagex")
    c = Irc(nodes[2].irc_port, nudge=False)
    try:
        c.register("tailer")
        c.send("JOIN #logs-all")
        c.expect(r" 366 ")
        c.send("PING sync")  # Past the join's replay.
        c.expect(r" PONG ")
        c.send("PRIVMSG #logs-all :!tail 7")
        got = []
        while len(got) < 7:
            line = c.readline(timeout=10)
            m = re.search(r"PRIVMSG #logs-all :.*(pagex node\d line \d+)$", line)
            if m:
                got.append(m.group(1))
        assert got == [acked[i] for i in order[-7:]]
    finally:
        c.close()


def test_live_tail_resumes_after_last_event_id(three):
    from test_http import Tail
    nodes, acked = three
    order = cluster_order(nodes[0], "pagex")
    last = order[600]
    t = Tail(nodes[1].http_port, "pagex", [("Last-Event-ID", str(last))])
    try:
        t.start()
        t.wait_for(lambda _: len(t.events()) >= 299, "the 299 entries after the last one")
        assert [i for i, _ in t.events()] == order[601:]
        assert all(acked[i] == ev["message"] for i, ev in t.events())
        # Then live, each once: new lines on two nodes.
        sent = []
        for n in (nodes[0], nodes[2]):
            lines = ["pagex resumed %s %d" % (n.name, i) for i in range(20)]
            got, errors = send_acked(n, lines)
            assert not errors and len(got) == 20
            sent += lines
        t.wait_for(lambda _: len(t.events()) >= 299 + 40, "the 40 new lines")
        time.sleep(0.5)
        msgs = [ev["message"] for _, ev in t.events()[299:]]
        assert sorted(msgs) == sorted(sent)
    finally:
        t.c.close()


def test_join_replay_amid_live_lines_sends_each_once(three):
    """A JOIN's replay runs while lines arrive: the lines the client passes by meanwhile follow
    it, and none comes twice."""
    import threading
    from test_irc import Irc
    nodes, _ = three
    watcher = Irc(nodes[0].irc_port, nudge=False)  # Keeps the node's live feed running.
    c = Irc(nodes[0].irc_port, nudge=False)
    stop = threading.Event()
    acked_after = {}
    try:
        watcher.register("watcher2")
        watcher.join("#logs-all")
        c.register("joiner")

        def stream():
            i = 0
            while not stop.is_set() and i < 600:
                got, errors = send_acked(nodes[1], ["amid %d" % k for k in range(i, i + 10)])
                assert not errors
                if joined.is_set():
                    acked_after.update(got)
                i += 10
                time.sleep(0.1)  # About 100 lines/s: under --irc-stream-rate (200).

        joined = threading.Event()
        s = threading.Thread(target=stream)
        s.start()
        time.sleep(0.5)

        def lines_until_pong(token):
            """The amid lines c gets until the PONG of a PING sent now."""
            c.send("PING " + token)
            out = []
            while " PONG " not in (line := c.readline(timeout=10)):
                m = re.search(r"PRIVMSG #logs-all :.*(amid \d+)$", line)
                if m:
                    out.append(m.group(1))
            return out

        c.send("JOIN #logs-all")
        seen = lines_until_pong("sync")  # The replay is the JOIN's answer: before the PONG.
        joined.set()  # Lines acknowledged from here on all come, live.
        time.sleep(2.0)
        stop.set()
        s.join(30)
        time.sleep(1.0)
        seen += lines_until_pong("end")
        assert len(seen) == len(set(seen)), "a line came twice"
        nums = [int(x.split()[1]) for x in seen]
        assert nums == sorted(nums)  # One sender, one connection: its order.
        assert set(acked_after.values()) <= set(seen)
        assert len(acked_after) > 20
    finally:
        stop.set()
        c.close()
        watcher.close()


def test_an_acknowledged_line_is_in_the_next_query_on_its_node(three, monkeypatch):
    """Read your writes: a query made on a node after it acknowledged a line finds the line at
    once, whichever node holds the copies: they apply the stream as far as the asking node has
    seen it confirmed before they answer. Node c is restarted with copies that wait 40 ms
    before each message they apply (a test fault, as a busy copy lags); before this, queries
    that c answered missed the newest lines."""
    nodes, _ = three
    a, _, c = nodes
    total = count_or_error(a, "pagex")  # The module's other tests add lines too.
    monkeypatch.setenv("LOGCASTER_FAULT_APPLY_DELAY_MS", "40")
    c.restart()
    monkeypatch.delenv("LOGCASTER_FAULT_APPLY_DELAY_MS")
    wait_count(c, "pagex", total)
    deadline, held = time.monotonic() + 60, []
    while time.monotonic() < deadline:  # Until the cluster asks c's copies again.
        held = [k for k, v in a.stats().items()
                if re.match(r"cluster_partition_\d+_copies$", k) and "c" in v.split(",")]
        if held:
            break
        time.sleep(0.2)
    assert held, a.stats()
    try:
        for i in range(60):
            k = i % 3
            tag = "ryw%dx%d" % (os.getpid(), i)
            # A connection each: a line's partition follows its sender's address and port, so
            # the lines spread over the partitions and their copies.
            with LineConn(nodes[k].log_port, timeout=30) as conn:
                conn.sendall(("LOG|INFO|-|%s\n" % tag).encode())
                reply = conn.readline().decode()
            assert re.match(r"^OK\|\d+$", reply), reply
            assert count_or_error(nodes[k], tag) == 1, "line %d, node %s" % (i, nodes[k].name)
        # c's lagging copies were asked, and waited (each wait bounded at 2 s).
        st = c.stats()
        assert int(st["cluster_queries_waited"]) > 0, st
        assert int(st["cluster_query_wait_max_ms"]) <= 2500, st
    finally:
        c.restart()
    wait_count(c, "pagex", total)


def raw_request(cluster, node, version, partition, text=b""):
    """A COUNT request for partition, in request version 1 or 2, sent straight to node's copy;
    returns (answer type, body) of the first answer message."""
    head = struct.pack("<BBBBqQqq", version, 0, partition, 1, int(time.time() * 1000), 0,
                       -(1 << 63), (1 << 63) - 1)
    if version == 2:
        head += struct.pack("<Q", 0)  # min_seq
    data = cluster.request("logcaster.q.%s" % node, head + text)
    assert len(data) >= 8, data
    return chr(data[1]), data[8:]


def test_a_node_of_the_previous_build_answers_and_is_answered(three, module_nats_cluster,
                                                              monkeypatch):
    """A rolling upgrade: a node that reads only request version 1 (as nodes built before
    read-your-writes do; played by a test fault) and nodes of this build query each other.
    Each writes to the other the version it reads, as its heartbeat says, so every node answers
    every query in full."""
    nodes, acked = three
    a, b, c = nodes
    cluster = module_nats_cluster
    want = all_rows(a, "pagex")  # The module's other tests add lines too.
    assert set(acked.items()) <= set(want.items())
    total = len(want)
    monkeypatch.setenv("LOGCASTER_FAULT_WIRE_VERSION", "1")
    c.restart()
    monkeypatch.delenv("LOGCASTER_FAULT_WIRE_VERSION")
    try:
        # Until c holds partitions caught up again, and is the first copy asked for some.
        deadline, first = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            first = [int(k.split("_")[2]) for k, v in a.stats().items()
                     if re.match(r"cluster_partition_\d+_copies$", k) and v.split(",")[0] == "c"]
            if first:
                break
            time.sleep(0.2)
        assert first, a.stats()
        # c plays its part: it refuses version 2 as the older build does, and takes version 1.
        kind, body = raw_request(cluster, "c", 2, first[0])
        assert kind == "E" and b"unknown version" in body, (kind, body)
        kind, body = raw_request(cluster, "c", 1, first[0])
        assert kind == "C", (kind, body)
        assert raw_request(cluster, "a", 1, 0)[0] in "CN"  # Version 1 is read here too.
        v1_in = {n.name: int(n.stats()["cluster_queries_in_v1"]) for n in nodes}
        # Every node answers in full, asking c in version 1 and asked by c in version 1.
        for n in nodes:
            wait_count(n, "pagex", total)
            assert all_rows(n, "pagex") == want, "node %s" % n.name
            status, body = get(n, "/api/v1/query?q=%s" % urllib.parse.quote(
                "pagex | stats by (level) count() as n"))
            assert status == 200 and body["rows"] == [["INFO", total]], body
        # Each side wrote the other version 1: a and b to c, and c to the nodes it asks first
        # for the partitions it does not answer itself.
        firsts = {v.split(",")[0] for k, v in c.stats().items()
                  if re.match(r"cluster_partition_\d+_copies$", k)} - {"c"}
        assert firsts, c.stats()
        for n in nodes:
            if n is c or n.name in firsts:
                assert int(n.stats()["cluster_queries_in_v1"]) > v1_in[n.name], n.name
        # A line acknowledged by c is found on every node, and one acknowledged by a on c.
        for sender in (c, a):
            got, errors = send_acked(sender, ["wirev1 from %s" % sender.name])
            assert got and not errors
            for n in nodes:
                wait_count(n, "wirev1 %s" % sender.name, 1)
    finally:
        c.restart()
    wait_count(c, "pagex", total)
