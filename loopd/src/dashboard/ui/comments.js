// Comments on lines of a run's diff (`POST /runs/{id}/comments`): the button beside each line,
// the form it opens, and each comment under its line, saying whether it has gone to the agent.

import { h } from './dom.js';
import { api } from './api.js';

/// The comments of one review: where they show, and what is waiting to go to the agent.
export class CommentDesk {
  constructor(id, onChange) {
    this.id = id;
    this.onChange = onChange;
    this.comments = [];
    this.root = null;
  }

  /// Reads the run's comments (`GET /runs/{id}/comments`).
  async load() {
    const { comments } = await api('GET', `/runs/${this.id}/comments`);
    this.comments = comments;
    this.onChange();
  }

  /// Comments not yet sent with a request for changes.
  pending() { return this.comments.filter((c) => c.request === null || c.request === undefined); }

  /// The button a line gets: it opens a form under the line.
  hook() {
    return {
      line: (el, anchor) => {
        el.prepend(h('button', {
          type: 'button', class: 'add-comment',
          'aria-label': `Comment on line ${anchor.line}${anchor.side === 'old' ? ' (removed)' : ''}`,
          onclick: () => this.open(el, anchor),
        }));
      },
    };
  }

  /// Shows every comment under its line in `root` (a rendered diff, re-rendered on a switch of
  /// view).
  place(root) {
    this.root = root;
    for (const thread of root.querySelectorAll('.thread')) thread.remove();
    for (const comment of this.comments) this.show(comment);
  }

  thread(path, side, line) {
    if (!this.root) return null;
    const selector = `.dl[data-path="${CSS.escape(path)}"][data-side="${side}"][data-line="${line}"]`;
    const el = this.root.querySelector(selector);
    if (!el) return null;
    const row = el.parentElement.classList.contains('sl') ? el.parentElement : el;
    let thread = row.nextElementSibling;
    if (!thread || !thread.classList.contains('thread')) {
      thread = h('div', { class: 'thread', 'data-path': path, 'data-side': side, 'data-line': String(line) });
      row.after(thread);
    }
    return thread;
  }

  show(comment) {
    const thread = this.thread(comment.path, comment.side || 'new', comment.line);
    if (!thread) return;
    const sent = comment.request !== null && comment.request !== undefined;
    thread.append(h('div', { class: `comment${sent ? ' sent' : ''}`, 'data-seq': String(comment.seq) },
      h('p', { class: 'comment-state', text: sent ? `Sent to the agent with request ${comment.request}` : 'Goes to the agent with your next request for changes' }),
      h('p', { class: 'comment-body', text: comment.body })));
  }

  open(el, anchor) {
    const path = el.dataset.path;
    const thread = this.thread(path, anchor.side, anchor.line);
    if (!thread || thread.querySelector('form')) return;
    const text = h('textarea', { rows: '3', 'aria-label': `Comment on ${path} line ${anchor.line}`, placeholder: 'What should change here?' });
    const error = h('p', { class: 'error' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Add comment');
    const form = h('form', { class: 'comment-form' }, text, h('div', { class: 'toolbar' },
      save, h('button', { type: 'button', onclick: () => form.remove() }, 'Cancel'), error));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!text.value.trim()) { error.textContent = 'Say what should change.'; return; }
      save.disabled = true;
      try {
        const { comment } = await api('POST', `/runs/${this.id}/comments`, { path, line: anchor.line, side: anchor.side, body: text.value });
        form.remove();
        this.comments.push(comment);
        this.show(comment);
        this.onChange();
      } catch (failure) {
        error.textContent = `Not saved: ${failure.message}`;
        save.disabled = false;
      }
    });
    thread.append(form);
    text.focus();
  }
}
