'use strict';
// loopd's dashboard: a board of every run, a page per run (output, timeline, review).
// Everything comes from the API under the same guard as loopctl: same-origin fetches, JSON
// bodies for every state change, live updates from the SSE streams (nothing polls). Data is
// put into the page as text (textContent), never as markup.

// ---------------------------------------------------------------------------------------------
// Small helpers.

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELED']);
const STATUSES = ['PENDING', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELED'];

function money(usd) {
  if (!usd) return '$0';
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

function count(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function basename(path) {
  const parts = String(path || '').split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path || '');
}

function elapsed(run) {
  const end = TERMINAL.has(run.status) ? run.updated_ms : Date.now();
  return end - run.created_ms;
}

/// The reason a run does not move, with a countdown to its end when known.
function waitingText(run) {
  const w = run.waiting;
  if (!w) return '';
  let text = w.reason || w.code;
  if (w.until_ms) text += ` — ${duration(w.until_ms - Date.now())} left`;
  return text;
}

/// One account's state in words, as `loopctl accounts` gives it.
function accountState(account) {
  const parts = [];
  if (account.limited_until_ms) {
    let held = `held ${duration(account.limited_until_ms - Date.now())} more (${account.limit_reason || 'usage limit'})`;
    if (account.probe) held += `; run ${account.probe.slice(0, 8)} calls first`;
    parts.push(held);
  } else {
    parts.push('ok');
  }
  if (account.window_utilization !== null && account.window_utilization !== undefined) {
    parts.push(`${account.window || 'window'} ${Math.round(account.window_utilization * 100)}% used (${account.window_status || 'allowed'})`);
  }
  if (account.concurrency) {
    const line = account.turn_queue.length;
    parts.push(`${account.calls_in_flight}/${account.concurrency} calls${line ? `, ${line} waiting for a turn` : ''}`);
  }
  return parts.join('; ');
}

function statusBadge(status) {
  return h('span', { class: `status s-${status}`, text: status });
}

function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

function debounce(fn, wait) {
  const timers = new Map();
  return (key) => {
    if (timers.has(key)) return;
    timers.set(key, setTimeout(() => { timers.delete(key); fn(key); }, wait));
  };
}

// ---------------------------------------------------------------------------------------------
// The API.

class ApiFailure extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// One API call. A body is always sent as JSON: the guard refuses any other.
async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign('/login');
    throw new ApiFailure(401, 'log in first', 'unauthorized');
  }
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: text }; }
  if (!response.ok) throw new ApiFailure(response.status, data.error || response.statusText, data.code);
  return data;
}

/// Reads one server-sent event stream until it ends, calling `onFrame` for each frame.
async function readStream(url, lastId, onFrame, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (lastId) headers['Last-Event-ID'] = lastId;
  const response = await fetch(url, { headers, signal, credentials: 'same-origin' });
  if (response.status === 401) {
    location.assign('/login');
    throw new ApiFailure(401, 'log in first', 'unauthorized');
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiFailure(response.status, body.error || response.statusText, body.code);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let frame = { id: null, event: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (frame.id !== null || frame.data.length) {
          onFrame({ id: frame.id, event: frame.event || 'message', data: frame.data.join('\n') });
        }
        frame = { id: null, event: null, data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? '' : line.slice(colon + 1);
      if (text.startsWith(' ')) text = text.slice(1);
      if (field === 'id') frame.id = text;
      else if (field === 'event') frame.event = text;
      else if (field === 'data') frame.data.push(text);
    }
  }
}

/// Follows a stream across dropped connections, resuming after the last frame's id (the
/// daemon's `Last-Event-ID`: no gap, no repeat). `onEnd` is called when the stream ends by
/// itself; the follower stops when `signal` aborts.
async function follow({ url, lastId, onFrame, onEnd, signal, live }) {
  let position = lastId || null;
  let backoff = 500;
  while (!signal.aborted) {
    try {
      await readStream(url(), position, (frame) => {
        if (frame.id !== null) position = frame.id;
        backoff = 500;
        onFrame(frame);
      }, signal);
      if (signal.aborted) return;
      if (onEnd) { onEnd(position); return; }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      if (error instanceof ApiFailure && error.status < 500) { if (onEnd) onEnd(position, error); return; }
      setLive(false);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
    if (live) setLive(true);
  }
}

/// The header's word on the page's stream: live, reconnecting, or nothing (a page without one).
function setLive(on) {
  const el = document.getElementById('live');
  el.textContent = on === null ? '' : on ? 'live' : 'reconnecting…';
  el.classList.toggle('on', on === true);
}

// ---------------------------------------------------------------------------------------------
// Views. Each view owns an AbortController: leaving it closes its streams.

let current = null;
const view = () => document.getElementById('view');

function route() {
  if (current) current.abort();
  current = new AbortController();
  const hash = location.hash.replace(/^#/, '') || '/';
  const match = hash.match(/^\/runs\/([0-9a-f-]{36})(?:\/(output|plan|verification|timeline|review|postmortem))?$/);
  const nav = (name) => {
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  };
  window.scrollTo(0, 0);
  setLive(null);
  if (match) {
    nav(null);
    runPage(match[1], match[2] || 'output', current.signal);
  } else if (hash === '/new') {
    nav('new');
    newRun(current.signal);
  } else if (hash === '/insight') {
    nav('insight');
    insight(current.signal);
  } else {
    nav('board');
    board(current.signal);
  }
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);

// Elapsed times and countdowns tick here, on the page, without asking the daemon.
const tickers = new Set();
setInterval(() => { for (const tick of tickers) tick(); }, 1000);

// ---------------------------------------------------------------------------------------------
// The board.

function board(signal) {
  const runs = new Map();
  const rows = new Map();
  const filters = { status: '', workspace: '' };
  const root = view();
  root.replaceChildren();
  document.title = 'loopd — runs';

  const statusSelect = h('select', { id: 'filter-status', 'aria-label': 'Status' },
    h('option', { value: '', text: 'every status' }),
    STATUSES.map((s) => h('option', { value: s, text: s })));
  const workspaceSelect = h('select', { id: 'filter-workspace', 'aria-label': 'Workspace' },
    h('option', { value: '', text: 'every workspace' }));
  statusSelect.addEventListener('change', () => { filters.status = statusSelect.value; applyFilters(); });
  workspaceSelect.addEventListener('change', () => { filters.workspace = workspaceSelect.value; applyFilters(); });
  const counts = h('span', { class: 'note grow', id: 'run-count' });
  const queue = h('p', { class: 'note queue', id: 'queue', 'aria-live': 'polite' });
  const body = h('tbody', { id: 'runs' });
  const empty = h('p', { class: 'empty', id: 'no-runs', text: 'No runs yet. Start one with loopctl run.' });
  const accountRows = h('tbody', { id: 'accounts' });
  const accounts = h('section', { id: 'accounts-section', hidden: true },
    h('h2', { text: 'Accounts' }),
    h('table', { class: 'runs accounts' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-account', scope: 'col', text: 'Account' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Runs' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Calls' }),
        h('th', { class: 'c-cost num', scope: 'col', text: 'Today' }),
        h('th', { class: 'c-cost num', scope: 'col', text: 'Month' }),
        h('th', { class: 'c-note', scope: 'col', text: 'State' }))),
      accountRows));
  root.append(
    h('h1', { text: 'Runs' }),
    h('div', { class: 'toolbar' },
      h('label', { for: 'filter-status', text: 'Status' }), statusSelect,
      h('label', { for: 'filter-workspace', text: 'Workspace' }), workspaceSelect, counts),
    queue,
    h('table', { class: 'runs' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-name', scope: 'col', text: 'Run' }),
        h('th', { class: 'c-ws', scope: 'col', text: 'Workspace' }),
        h('th', { class: 'c-status', scope: 'col', text: 'Status' }),
        h('th', { class: 'c-phase', scope: 'col', text: 'Phase' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Iter' }),
        h('th', { class: 'c-tasks', scope: 'col', text: 'Tasks' }),
        h('th', { class: 'c-cost num', scope: 'col', text: 'Cost' }),
        h('th', { class: 'c-time num', scope: 'col', text: 'Elapsed' }),
        h('th', { class: 'c-note', scope: 'col', text: 'Waiting for' }))),
      body),
    empty,
    accounts);

  function visible(run) {
    return (!filters.status || run.status === filters.status)
      && (!filters.workspace || run.workspace_root === filters.workspace);
  }

  function applyFilters() {
    let shown = 0;
    for (const [id, row] of rows) {
      const on = visible(runs.get(id));
      row.hidden = !on;
      if (on) shown += 1;
    }
    counts.textContent = `${shown} of ${runs.size} runs`;
    empty.hidden = shown > 0;
    showQueue();
  }

  // The queue: why each pending run waits, oldest first (the order they are claimed in FIFO).
  function showQueue() {
    const pending = [...runs.values()].filter((r) => r.status === 'PENDING').sort((a, b) => a.created_ms - b.created_ms);
    queue.textContent = pending.length
      ? `Queue: ${pending.map((r) => `${r.name} — ${r.waiting ? r.waiting.reason : 'about to start'}`).join(' · ')}`
      : 'Queue: empty';
    queue.title = queue.textContent;
  }

  function workspaces() {
    const known = new Set([...workspaceSelect.options].map((o) => o.value));
    for (const run of runs.values()) {
      if (!known.has(run.workspace_root)) {
        known.add(run.workspace_root);
        workspaceSelect.append(h('option', { value: run.workspace_root, text: run.workspace_root }));
      }
    }
  }

  function fill(row, run) {
    const cells = row.cells;
    const link = cells[0].firstChild;
    link.textContent = run.name || run.id.slice(0, 8);
    link.title = `${run.name} (${run.id})`;
    cells[1].textContent = basename(run.workspace_root);
    cells[1].title = run.workspace_root;
    cells[2].replaceChildren(statusBadge(run.status));
    const step = run.current_step;
    cells[3].textContent = step ? step.phase : (TERMINAL.has(run.status) ? (run.exit_reason || '') : '—');
    cells[4].textContent = run.iteration || '—';
    const fillBar = cells[5].querySelector('.fill');
    const pct = run.tasks_total ? Math.round((100 * run.tasks_done) / run.tasks_total) : 0;
    fillBar.style.width = `${pct}%`;
    cells[5].querySelector('.label').textContent = `${run.tasks_done}/${run.tasks_total}`;
    cells[5].querySelector('.track').setAttribute('aria-valuenow', String(pct));
    cells[6].textContent = money(run.cost_usd);
    cells[7].textContent = duration(elapsed(run));
    cells[8].textContent = waitingText(run);
    cells[8].title = cells[8].textContent;
    row.dataset.status = run.status;
  }

  function upsert(run) {
    runs.set(run.id, run);
    let row = rows.get(run.id);
    if (!row) {
      row = h('tr', { 'data-run': run.id },
        h('td', { class: 'c-name' }, h('a', { href: `#/runs/${run.id}` })),
        h('td', { class: 'c-ws' }),
        h('td', { class: 'c-status' }),
        h('td', { class: 'c-phase' }),
        h('td', { class: 'c-iter num' }),
        h('td', { class: 'c-tasks' }, h('span', { class: 'bar' },
          h('span', { class: 'track', role: 'progressbar', 'aria-label': 'tasks done', 'aria-valuemin': '0', 'aria-valuemax': '100' },
            h('span', { class: 'fill' })),
          h('span', { class: 'label' }))),
        h('td', { class: 'c-cost num' }),
        h('td', { class: 'c-time num' }),
        h('td', { class: 'c-note waiting' }));
      rows.set(run.id, row);
      // Newest first, as GET /runs answers.
      const later = [...rows.entries()]
        .filter(([id]) => id !== run.id && runs.get(id).created_ms < run.created_ms)
        .sort((a, b) => runs.get(b[0]).created_ms - runs.get(a[0]).created_ms)[0];
      if (later) body.insertBefore(row, later[1]); else body.append(row);
      workspaces();
    }
    fill(row, run);
    applyFilters();
  }

  // The accounts the runs' calls count against: their limits, reserve window, turns and spend
  // (GET /accounts), read again as the runs' events arrive.
  const showAccounts = debounce(async () => {
    let answer;
    try {
      answer = await api('GET', '/accounts');
    } catch (error) {
      if (error.status !== 401) console.warn('accounts', error);
      return;
    }
    if (signal.aborted) return;
    accountRows.replaceChildren(...answer.accounts.map((account) => {
      const state = accountState(account);
      return h('tr', { 'data-account': account.account },
        h('td', { class: 'c-account', title: account.account, text: account.account }),
        h('td', { class: 'c-iter num', text: String(account.runs.length) }),
        h('td', { class: 'c-iter num', text: count(account.calls) }),
        h('td', { class: 'c-cost num', text: money(account.spent_day_usd) }),
        h('td', { class: 'c-cost num', text: money(account.spent_month_usd) }),
        h('td', { class: 'c-note waiting', title: state, text: state }));
    }));
    accounts.hidden = answer.accounts.length === 0;
  }, 500);
  showAccounts('all');

  const refresh = debounce(async (id) => {
    try {
      const { run } = await api('GET', `/runs/${id}`);
      if (!signal.aborted) upsert(run);
    } catch (error) {
      if (error.status !== 401) console.warn('run', id, error);
    }
  }, 150);

  const tick = () => {
    for (const [id, row] of rows) {
      const run = runs.get(id);
      if (row.hidden || TERMINAL.has(run.status)) continue;
      row.cells[7].textContent = duration(elapsed(run));
      row.cells[8].textContent = waitingText(run);
    }
  };
  tickers.add(tick);
  signal.addEventListener('abort', () => tickers.delete(tick));

  (async () => {
    let page;
    try {
      page = await api('GET', '/runs?limit=1000');
    } catch (error) {
      root.append(h('p', { class: 'error', text: `Cannot list runs: ${error.message}` }));
      return;
    }
    let head = 0;
    for (const run of page.runs) head = Math.max(head, run.last_seq);
    for (const run of page.runs) upsert(run);
    applyFilters();
    setLive(true);
    // Every run's events after what the list showed: a run that changes is read again.
    follow({
      url: () => '/events',
      lastId: String(head),
      live: true,
      signal,
      onFrame: (frame) => {
        if (frame.event === 'error') return;
        try { refresh(JSON.parse(frame.data).run_id); showAccounts('all'); } catch { /* a keep-alive or junk */ }
      },
    });
  })();
}

// ---------------------------------------------------------------------------------------------
// A run.

const CONTROLS = [
  ['pause', 'Pause', (s) => s === 'RUNNING'],
  ['resume', 'Resume', (s) => s === 'PAUSED'],
  ['cancel', 'Cancel', (s) => s === 'PENDING' || s === 'RUNNING' || s === 'PAUSED'],
  ['retry', 'Retry', (s) => s === 'FAILED'],
];

const RUN_TABS = ['output', 'plan', 'verification', 'timeline', 'review', 'postmortem'];

function runPage(id, tab, signal) {
  const root = view();
  root.replaceChildren();
  const state = { run: null, steps: new Map(), tokens: { input: 0, output: 0 }, events: [] };
  const listeners = { stepStarted: [], runChanged: [], event: [] };

  const title = h('h1', { id: 'run-name', text: id });
  const fields = {};
  const field = (key, label) => {
    fields[key] = h('dd', { id: `run-${key}`, text: '—' });
    return h('div', {}, h('dl', {}, h('dt', { text: label }), fields[key]));
  };
  const controls = CONTROLS.map(([action, label]) => h('button', {
    type: 'button', id: `control-${action}`, disabled: true,
    onclick: () => control(action),
  }, label));
  const controlNote = h('p', { class: 'note', id: 'control-note', role: 'status', 'aria-live': 'polite' });
  const reason = h('p', { class: 'reason', id: 'run-reason' });
  const tabs = h('nav', { class: 'tabs', role: 'tablist', 'aria-label': 'Run' },
    RUN_TABS.map((name) => h('a', {
      href: `#/runs/${id}/${name}`, role: 'tab', id: `tab-${name}`,
      'aria-selected': String(name === tab), text: name[0].toUpperCase() + name.slice(1),
    })));
  const panel = h('section', { id: `panel-${tab}`, role: 'tabpanel', 'aria-labelledby': `tab-${tab}` });
  root.append(
    h('p', {}, h('a', { href: '#/', text: '← Runs' })),
    h('div', { class: 'toolbar' }, title, h('span', { class: 'grow' }), controls),
    controlNote,
    h('div', { class: 'run-head' },
      field('status', 'Status'), field('phase', 'Phase · iteration'), field('tasks', 'Tasks'),
      field('cost', 'Cost'), field('tokens', 'Tokens (in / out)'), field('time', 'Time'),
      field('branch', 'Branch'), field('base', 'Base → target'), field('worktree', 'Worktree'),
      field('workspace', 'Workspace')),
    reason, tabs, panel);

  function render() {
    const run = state.run;
    if (!run) return;
    document.title = `loopd — ${run.name}`;
    title.textContent = run.name;
    fields.status.replaceChildren(statusBadge(run.status));
    const step = run.current_step;
    fields.phase.textContent = step ? `${step.phase} · ${step.iteration}` : `— · ${run.iteration}`;
    fields.tasks.textContent = `${run.tasks_done} / ${run.tasks_total}`;
    fields.cost.textContent = money(run.cost_usd);
    fields.tokens.textContent = `${count(state.tokens.input)} / ${count(state.tokens.output)}`;
    fields.time.textContent = duration(elapsed(run));
    const wt = run.worktree || {};
    fields.branch.textContent = wt.run_branch || '—';
    fields.base.textContent = `${wt.base_branch || '—'} → ${wt.merge_target_branch || '—'}`;
    fields.worktree.textContent = wt.worktree_path ? `${wt.worktree_path}${wt.removed ? ' (removed)' : ''}` : '— (in place)';
    fields.worktree.title = wt.worktree_path || '';
    fields.workspace.textContent = run.workspace_root;
    fields.workspace.title = run.workspace_root;
    let why = '';
    if (run.status === 'FAILED') why = `Failed: ${run.failure_reason || run.exit_reason || 'unknown'}`;
    else if (TERMINAL.has(run.status)) why = run.exit_reason ? `Ended: ${run.exit_reason}` : '';
    else if (run.waiting) why = `Waiting: ${waitingText(run)}`;
    reason.textContent = why;
    reason.classList.toggle('waiting', !!run.waiting && !TERMINAL.has(run.status));
    reason.classList.toggle('ok', run.status === 'COMPLETED');
    for (const [i, [, , allowed]] of CONTROLS.entries()) controls[i].disabled = !allowed(run.status);
    root.dataset.status = run.status;
    for (const listener of listeners.runChanged) listener(run);
  }

  async function control(action) {
    controlNote.textContent = `${action}…`;
    try {
      const { run } = await api('POST', `/runs/${id}/${action}`);
      state.run = run;
      render();
      controlNote.textContent = `${action}: the run is ${run.status}`;
    } catch (error) {
      controlNote.textContent = `${action} refused: ${error.message}`;
    }
  }

  const refresh = debounce(async () => {
    try {
      const { run } = await api('GET', `/runs/${id}`);
      if (!signal.aborted) { state.run = run; render(); }
    } catch (error) {
      if (error.status === 404) reason.textContent = `No run ${id}.`;
    }
  }, 100);

  const tick = () => { if (state.run && !TERMINAL.has(state.run.status)) { fields.time.textContent = duration(elapsed(state.run)); if (state.run.waiting) reason.textContent = `Waiting: ${waitingText(state.run)}`; } };
  tickers.add(tick);
  signal.addEventListener('abort', () => tickers.delete(tick));

  // The run's events: the header follows them, the timeline lists them, and the output pane
  // learns from them when a new step starts.
  const timeline = timelineView(state);
  function onEvent(record) {
    state.events.push(record);
    const p = record.payload || {};
    if (record.type === 'STEP_STARTED') {
      state.steps.set(p.step_id, { phase: p.phase, iteration: p.iteration });
    }
    if (record.type === 'STEP_FINISHED' && p.tokens) {
      state.tokens.input += p.tokens.input || 0;
      state.tokens.output += p.tokens.output || 0;
    }
    timeline.add(record);
    if (record.type === 'STEP_STARTED') for (const listener of listeners.stepStarted) listener(p.step_id);
    for (const listener of listeners.event) listener(record);
    refresh('run');
  }

  (async () => {
    try {
      const { run } = await api('GET', `/runs/${id}`);
      state.run = run;
      render();
    } catch (error) {
      reason.textContent = error.status === 404 ? `No run ${id}.` : error.message;
      return;
    }
    setLive(true);
    follow({
      url: () => `/runs/${id}/events`,
      live: true,
      signal,
      onFrame: (frame) => {
        if (frame.event === 'error') return;
        try { onEvent(JSON.parse(frame.data)); } catch { /* ignore */ }
      },
      // The run's own stream ends with the run; what follows (a postmortem, a merge) arrives on
      // the stream of every run, taken from where this one stopped.
      onEnd: (position) => {
        refresh('run');
        follow({
          url: () => '/events',
          lastId: position || '0',
          live: true,
          signal,
          onFrame: (frame) => {
            if (frame.event === 'error') return;
            try {
              const record = JSON.parse(frame.data);
              if (record.run_id === id) onEvent(record);
            } catch { /* ignore */ }
          },
        });
      },
    });
    if (tab === 'output') outputPane(id, panel, state, listeners, signal);
    else if (tab === 'plan') planPane(id, panel, listeners, signal);
    else if (tab === 'verification') verificationPane(id, panel, state, listeners, signal);
    else if (tab === 'timeline') panel.append(timeline.element);
    else if (tab === 'review') reviewPane(id, panel, state, listeners, signal);
    else postmortemPane(id, panel, state, listeners, signal);
  })();
}

// The plan: its checklist as the run's working tree has it now (`GET /runs/{id}/plan`), read
// again when a step finishes (an agent ticks boxes in its step, and the runtime counts them at
// its end) and when the run's task count moves.
const TASK_MARKS = { pending: '☐', done: '☑', reviewed: '✔', blocked: '⊘' };

function planPane(id, panel, listeners, signal) {
  const note = h('p', { class: 'note', id: 'plan-note', role: 'status', 'aria-live': 'polite' });
  const list = h('div', { class: 'plan', id: 'plan' });
  const source = h('pre', { class: 'plan-text', id: 'plan-text' });
  panel.append(note, list, h('details', {}, h('summary', { text: 'The plan file' }), source));
  let lastCount = null;
  async function load() {
    let plan;
    try {
      ({ plan } = await api('GET', `/runs/${id}/plan`));
    } catch (error) {
      if (!signal.aborted) note.textContent = error.status === 404 ? 'No plan file yet.' : `No plan: ${error.message}`;
      return;
    }
    if (signal.aborted) return;
    note.textContent = `${plan.tasks_done} / ${plan.tasks_total} tasks done · ${plan.path}`;
    note.title = plan.read_from;
    const sections = [];
    let section = null;
    for (const task of plan.tasks) {
      const heading = task.section || '';
      if (!section || section.heading !== heading) {
        section = { heading, items: h('ul', { class: 'tasks' }) };
        sections.push(section);
      }
      section.items.append(h('li', {
        'data-state': task.state, 'data-line': String(task.line), class: task.blocking ? '' : 'optional',
      }, h('span', { class: 'mark', 'aria-hidden': 'true', text: TASK_MARKS[task.state] || '?' }),
      h('span', { class: 'sr-only', text: `${task.state}: ` }),
      task.text, task.optional ? h('span', { class: 'note', text: ' (optional)' }) : null));
    }
    list.replaceChildren(...sections.map((part) => h('section', {},
      part.heading ? h('h3', { text: part.heading }) : null, part.items)));
    if (!plan.tasks.length) list.replaceChildren(h('p', { class: 'empty', text: 'The plan has no task boxes.' }));
    source.textContent = plan.text;
  }
  const reload = debounce(load, 150);
  listeners.event.push((record) => {
    const p = record.payload || {};
    if (record.type === 'STEP_FINISHED' || p.tasks_done !== undefined) reload('plan');
  });
  listeners.runChanged.push((run) => {
    const count = `${run.tasks_done}/${run.tasks_total}`;
    if (lastCount !== null && count !== lastCount) reload('plan');
    lastCount = count;
  });
  load();
}

// Verification: each command a verification step ran (`VERIFICATION_COMMAND`), by iteration,
// with its exit code and, one click away, its output: the part of the step's output from its
// `$ command` line to its `[exit …]` line.
function verificationPane(id, panel, state, listeners, signal) {
  const root = h('div', { class: 'verification', id: 'verification' });
  const empty = h('p', { class: 'empty', text: 'No verification command has run yet.' });
  panel.append(root, empty);
  const sections = new Map();
  const perStep = new Map();
  const outputs = new Map();

  async function stepOutput(stepId) {
    if (!outputs.has(stepId)) {
      outputs.set(stepId, (async () => {
        let text = '';
        await readStream(`/runs/${id}/output?step=${stepId}&offset=0`, null, (frame) => {
          if (frame.event === 'output') text += JSON.parse(frame.data).content;
        }, signal);
        return text;
      })());
    }
    return outputs.get(stepId);
  }

  /// The `index`th command's part of a verification step's output.
  function commandPart(text, index) {
    const lines = text.split(/(?<=\n)/);
    let seen = -1;
    let part = null;
    for (const line of lines) {
      if (line.startsWith('$ ')) {
        seen += 1;
        if (seen === index) part = [];
        else if (part) break;
      }
      if (part) {
        part.push(line);
        if (/^\[(exit -?\d+|killed|timed out)[^\]]*\]\s*$/.test(line)) break;
      }
    }
    return part ? part.join('') : '';
  }

  function add(record) {
    const p = record.payload || {};
    const step = state.steps.get(p.step_id);
    const iteration = step ? step.iteration : '?';
    if (!sections.has(iteration)) {
      const list = h('ol', { class: 'commands' });
      const section = h('section', { 'data-iteration': String(iteration) }, h('h3', { text: `Iteration ${iteration}` }), list);
      root.append(section);
      sections.set(iteration, list);
    }
    const index = perStep.get(p.step_id) || 0;
    perStep.set(p.step_id, index + 1);
    const passed = p.exit_code === 0;
    const out = h('pre', { class: 'command-output', text: '' });
    const item = h('details', { class: `command ${passed ? 'passed' : 'failed'}`, 'data-seq': String(record.seq), 'data-exit': String(p.exit_code ?? '') },
      h('summary', {},
        h('span', { class: `verdict ${passed ? 'ok' : 'bad'}`, text: passed ? 'passed' : 'failed' }),
        h('code', { text: p.command }),
        h('span', { class: 'note', text: ` exit ${p.exit_code ?? '—'} · ${duration(p.duration_ms)}` })),
      out);
    let loaded = false;
    item.addEventListener('toggle', async () => {
      if (!item.open || loaded) return;
      loaded = true;
      out.textContent = 'loading…';
      try {
        out.textContent = commandPart(await stepOutput(p.step_id), index) || '(no output)';
      } catch (error) {
        loaded = false;
        out.textContent = `No output: ${error.message}`;
      }
    });
    sections.get(iteration).append(h('li', {}, item));
    empty.remove();
  }
  for (const record of state.events) if (record.type === 'VERIFICATION_COMMAND') add(record);
  listeners.event.push((record) => { if (record.type === 'VERIFICATION_COMMAND') add(record); });
}

// The timeline: the run's events in order, in sections by iteration and, inside one, by phase;
// an event without a step of its own goes to the section it happened in. Each payload is one
// click away.
function timelineView(state) {
  const element = h('div', { class: 'timeline', id: 'timeline' });
  let section = null;
  let sectionKey = null;
  let list = null;
  let listKey = null;
  function place(iteration, phase) {
    const key = iteration === null ? 'run' : `i${iteration}`;
    if (iteration !== null && key !== sectionKey) {
      section = h('section', { 'data-iteration': String(iteration) }, h('h3', { text: `Iteration ${iteration}` }));
      element.append(section);
      sectionKey = key;
      list = null;
      listKey = null;
    }
    if (!section) {
      section = h('section', { 'data-iteration': 'run' }, h('h3', { text: 'Run' }));
      element.append(section);
      sectionKey = 'run';
    }
    const wanted = iteration === null ? '' : phase || '';
    if (!list || wanted !== listKey) {
      list = wanted ? h('div', { class: 'phase', 'data-phase': wanted }, h('h4', { text: wanted })) : h('div', {});
      section.append(list);
      listKey = wanted;
    }
    return list;
  }
  function summary(record) {
    const p = record.payload || {};
    switch (record.type) {
      case 'STEP_STARTED': return `attempt ${p.attempt}`;
      case 'STEP_FINISHED': return [p.status, p.exit_code !== undefined && p.exit_code !== null ? `exit ${p.exit_code}` : '', duration(p.duration_ms), p.cost_usd ? money(p.cost_usd) : '', p.message || ''].filter(Boolean).join(' · ');
      case 'VERIFICATION_COMMAND': return `${p.command} → exit ${p.exit_code} · ${duration(p.duration_ms)}`;
      case 'RUN_FAILED': return p.reason || p.exit_reason || '';
      case 'RUN_COMPLETED': return p.exit_reason || '';
      case 'AGENT_WAITING': return p.reason || '';
      case 'COMPLETION_REJECTED': return p.reason || '';
      case 'MERGE_FINISHED': return p.commit ? `${p.strategy} → ${String(p.commit).slice(0, 10)}` : `conflict: ${p.conflict || ''}`;
      case 'ARTIFACT_WRITTEN': return p.path || p.kind || '';
      case 'WORKTREE_CREATED': return p.worktree_path || p.path || '';
      case 'REVIEW_ACTION': return p.action || '';
      default: return '';
    }
  }
  return {
    element,
    add(record) {
      const p = record.payload || {};
      const step = p.step_id ? state.steps.get(p.step_id) : null;
      const iteration = p.iteration ?? (step ? step.iteration : null);
      const phase = p.phase ?? (step ? step.phase : null);
      const list = place(iteration ?? null, phase ?? null);
      list.append(h('details', { 'data-seq': String(record.seq), 'data-type': record.type },
        h('summary', {},
          h('span', { class: 't', text: clock(record.ts_ms) }),
          h('span', { class: 'type', text: record.type }),
          summary(record)),
        h('pre', { text: JSON.stringify(record.payload, null, 2) })));
    },
  };
}

// The agent's output, live. What was shown is kept in sessionStorage with the stream position
// (`<step_id>:<byte offset>`, the stream's own ids), so a reload shows it again and resumes
// after it: no gap, no repeat.
const KEEP_BYTES = 1 << 20;

function outputPane(id, panel, state, listeners, signal) {
  const pre = h('pre', { class: 'output', id: 'output', tabindex: '0', 'aria-label': 'Agent output' });
  const note = h('p', { class: 'note', id: 'output-note' });
  panel.append(note, pre);
  const key = `loopd.output.${id}`;
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(key) || 'null'); } catch { saved = null; }
  const shown = saved && Array.isArray(saved.parts) ? saved : { parts: [], pos: null };
  let saveTimer = null;
  const save = () => {
    saveTimer = null;
    let total = shown.parts.reduce((n, part) => n + part.text.length, 0);
    while (total > KEEP_BYTES && shown.parts.length > 1) total -= shown.parts.shift().text.length;
    try { sessionStorage.setItem(key, JSON.stringify(shown)); } catch { /* full: keep going */ }
  };
  const saveSoon = () => { if (!saveTimer) saveTimer = setTimeout(save, 200); };
  window.addEventListener('pagehide', save, { signal });
  signal.addEventListener('abort', () => { if (saveTimer) { clearTimeout(saveTimer); save(); } });

  let atBottom = true;
  pre.addEventListener('scroll', () => { atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8; });

  function label(stepId) {
    const step = state.steps.get(stepId);
    return step ? `── ${step.phase} · iteration ${step.iteration} ──` : `── step ${stepId.slice(0, 8)} ──`;
  }
  function appendText(text) {
    for (const line of text.split(/(?<=\n)/)) {
      if (line.startsWith('● ')) pre.append(h('span', { class: 'tool', text: line }));
      else pre.append(document.createTextNode(line));
    }
  }
  function appendLabel(text) { pre.append(h('span', { class: 'step-label', text: `${text}\n` })); }
  for (const part of shown.parts) { appendLabel(part.label); appendText(part.text); }
  pre.scrollTop = pre.scrollHeight;

  let following = null;
  let waitingForStep = false;

  function followStep(stepId, offset) {
    following = stepId;
    waitingForStep = false;
    let part = shown.parts[shown.parts.length - 1];
    if (!part || part.step !== stepId) {
      part = { step: stepId, label: label(stepId), text: '' };
      shown.parts.push(part);
      appendLabel(part.label);
    }
    note.textContent = `Following ${part.label.replace(/─/g, '').trim()}`;
    follow({
      url: () => `/runs/${id}/output?step=${stepId}&offset=${offset}`,
      lastId: shown.pos,
      signal,
      onFrame: (frame) => {
        if (frame.event !== 'output') return;
        const chunk = JSON.parse(frame.data);
        part.text += chunk.content;
        shown.pos = frame.id;
        appendText(chunk.content);
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        saveSoon();
      },
      onEnd: () => next(stepId),
    });
  }

  // The step after `done`, once there is one; nothing more once the run has ended.
  async function next(done) {
    if (signal.aborted) return;
    let steps;
    try { ({ steps } = await api('GET', `/runs/${id}/steps`)); } catch { return; }
    for (const step of steps) state.steps.set(step.id, { phase: step.phase, iteration: step.iteration });
    const index = steps.findIndex((step) => step.id === done);
    const after = index >= 0 ? steps[index + 1] : null;
    if (after) {
      shown.pos = null;
      followStep(after.id, 0);
      return;
    }
    following = null;
    if (state.run && TERMINAL.has(state.run.status)) {
      note.textContent = `The run is ${state.run.status}.`;
    } else {
      waitingForStep = true;
      note.textContent = 'Waiting for the next step…';
    }
  }

  listeners.stepStarted.push((stepId) => {
    if (waitingForStep && following === null) { shown.pos = null; followStep(stepId, 0); }
  });
  listeners.runChanged.push((run) => {
    if (waitingForStep && TERMINAL.has(run.status)) note.textContent = `The run is ${run.status}.`;
  });

  (async () => {
    if (shown.pos) {
      const [stepId, offset] = [shown.pos.slice(0, shown.pos.lastIndexOf(':')), shown.pos.slice(shown.pos.lastIndexOf(':') + 1)];
      followStep(stepId, Number(offset));
      return;
    }
    let steps;
    try { ({ steps } = await api('GET', `/runs/${id}/steps`)); } catch { return; }
    for (const step of steps) state.steps.set(step.id, { phase: step.phase, iteration: step.iteration });
    const run = state.run;
    const start = (run && run.current_step && run.current_step.id) || (steps.length ? steps[steps.length - 1].id : null);
    if (start) followStep(start, 0);
    else { waitingForStep = true; note.textContent = 'No step has started yet.'; }
  })();
}

// The review: the diff file by file, and a merge.
function reviewPane(id, panel, state, listeners, signal) {
  const body = h('div', { id: 'review' });
  panel.append(body);
  let shownFor = null;
  async function show(run) {
    if (!TERMINAL.has(run.status)) {
      if (shownFor !== 'working') {
        shownFor = 'working';
        body.replaceChildren(h('p', { class: 'empty', text: 'The run is still working: its diff and merge are here once it ends.' }));
      }
      return;
    }
    if (shownFor === 'done') return;
    shownFor = 'done';
    body.replaceChildren(h('p', { class: 'note', text: 'Reading the diff…' }));
    let diff;
    try {
      ({ diff } = await api('GET', `/runs/${id}/diff`));
    } catch (error) {
      body.replaceChildren(h('p', { class: 'error', text: `No diff: ${error.message}` }));
      return;
    }
    if (signal.aborted) return;
    const wt = run.worktree || {};
    const outcome = h('p', { class: 'outcome', id: 'merge-outcome', role: 'status', 'aria-live': 'polite' });
    if (run.merge) {
      outcome.textContent = run.merge.landed
        ? `Merged: ${String(run.merge.commit || '').slice(0, 12)}`
        : `Last merge did not land: ${run.merge.problem || ''}`;
      outcome.classList.toggle('ok', run.merge.landed);
    }
    const strategy = h('select', { id: 'merge-strategy' },
      ['squash', 'merge'].map((s) => h('option', { value: s, text: s, selected: s === (wt.merge_strategy === 'merge' ? 'merge' : 'squash') })));
    const target = h('input', { id: 'merge-target', type: 'text', placeholder: wt.merge_target_branch || wt.base_branch || 'main', value: wt.merge_target_branch || '' });
    const mergeButton = h('button', { type: 'button', class: 'primary', id: 'merge-button' }, 'Merge');
    const scrapButton = h('button', { type: 'button', id: 'scrap-button' }, 'Scrap');
    const prButton = h('button', { type: 'button', id: 'pr-button' }, 'Create pull request');
    prButton.addEventListener('click', async () => {
      prButton.disabled = true;
      outcome.classList.remove('ok');
      outcome.textContent = 'Pushing the branch…';
      try {
        const { pull_request: pr } = await api('POST', `/runs/${id}/create-pr`, {});
        outcome.replaceChildren('Pull request: ', h('a', { href: pr.url, rel: 'noreferrer noopener', target: '_blank', text: pr.url }));
        outcome.classList.add('ok');
      } catch (error) {
        outcome.textContent = `No pull request: ${error.message}`;
      } finally {
        prButton.disabled = false;
      }
    });
    mergeButton.addEventListener('click', async () => {
      mergeButton.disabled = true;
      outcome.classList.remove('ok');
      outcome.textContent = 'Merging…';
      const request = { strategy: strategy.value };
      if (target.value.trim()) request.target = target.value.trim();
      try {
        const { merge } = await api('POST', `/runs/${id}/merge`, request);
        outcome.textContent = `Merged into ${merge.target} (${merge.strategy}): ${merge.commit.slice(0, 12)}`;
        outcome.classList.add('ok');
      } catch (error) {
        outcome.textContent = `Not merged: ${error.message}`;
      } finally {
        mergeButton.disabled = false;
      }
    });
    scrapButton.addEventListener('click', async () => {
      if (!window.confirm(`Remove this run's worktree and delete its branch ${diff.run_branch}?`)) return;
      try {
        const { scrap } = await api('POST', `/runs/${id}/scrap`);
        outcome.classList.remove('ok');
        outcome.textContent = `Scrapped: ${scrap.branch_deleted ? `branch ${scrap.branch_deleted} deleted (git branch ${scrap.branch_deleted} ${scrap.branch_commit} brings it back)` : 'nothing left to remove'}`;
      } catch (error) {
        outcome.textContent = `Not scrapped: ${error.message}`;
      }
    });
    const files = diff.files.map((file) => h('details', { class: 'diff-file', open: diff.files.length <= 8 },
      h('summary', {},
        file.old_path ? `${file.old_path} → ${file.path}` : file.path, '  ',
        h('span', { class: 'plus', text: `+${file.additions}` }), ' ',
        h('span', { class: 'minus', text: `−${file.deletions}` })),
      file.binary ? h('p', { class: 'note', text: 'binary file' })
        : file.patch === null || file.patch === undefined ? h('p', { class: 'note', text: 'patch left out for size' })
          : patchView(file.path, file.patch)));
    body.replaceChildren(
      h('div', { class: 'merge' },
        h('label', {}, 'Strategy', strategy),
        h('label', {}, 'Target branch', target),
        mergeButton, scrapButton, prButton),
      outcome,
      h('p', { class: 'diff-summary' },
        `${diff.run_branch} against ${diff.base_branch}: ${diff.commits.length} commit${diff.commits.length === 1 ? '' : 's'}, ${diff.files.length} file${diff.files.length === 1 ? '' : 's'}, `,
        h('span', { class: 'plus', text: `+${diff.additions}` }), ' ', h('span', { class: 'minus', text: `−${diff.deletions}` }),
        diff.truncated ? ' (some patches left out for size)' : ''),
      h('ul', { class: 'commits' }, diff.commits.map((c) => h('li', {},
        h('code', { text: c.hash.slice(0, 10) }), ` ${c.subject} — ${c.author}`))),
      ...(files.length ? files : [h('p', { class: 'empty', text: 'No file changed.' })]));
  }
  listeners.runChanged.push((run) => { show(run); });
  if (state.run) show(state.run);
}

/// A file's patch, lines coloured by kind and the code in them by a small highlighter.
function patchView(path, patch) {
  const lang = languageOf(path);
  const scan = { block: false };
  let inHunk = false;
  return h('pre', { 'data-lang': lang ? lang.name : '' }, patch.split('\n').map((line) => {
    if (line.startsWith('@@')) {
      scan.block = false;
      inHunk = true;
      return h('span', { class: 'd-hunk', text: line });
    }
    // git's lines before the first hunk (`diff --git`, `index`, `+++`) are not code.
    const header = !inHunk || line.startsWith('\\');
    const kind = header ? '' : line.startsWith('+') ? 'd-add' : line.startsWith('-') ? 'd-del' : '';
    if (header || !lang || !line) return h('span', { class: kind, text: line || ' ' });
    return h('span', { class: kind }, line[0], highlight(line.slice(1), lang, scan));
  }));
}

// ---------------------------------------------------------------------------------------------
// Syntax highlighting: keywords, strings, comments and numbers of common languages, chosen by
// the file's extension. A scanner, not a parser: it is wrong now and then (a quote inside a
// Rust lifetime, a regex literal), never unsafe — every token becomes a text node in a span.

const C_LIKE = { line: ['//'], block: ['/*', '*/'] };
const LANGUAGES = [
  { name: 'rust', ext: ['rs'], quotes: '"', ...C_LIKE,
    keywords: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while' },
  { name: 'js', ext: ['js', 'mjs', 'cjs', 'jsx', 'ts', 'tsx'], quotes: '"\'`', ...C_LIKE,
    keywords: 'async await break case catch class const continue default delete do else export extends false finally for from function if import in instanceof interface let new null of return static super switch this throw true try type typeof undefined var void while yield' },
  { name: 'python', ext: ['py'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return self True try while with yield' },
  { name: 'go', ext: ['go'], quotes: '"`', ...C_LIKE,
    keywords: 'break case chan const continue default defer else fallthrough false for func go goto if import interface map nil package range return select struct switch true type var' },
  { name: 'c', ext: ['c', 'h', 'cc', 'cpp', 'hpp', 'cxx', 'java', 'kt', 'cs', 'swift'], quotes: '"\'', ...C_LIKE,
    keywords: 'auto bool break case catch char class const continue default do double else enum extends extern false final float for fun if implements import int let long namespace new null nullptr package private protected public return short signed sizeof static struct switch this throw true try typedef union unsigned val var void volatile while' },
  { name: 'shell', ext: ['sh', 'bash', 'zsh'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'case do done elif else esac exit export fi for function if in local return set then until while' },
  { name: 'toml', ext: ['toml', 'yaml', 'yml', 'ini', 'cfg'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'true false null' },
  { name: 'css', ext: ['css', 'scss'], quotes: '"\'', line: [], block: ['/*', '*/'],
    keywords: 'important' },
  { name: 'json', ext: ['json', 'jsonl'], quotes: '"', line: [], block: null,
    keywords: 'true false null' },
].map((lang) => ({ ...lang, keywords: new Set(lang.keywords.split(' ')) }));

function languageOf(path) {
  const name = String(path || '').split('/').pop().toLowerCase();
  if (name === 'makefile' || name === 'dockerfile') return LANGUAGES.find((lang) => lang.name === 'shell');
  const dot = name.lastIndexOf('.');
  if (dot < 0) return null;
  const ext = name.slice(dot + 1);
  return LANGUAGES.find((lang) => lang.ext.includes(ext)) || null;
}

/// The tokens of one line as nodes; `scan.block` carries an open block comment to the next
/// line.
function highlight(text, lang, scan) {
  const out = [];
  let plain = '';
  const flush = () => { if (plain) { out.push(document.createTextNode(plain)); plain = ''; } };
  const token = (cls, part) => { flush(); out.push(h('span', { class: cls, text: part })); };
  let i = 0;
  while (i < text.length) {
    if (scan.block || (lang.block && text.startsWith(lang.block[0], i))) {
      const from = scan.block ? i : i + lang.block[0].length;
      const end = text.indexOf(lang.block[1], from);
      const stop = end < 0 ? text.length : end + lang.block[1].length;
      scan.block = end < 0;
      token('tok-c', text.slice(i, stop));
      i = stop;
      continue;
    }
    if (lang.line.some((mark) => text.startsWith(mark, i))) {
      token('tok-c', text.slice(i));
      break;
    }
    const c = text[i];
    if (lang.quotes.includes(c)) {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      j = Math.min(j + 1, text.length);
      token('tok-s', text.slice(i, j));
      i = j;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < text.length && /[\w$]/.test(text[j])) j += 1;
      const word = text.slice(i, j);
      if (lang.keywords.has(word)) token('tok-k', word);
      else plain += word;
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) && !/[\w$]/.test(text[i - 1] || '')) {
      let j = i + 1;
      while (j < text.length && /[\w.]/.test(text[j])) j += 1;
      token('tok-n', text.slice(i, j));
      i = j;
      continue;
    }
    plain += c;
    i += 1;
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------------------
// The postmortem: its state, and its analyses as formatted text.

/// A little Markdown, enough for the analyses: headings, lists, code blocks, paragraphs. Built
/// as elements with text, never as markup.
function markdown(text) {
  const out = h('div', { class: 'prose' });
  const lines = text.split('\n');
  let list = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.append(h('p', { text: paragraph.join(' ') }));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (line.startsWith('```')) {
      flush(); list = null;
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith('```'); i += 1) code.push(lines[i]);
      out.append(h('pre', { text: code.join('\n') }));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    if (heading) {
      flush(); list = null;
      out.append(h(`h${Math.min(6, heading[1].length + 2)}`, { text: heading[2] }));
    } else if (item) {
      flush();
      if (!list) { list = h('ul'); out.append(list); }
      list.append(h('li', { text: item[1] }));
    } else if (line.trim() === '') {
      flush(); list = null;
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return out;
}

function postmortemPane(id, panel, state, listeners, signal) {
  const body = h('div', { id: 'postmortem' });
  panel.append(body);
  async function show() {
    let report;
    try {
      ({ postmortem: report } = await api('GET', `/runs/${id}/postmortem`));
    } catch (error) {
      body.replaceChildren(h('p', { class: 'error', text: error.message }));
      return;
    }
    if (signal.aborted) return;
    const start = h('button', { type: 'button', id: 'postmortem-start' }, report.status ? 'Analyse again' : 'Analyse this run');
    const note = h('p', { class: 'note', role: 'status' });
    start.disabled = !(state.run && TERMINAL.has(state.run.status)) || report.status === 'running';
    start.addEventListener('click', async () => {
      start.disabled = true;
      try {
        await api('POST', `/runs/${id}/postmortem`, {});
        note.textContent = 'Started: the analyses appear here when they are written.';
      } catch (error) {
        note.textContent = `Not started: ${error.message}`;
        start.disabled = false;
      }
    });
    const files = h('div', { class: 'analyses' });
    body.replaceChildren(
      h('div', { class: 'toolbar' },
        h('span', { class: 'grow', text: report.status ? `Postmortem: ${report.status}${report.reason ? ` — ${report.reason}` : ''}` : 'No postmortem yet.' }),
        start),
      note, files);
    for (const file of report.files) {
      const section = h('section', {}, h('h2', { text: file.name }));
      files.append(section);
      try {
        const response = await fetch(`/runs/${id}/artifacts/analysis/${file.name.split('/').map(encodeURIComponent).join('/')}`, { credentials: 'same-origin' });
        if (!response.ok) throw new Error(`${response.status}`);
        const text = await response.text();
        section.append(file.name.endsWith('.md') || file.name.endsWith('.txt') ? markdown(text) : h('pre', { text }));
      } catch (error) {
        section.append(h('p', { class: 'note', text: `Cannot read it (${error.message}); it is in ${report.dir}.` }));
      }
    }
  }
  show();
  // A postmortem's end arrives as an event: show it then.
  let last = null;
  listeners.runChanged.push((run) => {
    if (run.postmortem !== last) { last = run.postmortem; show(); }
  });
}

// ---------------------------------------------------------------------------------------------
// A new run: workspace, spec and plan picked from its files, and the run flags.

function newRun(signal) {
  const root = view();
  document.title = 'loopd — new run';
  const input = (id, label, attrs = {}) => {
    const el = h(attrs.tag || 'input', { id, name: id, ...attrs, tag: undefined });
    return [el, h('label', { class: 'field' }, h('span', { text: label }), el)];
  };
  const [workspace, workspaceField] = input('new-workspace', 'Workspace (absolute path to a git repository)', { type: 'text', list: 'known-workspaces', required: true, autocomplete: 'off' });
  const known = h('datalist', { id: 'known-workspaces' });
  const [spec, specField] = input('new-spec', 'Spec', { tag: 'select', required: true });
  const [plan, planField] = input('new-plan', 'Plan', { tag: 'select' });
  const [name, nameField] = input('new-name', 'Name (optional)', { type: 'text' });
  const [verify, verifyField] = input('new-verify', 'Verify commands (one per line)', { tag: 'textarea', rows: '3' });
  const [target, targetField] = input('new-merge-target', 'Merge target branch (optional)', { type: 'text' });
  const [agent, agentField] = input('new-agent', 'Agent', { tag: 'select' });
  agent.append(h('option', { value: '', text: 'the workspace\'s (.loop/config)' }));
  for (const a of ['claude', 'codex', 'command']) agent.append(h('option', { value: a, text: a }));
  const [agentCmd, agentCmdField] = input('new-agent-cmd', 'Agent command (for agent = command)', { type: 'text' });
  const [model, modelField] = input('new-model', 'Model (optional)', { type: 'text' });
  const [iterations, iterationsField] = input('new-iterations', 'Iterations (optional)', { type: 'number', min: '1' });
  const [cost, costField] = input('new-max-cost', 'Cost cap in USD (optional)', { type: 'number', min: '0', step: '0.01' });
  const note = h('p', { class: 'note', id: 'new-note', role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'new-submit' }, 'Start the run');
  const form = h('form', { class: 'form-grid', id: 'new-run' },
    workspaceField, known, specField, planField, nameField, agentField, agentCmdField, modelField,
    iterationsField, costField, targetField, verifyField, h('div', {}, submit), note);
  root.replaceChildren(h('h1', { text: 'New run' }), form);
  agentCmdField.hidden = true;
  agent.addEventListener('change', () => { agentCmdField.hidden = agent.value !== 'command'; });

  let specs = [];
  async function load() {
    spec.replaceChildren();
    plan.replaceChildren();
    const path = workspace.value.trim();
    if (!path) return;
    note.textContent = 'Reading the workspace…';
    try {
      const listing = await api('GET', `/workspace/specs?workspace_root=${encodeURIComponent(path)}`);
      specs = listing.specs;
      for (const s of specs) {
        spec.append(h('option', { value: s.path, text: `${s.path}${s.title ? ` — ${s.title}` : ''}${s.status ? ` [${s.status}]` : ''}` }));
      }
      plan.append(h('option', { value: '', text: 'the spec\'s own plan' }));
      for (const p of listing.plans) plan.append(h('option', { value: p, text: p }));
      note.textContent = specs.length ? `${specs.length} spec${specs.length === 1 ? '' : 's'} in ${listing.specs_dir}` : `No spec under ${listing.specs_dir}.`;
      pickPlan();
    } catch (error) {
      note.textContent = error.message;
    }
  }
  function pickPlan() {
    const chosen = specs.find((s) => s.path === spec.value);
    plan.value = chosen && chosen.plan_path ? chosen.plan_path : '';
  }
  workspace.addEventListener('change', load);
  spec.addEventListener('change', pickPlan);
  api('GET', '/runs?limit=200').then(({ runs }) => {
    const seen = new Set(runs.map((r) => r.workspace_root));
    for (const w of seen) known.append(h('option', { value: w }));
    if (!workspace.value && runs.length) { workspace.value = runs[0].workspace_root; load(); }
  }).catch(() => {});

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { workspace_root: workspace.value.trim(), spec_path: spec.value };
    if (plan.value) body.plan_path = plan.value;
    if (name.value.trim()) body.name = name.value.trim();
    const commands = verify.value.split('\n').map((c) => c.trim()).filter(Boolean);
    if (commands.length) body.verify_cmds = commands;
    if (target.value.trim()) body.merge_target = target.value.trim();
    if (agent.value) body.agent = agent.value;
    if (agent.value === 'command' && agentCmd.value.trim()) body.agent_cmd = agentCmd.value.trim();
    if (model.value.trim()) body.model = model.value.trim();
    if (iterations.value) body.iterations = Number(iterations.value);
    if (cost.value) body.max_cost = Number(cost.value);
    submit.disabled = true;
    note.textContent = 'Starting…';
    try {
      const { run } = await api('POST', '/runs', body);
      if (!signal.aborted) location.hash = `#/runs/${run.id}`;
    } catch (error) {
      note.textContent = `Not started: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Insight: the figures of /stats as small charts, and the worktrees runs left on disk.

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

/// Horizontal bars, one row per item: a label, a bar scaled to the largest, the value.
function barChart(title, items, format = String) {
  const row = 24;
  const height = Math.max(1, items.length) * row + 4;
  const max = Math.max(1e-9, ...items.map((i) => i.value));
  const chart = svg('svg', { viewBox: `0 0 400 ${height}`, width: '100%', role: 'img', 'aria-label': title, class: 'chart' });
  items.forEach((item, n) => {
    const y = n * row + 4;
    const width = (250 * item.value) / max;
    chart.append(
      svg('text', { x: 0, y: y + 14, class: 'chart-label' }, item.label),
      svg('rect', { x: 110, y: y + 3, width: Math.max(item.value ? 2 : 0, width), height: 14, rx: 2, class: `chart-bar ${item.cls || ''}` }),
      svg('text', { x: 116 + width, y: y + 14, class: 'chart-value' }, format(item.value)));
  });
  if (!items.length) chart.append(svg('text', { x: 0, y: 16, class: 'chart-label' }, 'nothing yet'));
  return h('figure', { class: 'card' }, h('figcaption', { text: title }), chart);
}

/// Runs by outcome over time: one stacked column per UTC day the runs were created, days
/// without a run drawn empty, the latest 60 days of the range at most.
const OUTCOMES = [['completed', 'ok'], ['failed', 'bad'], ['canceled', 'warn'], ['active', 'active']];
const DAY = 86400000;

function outcomesOverTime(days) {
  const title = 'Runs by outcome over time';
  const chart = svg('svg', { viewBox: '0 0 400 150', width: '100%', role: 'img', 'aria-label': title, class: 'chart', id: 'runs-over-time' });
  if (!days.length) {
    chart.append(svg('text', { x: 0, y: 16, class: 'chart-label' }, 'nothing yet'));
    return h('figure', { class: 'card' }, h('figcaption', { text: title }), chart);
  }
  const last = days[days.length - 1].day_ms;
  const first = Math.max(days[0].day_ms, last - 59 * DAY);
  const byDay = new Map(days.map((d) => [d.day_ms, d]));
  const columns = Math.round((last - first) / DAY) + 1;
  const peak = Math.max(1, ...days.filter((d) => d.day_ms >= first).map((d) => d.total));
  const [left, top, height] = [28, 8, 110];
  const width = (400 - left) / columns;
  chart.append(
    svg('text', { x: 0, y: top + 10, class: 'chart-label' }, String(peak)),
    svg('text', { x: 0, y: top + height, class: 'chart-label' }, '0'));
  for (let n = 0; n < columns; n += 1) {
    const day = byDay.get(first + n * DAY);
    if (!day) continue;
    let y = top + height;
    const group = svg('g', { 'data-day': day.day, class: 'day' },
      svg('title', {}, `${day.day}: ${OUTCOMES.map(([key]) => `${day[key]} ${key}`).join(', ')}`));
    for (const [key, cls] of OUTCOMES) {
      if (!day[key]) continue;
      const tall = (day[key] / peak) * height;
      y -= tall;
      group.append(svg('rect', {
        x: left + n * width + 1, y, width: Math.max(1, width - 2), height: tall, class: `chart-bar ${cls}`, 'data-outcome': key, 'data-count': String(day[key]),
      }));
    }
    chart.append(group);
  }
  chart.append(
    svg('text', { x: left, y: 145, class: 'chart-label' }, days.find((d) => d.day_ms >= first).day),
    svg('text', { x: 400, y: 145, class: 'chart-label', 'text-anchor': 'end' }, days[days.length - 1].day));
  const legend = h('p', { class: 'legend' }, OUTCOMES.map(([key, cls]) => h('span', { class: `key ${cls}`, text: key })));
  return h('figure', { class: 'card' }, h('figcaption', { text: title }), chart, legend);
}

function figure(label, value) {
  return h('div', { class: 'card figure' }, h('div', { class: 'figure-value', text: value }), h('div', { class: 'figure-label', text: label }));
}

function bytes(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function insight(signal) {
  const root = view();
  document.title = 'loopd — insight';
  const since = h('select', { id: 'stats-since', 'aria-label': 'Since' },
    [['7d', 'last 7 days'], ['30d', 'last 30 days'], ['', 'all time']].map(([v, t]) => h('option', { value: v, text: t })));
  const figures = h('div', { class: 'figures', id: 'stats' });
  const worktrees = h('div', { id: 'worktrees' });
  root.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', { text: 'Insight' }), h('span', { class: 'grow' }), h('label', { for: 'stats-since', text: 'Runs created in' }), since),
    figures,
    h('h2', { text: 'Worktrees' }),
    worktrees);

  async function stats() {
    let s;
    let days;
    try {
      ({ stats: s, runs_by_day: days } = await api('GET', since.value ? `/stats?since=${since.value}` : '/stats'));
    } catch (error) {
      figures.replaceChildren(h('p', { class: 'error', text: error.message }));
      return;
    }
    if (signal.aborted) return;
    const it = s.iterations_to_completion;
    figures.replaceChildren(
      figure('runs', String(s.runs.total)),
      figure('tasks done', String(s.tasks_done)),
      figure('cost', money(s.cost_usd)),
      figure('cost per task', s.cost_per_task_usd === null || s.cost_per_task_usd === undefined ? '—' : money(s.cost_per_task_usd)),
      figure('time per task', s.time_per_task_ms ? duration(s.time_per_task_ms) : '—'),
      figure('verification pass rate', s.verification.pass_rate === null || s.verification.pass_rate === undefined ? '—' : `${Math.round(100 * s.verification.pass_rate)}%`),
      barChart('Runs by outcome', [
        { label: 'completed', value: s.runs.completed, cls: 'ok' },
        { label: 'failed', value: s.runs.failed, cls: 'bad' },
        { label: 'canceled', value: s.runs.canceled, cls: 'warn' },
        { label: 'active', value: s.runs.active },
      ]),
      outcomesOverTime(days || []),
      barChart('Exit reasons', Object.entries(s.runs.by_exit_reason || {}).map(([label, value]) => ({ label, value }))),
      barChart('Iterations to completion', it ? [
        { label: 'min', value: it.min }, { label: 'median', value: it.median },
        { label: 'mean', value: it.mean }, { label: 'max', value: it.max },
      ] : [], (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1))),
      barChart('Verification', [
        { label: 'passed', value: s.verification.passed, cls: 'ok' },
        { label: 'failed', value: s.verification.failed, cls: 'bad' },
      ]),
      barChart('Watchdog', [
        ...Object.entries(s.watchdog.signals || {}).map(([label, value]) => ({ label, value, cls: 'warn' })),
        { label: 'rewrites', value: s.watchdog.rewrites },
        { label: 'gave up', value: s.watchdog.gave_up, cls: 'bad' },
      ]),
      barChart('Usage-limit waits', [
        { label: 'waits', value: s.usage_limits.waits },
        { label: 'minutes', value: Math.round(s.usage_limits.waited_ms / 60000) },
        { label: 'agent retries', value: s.agent_retries },
      ]));
  }
  since.addEventListener('change', stats);
  stats();
  worktreesView(worktrees, signal);
}

function worktreesView(root, signal) {
  const note = h('p', { class: 'note', id: 'gc-note', role: 'status', 'aria-live': 'polite' });
  const preview = h('button', { type: 'button', id: 'gc-preview' }, 'Preview gc');
  const confirmGc = h('button', { type: 'button', class: 'primary', id: 'gc-run', disabled: true }, 'Remove them');
  const table = h('table', { class: 'runs', id: 'worktree-table' });
  root.replaceChildren(h('div', { class: 'toolbar' }, preview, confirmGc), note, table);
  async function list() {
    let worktrees;
    try { ({ worktrees } = await api('GET', '/worktrees')); } catch (error) { note.textContent = error.message; return; }
    if (signal.aborted) return;
    const total = worktrees.reduce((n, w) => n + w.bytes, 0);
    table.replaceChildren(
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-name', text: 'Run' }), h('th', { class: 'c-status', text: 'Status' }),
        h('th', { class: 'c-ws', text: 'Branch' }), h('th', { class: 'c-note', text: 'Path' }),
        h('th', { class: 'c-cost num', text: 'Size' }))),
      h('tbody', {}, worktrees.map((w) => h('tr', {},
        h('td', { class: 'c-name' }, h('a', { href: `#/runs/${w.run_id}`, text: w.name })),
        h('td', { class: 'c-status' }, statusBadge(w.status)),
        h('td', { class: 'c-ws', text: w.branch, title: w.branch }),
        h('td', { class: 'c-note', text: `${w.path}${w.exists ? '' : ' (gone)'}`, title: w.path }),
        h('td', { class: 'c-cost num', text: bytes(w.bytes) })))));
    if (!note.textContent) note.textContent = `${worktrees.length} worktree${worktrees.length === 1 ? '' : 's'}, ${bytes(total)}`;
  }
  preview.addEventListener('click', async () => {
    try {
      const { gc } = await api('POST', '/gc', { dry_run: true });
      note.textContent = gc.removed.length
        ? `gc would remove ${gc.removed.length} worktree${gc.removed.length === 1 ? '' : 's'} of finished runs and free ${bytes(gc.bytes_freed)}: ${gc.removed.map((w) => w.name).join(', ')}`
        : 'gc would remove nothing: no finished run has a worktree left.';
      confirmGc.disabled = gc.removed.length === 0;
    } catch (error) { note.textContent = error.message; }
  });
  confirmGc.addEventListener('click', async () => {
    confirmGc.disabled = true;
    try {
      const { gc } = await api('POST', '/gc', { dry_run: false });
      note.textContent = `Removed ${gc.removed.length} worktree${gc.removed.length === 1 ? '' : 's'}, freed ${bytes(gc.bytes_freed)}${gc.failed.length ? `; ${gc.failed.length} could not be removed: ${gc.failed.map((f) => f.error).join('; ')}` : ''}.`;
      list();
    } catch (error) { note.textContent = error.message; }
  });
  list();
}
