// loopd's dashboard: a board of every run, a page per run (output, plan, verification,
// timeline, review, postmortem, an experiment's chart), a new-run form and the figures across runs. ES modules served
// as they are from the daemon's embedded assets: no build step, no library.
// Everything comes from the API under the same guard as loopctl: same-origin fetches, JSON
// bodies for every state change, live updates from the SSE streams (nothing polls). Data is
// put into the page as text (textContent), never as markup.

import { setLive } from './api.js';
import { board } from './board.js';
import { runPage } from './run.js';
import { newRun } from './new-run.js';
import { insight } from './insight.js';

// Views. Each view owns an AbortController: leaving it closes its streams.
let current = null;

function route() {
  if (current) current.abort();
  current = new AbortController();
  const hash = location.hash.replace(/^#/, '') || '/';
  const match = hash.match(/^\/runs\/([0-9a-f-]{36})(?:\/(output|plan|verification|timeline|review|postmortem|experiment)(?:\/(\d+))?)?$/);
  const nav = (name) => {
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  };
  window.scrollTo(0, 0);
  setLive(null);
  if (match) {
    nav(null);
    runPage(match[1], match[2] || 'output', current.signal, match[3]);
  } else if (hash === '/new') {
    nav('new');
    newRun(current.signal);
  } else if (hash === '/insight') {
    nav('insight');
    insight(current.signal);
  } else {
    nav('board');
    board(current.signal);
  }
}

window.addEventListener('hashchange', route);
// A module runs after the document is parsed.
route();
