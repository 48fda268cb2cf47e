// One step's output as a person reads it: Claude Code's tool calls (`● Tool(args)`) and their
// results (`  ⎿  …`) styled as such, everything else as it was printed. Text arrives in pieces
// cut anywhere; a line is styled once it is whole.

import { h } from './dom.js';

export class LogView {
  constructor() {
    this.pre = h('pre', { class: 'log', tabindex: '0' });
    this.text = '';
    this.partial = '';
    this.partialNode = null;
  }

  append(chunk) {
    this.text += chunk;
    const text = this.partial + chunk;
    if (this.partialNode) this.partialNode.remove();
    const lines = text.split(/(?<=\n)/);
    const last = lines[lines.length - 1];
    const whole = last.endsWith('\n') ? lines : lines.slice(0, -1);
    for (const line of whole) this.pre.append(this.line(line));
    this.partial = last.endsWith('\n') ? '' : last;
    this.partialNode = this.partial ? document.createTextNode(this.partial) : null;
    if (this.partialNode) this.pre.append(this.partialNode);
  }

  line(line) {
    if (line.startsWith('● ')) return h('span', { class: 'tool', text: line });
    const elbow = line.match(/^(\s+)⎿(.*)$/s);
    if (elbow) {
      // The elbow keeps its character (copied and read as the log has it) but is drawn by the
      // stylesheet: many monospace fonts have no ⎿ and would show a box.
      return h('span', { class: 'result' }, elbow[1], h('span', { class: 'elbow', text: '⎿' }), elbow[2]);
    }
    return document.createTextNode(line);
  }

  /// A word from the page, not from the agent.
  note(text) { this.pre.append(h('span', { class: 'end', text })); }
}
