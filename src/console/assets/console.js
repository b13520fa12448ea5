// mmserve web console. Plain JS, no libraries, served under a strict CSP
// (no inline script or style, no eval). It polls GET /console/api/overview
// once a second and renders it; load/unload go through the KServe/Triton
// repository API. Every string the server sends (model names, tenant ids,
// reasons, errors) is hostile input: it reaches the page only through
// textContent, attributes set as properties, or canvas text, never as HTML.
'use strict';

(function () {
  const OVERVIEW = '/console/api/overview';
  const KEY_STORAGE = 'mmserve.console.apiKey'; // sessionStorage only
  const POLL_MS = 1000;
  const POLL_TIMEOUT_MS = 5000;
  const HISTORY = 120; // points kept per model (2 minutes at 1 s)
  const STATES = ['READY', 'LOADING', 'UNLOADING', 'UNAVAILABLE'];

  const $ = (id) => document.getElementById(id);

  const state = {
    key: null,              // the API key; mirrored in sessionStorage
    generation: 0,          // bumped on login/logout so stale answers are dropped
    timer: null,            // the pending poll's setTimeout
    pollInFlight: false,
    last: null,             // the latest overview document
    rows: new Map(),        // row key -> {tr, cells, model}
    history: new Map(),     // row key -> {rate, p50, p99, queue} arrays
    rates: new Map(),       // row key -> latest req/s
    selected: null,         // row key whose charts are shown
    firstRestarts: new Map(), // row key -> restarts when first seen on this page
    loadingSince: new Map(),  // row key -> ms when first seen LOADING
    actions: new Map(),     // model name -> {kind, pending, started, error}
    progressTimer: null,
  };

  // ---------------------------------------------------------------- DOM helpers

  // Creates an element; `text` goes in as textContent (never parsed as HTML).
  function el(tag, opts, children) {
    const node = document.createElement(tag);
    if (opts) {
      if (opts.className) node.className = opts.className;
      if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
      if (opts.title) node.title = String(opts.title);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  const td = (text, className) => el('td', {text, className});
  const setText = (id, text) => { $(id).textContent = String(text); };

  // ---------------------------------------------------------------- formatting

  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtDuration(seconds) {
    const t = Math.max(0, Math.floor(Number(seconds) || 0));
    const [d, h, m, s] = [Math.floor(t / 86400), Math.floor(t / 3600) % 24,
      Math.floor(t / 60) % 60, t % 60];
    const pad = (x) => String(x).padStart(2, '0');
    if (d > 0) return `${d}d ${pad(h)}h ${pad(m)}m`;
    return h > 0 ? `${h}h ${pad(m)}m ${pad(s)}s` : `${m}m ${pad(s)}s`;
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    return r === 0 ? '0' : r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return '–';
    if (s === 0) return '0';
    if (s < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    return s.toFixed(2) + ' s';
  }

  const fmtCount = (n) => Number(n || 0).toLocaleString('en-US');
  const fmtQuota = (v, fmt) => (v ? (fmt ? fmt(v) : String(v)) : '—'); // 0: none

  // ---------------------------------------------------------------- HTTP

  // One request; answers {status, ok, json, text}. Throws on network failure
  // or timeout (timeoutMs 0: none, for synchronous loads).
  async function request(method, path, key, body, timeoutMs) {
    const ctl = new AbortController();
    const timer = timeoutMs ? setTimeout(() => ctl.abort(), timeoutMs) : null;
    const headers = {};
    if (key) headers.Authorization = 'Bearer ' + key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      const res = await fetch(path, {method, headers, body, cache: 'no-store',
        credentials: 'omit', signal: ctl.signal});
      const text = await res.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
      return {status: res.status, ok: res.ok, json, text};
    } catch (e) {
      throw new Error(e.name === 'AbortError' ? 'no answer within ' + timeoutMs / 1000 + ' s'
        : (e.message || 'network error'));
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  // The server's {"error": msg}, else a generic line.
  function errorOf(res) {
    if (res.json && typeof res.json.error === 'string' && res.json.error) return res.json.error;
    const snippet = (res.text || '').slice(0, 200);
    return 'HTTP ' + res.status + (snippet ? ': ' + snippet : '');
  }

  function authError(res) {
    const msg = errorOf(res);
    if (res.status !== 403) return 'Not accepted (401): ' + msg;
    return 'Forbidden (403): ' + msg +
      (/admin/i.test(msg) ? '' : '\nThe console is for admin tenants; this key is not an admin\'s.');
  }

  // ---------------------------------------------------------------- login / logout

  function showLogin(message) {
    for (const id of ['app', 'server-info', 'logout', 'conn', 'conn-lost']) $(id).hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('login-submit').disabled = false;
    $('login-key').focus();
  }

  // Asks for one overview with `key` (null: none) and enters the console on
  // 200; else shows the login form, with the server's reason for a key.
  async function probe(key) {
    const gen = ++state.generation;
    $('login-submit').disabled = true;
    let res;
    try {
      res = await request('GET', OVERVIEW, key, undefined, POLL_TIMEOUT_MS);
    } catch (e) {
      if (gen === state.generation) showLogin('Cannot reach the server: ' + e.message);
      return;
    }
    if (gen !== state.generation) return;
    if (res.status === 200 && res.json) {
      state.key = key;
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      enterConsole(res.json);
    } else if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(KEY_STORAGE);
      state.key = null;
      showLogin(key ? authError(res) : '');
    } else {
      showLogin('The server answered ' + errorOf(res));
    }
  }

  function onLoginSubmit(event) {
    event.preventDefault();
    const input = $('login-key');
    const key = input.value.trim();
    input.value = '';
    if (!key) {
      showLogin('Enter an API key.');
      return;
    }
    probe(key);
  }

  // Forgets the key and everything shown, and goes back to the login form.
  function logout(message) {
    state.generation++;
    clearTimeout(state.timer);
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    resetData();
    showLogin(message);
  }

  function resetData() {
    state.last = null;
    state.selected = null;
    for (const map of [state.rows, state.history, state.rates, state.firstRestarts,
      state.loadingSince, state.actions]) map.clear();
    for (const id of ['models-body', 'tenants-body', 'workers-body', 'drift-body', 'eviction-order']) {
      $(id).replaceChildren();
    }
  }

  // ---------------------------------------------------------------- polling

  function enterConsole(doc) {
    $('login').hidden = true;
    for (const id of ['app', 'server-info', 'conn']) $(id).hidden = false;
    $('logout').hidden = !(doc.server && doc.server.tenants);
    setConnection(true);
    ingest(doc);
    schedulePoll();
  }

  // The next poll starts a second after this one finished: never two at once.
  function schedulePoll() {
    clearTimeout(state.timer);
    const gen = state.generation;
    state.timer = setTimeout(() => poll(gen), POLL_MS);
  }

  // Polls now (after an action) unless a poll is already on its way.
  function pollNow() {
    if (state.pollInFlight) return;
    clearTimeout(state.timer);
    poll(state.generation);
  }

  async function poll(gen) {
    if (gen !== state.generation) return;
    state.pollInFlight = true;
    let res = null;
    let failure = '';
    try {
      res = await request('GET', OVERVIEW, state.key, undefined, POLL_TIMEOUT_MS);
    } catch (e) {
      failure = e.message;
    } finally {
      state.pollInFlight = false;
    }
    if (gen !== state.generation) return;
    if (res && (res.status === 401 || res.status === 403)) {
      logout(authError(res));
      return;
    }
    if (res && res.status === 200 && res.json) {
      setConnection(true);
      ingest(res.json);
    } else {
      setConnection(false, failure ||
        'HTTP ' + res.status + (res.json && res.json.error ? ': ' + res.json.error : ''));
    }
    schedulePoll();
  }

  function setConnection(ok, detail) {
    const conn = $('conn');
    conn.textContent = ok ? 'live' : 'connection lost';
    conn.classList.toggle('lost', !ok);
    $('conn-lost').hidden = ok;
    $('conn-lost-detail').textContent = ok ? '' : '(' + detail + ')';
  }

  // ---------------------------------------------------------------- metrics

  // Stable keys for the rows: name and repository, plus the version where a
  // model is listed once per version.
  function rowKeys(models) {
    const base = models.map((m) => m.name + '\u0001' + m.repository);
    const count = new Map();
    for (const k of base) count.set(k, (count.get(k) || 0) + 1);
    return base.map((k, i) => (count.get(k) > 1 ? k + '\u0001' + models[i].version : k));
  }

  // histogram_quantile over one interval's bucket counts: linear within the
  // bucket; the +Inf bucket answers the highest finite bound. null: no data.
  function quantile(q, counts, bounds) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total <= 0) return null;
    const rank = q * total;
    let cum = 0;
    for (let i = 0; i < counts.length; i++) {
      const before = cum;
      cum += counts[i];
      if (cum >= rank && counts[i] > 0) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        const lower = i === 0 ? 0 : bounds[i - 1];
        const upper = bounds[i];
        return lower + (upper - lower) * ((rank - before) / counts[i]);
      }
    }
    return bounds[bounds.length - 1];
  }

  // Counter deltas; a counter that went down was reset: its delta is its value.
  function deltas(now, before) {
    const d = now.map((v, i) => v - ((before && before[i]) || 0));
    return d.some((v) => v < 0) ? now.slice() : d;
  }

  // One interval's numbers for a model, from two snapshots dt seconds apart.
  function intervalMetrics(m, prev, dt, bounds) {
    const s = m.stats;
    const p = prev && prev.stats;
    let rate = 0;
    let p50 = null;
    let p99 = null;
    if (s) {
      const total = (s.success || 0) + (s.failures || 0);
      const before = p ? (p.success || 0) + (p.failures || 0) : 0;
      rate = Math.max(0, (total >= before ? total - before : total) / dt);
      const counts = deltas(s.latency.counts, p && p.latency.counts);
      p50 = quantile(0.5, counts, bounds);
      p99 = quantile(0.99, counts, bounds);
    }
    return {rate, p50, p99, queue: m.queued || 0};
  }

  function pushPoint(key, point) {
    if (!state.history.has(key)) state.history.set(key, {rate: [], p50: [], p99: [], queue: []});
    const h = state.history.get(key);
    for (const name of Object.keys(h)) {
      h[name].push(point[name]);
      if (h[name].length > HISTORY) h[name].shift();
    }
  }

  // Adds one point per model from the difference with the previous snapshot.
  function updateHistory(doc, prevDoc) {
    if (!prevDoc) return;
    const dt = (doc.server.time_ms - prevDoc.server.time_ms) / 1000;
    if (!(dt > 0)) return;
    const prevByKey = new Map();
    const prevKeys = rowKeys(prevDoc.models);
    prevDoc.models.forEach((m, i) => prevByKey.set(prevKeys[i], m));
    const keys = rowKeys(doc.models);
    doc.models.forEach((m, i) => {
      if (!prevByKey.has(keys[i])) return;
      const point = intervalMetrics(m, prevByKey.get(keys[i]), dt, doc.latency_bounds_s);
      state.rates.set(keys[i], point.rate);
      pushPoint(keys[i], point);
    });
  }

  // ---------------------------------------------------------------- rendering

  function ingest(doc) {
    updateHistory(doc, state.last);
    state.last = doc;
    renderHeader(doc);
    renderModels(doc);
    renderCharts();
    renderMemory(doc.memory || {});
    renderTenants(doc.tenants || []);
    renderWorkers(doc);
    renderDrift(doc.models);
  }

  function renderHeader(doc) {
    const s = doc.server || {};
    setText('server-name', s.name || '');
    setText('server-version', s.version || '');
    setText('server-uptime', fmtDuration(s.uptime_s));
    setText('server-mode', s.control_mode || '');
    const slots = doc.slots || {};
    setText('slots-busy', `${slots.busy || 0}/${slots.size || 0}`);
    setText('slots-waiting', slots.waiting || 0);
    const pct = slots.size ? Math.min(100, 100 * (slots.busy || 0) / slots.size) : 0;
    $('slots-fill').style.width = pct + '%';
  }

  // ---- models table: rows are kept and updated in place (clicks never hit a
  // replaced element).

  function createRow(key, m) {
    const tr = el('tr', {className: 'model-row'});
    tr.dataset.model = m.name;
    const cells = {
      name: el('span', {className: 'model-name'}), pin: el('span', {className: 'pin', text: 'pinned'}),
      version: td('', 'num'), stateCell: el('td'), badge: el('span', {className: 'badge'}),
      owner: td(''), isolation: td(''), memory: td('', 'num'), instances: td('', 'num'),
      queue: td('', 'num'), rate: td('', 'num'), reason: td('', 'reason'),
      load: el('button', {className: 'btn load', text: 'Load'}),
      unload: el('button', {className: 'btn unload', text: 'Unload'}),
      error: el('div', {className: 'row-error'}),
      progress: null, // the .load-progress element while loading
    };
    cells.load.type = 'button';
    cells.unload.type = 'button';
    cells.error.hidden = true;
    cells.stateCell.appendChild(cells.badge);
    tr.append(el('td', null, [cells.name, cells.pin]), cells.version, cells.stateCell,
      cells.owner, cells.isolation, cells.memory, cells.instances, cells.queue, cells.rate,
      cells.reason, el('td', {className: 'actions'}, [cells.load, cells.unload, cells.error]));
    const row = {key, tr, cells, model: m};
    tr.addEventListener('click', () => select(key));
    cells.load.addEventListener('click', (e) => { e.stopPropagation(); runAction(row, 'load'); });
    cells.unload.addEventListener('click', (e) => { e.stopPropagation(); runAction(row, 'unload'); });
    return row;
  }

  function renderModels(doc) {
    const tbody = $('models-body');
    const keys = rowKeys(doc.models);
    const seen = new Set(keys);
    for (const [key, row] of state.rows) {
      if (!seen.has(key)) { row.tr.remove(); state.rows.delete(key); }
    }
    let cursor = tbody.firstChild;
    doc.models.forEach((m, i) => {
      let row = state.rows.get(keys[i]);
      if (!row) {
        row = createRow(keys[i], m);
        state.rows.set(keys[i], row);
      }
      if (row.tr === cursor) cursor = cursor.nextSibling;
      else tbody.insertBefore(row.tr, cursor);
      row.model = m;
      updateRow(row);
    });
    $('models-empty').hidden = doc.models.length > 0;
    const ready = doc.models.filter((m) => m.state === 'READY').length;
    setText('models-summary', `${doc.models.length} listed · ${ready} ready · ` +
      `updated ${new Date(doc.server.time_ms).toLocaleTimeString()}`);
    if (!state.rows.has(state.selected)) state.selected = keys.length ? keys[0] : null;
    for (const row of state.rows.values()) row.tr.classList.toggle('selected', row.key === state.selected);
  }

  function updateRow(row) {
    const m = row.model;
    const c = row.cells;
    const st = STATES.includes(m.state) ? m.state : 'UNAVAILABLE';
    const rate = state.rates.get(row.key) || 0;
    row.tr.dataset.state = st;
    row.tr.dataset.rate = String(rate);
    c.name.textContent = m.name;
    c.name.title = `${m.name} (${m.platform || 'unknown platform'}) in ${m.repository}`;
    c.pin.hidden = !m.pinned;
    c.version.textContent = m.version ? String(m.version) : '—';
    c.badge.className = 'badge ' + st;
    c.badge.textContent = st;
    c.owner.textContent = m.tenant || '—';
    c.isolation.textContent = m.isolation || '—';
    c.memory.textContent = m.memory_bytes ? fmtBytes(m.memory_bytes) : '—';
    c.instances.textContent = String(m.instances || 0);
    c.queue.textContent = `${m.queued || 0} / ${m.executing || 0}`;
    c.rate.textContent = fmtRate(rate);
    c.reason.textContent = st === 'READY' ? '' : (m.reason || '');

    if (st === 'LOADING') {
      if (!state.loadingSince.has(row.key)) state.loadingSince.set(row.key, performance.now());
    } else {
      state.loadingSince.delete(row.key);
    }
    updateActions(row, st);
    updateProgress(row);
  }

  function updateActions(row, st) {
    const c = row.cells;
    const action = state.actions.get(row.model.name);
    const busy = (action && action.pending) || st === 'LOADING' || st === 'UNLOADING';
    c.load.textContent = st === 'READY' ? 'Reload' : 'Load';
    c.load.disabled = busy;
    c.unload.disabled = busy || st !== 'READY';
    const error = action && !action.pending ? action.error : '';
    c.error.textContent = error || '';
    c.error.hidden = !error;
  }

  // The progress bar while a model loads: elapsed time against its last load's
  // duration (at most 95% until READY), indeterminate when that is unknown.
  function updateProgress(row) {
    const c = row.cells;
    const action = state.actions.get(row.model.name);
    const posting = action && action.pending && action.kind === 'load';
    const loading = row.model.state === 'LOADING' || posting;
    if (!loading) {
      if (c.progress) { c.progress.remove(); c.progress = null; }
      return;
    }
    if (!c.progress) {
      c.progress = el('div', {className: 'load-progress'}, [el('span', {className: 'fill'})]);
      c.progress.setAttribute('role', 'progressbar');
      c.stateCell.appendChild(c.progress);
    }
    const since = posting ? action.started
      : (state.loadingSince.get(row.key) || performance.now());
    const elapsed = (performance.now() - since) / 1000;
    const expected = row.model.stats && row.model.stats.last_load_s;
    const fill = c.progress.firstChild;
    if (expected > 0) {
      const fraction = Math.min(0.95, elapsed / expected);
      c.progress.classList.remove('indeterminate');
      fill.style.width = (fraction * 100).toFixed(1) + '%';
      c.progress.setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
      c.progress.title = `loading: ${elapsed.toFixed(1)} s of about ${expected.toFixed(1)} s`;
    } else {
      c.progress.classList.add('indeterminate');
      fill.style.width = '';
      c.progress.removeAttribute('aria-valuenow');
      c.progress.title = `loading: ${elapsed.toFixed(1)} s`;
    }
    ensureProgressTicker();
  }

  // Moves the progress bars between polls; stops when none is left.
  function ensureProgressTicker() {
    if (state.progressTimer) return;
    state.progressTimer = setInterval(() => {
      let any = false;
      for (const row of state.rows.values()) {
        if (row.cells.progress) { updateProgress(row); any = true; }
      }
      if (!any) { clearInterval(state.progressTimer); state.progressTimer = null; }
    }, 250);
  }

  // Load or unload: the POST returns when it finished (a load may take
  // seconds); polling goes on meanwhile and shows the state as it changes.
  async function runAction(row, kind) {
    const name = row.model.name;
    const current = state.actions.get(name);
    if (current && current.pending) return;
    const gen = state.generation;
    state.actions.set(name, {kind, pending: true, started: performance.now(), error: ''});
    refreshRows();
    const path = `/v2/repository/models/${encodeURIComponent(name)}/${kind}`;
    let error = '';
    try {
      const res = await request('POST', path, state.key, '{}', 0);
      if (!res.ok) error = `${kind} failed: ${errorOf(res)}`;
    } catch (e) {
      error = `${kind} failed: ${e.message}`;
    }
    if (gen !== state.generation) return;
    state.actions.set(name, {kind, pending: false, error});
    refreshRows();
    pollNow();
  }

  function refreshRows() {
    for (const row of state.rows.values()) updateRow(row);
  }

  function select(key) {
    state.selected = key;
    for (const row of state.rows.values()) row.tr.classList.toggle('selected', row.key === key);
    renderCharts();
  }

  // ---- charts

  function renderCharts() {
    const box = $('charts');
    const row = state.rows.get(state.selected);
    const h = state.history.get(state.selected) || {rate: [], p50: [], p99: [], queue: []};
    const lastRate = h.rate.length ? h.rate[h.rate.length - 1] : 0;
    box.dataset.model = row ? row.model.name : '';
    box.dataset.points = String(h.rate.length);
    box.dataset.lastRate = String(lastRate);
    setText('charts-title', row ? `${row.model.name} v${row.model.version}` : 'no model selected');
    const last = (a) => (a.length ? a[a.length - 1] : null);
    setText('now-rate', h.rate.length ? fmtRate(lastRate) + ' /s' : '');
    setText('now-latency', h.p50.length && last(h.p50) !== null
      ? `${fmtSeconds(last(h.p50))} · ${fmtSeconds(last(h.p99))}` : '');
    setText('now-queue', h.queue.length ? String(last(h.queue)) : '');
    drawChart($('chart-rate'), [{values: h.rate, color: '#16a34a'}], fmtRate);
    drawChart($('chart-latency'), [{values: h.p50, color: '#2563eb'},
      {values: h.p99, color: '#db2777'}], fmtSeconds);
    drawChart($('chart-queue'), [{values: h.queue, color: '#d97706'}], (v) => String(Math.round(v)), true);
  }

  // A round axis maximum at or above v: 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const f of [1, 2, 5, 10]) if (f * p >= v) return f * p;
    return 10 * p;
  }

  // A line chart of the series (arrays of numbers or null for gaps), newest
  // point at the right edge, HISTORY points wide. `counts`: whole numbers
  // (the axis is a multiple of 4, so that the 4 grid steps are whole too).
  function drawChart(canvas, series, fmt, counts) {
    // Sized to its CSS box in device pixels (sharp on high-DPI screens).
    const ratio = window.devicePixelRatio || 1;
    const [cssW, cssH] = [canvas.clientWidth || 400, canvas.clientHeight || 160];
    const [devW, devH] = [Math.round(cssW * ratio), Math.round(cssH * ratio)];
    if (canvas.width !== devW || canvas.height !== devH) [canvas.width, canvas.height] = [devW, devH];
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const pad = {left: 52, right: 8, top: 8, bottom: 16};
    const w = cssW - pad.left - pad.right;
    const hgt = cssH - pad.top - pad.bottom;
    const values = series.flatMap((s) => s.values).filter((v) => v !== null);
    const top = Math.max(0, ...values);
    const max = counts ? Math.max(4, Math.ceil(top / 4) * 4) : niceMax(top);
    const label = (text, x, y, align, baseline) => {
      ctx.textAlign = align;
      ctx.textBaseline = baseline;
      ctx.fillText(text, x, y);
    };
    // Grid lines with their y labels, then the time axis.
    ctx.font = '10px system-ui, sans-serif';
    ctx.fillStyle = '#64748b';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(pad.top + hgt - (hgt * i) / 4) + 0.5;
      ctx.strokeStyle = i === 0 ? '#cbd5e1' : '#eef2f7';
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + w, y);
      ctx.stroke();
      label(fmt((max * i) / 4), pad.left - 6, y, 'right', 'middle');
    }
    label('−2 min', pad.left, cssH - 3, 'left', 'alphabetic');
    label('now', pad.left + w, cssH - 3, 'right', 'alphabetic');
    if (!series.some((s) => s.values.length)) {
      label('waiting for data…', pad.left + w / 2, pad.top + hgt / 2, 'center', 'middle');
      return;
    }
    const x = (i, n) => pad.left + (w * (HISTORY - n + i)) / (HISTORY - 1);
    const y = (v) => pad.top + hgt - (hgt * v) / max;
    for (const s of series) drawLine(ctx, s, x, y);
  }

  function drawLine(ctx, s, x, y) {
    const n = s.values.length;
    ctx.strokeStyle = ctx.fillStyle = s.color;
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    let open = false;
    s.values.forEach((v, i) => {
      if (v === null) { open = false; return; }
      if (open) ctx.lineTo(x(i, n), y(v));
      else ctx.moveTo(x(i, n), y(v));
      open = true;
    });
    ctx.stroke();
    const lastV = s.values[n - 1];
    if (lastV !== null && lastV !== undefined) {
      ctx.beginPath();
      ctx.arc(x(n - 1, n), y(lastV), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // ---- memory

  function renderMemory(mem) {
    const budget = mem.budget || 0;
    const loaded = mem.loaded || 0;
    const pinned = mem.pinned || 0;
    const numbers = $('mem-numbers');
    const strong = (t) => el('strong', {text: t});
    numbers.replaceChildren(
      document.createTextNode('Loaded '), strong(fmtBytes(loaded)),
      document.createTextNode(budget ? ' of ' : ' · budget '),
      strong(budget ? fmtBytes(budget) : 'unlimited'),
      document.createTextNode(budget ? ` (${(100 * loaded / budget).toFixed(0)}%)` : ''),
      el('br'),
      document.createTextNode('pinned '), strong(fmtBytes(pinned)),
      document.createTextNode(' · idle unpinned copies '), strong(String(mem.evictable || 0)));
    const scale = budget || loaded || 1;
    const pinnedPct = Math.min(100, (100 * pinned) / scale);
    const restPct = Math.min(100 - pinnedPct, (100 * Math.max(0, loaded - pinned)) / scale);
    $('mem-pinned').style.width = pinnedPct + '%';
    $('mem-loaded').style.width = restPct + '%';
    $('mem-bar').classList.toggle('over', budget > 0 && loaded > budget);
    $('mem-bar').title = budget ? `${fmtBytes(loaded)} of ${fmtBytes(budget)}` : 'no budget';
    const order = mem.eviction_order || [];
    $('eviction-order').replaceChildren(...order.map((e) => el('li', null, [
      el('span', {className: 'mono', text: e.model}),
      el('span', {className: 'muted', text: ` v${e.version}` + (e.tenant ? ` · ${e.tenant}` : '')}),
      document.createTextNode(` · ${fmtBytes(e.bytes)}`)])));
    $('eviction-empty').hidden = order.length > 0;
  }

  // ---- tenants

  function renderTenants(tenants) {
    $('tenants-body').replaceChildren(...tenants.map((t) => {
      const q = t.quotas || {};
      const role = el('td', null, [el('span', {className: 'badge role-' +
        (t.role === 'admin' ? 'admin' : 'user'), text: t.role})]);
      const rate = q.requests_per_second
        ? `${q.requests_per_second}/s` + (q.burst ? ` (burst ${q.burst})` : '') : '—';
      return el('tr', null, [
        td(t.id, 'mono'), role, td(t.weight, 'num'),
        td(`${t.in_flight || 0} / ${fmtQuota(q.max_concurrency)}`, 'num'),
        td(fmtCount(t.requests), 'num'), td(fmtCount(t.failures), 'num'),
        td(fmtCount(t.refused), 'num'), td((t.compute_s || 0).toFixed(2), 'num'),
        td(`${fmtBytes(t.bytes_in)} / ${fmtBytes(t.bytes_out)}`, 'num'), td(rate, 'num'),
        td(fmtQuota(q.max_loaded_models), 'num'), td(fmtQuota(q.memory_bytes, fmtBytes), 'num')]);
    }));
    $('tenants-empty').hidden = tenants.length > 0;
  }

  // ---- workers: process-isolated models and any that restarted; a restart
  // count that grew since this page loaded is highlighted.

  function renderWorkers(doc) {
    const keys = rowKeys(doc.models);
    const rows = [];
    doc.models.forEach((m, i) => {
      const restarts = m.restarts || 0;
      if (!state.firstRestarts.has(keys[i])) state.firstRestarts.set(keys[i], restarts);
      if (m.isolation !== 'process' && restarts === 0) return;
      const grew = restarts > state.firstRestarts.get(keys[i]);
      const tr = el('tr', null, [
        td(`${m.name} v${m.version}`, 'mono'), td(m.isolation || '—'), td(m.state),
        td(String(restarts), 'num' + (grew ? ' grew' : '')),
        td(m.last_failure || '—', 'failure')]);
      if (grew) tr.title = `restarts grew from ${state.firstRestarts.get(keys[i])} since the page loaded`;
      rows.push(tr);
    });
    $('workers-body').replaceChildren(...rows);
    $('workers-empty').hidden = rows.length > 0;
  }

  // ---- drift

  function renderDrift(models) {
    const rows = [];
    for (const m of models) {
      for (const d of m.drift || []) {
        const tr = el('tr', {className: d.alerting ? 'alerting' : ''}, [
          td(m.name, 'mono'), td(d.input, 'mono'), td(d.feature, 'num'),
          td(d.psi === null || d.psi === undefined ? '—' : Number(d.psi).toFixed(3), 'num'),
          td(fmtCount(d.rows), 'num'),
          el('td', null, [el('span', {className: 'badge ' + (d.alerting ? 'alert'
            : d.psi === null ? 'UNAVAILABLE' : 'fine'),
          text: d.alerting ? 'ALERT' : (d.psi === null ? 'warming up' : 'ok')})])]);
        rows.push(tr);
      }
    }
    $('drift-body').replaceChildren(...rows);
    $('drift-empty').hidden = rows.length > 0;
  }

  // ---------------------------------------------------------------- start

  function start() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('logout').addEventListener('click', () => logout(''));
    window.addEventListener('resize', () => { if (state.last) renderCharts(); });
    // A key from earlier in this tab's session, else none (an open server
    // answers without one; a closed one answers 401 and the form shows).
    probe(sessionStorage.getItem(KEY_STORAGE));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
