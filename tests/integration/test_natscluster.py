"""The NATS test harness itself (natscluster.py), without logcasterd: a 3-server JetStream
cluster comes up, keeps a replicated stream through a server's SIGKILL and restart; a single
server takes 8 MB messages; and close() leaves no process and no directory behind, also when
the test body raises."""
import json
import os

import pytest

from natscluster import MAX_PAYLOAD, JetStreamError, NatsCluster

STREAM = {"name": "SMOKE", "subjects": ["smoke.>"], "storage": "file", "num_replicas": 3}


def pid_alive(pid):
    """True while pid exists and is not a zombie (the harness reaps its children)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cluster_ready_kill_restart(nats_cluster):
    c = nats_cluster
    assert c.names == ["n1", "n2", "n3"]
    assert len(set(c.urls)) == 3 and all(u.startswith("nats://127.0.0.1:") for u in c.urls)
    assert c.url_arg() == ",".join(c.urls)
    leader = c.leader()
    assert leader in c.names

    # Every server sees the whole cluster and takes 8 MB payloads.
    for i in range(3):
        with c.client(i) as cl:
            assert cl.info["max_payload"] == MAX_PAYLOAD
            assert cl.info["server_name"] == c.names[i]
        jsz = c.monitor(i, "/jsz")
        assert jsz["meta_cluster"]["cluster_size"] == 3
        assert jsz["meta_cluster"]["leader"] == leader

    info = c.js("STREAM.CREATE.SMOKE", STREAM)
    assert info["config"]["num_replicas"] == 3
    info = c.wait_stream("SMOKE", timeout=15)
    assert len(info["cluster"]["replicas"]) == 2
    ack = json.loads(c.request("smoke.a", b"one"))
    assert ack == {"stream": "SMOKE", "seq": 1}

    # A server that leads neither the meta group nor the stream goes away (no election to
    # wait for): the other two keep the quorum.
    victim = next(i for i in range(3) if c.names[i] not in (leader, info["cluster"]["leader"]))
    assert c.kill(victim) == -9
    assert not c.alive(victim)
    assert c.wait_ready(timeout=20) == leader
    c.wait_stream("SMOKE", timeout=15)
    ack = json.loads(c.request("smoke.b", b"two", i=(victim + 1) % 3))
    assert ack == {"stream": "SMOKE", "seq": 2}

    # Back on the same ports and store: it catches up with what it missed.
    url = c.urls[victim]
    c.start(victim)
    assert c.urls[victim] == url
    c.wait_ready(timeout=20)
    info = c.wait_stream("SMOKE", timeout=15)
    assert all(r["current"] for r in info["cluster"]["replicas"])
    assert info["state"]["messages"] == 2
    with c.client(victim) as cl:
        assert cl.info["server_name"] == c.names[victim]
        assert cl.js("STREAM.INFO.SMOKE")["state"]["last_seq"] == 2
    assert "server is ready" in c.log(victim).lower()


def test_single_server(nats_single):
    c = nats_single
    assert c.names == ["n1"] and len(c.urls) == 1 and c.url_arg() == c.urls[0]
    assert c.leader() is None
    assert "meta_cluster" not in c.monitor(0, "/jsz") or \
        not c.monitor(0, "/jsz")["meta_cluster"].get("cluster_size")
    with c.client() as cl:
        cl.js("STREAM.CREATE.BIG", {"name": "BIG", "subjects": ["big"], "storage": "file"})
        payload = b"x" * MAX_PAYLOAD
        assert json.loads(cl.request("big", payload)) == {"stream": "BIG", "seq": 1}
        with pytest.raises(JetStreamError) as e:
            cl.js("STREAM.INFO.NOPE")
        assert e.value.code == 404
    # Restarted, the stream is still in the store.
    c.kill(0)
    c.start(0)
    c.wait_ready(timeout=15)
    assert c.js("STREAM.INFO.BIG")["state"]["messages"] == 1


@pytest.mark.parametrize("n", [1, 3])
def test_close_cleans_up_after_an_error(tmp_path, n):
    with pytest.raises(ZeroDivisionError):
        with NatsCluster(n, tmp_path) as c:
            pids = [s.proc.pid for s in c.servers]
            base = c.base
            assert all(pid_alive(p) for p in pids) and os.path.isdir(base)
            1 / 0
    assert not any(pid_alive(p) for p in pids)
    assert not os.path.exists(base)
    assert os.listdir(str(tmp_path)) == []
