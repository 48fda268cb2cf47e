// The changed files as a tree of folders, each file with its counts; picking one shows it.

import { h } from './dom.js';

/// Nested `{dirs, files}` from the diff's paths; a folder with a single folder in it is shown
/// as one (`src/app`), as review tools do.
function tree(files) {
  const root = { dirs: new Map(), files: [] };
  for (const file of files) {
    const parts = file.path.split('/');
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push({ name: parts[parts.length - 1], file });
  }
  return root;
}

function list(node, onPick) {
  const ul = h('ul', {});
  for (const [name, child] of [...node.dirs].sort((a, b) => a[0].localeCompare(b[0]))) {
    let label = name;
    let inner = child;
    while (inner.files.length === 0 && inner.dirs.size === 1) {
      const [next, deeper] = [...inner.dirs][0];
      label += `/${next}`;
      inner = deeper;
    }
    ul.append(h('li', { class: 'dir' }, h('span', { class: 'dir-name', text: `${label}/` }), list(inner, onPick)));
  }
  for (const { name, file } of node.files.sort((a, b) => a.name.localeCompare(b.name))) {
    ul.append(h('li', { class: 'file' }, h('button', {
      type: 'button', class: 'link', 'data-path': file.path, title: file.path,
      onclick: () => onPick(file.path),
    }, name, ' ', h('span', { class: 'plus', text: `+${file.additions}` }), ' ', h('span', { class: 'minus', text: `−${file.deletions}` }))));
  }
  return ul;
}

export function fileTree(files, onPick) {
  return h('nav', { class: 'file-tree', id: 'file-tree', 'aria-label': 'Changed files' }, list(tree(files), onPick));
}
