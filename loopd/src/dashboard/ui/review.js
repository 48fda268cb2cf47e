// The review: the diff file by file, and a merge.

import { h, TERMINAL } from './dom.js';
import { api } from './api.js';
import { languageOf, highlight } from './highlight.js';

export function reviewPane(id, panel, state, listeners, signal) {
  const body = h('div', { id: 'review' });
  panel.append(body);
  let shownFor = null;
  async function show(run) {
    if (!TERMINAL.has(run.status)) {
      if (shownFor !== 'working') {
        shownFor = 'working';
        body.replaceChildren(h('p', { class: 'empty', text: 'The run is still working: its diff and merge are here once it ends.' }));
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
    const wt = run.worktree || {};
    const outcome = h('p', { class: 'outcome', id: 'merge-outcome', role: 'status', 'aria-live': 'polite' });
    if (run.merge) {
      outcome.textContent = run.merge.landed
        ? `Merged: ${String(run.merge.commit || '').slice(0, 12)}`
        : `Last merge did not land: ${run.merge.problem || ''}`;
      outcome.classList.toggle('ok', run.merge.landed);
    }
    const strategy = h('select', { id: 'merge-strategy' },
      ['squash', 'merge'].map((s) => h('option', { value: s, text: s, selected: s === (wt.merge_strategy === 'merge' ? 'merge' : 'squash') })));
    const target = h('input', { id: 'merge-target', type: 'text', placeholder: wt.merge_target_branch || wt.base_branch || 'main', value: wt.merge_target_branch || '' });
    const mergeButton = h('button', { type: 'button', class: 'primary', id: 'merge-button' }, 'Merge');
    const scrapButton = h('button', { type: 'button', id: 'scrap-button' }, 'Scrap');
    const prButton = h('button', { type: 'button', id: 'pr-button' }, 'Create pull request');
    prButton.addEventListener('click', async () => {
      prButton.disabled = true;
      outcome.classList.remove('ok');
      outcome.textContent = 'Pushing the branch…';
      try {
        const { pull_request: pr } = await api('POST', `/runs/${id}/create-pr`, {});
        outcome.replaceChildren('Pull request: ', h('a', { href: pr.url, rel: 'noreferrer noopener', target: '_blank', text: pr.url }));
        outcome.classList.add('ok');
      } catch (error) {
        outcome.textContent = `No pull request: ${error.message}`;
      } finally {
        prButton.disabled = false;
      }
    });
    mergeButton.addEventListener('click', async () => {
      mergeButton.disabled = true;
      outcome.classList.remove('ok');
      outcome.textContent = 'Merging…';
      const request = { strategy: strategy.value };
      if (target.value.trim()) request.target = target.value.trim();
      try {
        const { merge } = await api('POST', `/runs/${id}/merge`, request);
        outcome.textContent = `Merged into ${merge.target} (${merge.strategy}): ${merge.commit.slice(0, 12)}`;
        outcome.classList.add('ok');
      } catch (error) {
        outcome.textContent = `Not merged: ${error.message}`;
      } finally {
        mergeButton.disabled = false;
      }
    });
    scrapButton.addEventListener('click', async () => {
      if (!window.confirm(`Remove this run's worktree and delete its branch ${diff.run_branch}?`)) return;
      try {
        const { scrap } = await api('POST', `/runs/${id}/scrap`);
        outcome.classList.remove('ok');
        outcome.textContent = `Scrapped: ${scrap.branch_deleted ? `branch ${scrap.branch_deleted} deleted (git branch ${scrap.branch_deleted} ${scrap.branch_commit} brings it back)` : 'nothing left to remove'}`;
      } catch (error) {
        outcome.textContent = `Not scrapped: ${error.message}`;
      }
    });
    const files = diff.files.map((file) => h('details', { class: 'diff-file', open: diff.files.length <= 8 },
      h('summary', {},
        file.old_path ? `${file.old_path} → ${file.path}` : file.path, '  ',
        h('span', { class: 'plus', text: `+${file.additions}` }), ' ',
        h('span', { class: 'minus', text: `−${file.deletions}` })),
      file.binary ? h('p', { class: 'note', text: 'binary file' })
        : file.patch === null || file.patch === undefined ? h('p', { class: 'note', text: 'patch left out for size' })
          : patchView(file.path, file.patch)));
    body.replaceChildren(
      h('div', { class: 'merge' },
        h('label', {}, 'Strategy', strategy),
        h('label', {}, 'Target branch', target),
        mergeButton, scrapButton, prButton),
      outcome,
      h('p', { class: 'diff-summary' },
        `${diff.run_branch} against ${diff.base_branch}: ${diff.commits.length} commit${diff.commits.length === 1 ? '' : 's'}, ${diff.files.length} file${diff.files.length === 1 ? '' : 's'}, `,
        h('span', { class: 'plus', text: `+${diff.additions}` }), ' ', h('span', { class: 'minus', text: `−${diff.deletions}` }),
        diff.truncated ? ' (some patches left out for size)' : ''),
      h('ul', { class: 'commits' }, diff.commits.map((c) => h('li', {},
        h('code', { text: c.hash.slice(0, 10) }), ` ${c.subject} — ${c.author}`))),
      ...(files.length ? files : [h('p', { class: 'empty', text: 'No file changed.' })]));
  }
  listeners.runChanged.push((run) => { show(run); });
  if (state.run) show(state.run);
}

/// A file's patch, lines coloured by kind and the code in them by a small highlighter.
export function patchView(path, patch) {
  const lang = languageOf(path);
  const scan = { block: false };
  let inHunk = false;
  return h('pre', { 'data-lang': lang ? lang.name : '' }, patch.split('\n').map((line) => {
    if (line.startsWith('@@')) {
      scan.block = false;
      inHunk = true;
      return h('span', { class: 'd-hunk', text: line });
    }
    // git's lines before the first hunk (`diff --git`, `index`, `+++`) are not code.
    const header = !inHunk || line.startsWith('\\');
    const kind = header ? '' : line.startsWith('+') ? 'd-add' : line.startsWith('-') ? 'd-del' : '';
    if (header || !lang || !line) return h('span', { class: kind, text: line || ' ' });
    return h('span', { class: kind }, line[0], highlight(line.slice(1), lang, scan));
  }));
}
