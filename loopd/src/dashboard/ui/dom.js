// Small helpers every view uses: elements built from data (text nodes, never markup), figures
// in words, and the page's one-second ticker.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELED']);
export const STATUSES = ['PENDING', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELED'];

export function money(usd) {
  if (!usd) return '$0';
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/// A step's time: tenths of a second while it is short, as `duration` after.
export function stepDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  return ms < 10000 ? `${(ms / 1000).toFixed(1)}s` : duration(ms);
}

export function count(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function basename(path) {
  const parts = String(path || '').split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path || '');
}

export function elapsed(run) {
  const end = TERMINAL.has(run.status) ? run.updated_ms : Date.now();
  return end - run.created_ms;
}

/// The reason a run does not move, with a countdown to its end when known.
export function waitingText(run) {
  const w = run.waiting;
  if (!w) return '';
  let text = w.reason || w.code;
  if (w.until_ms) text += ` — ${duration(w.until_ms - Date.now())} left`;
  return text;
}

/// One account's state in words, as `loopctl accounts` gives it; without its last window when
/// `windows` is false (the board draws every window apart).
export function accountState(account, { windows = true } = {}) {
  const parts = [];
  if (account.limited_until_ms) {
    let held = `held ${duration(account.limited_until_ms - Date.now())} more (${account.limit_reason || 'usage limit'})`;
    if (account.probe) held += `; run ${account.probe.slice(0, 8)} calls first`;
    parts.push(held);
  } else {
    parts.push('ok');
  }
  if (windows && account.window_utilization !== null && account.window_utilization !== undefined) {
    parts.push(`${account.window || 'window'} ${Math.round(account.window_utilization * 100)}% used (${account.window_status || 'allowed'})`);
  }
  if (windows && account.window_resets_at_ms && account.window_resets_at_ms > Date.now()) {
    parts.push(`${account.window || 'window'} resets in ${duration(account.window_resets_at_ms - Date.now())}`);
  }
  if (account.concurrency) {
    const line = account.turn_queue.length;
    parts.push(`${account.calls_in_flight}/${account.concurrency} calls${line ? `, ${line} waiting for a turn` : ''}`);
  }
  return parts.join('; ');
}

export function statusBadge(status) {
  return h('span', { class: `status s-${status}`, text: status });
}

export function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

export function debounce(fn, wait) {
  const timers = new Map();
  return (key) => {
    if (timers.has(key)) return;
    timers.set(key, setTimeout(() => { timers.delete(key); fn(key); }, wait));
  };
}

export const view = () => document.getElementById('view');

// Elapsed times and countdowns tick here, on the page, without asking the daemon.
const tickers = new Set();
setInterval(() => { for (const tick of tickers) tick(); }, 1000);

/// Calls `tick` every second until `signal` aborts.
export function everySecond(tick, signal) {
  tickers.add(tick);
  signal.addEventListener('abort', () => tickers.delete(tick));
}
