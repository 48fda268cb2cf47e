// The timeline: the run's events in order, in sections by iteration and, inside one, by phase;
// an event without a step of its own goes to the section it happened in. Each payload is one
// click away.

import { h, money, duration, clock } from './dom.js';

export function timelineView(state) {
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
