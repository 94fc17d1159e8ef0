"""The cluster on NATS JetStream, against real nats-servers and real logcasterd nodes.

Every test starts its own nats-servers (natscluster.py: loopback ports chosen at run time,
temporary directories) and nodes. Lines are sent framed, so each is acknowledged with its id;
the tests then check every acknowledged line by its id and its text, on every node:
- ingest on any node, query any node (COUNT, SEARCH, pipes), ids unique and the same
  everywhere;
- a node started with another partition count refuses to run;
- a node that cannot reach NATS takes no framed line until it can, then acknowledges it;
  a line that arrives while the node becomes ready is taken once it is;
- kill -9 of a node during ingest loses no acknowledged line, and the node catches up;
- kill -9 of one of three nats-servers: ingest and queries go on;
- a node cut off from NATS stops acknowledging and resumes when NATS returns;
- a node added to a running cluster takes its share and answers fully;
- a partition no live copy holds makes a query fail, naming it, instead of answering short;
- messages a stream let go before a copy read them come from another copy: when a node takes
  a partition over, when a node comes back, and as a gap met while following the stream; one
  that no copy holds is skipped, and the rest still taken.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import HOST, IO_TIMEOUT, LineConn, decode

PARTS = 4
FAST = ["--cluster-partitions", str(PARTS), "--cluster-ack-timeout", "5s"]


# -- helpers ---------------------------------------------------------------------------------

def send_acked(node, lines, conns=1, acked=None, pace=0):
    """Send framed LOG| lines over `conns` connections; return {id: text} of those acked OK
    (filled in as the acknowledgements arrive, into `acked` when given) and the other
    answers. pace: seconds between slices of 500 lines (a steady stream, not one burst)."""
    acked = {} if acked is None else acked
    errors = []
    chunks = [lines[i::conns] for i in range(conns)]

    def one(chunk):
        try:
            with LineConn(node.log_port, timeout=30) as c:
                data = b"".join(("LOG|INFO|-|%s\n" % t).encode() for t in chunk)

                def write():  # While the replies are read: neither side's buffers fill up.
                    try:
                        if not pace:
                            c.sendall(data)
                        for i in range(0, len(chunk) if pace else 0, 500):
                            c.sendall(b"".join(("LOG|INFO|-|%s\n" % t).encode()
                                               for t in chunk[i:i + 500]))
                            time.sleep(pace)
                    except OSError:
                        pass

                w = threading.Thread(target=write)
                w.start()
                pending, k = b"", 0
                while k < len(chunk):  # Read replies in bulk, as fast as they come.
                    data = c.sock.recv(1 << 20)
                    if not data:
                        raise OSError("closed by the server")
                    *whole, pending = (pending + data).split(b"\n")
                    for r in whole:
                        m = re.match(rb"^OK\|(\d+)$", r)
                        if m:
                            acked[int(m.group(1))] = chunk[k]
                        else:
                            errors.append(r.decode(errors="replace"))
                        k += 1
                w.join(30)
        except OSError as e:  # The node went away (a test kills it): what was acked counts.
            errors.append("connection: %s" % e)

    threads = [threading.Thread(target=one, args=(ch,)) for ch in chunks if ch]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return acked, errors


def query_lines(node, cmd, timeout=IO_TIMEOUT):
    with LineConn(node.query_port, timeout=timeout) as c:
        return c.request(cmd)


def count_or_error(node, expr):
    lines = query_lines(node, "COUNT " + expr)
    assert len(lines) == 1, lines
    if lines[0].startswith("COUNT|"):
        return int(lines[0][6:])
    return lines[0]


def wait_count(node, expr, want, timeout=60):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = count_or_error(node, expr)
        if got == want:
            return
        time.sleep(0.2)
    pytest.fail("node %s: COUNT %s is %r, want %d" % (node.name, expr, got, want))


def wait_applied(nats_cluster, nodes, timeout=60):
    """Until every partition's copy on each of nodes has applied its stream to its end."""
    deadline = time.monotonic() + timeout
    while True:
        last = [nats_cluster.js("STREAM.INFO.logcaster-p%d" % p)["state"]["last_seq"]
                for p in range(PARTS)]
        want = ["applied=%d " % s for s in last]
        stats = [n.stats() for n in nodes]
        if all(want[p] in st.get("cluster_partition_%d" % p, "") for st in stats
               for p in range(PARTS)):
            return
        assert time.monotonic() < deadline, (last, stats)
        time.sleep(0.05)


def all_rows(node, expr, lines=None):
    """{id: message} of SEARCH expr (no limit) on node (or of its answer, lines)."""
    lines = lines or query_lines(node, "SEARCH " + expr, timeout=30)
    assert lines[0].startswith("RESULT|") and lines[-1] == "END", lines[:3]
    out = {}
    for l in lines[1:-1]:
        i, _, _, msg = l.split("|", 3)
        assert int(i) not in out, "id %s twice" % i
        out[int(i)] = msg
    assert len(out) == int(lines[0][7:])
    return out


def http_json(node, path):
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (HOST, node.http_port, path),
                                    timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        pytest.fail("GET %s: %s %s" % (path, e.code, e.read()[:300]))


def check_all(nodes, tag, acked):
    """Every node answers exactly the acked lines of tag, by id and text."""
    for n in nodes:
        wait_count(n, tag, len(acked))
        assert all_rows(n, tag) == acked, "node %s differs" % n.name
    # HTTP (the console's API) too: the newest first, and a table.
    n = nodes[-1]
    body = http_json(n, "/api/v1/query?q=%s&limit=10" % tag)
    assert "partial" not in body and body["more"] == (len(acked) > 10)
    assert len(body["entries"]) == min(10, len(acked))
    assert all(acked[e["id"]] == e["message"] for e in body["entries"])
    times = [e["ts_ms"] for e in body["entries"]]  # LOG|..|-|: the arrival time.
    assert times == sorted(times, reverse=True)  # Newest first.
    table = http_json(n, "/api/v1/query?q=" + urllib.parse.quote("%s | stats count() as n" % tag))
    assert table["rows"] == [[len(acked)]], table


def check_acked_and_unacked(nodes, tag, acked, unacked, timeout=60):
    """Until every node answers the same rows of tag: every acked line by id and text and,
    besides them, only lines of unacked (sent to a node that died before acknowledging them),
    each once. Returns those rows."""
    deadline = time.monotonic() + timeout
    while True:
        # Until the dead node is declared gone, its partitions may have no copy answering.
        answers = [query_lines(n, "SEARCH " + tag, timeout=30) for n in nodes]
        if all(a[0].startswith("RESULT|") for a in answers):
            rows = [all_rows(n, tag, a) for n, a in zip(nodes, answers)]
            if all(r == rows[0] for r in rows) and \
                    all(rows[0].get(i) == t for i, t in acked.items()):
                break
        assert time.monotonic() < deadline, [a[:1] for a in answers]
        time.sleep(0.3)
    extra = [t for i, t in rows[0].items() if i not in acked]
    assert len(set(extra)) == len(extra) and set(extra) <= unacked, extra[:5]
    return rows[0]


def start_nodes(cluster, logcaster_node, names, *args):
    nodes = [logcaster_node(cluster, name, *FAST, *args) for name in names]
    for n in nodes:  # Ready: the cluster answers a COUNT and JetStream confirms a line.
        deadline = time.monotonic() + 60
        while not isinstance(count_or_error(n, "nothing-yet"), int):
            assert time.monotonic() < deadline, "node %s never answered" % n.name
            time.sleep(0.2)
        got, errors = send_acked(n, ["warmup"])
        # Unanswered once in many runs (session 12): what the node said of itself, to tell why.
        assert got, (errors, {k: v for k, v in n.stats().items()
                              if k.startswith(("cluster_", "lines_", "ingest"))},
                     n.stderr()[-3000:])
    return nodes


# -- tests -----------------------------------------------------------------------------------

def test_ingest_anywhere_query_anywhere(nats_cluster, logcaster_node):
    nodes = start_nodes(nats_cluster, logcaster_node, ["a", "b", "c"])
    acked = {}
    for k, n in enumerate(nodes):
        got, errors = send_acked(n, ["anywhere node%d line %d latency_ms=%d" % (k, i, i % 50)
                                     for i in range(600)], conns=3)
        assert not errors
        acked.update(got)
    assert len(acked) == 1800
    assert len({i >> 48 for i in acked}) == 3  # Three nodes' numbers in the ids.
    check_all(nodes, "anywhere", acked)
    assert count_or_error(nodes[1], "anywhere limit:10") == 10  # As a single node counts.
    # Newest first with a limit, merged across partitions: the last lines sent (over one
    # connection, so their order is the sender's).
    for k, n in enumerate(nodes):
        got, errors = send_acked(n, ["ordered node%d %d" % (k, i) for i in range(50)])
        assert not errors and len(got) == 50
    for n in nodes:
        for k in range(3):
            lines = query_lines(n, "SEARCH ordered node%d limit:5" % k)
            assert lines[0] == "RESULT|5"
            assert [l.split("|", 3)[3] for l in lines[1:-1]] == \
                ["ordered node%d %d" % (k, i) for i in range(45, 50)]
        # Pipes: merged parts, exact counts and sums.
        lines = query_lines(n, "SEARCH anywhere | stats count() as n, sum(latency_ms) as s, "
                               "min(latency_ms) as lo, max(latency_ms) as hi")
        assert lines == ["RESULT|1", "n=1800 s=44100 lo=0 hi=49", "END"]
        lines = query_lines(n, "SEARCH anywhere | top 2 by (latency_ms)")
        assert lines[0] == "RESULT|2" and all("hits=36" in l for l in lines[1:-1]), lines
    # The cluster's view: three members, every partition held caught up by two of them.
    deadline = time.monotonic() + 30
    while True:
        st = nodes[0].stats()
        copies = [st["cluster_partition_%d_copies" % p].split(",") for p in range(PARTS)]
        if st["cluster_members"] == "3" and all(len(c) == 2 for c in copies):
            break
        assert time.monotonic() < deadline, copies
        time.sleep(0.3)
    # /metrics and `logcaster cluster` show the same.
    with urllib.request.urlopen("http://%s:%d/metrics" % (HOST, nodes[0].http_port),
                                timeout=10) as r:
        metrics = r.read().decode()
    assert "\nlogcaster_cluster_members 3\n" in metrics
    for p in range(PARTS):
        assert '\nlogcaster_cluster_partition_copies{partition="%d"} 2\n' % p in metrics
    assert re.search(r"\nlogcaster_cluster_published_lines_total \d+\n", metrics)
    # Every node published its 650 lines (and its warm-up lines); their batches are counted
    # in compressed bytes.
    for n in nodes:
        st = n.stats()
        published = int(st["cluster_published_lines"])
        assert 650 <= published < 700, published
        assert 0 < int(st["cluster_published_bytes"]) < published * 100, st
    assert re.search(r"\nlogcaster_cluster_published_bytes_total [1-9]\d*\n", metrics)
    from conftest import LOGCASTER
    import subprocess
    out = subprocess.run([LOGCASTER, "--query-port", str(nodes[0].query_port), "cluster"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "seen from node a (ready)" in out.stdout and "members (3): " in out.stdout
    rows = [l.split() for l in out.stdout.splitlines() if re.match(r"^\d+ ", l)]
    assert [int(r[0]) for r in rows] == list(range(PARTS))
    assert all(len(r[1].split(",")) == 2 for r in rows), out.stdout


def test_partition_count_is_fixed(nats_single, logcaster_node, tmp_path):
    start_nodes(nats_single, logcaster_node, ["a"], "--cluster-replicas", "1")
    from conftest import LOGCASTERD, server_env
    import subprocess
    p = subprocess.run([LOGCASTERD, "--cluster", nats_single.url_arg(), "--node-name", "b",
                        "--cluster-partitions", "7", "--data-dir", str(tmp_path / "b"),
                        "--log-port", "0", "--query-port", "0", "--irc-port", "-1",
                        "--http-port", "-1"],
                       capture_output=True, text=True, timeout=60, env=server_env())
    assert p.returncode == 2, p.stderr
    assert "has 4 partitions" in p.stderr and "--cluster-partitions 7" in p.stderr, p.stderr


def test_no_nats_no_acknowledgement(logcaster_node, tmp_path_factory):
    from natscluster import NatsCluster
    with NatsCluster(1, tmp_path_factory.mktemp("nats")) as nats:
        nats.wait_ready()
        nats.kill(0)
        node = logcaster_node(nats, "a", *FAST, "--cluster-replicas", "1")
        deadline = time.monotonic() + 20
        while "cannot reach NATS" not in node.stderr():
            assert time.monotonic() < deadline, node.stderr()
            time.sleep(0.1)
        assert node.stderr().count("cannot reach NATS") == 1  # Said once, then retried.
        with LineConn(node.log_port, timeout=2) as c:
            c.sendall(b"LOG|INFO|-|waited for nats\n")
            with pytest.raises(socket.timeout):
                c.readline()  # Not read, so not acknowledged.
            nats.start(0)
            nats.wait_ready()
            c.settimeout(60)
            r = decode(c.readline())
        assert re.match(r"^OK\|\d+$", r), r
        wait_count(node, '"waited for nats"', 1)
        node.stop()


def test_a_line_that_waited_for_the_node_to_be_ready_is_taken(nats_single, logcaster_node,
                                                             monkeypatch):
    """A line that arrives while the node starts waits, and is taken once the node is ready,
    with nothing else arriving to wake it. The node is held (a test fault) between starting
    its publisher and taking lines: the reader pauses in that window. Before, its connection's
    thread joined the commit registry after the publisher's first decided id was known, so the
    publisher's "ready" poke, which decided nothing new, did not wake it: it waited forever."""
    monkeypatch.setenv("LOGCASTER_FAULT_READY_DELAY_MS", "3000")
    node = logcaster_node(nats_single, "a", *FAST, "--cluster-replicas", "1")
    monkeypatch.delenv("LOGCASTER_FAULT_READY_DELAY_MS")
    deadline = time.monotonic() + 30
    while "fault: ready in" not in node.stderr():
        assert time.monotonic() < deadline, node.stderr()
        time.sleep(0.05)
    with LineConn(node.log_port, timeout=20) as c:
        c.sendall(b"LOG|INFO|-|waited for ready\n")
        if " ready: " in node.stderr():  # A machine too slow to hit the window: no test.
            pytest.skip("the node was ready before the line was sent")
        r = decode(c.readline())
    assert re.match(r"^OK\|\d+$", r), r
    wait_count(node, '"waited for ready"', 1)
    node.stop()


def test_kill9_node_during_ingest(nats_cluster, logcaster_node):
    a, b, c = start_nodes(nats_cluster, logcaster_node, ["a", "b", "c"])
    acked = {}
    result = {}
    got_b = {}

    def ingest():
        result["b"] = send_acked(b, ["crash line %d" % i for i in range(40000)], conns=2,
                                 acked=got_b, pace=0.05)  # 2 s of sending.

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(1.0)  # Half way through the sending.
    b.kill9()
    t.join(90)
    got_b, errors = result["b"]  # Connections cut by the kill: what was acked counts.
    assert 0 < len(got_b) < 40000, "the kill should have cut the ingest short"
    assert all(e.startswith("connection: ") for e in errors), errors[:3]
    acked.update(got_b)
    got_a, errors = send_acked(a, ["crash line after %d" % i for i in range(500)])
    assert not errors
    acked.update(got_a)
    # Lines b had published but not yet acknowledged when it died are stored too (at least
    # once: their sender would send them again); nothing else may be.
    unacked = {"crash line %d" % i for i in range(40000)} - set(got_b.values())
    rows = check_acked_and_unacked([a, c], "crash", acked, unacked)
    check_all([a, c], "crash", rows)
    b.restart()
    wait_count(b, "nothing-yet", 0)
    check_all([b], "crash", rows)


def test_kill_one_nats_server(nats_cluster, logcaster_node):
    # Streams the server led elect a new leader meanwhile: lines wait, then are confirmed.
    nodes = start_nodes(nats_cluster, logcaster_node, ["a", "b"], "--cluster-ack-timeout",
                        "60s")
    acked, errors = send_acked(nodes[0], ["natsdown before %d" % i for i in range(300)])
    assert not errors
    leader = nats_cluster.leader()
    victim = next(i for i in range(3) if nats_cluster.names[i] != leader)
    nats_cluster.kill(victim)
    got, errors = send_acked(nodes[1], ["natsdown after %d" % i for i in range(300)])
    assert not errors, errors[:3]
    acked.update(got)
    check_all(nodes, "natsdown", acked)


def test_cut_off_then_resume(logcaster_node, tmp_path_factory):
    from natscluster import NatsCluster
    with NatsCluster(1, tmp_path_factory.mktemp("nats")) as nats:
        nats.wait_ready()
        node = start_nodes(nats, logcaster_node, ["a"], "--cluster-replicas", "1",
                           "--cluster-copies", "1")[0]
        acked, errors = send_acked(node, ["cutoff before %d" % i for i in range(200)])
        assert not errors
        nats.kill(0)
        # No NATS: a framed line is not acknowledged (an error after --cluster-ack-timeout,
        # or no answer while reading is paused), never OK.
        got, errors = send_acked(node, ["cutoff during %d" % i for i in range(5)])
        assert not got
        nats.start(0)
        nats.wait_ready()
        deadline = time.monotonic() + 60
        while True:
            got, errors = send_acked(node, ["cutoff after"])
            if got:
                break
            assert time.monotonic() < deadline, errors
            time.sleep(0.5)
        acked.update(got)
        # Every acknowledged line is there; lines answered with an error may be too.
        deadline = time.monotonic() + 60
        while True:
            rows = all_rows(node, "cutoff") if isinstance(count_or_error(node, "cutoff"),
                                                          int) else {}
            if all(rows.get(i) == t for i, t in acked.items()):
                break
            if time.monotonic() > deadline:
                missing = sorted(i for i, t in acked.items() if rows.get(i) != t)
                st = node.stats()
                pytest.fail("%d acknowledged lines missing (%s ...); count: %s\n%s\nstderr:\n%s" % (
                    len(missing), missing[:5], count_or_error(node, "cutoff"),
                    "\n".join("%s %s" % kv for kv in st.items() if kv[0].startswith("cluster")),
                    node.stderr()[-4000:]))
            time.sleep(0.5)
        node.stop()


def cpu_seconds(pid):
    """User and system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sender_gone_while_its_lines_wait_costs_no_cpu(logcaster_node, tmp_path_factory):
    """Found in review: a sender that closed or reset its connection while its lines waited
    for the cluster's confirmation left the socket watched, and its close (or reset) woke the
    reactor again and again: a core at 100% until --cluster-ack-timeout. With NATS gone, the
    lines wait that long; the node must sit idle meanwhile."""
    from natscluster import NatsCluster
    with NatsCluster(1, tmp_path_factory.mktemp("nats")) as nats:
        nats.wait_ready()
        node = start_nodes(nats, logcaster_node, ["a"], "--cluster-replicas", "1",
                           "--cluster-copies", "1", "--cluster-ack-timeout", "20s")[0]
        acked, errors = send_acked(node, ["spin before %d" % i for i in range(20)])
        assert len(acked) == 20 and not errors
        nats.kill(0)
        for how in ["close", "reset"]:
            s = socket.create_connection((HOST, node.log_port))
            s.sendall(b"".join(b"LOG|INFO|-|spin gone %d\n" % i for i in range(5)))
            time.sleep(0.3)
            if how == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            time.sleep(0.2)
            c0 = cpu_seconds(node.pid)
            time.sleep(3)
            used = cpu_seconds(node.pid) - c0
            assert used < 1.0, "%s: the node used %.2f CPU-seconds in 3 s" % (how, used)
        node.kill9()


def test_node_added_takes_its_share(nats_cluster, logcaster_node):
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    acked, errors = send_acked(a, ["grow line %d" % i for i in range(2000)], conns=2)
    assert not errors
    check_all([a, b], "grow", acked)
    c = start_nodes(nats_cluster, logcaster_node, ["c"])[0]
    # c becomes an owner of some partitions, replays them, and answers fully.
    deadline = time.monotonic() + 60
    while True:
        st = c.stats()
        held = [p for p in range(PARTS) if "state=ready" in st.get("cluster_partition_%d" % p, "")]
        if held:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.3)
    check_all([c, a, b], "grow", acked)


def test_missing_partition_is_an_error(nats_cluster, logcaster_node):
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"], "--cluster-copies", "1")
    acked, errors = send_acked(a, ["lonely %d" % i for i in range(400)], conns=2)
    assert not errors
    check_all([a, b], "lonely", acked)
    deadline = time.monotonic() + 30
    while sum(k.startswith("cluster_partition_") and not k.endswith("_copies")
              for k in a.stats()) == PARTS:  # a hands over what b owns once b has it.
        assert time.monotonic() < deadline, "a never handed a partition over to b"
        time.sleep(0.3)
    b.kill9()
    # Until a takes over b's partitions, a query cannot be answered whole: it says which
    # partitions are missing rather than answering short.
    got = count_or_error(a, "lonely")
    m = re.match(r"^ERROR\|no copy of partitions? ([\d, ]+) answered", str(got))
    assert m, got
    missing = [int(p) for p in m.group(1).split(", ")]
    # HTTP answers with what the others have, and says what it lacks.
    body = http_json(a, "/api/v1/query?q=lonely&limit=1000")
    assert body["partial"] is True and body["missing_partitions"] == missing, body
    assert len(body["entries"]) <= 400  # Those of the partitions that answered (maybe all).
    assert all(acked[e["id"]] == e["message"] for e in body["entries"])
    # Then b is declared gone, a holds everything, and the answer is whole again.
    check_all([a], "lonely", acked)


def test_live_everywhere(nats_cluster, logcaster_node):
    """IRC log channels and HTTP live tails on any node carry the lines ingested on every node,
    each once, within a second or so."""
    from test_http import Tail
    from test_irc import Irc
    a, b, c = start_nodes(nats_cluster, logcaster_node, ["a", "b", "c"])
    # Joining a log channel first replays its newest --irc-replay (10) lines, cluster-wide.
    got, errors = send_acked(b, ["replayed %d" % i for i in range(15)])
    assert not errors
    wait_count(a, "replayed", 15)
    early = Irc(a.irc_port, nudge=False)
    try:
        early.register("early")
        early.send("JOIN #logs-all")
        replayed = []
        while True:
            line = early.readline(timeout=10)
            m = re.search(r"PRIVMSG #logs-all :.*(replayed \d+)$", line)
            if m:
                replayed.append(m.group(1))
            if re.search(r" 366 ", line):
                break
        early.send("PING sync")
        while " PONG " not in (line := early.readline(timeout=10)):
            m = re.search(r"PRIVMSG #logs-all :.*(replayed \d+)$", line)
            if m:
                replayed.append(m.group(1))
        assert replayed == ["replayed %d" % i for i in range(5, 15)], replayed
    finally:
        early.close()
    irc = Irc(a.irc_port, nudge=False)
    tail = Tail(c.http_port, "livex")
    try:
        irc.register("watcher")
        irc.join("#logs-all")
        tail.start()
        for n in (a, c):  # Subscribers there: the nodes follow the streams (from their end).
            deadline = time.monotonic() + 20
            while n.stats().get("cluster_live_feeds") != str(PARTS):
                assert time.monotonic() < deadline, n.stats().get("cluster_live_feeds")
                time.sleep(0.1)
        assert b.stats().get("cluster_live_feeds") == "0"  # Nobody there: nothing followed.
        sent = []
        t0 = time.monotonic()
        for k, n in enumerate((a, b, c)):
            lines = ["livex from %s %d" % (n.name, i) for i in range(10)]
            got, errors = send_acked(n, lines)
            assert not errors and len(got) == 10
            sent += lines
        seen = {}
        deadline = time.monotonic() + 10
        while sum(seen.values()) < len(sent):
            assert time.monotonic() < deadline, "IRC saw only %s" % sorted(seen)
            line = irc.readline(timeout=max(0.1, deadline - time.monotonic()))
            m = re.search(r"PRIVMSG #logs-all :.*(livex from \w+ \d+)$", line)
            if m:
                seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        assert time.monotonic() - t0 < 8
        assert seen == {t: 1 for t in sent}
        tail.wait_for(lambda t: all(s in t for s in sent), "every line", timeout=10)
        events = tail.events()
        msgs = [ev["message"] for _, ev in events]
        assert sorted(msgs) == sorted(sent), msgs  # Each once.
        # Each event carries the entry's cluster id, as queries show it.
        ids = {int(i) for i, _ in events}
        wait_count(a, "livex", len(sent))
        assert ids == set(all_rows(a, "livex").keys())
        # LogBot answers for the whole cluster too.
        irc.send("PRIVMSG #logs-all :!query COUNT livex")
        line = irc.readline(timeout=10)
        while "PRIVMSG #logs-all :COUNT " not in line:
            line = irc.readline(timeout=10)
        assert line.endswith(":COUNT livex: %d" % len(sent)), line
    finally:
        irc.close()
        tail.c.close()


def test_single_node_is_no_cluster(server):
    """Without --cluster nothing changes: no cluster_* keys, and `logcaster cluster` says so."""
    from conftest import LOGCASTER
    import subprocess
    srv = server()
    assert not [k for k in srv.stats() if k.startswith("cluster_")]
    out = subprocess.run([LOGCASTER, "--query-port", str(srv.query_port), "cluster"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "is a single node" in out.stderr, out


def test_nats_user_password(logcaster_node, tmp_path_factory):
    from natscluster import NatsCluster
    auth = 'authorization { user: "lc", password: "s3cret-pw" }'
    with NatsCluster(1, tmp_path_factory.mktemp("nats"), extra_config=auth) as nats:
        nats.wait_ready()
        good = start_nodes(nats, logcaster_node, ["a"], "--cluster-replicas", "1",
                           "--cluster-user", "lc", "--cluster-password", "s3cret-pw")[0]
        acked, errors = send_acked(good, ["authed line"])
        assert len(acked) == 1 and not errors
        bad = logcaster_node(nats, "b", *FAST, "--cluster-replicas", "1", "--cluster-user", "lc",
                             "--cluster-password", "wrong")
        deadline = time.monotonic() + 20
        while "cannot reach NATS" not in bad.stderr():
            assert time.monotonic() < deadline, bad.stderr()
            time.sleep(0.1)
        assert "Authentication Violation" in bad.stderr()  # NATS.s reason.
        assert "s3cret-pw" not in good.stderr() + bad.stderr()
        bad.stop()
        good.stop()


def test_nats_tls_with_client_certificate(logcaster_node, tmp_path_factory, tmp_path):
    from natscluster import NatsCluster
    from tlsutil import make_cert
    cert, key = make_cert(tmp_path)
    tls = 'tls { cert_file: "%s", key_file: "%s", ca_file: "%s", verify: true }' % (
        cert, key, cert)
    with NatsCluster(1, tmp_path_factory.mktemp("nats"), extra_config=tls) as nats:
        nats.wait_ready()
        node = start_nodes(nats, logcaster_node, ["a"], "--cluster-replicas", "1",
                           "--cluster-tls-ca", cert, "--cluster-tls-cert", cert,
                           "--cluster-tls-key", key)[0]
        acked, errors = send_acked(node, ["tls line %d" % i for i in range(20)])
        assert len(acked) == 20 and not errors
        check_all([node], "tls", acked)
        node.stop()


def test_stop_while_nats_is_gone(logcaster_node, tmp_path_factory):
    """A node whose NATS went away still stops promptly and cleanly (nothing waits for it)."""
    from natscluster import NatsCluster
    with NatsCluster(1, tmp_path_factory.mktemp("nats")) as nats:
        nats.wait_ready()
        node = start_nodes(nats, logcaster_node, ["a"], "--cluster-replicas", "1")[0]
        nats.kill(0)
        t0 = time.monotonic()
        node.stop()
        assert time.monotonic() - t0 < 10


def test_http_and_udp_ingest(nats_cluster, logcaster_node):
    """Lines posted over HTTP and sent over UDP go through the same publisher: stored once,
    queryable from every node, HTTP's ids those the queries show."""
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    body = "".join("viahttp line %d\n" % i for i in range(50)).encode()
    req = urllib.request.Request("http://%s:%d/api/v1/logs" % (HOST, a.http_port), data=body,
                                 method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    assert answer["stored"] == 50
    first, last = answer["first_id"], answer["last_id"]
    assert last - first == 49 and first >> 48 == last >> 48
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(20):
            u.sendto(b"viaudp line %d" % i, (HOST, b.log_port))
    finally:
        u.close()
    for n in (a, b):
        wait_count(n, "viahttp", 50)
        rows = all_rows(n, "viahttp")
        assert rows == {first + i: "viahttp line %d" % i for i in range(50)}
        wait_count(n, "viaudp", 20)  # Loopback UDP: none lost.


def keep_only_the_last_message(nats_cluster):
    """Limits on every partition's stream: from now on it keeps only its last message."""
    for p in range(PARTS):
        name = "logcaster-p%d" % p
        config = nats_cluster.js("STREAM.INFO." + name)["config"]
        config["max_msgs"] = 1
        nats_cluster.js("STREAM.UPDATE." + name, config)


def test_data_the_stream_let_go_comes_from_a_copy(nats_cluster, logcaster_node):
    """A node taking a partition over after its stream dropped old messages (limits set on
    the stream) gets them from a surviving copy, then follows the stream."""
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    acked = {}
    for k in range(5):  # Rounds: several messages in each partition's stream.
        got, errors = send_acked(a, ["old line %d %d" % (k, i) for i in range(60)], conns=8)
        assert not errors
        acked.update(got)
    check_all([a, b], "old", acked)
    keep_only_the_last_message(nats_cluster)
    # One line at a time, each applied by both copies before the next: a stream that keeps one
    # message drops it as the next one comes, and a copy that had not read it by then would
    # lack it (a copy warns of such a gap; the test's limit, not the product, makes it likely).
    for i in range(12):
        got, errors = send_acked(a, ["old line late %d" % i])
        assert got and not errors
        acked.update(got)
        wait_applied(nats_cluster, [a, b])
    for n in (a, b):
        assert "left the stream before this copy had them" not in n.stderr()
    firsts = [nats_cluster.js("STREAM.INFO.logcaster-p%d" % p)["state"]["first_seq"]
              for p in range(PARTS)]
    assert max(firsts) > 1, firsts
    # b hangs (SIGSTOP) instead of going: its member key stays fresh for a while, so c may
    # also ask b for what the stream let go, and b never answers. Neither a nor c may take the
    # other for gone meanwhile (the heartbeats run on a thread of their own).
    os.kill(b.pid, signal.SIGSTOP)
    try:
        c = start_nodes(nats_cluster, logcaster_node, ["c"])[0]
        # c owns every partition now (two live nodes, two copies); once it holds them caught
        # up, a goes: c alone must answer for everything.
        deadline = time.monotonic() + 60
        while True:
            st = c.stats()
            if all("state=ready" in st.get("cluster_partition_%d" % p, "")
                   for p in range(PARTS)):
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.3)
    finally:
        b.kill9()
    assert "which the stream no longer holds, from node a" in c.stderr()
    assert "node c left" not in a.stderr(), a.stderr()[-3000:]
    assert "node a left" not in c.stderr()
    a.stop()
    check_all([c], "old", acked)


def test_a_copy_no_copy_can_feed_says_so_once_then_begins_without(nats_single, logcaster_node):
    """A node whose copies are gone while their streams let the older messages go cannot take
    those from anywhere. It keeps trying (a copy may come back) every 5 s, and says so once,
    not every 5 s. After --cluster-missing-wait it begins without them: the stream's messages,
    and every new one, are answered again."""
    a = start_nodes(nats_single, logcaster_node, ["a"], "--cluster-replicas", "1",
                    "--cluster-missing-wait", "20s")[0]
    acked = {}
    send_until_every_stream_has(nats_single, a, "unfed", 3, acked)
    wait_applied(nats_single, [a])  # Its copies held them.
    keep_only_the_last_message(nats_single)
    a.stop()
    shutil.rmtree(os.path.join(a.data_dir, "partitions"))
    a.restart()
    deadline = time.monotonic() + 60
    while a.stderr().count("could not be taken from another copy") < PARTS:
        assert time.monotonic() < deadline, a.stderr()[-3000:]
        time.sleep(0.2)
    time.sleep(11)  # Two more tries for every partition, still within the wait.
    err = a.stderr()
    assert err.count("could not be taken from another copy") == PARTS, err[-3000:]
    assert err.count("no other copy could give them now") == PARTS, err[-3000:]
    assert "begins without" not in err
    # Meanwhile the partitions are missing, and a query says so rather than answer short.
    assert "partition" in str(count_or_error(a, "unfed"))
    deadline = time.monotonic() + 60
    while a.stderr().count("this copy begins without them") < PARTS:
        assert time.monotonic() < deadline, a.stderr()[-3000:]
        time.sleep(0.2)
    held = count_or_error(a, "unfed")
    while not isinstance(held, int):  # Until every copy has applied what its stream holds.
        assert time.monotonic() < deadline, held
        time.sleep(0.2)
        held = count_or_error(a, "unfed")
    assert 0 < held < len(acked)  # What the streams still held.
    got, errors = send_acked(a, ["unfed after %d" % i for i in range(200)], conns=4)
    assert len(got) == 200 and not errors
    wait_count(a, '"unfed after"', 200)
    a.stop()


def stream_last_seqs(nats_cluster):
    return [nats_cluster.js("STREAM.INFO.logcaster-p%d" % p)["state"]["last_seq"]
            for p in range(PARTS)]


def send_until_every_stream_has(nats_cluster, node, tag, want, acked):
    """Lines of tag to node, a few connections at a time, until every partition's stream holds
    at least want messages (the partition is the sender's address's)."""
    for k in range(60):
        if min(stream_last_seqs(nats_cluster)) >= want:
            return
        got, errors = send_acked(node, ["%s %d %d" % (tag, k, i) for i in range(20)], conns=4)
        assert got and not errors, errors[:3]
        acked.update(got)
    pytest.fail("streams never reached %d messages: %s" % (want, stream_last_seqs(nats_cluster)))


def test_a_copy_back_after_the_stream_let_go_takes_what_it_missed(nats_cluster, logcaster_node):
    """A node away while the streams let go of messages it had not read takes them from a copy
    that holds them when it comes back, in order, then answers for them alone."""
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    acked = {}
    send_until_every_stream_has(nats_cluster, a, "gapped early", 2, acked)
    wait_applied(nats_cluster, [a, b])
    held = stream_last_seqs(nats_cluster)  # What b's copies hold: each stream to its end.
    b.stop()
    keep_only_the_last_message(nats_cluster)
    # One line at a time, each applied by a's copies before the stream drops it for the next,
    # until every stream has let go of at least two messages b has not read.
    for i in range(400):
        firsts = [nats_cluster.js("STREAM.INFO.logcaster-p%d" % p)["state"]["first_seq"]
                  for p in range(PARTS)]
        if all(f > h + 2 for f, h in zip(firsts, held)):
            break
        got, errors = send_acked(a, ["gapped away %d" % i])  # A new connection each time.
        assert got and not errors
        acked.update(got)
        wait_applied(nats_cluster, [a])
    else:
        pytest.fail("the streams never let go: %s against %s" % (firsts, held))
    b.restart()
    deadline = time.monotonic() + 60
    while not all("state=ready" in b.stats().get("cluster_partition_%d" % p, "")
                  for p in range(PARTS)):
        assert time.monotonic() < deadline, b.stats()
        time.sleep(0.3)
    err = b.stderr()
    assert "which the stream no longer holds, from node a" in err
    assert "left the stream before this copy had them" not in err
    a.stop()  # b alone answers now: its copies must hold every line.
    check_all([b], "gapped", acked)


def start_missing(nats_cluster, logcaster_node, monkeypatch, name, missed):
    """Node name, whose copies pass over messages `missed` ("N" or "N-M") of every stream as if
    the stream had let them go (the LOGCASTER_FAULT_MISS_SEQ test fault; None: none)."""
    if missed:
        monkeypatch.setenv("LOGCASTER_FAULT_MISS_SEQ", missed)
    node = start_nodes(nats_cluster, logcaster_node, [name])[0]
    monkeypatch.delenv("LOGCASTER_FAULT_MISS_SEQ", raising=False)
    return node


def test_a_copy_that_misses_a_message_takes_it_from_another(nats_cluster, logcaster_node,
                                                            monkeypatch):
    """A gap met while following a stream (here made by a test fault: message 3 of every
    stream passed over) is filled from another copy before the next message is applied."""
    a = start_missing(nats_cluster, logcaster_node, monkeypatch, "a", None)
    b = start_missing(nats_cluster, logcaster_node, monkeypatch, "b", "3")
    acked = {}
    send_until_every_stream_has(nats_cluster, a, "missed", 5, acked)
    got, errors = send_acked(b, ["missed via b %d" % i for i in range(100)], conns=4)
    assert not errors
    acked.update(got)
    wait_applied(nats_cluster, [a, b])
    err = b.stderr()
    for p in range(PARTS):
        assert "partition %d: took messages 3..3, which the stream no longer holds, " \
               "from node a" % p in err
    assert "left the stream before this copy had them" not in err
    a.stop()
    check_all([b], "missed", acked)


def test_a_message_no_copy_holds_is_skipped_and_the_rest_taken(nats_cluster, logcaster_node,
                                                               monkeypatch):
    """Both copies pass over message 3 of every stream, and b also over message 4 (test
    faults): each waits a while for the other, says that no copy holds 3, and goes on; b takes
    4 from a. Both then hold the same entries, and nothing else is lost."""
    a = start_missing(nats_cluster, logcaster_node, monkeypatch, "a", "3")
    b = start_missing(nats_cluster, logcaster_node, monkeypatch, "b", "3-4")
    acked = {}
    send_until_every_stream_has(nats_cluster, a, "skipped", 6, acked)
    wait_applied(nats_cluster, [a, b], timeout=90)
    # "holds them", or "answered for them" when the other was still waiting for it too.
    lost = "left the stream before this copy had them, and no other copy"
    err_a, err_b = a.stderr(), b.stderr()
    for p in range(PARTS):
        assert "partition %d: messages 3..3 %s" % (p, lost) in err_a
        assert "partition %d: messages 3..3 %s" % (p, lost) in err_b
        assert "partition %d: took messages 4..4, which the stream no longer holds, " \
               "from node a" % p in err_b
    assert err_a.count(lost) == PARTS and err_b.count(lost) == PARTS
    sa, sb = a.stats(), b.stats()
    held = [[int(re.search(r"entries=(\d+)", st["cluster_partition_%d" % p]).group(1))
             for p in range(PARTS)] for st in (sa, sb)]
    assert held[0] == held[1], held
    # Every acknowledged line but those of the messages 3, on each node alone.
    rows = all_rows(b, "skipped")
    assert set(rows.items()) <= set(acked.items())
    missing = len(acked) - len(rows)
    assert 0 < missing < len(acked) // 2, missing
    a.stop()
    wait_count(b, "skipped", len(rows))
    assert all_rows(b, "skipped") == rows


def break_copies_of(nats_cluster, a, b, tag, acked):
    """Lines of tag through a; then b's partition stores lose their segment files (deleted
    under b), so that b's next write into each fails, which b says; more lines meanwhile.
    Every node still answers every acknowledged line (b asks a for those partitions)."""
    send_until_every_stream_has(nats_cluster, a, tag + " early", 2, acked)
    wait_applied(nats_cluster, [a, b])
    parts = os.path.join(b.data_dir, "partitions")
    gone = [os.path.join(parts, p, f) for p in os.listdir(parts)
            for f in os.listdir(os.path.join(parts, p)) if f.endswith(".seg")]
    assert gone
    for f in gone:
        os.unlink(f)
    first = stream_last_seqs(nats_cluster)
    send_until_every_stream_has(nats_cluster, a, tag + " late", max(first) + 2, acked)
    wait_applied(nats_cluster, [a])
    deadline = time.monotonic() + 30
    while b.stderr().count("the local store could not write entries") < PARTS:
        assert time.monotonic() < deadline, b.stderr()[-3000:]
        time.sleep(0.2)
    check_all([a, b], tag, acked)


def wait_partitions(node, state, timeout=60):
    """Until node holds every partition in state (STATS: ready or broken)."""
    deadline = time.monotonic() + timeout
    while not all("state=" + state in node.stats().get("cluster_partition_%d" % p, "")
                  for p in range(PARTS)):
        assert time.monotonic() < deadline, node.stats()
        time.sleep(0.3)


def test_a_failed_copy_is_rebuilt_only_when_it_can_be_refilled(nats_cluster, logcaster_node):
    """b's copies could not store (break_copies_of). b restarts while a is stopped and the
    streams have let go of the early messages: starting b's copies over would lose what only
    they hold, so b keeps them, out of queries (which name the partitions no copy answers
    for). At a start when a holds them again b rebuilds them, and then answers every
    acknowledged line alone."""
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    acked = {}
    break_copies_of(nats_cluster, a, b, "keptcopy", acked)
    b.stop()
    a.stop()
    keep_only_the_last_message(nats_cluster)
    b.restart()
    wait_partitions(b, "broken")
    assert b.stderr().count("it is kept out of queries, and rebuilt at a start when one "
                            "does") == PARTS
    assert re.match(r"^ERROR\|no copy of partitions 0, 1, 2, 3 answered",
                    str(count_or_error(b, "keptcopy"))), count_or_error(b, "keptcopy")
    a.restart()
    wait_partitions(a, "ready")
    b.restart()
    wait_partitions(b, "ready")
    err = b.stderr()
    assert err.count("failed a write before the node stopped; rebuilding it") == PARTS
    assert err.count("which the stream no longer holds, from node a") >= PARTS  # Refilled.
    a.stop()  # b alone answers now: its rebuilt copies must hold every line.
    check_all([b], "keptcopy", acked)


def segment_frames(path):
    """Where the frames of the segment file at path start (frame.h: a 16-byte header, then
    frames of a 40-byte header and payload_len bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    frames, at = [], 16
    while at + 40 <= len(data) and data[at:at + 4] == b"LCFR":
        frames.append(at)
        at += 40 + struct.unpack_from("<I", data, at + 4)[0]
    return frames


def damage_a_middle_frame(path):
    """Flip a payload byte of the second of three or more frames of the segment file at path;
    False when it has fewer frames."""
    frames = segment_frames(path)
    if len(frames) < 3:
        return False
    with open(path, "r+b") as f:
        f.seek(frames[1] + 40)
        byte = f.read(1)[0]
        f.seek(frames[1] + 40)
        f.write(bytes([byte ^ 0xFF]))
    return True


def partition_segments(node):
    parts = os.path.join(node.data_dir, "partitions")
    return {p: sorted(os.path.join(parts, p, f) for f in os.listdir(os.path.join(parts, p))
                      if f.endswith(".seg"))
            for p in sorted(os.listdir(parts))}


def hole_copies_of(nats_cluster, a, b, tag, acked):
    """Lines of tag through a, in rounds the writer seals apart (it writes what waits once
    idle: a frame each), until one of b's partitions has a segment of three frames or more.
    Then b stops, and the second frame of such segments is damaged with the segment's index
    gone too (so the store reads every frame when it opens, and skips that one, leaving a
    hole). Returns the partitions (their numbers) so damaged."""
    for r in range(20):
        send_until_every_stream_has(nats_cluster, a, "%s %d" % (tag, r), 2 * (r + 1), acked)
        wait_applied(nats_cluster, [a, b])
        time.sleep(0.3)
        if any(len(segment_frames(s)) >= 3 for segs in partition_segments(b).values()
               for s in segs):
            break
    b.stop()
    damaged = []
    for p, segs in partition_segments(b).items():
        for s in segs:
            if damage_a_middle_frame(s):
                if os.path.exists(s[:-len(".seg")] + ".idx"):
                    os.unlink(s[:-len(".seg")] + ".idx")
                damaged.append(int(p[1:]))
                break
    assert damaged
    return damaged


def test_a_holed_copy_is_rebuilt_only_when_it_can_be_refilled(nats_cluster, logcaster_node):
    """A hole in some of b's partition stores (hole_copies_of): b sees that a copy lacks
    entries inside the range it holds. It restarts while a is stopped and the streams have
    let go of the early messages, so it keeps those copies out of queries; at a start when a
    holds them again it rebuilds them, and then answers every acknowledged line alone."""
    a, b = start_nodes(nats_cluster, logcaster_node, ["a", "b"])
    acked = {}
    damaged = hole_copies_of(nats_cluster, a, b, "keptholed", acked)
    a.stop()
    keep_only_the_last_message(nats_cluster)
    b.restart()
    deadline = time.monotonic() + 60
    while True:
        st = b.stats()
        states = [re.search(r"state=(\S+)", st.get("cluster_partition_%d" % p, "state=-"))
                  .group(1) for p in range(PARTS)]
        if all(states[p] == ("broken" if p in damaged else "ready") for p in range(PARTS)):
            break
        assert time.monotonic() < deadline, (damaged, states)
        time.sleep(0.3)
    assert b.stderr().count("inside the range it holds, and neither the stream nor another "
                            "copy holds everything it held") == len(damaged)
    # The others are answered once b's heartbeat says it holds them (within a second or so).
    want = r"^ERROR\|no copy of partitions? %s answered" % ", ".join(map(str, sorted(damaged)))
    deadline = time.monotonic() + 15
    while not re.match(want, str(got := count_or_error(b, "keptholed"))):
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    a.restart()
    wait_partitions(a, "ready")
    b.restart()
    wait_partitions(b, "ready")
    assert b.stderr().count("inside the range it holds; rebuilding it from the stream") == \
        len(damaged)
    a.stop()
    check_all([b], "keptholed", acked)
