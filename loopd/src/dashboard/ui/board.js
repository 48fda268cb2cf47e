// The board: every run, live, with the queue and the accounts.

import { h, TERMINAL, STATUSES, money, duration, basename, elapsed, waitingText, statusBadge, debounce, view, everySecond } from './dom.js';
import { api, follow, setLive } from './api.js';
import { needOf } from './needs.js';
import { accountsSection } from './accounts.js';

export function board(signal) {
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
  const needList = h('ul', { class: 'needs', id: 'needs' });
  const needCount = h('span', { class: 'count', id: 'needs-count' });
  const needs = h('section', { id: 'needs-you', class: 'needs-you', 'aria-live': 'polite' },
    h('h2', {}, 'Needs you ', needCount), needList);
  const accounts = accountsSection();
  root.append(
    h('h1', { text: 'Runs' }),
    h('div', { class: 'toolbar' },
      h('label', { for: 'filter-status', text: 'Status' }), statusSelect,
      h('label', { for: 'filter-workspace', text: 'Workspace' }), workspaceSelect, counts),
    queue,
    needs,
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
        h('th', { class: 'c-note', scope: 'col', text: 'Waiting for · outcome' }))),
      body),
    empty,
    accounts.section);

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
    showNeeds();
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
    // The phase the run is in; an ended run is in none (its outcome is its status and note).
    cells[3].textContent = step ? step.phase : '—';
    cells[4].textContent = run.iteration || '—';
    const fillBar = cells[5].querySelector('.fill');
    const pct = run.tasks_total ? Math.round((100 * run.tasks_done) / run.tasks_total) : 0;
    fillBar.style.width = `${pct}%`;
    cells[5].querySelector('.label').textContent = `${run.tasks_done}/${run.tasks_total}`;
    cells[5].querySelector('.track').setAttribute('aria-valuenow', String(pct));
    cells[6].textContent = money(run.cost_usd);
    cells[7].textContent = duration(elapsed(run));
    cells[8].textContent = noteOf(run);
    cells[8].title = cells[8].textContent;
    row.dataset.status = run.status;
  }

  // A wait while it lasts; once the run has ended, what it needs or how it ended.
  function noteOf(run) {
    if (!TERMINAL.has(run.status)) return waitingText(run);
    const need = needOf(run);
    if (need) return need.text;
    if (run.merge && run.merge.landed) return `merged ${String(run.merge.commit || '').slice(0, 10)}`;
    return run.exit_reason || '';
  }

  // The runs that wait for a person, most urgent first: failures, merges that did not land,
  // budgets, then finished work to review.
  const URGENCY = { failed: 0, merge_failed: 1, budget: 2, merge: 3 };
  function showNeeds() {
    const now = Date.now();
    const items = [...runs.values()]
      .map((run) => ({ run, need: needOf(run, now) }))
      .filter((item) => item.need && (!filters.workspace || item.run.workspace_root === filters.workspace))
      .sort((a, b) => URGENCY[a.need.kind] - URGENCY[b.need.kind] || b.run.updated_ms - a.run.updated_ms);
    needCount.textContent = String(items.length);
    needList.replaceChildren(...items.map(({ run, need }) => h('li', { 'data-run': run.id, 'data-need': need.kind },
      h('a', { href: `#/runs/${run.id}${need.kind === 'merge' || need.kind === 'merge_failed' ? '/review' : ''}`, text: run.name }),
      h('span', { class: `need need-${need.kind}`, text: need.text }))));
    if (!items.length) needList.append(h('li', { class: 'note', text: 'Nothing: every run is working or done with.' }));
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

  // The accounts the runs' calls count against, their windows and the runs' forecasts
  // (GET /accounts), read again as the runs' events arrive.
  const showAccounts = debounce(async () => {
    let answer;
    try {
      answer = await api('GET', '/accounts');
    } catch (error) {
      if (error.status !== 401) console.warn('accounts', error);
      return;
    }
    if (!signal.aborted) accounts.update(answer, runs);
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
      row.cells[8].textContent = noteOf(run);
    }
    if ([...runs.values()].some((run) => run.waiting && run.waiting.until_ms)) showNeeds();
    accounts.tick();
  };
  everySecond(tick, signal);

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
    showAccounts('all');
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
