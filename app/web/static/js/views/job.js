// One job: header with status, progress and cancel; live charts over the SSE stream; alerts, samples,
// checkpoints, evaluations and the spec. History comes from the REST endpoints, news from the stream.

import { get, getAll, post } from '../api.js';
import { fmtDuration, fmtTime, h, replace, statusBadge } from '../dom.js';
import { followEvents } from '../sse.js';
import { jobCharts } from './job-charts.js';
import { alertsPanel, checkpointsPanel, evaluationsPanel, samplesPanel } from './job-panels.js';
import { progressBar } from './jobs.js';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** Run fn at most once per `ms`, and once more after the last call. */
function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    timer = setTimeout(function tick() {
      timer = null;
      if (again) {
        again = false;
        fn();
        timer = setTimeout(tick, ms);
      }
    }, ms);
  };
}

function cancelControls(job, onCancelled) {
  const el = h('div', { class: 'cancel', id: 'cancel-controls' });
  const ask = () =>
    replace(
      el,
      h('span', {}, 'Stop this job at the next step boundary? '),
      h('button', { type: 'button', class: 'danger small', id: 'confirm-cancel', onclick: confirm }, 'Yes, cancel it'),
      h('button', { type: 'button', class: 'secondary small', onclick: idle }, 'Keep running'),
    );
  async function confirm() {
    try {
      onCancelled(await post(`v1/jobs/${job.id}/cancel`));
    } catch (err) {
      replace(el, h('span', { class: 'error' }, err.message));
    }
  }
  function idle() {
    replace(el, h('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: ask }, 'Cancel job'));
  }
  if (TERMINAL.has(job.status)) replace(el);
  else if (job.cancel_requested) replace(el, h('span', { class: 'muted' }, 'Cancel requested: stopping at the next step.'));
  else idle();
  return el;
}

function header(job, stream, onCancelled) {
  const times = [`created ${fmtTime(job.created_at)}`, job.started_at && `started ${fmtTime(job.started_at)}`, job.finished_at && `finished ${fmtTime(job.finished_at)}`];
  return h(
    'div',
    { class: 'job-head card' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, job.name, ' ', statusBadge(job.status)),
      h('div', { class: 'toolbar' }, h('a', { href: `#/new?from=${job.id}`, class: 'button secondary' }, 'Clone'), cancelControls(job, onCancelled)),
    ),
    h('div', { class: 'muted mono' }, job.id, '  ·  ', times.filter(Boolean).join(' · ')),
    h('div', { class: 'job-progress' }, progressBar(job.progress), job.progress.eta_seconds ? h('span', { class: 'muted' }, `ETA ${fmtDuration(job.progress.eta_seconds)}`) : '', h('span', { class: `stream-state ${stream}`, id: 'stream-state' }, stream)),
    job.error ? h('div', { class: 'error-box', role: 'alert' }, h('b', {}, job.error.code), job.error.param ? ` (${job.error.param})` : '', ': ', job.error.message) : '',
  );
}

export async function renderJob(container, { params: [jobId], signal }) {
  let job;
  try {
    job = await get(`v1/jobs/${jobId}`, {}, { signal });
  } catch (err) {
    if (!signal.aborted) replace(container, h('h1', {}, 'Job'), h('p', { class: 'error', role: 'alert' }, err.message));
    return;
  }
  const metrics = new Map(); // step -> {name: value}
  const streamAlerts = new Map();
  let stream = TERMINAL.has(job.status) ? 'finished' : 'connecting';
  let streamedStatus = job.status;
  const head = h('div');
  const charts = jobCharts();
  const alerts = alertsPanel();
  const samples = samplesPanel(jobId, signal);
  const evaluations = evaluationsPanel(jobId, signal);
  const checkpoints = checkpointsPanel(jobId, signal, () => evaluations.reload());
  const spec = h('pre', { class: 'spec', id: 'spec' }, JSON.stringify(job.spec, null, 2));

  const allAlerts = () => {
    const byKey = new Map(job.alerts.map((a) => [`${a.code}@${a.step}`, a]));
    for (const [key, alert] of streamAlerts) byKey.set(key, alert);
    return [...byKey.values()];
  };
  const showJob = () => {
    replace(head, header(job, stream, (updated) => ((job = updated), showJob())));
    alerts.show(allAlerts());
  };
  const drawCharts = throttle(() => requestAnimationFrame(() => charts.draw(metrics, allAlerts())), 250);
  const refreshJob = throttle(async () => {
    try {
      job = await get(`v1/jobs/${jobId}`, {}, { signal });
      showJob();
      samples.setLatest(job.progress.step);
    } catch {
      /* the next event retries */
    }
  }, 1000);
  const reloadCheckpoints = throttle(() => checkpoints.reload(), 1000);
  const reloadEvaluations = throttle(() => (evaluations.reload(), checkpoints.reload()), 1000);

  function onEvent({ type, data }) {
    if (type === 'metrics') {
      metrics.set(data.data.step, data.data.values);
      drawCharts();
    } else if (type === 'alert') {
      streamAlerts.set(`${data.data.code}@${data.step}`, { code: data.data.code, message: data.message, step: data.step });
      drawCharts();
    } else if (type === 'status') streamedStatus = data.data.status;
    else if (type === 'checkpoint') reloadCheckpoints();
    else if (type === 'evaluation') reloadEvaluations();
    refreshJob();
  }

  replace(
    container,
    h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')),
    head,
    alerts.el,
    h('section', { id: 'charts' }, charts.el),
    samples.el,
    checkpoints.el,
    evaluations.el,
    h('section', { class: 'card' }, h('h2', {}, 'Spec'), spec),
  );
  showJob();
  for (const row of await getAll(`v1/jobs/${jobId}/metrics`, { limit: 1000 }, { signal }).catch(() => [])) metrics.set(row.step, row.values);
  drawCharts();
  samples.setLatest(job.progress.step);
  checkpoints.reload();
  evaluations.reload();
  if (TERMINAL.has(job.status) || signal.aborted) return;

  // The stream replays every event from the start (metrics overwrite by step), then follows live.
  const events = followEvents(`v1/jobs/${jobId}/events`, {
    onEvent,
    onState: (state) => {
      stream = state === 'ended' ? 'finished' : state;
      showJob();
      if (state === 'ended') {
        refreshJob();
        reloadCheckpoints();
        reloadEvaluations();
      }
    },
    // The server closes the stream once the job has ended; any other close is a dropped connection.
    done: () => TERMINAL.has(streamedStatus) || TERMINAL.has(job.status),
  });
  signal.addEventListener('abort', () => events.close());
}
