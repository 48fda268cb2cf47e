// The agent's output, every step of the run: one fold per step, built from the run's events
// (`STEP_STARTED`, `STEP_FINISHED`, retries and waits), each with its status, duration and
// cost, as a CI run view shows its jobs. The step at work and failed steps are open; a step's
// output is read when it is opened (`GET /runs/{id}/output?step=`), live while it runs.
//
// What was read is kept in sessionStorage with its stream position (`<step_id>:<byte
// offset>`, the stream's own ids), so a reload shows it again at once and resumes after it:
// no gap, no repeat.

import { h, TERMINAL, money, duration, stepDuration, everySecond } from './dom.js';
import { follow } from './api.js';
import { LogView } from './log.js';

const KEEP_CHARS = 1 << 20;

/// The page's copy of what each step printed, across reloads.
class Kept {
  constructor(id) {
    this.key = `loopd.output.${id}`;
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(this.key) || 'null'); } catch { saved = null; }
    this.steps = saved && saved.v === 2 ? saved.steps : {};
    this.timer = null;
  }

  get(step) { return this.steps[step] || { text: '', pos: null }; }

  put(step, text, pos) {
    delete this.steps[step];
    this.steps[step] = { text, pos };
    if (!this.timer) this.timer = setTimeout(() => this.save(), 200);
  }

  save() {
    this.timer = null;
    // The steps read longest ago go first when the copy grows too big.
    let total = Object.values(this.steps).reduce((n, s) => n + s.text.length, 0);
    for (const step of Object.keys(this.steps)) {
      if (total <= KEEP_CHARS) break;
      total -= this.steps[step].text.length;
      delete this.steps[step];
    }
    try { sessionStorage.setItem(this.key, JSON.stringify({ v: 2, steps: this.steps })); } catch { /* full: keep going */ }
  }
}

export function outputPane(id, panel, state, listeners, signal) {
  const note = h('p', { class: 'note', id: 'output-note', role: 'status' });
  const list = h('div', { class: 'steps', id: 'output', 'aria-label': 'Every step of the run' });
  panel.append(note, list);
  const kept = new Kept(id);
  window.addEventListener('pagehide', () => kept.save(), { signal });
  signal.addEventListener('abort', () => { if (kept.timer) { clearTimeout(kept.timer); kept.save(); } });
  const steps = new Map();
  const opened = Date.now();

  function add(p, ts) {
    const status = h('span', { class: 'status s-IN_PROGRESS', text: 'IN_PROGRESS' });
    const time = h('span', { class: 'step-time', text: stepDuration(Date.now() - ts) });
    const cost = h('span', { class: 'step-cost' });
    const notes = h('ul', { class: 'step-notes' });
    const log = new LogView();
    const el = h('details', { class: 'step', 'data-step': p.step_id, 'data-phase': p.phase, 'data-status': 'IN_PROGRESS' },
      h('summary', {},
        h('span', { class: 'step-title', text: `${p.phase} · iteration ${p.iteration}${p.attempt > 1 ? ` · attempt ${p.attempt}` : ''}` }),
        status, time, cost),
      notes, log.pre);
    const step = { id: p.step_id, el, status, time, cost, notes, log, started: ts, finished: null, read: 'no' };
    const saved = kept.get(step.id);
    if (saved.text) log.append(saved.text);
    step.pos = saved.pos;
    el.addEventListener('toggle', () => { if (el.open) read(step); });
    steps.set(step.id, step);
    list.append(el);
    return step;
  }

  function finish(step, p, ts) {
    step.finished = p;
    step.status.textContent = p.status;
    step.status.className = `status s-${p.status}`;
    step.el.dataset.status = p.status;
    step.time.textContent = stepDuration(p.duration_ms);
    const tokens = p.tokens ? ` · ${p.tokens.input || 0} in / ${p.tokens.output || 0} out` : '';
    step.cost.textContent = p.cost_usd ? `${money(p.cost_usd)}${tokens}` : tokens.replace(/^ · /, '');
    // Failed steps open; a step that went well folds when the page learns of it from the
    // log's past, and stays as it is when the person watched it end.
    if (p.status !== 'SUCCEEDED') step.el.open = true;
    else if (ts < opened - 2000) step.el.open = false;
  }

  // Reads a step's output from where the page's copy ends; live until the step ends.
  function read(step) {
    if (step.read !== 'no') return;
    step.read = 'reading';
    follow({
      url: () => `/runs/${id}/output?step=${step.id}&offset=0`,
      lastId: step.pos,
      signal,
      onFrame: (frame) => {
        if (frame.event !== 'output') return;
        const chunk = JSON.parse(frame.data);
        step.pos = frame.id;
        step.log.append(chunk.content);
        kept.put(step.id, step.log.text, step.pos);
      },
      onEnd: (position, error) => {
        step.read = 'done';
        if (error && !step.log.text) step.log.note(`No output: ${error.message}`);
        else if (!step.log.text) step.log.note('The step printed nothing.');
      },
    });
  }

  function onEvent(record) {
    const p = record.payload || {};
    const step = p.step_id ? steps.get(p.step_id) : null;
    if (record.type === 'STEP_STARTED') {
      add(p, record.ts_ms).el.open = true;
      note.textContent = '';
    } else if (record.type === 'STEP_FINISHED' && step) {
      finish(step, p, record.ts_ms);
    } else if (record.type === 'AGENT_RETRY' && step) {
      step.notes.append(h('li', { class: 'retry', text: `retry ${p.attempt} in ${duration(p.delay_ms)}: ${p.reason}` }));
    } else if (record.type === 'AGENT_WAITING') {
      const target = step || [...steps.values()].pop();
      target?.notes.append(h('li', { class: 'wait', text: `waiting until ${new Date(p.until_ms).toLocaleTimeString([], { hour12: false })}: ${p.reason}` }));
    }
  }

  for (const record of state.events) onEvent(record);
  listeners.event.push(onEvent);
  const settle = (run) => {
    if (!steps.size) note.textContent = TERMINAL.has(run.status) ? `The run is ${run.status}; it ran no step.` : 'No step has started yet.';
    else if (TERMINAL.has(run.status)) note.textContent = `The run is ${run.status}: ${steps.size} step${steps.size === 1 ? '' : 's'}.`;
    // A finished run opens its last step, as the place its story ends.
    if (TERMINAL.has(run.status) && steps.size && ![...steps.values()].some((s) => s.el.open)) [...steps.values()].pop().el.open = true;
  };
  listeners.runChanged.push(settle);
  if (state.run) settle(state.run);
  everySecond(() => {
    const now = Date.now();
    for (const step of steps.values()) if (!step.finished) step.time.textContent = stepDuration(now - step.started);
  }, signal);
}
