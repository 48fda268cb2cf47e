// The `text/event-stream` reader: decoded text in, one frame out per blank line, by the
// standard's line and field rules (`id`, `event`, `data` lines joined with newlines; `:`
// comments skipped; a space after the colon dropped; CRLF or LF).
//
// Each chunk is scanned once: lines are cut out of the chunk where they stand, never by
// re-slicing a buffer after every line, and a line that arrives in pieces (a big output frame)
// is kept as its pieces and joined once, when its end arrives — so the work is linear in the
// bytes received, however the network cuts them.

export class EventStreamParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.pending = [];
    this.id = null;
    this.event = null;
    this.data = null;
  }

  /// Takes the next piece of decoded text.
  push(chunk) {
    let start = 0;
    let newline = chunk.indexOf('\n');
    if (this.pending.length) {
      if (newline < 0) {
        this.pending.push(chunk);
        return;
      }
      this.pending.push(chunk.slice(0, newline));
      const line = this.pending.join('');
      this.pending = [];
      this.line(line, 0, line.length);
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    }
    while (newline >= 0) {
      this.line(chunk, start, newline);
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) this.pending.push(chunk.slice(start));
  }

  /// One line: `text` from `start` up to (not including) its `\n` at `end`.
  line(text, start, end) {
    if (end > start && text.charCodeAt(end - 1) === 13) end -= 1;
    if (end === start) {
      if (this.id !== null || this.data !== null) {
        this.onFrame({ id: this.id, event: this.event || 'message', data: this.data ?? '' });
      }
      this.id = null;
      this.event = null;
      this.data = null;
      return;
    }
    if (text.charCodeAt(start) === 58) return; // `:` a comment, the keep-alives
    let colon = text.indexOf(':', start);
    if (colon < 0 || colon > end) colon = end;
    let from = colon === end ? end : colon + 1;
    if (from < end && text.charCodeAt(from) === 32) from += 1;
    const field = colon - start;
    if (field === 4 && text.startsWith('data', start)) {
      const value = text.slice(from, end);
      this.data = this.data === null ? value : `${this.data}\n${value}`;
    } else if (field === 2 && text.startsWith('id', start)) {
      this.id = text.slice(from, end);
    } else if (field === 5 && text.startsWith('event', start)) {
      this.event = text.slice(from, end);
    }
  }
}
