// What a run needs from a person, derived from what the log knows of it: a finished branch
// that waits for its merge, a merge that did not land, a failure, or a wait on an account's
// budget. Nothing here is stored: the board asks again as runs change.

import { duration } from './dom.js';

// Waits that end only when an account has room again.
const BUDGET_WAITS = new Set(['usage_limit', 'account_limit', 'account_reserve', 'account_probe']);

/// `{kind, text}` when `run` needs a person, else `null`. Kinds: `merge`, `merge_failed`,
/// `failed`, `budget`.
export function needOf(run, now = Date.now()) {
  const wt = run.worktree || {};
  if (run.status === 'COMPLETED' && run.merge && !run.merge.landed) {
    return { kind: 'merge_failed', text: `merge did not land: ${run.merge.problem || 'see the review'}` };
  }
  if (run.status === 'COMPLETED' && !run.merge && wt.run_branch && !wt.removed) {
    return { kind: 'merge', text: `completed: ${wt.run_branch} awaits review and merge` };
  }
  if (run.status === 'FAILED') {
    return { kind: 'failed', text: `failed: ${run.failure_reason || run.exit_reason || 'unknown'}` };
  }
  if (run.waiting && BUDGET_WAITS.has(run.waiting.code) && run.status !== 'CANCELED') {
    const left = run.waiting.until_ms ? ` (${duration(run.waiting.until_ms - now)} left)` : '';
    return { kind: 'budget', text: `waiting on a budget: ${run.waiting.reason}${left}` };
  }
  return null;
}
