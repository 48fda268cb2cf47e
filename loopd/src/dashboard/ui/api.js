// The API: JSON calls under the same guard as loopctl (same-origin, JSON bodies for every
// state change), and the server-sent event streams, followed across dropped connections.

import { EventStreamParser } from './sse.js';

export class ApiFailure extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// One API call. A body is always sent as JSON: the guard refuses any other.
export async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign('/login');
    throw new ApiFailure(401, 'log in first', 'unauthorized');
  }
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: text }; }
  if (!response.ok) throw new ApiFailure(response.status, data.error || response.statusText, data.code);
  return data;
}

/// Reads one server-sent event stream until it ends, calling `onFrame` for each frame.
export async function readStream(url, lastId, onFrame, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (lastId) headers['Last-Event-ID'] = lastId;
  const response = await fetch(url, { headers, signal, credentials: 'same-origin' });
  if (response.status === 401) {
    location.assign('/login');
    throw new ApiFailure(401, 'log in first', 'unauthorized');
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiFailure(response.status, body.error || response.statusText, body.code);
  }
  const parser = new EventStreamParser(onFrame);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser.push(value);
  }
}

/// The page's one backoff between attempts: half a second, doubling up to 15 s, back to the
/// start once an attempt gets through.
export class Backoff {
  constructor(first = 500, most = 15000) {
    this.first = first;
    this.most = most;
    this.next = first;
  }

  /// Waits the current delay (less when `signal` aborts first) and doubles the next one.
  wait(signal) {
    const delay = this.next;
    this.next = Math.min(this.next * 2, this.most);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  reset() { this.next = this.first; }
}

/// Follows a stream across dropped connections, resuming after the last frame's id (the
/// daemon's `Last-Event-ID`: no gap, no repeat). `onEnd` is called when the stream ends by
/// itself; the follower stops when `signal` aborts.
export async function follow({ url, lastId, onFrame, onEnd, signal, live }) {
  let position = lastId || null;
  const backoff = new Backoff();
  while (!signal.aborted) {
    try {
      await readStream(url(), position, (frame) => {
        if (frame.id !== null) position = frame.id;
        backoff.reset();
        onFrame(frame);
      }, signal);
      if (signal.aborted) return;
      if (onEnd) { onEnd(position); return; }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      if (error instanceof ApiFailure && error.status < 500) { if (onEnd) onEnd(position, error); return; }
      setLive(false);
      await backoff.wait(signal);
    }
    if (live) setLive(true);
  }
}

/// The header's word on the page's stream: live, reconnecting, or nothing (a page without one).
export function setLive(on) {
  const el = document.getElementById('live');
  el.textContent = on === null ? '' : on ? 'live' : 'reconnecting…';
  el.classList.toggle('on', on === true);
}
