// The public REST API, called with the user's API key as a bearer token. Nothing else is used.

const KEY_NAME = 'grpo.apiKey';

// The service root, one level above /dashboard/, so the dashboard also works behind a path prefix.
export const API_ROOT = new URL('../', document.baseURI);

export function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ''), API_ROOT);
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, item);
  }
  return url;
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME);
}

export function setKey(key, remember) {
  clearKey();
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
}

export function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** A problem document (RFC 9457) from the API, with its per-field errors. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: `HTTP ${response.status} ${response.statusText}` };
  }
}

export async function failOnError(response) {
  if (response.ok) return response;
  const problem = await problemOf(response);
  if (response.status === 401) window.dispatchEvent(new CustomEvent('grpo:unauthorized', { detail: problem.detail }));
  throw new ApiError(response.status, problem);
}

export async function request(method, path, { params, body, headers, signal } = {}) {
  const init = { method, signal, headers: { Accept: 'application/json', ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await failOnError(await fetch(apiUrl(path, params), init));
  return response.status === 204 ? null : response.json();
}

export const get = (path, params, options) => request('GET', path, { params, ...options });
export const post = (path, body, options) => request('POST', path, { body, ...options });

/** Every item of a cursor-paged list (`data` + `next_cursor`). */
export async function getAll(path, params, options) {
  const items = [];
  let cursor;
  do {
    const page = await get(path, { ...params, cursor }, options);
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** Download a file that needs the Authorization header: fetched as a blob, saved through a temporary link. */
export async function download(path, fallbackName) {
  const response = await failOnError(await fetch(apiUrl(path), { headers: authHeaders() }));
  const disposition = response.headers.get('Content-Disposition') || '';
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

/** A random Idempotency-Key; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

let openapi;
export function openApiSchema() {
  openapi ??= fetch(apiUrl('openapi.json')).then(failOnError).then((r) => r.json());
  return openapi;
}
