// The job page's "Try it" panel: one prompt, two models side by side (by default the base model and
// this job's latest checkpoint), answers streamed from POST /v1/chat/completions (docs/inference.md).

import { apiUrl, authHeaders, get } from '../api.js';
import { h, replace } from '../dom.js';

/** Yield the JSON payloads of a server-sent event stream read with fetch (EventSource cannot POST). */
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') return;
        yield JSON.parse(data);
      }
    }
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message || body.detail || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** Stream one chat answer into `out`; returns the finish reason. */
async function ask(model, prompt, knobs, out, signal) {
  const response = await fetch(apiUrl('v1/chat/completions'), {
    method: 'POST',
    signal,
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeaders() },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: prompt }], stream: true, ...knobs }),
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  let finish = null;
  for await (const chunk of sseData(response)) {
    if (chunk.error) throw new Error(chunk.error.message);
    for (const choice of chunk.choices || []) {
      out.textContent += choice.delta?.content || '';
      finish = choice.finish_reason || finish;
    }
  }
  return finish;
}

function modelSelect(id, models, selected) {
  return h('select', { id }, models.map((m) => h('option', { value: m, selected: m === selected }, m)));
}

export function tryItPanel(jobId, baseModel, signal) {
  const el = h('section', { class: 'card try-it', id: 'try-it' });
  const prompt = h('textarea', { id: 'try-prompt', rows: 3, placeholder: 'A prompt, sent as one user message' });
  const maxTokens = h('input', { id: 'try-max-tokens', type: 'number', min: 1, value: 32 });
  const temperature = h('input', { id: 'try-temperature', type: 'number', min: 0, max: 2, step: 0.1, value: 0 });
  const columns = [0, 1].map((i) => ({ select: null, out: h('pre', { class: 'text try-output', id: `try-output-${i}` }), note: h('div', { class: 'muted', id: `try-note-${i}` }) }));
  let models = [];

  async function send(event) {
    event.preventDefault();
    const knobs = { max_tokens: Number(maxTokens.value) || 32, temperature: Number(temperature.value) };
    await Promise.all(
      columns.map(async ({ select, out, note }) => {
        out.textContent = '';
        replace(note, 'generating…');
        try {
          const finish = await ask(select.value, prompt.value, knobs, out, signal);
          replace(note, `finish: ${finish || '?'}`);
        } catch (err) {
          if (!signal.aborted) replace(note, h('span', { class: 'error', role: 'alert' }, err.message));
        }
      }),
    );
  }

  function draw() {
    if (!models.length) {
      replace(el, h('h2', {}, 'Try it'), h('p', { class: 'muted' }, 'No model to try yet.'));
      return;
    }
    const latest = models.find((m) => m === `${jobId}:latest`);
    const defaults = [models.includes(baseModel) ? baseModel : models[0], latest || models[0]];
    columns.forEach((column, i) => {
      const previous = column.select?.value;
      column.select = modelSelect(`try-model-${i}`, models, models.includes(previous) ? previous : defaults[i]);
    });
    replace(
      el,
      h('h2', {}, 'Try it'),
      h('p', { class: 'muted' }, 'Chat with a checkpoint beside the base model (OpenAI-compatible: ', h('code', {}, 'POST /v1/chat/completions'), ').'),
      h(
        'form',
        { id: 'try-form', onsubmit: send },
        prompt,
        h('div', { class: 'toolbar' }, h('label', {}, 'max tokens ', maxTokens), h('label', {}, 'temperature ', temperature), h('button', { type: 'submit', id: 'try-send' }, 'Send to both')),
      ),
      h('div', { class: 'try-columns' }, columns.map((c) => h('div', { class: 'try-column' }, c.select, c.out, c.note))),
    );
  }

  async function reload() {
    try {
      const page = await get('v1/models', {}, { signal });
      const mine = page.data.filter((m) => m.id.startsWith(`${jobId}:`)).map((m) => m.id);
      const bases = page.data.filter((m) => !m.id.includes(':')).map((m) => m.id);
      const next = [...bases, ...mine];
      if (next.join('\n') === models.join('\n') && el.childElementCount) return; // keep what the user typed
      models = next;
      draw();
    } catch (err) {
      if (!signal.aborted) replace(el, h('h2', {}, 'Try it'), h('p', { class: 'error', role: 'alert' }, err.message));
    }
  }

  return { el, reload };
}
