// The postmortem: its state, and its analyses as formatted text.

import { h, TERMINAL } from './dom.js';
import { api } from './api.js';

/// A line's inline marks: `code` and **bold**, as elements with text.
function inline(text) {
  const out = [];
  const pattern = /`([^`]+)`|\*\*([^*]+)\*\*/g;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) out.push(text.slice(at, match.index));
    out.push(match[1] !== undefined ? h('code', { text: match[1] }) : h('strong', { text: match[2] }));
    at = match.index + match[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/// A little Markdown, enough for the analyses: headings, lists, code blocks, paragraphs. Built
/// as elements with text, never as markup.
export function markdown(text) {
  const out = h('div', { class: 'prose' });
  const lines = text.split('\n');
  let list = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.append(h('p', {}, inline(paragraph.join(' '))));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (line.startsWith('```')) {
      flush(); list = null;
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith('```'); i += 1) code.push(lines[i]);
      out.append(h('pre', { text: code.join('\n') }));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    if (heading) {
      flush(); list = null;
      out.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
    } else if (item) {
      flush();
      if (!list) { list = h('ul'); out.append(list); }
      list.append(h('li', {}, inline(item[1])));
    } else if (line.trim() === '') {
      flush(); list = null;
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return out;
}

export function postmortemPane(id, panel, state, listeners, signal) {
  const body = h('div', { id: 'postmortem' });
  panel.append(body);
  async function show() {
    let report;
    try {
      ({ postmortem: report } = await api('GET', `/runs/${id}/postmortem`));
    } catch (error) {
      body.replaceChildren(h('p', { class: 'error', text: error.message }));
      return;
    }
    if (signal.aborted) return;
    const start = h('button', { type: 'button', id: 'postmortem-start' }, report.status ? 'Analyse again' : 'Analyse this run');
    const note = h('p', { class: 'note', role: 'status' });
    start.disabled = !(state.run && TERMINAL.has(state.run.status)) || report.status === 'running';
    start.addEventListener('click', async () => {
      start.disabled = true;
      try {
        await api('POST', `/runs/${id}/postmortem`, {});
        note.textContent = 'Started: the analyses appear here when they are written.';
      } catch (error) {
        note.textContent = `Not started: ${error.message}`;
        start.disabled = false;
      }
    });
    const files = h('div', { class: 'analyses' });
    body.replaceChildren(
      h('div', { class: 'toolbar' },
        h('span', { class: 'grow', text: report.status ? `Postmortem: ${report.status}${report.reason ? ` — ${report.reason}` : ''}` : 'No postmortem yet.' }),
        start),
      note, files);
    // The summary first, rendered; every other file folded, read when opened.
    const isSummary = (file) => /(^|\/)summary\.md$/.test(file.name);
    const ordered = [...report.files].sort((a, b) => Number(isSummary(b)) - Number(isSummary(a)));
    const raw = ordered.filter((file) => !isSummary(file));
    const rawList = h('div', { class: 'raw-files' });
    for (const file of ordered.filter(isSummary)) {
      const section = h('section', { class: 'summary', id: 'postmortem-summary' });
      files.append(section);
      await fill(section, file);
    }
    if (raw.length) files.append(h('details', { id: 'postmortem-files' }, h('summary', { text: `The analysis files (${raw.length})` }), rawList));
    for (const file of raw) {
      const fold = h('details', { class: 'raw-file', 'data-name': file.name }, h('summary', { text: file.name }));
      fold.addEventListener('toggle', () => { if (fold.open && fold.children.length === 1) fill(fold, file); });
      rawList.append(fold);
    }
  }

  async function fill(into, file) {
    try {
      const response = await fetch(`/runs/${id}/artifacts/analysis/${file.name.split('/').map(encodeURIComponent).join('/')}`, { credentials: 'same-origin' });
      if (!response.ok) throw new Error(`${response.status}`);
      const text = await response.text();
      into.append(file.name.endsWith('.md') ? markdown(text) : h('pre', { text }));
    } catch (error) {
      into.append(h('p', { class: 'note', text: `Cannot read ${file.name} (${error.message}).` }));
    }
  }
  show();
  // A postmortem's end arrives as an event: show it then.
  let last = null;
  listeners.runChanged.push((run) => {
    if (run.postmortem !== last) { last = run.postmortem; show(); }
  });
}
