// Syntax highlighting: keywords, strings, comments and numbers of common languages, chosen by
// the file's extension. A scanner, not a parser: it is wrong now and then (a quote inside a
// Rust lifetime, a regex literal), never unsafe — every token becomes a text node in a span.

import { h } from './dom.js';

const C_LIKE = { line: ['//'], block: ['/*', '*/'] };
const LANGUAGES = [
  { name: 'rust', ext: ['rs'], quotes: '"', ...C_LIKE,
    keywords: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while' },
  { name: 'js', ext: ['js', 'mjs', 'cjs', 'jsx', 'ts', 'tsx'], quotes: '"\'`', ...C_LIKE,
    keywords: 'async await break case catch class const continue default delete do else export extends false finally for from function if import in instanceof interface let new null of return static super switch this throw true try type typeof undefined var void while yield' },
  { name: 'python', ext: ['py'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return self True try while with yield' },
  { name: 'go', ext: ['go'], quotes: '"`', ...C_LIKE,
    keywords: 'break case chan const continue default defer else fallthrough false for func go goto if import interface map nil package range return select struct switch true type var' },
  { name: 'c', ext: ['c', 'h', 'cc', 'cpp', 'hpp', 'cxx', 'java', 'kt', 'cs', 'swift'], quotes: '"\'', ...C_LIKE,
    keywords: 'auto bool break case catch char class const continue default do double else enum extends extern false final float for fun if implements import int let long namespace new null nullptr package private protected public return short signed sizeof static struct switch this throw true try typedef union unsigned val var void volatile while' },
  { name: 'shell', ext: ['sh', 'bash', 'zsh'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'case do done elif else esac exit export fi for function if in local return set then until while' },
  { name: 'toml', ext: ['toml', 'yaml', 'yml', 'ini', 'cfg'], quotes: '"\'', line: ['#'], block: null,
    keywords: 'true false null' },
  { name: 'css', ext: ['css', 'scss'], quotes: '"\'', line: [], block: ['/*', '*/'],
    keywords: 'important' },
  { name: 'json', ext: ['json', 'jsonl'], quotes: '"', line: [], block: null,
    keywords: 'true false null' },
].map((lang) => ({ ...lang, keywords: new Set(lang.keywords.split(' ')) }));

export function languageOf(path) {
  const name = String(path || '').split('/').pop().toLowerCase();
  if (name === 'makefile' || name === 'dockerfile') return LANGUAGES.find((lang) => lang.name === 'shell');
  const dot = name.lastIndexOf('.');
  if (dot < 0) return null;
  const ext = name.slice(dot + 1);
  return LANGUAGES.find((lang) => lang.ext.includes(ext)) || null;
}

/// The tokens of one line as nodes; `scan.block` carries an open block comment to the next
/// line.
export function highlight(text, lang, scan) {
  const out = [];
  let plain = '';
  const flush = () => { if (plain) { out.push(document.createTextNode(plain)); plain = ''; } };
  const token = (cls, part) => { flush(); out.push(h('span', { class: cls, text: part })); };
  let i = 0;
  while (i < text.length) {
    if (scan.block || (lang.block && text.startsWith(lang.block[0], i))) {
      const from = scan.block ? i : i + lang.block[0].length;
      const end = text.indexOf(lang.block[1], from);
      const stop = end < 0 ? text.length : end + lang.block[1].length;
      scan.block = end < 0;
      token('tok-c', text.slice(i, stop));
      i = stop;
      continue;
    }
    if (lang.line.some((mark) => text.startsWith(mark, i))) {
      token('tok-c', text.slice(i));
      break;
    }
    const c = text[i];
    if (lang.quotes.includes(c)) {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      j = Math.min(j + 1, text.length);
      token('tok-s', text.slice(i, j));
      i = j;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < text.length && /[\w$]/.test(text[j])) j += 1;
      const word = text.slice(i, j);
      if (lang.keywords.has(word)) token('tok-k', word);
      else plain += word;
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) && !/[\w$]/.test(text[i - 1] || '')) {
      let j = i + 1;
      while (j < text.length && /[\w.]/.test(text[j])) j += 1;
      token('tok-n', text.slice(i, j));
      i = j;
      continue;
    }
    plain += c;
    i += 1;
  }
  flush();
  return out;
}
