"""The web console (web/index.html, app.js, app.css served by logcasterd's HTTP port), driven
in a real headless Chromium through Selenium.

One test walks through what an operator does: ingest a few hundred lines of mixed levels over the
log port, open the console, run a query, check the rows (content, order, local time with
milliseconds, level badges and their colours), page to older entries, reload (the query lives in
the URL hash), check the volume chart against the data, click a bar to narrow the time range
(table and chart re-run with from/to), type a bad query and see the server's message, turn on
live tail and see a line sent to the log port appear, and save a screenshot to
build/test-artifacts/console.png.

Every wait is bounded (WAIT seconds). With LOGCASTER_WEB_MOCK=1 the same test runs against
tests/integration/web_mock.py instead of logcasterd (for developing the page alone).
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
    for path, ctype, needle in (("/", "text/html", 'id="results"'), ("/app.js", "javascript", "EventSource"),
                                ("/app.css", "text/css", ".lvl-ERROR")):
        status, got_type, body = fetch(lc, path)
        assert status == 200 and ctype in got_type and needle in body, (path, status, got_type)

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
    for key in ("entries", "rate", "disk", "compression", "connections", "uptime", "fsync"):
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
