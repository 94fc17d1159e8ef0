#!/usr/bin/env python3
"""A stand-in for logcasterd's HTTP API, for developing the web console without the C server.

    python3 tests/integration/web_mock.py [--http-port 8080] [--log-port 9999] [--seed 3000]

It serves web/index.html, web/app.js and web/app.css at /, /app.js and /app.css and implements
the HTTP API contract (query, histogram, stats, tail as Server-Sent Events, POST logs) over an
in-memory list of entries, with a toy version of the query language: words, "phrases", -word,
NOT word, level:X / level:>=X / level:X,Y, source:, since:, from:, to:, limit:; unbalanced
parentheses are a 400 error. A plain-text ingest port takes newline-terminated lines (level
detected from the upper-case level words) and framed LOG|level|ts|msg lines (answered OK|id).
Like logcasterd it prints "listening http 127.0.0.1:P" and "listening log 127.0.0.1:P".
"""
import argparse
import json
import os
import random
import re
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL", "CRIT": "FATAL", "ERR": "ERROR", "NOTICE": "INFO",
           "DBG": "DEBUG"}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}


class QueryError(Exception):
    pass


def now_ms():
    return int(time.time() * 1000)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (ms % 1000)


def parse_time(v):
    """Unix ms (integer) or ISO-8601 -> ms."""
    if v is None or v == "":
        return None
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError("invalid time %r" % v)
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp() * 1000)


def parse_dur(t):
    mult = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        return None
    return sum(int(a) * mult[b] for a, b in parts)


def detect_level(line):
    m = re.search(r"\b(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|CRIT|NOTICE|DBG)\b",
                  line[:128])
    if not m:
        return "INFO"
    w = m.group(1)
    return ALIASES.get(w, w)


class Query:
    """The toy query language; raises QueryError with a position like the real one."""

    def __init__(self, q):
        depth = 0
        for i, c in enumerate(q):
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise QueryError("unbalanced parenthesis at %d" % (i + 1))
        if depth:
            raise QueryError("unbalanced parenthesis at %d" % (q.rindex("(") + 1))
        self.preds = []
        self.from_ms = self.to_ms = self.limit = None
        for tok in re.findall(r'-?"[^"]*"|[^\s()]+', q):
            neg = False
            if tok in ("AND", "OR"):
                continue
            if tok == "NOT":
                self.preds.append("NOT")
                continue
            if tok.startswith("-") and len(tok) > 1:
                neg, tok = True, tok[1:]
            if self.preds and self.preds[-1] == "NOT":
                self.preds.pop()
                neg = not neg
            p = self._pred(tok)
            if p is not None:
                self.preds.append((lambda e, p=p: not p(e)) if neg else p)
        self.preds = [p for p in self.preds if p != "NOT"]

    def _pred(self, tok):
        if tok.startswith('"'):
            phrase = tok.strip('"').lower()
            return lambda e: phrase in e["message"].lower()
        field, _, val = tok.partition(":")
        field = field.lower()
        if val and field == "level":
            m = re.fullmatch(r"(>=|<=|>|<|=)?([A-Za-z,]+)", val)
            if not m:
                raise QueryError("bad level %r" % val)
            op, names = m.group(1) or "=", [ALIASES.get(n.upper(), n.upper()) for n in m.group(2).split(",")]
            for n in names:
                if n not in LEVELS:
                    raise QueryError("unknown level %r" % n)
            k = LEVELS.index(names[0])
            return {"=": lambda e: e["level"] in names,
                    ">=": lambda e: LEVELS.index(e["level"]) >= k,
                    "<=": lambda e: LEVELS.index(e["level"]) <= k,
                    ">": lambda e: LEVELS.index(e["level"]) > k,
                    "<": lambda e: LEVELS.index(e["level"]) < k}[op]
        if val and field == "source":
            return lambda e: e["source"].lower().startswith(val.lower())
        if val and field in ("since", "until"):
            d = parse_dur(val)
            if d is None:
                raise QueryError("bad duration %r" % val)
            t = now_ms() - d
            if field == "since":
                self.from_ms = t
                return lambda e: e["ts_ms"] >= t
            self.to_ms = t
            return lambda e: e["ts_ms"] <= t
        if val and field in ("from", "to"):
            t = parse_time(val if not re.fullmatch(r"\d{9,11}", val) else str(int(val) * 1000))
            if field == "from":
                self.from_ms = t
                return lambda e: e["ts_ms"] >= t
            self.to_ms = t
            return lambda e: e["ts_ms"] <= t
        if val and field == "limit":
            self.limit = int(val)
            return None
        word = tok.lower()
        lvl = ALIASES.get(tok.upper(), tok.upper())
        if lvl in LEVELS:
            return lambda e: word in e["message"].lower() or e["level"] == lvl
        return lambda e: word in e["message"].lower()

    def match(self, e):
        return all(p(e) for p in self.preds)


class Store:
    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.next_id = 1
        self.appended = 0
        self.bytes_received = 0
        self.connections = 0
        self.started = time.time()

    def add(self, level, ts_ms, source, message):
        with self.cond:
            e = {"id": self.next_id, "ts": iso(ts_ms), "ts_ms": ts_ms, "level": level,
                 "source": source, "message": message}
            self.next_id += 1
            self.appended += 1
            self.bytes_received += len(message) + 1
            self.entries.append(e)
            if len(self.entries) > 1 and ts_ms < self.entries[-2]["ts_ms"]:
                pass  # Entries stay in id order, as in the real store.
            self.cond.notify_all()
            return e

    def snapshot(self):
        with self.lock:
            return list(self.entries)


STORE = Store()

SAMPLES = [
    ("INFO", "GET /api/orders/{n} 200 {ms}ms"),
    ("INFO", "user u{n} logged in from 10.0.{a}.{b}"),
    ("INFO", "cache refresh done: {n} keys in {ms}ms"),
    ("DEBUG", "pool stats: active={a} idle={b} waiting=0"),
    ("DEBUG", "parsed request headers (n={a})"),
    ("TRACE", "enter handle_request fd={n}"),
    ("WARN", "slow query: SELECT * FROM orders WHERE customer_id = {n} took {ms}ms"),
    ("WARN", "upstream 10.0.{a}.{b}:8080 timeout after {ms}ms, retrying"),
    ("ERROR", "payment gateway returned 502 for order {n}"),
    ("ERROR", "disk /dev/sda{a} is 9{b}% full"),
    ("FATAL", "out of memory: cannot allocate {n} bytes, shutting down worker {a}"),
]
WEIGHTS = [30, 20, 8, 10, 6, 4, 6, 5, 4, 2, 0.3]


def fake_message(rng):
    lvl, tpl = rng.choices(SAMPLES, WEIGHTS)[0]
    return lvl, tpl.format(n=rng.randint(1000, 99999), ms=rng.randint(3, 9000),
                           a=rng.randint(1, 9), b=rng.randint(0, 9))


def seed(n, span_ms=2 * 3600 * 1000):
    rng = random.Random(7)
    t_end = now_ms()
    times = sorted(t_end - int(span_ms * (rng.random() ** 0.7)) for _ in range(n))
    for t in times:
        lvl, msg = fake_message(rng)
        STORE.add(lvl, t, "10.0.%d.%d:%d" % (rng.randint(0, 3), rng.randint(2, 40), rng.randint(30000, 60000)), msg)


def pick_step(span):
    for st in (1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000,
               1800000, 3600000, 7200000, 21600000, 43200000, 86400000):
        if span / st <= 120:
            return st
    return 86400000 * ((span // 86400000) // 120 + 1)


class Handler(BaseHTTPRequestHandler):
    server_version = "logcaster-mock/1"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        if os.environ.get("WEB_MOCK_VERBOSE"):
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        args = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        try:
            if u.path in STATIC:
                name, ctype = STATIC[u.path]
                with open(os.path.join(ROOT, "web", name), "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)
            elif u.path == "/api/v1/query":
                self.api_query(args)
            elif u.path == "/api/v1/histogram":
                self.api_histogram(args)
            elif u.path == "/api/v1/stats":
                self.api_stats()
            elif u.path == "/api/v1/tail":
                self.api_tail(args)
            else:
                self.send_json(404, {"error": "not found"})
        except QueryError as e:
            self.send_json(400, {"error": str(e)})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/api/v1/logs":
            return self.send_json(404, {"error": "not found"})
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        src = "%s:%d" % self.client_address
        ids = []
        for line in body.splitlines():
            if not line.strip():
                continue
            lvl, msg, ts = None, line, now_ms()
            if line.startswith("{"):
                try:
                    o = json.loads(line)
                    msg = str(o.get("message", ""))
                    lvl = (o.get("level") or "").upper() or None
                except ValueError:
                    pass
            ids.append(STORE.add(lvl or detect_level(msg), ts, src, msg)["id"])
        self.send_json(200, {"stored": len(ids), "first_id": ids[0] if ids else None,
                             "last_id": ids[-1] if ids else None})

    def api_query(self, a):
        t0 = time.perf_counter()
        q = Query(a.get("q", ""))
        limit = min(int(a.get("limit") or 100), 10000)
        if q.limit:
            limit = min(limit, q.limit)
        before = int(a["before"]) if a.get("before") else None
        lo, hi = parse_time(a.get("from")), parse_time(a.get("to"))
        out, more = [], False
        for e in reversed(STORE.snapshot()):
            if before is not None and e["id"] >= before:
                continue
            if lo is not None and e["ts_ms"] < lo or hi is not None and e["ts_ms"] > hi:
                continue
            if not q.match(e):
                continue
            if len(out) == limit:
                more = True
                break
            out.append(e)
        self.send_json(200, {"query": a.get("q", ""), "limit": limit, "more": more,
                             "took_ms": round((time.perf_counter() - t0) * 1000, 3), "entries": out})

    def api_histogram(self, a):
        q = Query(a.get("q", ""))
        lo, hi = parse_time(a.get("from")), parse_time(a.get("to"))
        if hi is None:
            hi = q.to_ms if q.to_ms is not None else now_ms()
        if lo is None:
            lo = q.from_ms if q.from_ms is not None else hi - 3600 * 1000
        step = a.get("step")
        if step:
            step = int(step) if step.isdigit() else parse_dur(step)
            if not step:
                raise QueryError("bad step")
        else:
            step = pick_step(max(1, hi - lo))
        start = lo - lo % step
        n = max(1, -(-(hi - start) // step))
        buckets = [{"ts_ms": start + i * step, "counts": [0] * 6} for i in range(n)]
        for e in STORE.snapshot():
            t = e["ts_ms"]
            if lo <= t < hi and q.match(e):
                buckets[(t - start) // step]["counts"][LEVELS.index(e["level"])] += 1
        self.send_json(200, {"query": a.get("q", ""), "from_ms": start, "to_ms": start + n * step,
                             "step_ms": step, "levels": LEVELS, "buckets": buckets})

    def api_stats(self):
        es = STORE.snapshot()
        raw = sum(len(e["message"]) + 40 for e in es)
        per = {l: 0 for l in LEVELS}
        for e in es:
            per[e["level"]] += 1
        self.send_json(200, {
            "entries": len(es), "appended": STORE.appended, "bytes_received": STORE.bytes_received,
            "raw_bytes": raw, "disk_bytes": raw // 7 + 16, "compression_ratio": round((raw // 7 + 16) / max(raw, 1), 4),
            "segments": 1, "connections_current": STORE.connections, "uptime_s": int(time.time() - STORE.started),
            "fsync_policy": "batch", "oldest_ts_ms": min((e["ts_ms"] for e in es), default=None),
            "newest_ts_ms": max((e["ts_ms"] for e in es), default=None), "per_level": per})

    def api_tail(self, a):
        q = Query(a.get("q", ""))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        with STORE.lock:
            seen = STORE.next_id - 1
        STORE.connections += 1
        try:
            while True:
                with STORE.cond:
                    if STORE.next_id - 1 == seen:
                        STORE.cond.wait(15)
                    new = [e for e in STORE.entries[-(STORE.next_id - 1 - seen):] if e["id"] > seen] \
                        if STORE.next_id - 1 > seen else []
                    seen = STORE.next_id - 1
                out = b""
                for e in new:
                    if q.match(e):
                        out += ("event: log\nid: %d\ndata: %s\n\n" % (e["id"], json.dumps(e))).encode()
                if not new:
                    out = b": keepalive\n\n"
                if out:
                    self.wfile.write(out)
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            STORE.connections -= 1


class LogHandler(socketserver.StreamRequestHandler):
    def handle(self):
        src = "%s:%d" % self.client_address
        STORE.connections += 1
        try:
            for raw in self.rfile:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    continue
                m = re.match(r"^LOG\|([^|]*)\|([^|]*)\|(.*)$", line)
                if m:
                    lvl = m.group(1).upper()
                    lvl = ALIASES.get(lvl, lvl) if lvl not in ("", "-") else detect_level(m.group(3))
                    if lvl not in LEVELS:
                        self.wfile.write(b"ERROR|unknown level\n")
                        continue
                    ts = m.group(2)
                    ts = now_ms() if ts in ("", "-") else int(float(ts) * 1000)
                    e = STORE.add(lvl, ts, src, m.group(3))
                    self.wfile.write(b"OK|%d\n" % e["id"])
                else:
                    STORE.add(detect_level(line), now_ms(), src, line)
        finally:
            STORE.connections -= 1


class LogServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--log-port", type=int, default=9999)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--seed", type=int, default=0, help="fake entries over the last two hours")
    ap.add_argument("--drip", type=float, default=0,
                    help="add a fake entry every DRIP seconds (to watch the live tail)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    if args.seed:
        seed(args.seed)
    httpd = ThreadingHTTPServer((args.bind, args.http_port), Handler)
    httpd.daemon_threads = True
    logd = LogServer((args.bind, args.log_port), LogHandler)
    print("listening log %s:%d" % (args.bind, logd.server_address[1]))
    print("listening http %s:%d" % (args.bind, httpd.server_address[1]), flush=True)
    threading.Thread(target=logd.serve_forever, daemon=True).start()
    if args.drip:
        def drip():
            rng = random.Random()
            while True:
                time.sleep(args.drip)
                lvl, msg = fake_message(rng)
                STORE.add(lvl, now_ms(), "10.0.0.%d:5000" % rng.randint(2, 9), msg)
        threading.Thread(target=drip, daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
