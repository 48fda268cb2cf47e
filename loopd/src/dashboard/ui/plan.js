// The plan: its checklist as the run's working tree has it now (`GET /runs/{id}/plan`), read
// again when a step finishes (an agent ticks boxes in its step, and the runtime counts them at
// its end) and when the run's task count moves.

import { h, debounce } from './dom.js';
import { api } from './api.js';

const TASK_MARKS = { pending: '☐', done: '☑', reviewed: '✔', blocked: '⊘' };

export function planPane(id, panel, listeners, signal) {
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
