// The jobs list: filters, status, progress, a reward sparkline per job; polled while the page is open.

import { get } from '../api.js';
import { sparkline } from '../charts.js';
import { fmtAgo, fmtDuration, fmtNum, fmtTime, h, replace, statusBadge } from '../dom.js';

const POLL_MS = 3000;
const STATUSES = ['queued', 'running', 'pausing', 'paused', 'succeeded', 'failed', 'cancelled'];

export function progressBar(progress) {
  const percent = Math.round(progress.fraction * 100);
  return h(
    'div',
    { class: 'progress', title: `${percent}%` },
    h('div', { class: 'progress-track' }, h('div', { class: 'progress-fill', style: `width:${percent}%` })),
    h('span', { class: 'progress-label' }, `${progress.step} / ${progress.total_steps}`),
  );
}

/** reward/mean per job, fetched incrementally as steps arrive. */
function rewardHistory(signal) {
  const cache = new Map(); // job id -> {step, values}
  return async function rewards(job) {
    const entry = cache.get(job.id) || { step: 0, values: [] };
    if (job.progress.step > entry.step) {
      const page = await get(`v1/jobs/${job.id}/metrics`, { name: 'reward/mean', step_gte: entry.step + 1, limit: 1000 }, { signal });
      for (const row of page.data) {
        if ('reward/mean' in row.values) entry.values.push(row.values['reward/mean']);
        entry.step = Math.max(entry.step, row.step);
      }
      cache.set(job.id, entry);
    }
    return entry.values;
  };
}

// Why a job failed, in the list itself: the code and the start of the message (all of it on hover).
function failureReason(error) {
  if (!error) return null;
  const text = `${error.code}${error.param ? ` (${error.param})` : ''}: ${error.message}`;
  return h('div', { class: 'error job-error', title: text }, text.length > 90 ? `${text.slice(0, 89)}…` : text);
}

function jobRow(job, rewards) {
  const latest = job.latest_metrics['reward/mean'];
  return h(
    'tr',
    { dataset: { jobId: job.id } },
    h('td', {}, h('a', { href: `#/jobs/${job.id}`, class: 'job-link' }, job.name), h('div', { class: 'muted mono' }, job.id.slice(0, 8))),
    h('td', {}, statusBadge(job.status), job.cancel_requested && job.status === 'running' ? h('div', { class: 'muted' }, 'cancelling') : null, failureReason(job.error)),
    h('td', {}, progressBar(job.progress), job.progress.eta_seconds ? h('div', { class: 'muted' }, `ETA ${fmtDuration(job.progress.eta_seconds)}`) : null),
    h('td', {}, h('div', { class: 'reward-cell' }, sparkline(rewards), h('span', { class: 'mono' }, fmtNum(latest)))),
    h('td', {}, job.alerts.length ? h('span', { class: 'badge alert-badge', title: job.alerts.map((a) => a.message).join('\n') }, `⚠ ${job.alerts.length}`) : ''),
    h('td', { title: fmtTime(job.created_at) }, fmtAgo(job.created_at)),
  );
}

function filterForm(onChange) {
  const status = h('select', { name: 'status', id: 'filter-status' }, h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const name = h('input', { name: 'name', id: 'filter-name', type: 'search', placeholder: 'name contains…' });
  const after = h('input', { name: 'created_after', id: 'filter-after', type: 'date' });
  const before = h('input', { name: 'created_before', id: 'filter-before', type: 'date' });
  const form = h('form', { class: 'filters' }, h('label', {}, 'Status ', status), h('label', {}, 'Name ', name), h('label', {}, 'Created from ', after), h('label', {}, 'to ', before));
  const values = () => ({
    status: status.value,
    name: name.value.trim(),
    // Dates are local days: from the start of `after` to the end of `before`.
    created_after: after.value ? new Date(`${after.value}T00:00:00`).toISOString() : '',
    created_before: before.value ? new Date(`${before.value}T23:59:59.999`).toISOString() : '',
  });
  let timer;
  form.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => onChange(values()), 250);
  });
  form.addEventListener('submit', (event) => event.preventDefault());
  return { form, values };
}

export function renderJobs(container, { signal }) {
  const body = h('tbody', { id: 'jobs-body' });
  const table = h('table', { class: 'jobs-table' }, h('thead', {}, h('tr', {}, ['Job', 'Status', 'Progress', 'Reward', 'Alerts', 'Created'].map((t) => h('th', {}, t)))), body);
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  const notice = h('p', { class: 'muted', id: 'jobs-notice' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const rewards = rewardHistory(signal);
  let filters = {};
  let shown = 20;
  let nextCursor = null;

  async function refresh() {
    try {
      const page = await get('v1/jobs', { ...filters, limit: Math.min(shown, 100) }, { signal });
      const rows = await Promise.all(page.data.map(async (job) => jobRow(job, await rewards(job))));
      nextCursor = page.next_cursor;
      replace(body, rows);
      more.hidden = !nextCursor;
      replace(notice, page.data.length ? '' : h('span', {}, 'No jobs match. ', h('a', { href: '#/new' }, 'Submit one.')));
      error.hidden = true;
    } catch (err) {
      if (signal.aborted) return;
      replace(error, `Could not load the jobs: ${err.message}`);
      error.hidden = false;
    }
  }

  async function loadMore() {
    const page = await get('v1/jobs', { ...filters, limit: 100, cursor: nextCursor }, { signal });
    body.append(...(await Promise.all(page.data.map(async (job) => jobRow(job, await rewards(job))))));
    shown += page.data.length;
    nextCursor = page.next_cursor;
    more.hidden = !nextCursor;
  }

  const { form } = filterForm((values) => {
    filters = values;
    shown = 20;
    refresh();
  });
  more.addEventListener('click', loadMore);
  replace(
    container,
    h('div', { class: 'page-head' }, h('h1', {}, 'Jobs'), h('a', { href: '#/new', class: 'button' }, 'New job')),
    form,
    error,
    h('div', { class: 'card table-card' }, table, notice),
    more,
  );
  refresh();
  const timer = setInterval(() => document.hidden || refresh(), POLL_MS);
  signal.addEventListener('abort', () => clearInterval(timer));
}
