// What a person does with a finished run's branch: merge it, open a pull request, or scrap it.

import { h } from './dom.js';
import { api } from './api.js';

/// The merge bar and the line that says how the last action went.
export function mergeControls(id, run, diff) {
  const wt = run.worktree || {};
  const outcome = h('p', { class: 'outcome', id: 'merge-outcome', role: 'status', 'aria-live': 'polite' });
  if (run.merge) {
    outcome.textContent = run.merge.landed
      ? `Merged: ${String(run.merge.commit || '').slice(0, 12)}`
      : `Last merge did not land: ${run.merge.problem || ''}`;
    outcome.classList.toggle('ok', run.merge.landed);
    outcome.classList.toggle('bad', !run.merge.landed);
  }
  const strategy = h('select', { id: 'merge-strategy' },
    ['squash', 'merge'].map((s) => h('option', { value: s, text: s, selected: s === (wt.merge_strategy === 'merge' ? 'merge' : 'squash') })));
  const target = h('input', { id: 'merge-target', type: 'text', placeholder: wt.merge_target_branch || wt.base_branch || 'main', value: wt.merge_target_branch || '' });
  const mergeButton = h('button', { type: 'button', class: 'primary', id: 'merge-button' }, 'Merge');
  const scrapButton = h('button', { type: 'button', id: 'scrap-button' }, 'Scrap');
  const prButton = h('button', { type: 'button', id: 'pr-button' }, 'Create pull request');
  const say = (text, ok) => {
    outcome.textContent = text;
    outcome.classList.toggle('ok', ok === true);
    outcome.classList.toggle('bad', ok === false);
  };
  prButton.addEventListener('click', async () => {
    prButton.disabled = true;
    say('Pushing the branch…');
    try {
      const { pull_request: pr } = await api('POST', `/runs/${id}/create-pr`, {});
      outcome.replaceChildren('Pull request: ', h('a', { href: pr.url, rel: 'noreferrer noopener', target: '_blank', text: pr.url }));
      outcome.classList.add('ok');
    } catch (error) {
      say(`No pull request: ${error.message}`, false);
    } finally {
      prButton.disabled = false;
    }
  });
  mergeButton.addEventListener('click', async () => {
    mergeButton.disabled = true;
    say('Merging…');
    const request = { strategy: strategy.value };
    if (target.value.trim()) request.target = target.value.trim();
    try {
      const { merge } = await api('POST', `/runs/${id}/merge`, request);
      say(`Merged into ${merge.target} (${merge.strategy}): ${merge.commit.slice(0, 12)}`, true);
    } catch (error) {
      say(`Not merged: ${error.message}`, false);
    } finally {
      mergeButton.disabled = false;
    }
  });
  scrapButton.addEventListener('click', async () => {
    if (!window.confirm(`Remove this run's worktree and delete its branch ${diff.run_branch}?`)) return;
    try {
      const { scrap } = await api('POST', `/runs/${id}/scrap`);
      say(`Scrapped: ${scrap.branch_deleted ? `branch ${scrap.branch_deleted} deleted (git branch ${scrap.branch_deleted} ${scrap.branch_commit} brings it back)` : 'nothing left to remove'}`);
    } catch (error) {
      say(`Not scrapped: ${error.message}`, false);
    }
  });
  const bar = h('div', { class: 'merge' },
    h('label', {}, 'Strategy', strategy),
    h('label', {}, 'Target branch', target),
    mergeButton, scrapButton, prButton);
  return { bar, outcome };
}
