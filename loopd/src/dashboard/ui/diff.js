// A file's patch as lines a person reads and comments on: unified (one column, the patch's
// own lines) or side by side (the base on the left, the run's branch on the right).
//
// Each line is one block element, and the code in it an inline run of text and token spans:
// nothing inside a line is a block, so a highlighted keyword stays where the patch has it. The
// line numbers are drawn from `data-n` by the stylesheet, so a line's text is the patch line,
// indentation and all.

import { h } from './dom.js';
import { languageOf, highlight } from './highlight.js';

/// The hunks of a unified patch (git's header lines before the first `@@` are left out), each
/// line with its kind and its numbers in the base (`old`) and the run's branch (`new`).
export function parsePatch(patch) {
  const hunks = [];
  let hunk = null;
  let oldLine = 0;
  let newLine = 0;
  const lines = patch.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (const text of lines) {
    const head = text.match(/^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/);
    if (head) {
      oldLine = Number(head[1]);
      newLine = Number(head[2]);
      hunk = { header: text, lines: [] };
      hunks.push(hunk);
      continue;
    }
    if (!hunk) continue;
    if (text.startsWith('+')) hunk.lines.push({ kind: 'add', text, new: newLine++ });
    else if (text.startsWith('-')) hunk.lines.push({ kind: 'del', text, old: oldLine++ });
    else if (text.startsWith('\\')) hunk.lines.push({ kind: 'meta', text });
    else hunk.lines.push({ kind: 'ctx', text, old: oldLine++, new: newLine++ });
  }
  return hunks;
}

/// Where a comment on `line` goes: the branch's line number, or the base's for a removed line.
export function anchorOf(line) {
  if (line.kind === 'del') return { side: 'old', line: line.old };
  if (line.kind === 'add' || line.kind === 'ctx') return { side: 'new', line: line.new };
  return null;
}

const KIND_CLASS = { add: 'd-add', del: 'd-del', ctx: 'd-ctx', meta: 'd-meta' };

/// The code of one line: its first character (`+`, `-`, ` `) as it is, the rest highlighted.
function code(text, lang, scan, prefix) {
  const body = prefix ? text.slice(1) : text;
  const parts = lang && body ? highlight(body, lang, scan) : [body];
  return h('span', { class: 'code' }, prefix ? text[0] : null, parts);
}

/// One line's element. `hooks.line(el, anchor)` lets the review add its comment button.
function lineElement(path, line, text, numbers, lang, scan, hooks, prefix) {
  const anchor = anchorOf(line);
  const el = h('div', {
    class: `dl ${KIND_CLASS[line.kind]}`,
    'data-path': path,
    'data-side': anchor ? anchor.side : null,
    'data-line': anchor ? String(anchor.line) : null,
  }, numbers.map((n) => h('span', { class: 'ln', 'data-n': n === undefined ? '' : String(n) })));
  if (anchor && hooks) hooks.line(el, anchor);
  el.append(code(text, line.kind === 'meta' ? null : lang, scan, prefix && line.kind !== 'meta'));
  return el;
}

function hunkElement(hunk, columns) {
  return h('div', { class: `dl d-hunk${columns === 2 ? ' wide' : ''}` },
    h('span', { class: 'ln', 'data-n': '' }), columns === 1 ? h('span', { class: 'ln', 'data-n': '' }) : null,
    h('span', { class: 'code', text: hunk.header }));
}

/// The unified view: every patch line from the first hunk on, in order.
export function unifiedView(path, hunks, hooks) {
  const lang = languageOf(path);
  const scan = { block: false };
  const out = h('div', { class: 'diff unified', 'data-lang': lang ? lang.name : '' });
  for (const hunk of hunks) {
    scan.block = false;
    out.append(hunkElement(hunk, 1));
    for (const line of hunk.lines) {
      out.append(lineElement(path, line, line.text, [line.old, line.new], lang, scan, hooks, true));
    }
  }
  return out;
}

/// Side by side: a removed line beside the line added in its place, context on both sides.
export function splitView(path, hunks, hooks) {
  const lang = languageOf(path);
  const scans = { old: { block: false }, new: { block: false } };
  const out = h('div', { class: 'diff split', 'data-lang': lang ? lang.name : '' });
  const cell = (line, side) => (line
    ? lineElement(path, line, line.kind === 'meta' ? line.text : line.text.slice(1), [side === 'old' ? line.old : line.new], lang, scans[side], hooks, false)
    : h('div', { class: 'dl d-none' }, h('span', { class: 'ln', 'data-n': '' }), h('span', { class: 'code' })));
  const row = (left, right) => out.append(h('div', { class: 'sl' }, cell(left, 'old'), cell(right, 'new')));
  for (const hunk of hunks) {
    scans.old.block = false;
    scans.new.block = false;
    out.append(hunkElement(hunk, 2));
    let dels = [];
    let adds = [];
    const flush = () => {
      for (let i = 0; i < Math.max(dels.length, adds.length); i += 1) row(dels[i], adds[i]);
      dels = [];
      adds = [];
    };
    for (const line of hunk.lines) {
      if (line.kind === 'del') {
        if (adds.length) flush();
        dels.push(line);
      } else if (line.kind === 'add') {
        adds.push(line);
      } else {
        flush();
        if (line.kind === 'ctx') row(line, line);
        else out.append(h('div', { class: 'dl d-meta wide' }, h('span', { class: 'code', text: line.text })));
      }
    }
    flush();
  }
  return out;
}
