// The reward playground: score pasted samples with a reward definition (POST /v1/rewards:test), without
// storing it or starting a job. User code runs in the server's sandbox, as it would in training.

import { ApiError, get, openApiSchema, post } from '../api.js';
import { fmtNum, h, replace } from '../dom.js';
import { clearErrors, jsonField, rewardSkeleton, rewardTypes, showErrors } from '../schema-form.js';

const EXAMPLE_REWARD = { type: 'exact_match', field: 'answer' };
const EXAMPLE_SAMPLES = [
  { prompt: 'copy 3:', completion: '3', row: { answer: '3' } },
  { prompt: 'copy 4:', completion: ' 4 ', row: { answer: '4' } },
  { prompt: 'copy 5:', completion: '55', row: { answer: '5' } },
];

function resultsTable(samples, response) {
  const names = [...new Set(response.results.flatMap((r) => Object.keys(r.components)))];
  const head = h('tr', {}, h('th', {}, '#'), h('th', {}, 'Completion'), h('th', { class: 'num' }, 'Total'), names.map((n) => h('th', { class: 'num' }, n)), h('th', {}, 'Errors'));
  const rows = response.results.map((result, i) =>
    h(
      'tr',
      { class: 'result' },
      h('td', { class: 'mono' }, i + 1),
      h('td', {}, h('pre', { class: 'text completion' }, samples[i].completion)),
      h('td', { class: 'mono num total' }, fmtNum(result.total)),
      names.map((n) => h('td', { class: 'mono num' }, result.components[n] === null ? 'n/a' : fmtNum(result.components[n]))),
      h('td', { class: 'error' }, Object.entries(result.errors).map(([name, message]) => h('div', {}, `${name}: ${message}`))),
    ),
  );
  return [
    h('p', { id: 'playground-summary' }, `Mean total `, h('b', {}, fmtNum(response.mean_total)), ` over ${response.results.length} samples; `, h('b', {}, response.error_count), ' with errors.'),
    h('table', { id: 'playground-results' }, h('thead', {}, head), h('tbody', {}, rows)),
  ];
}

export async function renderPlayground(container, { signal }) {
  const openapi = await openApiSchema();
  const reward = jsonField('reward', { label: 'Reward definition (JSON; any type, "multi" combines several)', rows: 8, initial: EXAMPLE_REWARD });
  const samples = jsonField('samples', {
    label: 'Samples (JSON Lines or a JSON array of {prompt, completion, row})',
    rows: 8,
    lines: true,
    initial: EXAMPLE_SAMPLES,
    hint: '`row` holds the dataset fields the reward reads, e.g. the reference answer.',
  });
  const picker = h('select', { id: 'playground-template', 'aria-label': 'reward template' }, h('option', { value: '' }, 'start from…'), rewardTypes(openapi).map((t) => h('option', { value: t }, t)));
  picker.addEventListener('change', () => {
    if (picker.value.startsWith('stored:')) reward.set(JSON.parse(picker.value.slice(7)));
    else if (picker.value) reward.set(rewardSkeleton(openapi, picker.value));
    picker.value = '';
  });
  get('v1/rewards', { limit: 100 }, { signal })
    .then(({ data }) => data.length && picker.append(h('optgroup', { label: 'stored definitions' }, data.map((r) => h('option', { value: `stored:${JSON.stringify(r.spec)}` }, r.name)))))
    .catch(() => {});
  const output = h('div', { id: 'playground-output' });
  const summary = h('div', { class: 'error-box', role: 'alert', hidden: true, id: 'playground-errors' });
  const run = h('button', { type: 'submit', id: 'score' }, 'Score samples');
  const form = h('form', { class: 'card', id: 'playground-form', novalidate: true }, h('div', { class: 'toolbar' }, picker), reward.el, samples.el, summary, run);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    summary.hidden = true;
    const parsed = [reward, samples].map((field) => ({ field, ...field.read() }));
    const invalid = parsed.filter((p) => p.error).map((p) => ({ field: p.field.path, message: p.error }));
    if (invalid.length) return void showErrors(form, invalid);
    const [spec, rows] = parsed.map((p) => p.value);
    run.disabled = true;
    replace(output, h('p', { class: 'muted' }, 'Scoring…'));
    try {
      replace(output, resultsTable(rows, await post('v1/rewards:test', { reward: spec, samples: rows }, { signal })));
    } catch (err) {
      replace(output);
      const unplaced = err instanceof ApiError ? showErrors(form, err.errors) : [];
      replace(summary, h('b', {}, 'The API refused it: '), err.message, unplaced.map((e) => h('div', {}, `${e.field}: ${e.message}`)));
      summary.hidden = false;
    } finally {
      run.disabled = false;
    }
  });

  replace(
    container,
    h('h1', {}, 'Reward playground'),
    h('p', { class: 'muted' }, 'Score completions with a reward before training with it. Python rewards run in the sandbox, as in a job.'),
    form,
    h('section', { class: 'card' }, h('h2', {}, 'Scores'), output),
  );
}
