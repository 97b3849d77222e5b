// One job: header with status, progress and cancel; live charts over the SSE stream; alerts, samples,
// checkpoints, evaluations and the spec. History comes from the REST endpoints, news from the stream.

import { get, getAll, post } from '../api.js';
import { fmtDuration, fmtTime, h, replace, statusBadge } from '../dom.js';
import { followEvents } from '../sse.js';
import { jobCharts } from './job-charts.js';
import { pauseControls, usageLine } from './job-control.js';
import { alertsPanel, checkpointsPanel, evaluationsPanel, samplesPanel } from './job-panels.js';
import { tryItPanel } from './job-try.js';
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

/** The cancel button and its confirmation. One per page, kept across header re-renders (the header is
 * redrawn on every refresh), so a confirmation the user is looking at is not reset under them. */
function cancelControls(jobId, onCancelled) {
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
      onCancelled(await post(`v1/jobs/${jobId}/cancel`));
    } catch (err) {
      replace(el, h('span', { class: 'error' }, err.message));
    }
  }
  function idle() {
    replace(el, h('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: ask }, 'Cancel job'));
  }
  /** Show what the job allows now; the button or an open confirmation stays while the job can still be
   * cancelled (what is showing is read off the DOM, so there is no second copy of that state). */
  function update(job) {
    if (TERMINAL.has(job.status)) replace(el);
    else if (job.cancel_requested) replace(el, h('span', { class: 'muted' }, 'Cancel requested: stopping at the next step.'));
    else if (!el.querySelector('#cancel-job, #confirm-cancel')) idle();
  }
  return { el, update };
}

function header(job, stream, cancel, pause) {
  const times = [`created ${fmtTime(job.created_at)}`, job.started_at && `started ${fmtTime(job.started_at)}`, job.finished_at && `finished ${fmtTime(job.finished_at)}`];
  return h(
    'div',
    { class: 'job-head card' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, job.name, ' ', statusBadge(job.status)),
      h('div', { class: 'toolbar' }, h('a', { href: `#/new?from=${job.id}`, class: 'button secondary' }, 'Clone'), pause.el, cancel.el),
    ),
    h('div', { class: 'muted mono' }, job.id, '  ·  ', times.filter(Boolean).join(' · ')),
    usageLine(job),
    h('div', { class: 'job-progress' }, progressBar(job.progress), job.progress.eta_seconds ? h('span', { class: 'muted' }, `ETA ${fmtDuration(job.progress.eta_seconds)}`) : '', h('span', { class: `stream-state ${stream}`, id: 'stream-state' }, stream)),
    job.error ? h('div', { class: 'error-box', role: 'alert' }, h('b', {}, job.error.code), job.error.param ? ` (${job.error.param})` : '', ': ', job.error.message) : '',
  );
}

/** The page's state: the job, its metrics by step, alerts seen on the stream, and the panels showing them. */
class JobPage {
  constructor(job, signal) {
    this.job = job;
    this.signal = signal;
    this.metrics = new Map(); // step -> {name: value}
    this.streamAlerts = new Map();
    this.stream = TERMINAL.has(job.status) ? 'finished' : 'connecting';
    this.streamedStatus = job.status;
    this.head = h('div');
    this.cancel = cancelControls(job.id, (updated) => ((this.job = updated), this.show()));
    this.pause = pauseControls(job.id, (updated) => ((this.job = updated), this.show()));
    this.charts = jobCharts();
    this.alerts = alertsPanel();
    this.samples = samplesPanel(job.id, signal);
    this.evaluations = evaluationsPanel(job.id, signal);
    this.checkpoints = checkpointsPanel(job.id, signal, () => this.evaluations.reload());
    this.tryIt = tryItPanel(job.id, job.spec.model?.source, signal);
    this.drawCharts = throttle(() => requestAnimationFrame(() => this.charts.draw(this.metrics, this.allAlerts())), 250);
    this.refreshJob = throttle(() => this.refresh(), 1000);
    this.reloadCheckpoints = throttle(() => (this.checkpoints.reload(), this.tryIt.reload()), 1000);
    this.reloadEvaluations = throttle(() => (this.evaluations.reload(), this.checkpoints.reload()), 1000);
  }

  elements() {
    const spec = h('pre', { class: 'spec', id: 'spec' }, JSON.stringify(this.job.spec, null, 2));
    const { head, alerts, charts, samples, checkpoints, evaluations } = this;
    return [h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')), head, alerts.el, h('section', { id: 'charts' }, charts.el), samples.el, checkpoints.el, this.tryIt.el, evaluations.el, h('section', { class: 'card' }, h('h2', {}, 'Spec'), spec)];
  }

  allAlerts() {
    const byKey = new Map(this.job.alerts.map((a) => [`${a.code}@${a.step}`, a]));
    for (const [key, alert] of this.streamAlerts) byKey.set(key, alert);
    return [...byKey.values()];
  }

  show() {
    this.cancel.update(this.job);
    this.pause.update(this.job);
    replace(this.head, header(this.job, this.stream, this.cancel, this.pause));
    this.alerts.show(this.allAlerts());
  }

  async refresh() {
    try {
      this.job = await get(`v1/jobs/${this.job.id}`, {}, { signal: this.signal });
      this.show();
      this.samples.setLatest(this.job.progress.step);
    } catch {
      /* the next event retries */
    }
  }

  async loadHistory() {
    const rows = await getAll(`v1/jobs/${this.job.id}/metrics`, { limit: 1000 }, { signal: this.signal }).catch(() => []);
    for (const row of rows) this.metrics.set(row.step, row.values);
    this.drawCharts();
    this.samples.setLatest(this.job.progress.step);
    this.checkpoints.reload();
    this.evaluations.reload();
    this.tryIt.reload();
  }

  onEvent({ type, data }) {
    if (type === 'metrics') {
      this.metrics.set(data.data.step, data.data.values);
      this.drawCharts();
    } else if (type === 'alert') {
      this.streamAlerts.set(`${data.data.code}@${data.step}`, { code: data.data.code, message: data.message, step: data.step });
      this.drawCharts();
    } else if (type === 'status') this.streamedStatus = data.data.status;
    else if (type === 'checkpoint') this.reloadCheckpoints();
    else if (type === 'evaluation') this.reloadEvaluations();
    this.refreshJob();
  }

  onStreamState(state) {
    this.stream = state === 'ended' ? 'finished' : state;
    this.show();
    if (state === 'ended') {
      this.refreshJob();
      this.reloadCheckpoints();
      this.reloadEvaluations();
    }
  }

  /** The stream replays every event from the start (metrics overwrite by step), then follows live. */
  follow() {
    const events = followEvents(`v1/jobs/${this.job.id}/events`, {
      onEvent: (event) => this.onEvent(event),
      onState: (state) => this.onStreamState(state),
      // The server closes the stream once the job has ended; any other close is a dropped connection.
      done: () => TERMINAL.has(this.streamedStatus) || TERMINAL.has(this.job.status),
    });
    this.signal.addEventListener('abort', () => events.close());
  }
}

export async function renderJob(container, { params: [jobId], signal }) {
  let job;
  try {
    job = await get(`v1/jobs/${jobId}`, {}, { signal });
  } catch (err) {
    if (!signal.aborted) replace(container, h('h1', {}, 'Job'), h('p', { class: 'error', role: 'alert' }, err.message));
    return;
  }
  const page = new JobPage(job, signal);
  replace(container, page.elements());
  page.show();
  await page.loadHistory();
  if (!TERMINAL.has(page.job.status) && !signal.aborted) page.follow();
}
