// The API: JSON calls under the same guard as loopctl (same-origin, JSON bodies for every
// state change), and the server-sent event streams, followed across dropped connections.

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
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let frame = { id: null, event: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (frame.id !== null || frame.data.length) {
          onFrame({ id: frame.id, event: frame.event || 'message', data: frame.data.join('\n') });
        }
        frame = { id: null, event: null, data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? '' : line.slice(colon + 1);
      if (text.startsWith(' ')) text = text.slice(1);
      if (field === 'id') frame.id = text;
      else if (field === 'event') frame.event = text;
      else if (field === 'data') frame.data.push(text);
    }
  }
}

/// Follows a stream across dropped connections, resuming after the last frame's id (the
/// daemon's `Last-Event-ID`: no gap, no repeat). `onEnd` is called when the stream ends by
/// itself; the follower stops when `signal` aborts.
export async function follow({ url, lastId, onFrame, onEnd, signal, live }) {
  let position = lastId || null;
  let backoff = 500;
  while (!signal.aborted) {
    try {
      await readStream(url(), position, (frame) => {
        if (frame.id !== null) position = frame.id;
        backoff = 500;
        onFrame(frame);
      }, signal);
      if (signal.aborted) return;
      if (onEnd) { onEnd(position); return; }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      if (error instanceof ApiFailure && error.status < 500) { if (onEnd) onEnd(position, error); return; }
      setLive(false);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 15000);
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
