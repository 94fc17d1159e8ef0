/* LogCaster web console: query, volume chart, live tail and server stats over the HTTP API
 * (/api/v1/query, /api/v1/histogram, /api/v1/tail, /api/v1/stats). Plain ES2020, no build step,
 * no dependencies. All text from the server is inserted with textContent, never as HTML. */
'use strict';
(function () {
  const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
  const COLORS = { TRACE: '#9aa0a6', DEBUG: '#6b8796', INFO: '#2f9e44', WARN: '#f08c00', ERROR: '#e03131', FATAL: '#862e9c' };
  const PAGE = 100;           // rows per page
  const MAX_ROWS = 1000;      // cap while live tailing
  const STATS_EVERY = 5000;   // ms between /api/v1/stats polls
  const TAIL_RETRY = 5000;    // ms before reopening a closed tail
  const CHART_REFRESH = 15000; // ms between histogram refreshes while tailing an open range
  const SVGNS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $('qform'), q: $('q'), run: $('run'), range: $('range'), preset: $('preset'),
    tail: $('tail'), tailState: $('tail-state'), error: $('error'), stats: $('stats'),
    chart: $('chart'), chartInfo: $('chart-info'), legend: $('legend'),
    results: $('results'), tbody: $('results').tBodies[0], summary: $('summary'),
    newest: $('newest'), older: $('older'), zoomOut: $('zoom-out'), foot: $('foot'), header: $('top'), home: $('home'),
  };

  // What the user asked for: the query that was last run and its time range.
  // from/to are unix ms, from inclusive, to exclusive; rel is a relative range such as '15m'.
  const st = { q: '', from: null, to: null, rel: null };

  // What the table shows.
  const view = {
    q: null, from: null, to: null, // the query and range of the rows shown
    page: 0, pageStarts: [], more: false, took: null,
    ids: new Set(), oldestId: null, loading: false, live: 0, skipped: 0, pendingNew: 0, gen: 0,
  };

  // ---- small helpers ------------------------------------------------------------------------
  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function s(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function fmtDate(d) { return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()); }
  function fmtClock(d, ms) {
    let t = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (ms) t += '.' + pad(d.getMilliseconds(), 3);
    return t;
  }
  function sameDay(a, b) { return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate(); }
  /** A time for a chip or tooltip: the date only when it is not today, ms only when not zero. */
  function fmtShort(ms) {
    const d = new Date(ms);
    const t = fmtClock(d, d.getMilliseconds() !== 0);
    return sameDay(d, new Date()) ? t : fmtDate(d) + ' ' + t;
  }
  function fmtInt(n) { return n == null || isNaN(n) ? '\u2014' : Math.round(n).toLocaleString('en-US'); }
  function fmtCompact(n) {
    if (n == null || isNaN(n)) return '\u2014';
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    return String(Math.round(n * 10) / 10);
  }
  function fmtBytes(n) {
    if (n == null || isNaN(n)) return '\u2014';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + u[i];
  }
  function fmtDur(sec) {
    if (sec == null || isNaN(sec)) return '\u2014';
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), hh = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, x = sec % 60;
    if (d) return d + 'd ' + hh + 'h';
    if (hh) return hh + 'h ' + m + 'm';
    if (m) return m + 'm ' + x + 's';
    return x + 's';
  }
  function fmtStep(ms) {
    if (ms % 86400000 === 0) return ms / 86400000 + 'd';
    if (ms % 3600000 === 0) return ms / 3600000 + 'h';
    if (ms % 60000 === 0) return ms / 60000 + 'm';
    if (ms % 1000 === 0) return ms / 1000 + 's';
    return ms + 'ms';
  }
  /** '15m', '1h30m', '2d' -> ms (null when malformed). */
  function parseDur(t) {
    const re = /(\d+)(ms|s|m|h|d|w)/gy;
    const mult = { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
    let total = 0, m, end = 0;
    while ((m = re.exec(t))) { total += +m[1] * mult[m[2]]; end = re.lastIndex; }
    return end === t.length && end > 0 ? total : null;
  }
  function num(v) { if (v == null || v === '') return null; const n = Number(v); return isFinite(n) ? n : null; }
  function entryMs(e) { return e.ts_ms != null ? e.ts_ms : Date.parse(e.ts); }

  /** fetch + JSON; resolves {ok, status, body}; a non-JSON answer becomes body.error. */
  // The server may require a token (--http-token): kept in localStorage, sent as a Bearer
  // header (EventSource cannot send headers: it gets ?access_token=).
  const TOKEN_KEY = 'logcaster-token';
  function token() { try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  async function getJSON(url, signal, retried) {
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    const r = await fetch(url, { signal, headers });
    if (r.status === 401 && !retried) {
      const t = window.prompt('This LogCaster server needs an access token (--http-token):', '');
      if (t) {
        try { localStorage.setItem(TOKEN_KEY, t.trim()); } catch (e) { /* private mode */ }
        return getJSON(url, signal, true);
      }
    }
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = { error: text.trim().slice(0, 300) || r.statusText || 'not JSON' }; }
    return { ok: r.ok, status: r.status, body: body || {} };
  }
  function qs(params) {
    const p = new URLSearchParams();
    for (const k in params) if (params[k] != null && params[k] !== '') p.set(k, params[k]);
    return p.toString();
  }

  // ---- URL hash <-> state ----------------------------------------------------------------
  function hashOf(x) {
    const p = new URLSearchParams();
    if (x.q) p.set('q', x.q);
    if (x.rel) p.set('rel', x.rel);
    else {
      if (x.from != null) p.set('from', x.from);
      if (x.to != null) p.set('to', x.to);
    }
    return p.toString();
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const rel = p.get('rel');
    return { q: p.get('q') || '', from: num(p.get('from')), to: num(p.get('to')), rel: rel && parseDur(rel) ? rel : null };
  }
  function writeHash() {
    const hs = hashOf(st);
    if (location.hash.slice(1) === hs) return;
    history.pushState(null, '', hs ? '#' + hs : location.pathname + location.search);
  }
  function onHashNav() {
    const x = readHash();
    if (hashOf(x) === hashOf(st)) return;
    Object.assign(st, x);
    el.q.value = st.q;
    execute();
  }

  /** The range to send: {from, to} in ms (to exclusive), either may be null. */
  function effRange() {
    if (st.rel) return { from: Date.now() - parseDur(st.rel), to: null };
    return { from: st.from, to: st.to };
  }

  // ---- errors ----------------------------------------------------------------------------
  function showError(msg, detail) {
    el.error.replaceChildren();
    el.error.append(h('span', null, msg + ' '));
    if (detail) el.error.append(h('span', 'detail', detail));
    if (view.ids.size) el.error.append(h('span', 'note', '\u2014 still showing the results of the previous query'));
    el.error.hidden = false;
    layout();
  }
  function clearError() {
    if (el.error.hidden) return;
    el.error.hidden = true;
    el.error.replaceChildren();
    layout();
  }
  function layout() { document.documentElement.style.setProperty('--hdr-h', el.header.offsetHeight + 'px'); }

  // ---- range chips -----------------------------------------------------------------------
  function renderRange() {
    const r = el.range;
    r.replaceChildren();
    r.dataset.from = st.rel ? '' : (st.from != null ? st.from : '');
    r.dataset.to = st.rel ? '' : (st.to != null ? st.to : '');
    r.dataset.rel = st.rel || '';
    const chip = (k, v, title, onRemove) => {
      const c = h('span', 'chip');
      c.title = title;
      c.append(h('span', 'k', k), h('span', 'v', v));
      const x = h('button', null, '\u00d7');
      x.type = 'button';
      x.title = 'Remove';
      x.setAttribute('aria-label', 'Remove ' + k.trim() + ' bound');
      x.addEventListener('click', (ev) => { ev.preventDefault(); onRemove(); execute(); });
      c.append(x);
      r.append(c);
    };
    if (st.rel) {
      chip('last ', st.rel, 'Relative range: the last ' + st.rel, () => { st.rel = null; });
      el.zoomOut.hidden = true;
      return;
    }
    if (st.from != null) chip('from ', fmtShort(st.from), new Date(st.from).toISOString() + ' (inclusive)', () => { st.from = null; });
    if (st.to != null) chip('to ', fmtShort(st.to), new Date(st.to).toISOString() + ' (exclusive)', () => { st.to = null; });
    if (st.from == null && st.to == null) r.append(h('span', 'range-all', 'all time'));
    el.zoomOut.hidden = st.from == null || st.to == null;
  }

  // ---- running a query ---------------------------------------------------------------------
  /** Run the query in the box with the current range: table (newest page) and chart. */
  function run() {
    st.q = el.q.value.trim();
    execute();
  }
  function execute() {
    writeHash();
    renderRange();
    loadPage(null, 0);
    loadChart();
  }

  let tableCtl = null, tableSeq = 0;
  async function loadPage(before, page) {
    const seq = ++tableSeq;
    if (tableCtl) tableCtl.abort();
    tableCtl = new AbortController();
    const q = st.q, rg = effRange();
    view.loading = true;
    setBusy(true);
    const params = { q, limit: PAGE, before, from: rg.from, to: rg.to != null ? rg.to - 1 : null };
    let res;
    try {
      res = await getJSON('/api/v1/query?' + qs(params), tableCtl.signal);
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (seq !== tableSeq) return;
      view.loading = false;
      setBusy(false);
      showError('Cannot reach the LogCaster server:', String(e.message || e));
      el.results.classList.add('stale');
      flushTail();
      return;
    }
    if (seq !== tableSeq) return;
    view.loading = false;
    setBusy(false);
    if (!res.ok) {
      const msg = res.body.error || ('HTTP ' + res.status);
      showError(res.status === 400 ? 'Query error:' : 'Server error (HTTP ' + res.status + '):', msg);
      el.results.classList.add('stale');
      el.results.dataset.error = msg;
      if (tailOn && !es) {
        if (view.q != null) tailStart(); // keep tailing the query whose results are shown
        else setTailState('disconnected', 'query error');
      }
      flushTail();
      return;
    }
    clearError();
    delete el.results.dataset.error;
    el.results.classList.remove('stale');
    if (page === 0) view.pageStarts = [];
    view.q = q;
    view.from = rg.from;
    view.to = rg.to;
    view.page = page;
    view.more = !!res.body.more;
    view.took = res.body.took_ms;
    view.live = 0;
    view.skipped = 0;
    if (page === 0) view.pendingNew = 0;
    renderRows(res.body.entries || []);
    el.results.dataset.query = q;
    el.results.dataset.from = rg.from != null ? rg.from : '';
    el.results.dataset.to = rg.to != null ? rg.to : '';
    el.results.dataset.gen = ++view.gen;
    if (tailOn && page === 0 && (!es || tailQ !== q)) tailStart();
    flushTail();
  }

  function setBusy(b) {
    el.summary.classList.toggle('busy', b);
    if (b) el.summary.textContent = 'Searching\u2026';
    else renderSummary();
  }

  function renderSummary() {
    const n = view.ids.size;
    const parts = [];
    el.summary.replaceChildren();
    if (view.q == null) return;
    const b = h('b', null, fmtInt(n));
    el.summary.append(b, ' ' + (n === 1 ? 'entry' : 'entries') + ' shown, newest first');
    if (view.page > 0) parts.push('page ' + (view.page + 1));
    if (view.more) parts.push('older matches exist');
    if (view.live) parts.push(view.live + ' from live tail');
    if (view.skipped) parts.push(fmtInt(view.skipped) + ' skipped by the tail (it fell behind)');
    if (view.took != null) parts.push('query ' + (Math.round(view.took * 100) / 100) + ' ms');
    if (parts.length) el.summary.append(' \u00b7 ' + parts.join(' \u00b7 '));
    el.older.disabled = !view.more || view.oldestId == null;
    el.newest.disabled = view.page === 0 && !view.pendingNew;
    el.newest.textContent = view.pendingNew ? '\u00ab Newest (' + view.pendingNew + ' new)' : '\u00ab Newest';
    el.foot.replaceChildren();
    if (view.more && view.oldestId != null) {
      const bt = h('button', 'btn', 'Load older matches \u203a');
      bt.type = 'button';
      bt.addEventListener('click', older);
      el.foot.append(bt);
    } else if (n) {
      el.foot.textContent = 'End of matches.';
    }
  }

  // ---- table -------------------------------------------------------------------------------
  let hiRe = null;
  /** Words of the query worth highlighting in messages (plain words and "phrases"). */
  function highlightRe(q) {
    const terms = [];
    const re = /"([^"]+)"|(\S+)/g;
    let m;
    while ((m = re.exec(q))) {
      let t = m[1] != null ? m[1] : m[2];
      if (m[2] != null) {
        if (/^(AND|OR|NOT)$/.test(t) || t.startsWith('-') || t.startsWith('/') || t.includes(':')) continue;
        t = t.replace(/^[()]+|[()]+$/g, '');
      }
      if (t.length >= 2) terms.push(t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    }
    return terms.length ? new RegExp('(' + terms.join('|') + ')', 'gi') : null;
  }
  function fillMessage(td, text) {
    if (!hiRe || text.length > 20000) { td.textContent = text; return; }
    let last = 0, m;
    hiRe.lastIndex = 0;
    while ((m = hiRe.exec(text))) {
      if (m[0].length === 0) { hiRe.lastIndex++; continue; }
      if (m.index > last) td.append(text.slice(last, m.index));
      td.append(h('mark', null, m[0]));
      last = m.index + m[0].length;
    }
    if (last < text.length) td.append(text.slice(last));
  }

  function makeRow(e) {
    const tr = h('tr', 'entry');
    const level = LEVELS.includes(e.level) ? e.level : String(e.level || 'INFO').toUpperCase();
    const ms = entryMs(e);
    tr.classList.add('l-' + level);
    tr.dataset.id = e.id;
    tr.dataset.ts = ms;
    tr.dataset.level = level;
    const d = new Date(ms);
    const tdT = h('td', 'time');
    tdT.title = (e.ts || d.toISOString()) + '  \u00b7  id ' + e.id;
    tdT.append(h('span', 'd', fmtDate(d) + ' '), fmtClock(d, true));
    const tdL = h('td', 'level');
    tdL.append(h('span', 'lvl lvl-' + level, level));
    const tdS = h('td', 'src', e.source || '');
    tdS.title = e.source || '';
    const tdM = h('td', 'msg');
    fillMessage(tdM, e.message == null ? '' : String(e.message));
    tr.append(tdT, tdL, tdS, tdM);
    return tr;
  }

  function renderRows(entries) {
    hiRe = highlightRe(st.q);
    const frag = document.createDocumentFragment();
    view.ids = new Set();
    view.oldestId = null;
    for (const e of entries) {
      frag.append(makeRow(e));
      view.ids.add(e.id);
      if (view.oldestId == null || e.id < view.oldestId) view.oldestId = e.id;
    }
    if (!entries.length) {
      const tr = h('tr', 'empty');
      const td = h('td', null, view.page > 0 ? 'No older entries.' : 'No entries match this query and time range.');
      td.colSpan = 4;
      tr.append(td);
      frag.append(tr);
    }
    el.tbody.replaceChildren(frag);
    renderSummary();
  }

  function older() {
    if (!view.more || view.oldestId == null) return;
    view.pageStarts.push(view.oldestId);
    loadPage(view.oldestId, view.page + 1);
    window.scrollTo({ top: 0 });
  }
  function newest() {
    loadPage(null, 0);
    loadChart();
  }

  // ---- chart -------------------------------------------------------------------------------
  let chartCtl = null, chartSeq = 0, chartData = null, chartTimer = null, chartRefreshAt = 0;
  async function loadChart() {
    const seq = ++chartSeq;
    if (chartCtl) chartCtl.abort();
    chartCtl = new AbortController();
    const rg = effRange();
    const params = { q: st.q };
    if (rg.from != null || rg.to != null) {
      params.to = rg.to != null ? rg.to : Date.now();
      if (rg.from != null) params.from = rg.from;
      else {
        const oldest = prevStats && prevStats.x.oldest_ts_ms;
        params.from = oldest && oldest < params.to ? oldest : params.to - 36e5;
      }
    }
    chartRefreshAt = Date.now();
    let res;
    try {
      res = await getJSON('/api/v1/histogram?' + qs(params), chartCtl.signal);
    } catch (e) {
      if (e.name === 'AbortError' || seq !== chartSeq) return;
      el.chart.classList.add('stale');
      return;
    }
    if (seq !== chartSeq) return;
    if (!res.ok) {
      // A bad query is reported under the query box by the table request; keep the old chart.
      if (res.status !== 400) chartMessage('Chart unavailable: ' + (res.body.error || 'HTTP ' + res.status));
      return;
    }
    chartData = res.body;
    chartData.levels = chartData.levels || LEVELS;
    el.chart.dataset.query = st.q;
    el.chart.dataset.fromMs = chartData.from_ms;
    el.chart.dataset.toMs = chartData.to_ms;
    el.chart.dataset.stepMs = chartData.step_ms;
    el.chart.dataset.gen = (+el.chart.dataset.gen || 0) + 1;
    renderChart();
  }

  function chartMessage(msg) {
    el.chart.replaceChildren(h('div', 'chart-msg', msg));
  }

  function niceStep(max, n) {
    const raw = max / n;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return Math.max(1, m * p);
    return 10 * p;
  }
  const TICKS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];

  let drag = null, geom = null;
  function renderChart() {
    const hd = chartData;
    const box = el.chart;
    box.replaceChildren();
    renderLegend();
    if (!hd) return;
    const W = box.clientWidth - 8, H = box.clientHeight - 4;
    if (W < 50) return;
    const buckets = hd.buckets || [];
    const step = hd.step_ms;
    const L = 44, R = 6, T = 8, B = 20;
    const pw = W - L - R, ph = H - T - B;
    const t0 = hd.from_ms != null ? hd.from_ms : (buckets.length ? buckets[0].ts_ms : 0);
    const t1 = hd.to_ms != null ? hd.to_ms : (buckets.length ? buckets[buckets.length - 1].ts_ms + step : t0 + 1);
    const svg = s('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'Log volume by level' });
    const idx = hd.levels.map((l) => l.toUpperCase());
    let max = 0, total = 0;
    for (const b of buckets) {
      b.total = b.counts.reduce((a, c) => a + c, 0);
      total += b.total;
      if (b.total > max) max = b.total;
    }
    // y grid
    const ystep = niceStep(Math.max(max, 1), 3);
    const ymax = Math.max(ystep, Math.ceil(max / ystep) * ystep);
    const Y = (v) => T + ph - (v / ymax) * ph;
    for (let v = 0; v <= ymax + 1e-9; v += ystep) {
      const y = Math.round(Y(v)) + 0.5;
      svg.append(s('line', { class: v === 0 ? 'axis' : 'grid', x1: L, x2: L + pw, y1: y, y2: y }));
      const t = s('text', { class: 'ylab', x: L - 6, y: y + 3.5 });
      t.textContent = fmtCompact(v);
      svg.append(t);
    }
    // x labels at round local times
    const span = Math.max(1, t1 - t0);
    const X = (t) => L + ((t - t0) / span) * pw;
    const maxLabels = Math.max(2, Math.floor(pw / 84));
    let iv = TICKS.find((x) => span / x <= maxLabels) || TICKS[TICKS.length - 1];
    if (step && iv < step) iv = step;
    const tz = (t) => -new Date(t).getTimezoneOffset() * 60000;
    let first = Math.ceil((t0 + tz(t0)) / iv) * iv - tz(t0);
    for (let t = first; t <= t1; t += iv) {
      const x = X(t);
      if (x < L + 12 || x > L + pw - 12) continue;
      const d = new Date(t);
      let lab;
      if (iv >= 864e5 || (d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0)) lab = pad(d.getMonth() + 1) + '-' + pad(d.getDate());
      else lab = iv < 6e4 ? fmtClock(d) : pad(d.getHours()) + ':' + pad(d.getMinutes());
      svg.append(s('line', { class: 'axis', x1: Math.round(x) + 0.5, x2: Math.round(x) + 0.5, y1: T + ph, y2: T + ph + 4 }));
      const tx = s('text', { class: 'xlab', x: x, y: T + ph + 15 });
      tx.textContent = lab;
      svg.append(tx);
    }
    // bars
    const n = buckets.length;
    const bw = n ? pw / n : pw;
    const gap = bw >= 7 ? Math.max(1, bw * 0.16) : bw >= 3 ? 1 : 0;
    buckets.forEach((b, i) => {
      const x = L + i * bw;
      const g = s('g', { class: b.total ? 'bucket bar' : 'bucket', 'data-i': i, 'data-from': b.ts_ms, 'data-to': b.ts_ms + step, 'data-total': b.total });
      g.append(s('rect', { class: 'hit', x: x, y: T, width: bw, height: ph }));
      let acc = 0;
      for (const lv of LEVELS) {
        const k = idx.indexOf(lv);
        const c = k >= 0 ? b.counts[k] : 0;
        if (!c) continue;
        const y0 = Y(acc), y1 = Y(acc + c);
        acc += c;
        const hgt = Math.max(y0 - y1, 1);
        g.append(s('rect', { class: 'seg', x: x + gap / 2, y: y0 - hgt, width: Math.max(bw - gap, 1), height: hgt, fill: COLORS[lv] }));
      }
      svg.append(g);
    });
    if (!total) {
      const t = s('text', { class: 'nodata', x: L + pw / 2, y: T + ph / 2 });
      t.textContent = 'No entries in this time range';
      svg.append(t);
    }
    const sel = s('rect', { class: 'sel', x: 0, y: T, width: 0, height: ph, visibility: 'hidden' });
    svg.append(sel);
    box.append(svg);
    geom = { L, pw, bw, n, T, ph, svg, sel, buckets, step };
    el.chartInfo.textContent = fmtInt(total) + ' in ' + fmtShort(t0) + ' \u2013 ' + fmtShort(t1) + ' \u00b7 ' + fmtStep(step) + ' buckets';
    svg.addEventListener('pointerdown', onChartDown);
    svg.addEventListener('pointermove', onChartMove);
    svg.addEventListener('pointerup', onChartUp);
    svg.addEventListener('pointercancel', () => { drag = null; sel.setAttribute('visibility', 'hidden'); });
    svg.addEventListener('pointerleave', () => { if (!drag) hideTip(); });
  }

  function renderLegend() {
    el.legend.replaceChildren();
    const hd = chartData;
    const sums = {};
    if (hd) {
      const idx = hd.levels.map((l) => l.toUpperCase());
      for (const b of hd.buckets || []) idx.forEach((lv, k) => { sums[lv] = (sums[lv] || 0) + (b.counts[k] || 0); });
    }
    for (const lv of LEVELS) {
      const li = h('span', 'li');
      const sw = h('span', 'sw');
      sw.style.background = COLORS[lv];
      li.append(sw, lv + ' ', h('span', 'n', hd ? fmtInt(sums[lv] || 0) : ''));
      el.legend.append(li);
    }
  }

  function bucketAt(clientX) {
    if (!geom || !geom.n) return -1;
    const r = geom.svg.getBoundingClientRect();
    const i = Math.floor((clientX - r.left - geom.L) / geom.bw);
    return Math.min(geom.n - 1, Math.max(0, i));
  }
  function onChartDown(ev) {
    if (ev.button !== 0) return;
    const g = ev.target.closest && ev.target.closest('.bucket');
    if (!g) return;
    const i = +g.dataset.i;
    drag = { a: i, b: i };
    try { geom.svg.setPointerCapture(ev.pointerId); } catch (e) { /* not fatal */ }
    ev.preventDefault();
  }
  function onChartMove(ev) {
    const i = bucketAt(ev.clientX);
    if (i < 0) return;
    if (drag) {
      drag.b = i;
      const a = Math.min(drag.a, drag.b), b = Math.max(drag.a, drag.b);
      geom.sel.setAttribute('x', geom.L + a * geom.bw);
      geom.sel.setAttribute('width', (b - a + 1) * geom.bw);
      geom.sel.setAttribute('visibility', a === b ? 'hidden' : 'visible');
    }
    const r = geom.svg.getBoundingClientRect();
    const y = ev.clientY - r.top;
    if (y < geom.T - 4 || y > geom.T + geom.ph + 4) { hideTip(); return; }
    showTip(i, ev);
  }
  function onChartUp(ev) {
    if (!drag) return;
    const a = Math.min(drag.a, drag.b), b = Math.max(drag.a, drag.b);
    drag = null;
    hideTip();
    const g = geom;
    zoomTo(g.buckets[a].ts_ms, g.buckets[b].ts_ms + g.step);
  }
  function zoomTo(from, to) {
    st.from = from;
    st.to = to;
    st.rel = null;
    st.q = el.q.value.trim();
    execute();
  }

  let tip = null;
  function showTip(i, ev) {
    const b = geom.buckets[i];
    if (!b) return;
    if (!tip) { tip = h('div'); tip.id = 'chart-tip'; }
    if (tip.parentNode !== el.chart) el.chart.append(tip);
    tip.replaceChildren();
    tip.append(h('div', 't', fmtShort(b.ts_ms) + ' \u2013 ' + fmtShort(b.ts_ms + geom.step)));
    const idx = chartData.levels.map((l) => l.toUpperCase());
    for (let k = LEVELS.length - 1; k >= 0; k--) {
      const lv = LEVELS[k];
      const c = b.counts[idx.indexOf(lv)] || 0;
      if (!c) continue;
      const r = h('div', 'r');
      const sw = h('span', 'sw');
      sw.style.background = COLORS[lv];
      r.append(sw, lv, h('span', 'n', fmtInt(c)));
      tip.append(r);
    }
    const tot = h('div', 'r');
    tot.append(h('b', null, 'Total'), h('span', 'n', fmtInt(b.total)));
    tip.append(tot);
    tip.append(h('div', 'hint', 'Click to zoom in \u00b7 drag to select a range'));
    const box = el.chart.getBoundingClientRect();
    let x = ev.clientX - box.left + 14;
    const tw = tip.offsetWidth;
    if (x + tw > box.width - 4) x = ev.clientX - box.left - tw - 14;
    tip.style.left = Math.max(0, x) + 'px';
    tip.style.top = Math.max(0, Math.min(ev.clientY - box.top - 20, box.height - tip.offsetHeight)) + 'px';
    tip.hidden = false;
  }
  function hideTip() { if (tip) tip.hidden = true; }

  let chartRedraw = null;
  /** A live entry: count it in its bucket, or refresh the chart when time has moved past it. */
  function chartAdd(e) {
    const hd = chartData;
    if (!hd || !hd.buckets || !hd.buckets.length || !hd.step_ms) return;
    const t = entryMs(e);
    const i = Math.floor((t - hd.buckets[0].ts_ms) / hd.step_ms);
    if (i >= 0 && i < hd.buckets.length) {
      const k = hd.levels.map((l) => l.toUpperCase()).indexOf(e.level);
      if (k >= 0) hd.buckets[i].counts[k]++;
      if (!chartRedraw) chartRedraw = setTimeout(() => { chartRedraw = null; if (!drag) renderChart(); }, 400);
    } else if (i >= hd.buckets.length && st.to == null && Date.now() - chartRefreshAt > CHART_REFRESH) {
      loadChart();
    }
  }

  // ---- live tail -------------------------------------------------------------------------
  let tailOn = false, es = null, tailQ = null, tailRetry = null, tailQueue = [], tailFlush = null;
  function setTailState(sv, text) {
    el.tailState.dataset.state = sv;
    el.tailState.textContent = text || sv;
  }
  function setTail(on) {
    tailOn = on;
    el.tail.setAttribute('aria-pressed', on ? 'true' : 'false');
    el.tail.textContent = on ? '\u25a0 Stop tail' : '\u25b6 Live tail';
    if (!on) { tailStop(); setTailState('off'); return; }
    // New entries are newer than any fixed end of range: drop it, and show the newest page.
    const q = el.q.value.trim();
    if (st.to != null || view.page > 0 || q !== st.q || view.q == null) {
      st.to = null;
      st.q = q;
      setTailState('connecting', 'connecting\u2026');
      execute(); // starts the tail once the query is known to be valid
    } else {
      tailStart();
    }
  }
  function tailStart() {
    tailStop();
    if (!tailOn) return;
    tailQ = view.q != null ? view.q : st.q;
    setTailState('connecting', 'connecting\u2026');
    const src = new EventSource('/api/v1/tail?' + qs({ q: tailQ, access_token: token() }));
    es = src;
    src.onopen = () => { if (es === src) setTailState('live'); };
    src.addEventListener('log', (ev) => {
      if (es !== src) return;
      let e;
      try { e = JSON.parse(ev.data); } catch (x) { return; }
      if (el.tailState.dataset.state !== 'live') setTailState('live');
      tailQueue.push(e);
      if (!tailFlush) tailFlush = setTimeout(flushTail, 60);
    });
    src.addEventListener('skipped', (ev) => {
      // The server skips ahead when a tail falls too far behind; say so instead of hiding it.
      if (es !== src) return;
      try { view.skipped = (view.skipped || 0) + (JSON.parse(ev.data).skipped || 0); } catch (x) { return; }
      renderSummary();
    });
    src.onerror = () => {
      if (es !== src) return;
      if (src.readyState === EventSource.CLOSED) {
        setTailState('disconnected', 'disconnected \u2014 retrying');
        es = null;
        src.close();
        clearTimeout(tailRetry);
        tailRetry = setTimeout(() => { if (tailOn && !es) tailStart(); }, TAIL_RETRY);
      } else {
        setTailState('reconnecting', 'reconnecting\u2026');
      }
    };
  }
  function tailStop() {
    clearTimeout(tailRetry);
    if (es) { es.close(); es = null; }
    tailQ = null;
  }
  function flushTail() {
    clearTimeout(tailFlush);
    tailFlush = null;
    if (!tailQueue.length || view.loading) return;
    const batch = tailQueue;
    tailQueue = [];
    const rg = { from: view.from, to: view.to };
    const fresh = [];
    for (const e of batch) {
      if (view.ids.has(e.id)) continue;
      const t = entryMs(e);
      if ((rg.from != null && t < rg.from) || (rg.to != null && t >= rg.to)) continue;
      chartAdd(e);
      fresh.push(e);
    }
    if (!fresh.length) return;
    if (view.page > 0) {
      view.pendingNew += fresh.length;
      renderSummary();
      return;
    }
    const empty = el.tbody.querySelector('tr.empty');
    if (empty) empty.remove();
    fresh.sort((a, b) => a.id - b.id);
    for (const e of fresh) {
      const tr = makeRow(e);
      tr.classList.add('new');
      setTimeout(() => tr.classList.remove('new'), 3000);
      el.tbody.insertBefore(tr, el.tbody.firstChild);
      view.ids.add(e.id);
      if (view.oldestId == null || e.id < view.oldestId) view.oldestId = e.id;
      view.live++;
    }
    while (el.tbody.rows.length > MAX_ROWS) {
      const last = el.tbody.rows[el.tbody.rows.length - 1];
      view.ids.delete(+last.dataset.id);
      last.remove();
      view.more = true;
    }
    const lastRow = el.tbody.rows[el.tbody.rows.length - 1];
    if (lastRow && lastRow.dataset.id) view.oldestId = +lastRow.dataset.id;
    renderSummary();
  }

  // ---- stats -------------------------------------------------------------------------------
  let prevStats = null, statsTimer = null, statsPolls = 0;
  async function pollStats() {
    clearTimeout(statsTimer);
    try {
      const r = await getJSON('/api/v1/stats');
      if (!r.ok) throw new Error(r.body.error || 'HTTP ' + r.status);
      renderStats(r.body, performance.now());
    } catch (e) {
      el.stats.replaceChildren(h('span', 'down', 'Server unreachable: ' + (e.message || e)));
      prevStats = null;
    }
    // The second poll comes soon, so that the ingest rate shows up quickly.
    statsTimer = setTimeout(pollStats, statsPolls++ === 0 ? 1500 : STATS_EVERY);
  }
  function renderStats(x, now) {
    let rate = null, rateHow = 'between the last two polls';
    if (prevStats && x.appended != null && prevStats.x.appended != null && now > prevStats.t) {
      rate = Math.max(0, (x.appended - prevStats.x.appended) / ((now - prevStats.t) / 1000));
    } else if (x.appended != null && x.uptime_s > 0) {
      rate = x.appended / x.uptime_s; // First poll: the average since start.
      rateHow = 'average since start, until the next poll';
    }
    prevStats = { x, t: now };
    const items = [];
    const add = (key, value, label, title, cls) => items.push({ key, value, label, title, cls });
    add('entries', fmtInt(x.entries), 'entries', 'Entries held now; ' + fmtInt(x.appended) + ' accepted since start');
    add('rate', rate == null ? '\u2026' : fmtCompact(rate) + '/s', 'ingest', 'Entries accepted per second (' + rateHow + ')');
    const pl = x.per_level || {};
    const errs = (pl.ERROR || 0) + (pl.FATAL || 0);
    add('errors', fmtInt(errs), 'errors', 'ERROR ' + fmtInt(pl.ERROR || 0) + ', FATAL ' + fmtInt(pl.FATAL || 0) + ', WARN ' + fmtInt(pl.WARN || 0), errs ? 'bad' : '');
    add('disk', fmtBytes(x.disk_bytes), 'on disk', 'Segment files; ' + fmtBytes(x.raw_bytes) + ' uncompressed; ' + fmtInt(x.segments) + ' segments');
    let comp = '\u2014';
    if (x.raw_bytes > 0 && x.disk_bytes > 0) comp = (x.raw_bytes / x.disk_bytes).toFixed(1) + '\u00d7';
    add('compression', comp, 'compression', 'compression_ratio ' + x.compression_ratio + ' (disk \u00f7 raw)');
    add('connections', fmtInt(x.connections_current), 'connections', 'Connections open now');
    add('uptime', fmtDur(x.uptime_s), 'uptime', 'Seconds since start: ' + x.uptime_s);
    add('fsync', x.fsync_policy != null ? String(x.fsync_policy) : '\u2014', 'fsync', 'When acknowledgements are sent: always, batch or never');
    if (x.newest_ts_ms) {
      const age = (Date.now() - x.newest_ts_ms) / 1000;
      add('newest', age < 1 ? 'now' : fmtDur(Math.max(0, age)) + ' ago', 'last entry', new Date(x.newest_ts_ms).toISOString());
    }
    const frag = document.createDocumentFragment();
    for (const it of items) {
      const sp = h('span', 'stat' + (it.cls ? ' ' + it.cls : ''));
      sp.dataset.key = it.key;
      sp.title = it.title;
      sp.append(h('b', null, it.value), ' ' + it.label);
      frag.append(sp);
    }
    el.stats.replaceChildren(frag);
  }

  // ---- wiring ------------------------------------------------------------------------------
  el.form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  el.older.addEventListener('click', older);
  el.newest.addEventListener('click', newest);
  el.tail.addEventListener('click', () => setTail(!tailOn));
  el.zoomOut.addEventListener('click', () => {
    if (st.from == null || st.to == null) return;
    const w = st.to - st.from;
    let to = st.to + 1.5 * w;
    if (to > Date.now()) to = null; // reaching the present: leave the end open
    zoomTo(Math.round(st.from - 1.5 * w), to == null ? null : Math.round(to));
  });
  el.home.addEventListener('click', (ev) => {
    ev.preventDefault();
    el.q.value = '';
    Object.assign(st, { q: '', from: null, to: null, rel: null });
    execute();
  });
  el.preset.addEventListener('change', () => {
    const v = el.preset.value;
    el.preset.value = '';
    if (!v) return;
    st.from = st.to = null;
    st.rel = v === 'all' ? null : v;
    st.q = el.q.value.trim();
    execute();
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === '/' && document.activeElement !== el.q && !ev.ctrlKey && !ev.metaKey) {
      const t = document.activeElement && document.activeElement.tagName;
      if (t !== 'INPUT' && t !== 'TEXTAREA' && t !== 'SELECT') { ev.preventDefault(); el.q.focus(); el.q.select(); }
    } else if (ev.key === 'Escape' && document.activeElement === el.q) {
      el.q.blur();
    }
  });
  window.addEventListener('popstate', onHashNav);
  window.addEventListener('hashchange', onHashNav);
  new ResizeObserver(layout).observe(el.header);
  let lastW = 0;
  new ResizeObserver(() => {
    const w = el.chart.clientWidth;
    if (w !== lastW) { lastW = w; if (!drag) renderChart(); }
  }).observe(el.chart);

  Object.assign(st, readHash());
  el.q.value = st.q;
  execute();
  pollStats();
  layout();
  if (!st.q) el.q.focus();
})();
