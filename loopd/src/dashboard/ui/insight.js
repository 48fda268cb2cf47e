// Insight: the figures of /stats as small charts, and the worktrees runs left on disk.

import { h, money, duration, statusBadge, view } from './dom.js';
import { api } from './api.js';

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

export function insight(signal) {
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
