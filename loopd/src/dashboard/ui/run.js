// A run: its header and controls, live from its events, and its tabs.

import { h, TERMINAL, money, duration, count, elapsed, waitingText, statusBadge, debounce, view, everySecond } from './dom.js';
import { api, follow, setLive } from './api.js';
import { planPane } from './plan.js';
import { verificationPane } from './verification.js';
import { timelineView } from './timeline.js';
import { outputPane } from './output.js';
import { reviewPane } from './review.js';
import { postmortemPane } from './postmortem.js';
import { experimentPane, figure } from './experiment.js';

const CONTROLS = [
  ['pause', 'Pause', (s) => s === 'RUNNING'],
  ['resume', 'Resume', (s) => s === 'PAUSED'],
  ['cancel', 'Cancel', (s) => s === 'PENDING' || s === 'RUNNING' || s === 'PAUSED'],
  ['retry', 'Retry', (s) => s === 'FAILED'],
];

const RUN_TABS = ['output', 'plan', 'verification', 'timeline', 'review', 'postmortem', 'experiment'];

export function runPage(id, tab, signal, detail) {
  const root = view();
  root.replaceChildren();
  const state = { run: null, steps: new Map(), tokens: { input: 0, output: 0 }, events: [] };
  const listeners = { stepStarted: [], runChanged: [], event: [] };

  const title = h('h1', { id: 'run-name', text: id });
  const fields = {};
  const labels = {};
  const field = (key, label) => {
    fields[key] = h('dd', { id: `run-${key}`, text: '—' });
    labels[key] = h('dt', { id: `run-${key}-label`, text: label });
    return h('div', {}, h('dl', {}, labels[key], fields[key]));
  };
  const controls = CONTROLS.map(([action, label]) => h('button', {
    type: 'button', id: `control-${action}`, disabled: true,
    onclick: () => (action === 'cancel' ? confirmCancel() : control(action)),
  }, label));
  const controlNote = h('p', { class: 'note', id: 'control-note', role: 'status', 'aria-live': 'polite' });
  // Cancel cannot be undone (a canceled run's work stops where it is): it asks first.
  function confirmCancel() {
    const yes = h('button', { type: 'button', class: 'danger', id: 'control-cancel-confirm' }, 'Cancel the run');
    const no = h('button', { type: 'button', id: 'control-cancel-keep' }, 'Keep it going');
    yes.addEventListener('click', () => control('cancel'));
    no.addEventListener('click', () => { controlNote.textContent = ''; });
    controlNote.replaceChildren('Cancel this run? Its agent is stopped now. ', yes, ' ', no);
    no.focus();
  }
  const reason = h('p', { class: 'reason', id: 'run-reason' });
  const tabs = h('nav', { class: 'tabs', role: 'tablist', 'aria-label': 'Run' },
    RUN_TABS.map((name) => h('a', {
      href: `#/runs/${id}/${name}`, role: 'tab', id: `tab-${name}`,
      'aria-selected': String(name === tab), text: name[0].toUpperCase() + name.slice(1),
      // Experiment: only on an experiment run (its report answers), found when the page opens.
      hidden: name === 'experiment' && tab !== 'experiment',
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
    if (!standing) fields.tasks.textContent = `${run.tasks_done} / ${run.tasks_total}`;
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
      // The API pauses after the current step unless `now`; the page's Pause keeps stopping
      // the call in flight, as it always did.
      const path = action === 'pause' ? 'pause?now=true' : action;
      const { run } = await api('POST', `/runs/${id}/${path}`);
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

  // An experiment has no tasks (its iterations are ideas measured): in their place the header
  // shows its standing, from its report — which answers only for an experiment run, and so also
  // says whether the Experiment tab is shown.
  let standing = null;
  const readStanding = debounce(async () => {
    let report;
    try {
      report = await api('GET', `/runs/${id}/experiment`);
    } catch {
      return;
    }
    if (signal.aborted) return;
    document.getElementById('tab-experiment').hidden = false;
    const s = report.summary || {};
    // Two short lines, so the header's narrow cell shows them whole.
    standing = s.best === null || s.best === undefined
      ? ['measuring the start']
      : [`best ${figure(s.best)} (iteration ${s.best_iteration ?? 0})`, `${s.kept} kept, ${s.discarded} discarded`];
    labels.tasks.textContent = 'Experiment';
    fields.tasks.replaceChildren(...standing.map((line) => h('span', { class: 'line', text: line })));
    fields.tasks.title = `${s.iterations ?? 0} iterations decided`;
  }, 300);

  const timeline = timelineView(state);
  const tick = () => { timeline.tick(); if (state.run && !TERMINAL.has(state.run.status)) { fields.time.textContent = duration(elapsed(state.run)); if (state.run.waiting) reason.textContent = `Waiting: ${waitingText(state.run)}`; } };
  everySecond(tick, signal);

  // The run's events: the header follows them, the timeline lists them, and the output pane
  // learns from them when a new step starts.
  let lastSeq = 0;
  function onEvent(record) {
    // The run's stream and, after it ends, the stream of every run meet at one seq: an event
    // is taken once.
    if (record.seq <= lastSeq) return;
    lastSeq = record.seq;
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
    if (standing && (String(record.type).startsWith('EXPERIMENT_') || record.type === 'RUN_COMPLETED')) readStanding('standing');
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
    else if (tab === 'timeline') { panel.append(timeline.element); timeline.draw(); }
    else if (tab === 'review') reviewPane(id, panel, state, listeners, signal);
    else if (tab === 'experiment') experimentPane(id, panel, listeners, signal, detail === undefined ? null : Number(detail));
    else postmortemPane(id, panel, state, listeners, signal);
    readStanding('standing');
  })();
}
