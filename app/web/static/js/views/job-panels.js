// The job page's panels: alerts, logged samples by step, checkpoints, evaluations.

import { download, get, getAll, idempotencyKey, post } from '../api.js';
import { fmtBytes, fmtNum, fmtTime, h, replace } from '../dom.js';

const errorLine = (el, err) => replace(el, h('p', { class: 'error', role: 'alert' }, err.message));

export function alertsPanel() {
  const el = h('section', { class: 'alerts', id: 'alerts', hidden: true });
  function show(alerts) {
    el.hidden = !alerts.length;
    replace(
      el,
      h('h2', {}, `Reward-hacking alerts (${alerts.length})`),
      alerts.map((a) =>
        h('div', { class: 'alert', dataset: { code: a.code } }, h('b', {}, a.code), a.step != null ? h('span', { class: 'muted' }, ` at step ${a.step}`) : '', h('div', {}, a.message)),
      ),
    );
  }
  return { el, show };
}

function componentChips(components) {
  return Object.entries(components).map(([name, value]) => h('span', { class: 'chip' }, `${name} `, h('b', {}, fmtNum(value))));
}

function sampleRow(sample) {
  return h(
    'tr',
    { class: 'sample' },
    h('td', { class: 'mono' }, `${sample.prompt_index}.${sample.group_index}`),
    h('td', {}, h('pre', { class: 'text' }, sample.prompt)),
    h('td', {}, sample.completion ? h('pre', { class: 'text completion' }, sample.completion) : h('span', { class: 'muted' }, '(empty)'), sample.truncated ? h('span', { class: 'chip warn' }, 'truncated') : ''),
    h('td', { class: 'mono num' }, fmtNum(sample.reward)),
    h('td', {}, componentChips(sample.components)),
    h('td', { class: 'mono num' }, fmtNum(sample.advantage)),
    h('td', { class: 'mono num' }, sample.num_tokens),
  );
}

/** Samples of one step at a time; follows the newest step until the user picks another. */
export function samplesPanel(jobId, signal) {
  const stepInput = h('input', { type: 'number', min: 1, id: 'sample-step', class: 'narrow', 'aria-label': 'step' });
  const follow = h('input', { type: 'checkbox', id: 'sample-follow', checked: true });
  const body = h('div', { id: 'samples-body' });
  let latest = 0;

  async function load(step) {
    stepInput.value = step;
    if (!step) return replace(body, h('p', { class: 'muted' }, 'No steps yet.'));
    try {
      const samples = await getAll(`v1/jobs/${jobId}/samples`, { step, limit: 500 }, { signal });
      const head = h('tr', {}, ['#', 'Prompt', 'Completion', 'Reward', 'Components', 'Advantage', 'Tokens'].map((t, i) => h('th', { class: [3, 5, 6].includes(i) ? 'num' : '' }, t)));
      replace(body, samples.length ? h('table', { class: 'samples-table' }, h('thead', {}, head), h('tbody', {}, samples.map(sampleRow))) : h('p', { class: 'muted' }, `No samples logged at step ${step}.`));
    } catch (err) {
      if (!signal.aborted) errorLine(body, err);
    }
  }

  const go = (step) => {
    follow.checked = step >= latest;
    load(Math.min(Math.max(step, 1), latest));
  };
  stepInput.addEventListener('change', () => go(Number(stepInput.value)));
  follow.addEventListener('change', () => follow.checked && load(latest));
  const el = h(
    'section',
    { class: 'card', id: 'samples' },
    h('h2', {}, 'Samples'),
    h(
      'div',
      { class: 'toolbar' },
      h('button', { type: 'button', class: 'secondary small', id: 'sample-prev', onclick: () => go(Number(stepInput.value) - 1) }, '◀'),
      h('label', {}, 'Step ', stepInput),
      h('button', { type: 'button', class: 'secondary small', id: 'sample-next', onclick: () => go(Number(stepInput.value) + 1) }, '▶'),
      h('label', { class: 'inline' }, follow, ' follow the latest step'),
    ),
    body,
  );
  return {
    el,
    /** Called with the job's newest step; reloads when following it. */
    setLatest(step) {
      const changed = step !== latest;
      latest = step;
      stepInput.max = step;
      if (follow.checked && (changed || !stepInput.value)) load(step);
    },
  };
}

function checkpointRow(jobId, checkpoint, onEvaluate) {
  const status = h('span', { class: 'muted' });
  const fetchTar = (variant) => async () => {
    replace(status, 'downloading…');
    try {
      const name = await download(`v1/jobs/${jobId}/checkpoints/${checkpoint.step}/download?variant=${variant}`, `step${checkpoint.step}.tar`);
      replace(status, `saved ${name}`);
    } catch (err) {
      replace(status, h('span', { class: 'error' }, err.message));
    }
  };
  const evaluate = async () => {
    try {
      await post(`v1/jobs/${jobId}/evaluations`, { step: checkpoint.step }, { headers: { 'Idempotency-Key': idempotencyKey() } });
      replace(status, 'evaluation queued');
      onEvaluate();
    } catch (err) {
      replace(status, h('span', { class: 'error' }, err.message));
    }
  };
  return h(
    'tr',
    { dataset: { step: checkpoint.step } },
    h('td', { class: 'mono' }, checkpoint.step),
    h('td', {}, fmtTime(checkpoint.created_at)),
    h('td', { class: 'num', title: 'stored: model, optimiser and RNG state (the Full download); Download holds the model files only' }, fmtBytes(checkpoint.size_bytes), checkpoint.is_adapter ? h('span', { class: 'chip' }, 'LoRA') : ''),
    h('td', { class: 'mono num' }, fmtNum(checkpoint.metrics['reward/mean'])),
    h('td', { class: 'mono num eval-score' }, fmtNum(checkpoint.eval_score)),
    h(
      'td',
      { class: 'actions' },
      h('button', { type: 'button', class: 'small download', onclick: fetchTar('model') }, 'Download'),
      h('button', { type: 'button', class: 'small secondary', onclick: fetchTar('full'), title: 'with optimiser and RNG state, to resume elsewhere' }, 'Full'),
      h('button', { type: 'button', class: 'small secondary', onclick: evaluate }, 'Evaluate'),
      status,
    ),
  );
}

export function checkpointsPanel(jobId, signal, onEvaluate) {
  const body = h('div', { id: 'checkpoints-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: 'card', id: 'checkpoints' }, h('h2', {}, 'Checkpoints'), body);
  async function reload() {
    try {
      const { data } = await get(`v1/jobs/${jobId}/checkpoints`, {}, { signal });
      const head = h('tr', {}, ['Step', 'Saved', 'Stored size', 'Reward', 'Eval score', ''].map((t, i) => h('th', { class: [2, 3, 4].includes(i) ? 'num' : '' }, t)));
      replace(body, data.length ? h('table', {}, h('thead', {}, head), h('tbody', {}, data.map((c) => checkpointRow(jobId, c, onEvaluate)))) : h('p', { class: 'muted' }, 'No checkpoints yet.'));
    } catch (err) {
      if (!signal.aborted) errorLine(body, err);
    }
  }
  return { el, reload };
}

function evaluationRow(evaluation) {
  const { metrics } = evaluation;
  const others = Object.entries(metrics).filter(([name]) => !['eval/accuracy', 'eval/reward_mean'].includes(name));
  return h(
    'tr',
    {},
    h('td', { class: 'mono' }, evaluation.step),
    h('td', {}, evaluation.trigger),
    h('td', {}, h('span', { class: `badge status-${evaluation.status}` }, evaluation.status)),
    h('td', { class: 'mono num' }, fmtNum(metrics['eval/accuracy'])),
    h('td', { class: 'mono num' }, fmtNum(metrics['eval/reward_mean'])),
    h('td', {}, others.map(([name, value]) => h('span', { class: 'chip' }, `${name.replace(/^eval\//, '')} `, h('b', {}, fmtNum(value)))), evaluation.error ? h('div', { class: 'error' }, evaluation.error.message || JSON.stringify(evaluation.error)) : ''),
    h('td', {}, fmtTime(evaluation.finished_at || evaluation.created_at)),
  );
}

export function evaluationsPanel(jobId, signal) {
  const body = h('div', { id: 'evaluations-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: 'card', id: 'evaluations' }, h('h2', {}, 'Evaluations'), body);
  async function reload() {
    try {
      const { data } = await get(`v1/jobs/${jobId}/evaluations`, {}, { signal });
      const head = h('tr', {}, ['Step', 'Trigger', 'Status', 'Accuracy', 'Reward', 'Other metrics', 'When'].map((t, i) => h('th', { class: [3, 4].includes(i) ? 'num' : '' }, t)));
      replace(body, data.length ? h('table', {}, h('thead', {}, head), h('tbody', {}, data.map(evaluationRow))) : h('p', { class: 'muted' }, 'No evaluations (add an eval section to the spec, or evaluate a checkpoint).'));
    } catch (err) {
      if (!signal.aborted) errorLine(body, err);
    }
  }
  return { el, reload };
}
