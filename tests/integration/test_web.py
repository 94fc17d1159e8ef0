"""The web console (web/index.html, app.js, app.css served by logcasterd's HTTP port), driven
in a real headless Chromium through Selenium.

The first test walks through what an operator does: ingest a few hundred lines of mixed levels over the
log port, open the console, run a query, check the rows (content, order, local time with
milliseconds, level badges and their colours), page to older entries, reload (the query lives in
the URL hash), check the volume chart against the data, click a bar to narrow the time range
(table and chart re-run with from/to), type a bad query and see the server's message, turn on
live tail and see a line sent to the log port appear, and save a screenshot to
build/test-artifacts/console.png. The second runs queries with pipes (a table, sortable by its
headers, under a bar chart or, for _time buckets, a line chart) and uses the fields panel (field
names of the filter, top values of a field, a click on a value narrows the query).

Every wait is bounded (WAIT seconds). With LOGCASTER_WEB_MOCK=1 the same tests run against
tests/integration/web_mock.py instead of logcasterd (for developing the page alone); the mock has
no pipes, so the second test is skipped there.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import HOST, ROOT, IO_TIMEOUT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 10.0                       # Longest wait for anything in the browser.
ARTIFACTS = os.path.join(ROOT, "build", "test-artifacts")
LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]

HAVE_BROWSER = os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)
pytestmark = pytest.mark.skipif(
    not HAVE_BROWSER,
    reason="headless browser test needs %s and %s (Debian packages chromium, chromium-driver)"
           % (CHROMIUM, CHROMEDRIVER))

if HAVE_BROWSER:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait


# ---- the server under test ------------------------------------------------------------------

class MockServer:
    """web_mock.py with the few helpers of conftest.Server this test uses."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "web_mock.py"),
             "--http-port", "0", "--log-port", "0"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.log_port = self.http_port = None
        deadline = time.monotonic() + IO_TIMEOUT
        while (self.log_port is None or self.http_port is None) and time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            m = re.match(r"^listening (\w+) \S+:(\d+)$", line.strip())
            if m:
                setattr(self, m.group(1) + "_port", int(m.group(2)))
        assert self.http_port and self.log_port, "web_mock.py did not start"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=IO_TIMEOUT)

    def _conn(self):
        s = socket.create_connection((HOST, self.log_port), timeout=IO_TIMEOUT)
        s.settimeout(IO_TIMEOUT)
        return s

    def send(self, lines):
        with self._conn() as s:
            s.sendall(b"".join(l.encode() + b"\n" for l in lines))
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass

    def send_framed(self, lines):
        with self._conn() as s:
            s.sendall(b"".join(l.encode() + b"\n" for l in lines))
            f = s.makefile("rb")
            return [f.readline().decode().rstrip("\n") for _ in lines]

    def wait_count(self, n, expr="", timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api(self, "/api/v1/stats")[1]["entries"] >= n:
                return
            time.sleep(0.05)
        pytest.fail("mock never held %d entries" % n)


@pytest.fixture
def lc(server):
    if os.environ.get("LOGCASTER_WEB_MOCK"):
        m = MockServer()
        yield m
        m.stop()
    else:
        yield server()


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(WAIT)
    d.set_script_timeout(WAIT)
    yield d
    d.quit()   # Before the server's teardown (fixtures end in reverse order): closes the tail.


def api(srv, path):
    """GET on the HTTP port -> (status, parsed JSON body, content type)."""
    url = "http://%s:%d%s" % (HOST, srv.http_port, path)
    try:
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
            return r.status, json.loads(r.read()), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers.get("Content-Type", "")


def fetch(srv, path):
    url = "http://%s:%d%s" % (HOST, srv.http_port, path)
    with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


# ---- browser helpers ------------------------------------------------------------------------

def wait_for(d, what, cond, timeout=WAIT):
    """Poll cond(driver) until truthy; fail with a description and the page's error text."""
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda drv: cond(drv))
    except TimeoutException:
        err = page_error(d)
        pytest.fail("timed out after %.0f s waiting for %s (page error: %r)" % (timeout, what, err))


def rows(d):
    """The result rows as dicts, read in one script call (no stale elements)."""
    return d.execute_script("""
        return Array.from(document.querySelectorAll('#results tr.entry')).map(tr => ({
            id: Number(tr.dataset.id), ts: Number(tr.dataset.ts), level: tr.dataset.level,
            time: tr.cells[0].textContent, badge: tr.querySelector('.lvl').textContent,
            badgeClass: tr.querySelector('.lvl').className,
            source: tr.cells[2].textContent, message: tr.cells[3].textContent,
            isNew: tr.classList.contains('new')}));""")


def gen(d, what):
    return d.execute_script("return document.getElementById(arguments[0]).dataset.gen || '0';", what)


def page_error(d):
    return d.execute_script("var e = document.getElementById('error'); return e.hidden ? '' : e.textContent;")


def wait_results(d, old_gen, what):
    """Wait for the table to be re-rendered after old_gen, with no request in flight; fail at
    once if the page reports an error instead."""
    wait_for(d, what, lambda drv: page_error(drv) or (gen(drv, "results") != old_gen and
                                                     "Searching" not in drv.find_element(By.ID, "summary").text))
    err = page_error(d)
    assert not err, "waiting for %s, the page shows an error: %r" % (what, err)


def bars(d):
    return d.execute_script("""
        return Array.from(document.querySelectorAll('#chart .bar')).map(b => ({
            from: Number(b.dataset.from), to: Number(b.dataset.to), total: Number(b.dataset.total)}));""")


def run_query(d, q):
    box = d.find_element(By.ID, "q")
    box.clear()
    box.send_keys(q + Keys.ENTER)


def local_time(ms):
    """How the page shows an event time: local date and time with milliseconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms // 1000)) + ".%03d" % (ms % 1000)


def rgb(css):
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])


# ---- the test --------------------------------------------------------------------------------

def test_console(lc, browser):
    d = browser
    word = "quokka" + uuid.uuid4().hex[:6]          # Distinctive: only our lines contain it.

    # The three embedded files, with their types.
    for path, ctype, needles in (("/", "text/html", ('id="results"', 'id="ptable"', 'id="fields"', 'id="pchart"')),
                                 ("/app.js", "javascript", ("EventSource", "body.columns", "| field_names",
                                                            "top 5 by (", "drawLines", "drawBars")),
                                 ("/app.css", "text/css", (".lvl-ERROR", "#ptable", "#fields"))):
        status, got_type, body = fetch(lc, path)
        assert status == 200 and ctype in got_type, (path, status, got_type)
        assert all(n in body for n in needles), (path, [n for n in needles if n not in body])

    # 300 framed lines spread over the last 50 minutes (event times with milliseconds), then 40
    # plain lines whose level the server detects from the text. Ids grow with time.
    now_ms = int(time.time() * 1000)
    expect = {}                                       # message -> (level, ts_ms or None)
    framed = []
    verbs = {"TRACE": "entering handler", "DEBUG": "cache lookup", "INFO": "served page",
             "WARN": "slow upstream", "ERROR": "payment failed", "FATAL": "worker crashed"}
    for i in range(300):
        lvl = LEVELS[[2, 2, 2, 1, 3, 2, 0, 4, 2, 1, 2, 3, 2, 2, 4, 2, 1, 2, 5, 2][i % 20]]
        ts = now_ms - 50 * 60 * 1000 + i * 9973 + (i * 37) % 1000
        msg = "%s req=%d %s after %d ms" % (word, i, verbs[lvl], (i * 7919) % 5000)
        framed.append("LOG|%s|%d.%03d|%s" % (lvl, ts // 1000, ts % 1000, msg))
        expect[msg] = (lvl, ts)
    replies = lc.send_framed(framed)
    assert all(r.startswith("OK|") for r in replies), replies[:5]
    plain = []
    for i in range(40):
        lvl = ["ERROR", "WARN", "INFO", "DEBUG"][i % 4]
        msg = "%s %s plain line %d from the app" % (lvl, word, i)
        plain.append(msg)
        expect[msg] = (lvl, None)
    lc.send(plain)
    lc.wait_count(len(expect), timeout=WAIT)

    # -- A query: rows, order, times, badges. ------------------------------------------------
    d.get("http://%s:%d/" % (HOST, lc.http_port))
    wait_for(d, "the initial page load", lambda drv: gen(drv, "results") != "0")
    g = gen(d, "results")
    run_query(d, word)
    wait_results(d, g, "results of %r" % word)
    assert "q=" + word in d.current_url, d.current_url
    got = rows(d)
    assert len(got) == 100, "expected a first page of 100 rows, got %d" % len(got)
    ids = [r["id"] for r in got]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "rows not newest first"
    for r in got:
        assert r["message"] in expect, "unexpected row %r" % r
        lvl, ts = expect[r["message"]]
        assert r["level"] == lvl and r["badge"] == lvl and ("lvl-" + lvl) in r["badgeClass"], r
        if ts is not None:
            assert r["ts"] == ts, r
        assert r["time"] == local_time(r["ts"]), "time cell %r for %d" % (r["time"], r["ts"])
        assert re.match(r"^127\.0\.0\.1:\d+$", r["source"]), r
    # The 40 plain lines are the newest, with their detected levels.
    assert [r["message"] for r in got[:40]] == plain[::-1]
    colours = d.execute_script("""
        var out = {};
        document.querySelectorAll('#results .lvl').forEach(function (b) {
            out[b.textContent] = getComputedStyle(b).backgroundColor; });
        return out;""")
    r_, g_, b_ = rgb(colours["ERROR"])
    assert r_ > 180 and g_ < 100 and b_ < 100, "ERROR badge is not red: %s" % colours["ERROR"]
    r_, g_, b_ = rgb(colours["WARN"])
    assert r_ > 200 and 100 < g_ < 200 and b_ < 80, "WARN badge is not amber: %s" % colours["WARN"]
    assert len(set(colours.values())) == len(colours), "levels share a colour: %s" % colours

    # -- Paging: Older loads the next page before the oldest row shown; Newest comes back. ----
    oldest = min(ids)
    g = gen(d, "results")
    d.find_element(By.ID, "older").click()
    wait_results(d, g, "the older page")
    page2 = rows(d)
    assert len(page2) == 100 and max(r["id"] for r in page2) < oldest, "Older did not page back"
    g = gen(d, "results")
    d.find_element(By.ID, "newest").click()
    wait_results(d, g, "the newest page again")
    assert [r["id"] for r in rows(d)] == ids

    # -- The hash keeps the query across a reload. --------------------------------------------
    d.refresh()
    wait_for(d, "results after reload", lambda drv: gen(drv, "results") != "0")
    assert d.find_element(By.ID, "q").get_attribute("value") == word
    assert [r["id"] for r in rows(d)] == ids

    # -- The chart: one bar per non-empty bucket, counts that add up, a legend, hover. ------------
    wait_for(d, "chart bars", lambda drv: len(bars(drv)) >= 10)
    bs = bars(d)
    assert sum(b["total"] for b in bs) == len(expect), "chart counts %d entries, %d were sent" % (
        sum(b["total"] for b in bs), len(expect))
    legend = d.find_element(By.ID, "legend").text
    assert all(l in legend for l in LEVELS), legend
    axis = d.execute_script("return Array.from(document.querySelectorAll('#chart .xlab')).map(t => t.textContent);")
    assert len(axis) >= 3 and all(re.match(r"^\d\d:\d\d(:\d\d)?$|^\d\d-\d\d$", a) for a in axis), axis

    # Pick a bucket of the framed lines (not the newest ones, which hold the plain lines too).
    target = max(bs[:-3], key=lambda b: b["total"])
    bar = d.find_element(By.CSS_SELECTOR, '#chart .bar[data-from="%d"]' % target["from"])
    webdriver.ActionChains(d).move_to_element(bar).perform()
    tip = wait_for(d, "the chart tooltip", lambda drv: drv.find_element(By.ID, "chart-tip").is_displayed()
                   and drv.find_element(By.ID, "chart-tip"))
    assert "Total" in tip.text and str(target["total"]) in tip.text, tip.text

    # -- Clicking the bar narrows the range: table and chart re-run with from/to. ---------------
    g, cg = gen(d, "results"), gen(d, "chart")
    bar.click()
    wait_results(d, g, "results for the clicked bucket")
    wait_for(d, "the chart for the clicked bucket", lambda drv: gen(drv, "chart") != cg)
    res = d.find_element(By.ID, "results")
    assert (res.get_attribute("data-from"), res.get_attribute("data-to")) == (
        str(target["from"]), str(target["to"])), "the table did not re-run with the bucket's range"
    frag = urllib.parse.parse_qs(urllib.parse.urlsplit(d.current_url).fragment)
    assert frag.get("from") == [str(target["from"])] and frag.get("to") == [str(target["to"])], d.current_url
    rng = d.find_element(By.ID, "range")
    assert len(rng.find_elements(By.CSS_SELECTOR, ".chip")) == 2, rng.text
    inside = [m for m, (l, ts) in expect.items() if ts is not None and target["from"] <= ts < target["to"]]
    narrowed = rows(d)
    assert sorted(r["message"] for r in narrowed) == sorted(inside), \
        "rows for [%d, %d) differ from what was sent there" % (target["from"], target["to"])
    nb = bars(d)
    assert nb and all(target["from"] <= b["from"] and b["to"] <= target["to"] for b in nb), nb
    assert sum(b["total"] for b in nb) == target["total"], "the narrowed chart does not add up"

    # -- A bad query: the server's message in red under the query box; the rows stay. ----------
    bad = word + " (oops"
    status, body, ctype = api(lc, "/api/v1/query?" + urllib.parse.urlencode({"q": bad}))
    assert status == 400 and body.get("error") and "json" in ctype, (status, body, ctype)
    g = gen(d, "results")
    run_query(d, bad)
    err = wait_for(d, "the query error", lambda drv: drv.find_element(By.ID, "error").is_displayed()
                   and drv.find_element(By.ID, "error"))
    assert body["error"] in err.text, err.text
    r_, g_, b_ = rgb(err.value_of_css_property("color"))
    assert r_ > 150 and g_ < 80 and b_ < 80, "error text is not red"
    assert gen(d, "results") == g and len(rows(d)) == len(narrowed), "previous results were cleared"
    assert "stale" in d.find_element(By.ID, "results").get_attribute("class")
    run_query(d, word)
    wait_results(d, g, "results after fixing the query")
    assert not d.find_element(By.ID, "error").is_displayed()

    # -- Live tail: a new line on the log port shows up at the top within seconds. --------------
    tail = d.find_element(By.ID, "tail")
    assert tail.get_attribute("aria-pressed") == "false"
    assert d.find_element(By.ID, "tail-state").get_attribute("data-state") == "off"
    tail.click()
    assert tail.get_attribute("aria-pressed") == "true"
    wait_for(d, "the tail to go live", lambda drv: drv.find_element(By.ID, "tail-state").get_attribute("data-state") == "live")
    # Tailing drops the end of the range (new lines are newer) and keeps the start.
    assert d.find_element(By.ID, "range").get_attribute("data-to") == ""
    wait_for(d, "the table without an end bound", lambda drv: drv.find_element(By.ID, "results").get_attribute("data-to") == ""
             and "Searching" not in drv.find_element(By.ID, "summary").text)
    before = rows(d)
    nonce = uuid.uuid4().hex[:10]
    live_msg = "ERROR %s live tail check %s: connection reset by peer" % (word, nonce)
    other_msg = "INFO unrelated line %s" % nonce     # Does not match the query: must not show.
    lc.send([other_msg, live_msg])
    wait_for(d, "the tailed line in the table", lambda drv: any(nonce in r["message"] for r in rows(drv)))
    after = rows(d)
    top = after[0]
    assert top["message"] == live_msg and top["badge"] == "ERROR" and top["isNew"], top
    assert top["id"] > before[0]["id"]
    assert not any(r["message"] == other_msg for r in after), "the tail ignored the query"
    assert [r["id"] for r in after[1:]] == [r["id"] for r in before], "tail disturbed the other rows"
    assert d.find_element(By.ID, "tail-state").get_attribute("data-state") == "live"

    # -- Stats strip. ---------------------------------------------------------------------------
    stats = d.find_element(By.ID, "stats")
    wait_for(d, "stats", lambda drv: drv.find_element(By.ID, "stats").find_elements(By.CSS_SELECTOR, '[data-key="entries"]'))
    keys = ("entries", "rate", "disk", "compression", "connections", "uptime", "fsync")
    if not os.environ.get("LOGCASTER_WEB_MOCK"):  # The real server's query pool counters.
        keys += ("queries",)
    for key in keys:
        assert stats.find_elements(By.CSS_SELECTOR, '[data-key="%s"]' % key), "stats lack %s: %s" % (key, stats.text)
    assert re.search(r"[\d,]+ entries", stats.text), stats.text

    os.makedirs(ARTIFACTS, exist_ok=True)
    d.execute_script("window.scrollTo(0, 0)")
    assert d.save_screenshot(os.path.join(ARTIFACTS, "console.png"))

    tail.click()
    assert tail.get_attribute("aria-pressed") == "false"
    wait_for(d, "the tail to stop", lambda drv: drv.find_element(By.ID, "tail-state").get_attribute("data-state") == "off")

    # No script errors (a 400 answer is logged by Chromium itself as a failed resource).
    severe = [e["message"] for e in d.get_log("browser")
              if e["level"] == "SEVERE" and "status of 400" not in e["message"]]
    assert not severe, severe


def test_console_no_match(lc, browser):
    """A query that matches nothing: an empty table that says so, an empty chart, no error."""
    d = browser
    lc.send(["INFO something ordinary", "ERROR something bad"])
    lc.wait_count(2, timeout=WAIT)
    d.get("http://%s:%d/#%s" % (HOST, lc.http_port, urllib.parse.urlencode({"q": "nosuchword" + uuid.uuid4().hex[:6]})))
    wait_results(d, "0", "the results of a query that matches nothing")
    assert rows(d) == []
    empty = d.find_element(By.CSS_SELECTOR, "#results tr.empty")
    assert "No entries match" in empty.text, empty.text
    assert not d.find_element(By.ID, "error").is_displayed(), d.find_element(By.ID, "error").text
    assert d.find_element(By.ID, "older").get_attribute("disabled") is not None
    wait_for(d, "the empty chart", lambda drv: gen(drv, "chart") != "0")
    assert bars(d) == [] and "No entries" in d.find_element(By.ID, "chart").text


# ---- queries with pipes and the fields panel ------------------------------------------------

def table(d):
    """The piped answer as shown: headers and cells (the raw value of each cell)."""
    return d.execute_script("""
        var t = document.getElementById('ptable');
        return {cols: Array.from(t.tHead.rows[0].cells).map(th => th.dataset.col),
                rows: Array.from(t.tBodies[0].querySelectorAll('tr.prow')).map(tr =>
                    Array.from(tr.cells).map(td => td.dataset.v)),
                shown: !document.getElementById('ptable-wrap').hidden,
                entriesShown: !document.getElementById('results').hidden};""")


def fields(d):
    return d.execute_script("""
        return Array.from(document.querySelectorAll('#fields li.field')).map(li => ({
            name: li.dataset.name, hits: Number(li.dataset.hits),
            values: Array.from(li.querySelectorAll('.fval')).map(v => [v.dataset.value, Number(v.dataset.hits)])}));""")


def cell(v):
    return str(v)


def run_and_wait_table(d, q):
    g = gen(d, "ptable")
    run_query(d, q)
    wait_for(d, "the table of %r" % q, lambda drv: page_error(drv) or gen(drv, "ptable") != g)
    assert not page_error(d), page_error(d)


def test_console_pipes(lc, browser):
    if os.environ.get("LOGCASTER_WEB_MOCK"):
        pytest.skip("web_mock.py has no pipes")
    d = browser
    word = "wombat" + uuid.uuid4().hex[:6]
    now_ms = int(time.time() * 1000)
    hosts = ["web 1", "web 2", "db-1"]
    lines, per_host = [], {}
    for i in range(240):                              # 40 minutes, one line every 10 s
        lvl = ["INFO", "INFO", "WARN", "ERROR"][i % 4]
        host = hosts[0] if i % 5 == 0 else hosts[(i // 2) % 3]   # uneven counts
        per_host[host] = per_host.get(host, 0) + 1
        ts = now_ms - 40 * 60 * 1000 + i * 10000
        lines.append('LOG|%s|%d.%03d|%s req=%d user=u%d status=%d host="%s"'
                     % (lvl, ts // 1000, ts % 1000, word, i, i % 7, [200, 200, 404, 500][i % 4], host))
    assert all(r.startswith("OK|") for r in lc.send_framed(lines))
    lc.wait_count(len(lines), timeout=WAIT)

    def q_api(q):
        status, body, _ = api(lc, "/api/v1/query?" + urllib.parse.urlencode({"q": q}))
        assert status == 200, (q, body)
        return body

    # -- The fields panel lists the filter's fields with their hits. ----------------------------
    d.get("http://%s:%d/#%s" % (HOST, lc.http_port, urllib.parse.urlencode({"q": word})))
    wait_results(d, "0", "the results of %r" % word)
    want = {r[0]: r[1] for r in q_api(word + " | field_names")["rows"]}
    assert {"host", "status", "user", "level", "source", "_msg", "_time"} <= set(want), want
    wait_for(d, "the fields panel", lambda drv: {f["name"]: f["hits"] for f in fields(drv)} == want)
    assert d.find_element(By.ID, "fields").get_attribute("data-filter") == word
    hits = [f["hits"] for f in fields(d)]
    assert hits == sorted(hits, reverse=True), "fields not listed by hits"

    # -- Opening a field shows its top 5 values; clicking one narrows the query. -----------------
    d.find_element(By.CSS_SELECTOR, '#fields li.field[data-name="host"] .fhead').click()
    top = [[r[0], r[1]] for r in q_api(word + " | top 5 by (host)")["rows"]]
    wait_for(d, "the top values of host",
             lambda drv: next(f["values"] for f in fields(drv) if f["name"] == "host") == top)
    assert sorted(v for v, _ in top) == sorted(hosts) and dict(top) == per_host, top
    g = gen(d, "results")
    d.find_element(By.CSS_SELECTOR, '#fields li.field[data-name="host"] .fval[data-value="web 1"] .fv').click()
    wait_results(d, g, "the results narrowed to host web 1")
    assert d.find_element(By.ID, "q").get_attribute("value") == word + ' host:"web 1"'
    got = rows(d)
    assert len(got) == min(100, per_host["web 1"]) and all('host="web 1"' in r["message"] for r in got), got[:3]
    wait_for(d, "the fields of the narrowed filter",
             lambda drv: drv.find_element(By.ID, "fields").get_attribute("data-filter") == word + ' host:"web 1"'
             and {f["name"]: f["hits"] for f in fields(drv)}.get("host") == per_host["web 1"])

    # -- A stats query: a table of the server's rows, and a bar per row. -------------------------
    q = word + " | stats by (host) count()"
    run_and_wait_table(d, q)
    want = q_api(q)
    t = table(d)
    assert t["shown"] and not t["entriesShown"], t
    assert t["cols"] == want["columns"] == ["host", "count()"]
    assert t["rows"] == [[cell(c) for c in r] for r in want["rows"]], (t["rows"], want["rows"])
    assert not d.find_element(By.ID, "chart-panel").is_displayed(), "the volume chart is shown for a table"
    assert d.find_element(By.ID, "pchart").get_attribute("data-kind") == "bar"
    pbars = d.execute_script("""return Array.from(document.querySelectorAll('#pchart .pbar')).map(b =>
        [b.dataset.label, Number(b.dataset.value)]);""")
    assert pbars == [[r[0], r[1]] for r in want["rows"]], pbars
    # The fields panel follows the filter before the pipes.
    wait_for(d, "the fields of the table's filter",
             lambda drv: drv.find_element(By.ID, "fields").get_attribute("data-filter") == word)
    bar = d.find_element(By.CSS_SELECTOR, '#pchart .pbar[data-label="db-1"]')
    webdriver.ActionChains(d).move_to_element(bar).perform()
    tip = wait_for(d, "the bar tooltip", lambda drv: drv.find_element(By.ID, "pchart-tip").is_displayed()
                   and drv.find_element(By.ID, "pchart-tip"))
    assert "db-1" in tip.text and str(per_host["db-1"]) in tip.text, tip.text

    # -- Sorting by a header, both ways. ---------------------------------------------------------
    d.find_element(By.CSS_SELECTOR, '#ptable th[data-col="count()"]').click()
    counts = [int(r[1]) for r in table(d)["rows"]]
    assert counts == sorted(per_host.values(), reverse=True), counts
    d.find_element(By.CSS_SELECTOR, '#ptable th[data-col="count()"]').click()
    assert [int(r[1]) for r in table(d)["rows"]] == sorted(per_host.values())
    d.find_element(By.CSS_SELECTOR, '#ptable th[data-col="host"]').click()
    assert [r[0] for r in table(d)["rows"]] == sorted(hosts)

    # -- Time buckets: a line per level, points that add up to the table. ------------------------
    q = word + " | stats by (_time:5m, level) count()"
    run_and_wait_table(d, q)
    want = q_api(q)
    assert table(d)["rows"] == [[cell(c) for c in r] for r in want["rows"]]
    wait_for(d, "the line chart", lambda drv: drv.find_element(By.ID, "pchart").get_attribute("data-kind") == "line")
    lines_ = d.execute_script("""return Array.from(document.querySelectorAll('#pchart path.line')).map(p =>
        [p.dataset.series, Number(p.dataset.total)]);""")
    sums = {}
    for r in want["rows"]:
        sums[r[1]] = sums.get(r[1], 0) + r[2]
    assert sorted(map(tuple, lines_)) == sorted(sums.items()) and set(sums) == {"INFO", "WARN", "ERROR"}, lines_
    pts = d.execute_script("""return Array.from(document.querySelectorAll('#pchart circle.pt')).map(c =>
        [c.dataset.series, Number(c.dataset.t), Number(c.dataset.v)]);""")
    for lvl, total in sums.items():
        assert sum(v for s_, _, v in pts if s_ == lvl) == total, lvl
    buckets = sorted({r[0] for r in want["rows"]})
    xs = sorted({t_ for _, t_, _ in pts})
    assert len(xs) == len(buckets) and xs[0] == int(datetime_ms(buckets[0])), (xs[:2], buckets[:2])
    legend = d.find_element(By.ID, "plegend").text
    assert all(l in legend for l in sums), legend
    hit = d.find_element(By.CSS_SELECTOR, "#pchart rect.hit")
    webdriver.ActionChains(d).move_to_element(hit).perform()
    tip = wait_for(d, "the line tooltip", lambda drv: drv.find_element(By.ID, "pchart-tip").is_displayed()
                   and drv.find_element(By.ID, "pchart-tip"))
    assert all(l in tip.text for l in sums), tip.text

    # -- A field value clicked while a table is shown goes before the pipes. ---------------------
    d.find_element(By.CSS_SELECTOR, '#fields li.field[data-name="level"] .fhead').click()
    val = wait_for(d, "the top values of level", lambda drv: drv.find_elements(
        By.CSS_SELECTOR, '#fields li.field[data-name="level"] .fval[data-value="ERROR"] .fv'))
    g = gen(d, "ptable")
    val[0].click()
    wait_for(d, "the table for level:ERROR", lambda drv: page_error(drv) or gen(drv, "ptable") != g)
    assert d.find_element(By.ID, "q").get_attribute("value") == word + " level:ERROR | stats by (_time:5m, level) count()"
    assert {r[1] for r in table(d)["rows"]} == {"ERROR"}

    # -- Live tail waits while a table is shown. -------------------------------------------------
    d.find_element(By.ID, "tail").click()
    wait_for(d, "the tail to pause", lambda drv: drv.find_element(By.ID, "tail-state").get_attribute("data-state") == "paused")
    d.find_element(By.ID, "tail").click()

    # -- A query without pipes brings back the entries and the volume chart. ---------------------
    g = gen(d, "results")
    run_query(d, word + " level:ERROR")
    wait_results(d, g, "entries again")
    t = table(d)
    assert not t["shown"] and t["entriesShown"]
    assert len(rows(d)) == 60 and not d.find_element(By.ID, "pchart-panel").is_displayed()
    wait_for(d, "the volume chart", lambda drv: drv.find_element(By.ID, "chart-panel").is_displayed() and len(bars(drv)) > 0)

    os.makedirs(ARTIFACTS, exist_ok=True)
    run_and_wait_table(d, word + " | stats by (_time:5m, level) count()")
    assert d.save_screenshot(os.path.join(ARTIFACTS, "console-pipes.png"))
    severe = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def datetime_ms(rfc3339):
    from datetime import datetime
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000
