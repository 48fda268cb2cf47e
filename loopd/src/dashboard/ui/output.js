// The agent's output, live. What was shown is kept in sessionStorage with the stream position
// (`<step_id>:<byte offset>`, the stream's own ids), so a reload shows it again and resumes
// after it: no gap, no repeat.

import { h, TERMINAL } from './dom.js';
import { api, follow } from './api.js';

const KEEP_BYTES = 1 << 20;

export function outputPane(id, panel, state, listeners, signal) {
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
