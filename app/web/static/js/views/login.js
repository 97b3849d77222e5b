// Sign in with an API key. The key stays in this browser (session or local storage) and is sent as a
// bearer token with every API call; it is checked once here with a cheap list call.

import { apiUrl, setKey } from '../api.js';
import { h, replace } from '../dom.js';

async function check(key) {
  const response = await fetch(apiUrl('v1/jobs', { limit: 1 }), { headers: { Authorization: `Bearer ${key}` } });
  if (response.ok) return null;
  const problem = await response.json().catch(() => ({}));
  return problem.detail || `HTTP ${response.status}`;
}

export function renderLogin(container, { message, onSignedIn }) {
  const key = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', required: true, placeholder: 'grpo_…', spellcheck: 'false' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  const error = h('p', { class: 'error', role: 'alert', hidden: !message }, message || '');
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Enter an API key of your team (the operator creates them with ', h('code', {}, 'python -m app.cli create-key'), ').'),
    h('label', { for: 'api-key' }, 'API key'),
    key,
    h('label', { class: 'inline' }, remember, ' Remember on this device (otherwise until the tab is closed)'),
    error,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const problem = await check(key.value.trim());
      if (problem) {
        replace(error, `The key was not accepted: ${problem}`);
        error.hidden = false;
        return;
      }
      setKey(key.value.trim(), remember.checked);
      onSignedIn();
    } catch (err) {
      replace(error, `Could not reach the service: ${err.message}`);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  replace(container, form);
  key.focus();
}
