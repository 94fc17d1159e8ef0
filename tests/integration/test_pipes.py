"""Field comparisons with units and LogsQL-style pipes, on every front end (README "Query
language" and "Pipes").

One server (module scope) gets a few thousand framed LOG| lines with explicit times and
random key=value fields (levels, latency_ms, status, user, sizes with units, durations,
quoted values, negative decimals, duplicates, look-alikes inside quoted values), over two
connections so there are two sources. The generated data stays in the test, and every answer
is checked against a brute-force Python evaluation of the README's rules over it:

- comparisons (every operator, ranges, units, AND/OR/NOT) through COUNT and `| fields seq`;
- every stats function (exact ones exactly, quantile within the stated 1%), by one and two
  fields, by (_time:STEP) buckets, top, sort asc/desc with limit, fields, field_names;
- the query port's row format byte for byte (column order, quoting), HTTP's JSON table (numbers
  bare) and NDJSON, IRC !query's count line, hint and rows;
- bad queries: one error line naming the position on the query port, 400 on HTTP, "error:" on
  IRC.
"""
import functools
import http.client
import json
import math
import random
import re
import socket
import time
import urllib.parse

import pytest

from conftest import HOST, LineConn

N = 3000                      # Generated entries.
SEED = 20261207
LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"]
STATUSES = [200, 201, 204, 301, 302, 400, 401, 403, 404, 429, 500, 502, 503, 504]
QUANTILE_TOLERANCE = 0.01     # README: within 1% of the exact nearest-rank value.
IRC_TIMEOUT = 10.0
LOGBOT = ":LogBot!log@system"

# ---------------------------------------------------------------------------------------------
# Numbers with units, as the README states them (VictoriaLogs' rules).

_DUR = [("\u00b5s", 1e3), ("us", 1e3), ("ns", 1), ("ms", 1e6), ("s", 1e9), ("m", 60e9),
        ("h", 3600e9), ("d", 86400e9), ("w", 7 * 86400e9), ("y", 365 * 86400e9)]
_SIZE = [("KiB", 1024.0), ("MiB", 1048576.0), ("GiB", 1073741824.0), ("TiB", 1099511627776.0),
         ("kib", 1024.0), ("mib", 1048576.0), ("gib", 1073741824.0), ("tib", 1099511627776.0),
         ("Ki", 1024.0), ("Mi", 1048576.0), ("Gi", 1073741824.0), ("Ti", 1099511627776.0),
         ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("kb", 1e3), ("mb", 1e6),
         ("gb", 1e9), ("tb", 1e12), ("B", 1), ("b", 1), ("K", 1e3), ("M", 1e6), ("G", 1e9),
         ("T", 1e12)]
_NUM = re.compile(r"[0-9_.]+")


def _plain(run):
    """A run of digits, '_' and '.' as a plain number, or None."""
    if not run or run[0] == "_" or run[-1] == "_" or run.count(".") > 1:
        return None
    digits = run.replace("_", "")
    if digits.startswith(".") or digits.endswith("."):
        return None
    int_part = digits.split(".")[0]
    if len(int_part) > 1 and int_part[0] == "0":
        return None
    return float(digits), "." not in digits


def _units(s, table, bare_last):
    total, i = 0.0, 0
    while i < len(s):
        m = _NUM.match(s, i)
        p = _plain(m.group(0)) if m else None
        if p is None:
            return None
        i = m.end()
        if i == len(s):
            if not bare_last or not p[1]:
                return None
            return total + p[0]
        for name, mult in table:
            if s.startswith(name, i):
                total += p[0] * mult
                i += len(name)
                break
        else:
            return None
    return total


def number(s):
    """The value of s as a number (durations in ns, sizes in bytes), or None."""
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    if not s:
        return None
    p = _plain(s) if _NUM.fullmatch(s) else None
    v = p[0] if p else None
    if v is None:
        v = _units(s, _DUR, False)
    if v is None:
        v = _units(s, _SIZE, True)
    if v is None:
        return None
    return -v if neg else v


def fmt_num(v):
    """A number cell as the server writes it (README: exact integers, else shortest of 15-17
    significant digits that reads back)."""
    if v == 0:
        return "0"
    if v == math.floor(v) and abs(v) < 2.0 ** 53:
        return "%.0f" % v
    for prec in (15, 16):
        s = "%.*g" % (prec, v)
        if float(s) == v:
            return s
    return "%.17g" % v


def cmp_values(a, b, desc=False):
    """README's sort order for one key: empty last in both directions; numbers before other
    values, by value; other values (and equal numbers) bytewise; desc reverses the rest."""
    if a == "" or b == "":
        return 0 if a == b else (1 if a == "" else -1)
    x, y = number(a), number(b)
    r = 0
    if x is not None and y is not None:
        r = (x > y) - (x < y)
    elif (x is None) != (y is None):
        r = -1 if x is not None else 1
    if r == 0:
        ab, bb = a.encode(), b.encode()
        r = (ab > bb) - (ab < bb)
    return -r if desc else r


def sort_rows(rows, keys):
    """rows: lists of strings; keys: (column index, desc). Stable, like the server's sort."""
    def cmp(p, q):
        for col, desc in keys:
            r = cmp_values(p[col], q[col], desc)
            if r:
                return r
        return 0
    return sorted(rows, key=functools.cmp_to_key(cmp))


def fmt_time(ts_ms, millis):
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000))
    return s + (".%03d" % (ts_ms % 1000) if millis else "") + "Z"


# ---------------------------------------------------------------------------------------------
# The data: every entry's message is made of (name, text as written, value) parts.

SIZES = [  # (text, bytes)
    lambda r: (lambda n: ("%d" % n, n))(r.randint(0, 5000)),
    lambda r: (lambda n: ("%dB" % n, n))(r.randint(0, 900)),
    lambda r: (lambda n: ("%dKB" % n, n * 1000))(r.randint(1, 999)),
    lambda r: (lambda n: ("%dkb" % n, n * 1000))(r.randint(1, 999)),
    lambda r: (lambda n: ("%d.5KB" % n, n * 1000 + 500))(r.randint(1, 99)),
    lambda r: (lambda n: ("%dKiB" % n, n * 1024))(r.randint(1, 2047)),
    lambda r: (lambda n: ("%dMiB" % n, n * 1048576))(r.randint(1, 4)),
    lambda r: (lambda n: ("%dMB" % n, n * 1000000))(r.randint(1, 4)),
    lambda r: ("1MiB512KiB", 1048576 + 512 * 1024),
    lambda r: ("2MiB", 2 * 1048576),
    lambda r: (lambda n: ("%dGiB" % n, n * 1073741824))(r.randint(1, 3)),
]
DURATIONS = [  # (text, ns)
    lambda r: (lambda n: ("%dms" % n, n * 10 ** 6))(r.randint(0, 3000)),
    lambda r: (lambda n: ("%d.5s" % n, n * 10 ** 9 + 5 * 10 ** 8))(r.randint(0, 9)),
    lambda r: (lambda n: ("%dus" % n, n * 1000))(r.randint(1, 99999)),
    lambda r: (lambda n: ("%d\u00b5s" % n, n * 1000))(r.randint(1, 99999)),
    lambda r: (lambda n: ("%dns" % n, n))(r.randint(1, 10 ** 6)),
    lambda r: (lambda n: ("%dm" % n, n * 60 * 10 ** 9))(r.randint(1, 5)),
    lambda r: ("1h30m", 5400 * 10 ** 9),
    lambda r: ("100ms", 10 ** 8),
    lambda r: ("1.5s", 15 * 10 ** 8),
]
SPECIAL_USERS = [  # (text, value)
    ('"Ann Lee"', "Ann Lee"), ('"x=y"', "x=y"), ('"q\\"t"', 'q"t'), ('"a\\\\b c"', "a\\b c"),
    ("back\\slash", "back\\slash"), ("", "")]


class Entry:
    def __init__(self, seq, level, ts_ms, parts):
        self.seq, self.level, self.ts_ms = seq, level, ts_ms
        self.msg = " ".join("%s=%s" % (n, t) if n else t for n, t, _ in parts)
        self.fields, self.names = {}, set()
        for n, _, v in parts:
            if n:
                self.names.add(n)
                self.fields.setdefault(n, v)     # The first occurrence counts.
        self.id = self.source = None

    def get(self, name):
        """A column's value as the server shows it ("" when missing)."""
        if name == "_time":
            return fmt_time(self.ts_ms, True)
        if name == "level":
            return self.level
        if name == "source":
            return self.source
        if name == "_msg":
            return self.msg
        return self.fields.get(name, "")

    def num(self, name):
        """The field read as a number, as comparisons and sum/min/... read it."""
        v = self.fields.get(name)
        return None if v is None else number(v)


def generate(base_ms):
    r = random.Random(SEED)
    out = []
    for i in range(N):
        parts = [("seq", str(i), str(i))]
        x = r.random()
        if x < 0.80:
            u = "u%d" % r.randint(0, 19)
            parts.append(("user", u, u))
        elif x < 0.90:
            t, v = r.choice(SPECIAL_USERS)
            parts.append(("user", t, v))
        x = r.random()
        if x < 0.85:
            n = r.randint(0, 2000)
            parts.append(("latency_ms", str(n), str(n)))
        elif x < 0.88:
            n = r.randint(1000, 1999)
            t = "%d_%03d" % (n // 1000, n % 1000)
            parts.append(("latency_ms", t, t))
        elif x < 0.90:
            parts.append(("latency_ms", "n/a", "n/a"))
        elif x < 0.91:
            parts.append(("latency_ms", "007", "007"))      # A leading zero: text.
        if r.random() < 0.9:
            s = str(r.choice(STATUSES))
            parts.append(("status", s, s))
        if r.random() < 0.8:
            t, _ = r.choice(SIZES)(r)
            parts.append(("bytes", t, t))
        if r.random() < 0.8:
            t, _ = r.choice(DURATIONS)(r)
            parts.append(("took", t, t))
        if r.random() < 0.3:
            d = r.randint(-40, 40) * 0.25
            t = ("%g" % d)
            parts.append(("delta", t, t))
        x = r.random()
        if x < 0.25:
            parts.append(("msg", '"a b"', "a b"))
        elif x < 0.35:
            # A look-alike inside a quoted value is not a field.
            parts.append(("msg", '"slow latency_ms=99999 status=999"',
                          "slow latency_ms=99999 status=999"))
        elif x < 0.40:
            parts.append(("msg", '"say \\"hi\\""', 'say "hi"'))
        if r.random() < 0.03:
            parts.append(("Latency_ms", "5000", "5000"))     # Names are case-sensitive.
        if r.random() < 0.1:
            parts.append((None, "GET /x", None))
        head, rest = parts[0], parts[1:]
        r.shuffle(rest)
        if r.random() < 0.05 and any(n == "latency_ms" for n, _, _ in rest):
            rest.append(("latency_ms", "77777", "77777"))    # A second one does not count.
        ts_ms = base_ms + i * 2000 + r.randint(0, 1999)
        out.append(Entry(i, r.choice(LEVELS), ts_ms, [head] + rest))
    return out


# ---------------------------------------------------------------------------------------------
# The server and its front ends.

class Data:
    pass


def _send_framed(port, entries):
    with LineConn(port) as c:
        c.sendall("".join("LOG|%s|%d.%03d|%s\n" % (e.level, e.ts_ms // 1000, e.ts_ms % 1000,
                                                  e.msg) for e in entries))
        src = "%s:%d" % c.sock.getsockname()
        for e in entries:
            reply = c.readline().decode()
            m = re.match(r"^OK\|(\d+)$", reply)
            assert m, "seq %d answered %r" % (e.seq, reply)
            e.id, e.source = int(m.group(1)), src


@pytest.fixture(scope="module")
def data(module_server):
    srv = module_server()
    base_ms = (int(time.time()) - 4 * 3600) // 3600 * 3600 * 1000 + 123
    entries = generate(base_ms)
    half = N // 2
    _send_framed(srv.log_port, entries[:half])
    _send_framed(srv.log_port, entries[half:])
    assert len({e.source for e in entries}) == 2
    srv.wait_count(N)
    d = Data()
    d.srv, d.entries = srv, sorted(entries, key=lambda e: e.id)
    return d


def format_row(cols, vals):
    """One row as the query port writes it (pipe.h, qtable_row_kv)."""
    out = []
    for c, v in zip(cols, vals):
        if v == "" or any(ch in v for ch in ' "='):
            v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append("%s=%s" % (c, v))
    return " ".join(out)


def parse_row(line, cols):
    """Split a row by the expected column names; returns the values (unquoted)."""
    vals, i = [], 0
    for k, c in enumerate(cols):
        if k:
            assert line[i] == " ", "no single space before %r at %d in %r" % (c, i, line)
            i += 1
        assert line.startswith(c + "=", i), "column %r expected at %d in %r" % (c, i, line)
        i += len(c) + 1
        if i < len(line) and line[i] == '"':
            i += 1
            v = []
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                v.append(line[i])
                i += 1
            i += 1
            vals.append("".join(v))
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            vals.append(line[i:j])
            i = j
    assert i == len(line), "trailing text in %r" % line
    return vals


def search_table(srv, query, cols):
    """SEARCH query on the query port: the rows' values, after checking the exact format."""
    lines = srv.query("SEARCH " + query)
    assert lines[0].startswith("RESULT|"), "SEARCH %s -> %r" % (query, lines[:3])
    assert int(lines[0][7:]) == len(lines) - 2 and lines[-1] == "END"
    rows = []
    for line in lines[1:-1]:
        vals = parse_row(line, cols)
        assert format_row(cols, vals) == line, "not in canonical form: %r" % line
        rows.append(vals)
    return rows


def http_get(srv, path):
    c = http.client.HTTPConnection(HOST, srv.http_port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


class Num(str):
    """A JSON number, kept as the text the server wrote."""


def _num_hook(s):
    return Num(s)


def http_table(srv, query, ndjson=False):
    q = urllib.parse.quote(query, safe="")
    status, ctype, body = http_get(srv, "/api/v1/query?q=%s%s" % (
        q, "&format=ndjson" if ndjson else ""))
    assert status == 200, (query, status, body[:300])
    if ndjson:
        assert ctype.startswith("application/x-ndjson"), ctype
        return [json.loads(l, object_pairs_hook=list, parse_int=_num_hook,
                           parse_float=_num_hook) for l in body.splitlines()]
    d = json.loads(body, parse_int=_num_hook, parse_float=_num_hook)
    return d


# ---------------------------------------------------------------------------------------------
# Brute force.

def matching(d, pred):
    return [e for e in d.entries if pred(e)]


def cmp_pred(name, lo=None, hi=None, lo_open=False, hi_open=False):
    def p(e):
        x = e.num(name)
        if x is None:
            return False
        if lo is not None and (x <= lo if lo_open else x < lo):
            return False
        if hi is not None and (x >= hi if hi_open else x > hi):
            return False
        return True
    return p


MS, S = 10 ** 6, 10 ** 9
COMPARISONS = [
    ("latency_ms:>1500", cmp_pred("latency_ms", lo=1500, lo_open=True)),
    ("latency_ms:>=1500", cmp_pred("latency_ms", lo=1500)),
    ("latency_ms:<100", cmp_pred("latency_ms", hi=100, hi_open=True)),
    ("latency_ms:<=100", cmp_pred("latency_ms", hi=100)),
    ("latency_ms:[1000,1200]", cmp_pred("latency_ms", 1000, 1200)),
    ("latency_ms:[ 1_000 , 1_200 ]", cmp_pred("latency_ms", 1000, 1200)),
    ("latency_ms:>=1.5KB", cmp_pred("latency_ms", lo=1500)),
    ("status:>=500", cmp_pred("status", lo=500)),
    ("status:<300", cmp_pred("status", hi=300, hi_open=True)),
    ("status:[400,404]", cmp_pred("status", 400, 404)),
    ("bytes:<=2MiB", cmp_pred("bytes", hi=2 * 1048576)),
    ("bytes:>2MiB", cmp_pred("bytes", lo=2 * 1048576, lo_open=True)),
    ("bytes:>1KiB", cmp_pred("bytes", lo=1024, lo_open=True)),
    ("bytes:[1KB, 10KiB]", cmp_pred("bytes", 1000, 10240)),
    ("bytes:>=1GB", cmp_pred("bytes", lo=1e9)),
    ("bytes:<1.5kb", cmp_pred("bytes", hi=1500, hi_open=True)),
    ("took:[100ms,1.5s]", cmp_pred("took", 100 * MS, 1500 * MS)),
    ("took:<=250ms", cmp_pred("took", hi=250 * MS)),
    ("took:>1m", cmp_pred("took", lo=60 * S, lo_open=True)),
    ("took:<1ms", cmp_pred("took", hi=MS, hi_open=True)),
    ("took:>=1h", cmp_pred("took", lo=3600 * S)),
    ("took:<50us", cmp_pred("took", hi=50000, hi_open=True)),
    ("delta:<-2.5", cmp_pred("delta", hi=-2.5, hi_open=True)),
    ("delta:>=0", cmp_pred("delta", lo=0)),
    ("delta:[-1.25,1.25]", cmp_pred("delta", -1.25, 1.25)),
    ("Latency_ms:>0", cmp_pred("Latency_ms", lo=0, lo_open=True)),
    ("-status:>=500", lambda e: not cmp_pred("status", lo=500)(e)),
    ("NOT latency_ms:<=1000", lambda e: not cmp_pred("latency_ms", hi=1000)(e)),
    ("status:>=500 latency_ms:>1500",
     lambda e: cmp_pred("status", lo=500)(e) and cmp_pred("latency_ms", lo=1500, lo_open=True)(e)),
    ("status:>=500 OR latency_ms:>1900",
     lambda e: cmp_pred("status", lo=500)(e) or cmp_pred("latency_ms", lo=1900, lo_open=True)(e)),
    ("(status:>=500 OR level:ERROR) AND NOT latency_ms:<100",
     lambda e: (cmp_pred("status", lo=500)(e) or e.level == "ERROR")
     and not cmp_pred("latency_ms", hi=100, hi_open=True)(e)),
    ("level:>=WARN bytes:>=1MB -took:>1s",
     lambda e: e.level in ("WARN", "ERROR") and cmp_pred("bytes", lo=1e6)(e)
     and not cmp_pred("took", lo=S, lo_open=True)(e)),
    ("user:u3 latency_ms:<=1000 OR user:u4 status:[500,599]",
     lambda e: (e.fields.get("user") == "u3" and cmp_pred("latency_ms", hi=1000)(e))
     or (e.fields.get("user") == "u4" and cmp_pred("status", 500, 599)(e))),
]


@pytest.mark.parametrize("query,pred", COMPARISONS, ids=[q for q, _ in COMPARISONS])
def test_comparison_matches_brute_force(data, query, pred):
    want = matching(data, pred)
    assert data.srv.count(query) == len(want), query
    rows = search_table(data.srv, query + " | fields seq", ["seq"])
    assert [int(r[0]) for r in rows] == [e.seq for e in want], query
    assert data.srv.count(query) > 0 or query.startswith("Latency_ms"), "a vacuous case"


def test_comparisons_ignore_lookalikes_and_later_duplicates(data):
    """latency_ms=99999 exists only in quoted text, 77777 only as a second occurrence, and
    "n/a" and "007" are text."""
    srv = data.srv
    assert srv.count("latency_ms:>=77777") == 0
    assert srv.count("status:>=999") == 0
    assert any(e.msg.count("latency_ms=") > 1 for e in data.entries)
    assert srv.count("latency_ms:[0,7]") == len(matching(data, cmp_pred("latency_ms", 0, 7)))
    # A quoted value is always text; ends that are not numbers make an equality search.
    assert srv.count('status:">=500"') == 0
    assert srv.count("status:[a,b]") == 0


# ---------------------------------------------------------------------------------------------
# Stats.

def group(entries, by):
    """by: column names (or ("_time", step_ms)); returns {key tuple: [entries]}."""
    out = {}
    for e in entries:
        key = []
        for b in by:
            if isinstance(b, tuple):
                t = e.ts_ms - e.ts_ms % b[1]
                key.append(fmt_time(t, b[1] % 1000 != 0))
            else:
                key.append(e.get(b))
        out.setdefault(tuple(key), []).append(e)
    return out


def exact_func(kind, field, es):
    if kind == "count":
        return str(len(es)) if field is None else str(sum(1 for e in es if e.get(field) != ""))
    if kind == "count_uniq":
        return str(len({e.get(field) for e in es} - {""}))
    xs = [x for x in (e.num(field) for e in es) if x is not None]
    if kind == "sum":  # Exact: integers and quarters, far below 2^53.
        return fmt_num(math.fsum(xs))
    if not xs:
        return ""
    if kind == "min":
        return fmt_num(min(xs))
    if kind == "max":
        return fmt_num(max(xs))
    if kind == "avg":
        assert all(x == int(x) for x in xs) and abs(sum(xs)) < 2 ** 53
        return fmt_num(sum(int(x) for x in xs) / len(xs))
    raise AssertionError(kind)


def exact_quantile(phi, field, es):
    xs = sorted(x for x in (e.num(field) for e in es) if x is not None)
    if not xs:
        return None
    r = math.ceil(phi * len(xs))
    return xs[min(max(r, 1), len(xs)) - 1]


# (query tail, by spec, [(column, kind, field)]).
STATS = [
    ("* | stats count() as n", [], [("n", "count", None)]),
    ("* | stats by (level) count(), count(user) as users, count_uniq(user) as uu, "
     "sum(latency_ms) as s, min(latency_ms) as lo, max(latency_ms) as hi, avg(latency_ms) as a",
     ["level"], [("count()", "count", None), ("users", "count", "user"),
                 ("uu", "count_uniq", "user"), ("s", "sum", "latency_ms"),
                 ("lo", "min", "latency_ms"), ("hi", "max", "latency_ms"),
                 ("a", "avg", "latency_ms")]),
    ("status:>=400 | stats by (status) count() as n, sum(bytes) as b, avg(took) as t, "
     "min(delta) as dmin, max(delta) as dmax, sum(delta) as dsum",
     ["status"], [("n", "count", None), ("b", "sum", "bytes"), ("t", "avg", "took"),
                  ("dmin", "min", "delta"), ("dmax", "max", "delta"), ("dsum", "sum", "delta")]),
    ("* | stats by (user) count() as n, count_uniq(status) as st",
     ["user"], [("n", "count", None), ("st", "count_uniq", "status")]),
    ("latency_ms:>100 | stats by (level, status) count() as n, max(bytes) as mb",
     ["level", "status"], [("n", "count", None), ("mb", "max", "bytes")]),
    ("* | stats by (source) count() as n, min(took) as mt", ["source"],
     [("n", "count", None), ("mt", "min", "took")]),
    ("* | stats by (_time:1m) count() as n, sum(latency_ms) as s", [("_time", 60000)],
     [("n", "count", None), ("s", "sum", "latency_ms")]),
    ("level:ERROR | stats by (_time:10m, level) count() as n", [("_time", 600000), "level"],
     [("n", "count", None)]),
    ("* | stats by (_time:1500ms) count() as n", [("_time", 1500)], [("n", "count", None)]),
    ("* | stats by (msg) count() as n", ["msg"], [("n", "count", None)]),
    # Counted from the blocks' value summaries once the token filter thread has built them.
    ("* | stats by (status) count() as n", ["status"], [("n", "count", None)]),
    ("level:ERROR | stats by (source) count() as n", ["source"], [("n", "count", None)]),
    ("* | stats by (level, msg) count() as n", ["level", "msg"], [("n", "count", None)]),
    ("status:>=999 | stats count() as n, sum(latency_ms) as s, avg(latency_ms) as a, "
     "min(bytes) as m", [], [("n", "count", None), ("s", "sum", "latency_ms"),
                             ("a", "avg", "latency_ms"), ("m", "min", "bytes")]),
    ("* | stats count() n, avg(nosuch) as none, sum(nosuch) as zero", [],
     [("n", "count", None), ("none", "avg", "nosuch"), ("zero", "sum", "nosuch")]),
]


def expected_stats(d, query, by, funcs):
    filt = query.split(" | ")[0]
    pred = dict(COMPARISONS).get(filt)
    if filt == "*":
        pred = lambda e: True  # noqa: E731
    elif filt == "level:ERROR":
        pred = lambda e: e.level == "ERROR"  # noqa: E731
    elif filt == "status:>=999":
        pred = lambda e: False  # noqa: E731
    elif filt == "status:>=400":
        pred = cmp_pred("status", lo=400)
    elif filt == "latency_ms:>100":
        pred = cmp_pred("latency_ms", lo=100, lo_open=True)
    es = matching(d, pred)
    groups = group(es, by) if by else {(): es}
    rows = [list(k) + [exact_func(kind, f, g) for _, kind, f in funcs]
            for k, g in groups.items()]
    return sort_rows(rows, [(i, False) for i in range(len(by))])


def columns(by, funcs):
    return [b[0] if isinstance(b, tuple) else b for b in by] + [c for c, _, _ in funcs]


@pytest.mark.parametrize("query,by,funcs", STATS, ids=[q for q, _, _ in STATS])
def test_stats_match_brute_force(data, query, by, funcs):
    want = expected_stats(data, query, by, funcs)
    assert len(want) >= 1
    cols = columns(by, funcs)
    got = search_table(data.srv, query, cols)
    assert got == want, query


def test_value_summaries_answer_without_reading(data):
    """Once the token filter thread has built them, a block's value summary answers stats by
    a field of few values (with count() only) without its entries being read: the STATS
    counter of blocks taken from summaries grows, and the answers are still exact."""
    data.srv.wait_stat("token_filters_pending", 0)
    for query, by, funcs in [
            ("* | stats by (status) count() as n", ["status"], [("n", "count", None)]),
            ("level:ERROR | stats by (source) count() as n", ["source"],
             [("n", "count", None)]),
            ("* | stats by (_time:1d, msg) count() as n", [("_time", 86400000), "msg"],
             [("n", "count", None)])]:
        before = int(data.srv.stats()["query_blocks_summarized"])
        got = search_table(data.srv, query, columns(by, funcs))
        assert got == expected_stats(data, query, by, funcs), query
        if not query.startswith("* | stats by (_time"):  # A day may split a block.
            assert int(data.srv.stats()["query_blocks_summarized"]) > before, query


def test_stats_rows_in_json_ndjson_and_query_port_agree(data):
    query = STATS[2][0]
    cols = columns(STATS[2][1], STATS[2][2])
    want = search_table(data.srv, query, cols)
    d = http_table(data.srv, query)
    assert d["columns"] == cols
    assert len(d["rows"]) == len(want)
    for row, w in zip(d["rows"], want):
        assert row == w
        assert not isinstance(row[0], Num)                     # By-values are strings.
        for cell, c in zip(row[1:], cols[1:]):
            assert isinstance(cell, Num) == (cell != ""), (c, row)   # Numbers bare.
    nd = http_table(data.srv, query, ndjson=True)
    assert [[k for k, _ in o] for o in nd] == [cols] * len(want)
    assert [[v for _, v in o] for o in nd] == want
    # Every stats row, however many (the HTTP limit is for entries).
    big = "* | stats by (seq) count() as n"
    d = http_table(data.srv, big)
    assert len(d["rows"]) == N
    assert [r[0] for r in d["rows"]] == [str(i) for i in range(N)]  # By value, numerically.


QUANTILES = [(0.5, "latency_ms"), (0.9, "latency_ms"), (0.99, "latency_ms"), (0.1, "took"),
             (0.75, "bytes"), (0.9, "delta"), (0.3, "delta"), (0, "latency_ms"),
             (1, "latency_ms"), (0.5, "status")]


def test_quantile_within_stated_accuracy(data):
    funcs = ", ".join("quantile(%s, %s) as q%d" % (phi, f, i)
                      for i, (phi, f) in enumerate(QUANTILES))
    query = "* | stats by (level) count() as n, %s" % funcs
    cols = ["level", "n"] + ["q%d" % i for i in range(len(QUANTILES))]
    rows = search_table(data.srv, query, cols)
    assert [r[0] for r in rows] == sorted(LEVELS)
    for row in rows:
        es = [e for e in data.entries if e.level == row[0]]
        assert row[1] == str(len(es))
        for i, (phi, f) in enumerate(QUANTILES):
            exact = exact_quantile(phi, f, es)
            got = float(row[2 + i])
            assert abs(got - exact) <= QUANTILE_TOLERANCE * abs(exact), (phi, f, row[0], got,
                                                                          exact)
            if phi in (0, 1):
                assert row[2 + i] == fmt_num(exact), (phi, f, row[2 + i])


# ---------------------------------------------------------------------------------------------
# top, sort, limit, fields, field_names.

def test_top(data):
    for query, by, n in [("* | top 7 by (user)", ["user"], 7),
                         ("* | top by (status)", ["status"], 10),
                         ("status:>=500 | top 3 by (level, status)", ["level", "status"], 3),
                         ("* | top 100 by (level)", ["level"], 100)]:
        es = data.entries
        if query.startswith("status"):
            es = matching(data, cmp_pred("status", lo=500))
        rows = [list(k) + [str(len(g))] for k, g in group(es, by).items()]
        rows = sort_rows(rows, [(len(by), True)] + [(i, False) for i in range(len(by))])[:n]
        assert search_table(data.srv, query, by + ["hits"]) == rows, query


def entry_rows(es, cols):
    return [[e.get(c) for c in cols] for e in es]


SORTS = [
    ("* | sort by (latency_ms desc) | limit 20 | fields seq, latency_ms",
     [("latency_ms", True)], 20, ["seq", "latency_ms"]),
    ("* | sort by (latency_ms) | limit 15 | fields seq, latency_ms",
     [("latency_ms", False)], 15, ["seq", "latency_ms"]),
    ("status:>=500 | sort by (bytes desc, seq) | fields seq, bytes, status",
     [("bytes", True), ("seq", False)], None, ["seq", "bytes", "status"]),
    ("* | order by (took, seq) desc | limit 25 | fields seq, took",
     [("took", True), ("seq", True)], 25, ["seq", "took"]),
    ("* | sort by (user) | limit 40 | fields user, seq",
     [("user", False)], 40, ["user", "seq"]),
    ("* | sort by (delta desc) | fields seq, delta, nosuch | limit 30",
     [("delta", True)], 30, ["seq", "delta", "nosuch"]),
]


@pytest.mark.parametrize("query,keys,n,cols", SORTS, ids=[q for q, _, _, _ in SORTS])
def test_sort_limit_fields(data, query, keys, n, cols):
    es = data.entries
    if query.startswith("status"):
        es = matching(data, cmp_pred("status", lo=500))
    rows = entry_rows(es, [k for k, _ in keys] + cols)
    rows = sort_rows(rows, [(i, desc) for i, (_, desc) in enumerate(keys)])
    if n is not None:
        rows = rows[:n]
    want = [r[len(keys):] for r in rows]
    assert search_table(data.srv, query, cols) == want


def test_limit_before_sort_keeps_newest_and_default_columns(data):
    srv = data.srv
    cols = ["_time", "level", "source", "_msg"]
    # Without sort: the newest N entries, oldest first, with the four built-in columns.
    lines = srv.query("SEARCH * | limit 5")
    assert lines[0] == "RESULT|5" and lines[-1] == "END"
    assert lines[1:-1] == [format_row(cols, r) for r in entry_rows(data.entries[-5:], cols)]
    assert search_table(srv, "* | head", cols) == entry_rows(data.entries[-10:], cols)
    # limit, then sort: the newest 50, sorted.
    rows = entry_rows(data.entries[-50:], ["latency_ms", "seq"])
    want = sort_rows(rows, [(0, False)])
    assert search_table(srv, "* | limit 50 | sort by (latency_ms) | fields latency_ms, seq",
                        ["latency_ms", "seq"]) == want
    # Sorting then limiting a stats table; fields reorders its columns (a column named by a
    # call is quoted to be named).
    st = expected_stats(data, STATS[1][0], STATS[1][1], STATS[1][2])
    want = [[r[7], r[0], r[1]] for r in sort_rows(st, [(7, True)])[:2]]
    assert search_table(srv, STATS[1][0] + ' | sort by (a desc) | limit 2 | fields a, level, '
                        '"count()"', ["a", "level", "count()"]) == want
    want = [[r[0], r[1]] for r in sort_rows(st, [(1, False), (0, True)])]
    assert search_table(srv, STATS[1][0] + ' | sort by ("count()", level desc) | fields level, '
                        '"count()"', ["level", "count()"]) == want


def test_quoting_on_the_wire(data):
    """Values with a space, '"' or '=' (and empty ones) are quoted, with \\" and \\\\ escapes;
    other values, backslashes included, are written as they are."""
    srv = data.srv
    lines = srv.query("SEARCH * | stats by (user) count() as n")
    users = {}
    for l in lines[1:-1]:
        v = parse_row(l, ["user", "n"])
        users[v[0]] = l
    assert users["Ann Lee"].startswith('user="Ann Lee" n=')
    assert users["x=y"].startswith('user="x=y" n=')
    assert users['q"t'].startswith('user="q\\"t" n=')
    assert users["a\\b c"].startswith('user="a\\\\b c" n=')
    assert users["back\\slash"].startswith("user=back\\slash n=")
    assert users[""].startswith('user="" n=')
    assert list(users)[-1] == "", "the empty (missing) value sorts last"
    d = http_table(srv, "* | stats by (user) count() as n")
    assert {r[0] for r in d["rows"]} == set(users)


def test_field_names(data):
    srv = data.srv
    for query, pred in [("* | field_names", lambda e: True),
                        ("status:>=500 | field_names", cmp_pred("status", lo=500))]:
        es = matching(data, pred)
        hits = {"_time": len(es), "level": len(es), "_msg": len(es), "source": len(es)}
        for e in es:
            for n in e.names:
                hits[n] = hits.get(n, 0) + 1
        want = sort_rows([[k, str(v)] for k, v in hits.items()], [(0, False)])
        assert search_table(srv, query, ["name", "hits"]) == want, query
    d = http_table(srv, "* | field_names | sort by (hits desc) | limit 3")
    assert d["columns"] == ["name", "hits"]
    assert all(isinstance(r[1], Num) for r in d["rows"])
    assert [r[1] for r in d["rows"]] == [str(N)] * 3


# ---------------------------------------------------------------------------------------------
# Errors.

BAD = [  # (query, the server's sentence)
    ("* | stat count()", 'unknown pipe "stat" at 4'),
    ("* | stats count(", 'expected ")" at 16'),
    ("* | stats quantile(1.5, latency_ms)", "quantile needs phi in [0,1] at 19"),
    ("* | stats quantile(-0.1, latency_ms)", "quantile needs phi in [0,1] at 19"),
    ("* | stats by (level count()", 'expected "," or ")" at 20'),
    ("* | limit 5 | stats count()", "stats must be the first pipe at 14"),
    ("(status:>=500 | stats count()", "unbalanced parenthesis at 0"),
    ("status:>=500 limit:5 | stats count()",
     'limit: cannot be combined with pipes (use "| limit N") at 21'),
    ("* | stats by (_time:0ms) count()",
     "bad time bucket '0ms' (a duration of whole ms, e.g. 5m) at 20"),
    ("* | stats sum(latency_ms, bytes)", "sum takes one field at 26"),
    ("* | stats count() | sort by (nosuch)", 'unknown column "nosuch" at 29'),
    ("* | sort by (latency_ms", 'expected "," or ")" at 23'),
]


def _bad_sentence(srv, query, want):
    lines = srv.query("SEARCH " + query)
    assert len(lines) == 1 and lines[0].startswith("ERROR|"), (query, lines)
    why = lines[0][6:]
    if want is not None:
        assert why == want, query
    assert re.search(r" at \d+\b", why), "no position in %r" % why
    return why


@pytest.mark.parametrize("query,want", BAD, ids=[q for q, _ in BAD])
def test_bad_queries_one_error_with_position(data, query, want):
    srv = data.srv
    why = _bad_sentence(srv, query, want)
    status, _, body = http_get(srv, "/api/v1/query?q=" + urllib.parse.quote(query, safe=""))
    assert status == 400, (query, status, body)
    assert json.loads(body) == {"error": why}
    # The connection stays usable.
    assert srv.count("status:>=500") == len(matching(data, cmp_pred("status", lo=500)))


def test_count_refuses_pipes(data):
    lines = data.srv.query("COUNT status:>=500 | stats count()")
    assert len(lines) == 1 and lines[0].startswith("ERROR|"), lines
    assert "COUNT" in lines[0] and "pipes" in lines[0] and "SEARCH" in lines[0], lines
    assert data.srv.query("PING") == ["PONG"]


def test_count_with_pipes_names_the_position(data):
    lines = data.srv.query("COUNT status:>=500 | stats count()")
    # 0-based, as every position in an error: the "|" is the 14th byte.
    assert len(lines) == 1 and re.search(r" at 13\b", lines[0]), lines


def test_default_column_names_are_unambiguous_on_the_wire(data):
    lines = data.srv.query("SEARCH * | stats quantile(0.9, latency_ms), sum(bytes)")
    assert lines[0] == "RESULT|1", lines
    # A name that holds a space is quoted like a value.
    pairs = re.findall(r'("(?:[^"\\]|\\.)*"|[^ ="]+)=("(?:[^"\\]|\\.)*"|[^ ]*)', lines[1])
    assert " ".join("%s=%s" % p for p in pairs) == lines[1], lines[1]
    assert [p[0] for p in pairs] == ['"quantile(0.9, latency_ms)"', "sum(bytes)"], pairs


# ---------------------------------------------------------------------------------------------
# IRC: !query with pipes.

class Irc:
    """A raw IRC client; every read has a deadline."""

    def __init__(self, port, nick):
        self.sock = socket.create_connection((HOST, port), timeout=IRC_TIMEOUT)
        self.buf, self.nick, self.tok = b"", nick, 0
        self.send("NICK %s" % nick)
        self.send("USER u 0 * :Real %s" % nick)
        self.until(lambda l: re.match(r"^:\S+ (376|422) ", l))

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def readline(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no line within %.0f s; pending %r" % (IRC_TIMEOUT, self.buf[:200])
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "surrogateescape").rstrip("\r")

    def until(self, pred):
        deadline, before = time.monotonic() + IRC_TIMEOUT, []
        while True:
            line = self.readline(deadline)
            if pred(line):
                return before
            before.append(line)

    def ask(self, text):
        """A private !query; LogBot's replies before the PONG (the answer comes first)."""
        self.tok += 1
        self.send("PRIVMSG LogBot :%s" % text)
        self.send("PING :t%d" % self.tok)
        lines = self.until(lambda l: re.match(r"^:\S+ PONG \S+ :t%d$" % self.tok, l))
        prefix = "%s PRIVMSG %s :" % (LOGBOT, self.nick)
        return [l[len(prefix):] for l in lines if l.startswith(prefix)]

    def close(self):
        self.sock.close()


def test_irc_query_with_pipes(data):
    c = Irc(data.srv.irc_port, "pipes1")
    try:
        query, by, funcs = STATS[1]
        cols = columns(by, funcs)
        want = expected_stats(data, query, by, funcs)
        replies = c.ask("!query " + query)
        assert replies == ["%d rows" % len(want)] + [format_row(cols, r) for r in want]
        # More rows than shown: the hint, then the first five.
        rows = [list(k) + [str(len(g))] for k, g in group(data.entries, ["user"]).items()]
        rows = sort_rows(rows, [(1, True), (0, False)])[:8]
        replies = c.ask("!query * | top 8 by (user)")
        assert replies[0] == "8 rows (the first shown; the query port or HTTP gives all)"
        assert replies[1:] == [format_row(["user", "hits"], r) for r in rows[:5]]
        assert c.ask("!query status:>=500 | stats count() as n") == [
            "1 row", "n=%d" % len(matching(data, cmp_pred("status", lo=500)))]
        # Errors: one line naming the position.
        assert c.ask("!query * | stat count()") == ['error: unknown pipe "stat" at 4']
        assert c.ask("!query * | stats quantile(2, took)") == [
            "error: quantile needs phi in [0,1] at 19"]
    finally:
        c.close()


def test_irc_query_count_refuses_pipes(data):
    c = Irc(data.srv.irc_port, "pipes2")
    try:
        r = c.ask("!query COUNT * | stats count()")
        assert len(r) == 1 and r[0].startswith("error: ") and "pipes" in r[0], r
    finally:
        c.close()
