// The single-page app: a hash router over the views, and the API-key gate in front of them.

import { clearKey, getKey } from './api.js';
import { h, replace } from './dom.js';
import { renderJob } from './views/job.js';
import { renderJobs } from './views/jobs.js';
import { renderLogin } from './views/login.js';
import { renderNewJob } from './views/new-job.js';
import { renderPlayground } from './views/playground.js';

const ROUTES = [
  { pattern: /^#?\/?(?:jobs)?\/?$/, name: 'jobs', render: renderJobs },
  { pattern: /^#\/jobs\/([0-9a-fA-F-]{36})$/, name: 'jobs', render: renderJob },
  { pattern: /^#\/new(?:\?from=([0-9a-fA-F-]{36}))?$/, name: 'new', render: renderNewJob },
  { pattern: /^#\/playground$/, name: 'playground', render: renderPlayground },
];

const view = document.getElementById('view');
let current = new AbortController();

function showChrome(signedIn, routeName) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('session').hidden = !signedIn;
  const key = getKey() || '';
  document.getElementById('key-hint').textContent = signedIn ? `key ${key.slice(0, 10)}…` : '';
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.route === routeName);
  }
}

function route(message) {
  current.abort(); // stops the previous view's polling and streams
  current = new AbortController();
  const container = h('section', { class: 'page' });
  replace(view, container);
  if (!getKey()) {
    showChrome(false);
    renderLogin(container, { message, onSignedIn: () => route() });
    return;
  }
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(location.hash) })).find(({ m }) => m);
  if (!match) {
    showChrome(true);
    replace(container, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/jobs' }, 'Back to the jobs')));
    return;
  }
  showChrome(true, match.r.name);
  match.r.render(container, { params: match.m.slice(1), signal: current.signal });
}

window.addEventListener('hashchange', () => route());
window.addEventListener('grpo:unauthorized', (event) => {
  clearKey();
  route(`The service rejected the API key: ${event.detail || 'unauthorized'}. Sign in again.`);
});
document.getElementById('sign-out').addEventListener('click', () => {
  clearKey();
  route();
});
route();
