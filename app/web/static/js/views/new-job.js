// The new-job form. Its fields, bounds and defaults come from the API's OpenAPI JobCreate schema; values
// are checked against it before sending, and the API's own errors (problem details) land next to fields.

import { ApiError, apiUrl, authHeaders, failOnError, get, idempotencyKey, openApiSchema, post } from '../api.js';
import { h, replace } from '../dom.js';
import { clearErrors, jsonField, rewardSkeleton, rewardTypes, schemaField, schemaFields, showErrors } from '../schema-form.js';

// Shown up front and always sent; the other GRPO knobs sit under "All GRPO settings", sent when changed.
const COMMON_GRPO = ['group_size', 'prompts_per_step', 'max_steps', 'max_new_tokens', 'learning_rate', 'beta', 'temperature', 'seed'];
// The prefilled job is the demo job (workers/demo.py; tests/api/test_prompt_tokens.py keeps them equal): it
// learns on tiny-demo in well under a minute, and its prompts use only the demo tokenizer's 20 symbols.
const DEMO_SPEC = {
  "name": "plus-minus-one",
  "model": {
    "source": "tiny-demo"
  },
  "dataset": {
    "rows": [
      {
        "prompt": "0+1=",
        "answer": "1"
      },
      {
        "prompt": "1+1=",
        "answer": "2"
      },
      {
        "prompt": "2+1=",
        "answer": "3"
      },
      {
        "prompt": "3+1=",
        "answer": "4"
      },
      {
        "prompt": "4+1=",
        "answer": "5"
      },
      {
        "prompt": "5+1=",
        "answer": "6"
      },
      {
        "prompt": "6+1=",
        "answer": "7"
      },
      {
        "prompt": "7+1=",
        "answer": "8"
      },
      {
        "prompt": "8+1=",
        "answer": "9"
      },
      {
        "prompt": "1-1=",
        "answer": "0"
      },
      {
        "prompt": "2-1=",
        "answer": "1"
      },
      {
        "prompt": "3-1=",
        "answer": "2"
      },
      {
        "prompt": "4-1=",
        "answer": "3"
      },
      {
        "prompt": "5-1=",
        "answer": "4"
      },
      {
        "prompt": "6-1=",
        "answer": "5"
      },
      {
        "prompt": "7-1=",
        "answer": "6"
      },
      {
        "prompt": "8-1=",
        "answer": "7"
      },
      {
        "prompt": "9-1=",
        "answer": "8"
      }
    ],
    "prompt_field": "prompt"
  },
  "rewards": [
    {
      "type": "numeric_match",
      "field": "answer",
      "weight": 1.0
    }
  ],
  "grpo": {
    "group_size": 16,
    "prompts_per_step": 8,
    "max_steps": 400,
    "max_new_tokens": 3,
    "temperature": 1.0,
    "learning_rate": 0.001,
    "lr_scheduler": "constant",
    "epsilon_high": 0.28,
    "beta": 0.04,
    "seed": 0,
    "num_threads": 1
  },
  "checkpoint": {
    "every": 100,
    "keep_last": 2
  }
};
const EXAMPLE_ROWS = DEMO_SPEC.dataset.rows;

function setPath(target, path, value) {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys[keys.length - 1]] = value;
}

function getPath(source, path) {
  return path.split('.').reduce((node, key) => (node == null ? undefined : node[key]), source);
}

async function uploadDataset(file) {
  const response = await fetch(apiUrl('v1/datasets', { name: file.name.replace(/\.[^.]+$/, '') }), {
    method: 'POST',
    headers: { ...authHeaders(), 'Content-Type': 'application/jsonl' },
    body: file,
  });
  return (await failOnError(response)).json();
}

function datasetSection(openapi, signal) {
  const S = openapi.components.schemas;
  const rows = jsonField('dataset.rows', { label: 'Rows (JSON Lines, or a JSON array)', rows: 6, lines: true, initial: EXAMPLE_ROWS, hint: 'Each row needs the prompt field and whatever fields the rewards read.' });
  const datasetId = h('select', { id: 'f-dataset-dataset_id' }, h('option', { value: '' }, 'loading…'));
  const upload = h('input', { type: 'file', id: 'dataset-upload', accept: '.jsonl,.json,.ndjson,application/jsonl' });
  const uploadState = h('span', { class: 'muted' });
  upload.addEventListener('change', async () => {
    const file = upload.files[0];
    if (!file) return;
    replace(uploadState, 'uploading…');
    try {
      const dataset = await uploadDataset(file);
      datasetId.append(h('option', { value: dataset.id }, `${dataset.name} (${dataset.row_count} rows)`));
      datasetId.value = dataset.id;
      replace(uploadState, `uploaded ${dataset.row_count} rows`);
    } catch (err) {
      replace(uploadState, h('span', { class: 'error' }, err.message));
    }
  });
  const idField = h('div', { class: 'field', dataset: { field: 'dataset.dataset_id' }, hidden: true }, h('label', { for: 'f-dataset-dataset_id' }, 'Uploaded dataset'), datasetId, h('div', { class: 'field-error', role: 'alert' }), h('label', { class: 'inline' }, 'or upload JSONL ', upload), uploadState);
  const promptField = schemaField(openapi, 'dataset.prompt_field', S.DatasetSpec.properties.prompt_field);
  const source = h('select', { id: 'dataset-source' }, h('option', { value: 'rows' }, 'inline rows'), h('option', { value: 'dataset_id' }, 'an uploaded dataset'));
  source.addEventListener('change', () => {
    rows.el.hidden = source.value !== 'rows';
    idField.hidden = source.value === 'rows';
  });
  get('v1/datasets', { limit: 100 }, { signal })
    .then(({ data }) => replace(datasetId, h('option', { value: '' }, data.length ? 'choose…' : 'none uploaded (POST /v1/datasets)'), data.map((d) => h('option', { value: d.id }, `${d.name} (${d.row_count} rows)`))))
    .catch(() => replace(datasetId, h('option', { value: '' }, 'could not list datasets')));
  const fields = [
    rows,
    promptField,
    {
      path: 'dataset.dataset_id',
      read: () => (source.value === 'rows' ? { value: undefined } : datasetId.value ? { value: datasetId.value } : { error: 'choose a dataset' }),
      set: (value) => {
        if (!value) return;
        source.value = 'dataset_id';
        source.dispatchEvent(new Event('change'));
        if (![...datasetId.options].some((o) => o.value === value)) datasetId.append(h('option', { value }, value));
        datasetId.value = value;
      },
      always: true,
    },
  ];
  rows.always = true;
  const readRows = rows.read;
  rows.read = () => (source.value === 'rows' ? readRows() : { value: undefined });
  const el = h('fieldset', { dataset: { field: 'dataset' } }, h('legend', {}, 'Dataset'), h('div', { class: 'field-error', role: 'alert' }), h('label', {}, 'Prompts from ', source), rows.el, idField, promptField.el);
  return { el, fields };
}

function rewardsSection(openapi, signal) {
  const rewards = jsonField('rewards', { label: 'Rewards (JSON list; the total is their weighted sum)', rows: 5, initial: DEMO_SPEC.rewards });
  rewards.always = true;
  const add = (reward) => {
    const { value, error } = rewards.read();
    rewards.set([...(error || !Array.isArray(value) ? [] : value), reward]);
    rewards.input.dispatchEvent(new Event('input', { bubbles: true }));
  };
  const picker = h('select', { id: 'reward-template', 'aria-label': 'reward type' }, h('option', { value: '' }, 'add a reward…'), rewardTypes(openapi).map((t) => h('option', { value: t }, t)));
  picker.addEventListener('change', () => {
    if (picker.value.startsWith('ref:')) add({ type: 'ref', reward_id: picker.value.slice(4) });
    else if (picker.value) add(rewardSkeleton(openapi, picker.value));
    picker.value = '';
  });
  get('v1/rewards', { limit: 100 }, { signal })
    .then(({ data }) => data.length && picker.append(h('optgroup', { label: 'stored definitions' }, data.map((r) => h('option', { value: `ref:${r.id}` }, `${r.name} (v${r.latest_version})`)))))
    .catch(() => {});
  const el = h('fieldset', {}, h('legend', {}, 'Rewards'), rewards.el, h('div', { class: 'toolbar' }, picker, h('a', { href: '#/playground' }, 'Try a reward in the playground')));
  return { el, fields: [rewards] };
}

function knobsSection(openapi) {
  const S = openapi.components.schemas;
  const grpo = schemaFields(openapi, 'grpo', S.GRPOHyperparameters);
  const common = COMMON_GRPO.map((name) => grpo.find((f) => f.path === `grpo.${name}`));
  for (const field of common) field.always = true;
  const advanced = grpo.filter((f) => !common.includes(f));
  const checkpoint = schemaFields(openapi, 'checkpoint', S.CheckpointSpec);
  const logging = schemaFields(openapi, 'logging', S.LoggingSpec);
  const safeguards = schemaFields(openapi, 'safeguards', S.SafeguardSpec);
  const evalField = jsonField('eval', { label: 'Held-out evaluation (JSON, optional)', rows: 4, optional: true, hint: 'e.g. {"dataset": {"rows": [{"prompt": "4+1=", "answer": "5"}]}, "every": 100}' });
  const initFrom = jsonField('init_from', { label: 'Start from a checkpoint (JSON, optional)', rows: 2, optional: true, hint: '{"job_id": "…", "step": null}' });
  const el = [
    h('fieldset', {}, h('legend', {}, 'GRPO'), h('div', { class: 'grid' }, common.map((f) => f.el)), h('details', {}, h('summary', {}, `All GRPO settings (${advanced.length} more)`), h('div', { class: 'grid' }, advanced.map((f) => f.el)))),
    h('fieldset', {}, h('legend', {}, 'Checkpoints and logging'), h('div', { class: 'grid' }, [...checkpoint, ...logging].map((f) => f.el))),
    h('details', { class: 'fieldset-like' }, h('summary', {}, 'Evaluation, safeguards, initial weights'), evalField.el, h('div', { class: 'grid' }, safeguards.map((f) => f.el)), initFrom.el),
  ];
  return { el, fields: [...grpo, ...checkpoint, ...logging, ...safeguards, evalField, initFrom] };
}

/** The spec from the form, and the fields whose values the schema rejects. */
function collect(fields) {
  const spec = {};
  const errors = [];
  for (const field of fields) {
    const { value, error, unchanged } = field.read();
    if (error) errors.push({ field: field.path, message: error });
    else if (value !== undefined && (field.always || !unchanged)) setPath(spec, field.path, value);
  }
  return { spec, errors };
}

/** Submit: schema checks first, then POST; the API's field errors go next to the fields they name. */
function onSubmit(form, fields, summary, submit) {
  return async (event) => {
    event.preventDefault();
    clearErrors(form);
    summary.hidden = true;
    const { spec, errors } = collect(fields);
    if (errors.length) {
      showErrors(form, errors);
      replace(summary, `Fix the ${errors.length} marked field${errors.length > 1 ? 's' : ''} first (checked against the API's schema).`);
      summary.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      const job = await post('v1/jobs', spec, { headers: { 'Idempotency-Key': idempotencyKey() } });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      const unplaced = err instanceof ApiError ? showErrors(form, err.errors) : [];
      replace(summary, h('b', {}, 'The API refused the job: '), err.message, unplaced.map((e) => h('div', {}, `${e.field}: ${e.message}`)));
      summary.hidden = false;
      if (!form.querySelector('.invalid')) summary.scrollIntoView({ block: 'center' });
    } finally {
      submit.disabled = false;
    }
  };
}

/** "Start from a JSON spec": paste one, and it fills the form's fields. */
function pastePanel(fill) {
  const pasted = jsonField('pasted', { label: 'Paste a job spec (JSON) to fill the form', rows: 4, optional: true });
  const load = h('button', { type: 'button', class: 'secondary small', id: 'load-spec' }, 'Fill the form');
  const el = h('details', { class: 'card' }, h('summary', {}, 'Start from a JSON spec'), pasted.el, load);
  load.addEventListener('click', () => {
    const { value, error } = pasted.read();
    clearErrors(el);
    if (error) showErrors(el, [{ field: 'pasted', message: error }]);
    else if (value) fill(value);
  });
  return el;
}

export async function renderNewJob(container, { params: [cloneFrom], signal }) {
  const openapi = await openApiSchema();
  const S = openapi.components.schemas;
  const basics = [schemaField(openapi, 'name', S.JobCreate.properties.name), ...schemaFields(openapi, 'model', S.ModelSpec)];
  basics[1].set('tiny-demo');
  for (const field of basics.slice(0, 2)) field.always = true;
  const dataset = datasetSection(openapi, signal);
  const rewards = rewardsSection(openapi, signal);
  const knobs = knobsSection(openapi);
  const fields = [...basics, ...dataset.fields, ...rewards.fields, ...knobs.fields];
  const summary = h('div', { class: 'error-box', id: 'form-errors', role: 'alert', hidden: true });
  const preview = h('pre', { class: 'spec', id: 'spec-preview' });
  const submit = h('button', { type: 'submit', id: 'submit-job' }, 'Submit job');
  const form = h('form', { id: 'new-job-form', class: 'job-form', novalidate: true });
  const fill = (spec) => {
    for (const field of fields) if (getPath(spec, field.path) !== undefined) field.set(getPath(spec, field.path));
    form.dispatchEvent(new Event('input'));
  };
  form.addEventListener('input', () => replace(preview, JSON.stringify(collect(fields).spec, null, 2)));
  form.addEventListener('submit', onSubmit(form, fields, summary, submit));
  replace(
    form,
    h('fieldset', {}, h('legend', {}, 'Job'), h('div', { class: 'grid' }, basics.map((f) => f.el))),
    dataset.el,
    rewards.el,
    knobs.el,
    summary,
    h('div', { class: 'toolbar' }, submit, h('a', { href: '#/jobs' }, 'Back to the jobs')),
  );
  replace(
    container,
    h('h1', {}, cloneFrom ? 'New job (from a copy)' : 'New job'),
    pastePanel(fill),
    h('div', { class: 'form-layout' }, form, h('aside', { class: 'card' }, h('h2', {}, 'What will be sent'), preview)),
  );
  if (!cloneFrom) fill(DEMO_SPEC);
  if (cloneFrom) {
    const job = await get(`v1/jobs/${cloneFrom}`, {}, { signal });
    fill({ ...job.spec, name: `${job.spec.name}-copy` });
  }
  form.dispatchEvent(new Event('input'));
}
