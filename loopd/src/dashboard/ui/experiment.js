// An experiment run's chart (GET /runs/{id}/experiment): the metric over iterations, each
// candidate a point (kept filled, discarded hollow, the start a square), the best so far as a
// step line with its noise band (± its spread), the target if any; each point links to its
// candidate's own diff (GET /runs/{id}/diff?commit=…), drawn under the chart. Read again as the
// run's events arrive. The scale is logarithmic when the values span more than ten times (a
// change that makes a program 300 times faster would flatten every later one on a linear
// scale), or when the person asks for it; a metric that is never negative is never drawn
// below zero.

import { h, debounce } from './dom.js';
import { api } from './api.js';
import { parsePatch, unifiedView } from './diff.js';

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/// A metric in a few significant digits (the chart's ticks and labels).
export function figure(value) {
  if (value === null || value === undefined) return '—';
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

function signedPercent(share) {
  if (share === null || share === undefined) return '—';
  // Rounded first, so a change too small to show reads ±0.0%, never −0.0%.
  const pct = Math.round(share * 1000) / 10;
  return `${pct > 0 ? '+' : pct < 0 ? '−' : '±'}${Math.abs(pct).toFixed(1)}%`;
}

/// Round values (1, 2 or 5 times a power of ten apart) from below `min` to above `max`,
/// about five of them: the chart's scale.
export function niceTicks(min, max) {
  let span = max - min;
  if (!(span > 0)) {
    // One value: a little room around it, so it sits inside the scale.
    span = Math.abs(max) * 0.1 || 1;
    min -= span / 2;
    max += span / 2;
  }
  const raw = span / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const first = Math.floor(min / step) * step;
  const ticks = [];
  for (let t = first; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks.length < 2) ticks.push(Number((first + step).toPrecision(12)));
  return ticks;
}

/// Powers of ten from at or below `min` to at or above `max` (both > 0), with 2 and 5 times
/// each between when the span is under three decades: the log scale's ticks.
export function logTicks(min, max) {
  let low = Math.floor(Math.log10(min));
  let high = Math.ceil(Math.log10(max));
  if (high === low) high += 1;
  const fine = high - low < 3;
  const ticks = [];
  for (let p = low; p <= high; p += 1) {
    for (const m of fine ? [1, 2, 5] : [1]) {
      const t = Number((m * 10 ** p).toPrecision(12));
      if (p === high && m > 1) break;
      ticks.push(t);
    }
  }
  // Trim the fine ticks outside the values to the nearest on each side.
  const first = ticks.findLastIndex((t) => t <= min);
  const last = ticks.findIndex((t) => t >= max);
  return ticks.slice(Math.max(0, first), last < 0 ? ticks.length : last + 1);
}

/// Whether `report`'s values span more than ten times, all above zero: the log scale's case.
export function wantsLog(values) {
  const positive = values.every((v) => v > 0);
  return positive && values.length > 0 && Math.max(...values) / Math.min(...values) > 10;
}

/// An area of the chart, its sides ordered: what a label must keep clear of.
function box(x0, x1, y0, y1) {
  return { left: Math.min(x0, x1) - 1, right: Math.max(x0, x1) + 1, top: Math.min(y0, y1) - 1, bottom: Math.max(y0, y1) + 1 };
}
const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

const H = 250;
const M = { left: 64, right: 20, top: 16, bottom: 40 };

/// The chart of `report` for run `id`; `selected`, the iteration whose point is ringed; `log`,
/// the scale asked for (`null`: logarithmic when the values span more than ten times).
export function experimentChart(id, report, selected, log = null) {
  // Drawn in the units it is shown in: a narrow window gets a narrow chart, so its labels stay
  // legible rather than scaled down with a wide one.
  const W = window.innerWidth < 760 ? 420 : 880;
  const rows = report.rows || [];
  const measured = rows.filter((r) => r.metric !== null && r.metric !== undefined);
  const hasTarget = report.target !== null && report.target !== undefined;
  // The figures measured (and the target): what decides whether the metric can go below zero
  // and whether it spans enough for a log scale. The noise band is drawn within the scale.
  const figures = [];
  for (const r of rows) {
    if (r.metric !== null && r.metric !== undefined) figures.push(r.metric);
    if (r.best !== null && r.best !== undefined) figures.push(r.best);
  }
  if (hasTarget) figures.push(report.target);
  const nonNegative = figures.every((v) => v >= 0);
  const logScale = (log === null ? wantsLog(figures) : log) && figures.every((v) => v > 0);
  const floor = logScale ? Math.min(...figures) : nonNegative ? 0 : -Infinity;
  const values = [...figures];
  for (const r of rows) {
    if (r.best !== null && r.best !== undefined) {
      const spread = r.best_spread || 0;
      values.push(Math.max(floor, r.best - spread), r.best + spread);
    }
  }
  const chart = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', class: 'chart exp-chart', id: 'experiment-chart',
    'data-scale': logScale ? 'log' : 'linear',
    'aria-label': `${report.metric} over iterations (${report.goal}${logScale ? ', log scale' : ''})`,
  });
  if (!values.length) return chart;
  const ticks = logScale
    ? logTicks(Math.min(...values), Math.max(...values))
    : niceTicks(Math.max(nonNegative ? 0 : -Infinity, Math.min(...values)), Math.max(...values));
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const last = Math.max(1, ...rows.map((r) => r.iteration));
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  // Half an iteration of room at each end, so the first and last points are drawn whole.
  const x = (iteration) => M.left + (plotW * (iteration + 0.5)) / (last + 1);
  const at = logScale ? (value) => Math.log10(value) : (value) => value;
  // A value off the scale (a band below a log scale's first tick) is drawn at its edge.
  const y = (value) => {
    const share = (at(Math.max(value, lo)) - at(lo)) / (at(hi) - at(lo));
    return M.top + plotH * (1 - share);
  };

  // Axes: round ticks of the metric, every iteration (or every few when there are many).
  for (const value of ticks) {
    chart.append(
      svg('line', { class: 'exp-grid', x1: M.left, x2: W - M.right, y1: y(value), y2: y(value) }),
      svg('text', { class: 'chart-label', x: M.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, figure(value)));
  }
  const step = Math.max(1, Math.ceil(last / (W < 500 ? 8 : 20)));
  for (let i = 0; i <= last; i += step) {
    chart.append(svg('text', { class: 'chart-label', x: x(i), y: H - M.bottom + 16, 'text-anchor': 'middle' }, String(i)));
  }
  chart.append(
    svg('text', { class: 'chart-label', x: M.left + plotW / 2, y: H - 6, 'text-anchor': 'middle' }, 'iteration'),
    svg('text', { class: 'chart-label', x: 14, y: M.top + plotH / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${M.top + plotH / 2})` },
      `${report.metric} (${report.goal === 'maximize' ? 'higher' : 'lower'} is better${logScale ? ', log scale' : ''})`));

  // The noise band and the best so far: one step per row, from its iteration to the next.
  const steps = rows.filter((r) => r.best !== null && r.best !== undefined);
  const band = [];
  let line = '';
  // The line's pieces as boxes (a rise or fall at x0, then a level to x1): where the target's
  // label must not go.
  const taken = [];
  steps.forEach((r, n) => {
    const x0 = x(r.iteration);
    const x1 = n + 1 < steps.length ? x(steps[n + 1].iteration) : x(last + 0.5);
    if (n > 0) taken.push(box(x0, x0, y(steps[n - 1].best), y(r.best)));
    taken.push(box(x0, x1, y(r.best), y(r.best)));
    const spread = r.best_spread || 0;
    band.push(svg('rect', {
      // (On a log scale the band's lower side may be off the scale: y() clamps it.)
      class: 'exp-band', x: x0, width: Math.max(1, x1 - x0),
      y: y(r.best + spread), height: Math.max(1, y(r.best - spread) - y(r.best + spread)),
    }));
    line += `${n === 0 ? 'M' : 'L'}${x0},${y(r.best)} L${x1},${y(r.best)} `;
  });
  chart.append(svg('g', { id: 'experiment-band' }, band));
  if (line) chart.append(svg('path', { class: 'exp-best', id: 'experiment-best', d: line.trim() }));
  if (hasTarget) {
    const ty = y(report.target);
    const text = `target ${figure(report.target)}`;
    for (const r of measured) taken.push(box(x(r.iteration) - 6, x(r.iteration) + 6, y(r.metric) - 6, y(r.metric) + 6));
    // Beside the dashed line, at its right end above it unless the best line or a point is
    // there (a best that ends just under the target crosses it right there): then below it, then
    // at its left end. The label's box is reckoned from its length (the labels' 12px type is
    // under 7px a character), with a pixel of room around it.
    const width = text.length * 7;
    const places = [[W - M.right, ty - 4, 'end'], [W - M.right, ty + 14, 'end'], [M.left + 4, ty - 4, 'start'], [M.left + 4, ty + 14, 'start']];
    const clear = ([px, py, anchor]) => {
      const left = anchor === 'end' ? px - width : px;
      const label = box(left - 1, left + width + 1, py - 12, py + 3);
      return py - 12 >= M.top - 4 && py + 3 <= H - M.bottom && !taken.some((t) => meets(t, label));
    };
    const [px, py, anchor] = places.find(clear) || places[0];
    chart.append(
      svg('line', { class: 'exp-target', x1: M.left, x2: W - M.right, y1: ty, y2: ty }),
      svg('text', { class: 'chart-label exp-target-label', id: 'experiment-target-label', x: px, y: py, 'text-anchor': anchor }, text));
  }

  // The candidates: each a link to its own diff.
  for (const r of measured) {
    const kind = r.reason === 'baseline' ? 'baseline' : r.kept ? 'kept' : 'discarded';
    const title = `iteration ${r.iteration}: ${figure(r.metric)} ± ${figure(r.spread)}`
      + (r.effect === null || r.effect === undefined ? '' : ` (${signedPercent(r.effect)} against the best)`)
      + ` — ${kind === 'baseline' ? 'the start' : `${kind}, ${r.reason}`}${r.idea ? `: ${r.idea}` : ''}`;
    const cx = x(r.iteration);
    const cy = y(r.metric);
    const mark = kind === 'baseline'
      ? svg('rect', { x: cx - 5, y: cy - 5, width: 10, height: 10 })
      : svg('circle', { cx, cy, r: 5.5 });
    const point = svg('a', {
      href: `#/runs/${id}/experiment/${r.iteration}`, class: `exp-point ${kind}${r.iteration === selected ? ' selected' : ''}`,
      'data-iteration': String(r.iteration), 'data-kept': String(r.kept), 'data-metric': String(r.metric),
      'data-commit': r.commit || '', 'aria-label': title,
    }, svg('title', {}, title), mark);
    chart.append(point);
  }
  return chart;
}

/// The Experiment tab: the chart, a legend and summary, the table, and the diff of the
/// iteration chosen (`#/runs/<id>/experiment/<iteration>`).
export function experimentPane(id, panel, listeners, signal, selected) {
  const body = h('div', { id: 'experiment' }, h('p', { class: 'note', text: 'Reading the experiment…' }));
  const diffBox = h('div', { id: 'experiment-diff' });
  panel.append(body, diffBox);
  let shownDiff = null;
  // The scale the person chose with the checkbox; `null` until then (automatic).
  let logChoice = null;
  let lastReport = null;

  async function load() {
    let report;
    try {
      report = await api('GET', `/runs/${id}/experiment`);
    } catch (error) {
      body.replaceChildren(h('p', { class: 'empty', text: error.status === 404 ? 'This run is not an experiment.' : `No experiment: ${error.message}` }));
      return;
    }
    if (signal.aborted) return;
    draw(report);
  }

  function draw(report) {
    lastReport = report;
    const s = report.summary || {};
    const summary = s.best === null || s.best === undefined
      ? 'Measuring the start…'
      : `Best ${figure(s.best)} at iteration ${s.best_iteration ?? 0}`
        + (s.change === null || s.change === undefined ? '' : ` (${signedPercent(s.change)} against ${figure(s.baseline)} at the start)`)
        + ` · ${s.iterations} decided: ${s.kept} kept, ${s.discarded} discarded`
        + (s.drift ? ` · the start measures ${signedPercent(s.drift.effect)} ${s.drift.beyond_noise ? 'differently now (beyond noise)' : 'as before (within noise)'}` : '');
    const table = h('table', { class: 'runs exp-table', id: 'experiment-rows' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-iter num', scope: 'col', text: 'Iter' }),
        h('th', { class: 'c-idea', scope: 'col', text: 'Idea' }),
        h('th', { class: 'c-metric num', scope: 'col', text: report.metric }),
        h('th', { class: 'c-effect num', scope: 'col', text: 'Effect' }),
        h('th', { class: 'c-decision', scope: 'col', text: 'Decision' }))),
      h('tbody', {}, (report.rows || []).map((r) => h('tr', { 'data-iteration': String(r.iteration), class: r.iteration === selected ? 'selected' : null },
        h('td', { class: 'c-iter num' }, r.commit
          ? h('a', { href: `#/runs/${id}/experiment/${r.iteration}`, text: String(r.iteration), title: r.commit })
          : String(r.iteration)),
        h('td', { class: 'c-idea', title: r.idea || '', text: r.reason === 'baseline' ? 'the start' : (r.idea || '—') }),
        h('td', { class: 'c-metric num', text: r.metric === null || r.metric === undefined ? 'not measured' : `${figure(r.metric)} ± ${figure(r.spread)}` }),
        h('td', { class: 'c-effect num' },
          signedPercent(r.effect),
          Array.isArray(r.interval)
            ? h('span', { class: 'exp-interval', text: ` [${signedPercent(r.interval[0])}, ${signedPercent(r.interval[1])}]` })
            : null),
        h('td', { class: `c-decision ${r.kept ? 'kept' : 'discarded'}`, text: r.reason === 'baseline' ? 'baseline' : `${r.kept ? 'kept' : 'discarded'}: ${r.reason}` })))));
    const chart = experimentChart(id, report, selected, logChoice);
    const logBox = h('input', { type: 'checkbox', id: 'experiment-log' });
    logBox.checked = chart.dataset.scale === 'log';
    logBox.addEventListener('change', () => { logChoice = logBox.checked; if (lastReport) draw(lastReport); });
    body.replaceChildren(
      h('p', { class: 'exp-summary', id: 'experiment-summary', text: summary }),
      h('label', { class: 'exp-scale note' }, logBox, ' log scale'),
      h('figure', { class: 'card exp-figure' },
        h('figcaption', { text: `${report.metric} per iteration` }),
        chart,
        h('p', { class: 'legend note' },
          h('span', { class: 'key ok', text: 'kept' }), ' ', h('span', { class: 'key bad', text: 'discarded' }), ' ',
          h('span', { class: 'key start', text: 'the start' }), ' · the line: the best so far, its band ± its spread (the noise) · a point opens its diff')),
      table);
    const row = (report.rows || []).find((r) => r.iteration === selected);
    if (row && row.commit && shownDiff !== row.commit) showDiff(row);
  }

  async function showDiff(row) {
    shownDiff = row.commit;
    diffBox.replaceChildren(h('p', { class: 'note', text: `Reading iteration ${row.iteration}'s change…` }));
    let diff;
    try {
      ({ diff } = await api('GET', `/runs/${id}/diff?commit=${encodeURIComponent(row.commit)}`));
    } catch (error) {
      diffBox.replaceChildren(h('p', { class: 'error', text: `No diff: ${error.message}` }));
      return;
    }
    if (signal.aborted) return;
    const subject = diff.commits[0] ? diff.commits[0].subject : row.idea;
    diffBox.replaceChildren(
      h('h3', { id: 'experiment-diff-title', text: `Iteration ${row.iteration}: ${subject || ''}` }),
      h('p', { class: 'diff-summary' },
        `${row.commit.slice(0, 10)}${row.kept ? ' (kept)' : ` (discarded, at ${row.kept_ref || 'its ref'})`}: ${diff.files.length} file${diff.files.length === 1 ? '' : 's'}, `,
        h('span', { class: 'plus', text: `+${diff.additions}` }), ' ', h('span', { class: 'minus', text: `−${diff.deletions}` })),
      ...diff.files.map((file) => h('details', { class: 'diff-file', 'data-path': file.path, open: true },
        h('summary', {}, file.path),
        file.patch ? unifiedView(file.path, parsePatch(file.patch), null) : h('p', { class: 'note', text: file.binary ? 'binary file' : 'patch left out for size' }))));
  }

  const again = debounce(load, 300);
  listeners.event.push((record) => { if (String(record.type).startsWith('EXPERIMENT_') || record.type === 'RUN_COMPLETED') again('load'); });
  load();
}
