// The job page's charts: which metrics each one plots (names from workers/engine/metrics.py).

import { lineChart } from '../charts.js';
import { h } from '../dom.js';

const COMPONENT_MEAN = /^reward\/([^/]+)\/mean$/;

const line = (name, key = name) => ({ name, key });

// Each chart turns the step -> values map into series (and an optional band).
const CHARTS = [
  {
    id: 'reward',
    title: 'Mean reward ± std',
    series: () => [line('reward/mean')],
    band: { name: '± std', center: 'reward/mean', spread: 'reward/std' },
    alerts: true,
  },
  {
    id: 'components',
    title: 'Reward components (raw mean)',
    series: (names) => names.filter((n) => COMPONENT_MEAN.test(n)).map((n) => line(COMPONENT_MEAN.exec(n)[1], n)),
  },
  { id: 'kl', title: 'KL to the reference', series: () => [line('kl')], emptyText: 'reported only when beta > 0' },
  { id: 'entropy', title: 'Entropy (nats / token)', series: () => [line('entropy')] },
  {
    id: 'length',
    title: 'Completion length (tokens), min–max band',
    series: () => [line('mean', 'completion/length_mean')],
    band: { name: 'min–max', lower: 'completion/length_min', upper: 'completion/length_max' },
  },
  { id: 'loss', title: 'Loss', series: () => [line('loss')] },
  { id: 'lr', title: 'Learning rate', series: () => [line('learning_rate')] },
  { id: 'throughput', title: 'Throughput (completion tokens / s)', series: () => [line('throughput/tokens_per_s')] },
  // Per-step cost (budgets): the job's totals are in its header.
  { id: 'usage', title: 'Usage per step (tokens)', series: () => [line('sampled', 'usage/tokens_sampled'), line('prompt', 'usage/prompt_tokens'), line('trained', 'usage/tokens_trained')] },
];

function seriesPoints(steps, metrics, key) {
  const points = [];
  for (const step of steps) {
    const value = metrics.get(step)[key];
    if (Number.isFinite(value)) points.push([step, value]);
  }
  return points;
}

function bandPoints(steps, metrics, band) {
  const points = [];
  for (const step of steps) {
    const values = metrics.get(step);
    const [lo, hi] = band.center
      ? [values[band.center] - values[band.spread], values[band.center] + values[band.spread]]
      : [values[band.lower], values[band.upper]];
    if (Number.isFinite(lo) && Number.isFinite(hi)) points.push([step, lo, hi]);
  }
  return points;
}

/** All charts of a job; draw(metrics, alerts) redraws them from the step -> values map. */
export function jobCharts() {
  const charts = CHARTS.map((spec) => ({ spec, chart: lineChart({ title: spec.title, id: spec.id, emptyText: spec.emptyText }) }));
  const pick = h('select', { id: 'extra-metric', 'aria-label': 'metric' });
  const extra = lineChart({ title: 'Any metric', id: 'extra' });
  extra.el.querySelector('figcaption').append(' ', pick);
  let lastMetrics = new Map();
  let lastAlerts = [];

  function draw(metrics, alerts) {
    lastMetrics = metrics;
    lastAlerts = alerts;
    const steps = [...metrics.keys()].sort((a, b) => a - b);
    const names = [...new Set(steps.flatMap((step) => Object.keys(metrics.get(step))))].sort();
    for (const { spec, chart } of charts) {
      const series = spec.series(names).map((s) => ({ name: s.name, points: seriesPoints(steps, metrics, s.key) }));
      const band = spec.band ? { name: spec.band.name, points: bandPoints(steps, metrics, spec.band) } : undefined;
      const markers = spec.alerts ? alerts.filter((a) => a.step != null).map((a) => ({ x: a.step, label: `${a.code}: ${a.message}` })) : [];
      chart.update({ series, band, markers });
    }
    const chosen = pick.value || 'grad_norm';
    if (pick.options.length !== names.length) {
      pick.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === chosen }, n)));
    }
    extra.update({ series: [{ name: pick.value, points: seriesPoints(steps, metrics, pick.value) }] });
  }

  pick.addEventListener('change', () => draw(lastMetrics, lastAlerts));
  const el = h('div', { class: 'charts' }, charts.map(({ chart }) => chart.el), extra.el);
  return { el, draw };
}
