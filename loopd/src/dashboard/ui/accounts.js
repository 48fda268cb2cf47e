// The board's accounts (GET /accounts): each account's windows with their reset countdowns,
// its holds and spend, and the forecast of every run that has not ended — when it is expected
// to finish and what binds it first. Countdowns are computed from the answer's reset times on
// each tick, so they run down without asking the daemon again.

import { h, money, duration, count, accountState } from './dom.js';

/// "in 2h 05m" (or "now" once passed) to `ms`, from `now`.
function countdown(ms, now) {
  return ms > now ? `in ${duration(ms - now)}` : 'now';
}

/// A time of day to the minute, in the browser's zone.
function hourMinute(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

/// Longest account name shown whole; a longer one is shortened (the cell's title keeps it).
const LABEL_CHARS = 40;

/// An account's name as a cell shows it. A name the daemon derives for a command agent is
/// `command:` and the whole command line (`command:sh /home/me/tools/agents/demo.sh --fast`):
/// its paths are shortened to their last part (`command:sh demo.sh --fast`), and whatever is
/// still too long keeps its start and end around an ellipsis. Declared names (`team`,
/// `work-1`) and derived ones that fit are shown as they are.
export function accountLabel(name) {
  let label = String(name || '');
  if (label.startsWith('command:')) {
    label = 'command:' + label.slice('command:'.length).split(/\s+/)
      .map((word) => (word.includes('/') && !word.endsWith('/') ? word.slice(word.lastIndexOf('/') + 1) : word))
      .join(' ');
  }
  if (label.length <= LABEL_CHARS) return label;
  const head = Math.ceil((LABEL_CHARS - 1) / 2);
  const tail = LABEL_CHARS - 1 - head;
  return `${label.slice(0, head)}\u2026${label.slice(label.length - tail)}`;
}

function percent(share) {
  return `${Math.round(share * 100)}%`;
}

/// A reset as a countdown that `tick` runs down: "resets in 2h 05m".
function resetSpan(word, ms, now) {
  return h('span', { class: 'win-reset', 'data-until': ms || null, 'data-word': word, text: resetText(word, ms, now) });
}

function resetText(word, ms, now) {
  if (!ms) return 'no reset known';
  return ms > now ? `${word} ${countdown(ms, now)}` : 'reset passed';
}

/// The bar's fill, sized through the CSSOM (the page's policy refuses inline style markup).
function fill(used) {
  const el = h('span', { class: 'fill' });
  el.style.width = `${used === null ? 0 : Math.min(100, used * 100)}%`;
  return el;
}

/// One window's line: its name, how much is used, and when it resets.
function windowLine(win, now) {
  const used = win.utilization === null || win.utilization === undefined ? null : win.utilization;
  return h('div', { class: 'win', 'data-window': win.window, 'data-status': win.status, title: `${win.window}: ${win.status}` },
    h('span', { class: 'win-name', text: win.window }),
    h('span', { class: 'bar' },
      h('span', { class: 'track', role: 'progressbar', 'aria-label': `${win.window} used`, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': used === null ? null : String(Math.round(used * 100)) },
        fill(used)),
      h('span', { class: 'label', text: used === null ? '?' : percent(used) })),
    resetSpan('resets', win.resets_at_ms, now));
}

/// A model family's own limit: only that family's calls wait.
function modelLimitLine(limit, now) {
  return h('div', { class: 'win held', 'data-family': limit.family, title: limit.reason },
    h('span', { class: 'win-name', text: limit.family }),
    h('span', { class: 'win-held', text: `${limit.family} calls held` }),
    resetSpan('until', limit.until_ms, now));
}

/// Whether a limit holds the account (or one of its model families) now.
function held(account, now) {
  return (account.limited_until_ms || 0) > now
    || (account.model_limits || []).some((limit) => limit.until_ms > now);
}

function windowsCell(account, now) {
  const lines = [
    ...(account.windows || []).map((win) => windowLine(win, now)),
    ...(account.model_limits || []).map((limit) => modelLimitLine(limit, now)),
  ];
  return lines.length ? lines : [h('span', { class: 'note', text: 'no window reported yet' })];
}

/// What a forecast says binds first, in words, with the reset as a countdown.
function bindingText(forecast, now) {
  const b = forecast.binding;
  if (!b) return forecast.finish_ms ? 'its own pace' : '—';
  if (b.kind === 'window') {
    return `${b.window} window of ${accountLabel(b.account)}, resets ${countdown(b.resets_at_ms, now)}`;
  }
  if (b.kind === 'limit') {
    return `usage limit of ${accountLabel(b.account)}, resets ${countdown(b.until_ms, now)}`;
  }
  if (b.kind === 'max_cost') {
    return `max_cost_usd: ${money(b.expected_usd)} expected of ${money(b.max_usd)}, stops first`;
  }
  return b.kind;
}

function finishText(forecast, now) {
  if (forecast.finish_ms) return `${countdown(forecast.finish_ms, now)} (${hourMinute(forecast.finish_ms)})`;
  if (forecast.binding && forecast.binding.kind === 'max_cost') return 'never: max_cost_usd first';
  return 'not known yet';
}

/// The accounts section: `update(answer, runs)` draws GET /accounts' answer (`runs`, the
/// board's runs by id, names them); `tick()` runs its countdowns down.
export function accountsSection() {
  let answer = { accounts: [], forecasts: [] };
  let names = new Map();
  const accountRows = h('tbody', { id: 'accounts' });
  const forecastRows = h('tbody', { id: 'forecasts' });
  const forecastBlock = h('div', { id: 'forecast-block', hidden: true },
    h('h3', { text: 'Forecast' }),
    h('p', { class: 'note', text: 'From each run\u2019s pace so far and the tasks left, against its account\u2019s windows, their resets and its reserve.' }),
    h('table', { class: 'runs forecasts' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-name', scope: 'col', text: 'Run' }),
        h('th', { class: 'c-account', scope: 'col', text: 'Account' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Left' }),
        h('th', { class: 'c-pace num', scope: 'col', text: 'Per iteration' }),
        h('th', { class: 'c-finish', scope: 'col', text: 'Expected finish' }),
        h('th', { class: 'c-binds', scope: 'col', text: 'Binds first' }))),
      forecastRows));
  const section = h('section', { id: 'accounts-section', hidden: true },
    h('h2', { text: 'Accounts' }),
    h('table', { class: 'runs accounts' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'c-account', scope: 'col', text: 'Account' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Runs' }),
        h('th', { class: 'c-iter num', scope: 'col', text: 'Calls' }),
        h('th', { class: 'c-cost num', scope: 'col', text: 'Today' }),
        h('th', { class: 'c-cost num', scope: 'col', text: 'Month' }),
        h('th', { class: 'c-windows', scope: 'col', text: 'Windows' }),
        h('th', { class: 'c-note', scope: 'col', text: 'State' }))),
      accountRows),
    forecastBlock);

  function draw() {
    const now = Date.now();
    accountRows.replaceChildren(...answer.accounts.map((account) => {
      const state = accountState(account, { windows: false });
      return h('tr', { 'data-account': account.account },
        h('td', { class: 'c-account', title: account.account, text: accountLabel(account.account) }),
        h('td', { class: 'c-iter num', text: String(account.runs.length) }),
        h('td', { class: 'c-iter num', text: count(account.calls) }),
        h('td', { class: 'c-cost num', text: money(account.spent_day_usd) }),
        h('td', { class: 'c-cost num', text: money(account.spent_month_usd) }),
        h('td', { class: 'c-windows' }, windowsCell(account, now)),
        h('td', { class: held(account, now) ? 'c-note waiting' : 'c-note', title: state, text: state }));
    }));
    const forecasts = answer.forecasts || [];
    forecastRows.replaceChildren(...forecasts.map((forecast) => {
      const name = names.get(forecast.run_id) || forecast.run_id.slice(0, 8);
      const pace = forecast.iteration_ms === null || forecast.iteration_ms === undefined
        ? '—'
        : `${duration(forecast.iteration_ms)} · ${money(forecast.iteration_cost_usd)}`;
      const binds = bindingText(forecast, now);
      return h('tr', { 'data-forecast': forecast.run_id, 'data-binding': forecast.binding ? forecast.binding.kind : 'none' },
        h('td', { class: 'c-name' }, h('a', { href: `#/runs/${forecast.run_id}`, text: name, title: forecast.run_id })),
        h('td', { class: 'c-account', title: forecast.account, text: accountLabel(forecast.account) }),
        h('td', { class: 'c-iter num', text: forecast.tasks_left === null || forecast.tasks_left === undefined ? '?' : String(forecast.tasks_left) }),
        h('td', { class: 'c-pace num', text: pace }),
        h('td', { class: 'c-finish', title: forecast.finish || '', text: finishText(forecast, now) }),
        h('td', { class: 'c-binds', title: binds, text: binds }));
    }));
    forecastBlock.hidden = forecasts.length === 0;
    section.hidden = answer.accounts.length === 0;
  }

  return {
    section,
    update(next, runs) {
      answer = next;
      names = new Map([...runs.values()].map((run) => [run.id, run.name]));
      draw();
    },
    // Only the texts that count down change; rows are not rebuilt, so nothing moves.
    tick() {
      const now = Date.now();
      const byName = new Map(answer.accounts.map((a) => [a.account, a]));
      for (const span of accountRows.querySelectorAll('.win-reset[data-until]')) {
        span.textContent = resetText(span.dataset.word, Number(span.dataset.until), now);
      }
      for (const row of accountRows.rows) {
        const account = byName.get(row.dataset.account);
        if (!account) continue;
        const state = accountState(account, { windows: false });
        row.cells[6].textContent = state;
        row.cells[6].className = held(account, now) ? 'c-note waiting' : 'c-note';
        row.cells[6].title = state;
      }
      const byRun = new Map((answer.forecasts || []).map((f) => [f.run_id, f]));
      for (const row of forecastRows.rows) {
        const forecast = byRun.get(row.dataset.forecast);
        if (!forecast) continue;
        row.cells[4].textContent = finishText(forecast, now);
        row.cells[5].textContent = bindingText(forecast, now);
        row.cells[5].title = row.cells[5].textContent;
      }
    },
  };
}
