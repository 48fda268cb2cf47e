// The timeline: the run's iterations and phases as spans on a time axis (`spans.js`), and its
// raw events one click away, in sections by iteration and, inside one, by phase; an event
// without a step of its own goes to the section it happened in. Files written (one
// `ARTIFACT_WRITTEN` per file and place) fold into one line per burst, each file once.

import { h, money, duration, clock, basename } from './dom.js';
import { spansOf, drawSpans } from './spans.js';

function summary(record) {
  const p = record.payload || {};
  switch (record.type) {
    case 'STEP_STARTED': return `attempt ${p.attempt}`;
    case 'STEP_FINISHED': return [p.status, p.exit_code !== undefined && p.exit_code !== null ? `exit ${p.exit_code}` : '', duration(p.duration_ms), p.cost_usd ? money(p.cost_usd) : '', p.message || ''].filter(Boolean).join(' · ');
    case 'VERIFICATION_COMMAND': return `${p.command} → exit ${p.exit_code} · ${duration(p.duration_ms)}`;
    case 'RUN_FAILED': return p.reason || p.exit_reason || '';
    case 'RUN_COMPLETED': return p.exit_reason || '';
    case 'AGENT_RETRY': return `attempt ${p.attempt} in ${duration(p.delay_ms)}: ${p.reason}`;
    case 'AGENT_WAITING': return `until ${clock(p.until_ms)}: ${p.reason || ''}`;
    case 'COMPLETION_REJECTED': return p.reason || '';
    case 'MERGE_FINISHED': return p.commit ? `${p.strategy} → ${String(p.commit).slice(0, 10)}` : `conflict: ${p.conflict || ''}`;
    case 'WORKTREE_CREATED': return p.worktree_path || p.path || '';
    case 'REVIEW_ACTION': return p.action || '';
    case 'REVIEW_COMMENT': return `${p.path}:${p.line} ${p.body}`;
    case 'CHANGES_REQUESTED': return `${(p.comments || []).length} comments`;
    default: return '';
  }
}

function eventRow(record) {
  return h('details', { 'data-seq': String(record.seq), 'data-type': record.type },
    h('summary', {},
      h('span', { class: 't', text: clock(record.ts_ms) }),
      h('span', { class: 'type', text: record.type }),
      summary(record)),
    h('pre', { text: JSON.stringify(record.payload, null, 2) }));
}

/// Consecutive `ARTIFACT_WRITTEN` events as one fold: each file once, with the places it was
/// written to (the run's directory and its mirror).
class ArtifactFold {
  constructor() {
    this.files = new Map();
    this.count = h('span', {});
    this.list = h('ul', { class: 'artifacts' });
    this.element = h('details', { class: 'artifact-fold', 'data-type': 'ARTIFACT_WRITTEN' },
      h('summary', {}, h('span', { class: 't' }), h('span', { class: 'type', text: 'ARTIFACT_WRITTEN' }), this.count),
      this.list);
  }

  add(record) {
    const p = record.payload || {};
    const name = basename(p.path || p.kind || '');
    if (!this.files.size) this.element.querySelector('.t').textContent = clock(record.ts_ms);
    let file = this.files.get(name);
    if (!file) {
      file = { places: [], item: h('li', { 'data-seq': String(record.seq) }) };
      this.files.set(name, file);
      this.list.append(file.item);
    }
    file.places.push(p.location || 'written');
    file.item.textContent = `${name} (${p.kind || 'file'}, ${p.bytes ?? '?'} bytes) → ${file.places.join(', ')}`;
    file.item.title = p.path || '';
    const names = [...this.files.keys()];
    this.count.textContent = `${names.length} file${names.length === 1 ? '' : 's'}: ${names.slice(0, 4).join(', ')}${names.length > 4 ? ', …' : ''}`;
  }
}

export function timelineView(state) {
  const chartHolder = h('div', { class: 'chart-holder' });
  const raw = h('div', { class: 'raw-events' });
  const count = h('span', {});
  const element = h('div', { class: 'timeline', id: 'timeline' },
    chartHolder,
    h('details', { id: 'raw-events' }, h('summary', {}, 'Raw events ', count), raw));
  let section = null;
  let sectionKey = null;
  let list = null;
  let listKey = null;
  let fold = null;
  let shown = 0;
  function place(iteration, phase) {
    const key = iteration === null ? 'run' : `i${iteration}`;
    if (iteration !== null && key !== sectionKey) {
      section = h('section', { 'data-iteration': String(iteration) }, h('h3', { text: `Iteration ${iteration}` }));
      raw.append(section);
      sectionKey = key;
      list = null;
      listKey = null;
    }
    if (!section) {
      section = h('section', { 'data-iteration': 'run' }, h('h3', { text: 'Run' }));
      raw.append(section);
      sectionKey = 'run';
    }
    const wanted = iteration === null ? '' : phase || '';
    if (!list || wanted !== listKey) {
      list = wanted ? h('div', { class: 'phase', 'data-phase': wanted }, h('h4', { text: wanted })) : h('div', {});
      section.append(list);
      listKey = wanted;
      fold = null;
    }
    return list;
  }
  let drawing = false;
  function draw() {
    drawing = false;
    chartHolder.replaceChildren(drawSpans(spansOf(state.events, Date.now())));
  }
  const redraw = () => { if (!drawing) { drawing = true; requestAnimationFrame(draw); } };
  return {
    element,
    /// Draws the spans again: an open step grows with the clock.
    tick() { if (element.isConnected && state.run && !['COMPLETED', 'FAILED', 'CANCELED'].includes(state.run.status)) redraw(); },
    add(record) {
      const p = record.payload || {};
      const step = p.step_id ? state.steps.get(p.step_id) : null;
      const iteration = p.iteration ?? (step ? step.iteration : null);
      const phase = p.phase ?? (step ? step.phase : null);
      const into = place(iteration ?? null, phase ?? null);
      shown += 1;
      count.textContent = `(${shown})`;
      if (record.type === 'ARTIFACT_WRITTEN') {
        if (!fold || into.lastElementChild !== fold.element) {
          fold = new ArtifactFold();
          into.append(fold.element);
        }
        fold.add(record);
      } else {
        into.append(eventRow(record));
      }
      if (element.isConnected) redraw();
    },
    draw,
  };
}
