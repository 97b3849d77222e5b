// Pause and resume buttons of the job page (POST /v1/jobs/{id}/pause | resume). A running job pauses
// after its current step and a checkpoint; a paused one holds no worker until it is resumed.

import { post } from '../api.js';
import { h, replace } from '../dom.js';

const PAUSABLE = new Set(['queued', 'running']);

export function pauseControls(jobId, onChange) {
  const el = h('div', { class: 'pause', id: 'pause-controls' });
  async function act(action) {
    try {
      onChange(await post(`v1/jobs/${jobId}/${action}`));
    } catch (err) {
      replace(el, h('span', { class: 'error' }, err.message));
    }
  }
  const button = (id, text, action) => h('button', { type: 'button', class: 'secondary', id, onclick: () => act(action) }, text);
  /** What the job allows now: pause while queued or running, resume once paused. */
  function update(job) {
    if (job.cancel_requested) replace(el);
    else if (PAUSABLE.has(job.status)) replace(el, button('pause-job', 'Pause', 'pause'));
    else if (job.status === 'pausing') replace(el, h('span', { class: 'muted' }, 'Pausing after the current step…'));
    else if (job.status === 'paused') replace(el, button('resume-job', 'Resume', 'resume'));
    else replace(el);
  }
  return { el, update };
}

const fmt = (value, digits = 0) => Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });

/** What the job has consumed so far (totals on the job; the usage/ metrics chart them per step). */
export function usageLine(job) {
  const u = job.usage;
  if (!u) return '';
  const parts = [
    `${fmt(u.generated_tokens)} tokens sampled`,
    `${fmt(u.prompt_tokens)} prompt tokens`,
    `${fmt(u.trained_tokens)} trained`,
    `${fmt(u.reward_calls)} reward calls (${fmt(u.reward_seconds, 1)} s)`,
    `${fmt(u.device_hours, 4)} device-h`,
  ];
  const budget = Object.entries(job.spec.budget || {}).filter(([, v]) => v != null);
  const limits = budget.length ? `  ·  budget: ${budget.map(([k, v]) => `${k} ${fmt(v, 4)}`).join(', ')}` : '';
  return h('div', { class: 'muted', id: 'job-usage' }, `Usage: ${parts.join(' · ')}${limits}`);
}
