/* LogCaster web console: query, volume chart, live tail and server stats over the HTTP API
 * (/api/v1/query, /api/v1/histogram, /api/v1/tail, /api/v1/stats). A query with pipes answers
 * a table: it is shown as a sortable table under a hand-drawn chart (bars per group, lines over
 * _time buckets). The fields panel lists the fields of the filter's matches and their top values.
 * Plain ES2020, no build step, no dependencies. All text from the server is inserted with
 * textContent, never as HTML. */
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
    chartPanel: $('chart-panel'), pchartPanel: $('pchart-panel'), pchart: $('pchart'), pchartInfo: $('pchart-info'),
    pchartPick: $('pchart-pick'), pchartCol: $('pchart-col'), plegend: $('plegend'),
    ptableWrap: $('ptable-wrap'), ptable: $('ptable'), fields: $('fields'), fieldsInfo: $('fields-info'),
    fieldsFoot: $('fields-foot'),
  };

  // What the user asked for: the query that was last run and its time range.
  // from/to are unix ms, from inclusive, to exclusive; rel is a relative range such as '15m'.
  const st = { q: '', from: null, to: null, rel: null };

  // What the table shows.
  const view = {
    q: null, from: null, to: null, // the query and range of the rows shown
    page: 0, pageStarts: [], more: false, took: null,
    ids: new Set(), oldestId: null, loading: false, live: 0, skipped: 0, pendingNew: 0, gen: 0,
    table: null, // a query with pipes: {cols, rows} as the server answered them
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
    if (view.ids.size || view.table) el.error.append(h('span', 'note', '\u2014 still showing the results of the previous query'));
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
    // The volume chart counts the filter's entries; a table brings its own chart instead.
    if (!splitPipes(st.q).pipes) loadChart();
    loadFields();
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
    if (splitPipes(q).pipes) { delete params.limit; delete params.before; } // the pipes decide the rows
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
      el.ptable.classList.add('stale');
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
      el.ptable.classList.add('stale');
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
    el.ptable.classList.remove('stale');
    if (Array.isArray(res.body.columns)) {
      showTable(q, rg, res.body);
      return;
    }
    setTableMode(false);
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
    if (view.table) { renderTableSummary(); return; }
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
    if (splitPipes(tailQ).pipes) { // a tail follows entries, a table has none: wait for a filter
      tailQ = null;
      setTailState('paused', 'paused (pipes)');
      return;
    }
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
    if (view.table) return; // a table is not a list of entries: the tail is paused for it
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

  // ---- queries with pipes: the filter, a table, its chart ---------------------------------
  /** Cut a query where its pipes start, as the server's lexer does: at the first '|' that is a
   * token of its own (whitespace or parentheses around it), outside "phrases", name:"values"
   * and /regexes/. Returns {filter, pipes}; pipes is '' or starts with '|'. */
  function splitPipes(q) {
    const n = q.length;
    const delim = (c) => c === undefined || /[\s()]/.test(c);
    const quoteEnd = (k) => { // k at an opening '"': the index after its closing quote (n if none)
      for (let j = k + 1; j < n; j++) {
        if (q[j] === '\\') j++;
        else if (q[j] === '"') return j + 1;
      }
      return n;
    };
    let i = 0;
    while (i < n) {
      const c = q[i];
      if (delim(c)) { i++; continue; }
      if (c === '|' && delim(q[i + 1])) return { filter: q.slice(0, i).trim(), pipes: q.slice(i).trim() };
      if (c === '"') { i = quoteEnd(i); continue; }
      if (c === '-' && !delim(q[i + 1])) { i++; continue; }
      if (c === '/') { // a regex literal only when its closing '/' (and an 'i') ends the token
        let j = i + 1;
        while (j < n && q[j] !== '/') j += q[j] === '\\' ? 2 : 1;
        if (j < n) {
          let e = j + 1;
          if (q[e] === 'i') e++;
          if (delim(q[e])) { i = e; continue; }
        }
      }
      let j = i;
      while (j < n && !delim(q[j])) {
        if (q[j] === ':' && q[j + 1] === '"') { j = quoteEnd(j + 1); break; }
        j++;
      }
      i = j;
    }
    return { filter: q.trim(), pipes: '' };
  }

  const MAX_TABLE_ROWS = 2000; // rows put in the page (the answer may hold more)
  const MAX_BARS = 30;
  const MAX_SERIES = 10;
  const PALETTE = ['#2f81f7', '#e8590c', '#2f9e44', '#ae3ec9', '#f08c00', '#0c8599', '#e03131', '#5c7cfa', '#a61e4d', '#74b816'];
  const tsort = { col: null, dir: 1 }; // the table's sort: a column name, 1 ascending, -1 descending

  function setTableMode(on) {
    if (!on) view.table = null;
    el.results.hidden = on;
    el.ptableWrap.hidden = !on;
    el.newest.hidden = el.older.hidden = on;
    el.chartPanel.hidden = on;
    if (!on) el.pchartPanel.hidden = true;
  }

  function showTable(q, rg, body) {
    const fresh = !view.table || view.q !== q;
    setTableMode(true);
    view.table = { cols: body.columns.map(String), rows: Array.isArray(body.rows) ? body.rows : [] };
    view.q = q;
    view.from = rg.from;
    view.to = rg.to;
    view.page = 0;
    view.more = false;
    view.took = body.took_ms;
    view.ids = new Set();
    view.live = view.skipped = view.pendingNew = 0;
    el.tbody.replaceChildren();
    if (fresh || !view.table.cols.includes(tsort.col)) { tsort.col = null; tsort.dir = 1; }
    renderTable();
    renderSummary();
    el.ptable.dataset.query = q;
    el.ptable.dataset.gen = (+el.ptable.dataset.gen || 0) + 1;
    renderPChart();
    if (tailOn) tailStart(); // pauses it: a table has no entries to follow
    tailQueue = [];
  }

  function renderTableSummary() {
    const t = view.table;
    el.summary.replaceChildren();
    el.foot.replaceChildren();
    const n = t.rows.length;
    el.summary.append(h('b', null, fmtInt(n)), ' ' + (n === 1 ? 'row' : 'rows'));
    if (view.took != null) el.summary.append(' \u00b7 query ' + (Math.round(view.took * 100) / 100) + ' ms');
    if (n > MAX_TABLE_ROWS) el.foot.textContent = 'Showing the first ' + fmtInt(MAX_TABLE_ROWS) + ' of ' + fmtInt(n) + ' rows: add | limit N to the query.';
  }

  const isNum = (v) => typeof v === 'number';
  function cellText(v) {
    if (v == null) return '';
    if (isNum(v)) return Number.isInteger(v) && Math.abs(v) >= 1e4 ? v.toLocaleString('en-US') : String(v);
    return String(v);
  }
  /** Order of two cells as the server's sort does it: numbers (bare or written as text) first,
   * then text bytewise, empty values last in both directions. */
  function cmpCells(a, b, dir) {
    const ea = a == null || a === '', eb = b == null || b === '';
    if (ea || eb) return ea === eb ? 0 : ea ? 1 : -1;
    const na = isNum(a) ? a : (/^-?\d+(\.\d+)?$/.test(a) ? Number(a) : null);
    const nb = isNum(b) ? b : (/^-?\d+(\.\d+)?$/.test(b) ? Number(b) : null);
    if (na != null && nb != null) return dir * (na - nb);
    if (na != null || nb != null) return na != null ? -1 : 1;
    return dir * (a < b ? -1 : a > b ? 1 : 0);
  }

  function renderTable() {
    const t = view.table;
    const thead = el.ptable.tHead, tbody = el.ptable.tBodies[0];
    const tr = h('tr');
    t.cols.forEach((c) => {
      const th = h('th', null, c);
      th.dataset.col = c;
      th.title = 'Sort by ' + c;
      if (tsort.col === c) th.setAttribute('aria-sort', tsort.dir > 0 ? 'ascending' : 'descending');
      th.append(h('span', 'arrow', tsort.col === c ? (tsort.dir > 0 ? ' \u25b2' : ' \u25bc') : ''));
      th.addEventListener('click', () => {
        if (tsort.col === c) tsort.dir = -tsort.dir;
        else { tsort.col = c; tsort.dir = t.rows.some((r) => isNum(r[t.cols.indexOf(c)])) ? -1 : 1; }
        renderTable();
      });
      tr.append(th);
    });
    thead.replaceChildren(tr);
    let rows = t.rows;
    if (tsort.col != null) {
      const k = t.cols.indexOf(tsort.col);
      rows = rows.map((r, i) => [r, i]).sort((x, y) => cmpCells(x[0][k], y[0][k], tsort.dir) || x[1] - y[1]).map((x) => x[0]);
    }
    const frag = document.createDocumentFragment();
    const ti = t.cols.indexOf('_time');
    for (const r of rows.slice(0, MAX_TABLE_ROWS)) {
      const row = h('tr', 'prow');
      t.cols.forEach((c, k) => {
        const v = r[k];
        const td = h('td', isNum(v) ? 'num' : k === ti ? 'time' : c === '_msg' ? 'msg' : null, cellText(v));
        td.dataset.v = v == null ? '' : String(v);
        if (k === ti && v) { const d = new Date(v); if (!isNaN(d)) td.title = fmtDate(d) + ' ' + fmtClock(d, true) + ' local'; }
        if (c === 'level' && LEVELS.includes(v)) { td.textContent = ''; td.append(h('span', 'lvl lvl-' + v, v)); }
        row.append(td);
      });
      frag.append(row);
    }
    if (!rows.length) {
      const e = h('tr', 'empty');
      const td = h('td', null, 'No rows: nothing matches this query and time range.');
      td.colSpan = Math.max(1, t.cols.length);
      e.append(td);
      frag.append(e);
    }
    tbody.replaceChildren(frag);
  }

  /** What to draw for a table: null (no numbers), bars per row, or lines over _time. */
  function chartSpec(t) {
    const numeric = t.cols.map((c, k) => t.rows.length > 0 && t.rows.some((r) => isNum(r[k])) &&
      t.rows.every((r) => isNum(r[k]) || r[k] === '' || r[k] == null));
    const values = t.cols.filter((c, k) => numeric[k]);
    if (!values.length) return null;
    const ti = t.cols.indexOf('_time');
    const groups = t.cols.map((c, k) => k).filter((k) => !numeric[k] && k !== ti);
    const want = el.pchartCol.dataset.want;
    const value = values.includes(want) ? want : values[0];
    const times = ti >= 0 && !numeric[ti] && t.rows.every((r) => !isNaN(Date.parse(r[ti])));
    return { kind: times ? 'line' : 'bar', ti, groups, values, value, vk: t.cols.indexOf(value) };
  }

  function seriesColor(name, i) { return COLORS[name] || PALETTE[i % PALETTE.length]; }

  function renderPChart() {
    const t = view.table;
    if (!t) return;
    const spec = chartSpec(t);
    el.pchartPanel.hidden = !spec;
    el.pchart.replaceChildren();
    el.plegend.replaceChildren();
    el.pchart.dataset.kind = spec ? spec.kind : '';
    if (!spec) return;
    el.pchartPick.hidden = spec.values.length < 2;
    if (spec.values.length >= 2) {
      el.pchartCol.replaceChildren(...spec.values.map((v) => { const o = h('option', null, v); o.value = v; return o; }));
      el.pchartCol.value = spec.value;
    }
    el.pchart.dataset.value = spec.value;
    if (spec.kind === 'bar') drawBars(t, spec);
    else drawLines(t, spec);
    el.pchart.dataset.gen = (+el.pchart.dataset.gen || 0) + 1;
  }

  let ptip = null;
  function showPTip(ev, title, lines) {
    if (!ptip) { ptip = h('div'); ptip.id = 'pchart-tip'; }
    if (ptip.parentNode !== el.pchart) el.pchart.append(ptip);
    ptip.replaceChildren(h('div', 't', title));
    for (const [sw, name, value] of lines) {
      const r = h('div', 'r');
      if (sw) { const x = h('span', 'sw'); x.style.background = sw; r.append(x); }
      r.append(h('span', 'k', name), h('span', 'n', value));
      ptip.append(r);
    }
    ptip.hidden = false;
    const box = el.pchart.getBoundingClientRect();
    let x = ev.clientX - box.left + 14;
    if (x + ptip.offsetWidth > box.width - 4) x = ev.clientX - box.left - ptip.offsetWidth - 14;
    ptip.style.left = Math.max(0, x) + 'px';
    ptip.style.top = Math.max(0, Math.min(ev.clientY - box.top - 10, box.height - ptip.offsetHeight)) + 'px';
  }
  function hidePTip() { if (ptip) ptip.hidden = true; }
  const exact = (v) => (isNum(v) ? String(v) : v === '' || v == null ? '(empty)' : String(v));

  /** One horizontal bar per row (the first MAX_BARS), labelled by the group values. */
  function drawBars(t, sp) {
    const rows = t.rows.slice(0, MAX_BARS);
    const label = (r) => sp.groups.length ? sp.groups.map((k) => (r[k] === '' ? '(empty)' : String(r[k]))).join(' \u00b7 ') : sp.value;
    const BH = 20, T = 4;
    const W = Math.max(200, el.pchart.clientWidth - 8), H = T + rows.length * BH + 4;
    el.pchart.style.height = H + 'px';
    const longest = Math.max(...rows.map((r) => label(r).length), 4);
    const LW = Math.min(Math.round(W * 0.35), longest * 7 + 12);
    const VW = 70;
    const pw = W - LW - VW;
    const max = Math.max(0, ...rows.map((r) => (isNum(r[sp.vk]) ? r[sp.vk] : 0)));
    const min = Math.min(0, ...rows.map((r) => (isNum(r[sp.vk]) ? r[sp.vk] : 0)));
    const X = (v) => LW + ((v - min) / ((max - min) || 1)) * pw;
    const svg = s('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': sp.value + ' by ' + sp.groups.map((k) => t.cols[k]).join(', ') });
    const one = sp.groups.length === 1 && t.cols[sp.groups[0]] === 'level';
    rows.forEach((r, i) => {
      const v = r[sp.vk], y = T + i * BH, lab = label(r);
      const g = s('g', { class: 'pbar', 'data-i': i, 'data-label': lab, 'data-value': isNum(v) ? v : '' });
      g.append(s('rect', { class: 'hit', x: 0, y: y, width: W, height: BH }));
      const tl = s('text', { class: 'blab', x: LW - 6, y: y + BH / 2 + 4 });
      tl.textContent = lab.length * 7 > LW - 8 ? lab.slice(0, Math.max(3, Math.floor((LW - 8) / 7) - 1)) + '\u2026' : lab;
      g.append(tl);
      if (isNum(v)) {
        const x0 = X(Math.min(0, v)), x1 = X(Math.max(0, v));
        g.append(s('rect', { class: 'bfill', x: x0, y: y + 3, width: Math.max(1, x1 - x0), height: BH - 6, fill: one ? seriesColor(r[sp.groups[0]], 0) : PALETTE[0] }));
        const tv = s('text', { class: 'bval', x: x1 + 5, y: y + BH / 2 + 4 });
        tv.textContent = fmtCompact(v);
        g.append(tv);
      }
      g.addEventListener('pointermove', (ev) => showPTip(ev, lab, [[null, sp.value, exact(v)]]));
      g.addEventListener('pointerleave', hidePTip);
      svg.append(g);
    });
    el.pchart.append(svg);
    el.pchartInfo.textContent = rows.length < t.rows.length ? 'the first ' + rows.length + ' of ' + fmtInt(t.rows.length) + ' rows' : fmtInt(rows.length) + (rows.length === 1 ? ' row' : ' rows');
  }

  /** Lines over the _time buckets: one per value of the other group columns. Missing buckets
   * of a count are zero (stats has no row for them); other functions leave a gap. */
  function drawLines(t, sp) {
    const ti = sp.ti;
    const series = new Map();
    for (const r of t.rows) {
      const key = sp.groups.length ? sp.groups.map((k) => (r[k] === '' ? '(empty)' : String(r[k]))).join(' \u00b7 ') : sp.value;
      if (!series.has(key)) series.set(key, { key, pts: new Map(), total: 0 });
      const se = series.get(key), v = r[sp.vk];
      se.pts.set(Date.parse(r[ti]), isNum(v) ? v : null);
      if (isNum(v)) se.total += v;
    }
    let list = [...series.values()];
    const dropped = Math.max(0, list.length - MAX_SERIES);
    if (dropped) list = list.sort((a, b) => b.total - a.total).slice(0, MAX_SERIES);
    const times = [...new Set(t.rows.map((r) => Date.parse(r[ti])))].sort((a, b) => a - b);
    let step = 0;
    const m = /(?:^|[(,\s])_time:(\w+)/.exec(splitPipes(view.q || '').pipes);
    if (m) step = parseDur(m[1]) || 0;
    if (!step) for (let i = 1; i < times.length; i++) { const d = times[i] - times[i - 1]; if (d > 0 && (!step || d < step)) step = d; }
    const esc = sp.value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const isCount = /^count(_uniq)?\(/.test(sp.value) ||
      new RegExp('\\bcount(_uniq)?\\([^)]*\\)\\s+(as\\s+)?' + esc + '(?=\\s*(,|\\||$))').test(view.q || '');
    let xs = times;
    if (step && isCount && times.length > 1 && (times[times.length - 1] - times[0]) / step <= 2000) {
      xs = [];
      for (let x = times[0]; x <= times[times.length - 1]; x += step) xs.push(x);
    }
    const val = (se, x) => (se.pts.has(x) ? se.pts.get(x) : isCount ? 0 : null);
    const W = Math.max(200, el.pchart.clientWidth - 8), H = 200;
    el.pchart.style.height = H + 4 + 'px';
    const L = 52, R = 12, T = 8, B = 20, pw = W - L - R, ph = H - T - B;
    let max = 0, min = 0;
    for (const se of list) for (const x of xs) { const v = val(se, x); if (v != null) { max = Math.max(max, v); min = Math.min(min, v); } }
    const ystep = niceStep(Math.max(max - min, 1), 4);
    const ymax = Math.max(ystep, Math.ceil(max / ystep) * ystep), ymin = Math.floor(min / ystep) * ystep;
    const t0 = xs[0], t1 = xs.length > 1 ? xs[xs.length - 1] : xs[0] + (step || 60000);
    const X = (x) => (xs.length > 1 ? L + ((x - t0) / (t1 - t0)) * pw : L + pw / 2);
    const Y = (v) => T + ph - ((v - ymin) / (ymax - ymin)) * ph;
    const svg = s('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': sp.value + ' over time' });
    for (let v = ymin; v <= ymax + 1e-9; v += ystep) {
      const y = Math.round(Y(v)) + 0.5;
      svg.append(s('line', { class: v === 0 ? 'axis' : 'grid', x1: L, x2: L + pw, y1: y, y2: y }));
      const tx = s('text', { class: 'ylab', x: L - 6, y: y + 3.5 });
      tx.textContent = fmtCompact(v);
      svg.append(tx);
    }
    const span = Math.max(1, t1 - t0);
    let iv = TICKS.find((x) => span / x <= Math.max(2, Math.floor(pw / 90))) || TICKS[TICKS.length - 1];
    const tz = (x) => -new Date(x).getTimezoneOffset() * 60000;
    for (let x = Math.ceil((t0 + tz(t0)) / iv) * iv - tz(t0); x <= t1; x += iv) {
      const px = X(x);
      if (px < L - 1 || px > L + pw + 1) continue;
      const d = new Date(x);
      const tx = s('text', { class: 'xlab', x: px, y: T + ph + 15 });
      tx.textContent = iv >= 864e5 ? pad(d.getMonth() + 1) + '-' + pad(d.getDate()) : iv < 6e4 ? fmtClock(d) : pad(d.getHours()) + ':' + pad(d.getMinutes());
      svg.append(tx);
    }
    const dots = xs.length <= 80;
    list.forEach((se, i) => {
      se.color = seriesColor(se.key, i);
      let d = '', pen = false;
      for (const x of xs) {
        const v = val(se, x);
        if (v == null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + X(x).toFixed(1) + ' ' + Y(v).toFixed(1);
        pen = true;
      }
      svg.append(s('path', { class: 'line', d: d || 'M0 0', stroke: se.color, 'data-series': se.key, 'data-total': se.total }));
      if (dots || xs.length === 1) for (const x of xs) {
        const v = val(se, x);
        if (v != null) svg.append(s('circle', { class: 'pt', cx: X(x), cy: Y(v), r: 2.5, fill: se.color, 'data-series': se.key, 'data-t': x, 'data-v': v }));
      }
      const li = h('span', 'li');
      const sw = h('span', 'sw');
      sw.style.background = se.color;
      li.append(sw, se.key + ' ', h('span', 'n', fmtCompact(se.total)));
      li.title = se.key + ': ' + se.total + ' in all';
      el.plegend.append(li);
    });
    if (dropped) el.plegend.append(h('span', 'li more', '+' + dropped + ' more'));
    const guide = s('line', { class: 'guide', x1: 0, x2: 0, y1: T, y2: T + ph, visibility: 'hidden' });
    svg.append(guide);
    const hit = s('rect', { class: 'hit', x: L, y: T, width: pw, height: ph });
    hit.addEventListener('pointermove', (ev) => {
      const r = svg.getBoundingClientRect();
      const px = ev.clientX - r.left;
      let best = xs[0];
      for (const x of xs) if (Math.abs(X(x) - px) < Math.abs(X(best) - px)) best = x;
      guide.setAttribute('x1', X(best));
      guide.setAttribute('x2', X(best));
      guide.setAttribute('visibility', 'visible');
      const lines = list.map((se) => [se.color, se.key, exact(val(se, best))])
        .sort((a, b) => (Number(b[2]) || 0) - (Number(a[2]) || 0));
      showPTip(ev, fmtShort(best) + (step ? ' \u2013 ' + fmtShort(best + step) : ''), lines);
    });
    hit.addEventListener('pointerleave', () => { guide.setAttribute('visibility', 'hidden'); hidePTip(); });
    svg.append(hit);
    el.pchart.append(svg);
    el.pchartInfo.textContent = sp.value + ' per ' + (step ? fmtStep(step) : 'bucket') + ', ' + fmtShort(t0) + ' \u2013 ' + fmtShort(t1 + (step || 0));
  }

  // ---- fields panel ------------------------------------------------------------------------
  // The fields of the filter's matches (`<filter> | field_names`), and for a field opened by a
  // click its top values (`<filter> | top 5 by (field)`). One request at a time, in order, so a
  // page with many fields open does not flood the server; answers are kept per filter and range.
  const FIELDS_SHOWN = 10;
  const fst = { key: null, filter: '', rg: null, names: null, total: 0, open: new Set(), tops: new Map(), all: false, gen: 0, rendered: 0 };
  let fqueue = [], fbusy = false, fctl = null;

  function fieldsKey(filter) { return JSON.stringify([filter, st.rel, st.rel ? null : st.from, st.rel ? null : st.to]); }

  function fieldsRequest(pipe, done) {
    const gen = fst.gen, rg = fst.rg;
    fqueue.push(async () => {
      if (gen !== fst.gen) return;
      fctl = new AbortController();
      const q = (fst.filter || '*') + ' | ' + pipe;
      let res;
      try {
        res = await getJSON('/api/v1/query?' + qs({ q, from: rg.from, to: rg.to != null ? rg.to - 1 : null }), fctl.signal);
      } catch (e) {
        res = { ok: false, body: { error: e.name === 'AbortError' ? null : String(e.message || e) } };
      }
      // A server without pipes answers entries: no table, so no fields to list.
      if (res.ok && !Array.isArray(res.body.columns)) res = { ok: false, status: 501, body: { error: 'this server has no pipes' } };
      if (gen === fst.gen) done(res);
    });
    pumpFields();
  }
  async function pumpFields() {
    if (fbusy) return;
    fbusy = true;
    while (fqueue.length) await fqueue.shift()();
    fbusy = false;
  }

  function loadFields() {
    const filter = splitPipes(st.q).filter;
    const key = fieldsKey(filter);
    if (key === fst.key && fst.names) return;
    fst.gen++;
    fqueue = [];
    if (fctl) fctl.abort();
    Object.assign(fst, { key, filter, rg: effRange(), names: null, total: 0, tops: new Map() });
    el.fields.dataset.filter = filter;
    el.fieldsInfo.textContent = 'loading\u2026';
    fieldsRequest('field_names', (res) => {
      if (!res.ok) {
        fst.names = [];
        el.fieldsInfo.textContent = res.status === 400 || !res.body.error ? '' : res.body.error;
        renderFields();
        return;
      }
      const ni = res.body.columns.indexOf('name'), hi = res.body.columns.indexOf('hits');
      fst.names = res.body.rows.map((r) => ({ name: String(r[ni]), hits: +r[hi] || 0 }));
      fst.total = fst.names.reduce((a, f) => Math.max(a, f.hits), 0);
      fst.names.sort((a, b) => b.hits - a.hits || (a.name < b.name ? -1 : 1));
      el.fieldsInfo.textContent = fst.names.length + ' in ' + fmtInt(fst.total) + ' entries';
      renderFields();
      for (const f of fst.open) if (fst.names.some((x) => x.name === f)) loadTop(f);
    });
  }

  function loadTop(name) {
    if (fst.tops.has(name)) return;
    fst.tops.set(name, null); // asked for
    fieldsRequest('top 5 by (' + name + ')', (res) => {
      fst.tops.set(name, res.ok ? res.body.rows.map((r) => ({ value: r[0] == null ? '' : String(r[0]), hits: +r[r.length - 1] || 0 }))
        : { error: res.body.error || 'HTTP ' + res.status });
      renderFields();
    });
  }

  // Names the language reads as its own (level:, source:, since: …) and names it cannot parse.
  const BUILTIN = new Set(['since', 'until', 'from', 'to', 'regex', 'limit']);
  function fieldFilterable(name) {
    if (name === '_time') return false;
    if (name === '_msg' || name === 'level' || name === 'source') return true;
    return /^[A-Za-z_][A-Za-z0-9_.@-]*$/.test(name) && !BUILTIN.has(name.toLowerCase());
  }
  function quoteValue(v) { return '"' + v.replace(/[\\"]/g, '\\$&') + '"'; }
  /** The query term for name = value: level:X, "message" for _msg, name:value quoted when needed. */
  function fieldTerm(name, value) {
    if (name === '_msg') return quoteValue(value);
    if (name === 'level') return 'level:' + value;
    return name + ':' + (/^[A-Za-z0-9_.@\/+-][A-Za-z0-9_.@\/:+-]*$/.test(value) ? value : quoteValue(value));
  }
  /** Add a term to the filter part of the query (before its pipes) and run it. */
  function addTerm(term) {
    const { filter, pipes } = splitPipes(el.q.value.trim());
    let f = filter === '*' ? '' : filter;
    if (/(^|[\s()])OR([\s()]|$)/.test(f)) f = '(' + f + ')';
    if (!(' ' + f + ' ').includes(' ' + term + ' ')) f = f ? f + ' ' + term : term;
    el.q.value = f + (pipes ? ' ' + pipes : '');
    run();
  }

  function renderFields() {
    const frag = document.createDocumentFragment();
    const names = fst.names || [];
    const shown = fst.all ? names : names.slice(0, FIELDS_SHOWN);
    for (const f of shown) {
      const li = h('li', 'field');
      li.dataset.name = f.name;
      li.dataset.hits = f.hits;
      const open = fst.open.has(f.name) && f.name !== '_time';
      const head = h('button', 'fhead');
      head.type = 'button';
      head.disabled = f.name === '_time';
      head.title = f.name === '_time' ? 'Every entry has a time' : (open ? 'Hide' : 'Show') + ' the top 5 values of ' + f.name;
      head.setAttribute('aria-expanded', open ? 'true' : 'false');
      head.append(h('span', 'caret', f.name === '_time' ? '' : open ? '\u25be' : '\u25b8'), h('span', 'fname', f.name), h('span', 'fhits', fmtInt(f.hits)));
      head.addEventListener('click', () => {
        if (fst.open.has(f.name)) fst.open.delete(f.name);
        else { fst.open.add(f.name); loadTop(f.name); }
        renderFields();
      });
      li.append(head);
      if (open) li.append(renderTop(f));
      frag.append(li);
    }
    el.fields.replaceChildren(frag);
    el.fields.dataset.gen = ++fst.rendered;
    el.fieldsFoot.replaceChildren();
    if (names.length > FIELDS_SHOWN) {
      const b = h('button', 'btn-link', fst.all ? 'show the top ' + FIELDS_SHOWN : 'show all ' + names.length + ' fields');
      b.type = 'button';
      b.addEventListener('click', () => { fst.all = !fst.all; renderFields(); });
      el.fieldsFoot.append(b);
    } else if (fst.names && !names.length) {
      el.fieldsFoot.textContent = 'No fields: nothing matches.';
    }
  }

  function renderTop(f) {
    const box = h('ul', 'fvals');
    const top = fst.tops.get(f.name);
    if (top == null) { box.append(h('li', 'fnote', 'loading\u2026')); return box; }
    if (top.error) { box.append(h('li', 'fnote', top.error)); return box; }
    const can = fieldFilterable(f.name);
    for (const t of top) {
      const li = h('li', 'fval');
      li.dataset.value = t.value;
      li.dataset.hits = t.hits;
      const share = fst.total ? t.hits / fst.total : 0;
      const pct = share >= 0.995 ? '100%' : share >= 0.1 ? Math.round(share * 100) + '%' : (share * 100).toFixed(1) + '%';
      const empty = t.value === '';
      const b = h('button', 'fv', empty ? '(missing)' : t.value);
      b.type = 'button';
      b.disabled = empty || !can;
      b.title = empty ? 'Entries without ' + f.name : can ? 'Add ' + fieldTerm(f.name, t.value) + ' to the query' : t.value;
      if (!b.disabled) b.addEventListener('click', () => addTerm(fieldTerm(f.name, t.value)));
      const minus = h('button', 'fx', '\u2212');
      minus.type = 'button';
      minus.hidden = b.disabled;
      minus.title = 'Exclude: add -' + (b.disabled ? '' : fieldTerm(f.name, t.value));
      if (!b.disabled) minus.addEventListener('click', () => addTerm('-' + fieldTerm(f.name, t.value)));
      const bar = h('span', 'fbar');
      bar.style.width = Math.max(1, Math.round(share * 100)) + '%';
      const n = h('span', 'fn', fmtInt(t.hits) + ' \u00b7 ' + pct);
      n.title = t.hits + ' of ' + fst.total + ' entries';
      li.append(b, minus, n, bar);
      box.append(li);
    }
    if (!top.length) box.append(h('li', 'fnote', 'no values'));
    return box;
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
    if (x.queries_running != null) {
      const queued = x.queries_queued || 0;
      add('queries', fmtInt(x.queries_running) + (queued ? ' + ' + fmtInt(queued) + ' queued' : ''), 'queries',
        'Queries running now on the query pool (' + x.query_threads + ' threads), and waiting for a slot; since start: ' +
        fmtInt(x.queries_finished) + ' finished, ' + fmtInt(x.queries_cancelled) + ' cancelled, ' +
        fmtInt(x.queries_timed_out) + ' timed out; latency p50 \u2264 ' + x.query_p50_ms + ' ms, p99 \u2264 ' +
        x.query_p99_ms + ' ms', x.queries_timed_out ? 'bad' : '');
    }
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
  let lastPW = 0;
  new ResizeObserver(() => {
    const w = el.pchart.clientWidth;
    if (w !== lastPW) { lastPW = w; if (view.table) renderPChart(); }
  }).observe(el.pchart);
  el.pchartCol.addEventListener('change', () => { el.pchartCol.dataset.want = el.pchartCol.value; renderPChart(); });

  Object.assign(st, readHash());
  el.q.value = st.q;
  execute();
  pollStats();
  layout();
  if (!st.q) el.q.focus();
})();
