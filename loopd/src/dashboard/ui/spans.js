// The run on a time axis: a row per iteration, each step a span as long as it took, coloured
// by phase; retries (the delay before a call is tried again) and waits (a usage limit until its
// reset) drawn over the step they held up; pauses on the run's own row. Built from the events
// alone, drawn again as they arrive.

import { h, duration, stepDuration, money } from './dom.js';

/// The spans the events describe, in ms since the epoch; an open one ends at `now`.
export function spansOf(events, now) {
  const steps = new Map();
  const rows = new Map();
  const run = { label: 'Run', spans: [] };
  let start = null;
  let end = null;
  let paused = null;
  const row = (iteration) => {
    if (!rows.has(iteration)) rows.set(iteration, { label: `Iteration ${iteration}`, iteration, spans: [] });
    return rows.get(iteration);
  };
  for (const record of events) {
    const p = record.payload || {};
    const ts = record.ts_ms;
    if (start === null) start = ts;
    end = ts;
    if (record.type === 'STEP_STARTED') {
      const span = { kind: 'step', phase: p.phase, attempt: p.attempt, start: ts, end: null, status: 'IN_PROGRESS' };
      steps.set(p.step_id, { span, iteration: p.iteration });
      row(p.iteration).spans.push(span);
    } else if (record.type === 'STEP_FINISHED' && steps.has(p.step_id)) {
      Object.assign(steps.get(p.step_id).span, { end: ts, status: p.status, cost: p.cost_usd });
    } else if (record.type === 'AGENT_RETRY' && steps.has(p.step_id)) {
      row(steps.get(p.step_id).iteration).spans.push({ kind: 'retry', start: ts, end: ts + (p.delay_ms || 0), reason: `retry ${p.attempt}: ${p.reason}` });
    } else if (record.type === 'AGENT_WAITING') {
      const target = p.step_id && steps.has(p.step_id) ? row(steps.get(p.step_id).iteration) : run;
      target.spans.push({ kind: 'wait', start: ts, end: p.until_ms, reason: p.reason });
    } else if (record.type === 'RUN_PAUSED') {
      paused = { kind: 'pause', start: ts, end: null, reason: 'paused' };
      run.spans.push(paused);
    } else if (record.type === 'RUN_RESUMED' && paused) {
      paused.end = ts;
      paused = null;
    }
  }
  const terminal = events.some((r) => r.type === 'RUN_COMPLETED' || r.type === 'RUN_FAILED' || r.type === 'RUN_CANCELED');
  const last = terminal ? end : Math.max(end ?? now, now);
  const all = [run, ...[...rows.values()].sort((a, b) => a.iteration - b.iteration)];
  for (const r of all) for (const span of r.spans) if (span.end === null) span.end = last;
  for (const r of all) for (const span of r.spans) end = Math.max(end, span.end);
  return { start, end: terminal ? end : Math.max(end, now), rows: all.filter((r) => r.spans.length || r !== run) };
}

/// Ticks every 1, 2, 5 × 10ⁿ seconds, about six across.
function ticks(total) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400].map((s) => s * 1000);
  const every = steps.find((s) => total / s <= 6) || steps[steps.length - 1];
  const out = [];
  for (let t = 0; t <= total; t += every) out.push(t);
  return out;
}

export function drawSpans(model) {
  const chart = h('div', { class: 'spans', id: 'timeline-spans' });
  if (model.start === null) return chart;
  const total = Math.max(model.end - model.start, 1000);
  // Positions go through the CSSOM: the page's policy refuses style attributes.
  const place = (el, from, to) => {
    el.style.left = `${(100 * (from - model.start)) / total}%`;
    if (to !== undefined) el.style.width = `${Math.max((100 * (to - from)) / total, 0.4)}%`;
    return el;
  };
  const axis = h('div', { class: 'axis' }, h('span', { class: 'row-label' }),
    h('div', { class: 'track' }, ticks(total).map((t) => place(h('span', { class: 'tick', text: duration(t) }), model.start + t))));
  chart.append(axis);
  for (const row of model.rows) {
    const steps = row.spans.filter((s) => s.kind === 'step');
    const long = steps.length ? Math.max(...steps.map((s) => s.end)) - Math.min(...steps.map((s) => s.start)) : null;
    const track = h('div', { class: 'track' });
    for (const span of row.spans) {
      const label = span.kind === 'step'
        ? `${span.phase}${span.attempt > 1 ? ` (attempt ${span.attempt})` : ''} · ${stepDuration(span.end - span.start)}`
        : `${span.reason} · ${stepDuration(span.end - span.start)}`;
      const title = span.kind === 'step' ? `${label} · ${span.status}${span.cost ? ` · ${money(span.cost)}` : ''}` : label;
      track.append(place(h('span', {
        class: `span k-${span.kind}${span.phase ? ` p-${span.phase}` : ''}`, 'data-status': span.status || null, title,
      }, h('span', { class: 'span-label', text: label })), span.start, span.end));
    }
    chart.append(h('div', { class: 'lane', 'data-iteration': row.iteration === undefined ? 'run' : String(row.iteration) },
      h('span', { class: 'row-label', text: long === null ? row.label : `${row.label} · ${stepDuration(long)}` }), track));
  }
  chart.append(h('p', { class: 'legend' },
    ['implementation', 'review', 'verification', 'watchdog', 'merge'].map((phase) => h('span', { class: `key p-${phase}`, text: phase })),
    h('span', { class: 'key k-retry', text: 'retry delay' }), h('span', { class: 'key k-wait', text: 'wait (usage limit)' }),
    h('span', { class: 'key k-pause', text: 'paused' })));
  return chart;
}
