// The review desk: a finished run's diff file by file (unified or side by side, a tree of the
// changed files), comments on its lines, *Request changes* that sends them to the agent, and a
// merge. Reading the diff records nothing (`GET /runs/{id}/diff` is a read).

import { h, TERMINAL } from './dom.js';
import { api } from './api.js';
import { parsePatch, unifiedView, splitView } from './diff.js';
import { CommentDesk } from './comments.js';
import { fileTree } from './filetree.js';
import { mergeControls } from './merge.js';

const LAYOUT_KEY = 'loopd.diff-layout';

export function reviewPane(id, panel, state, listeners, signal) {
  const body = h('div', { id: 'review' });
  panel.append(body);
  let shownFor = null;
  let sentNote = '';

  async function show(run) {
    if (!TERMINAL.has(run.status)) {
      if (shownFor !== 'working') {
        shownFor = 'working';
        body.replaceChildren(
          h('p', { class: 'outcome ok', id: 'request-note', role: 'status', text: sentNote }),
          h('p', { class: 'empty', text: 'The run is working: its diff and merge are here once it ends.' }));
      }
      return;
    }
    if (shownFor === 'done') return;
    shownFor = 'done';
    body.replaceChildren(h('p', { class: 'note', text: 'Reading the diff…' }));
    let diff;
    try {
      ({ diff } = await api('GET', `/runs/${id}/diff`));
    } catch (error) {
      body.replaceChildren(h('p', { class: 'error', text: `No diff: ${error.message}` }));
      return;
    }
    if (signal.aborted) return;
    render(run, diff);
  }

  function render(run, diff) {
    const { bar, outcome } = mergeControls(id, run, diff);
    const desk = new CommentDesk(id, () => changed());
    const words = h('textarea', { id: 'request-body', rows: '1', placeholder: 'Anything about the change as a whole (optional)', 'aria-label': 'About the change as a whole' });
    const requestButton = h('button', { type: 'button', id: 'request-changes', class: 'primary' }, 'Request changes');
    const requestNote = h('p', { class: 'note', id: 'request-note', role: 'status', 'aria-live': 'polite' });
    const changed = () => {
      const n = desk.pending().length;
      requestButton.textContent = n ? `Request changes (${n} comment${n === 1 ? '' : 's'})` : 'Request changes';
      requestButton.disabled = n === 0 && !words.value.trim();
    };
    words.addEventListener('input', changed);
    requestButton.addEventListener('click', async () => {
      requestButton.disabled = true;
      const n = desk.pending().length;
      const request = words.value.trim() ? { body: words.value.trim() } : {};
      try {
        const { run: back } = await api('POST', `/runs/${id}/request-changes`, request);
        sentNote = `Sent back to work with ${n} comment${n === 1 ? '' : 's'}: the run is ${back.status}, and its next implementation step is asked for them.`;
        state.run = back;
        for (const listener of listeners.runChanged) listener(back);
      } catch (error) {
        requestNote.textContent = `Not sent: ${error.message}`;
        changed();
      }
    });

    let layout = localStorage.getItem(LAYOUT_KEY) === 'split' ? 'split' : 'unified';
    const layoutButtons = ['unified', 'split'].map((name) => h('button', {
      type: 'button', id: `layout-${name}`, 'aria-pressed': String(name === layout),
      onclick: () => {
        layout = name;
        localStorage.setItem(LAYOUT_KEY, name);
        for (const b of layoutButtons) b.setAttribute('aria-pressed', String(b.id === `layout-${name}`));
        for (const file of files) if (file.rendered) file.draw();
      },
    }, name === 'unified' ? 'Unified' : 'Side by side'));

    const patches = h('div', { class: 'diff-files' });
    const files = diff.files.map((file) => {
      const el = h('details', { class: 'diff-file', 'data-path': file.path, open: diff.files.length <= 8 },
        h('summary', {},
          file.old_path ? `${file.old_path} → ${file.path}` : file.path, '  ',
          h('span', { class: 'plus', text: `+${file.additions}` }), ' ',
          h('span', { class: 'minus', text: `−${file.deletions}` })));
      const entry = { el, rendered: false };
      entry.draw = () => {
        entry.rendered = true;
        el.querySelector('.diff, p.note')?.remove();
        if (file.binary) { el.append(h('p', { class: 'note', text: 'binary file' })); return; }
        if (file.patch === null || file.patch === undefined) { el.append(h('p', { class: 'note', text: 'patch left out for size' })); return; }
        const hunks = parsePatch(file.patch);
        el.append((layout === 'split' ? splitView : unifiedView)(file.path, hunks, desk.hook()));
        desk.place(patches);
      };
      el.addEventListener('toggle', () => { if (el.open && !entry.rendered) entry.draw(); });
      patches.append(el);
      return entry;
    });
    const pick = (path) => {
      const entry = files.find((f) => f.el.dataset.path === path);
      if (!entry) return;
      entry.el.open = true;
      if (!entry.rendered) entry.draw();
      entry.el.scrollIntoView({ block: 'start' });
    };

    body.replaceChildren(
      bar, outcome,
      h('div', { class: 'request' }, words, h('div', { class: 'toolbar' }, requestButton, requestNote)),
      h('p', { class: 'diff-summary' },
        `${diff.run_branch} against ${diff.base_branch}: ${diff.commits.length} commit${diff.commits.length === 1 ? '' : 's'}, ${diff.files.length} file${diff.files.length === 1 ? '' : 's'}, `,
        h('span', { class: 'plus', text: `+${diff.additions}` }), ' ', h('span', { class: 'minus', text: `−${diff.deletions}` }),
        diff.truncated ? ' (some patches left out for size)' : ''),
      h('ul', { class: 'commits' }, diff.commits.map((c) => h('li', {},
        h('code', { text: c.hash.slice(0, 10) }), ` ${c.subject} — ${c.author}`))),
      h('div', { class: 'toolbar layout', role: 'group', 'aria-label': 'Diff layout' }, layoutButtons),
      files.length
        ? h('div', { class: 'review-grid' }, fileTree(diff.files, pick), patches)
        : h('p', { class: 'empty', text: 'No file changed.' }));
    for (const entry of files) if (entry.el.open) entry.draw();
    changed();
    desk.load().then(() => desk.place(patches)).catch((error) => { requestNote.textContent = `Comments: ${error.message}`; });
  }

  listeners.runChanged.push((run) => { show(run); });
  if (state.run) show(state.run);
}
