"""NATS JetStream servers for the cluster tests, and logcasterd nodes that use them.

NatsCluster starts n nats-server processes (Debian's nats-server 2.9) with JetStream on
127.0.0.1, clustered over routes when n > 1, each with a config file and a store directory of
its own inside a private temporary directory. Every port is chosen at run time and kept for
the cluster's life, so a restarted server comes back on the same URLs and routes. The
processes are stopped and the directory removed at close(), whatever the test did.

LogcasterNode starts a logcasterd cluster node with the conftest Server code (ephemeral ports
read from its "listening" lines, sanitizer check of stderr); a restarted node gets a new run
directory for its stderr and keeps its data directory, as in test_durability.py.

The fixtures (nats_cluster, module_nats_cluster, nats_single, logcaster_node) are defined
here and imported by conftest.py, so every test module has them.
A NatsClient speaks just enough of the NATS protocol for a test to call the JetStream API
($JS.API.*) and publish, since no Python NATS client is packaged in Debian 12.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

# conftest.py imports this module's fixtures, so nothing here imports conftest at load time
# (LogcasterNode does when it starts a node). These two are conftest's.
HOST = "127.0.0.1"
IO_TIMEOUT = 10.0
NATS_SERVER = os.environ.get("NATS_SERVER") or shutil.which("nats-server") or \
    "/usr/sbin/nats-server"
SETPRIV = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv")
                                      else None)
MAX_PAYLOAD = 8 << 20
UP_TIMEOUT = 10.0        # Longest wait for a started nats-server to answer on its HTTP port.
READY_TIMEOUT = 30.0     # Default longest wait for JetStream to be usable.
STOP_TIMEOUT = 10.0      # Longest wait for a nats-server to exit after SIGTERM.
START_ATTEMPTS = 3       # Whole-cluster starts tried when a chosen port was taken meanwhile.

# Every process started here, killed at interpreter exit if a test run is interrupted before
# its fixtures' teardown.
_live = set()
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_leftovers)


def free_ports(n):
    """n distinct loopback ports that nothing listened on a moment ago (all bound at once,
    then released). Another process may take one before it is used: NatsCluster retries."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class PortTaken(Exception):
    """A nats-server could not listen on a port chosen for it."""


class NatsError(Exception):
    """A NATS protocol error (-ERR), or no answer to a request in time."""


class NoResponders(NatsError):
    """Nobody is subscribed to a request's subject (status 503)."""


class JetStreamError(NatsError):
    """The JetStream API answered with an error; .code, .err_code and .description."""

    def __init__(self, err):
        self.code = err.get("code")
        self.err_code = err.get("err_code")
        self.description = err.get("description", "")
        super().__init__("JetStream error %s/%s: %s" % (self.code, self.err_code,
                                                         self.description))


class NatsClient:
    """A minimal synchronous NATS client: connect, request, publish. Every wait is bounded."""

    def __init__(self, url, timeout=IO_TIMEOUT):
        hostport = url.split("://", 1)[-1].split(",", 1)[0]
        host, _, port = hostport.rpartition(":")
        self.timeout = timeout
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.sid = 0
        try:
            line = self._line(time.monotonic() + timeout)
            if not line.startswith(b"INFO "):
                raise NatsError("expected INFO, got %r" % line[:200])
            self.info = json.loads(line[5:])
            # no_responders: a request to nobody fails at once instead of timing out.
            self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                              b'"no_responders":true,"lang":"python-test","version":"0"}\r\n')
            self.flush()
        except BaseException:
            self.sock.close()
            raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise NatsError("no answer within %.1f s" % self.timeout)
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise NatsError("no answer within %.1f s" % self.timeout) from None
        if not chunk:
            raise NatsError("connection closed by the server")
        self.buf += chunk

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _next(self, deadline):
        """The next MSG/HMSG as (sid, headers bytes or None, payload); answers PINGs."""
        while True:
            line = self._line(deadline)
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line in (b"PONG", b"+OK") or line.startswith(b"INFO "):
                continue
            elif line.startswith(b"-ERR"):
                raise NatsError(line.decode("utf-8", "replace"))
            elif line.startswith(b"MSG "):
                parts = line.split()
                data = self._exact(int(parts[-1]), deadline)
                return int(parts[2]), None, data
            elif line.startswith(b"HMSG "):
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._exact(total, deadline)
                return int(parts[2]), data[:hlen], data[hlen:]
            else:
                raise NatsError("unexpected protocol line %r" % line[:200])

    def flush(self):
        """PING and wait for the PONG: the server has processed everything sent before."""
        self.sock.sendall(b"PING\r\n")
        deadline = time.monotonic() + self.timeout
        while True:
            line = self._line(deadline)
            if line == b"PONG":
                return
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise NatsError(line.decode("utf-8", "replace"))

    def publish(self, subject, payload=b""):
        """Core NATS publish (no acknowledgement); flushed."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))
        self.flush()

    def request(self, subject, payload=b"", timeout=None):
        """Send payload to subject and return the first reply's payload (bytes). A JetStream
        publish is a request: its reply is the PubAck JSON."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.sid += 1
        sid = self.sid
        inbox = "_INBOX.%s" % uuid.uuid4().hex
        self.sock.sendall(b"SUB %s %d\r\nUNSUB %d 1\r\nPUB %s %s %d\r\n%s\r\n" % (
            inbox.encode(), sid, sid, subject.encode(), inbox.encode(), len(payload), payload))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            got, headers, data = self._next(deadline)
            if got != sid:
                continue
            if headers is not None and headers.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"503"]:
                raise NoResponders("no responders on %s" % subject)
            return data

    def js(self, api, req=None, timeout=None):
        """A JetStream API call: js("STREAM.CREATE.LOGS", {...}) sends the JSON to
        $JS.API.STREAM.CREATE.LOGS and returns the decoded answer; an error answer raises
        JetStreamError."""
        body = b"" if req is None else json.dumps(req).encode()
        resp = json.loads(self.request("$JS.API." + api, body, timeout))
        if "error" in resp:
            raise JetStreamError(resp["error"])
        return resp


class _NatsServer:
    """One server of a NatsCluster: its ports, files and process."""

    def __init__(self, index, base):
        self.index = index
        self.name = "n%d" % (index + 1)
        self.dir = os.path.join(base, self.name)
        self.store_dir = os.path.join(self.dir, "store")
        self.conf = os.path.join(self.dir, "nats.conf")
        self.log_path = os.path.join(self.dir, "server.log")
        os.makedirs(self.store_dir)
        self.port = self.route_port = self.http_port = None
        self.proc = None

    @property
    def url(self):
        return "nats://%s:%d" % (HOST, self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


class NatsCluster:
    """n JetStream nats-servers on 127.0.0.1 (n = 1: a single server, no routes).

    Servers are numbered 0..n-1 and named n1..nN. The constructor starts them all and waits
    until each accepts clients; wait_ready() waits for JetStream itself."""

    def __init__(self, n=3, tmpdir=None, cluster_name=None, extra_config=""):
        """extra_config: lines added to every server's configuration (authorization, tls)."""
        assert n >= 1
        self.n = n
        self.extra_config = extra_config
        # A directory of our own (inside tmpdir when given), removed by close().
        self.base = tempfile.mkdtemp(prefix="nats-", dir=str(tmpdir) if tmpdir else None)
        self.cluster_name = cluster_name or "lct-%s" % uuid.uuid4().hex[:12]
        self.servers = [_NatsServer(i, self.base) for i in range(n)]
        try:
            for attempt in range(START_ATTEMPTS):
                self._assign_ports()
                try:
                    for s in self.servers:
                        self._spawn(s)
                    for s in self.servers:
                        self._wait_up(s)
                    break
                except PortTaken:
                    self._stop_all()
                    for s in self.servers:   # Start the next attempt from empty stores.
                        shutil.rmtree(s.store_dir)
                        os.makedirs(s.store_dir)
                    if attempt == START_ATTEMPTS - 1:
                        raise
        except BaseException:
            self.close()
            raise

    # Configuration -----------------------------------------------------------------------

    def _assign_ports(self):
        ports = free_ports(3 * self.n)
        for s in self.servers:
            s.port, s.route_port, s.http_port = ports[3 * s.index:3 * s.index + 3]
        for s in self.servers:   # Each config names the others' route ports.
            with open(s.conf, "w") as f:
                f.write(self._config(s))

    def _config(self, s):
        lines = [
            "# nats-server 2.9 configuration written by tests/integration/natscluster.py",
            "server_name: %s" % json.dumps(s.name),
            "listen: %s" % json.dumps("%s:%d" % (HOST, s.port)),
            "http: %s" % json.dumps("%s:%d" % (HOST, s.http_port)),
            "max_payload: %d" % MAX_PAYLOAD,
            "jetstream {",
            "    store_dir: %s" % json.dumps(s.store_dir),
            "}",
            self.extra_config,
        ]
        if self.n > 1:
            routes = ["        %s" % json.dumps("nats-route://%s:%d" % (HOST, o.route_port))
                      for o in self.servers if o is not s]
            lines += [
                "cluster {",
                "    name: %s" % json.dumps(self.cluster_name),
                "    listen: %s" % json.dumps("%s:%d" % (HOST, s.route_port)),
                "    routes: [",
            ] + routes + [
                "    ]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    # Processes ---------------------------------------------------------------------------

    def _spawn(self, s):
        cmd = [NATS_SERVER, "-c", s.conf]
        # The server dies with the test process even when that is killed; only from the main
        # thread, since the signal is tied to the thread that started the process.
        if SETPRIV and threading.current_thread() is threading.main_thread():
            cmd = [SETPRIV, "--pdeathsig", "KILL", "--"] + cmd
        with open(s.log_path, "ab") as log:
            log.write(b"==== start: %s\n" % " ".join(cmd).encode())
            log.flush()
            s.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=s.dir)
        with _live_lock:
            _live.add(s.proc)

    def _wait_up(self, s, timeout=UP_TIMEOUT):
        """Until s accepts clients: its client port sends the INFO of a server named s.name
        (it opens that port last, after JetStream and the monitoring port)."""
        deadline = time.monotonic() + timeout
        while True:
            if s.proc.poll() is not None:
                log = s.log()
                if "address already in use" in log.rsplit("==== start:", 1)[-1]:
                    raise PortTaken(s.name)
                raise RuntimeError("nats-server %s exited with %s at start:\n%s" % (
                    s.name, s.proc.returncode, log[-3000:]))
            if self._info_name(s) == s.name:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("nats-server %s not up within %.0f s:\n%s" % (
                    s.name, timeout, s.log()[-3000:]))
            time.sleep(0.05)

    @staticmethod
    def _info_name(s):
        """The server_name in the INFO line s's client port sends, or None."""
        try:
            with socket.create_connection((HOST, s.port), timeout=1.0) as sock:
                data = b""
                while b"\r\n" not in data and len(data) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
        except OSError:
            return None
        line = data.split(b"\r\n", 1)[0]
        if not line.startswith(b"INFO "):
            return None
        try:
            return json.loads(line[5:]).get("server_name")
        except ValueError:
            return None

    def _reap(self, s, timeout):
        try:
            s.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(timeout=10)
        with _live_lock:
            _live.discard(s.proc)

    def kill(self, i, sig=signal.SIGKILL):
        """Deliver sig (SIGKILL by default) to server i and wait for its exit (SIGKILL after
        STOP_TIMEOUT at most); returns the exit status."""
        s = self.servers[i]
        assert s.alive(), "%s is not running" % s.name
        s.proc.send_signal(sig)
        self._reap(s, STOP_TIMEOUT)
        return s.proc.returncode

    def start(self, i):
        """Restart server i with its config and store directory (same ports) and wait until
        it accepts clients; call wait_ready() for JetStream."""
        s = self.servers[i]
        assert not s.alive(), "%s is already running" % s.name
        self._spawn(s)
        self._wait_up(s)

    def _stop_all(self):
        for s in self.servers:
            if s.alive():
                s.proc.terminate()
        for s in self.servers:
            if s.proc is not None:
                self._reap(s, STOP_TIMEOUT)

    def stop(self):
        """SIGTERM every running server, wait at most STOP_TIMEOUT, SIGKILL what is left."""
        self._stop_all()

    def close(self):
        """stop(), then remove the whole directory (configs, stores, logs)."""
        try:
            self._stop_all()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Addresses ---------------------------------------------------------------------------

    @property
    def urls(self):
        return [s.url for s in self.servers]

    def url_arg(self):
        """All client URLs, comma-separated: the value of logcasterd's --cluster."""
        return ",".join(self.urls)

    @property
    def names(self):
        return [s.name for s in self.servers]

    def alive(self, i):
        return self.servers[i].alive()

    def log(self, i):
        """Everything server i wrote (all its runs)."""
        return self.servers[i].log()

    # Monitoring --------------------------------------------------------------------------

    def _http(self, s, path, timeout=2.0):
        """GET the monitoring endpoint path of s: (HTTP status, decoded JSON)."""
        url = "http://%s:%d%s" % (HOST, s.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"{}")

    def monitor(self, i, path):
        """The JSON of server i's monitoring endpoint path, e.g. monitor(0, "/jsz")."""
        return self._http(self.servers[i], path)[1]

    def leader(self):
        """The name of the JetStream meta leader as a running server sees it, or None (also
        for a single server, which has no meta group)."""
        for s in self.servers:
            if s.alive():
                try:
                    mc = self._http(s, "/jsz")[1].get("meta_cluster") or {}
                except (OSError, ValueError):
                    continue
                if mc.get("leader"):
                    return mc["leader"]
        return None

    def index(self, name):
        """The index of the server named name (n1 -> 0)."""
        return self.names.index(name)

    def _not_ready(self):
        """Why JetStream is not yet usable on the running servers, or None when it is."""
        running = [s for s in self.servers if s.alive()]
        if not running:
            return "no server is running"
        leaders = {}
        for s in running:
            try:
                status, health = self._http(s, "/healthz")
                if status != 200 or health.get("status") != "ok":
                    return "%s /healthz: %s" % (s.name, health)
                if self.n > 1:
                    leaders[s.name] = (self._http(s, "/jsz")[1].get("meta_cluster") or {})
            except (OSError, ValueError) as e:
                return "%s: %s" % (s.name, e)
        if self.n == 1:
            return None
        names = {mc.get("leader") for mc in leaders.values()}
        if len(names) != 1 or None in names:
            return "meta leaders seen: %s" % {k: v.get("leader") for k, v in leaders.items()}
        leader = names.pop()
        if leader not in leaders:
            return "meta leader %s is not running" % leader
        current = {r["name"] for r in leaders[leader].get("replicas") or [] if r.get("current")}
        behind = [s.name for s in running if s.name != leader and s.name not in current]
        if behind:
            return "not current with meta leader %s: %s" % (leader, behind)
        return None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until JetStream is usable on every running server: each answers /healthz "ok"
        (JetStream on, in contact with the meta leader and current with it), and with routes
        all agree on a running meta leader that counts every other running server as current.
        Returns the meta leader's name (None for a single server). Raises TimeoutError with
        the reason and the servers' log tails."""
        deadline = time.monotonic() + timeout
        while True:
            # A server that exited by itself (kill() and stop() reap theirs) is an error.
            for s in self.servers:
                with _live_lock:
                    died = s.proc is not None and s.proc.poll() is not None and s.proc in _live
                if died:
                    raise RuntimeError("nats-server %s exited with %s:\n%s" % (
                        s.name, s.proc.returncode, s.log()[-3000:]))
            why = self._not_ready()
            if why is None:
                return self.leader() if self.n > 1 else None
            if time.monotonic() > deadline:
                tails = "\n".join("--- %s\n%s" % (s.name, s.log()[-1500:]) for s in self.servers)
                raise TimeoutError("JetStream not ready within %.0f s: %s\n%s" % (
                    timeout, why, tails))
            time.sleep(0.1)

    # Clients -----------------------------------------------------------------------------

    def client(self, i=None, timeout=IO_TIMEOUT):
        """A NatsClient connected to server i (default: the first running one)."""
        if i is None:
            i = next((s.index for s in self.servers if s.alive()), 0)
        return NatsClient(self.servers[i].url, timeout)

    def js(self, api, req=None, i=None, timeout=IO_TIMEOUT):
        """One JetStream API call on a fresh connection (see NatsClient.js)."""
        with self.client(i, timeout) as c:
            return c.js(api, req)

    def request(self, subject, payload=b"", i=None, timeout=IO_TIMEOUT):
        """One request on a fresh connection; returns the reply payload (bytes)."""
        with self.client(i, timeout) as c:
            return c.request(subject, payload)

    def wait_stream(self, stream, timeout=READY_TIMEOUT):
        """Until stream has a leader and every other running server among its replicas is
        current; returns its STREAM.INFO. After a kill the stream may have lost its leader
        (a new one takes 2-5 s): publishing to it meanwhile gets NoResponders. A missing
        stream raises JetStreamError (404) at once."""
        deadline = time.monotonic() + timeout
        while True:
            why = None
            try:
                info = self.js("STREAM.INFO." + stream, timeout=2.0)
                cl = info.get("cluster") or {}
                running = {s.name for s in self.servers if s.alive()}
                behind = [r["name"] for r in cl.get("replicas") or []
                          if r["name"] in running and not r.get("current")]
                if self.n > 1 and cl.get("leader") not in running:
                    why = "no leader: %s" % cl
                elif behind:
                    why = "replicas not current: %s" % behind
                else:
                    return info
            except JetStreamError as e:
                if e.code == 404:
                    raise
                why = str(e)
            except (NatsError, OSError) as e:
                why = str(e)
            if time.monotonic() > deadline:
                raise TimeoutError("stream %s not ready within %.0f s: %s" % (
                    stream, timeout, why))
            time.sleep(0.1)


# logcasterd cluster nodes -------------------------------------------------------------------

class LogcasterNode:
    """A logcasterd cluster node: $LOGCASTERD with conftest Server's listener flags (port 0
    on 127.0.0.1, no connection rate limits) plus --cluster URLS --node-name NAME and the
    extra args. Each start is a run (a conftest Server in tmp_path/runN, its stderr there);
    every run shares the data directory tmp_path/data. Attributes and methods of the
    current run (log_port, query_port, irc_port, http_port, query(), search(), count(),
    stats(), wait_count(), log(), send(), stderr(), alive(), pid, ...) are the node's."""

    def __init__(self, tmp_path, cluster, name, *args):
        self.tmp_path = tmp_path
        self.name = name
        self.urls = cluster.url_arg() if isinstance(cluster, NatsCluster) else str(cluster)
        self.extra_args = [str(a) for a in args]
        self.data_dir = str(tmp_path / "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.runs = []     # One conftest Server per start, the current one last.
        self._starts = 0
        self._start()

    def _start(self, extra=()):
        run = self.tmp_path / ("run%d" % self._starts)
        self._starts += 1
        run.mkdir()
        os.symlink(self.data_dir, str(run / "data"))
        args = ["--cluster", self.urls, "--node-name", self.name] + self.extra_args + \
            [str(a) for a in extra]
        from conftest import Server
        self.runs.append(Server(run, args))

    @property
    def server(self):
        """The current run's conftest Server."""
        return self.runs[-1]

    def __getattr__(self, attr):
        # Only reached for names LogcasterNode does not define itself.
        if attr in ("runs", "_starts"):
            raise AttributeError(attr)
        return getattr(self.server, attr)

    def kill9(self):
        """SIGKILL the node and wait for it to exit (bounded)."""
        self.server.stop(signal.SIGKILL)

    def restart(self, *extra):
        """Start the node again on the same data directory (a new run, new ports), stopping
        it first (stop(): exit code 0, clean stderr) when it is still running. extra: args
        for this run only, after the node's own."""
        if self.server.alive():
            self.stop()
        self._start(extra)

    def stop(self, sig=signal.SIGTERM):
        """Deliver sig (SIGTERM) and wait for the exit; checks the exit code is 0 and that
        stderr has no sanitizer report. Returns the exit code."""
        srv = self.server
        rc = srv.stop(sig)
        assert rc == 0, "node %s exit code %s after signal %s; stderr:\n%s" % (
            self.name, rc, sig, srv.stderr()[-6000:])
        srv.teardown()   # Stopped already: this closes and checks its stderr.
        return rc

    def teardown(self):
        """Stop the current run (SIGTERM, exit 0) when it still runs and check every run's
        stderr; raises the first failure after trying them all."""
        errors = []
        for srv in self.runs:
            try:
                srv.teardown()
            except BaseException as e:
                errors.append(e)
        if errors:
            raise errors[0]


# Fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def nats_cluster(tmp_path_factory):
    """A 3-server JetStream cluster, ready (wait_ready) before the test; closed after."""
    with NatsCluster(3, tmp_path_factory.mktemp("nats")) as c:
        c.wait_ready()
        yield c


@pytest.fixture(scope="module")
def module_nats_cluster(tmp_path_factory):
    """The same, shared by one module's tests (which must leave every server running)."""
    with NatsCluster(3, tmp_path_factory.mktemp("nats")) as c:
        c.wait_ready()
        yield c


@pytest.fixture
def nats_single(tmp_path_factory):
    """One JetStream nats-server without routes, ready before the test; closed after."""
    with NatsCluster(1, tmp_path_factory.mktemp("nats")) as c:
        c.wait_ready()
        yield c


@pytest.fixture
def logcaster_node(request, tmp_path_factory):
    """Factory: logcaster_node(cluster, name, *args) starts a LogcasterNode (cluster: a
    NatsCluster or a "nats://...,nats://..." string). Every node is stopped and checked at
    teardown, before the test's NATS servers stop."""
    # Make the NATS fixtures the test uses ours too, so that they are torn down after the
    # nodes whatever the order of the test's arguments.
    for f in ("nats_cluster", "module_nats_cluster", "nats_single"):
        if f in request.fixturenames:
            request.getfixturevalue(f)
    nodes = []

    def start(cluster, name, *args):
        node = LogcasterNode(tmp_path_factory.mktemp("node-%s" % name), cluster, name, *args)
        nodes.append(node)
        return node

    yield start
    errors = []
    for node in nodes:
        try:
            node.teardown()
        except BaseException as e:   # Stop every node even if one fails its checks.
            errors.append(e)
    if errors:
        raise errors[0]
