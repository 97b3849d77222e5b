// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the stream is
// read with a ReadableStream and parsed here, and a dropped connection resumes with Last-Event-ID.

import { ApiError, apiUrl, authHeaders, failOnError } from './api.js';

/** An incremental parser for the text/event-stream format; calls onEvent({type, data, id}). */
export function createParser(onEvent, onRetry = () => {}) {
  let buffer = '';
  let data = [];
  let type = '';
  let lastId; // persists across events, as in the spec

  function processLine(line) {
    if (line === '') {
      if (data.length) onEvent({ type: type || 'message', data: data.join('\n'), id: lastId });
      data = [];
      type = '';
      return;
    }
    if (line.startsWith(':')) return; // a comment, e.g. the server's keep-alive ping
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
  }

  return {
    feed(chunk) {
      buffer += chunk;
      const breaks = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = breaks.exec(buffer))) {
        // A lone '\r' at the end may be the first half of '\r\n' split across chunks: wait for more.
        if (match[0] === '\r' && match.index === buffer.length - 1) break;
        processLine(buffer.slice(start, match.index));
        start = breaks.lastIndex;
      }
      buffer = buffer.slice(start);
    },
    get lastId() {
      return lastId;
    },
  };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follow an SSE endpoint of the API. onEvent gets {type, data (parsed JSON), id}; onState gets
 * 'live' | 'reconnecting' | 'ended' | 'error'. When the server closes the stream, `done()` decides:
 * true ends it, false reconnects (with Last-Event-ID, so nothing is received twice).
 */
export function followEvents(path, { onEvent, onState = () => {}, done = () => true, lastEventId } = {}) {
  const controller = new AbortController();
  let lastId = lastEventId;
  let retryMs = 1000;
  let failures = 0;

  async function readStream(response) {
    const parser = createParser(
      (event) => {
        lastId = event.id ?? lastId;
        try {
          onEvent({ type: event.type, id: event.id, data: JSON.parse(event.data) });
        } catch (error) {
          console.error('event not handled', event, error); // one bad event must not restart the stream
        }
      },
      (ms) => (retryMs = ms),
    );
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) return;
      parser.feed(value);
      failures = 0;
    }
  }

  async function run() {
    while (!controller.signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream', ...authHeaders() };
        if (lastId !== undefined) headers['Last-Event-ID'] = lastId;
        const response = await failOnError(
          await fetch(apiUrl(path), { headers, signal: controller.signal, cache: 'no-store' }),
        );
        onState('live');
        await readStream(response);
        if (done()) {
          onState('ended');
          return;
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
          onState('error', error);
          return;
        }
        failures += 1;
      }
      onState('reconnecting');
      await sleep(Math.min(retryMs * 2 ** Math.min(failures, 4), 15_000), controller.signal);
    }
  }

  run();
  return { close: () => controller.abort() };
}
