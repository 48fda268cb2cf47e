// Verification: each command a verification step ran (`VERIFICATION_COMMAND`), by iteration,
// with its exit code and, one click away, its output: the part of the step's output from its
// `$ command` line to its `[exit …]` line.

import { h, duration } from './dom.js';
import { readStream } from './api.js';

export function verificationPane(id, panel, state, listeners, signal) {
  const root = h('div', { class: 'verification', id: 'verification' });
  const empty = h('p', { class: 'empty', text: 'No verification command has run yet.' });
  panel.append(root, empty);
  const sections = new Map();
  const perStep = new Map();
  const outputs = new Map();

  async function stepOutput(stepId) {
    if (!outputs.has(stepId)) {
      outputs.set(stepId, (async () => {
        let text = '';
        await readStream(`/runs/${id}/output?step=${stepId}&offset=0`, null, (frame) => {
          if (frame.event === 'output') text += JSON.parse(frame.data).content;
        }, signal);
        return text;
      })());
    }
    return outputs.get(stepId);
  }

  /// The `index`th command's part of a verification step's output.
  function commandPart(text, index) {
    const lines = text.split(/(?<=\n)/);
    let seen = -1;
    let part = null;
    for (const line of lines) {
      if (line.startsWith('$ ')) {
        seen += 1;
        if (seen === index) part = [];
        else if (part) break;
      }
      if (part) {
        part.push(line);
        if (/^\[(exit -?\d+|killed|timed out)[^\]]*\]\s*$/.test(line)) break;
      }
    }
    return part ? part.join('') : '';
  }

  function add(record) {
    const p = record.payload || {};
    const step = state.steps.get(p.step_id);
    const iteration = step ? step.iteration : '?';
    if (!sections.has(iteration)) {
      const list = h('ol', { class: 'commands' });
      const section = h('section', { 'data-iteration': String(iteration) }, h('h3', { text: `Iteration ${iteration}` }), list);
      root.append(section);
      sections.set(iteration, list);
    }
    const index = perStep.get(p.step_id) || 0;
    perStep.set(p.step_id, index + 1);
    const passed = p.exit_code === 0;
    const out = h('pre', { class: 'command-output', text: '' });
    const item = h('details', { class: `command ${passed ? 'passed' : 'failed'}`, 'data-seq': String(record.seq), 'data-exit': String(p.exit_code ?? '') },
      h('summary', {},
        h('span', { class: `verdict ${passed ? 'ok' : 'bad'}`, text: passed ? 'passed' : 'failed' }),
        h('code', { text: p.command }),
        h('span', { class: 'note', text: ` exit ${p.exit_code ?? '—'} · ${duration(p.duration_ms)}` })),
      out);
    let loaded = false;
    item.addEventListener('toggle', async () => {
      if (!item.open || loaded) return;
      loaded = true;
      out.textContent = 'loading…';
      try {
        out.textContent = commandPart(await stepOutput(p.step_id), index) || '(no output)';
      } catch (error) {
        loaded = false;
        out.textContent = `No output: ${error.message}`;
      }
    });
    sections.get(iteration).append(h('li', {}, item));
    empty.remove();
  }
  for (const record of state.events) if (record.type === 'VERIFICATION_COMMAND') add(record);
  listeners.event.push((record) => { if (record.type === 'VERIFICATION_COMMAND') add(record); });
}
