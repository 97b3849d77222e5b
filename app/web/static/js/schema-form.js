// Form fields built from the API's OpenAPI schema (types, bounds, enums, defaults, descriptions), the
// same checks in the browser before sending, and the API's problem-detail errors shown next to fields.

import { h, replace } from './dom.js';

/** Follow a $ref into components/schemas. */
export function resolve(openapi, schema) {
  let current = schema;
  while (current?.$ref) current = openapi.components.schemas[current.$ref.split('/').pop()];
  return current;
}

/** The non-null branch of `X | None` (anyOf [X, {type: null}]), and whether null is allowed. */
export function unwrapNullable(openapi, schema) {
  const resolved = resolve(openapi, schema);
  const options = resolved?.anyOf;
  if (!options) return { schema: resolved, nullable: false };
  const others = options.filter((option) => option.type !== 'null');
  return { schema: resolve(openapi, others[0]), nullable: others.length < options.length };
}

function patternMatches(pattern, value) {
  try {
    return new RegExp(pattern, 'u').test(value);
  } catch {
    return true; // a Python-only construct: leave the check to the server
  }
}

/** The message for a value the schema rejects, or null. Mirrors pydantic's wording loosely. */
export function checkValue(schema, value) {
  if (value === undefined || value === null) return null;
  const { type } = schema;
  if ((type === 'integer' || type === 'number') && typeof value !== 'number') return 'must be a number';
  if (type === 'integer' && !Number.isInteger(value)) return 'must be a whole number';
  if (schema.minimum !== undefined && value < schema.minimum) return `must be ≥ ${schema.minimum}`;
  if (schema.maximum !== undefined && value > schema.maximum) return `must be ≤ ${schema.maximum}`;
  if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return `must be > ${schema.exclusiveMinimum}`;
  if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return `must be < ${schema.exclusiveMaximum}`;
  if (type === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) return schema.minLength === 1 ? 'must not be empty' : `needs at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `at most ${schema.maxLength} characters`;
    if (schema.pattern && !patternMatches(schema.pattern, value)) return `must match ${schema.pattern}`;
  }
  if (schema.enum && !schema.enum.includes(value)) return `must be one of ${schema.enum.join(', ')}`;
  if (type === 'array' && schema.maxItems !== undefined && value.length > schema.maxItems) return `at most ${schema.maxItems} items`;
  return null;
}

function inputFor(schema, id) {
  if (schema.enum) return h('select', { id }, schema.enum.map((option) => h('option', { value: option }, option)));
  if (schema.type === 'boolean') return h('input', { id, type: 'checkbox' });
  if (schema.type === 'integer' || schema.type === 'number') return h('input', { id, type: 'text', inputmode: 'decimal', class: 'narrow' });
  return h('input', { id, type: 'text' });
}

/** One field: label, input, description, error slot. read() gives {value, error}; undefined = omit. */
export function schemaField(openapi, path, propertySchema, { required = false } = {}) {
  const { schema, nullable } = unwrapNullable(openapi, propertySchema);
  const id = `f-${path.replace(/[^A-Za-z0-9]+/g, '-')}`;
  const input = inputFor(schema, id);
  const fallback = propertySchema.default ?? schema.default;
  const isList = schema.type === 'array';
  const toText = (value) => (value === null || value === undefined ? '' : isList ? value.join(', ') : String(value));

  function set(value) {
    if (schema.type === 'boolean') input.checked = Boolean(value);
    else input.value = toText(value);
  }

  function parse() {
    if (schema.type === 'boolean') return input.checked;
    const text = input.value.trim();
    if (text === '') return required ? '' : undefined; // omitted: the API applies its default
    if (schema.type === 'integer' || schema.type === 'number') return Number(text);
    if (isList) return text.split(',').map((item) => item.trim()).filter(Boolean);
    return input.value;
  }

  function read() {
    const value = parse();
    const error = typeof value === 'number' && Number.isNaN(value) ? 'must be a number' : checkValue(schema, value);
    const unchanged = JSON.stringify(value) === JSON.stringify(fallback) || (value === undefined && fallback === null);
    return { value, error, unchanged };
  }

  set(fallback);
  const hint = [propertySchema.description || schema.description, fallback !== undefined && fallback !== null ? `Default: ${toText(fallback) || '[]'}.` : nullable ? 'Empty: none.' : ''];
  const el = h(
    'div',
    { class: `field ${schema.type === 'boolean' ? 'check' : ''}`, dataset: { field: path } },
    schema.type === 'boolean' ? h('label', { class: 'inline mono' }, input, path.split('.').pop()) : [h('label', { for: id, class: 'mono' }, path.split('.').pop()), input],
    h('div', { class: 'field-error', role: 'alert' }),
    h('div', { class: 'hint' }, hint.filter(Boolean).join(' ')),
  );
  return { path, el, input, read, set };
}

/** Fields for every property of an object schema (e.g. GRPOHyperparameters), in schema order. */
export function schemaFields(openapi, prefix, objectSchema) {
  const resolved = resolve(openapi, objectSchema);
  const required = new Set(resolved.required || []);
  return Object.entries(resolved.properties).map(([name, property]) =>
    schemaField(openapi, `${prefix}.${name}`, property, { required: required.has(name) }),
  );
}

/** A JSON-valued field (a textarea). `lines`: also accept JSON Lines, one value per line, as a list. */
export function jsonField(path, { label, hint, rows = 6, optional = false, lines = false, initial } = {}) {
  const id = `f-${path.replace(/[^A-Za-z0-9]+/g, '-')}`;
  const input = h('textarea', { id, rows, spellcheck: 'false', class: 'mono' });
  function parseLines(text) {
    const values = [];
    for (const [index, line] of text.split('\n').entries()) {
      if (!line.trim()) continue;
      try {
        values.push(JSON.parse(line));
      } catch (err) {
        throw new Error(`line ${index + 1} is not valid JSON: ${err.message}`);
      }
    }
    return values;
  }
  function read() {
    const text = input.value.trim();
    if (!text) return optional ? { value: undefined } : { error: 'must not be empty' };
    try {
      return { value: lines && !text.startsWith('[') ? parseLines(text) : JSON.parse(text) };
    } catch (err) {
      return { error: lines ? err.message : `not valid JSON: ${err.message}` };
    }
  }
  function set(value) {
    if (value === undefined || value === null) input.value = '';
    else if (lines && Array.isArray(value)) input.value = value.map((item) => JSON.stringify(item)).join('\n');
    else input.value = JSON.stringify(value, null, 2);
  }
  set(initial);
  const el = h(
    'div',
    { class: 'field wide', dataset: { field: path } },
    h('label', { for: id }, label || path),
    input,
    h('div', { class: 'field-error', role: 'alert' }),
    hint ? h('div', { class: 'hint' }, hint) : '',
  );
  return { path, el, input, read: () => ({ unchanged: false, ...read() }), set };
}

// --- reward templates -----------------------------------------------------------------------------

/** Inline reward types, from the discriminator of the JobCreate schema's rewards. */
export function rewardTypes(openapi) {
  const mapping = openapi.components.schemas.JobCreate.properties.rewards.items.discriminator.mapping;
  return Object.keys(mapping).filter((type) => type !== 'ref').sort();
}

/** A starting point for a reward of `type`: its required fields, with examples where the schema has them. */
export function rewardSkeleton(openapi, type) {
  const mapping = openapi.components.schemas.JobCreate.properties.rewards.items.discriminator.mapping;
  const schema = resolve(openapi, { $ref: mapping[type] });
  const skeleton = { type };
  for (const name of schema.required || []) {
    if (name === 'type') continue;
    const property = unwrapNullable(openapi, schema.properties[name]).schema;
    const example = schema.properties[name].examples?.[0] ?? property.examples?.[0];
    skeleton[name] = example ?? (property.type === 'array' ? [] : property.type === 'object' ? {} : '');
  }
  if (schema.properties.field && !('field' in skeleton)) skeleton.field = schema.properties.field.default ?? 'answer';
  return skeleton;
}

// --- errors next to fields ------------------------------------------------------------------------

export function clearErrors(form) {
  for (const field of form.querySelectorAll('[data-field].invalid')) field.classList.remove('invalid');
  for (const slot of form.querySelectorAll('.field-error')) replace(slot);
}

/** The element for an error path: the field itself, else its nearest enclosing one ('rewards[0].x' -> 'rewards'). */
function fieldElement(form, path) {
  let candidate = path;
  while (candidate) {
    const el = form.querySelector(`[data-field="${CSS.escape(candidate)}"]`);
    if (el) return el;
    const cut = Math.max(candidate.lastIndexOf('.'), candidate.lastIndexOf('['));
    candidate = cut > 0 ? candidate.slice(0, cut) : '';
  }
  return null;
}

/** Show [{field, message}] inline; returns the errors no field could take (for a summary). */
export function showErrors(form, errors) {
  const unplaced = [];
  for (const error of errors) {
    const el = fieldElement(form, error.field);
    if (!el) {
      unplaced.push(error);
      continue;
    }
    el.classList.add('invalid');
    for (let parent = el.closest('details'); parent; parent = parent.parentElement?.closest('details')) parent.open = true;
    const exact = el.dataset.field === error.field;
    el.querySelector(':scope > .field-error').append(h('div', {}, exact ? error.message : `${error.field}: ${error.message}`));
  }
  form.querySelector('.invalid')?.scrollIntoView({ block: 'center' });
  return unplaced;
}
