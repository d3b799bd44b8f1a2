'use strict';
// The Node client against a real chatwire server (started here on 127.0.0.1:0).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: sleep } = require('node:timers/promises');
const {
  ChatwireClient,
  ChatwireError,
  userText,
  status,
  structToObject,
  toStruct,
  toolCallArguments,
  parseArgumentsJson,
  decodeStatusDetails,
} = require('../src');
const { startServer } = require('./support/server');

const TOKEN = 'node-test-token';
// fake:echo sleeps TOKEN_DELAY_MS before each token: a long prompt is a slow model.
const TOKEN_DELAY_MS = 20;
const CONFIG = `
[fake]
token_delay_ms = ${TOKEN_DELAY_MS}

[retry]
max_retries = 0

# One call at a time: a second concurrent call is RESOURCE_EXHAUSTED at once,
# so a new call succeeding proves the server ended the previous one.
[models.slow]
target = "fake:echo"
max_concurrent = 1
`;
// 400 tokens at 20 ms: ~8 s, far longer than any test waits.
const LONG_PROMPT = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');

let server;
let client;

before(async () => {
  server = await startServer({ configToml: CONFIG, env: { CHATWIRE_API_KEYS: TOKEN } });
  client = new ChatwireClient(server.addr, { token: TOKEN });
});

after(async () => {
  if (client) client.close();
  if (server) await server.stop();
});

function req(model, text, extra = {}) {
  return { model, messages: [userText(text)], ...extra };
}

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

async function rejection(promiseOrFn) {
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

/** Resolves when a call to the `slow` alias (max_concurrent 1) is accepted again. */
async function slowSlotFree(withinMs) {
  const end = Date.now() + withinMs;
  for (;;) {
    try {
      const m = await client.invoke(req('slow', 'ok'), { deadlineMs: 5000 });
      return m;
    } catch (e) {
      if (!(e instanceof ChatwireError) || e.code !== status.RESOURCE_EXHAUSTED || Date.now() > end) throw e;
      await sleep(25);
    }
  }
}

test('Stream: tokens in order, `last` only on the final chunk', async () => {
  const text = 'Hello there,  moon\nfish';
  const chunks = await collect(client.stream(req('fake:echo', text)));
  assert.ok(chunks.length >= 7, `one chunk per token, got ${chunks.length}`);
  const texts = chunks.filter((c) => c.delta === 'text').map((c) => c.text);
  assert.deepEqual(texts, ['Hello', ' ', 'there,', ' ', ' ', 'moon', '\n', 'fish']);
  assert.deepEqual(chunks.map((c) => c.last), chunks.map((_, i) => i === chunks.length - 1));
  const lastChunk = chunks[chunks.length - 1];
  assert.equal(lastChunk.stopReason, 'STOP_REASON_END_TURN');
  for (const c of chunks) {
    assert.equal(c.provider, 'fake');
    assert.equal(c.id, chunks[0].id);
  }
  for (const c of chunks.slice(0, -1)) assert.equal(c.stopReason, 'STOP_REASON_UNSPECIFIED');
});

test('Invoke: the fold of the Stream chunks', async () => {
  const m = await client.invoke(req('fake:echo', 'one two three'));
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].block, 'text');
  assert.equal(m.content[0].text, 'one two three');
  assert.equal(m.stopReason, 'STOP_REASON_END_TURN');
  assert.equal(m.provider, 'fake');
});

test('Invoke honours stop and maxTokens (fake:echo)', async () => {
  const m = await client.invoke(req('fake:echo', 'alpha beta gamma delta', { stop: [' gamma'] }));
  assert.equal(m.content[0].text, 'alpha beta');
  assert.equal(m.stopReason, 'STOP_REASON_STOP_SEQUENCE');
  const cut = await client.invoke(req('fake:echo', 'alpha beta gamma delta', { maxTokens: 3 }));
  assert.equal(cut.content[0].text, 'alpha beta');
  assert.equal(cut.stopReason, 'STOP_REASON_MAX_TOKENS');
});

test('StreamEvents: start, one stream per chunk, end; run id, tags and metadata on each', async () => {
  const events = await collect(
    client.streamEvents(
      req('fake:echo', 'a b', { config: { tags: ['t1'], metadata: { user: 'u1' }, runId: '0190a0b0-0000-7000-8000-000000000001' } }),
    ),
  );
  const kinds = events.map((e) => e.event);
  assert.equal(kinds[0], 'start');
  assert.equal(kinds[kinds.length - 1], 'end');
  assert.ok(kinds.slice(1, -1).every((k) => k === 'stream'));
  assert.equal(events[0].start.input.model, 'fake:echo');
  assert.equal(events[0].name, 'FakeChatModel');
  for (const e of events) {
    assert.equal(e.runId, '0190a0b0-0000-7000-8000-000000000001');
    assert.deepEqual(e.tags, ['t1']);
    assert.equal(e.metadata.user, 'u1');
    assert.equal(e.metadata.ls_provider, 'fake');
  }
  const streamed = events.filter((e) => e.event === 'stream').map((e) => e.stream.chunk.text || '').join('');
  assert.equal(streamed, 'a b');
  assert.equal(events[events.length - 1].end.output.content[0].text, 'a b');
  assert.equal(events[events.length - 2].stream.chunk.last, true);
});

test('ListModels: the fake provider and the configured alias', async () => {
  const r = await client.listModels();
  const fake = r.providers.find((p) => p.name === 'fake');
  assert.equal(fake.configured, true);
  const slow = r.models.find((m) => m.name === 'slow');
  assert.equal(slow.target, 'fake:echo');
  assert.equal(slow.provider, 'fake');
});

test('bearer token: none or a wrong one is UNAUTHENTICATED', async () => {
  const none = new ChatwireClient(server.addr);
  const wrong = new ChatwireClient(server.addr, { token: 'not-the-token' });
  try {
    for (const c of [none, wrong]) {
      const e = await rejection(c.invoke(req('fake:echo', 'hi')));
      assert.ok(e instanceof ChatwireError);
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.equal(e.codeName, 'UNAUTHENTICATED');
      assert.ok(!e.message.includes('not-the-token'), 'the token is not echoed');
    }
    // a per-call token overrides the client's
    const m = await none.invoke(req('fake:echo', 'hi'), { token: TOKEN });
    assert.equal(m.content[0].text, 'hi');
  } finally {
    none.close();
    wrong.close();
  }
});

test('an unknown provider or alias: NOT_FOUND with ErrorInfo (domain chatwire)', async () => {
  const alias = await rejection(client.invoke(req('no-such-alias', 'hi')));
  assert.equal(alias.code, status.NOT_FOUND);
  assert.equal(alias.reason, 'UNKNOWN_MODEL');
  const e = await rejection(client.invoke(req('nosuch:model', 'hi')));
  assert.ok(e instanceof ChatwireError);
  assert.equal(e.code, status.NOT_FOUND);
  assert.deepEqual({ reason: e.errorInfo.reason, domain: e.errorInfo.domain }, { reason: 'UNKNOWN_PROVIDER', domain: 'chatwire' });
  assert.equal(e.reason, 'UNKNOWN_PROVIDER');
  assert.equal(e.retryInfo, null);
  assert.equal(e.retryable, false);
  // the same from the raw grpc-js error
  const raw = await new Promise((resolve) => {
    const md = new (require('@grpc/grpc-js').Metadata)();
    md.set('authorization', `Bearer ${TOKEN}`);
    client.raw.invoke(req('nosuch:model', 'hi'), md, (err) => resolve(err));
  });
  const d = decodeStatusDetails(raw);
  assert.equal(d.code, status.NOT_FOUND);
  assert.equal(d.errorInfo.reason, 'UNKNOWN_PROVIDER');
  assert.equal(d.details[0].type, 'google.rpc.ErrorInfo');
});

test('an upstream 429 with retry-after: RESOURCE_EXHAUSTED with ErrorInfo and RetryInfo', async () => {
  const script = JSON.stringify({ chunks: [{ text: 'x' }], fail: { httpStatus: 429, retryAfterSecs: 7 } });
  const e = await rejection(collect(client.stream(req('fake:script', script))));
  assert.ok(e instanceof ChatwireError);
  assert.equal(e.code, status.RESOURCE_EXHAUSTED);
  assert.equal(e.errorInfo.domain, 'chatwire');
  assert.match(e.errorInfo.reason, /^[A-Z_]+$/);
  assert.equal(e.errorInfo.metadata.provider, 'fake');
  assert.equal(e.errorInfo.metadata.upstream_status, '429');
  assert.deepEqual(e.retryInfo, { retryDelayMs: 7000 });
  assert.equal(e.retryable, true);
});

test('a failure after chunks: the chunks, then the error (never a clean end)', async () => {
  const script = JSON.stringify({
    chunks: [{ text: 'Hel' }, { text: 'lo' }, { text: '!' }],
    fail: { afterChunks: 2, code: 'UNAVAILABLE', message: 'boom' },
  });
  const got = [];
  const e = await rejection(async () => {
    for await (const c of client.stream(req('fake:script', script))) got.push(c.text);
  });
  assert.deepEqual(got, ['Hel', 'lo']);
  assert.equal(e.code, status.UNAVAILABLE);
  assert.equal(e.reason, 'SCRIPTED_FAILURE');
  assert.equal(e.details, 'boom');
  // StreamEvents ends with an error event carrying the partial answer, then the status.
  const events = [];
  const e2 = await rejection(async () => {
    for await (const ev of client.streamEvents(req('fake:script', script))) events.push(ev);
  });
  assert.equal(e2.code, status.UNAVAILABLE);
  const last = events[events.length - 1];
  assert.equal(last.event, 'error');
  assert.equal(last.error.code, status.UNAVAILABLE);
  assert.equal(last.error.partial.content[0].text, 'Hello');
});

test('cancel(): CANCELLED on the client, and the server ends the call', async () => {
  const s = client.stream(req('slow', LONG_PROMPT));
  const it = s[Symbol.asyncIterator]();
  assert.equal((await it.next()).value.text, 'w0');
  // The one slot of `slow` is taken: a second call is refused at once.
  const busy = await rejection(client.invoke(req('slow', 'x')));
  assert.equal(busy.code, status.RESOURCE_EXHAUSTED);
  s.cancel();
  const e = await rejection(async () => {
    for (;;) if ((await it.next()).done) break;
  });
  assert.ok(e instanceof ChatwireError);
  assert.equal(e.code, status.CANCELLED);
  // The server let go of the call: the slot is free again (long before the ~8 s answer ends).
  const t0 = Date.now();
  const m = await slowSlotFree(3000);
  assert.equal(m.content[0].text, 'ok');
  assert.ok(Date.now() - t0 < 3000);
});

test('leaving a for-await loop early cancels the call', async () => {
  let n = 0;
  for await (const c of client.stream(req('slow', LONG_PROMPT))) {
    assert.equal(c.delta, 'text');
    n += 1;
    if (n === 3) break;
  }
  const m = await slowSlotFree(3000);
  assert.equal(m.content[0].text, 'ok');
});

test('an AbortSignal cancels a stream and an invoke', async () => {
  const ac = new AbortController();
  const got = [];
  const e = await rejection(async () => {
    for await (const c of client.stream(req('slow', LONG_PROMPT), { signal: ac.signal })) {
      got.push(c.text);
      if (got.length === 2) ac.abort();
    }
  });
  assert.equal(e.code, status.CANCELLED);
  await slowSlotFree(3000);
  const ac2 = new AbortController();
  const p = client.invoke(req('slow', LONG_PROMPT), { signal: ac2.signal });
  await sleep(100);
  ac2.abort();
  assert.equal((await rejection(p)).code, status.CANCELLED);
  await slowSlotFree(3000);
});

test('the raw grpc-js call: call.cancel() ends the stream with CANCELLED', async () => {
  const s = client.stream(req('slow', LONG_PROMPT));
  const call = s.call;
  const first = await new Promise((resolve) => call.once('data', resolve));
  assert.equal(first.text, 'w0');
  const ended = new Promise((resolve) => call.on('error', resolve));
  call.cancel();
  assert.equal((await ended).code, status.CANCELLED);
  await slowSlotFree(3000);
});

test('deadlines: DEADLINE_EXCEEDED for a stream and an invoke, and the server lets go', async () => {
  const t0 = Date.now();
  const e = await rejection(collect(client.stream(req('slow', LONG_PROMPT), { deadlineMs: 300 })));
  assert.ok(e instanceof ChatwireError);
  assert.equal(e.code, status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - t0 < 3000, 'ended near the deadline, not at the end of the answer');
  await slowSlotFree(3000);
  const short = new ChatwireClient(server.addr, { token: TOKEN, deadlineMs: 200 });
  try {
    const e2 = await rejection(short.invoke(req('fake:echo', LONG_PROMPT)));
    assert.equal(e2.code, status.DEADLINE_EXCEEDED);
    // a per-call deadline overrides the client's
    const ok = await short.invoke(req('fake:echo', 'quick'), { deadlineMs: 5000 });
    assert.equal(ok.content[0].text, 'quick');
  } finally {
    short.close();
  }
});

test('tool calls: Struct arguments as a plain object, argumentsJson exact beyond 2^53', async () => {
  const args = '{"city":"Paris","id":12345678901234567890,"neg":-9007199254740993,"days":3,"t":21.5,"tags":["a",null,true],"o":{"x":{}}}';
  const script = JSON.stringify({
    chunks: [{ text: 'Checking.' }, { toolCall: { index: 0, id: 'call_1', name: 'get_weather', arguments: args } }],
    stopReason: 'tool_use',
  });
  const m = await client.invoke(req('fake:script', script));
  assert.equal(m.stopReason, 'STOP_REASON_TOOL_USE');
  const tc = m.toolCalls[0];
  assert.equal(tc.name, 'get_weather');
  assert.equal(tc.argumentsJson, args);
  // The Struct (a double per number) is lossy beyond 2^53...
  const fromStruct = structToObject(tc.arguments);
  assert.deepEqual(fromStruct, { city: 'Paris', id: 12345678901234567000, neg: -9007199254740992, days: 3, t: 21.5, tags: ['a', null, true], o: { x: {} } });
  // ...argumentsJson is exact.
  assert.deepEqual(toolCallArguments(tc), {
    city: 'Paris',
    id: 12345678901234567890n,
    neg: -9007199254740993n,
    days: 3,
    t: 21.5,
    tags: ['a', null, true],
    o: { x: {} },
  });
  assert.equal(toolCallArguments(tc, { bigints: 'string' }).id, '12345678901234567890');
  // Streamed, the fragments of one index concatenate to the same JSON text.
  const chunks = await collect(client.stream(req('fake:script', script)));
  const joined = chunks.filter((c) => c.delta === 'toolCall').map((c) => c.toolCall.arguments).join('');
  assert.deepEqual(parseArgumentsJson(joined), toolCallArguments(tc));
});

test('toStruct: a tool schema sent as a plain object comes back unchanged (StreamEvents start.input)', async () => {
  const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 } }, required: ['city'], additionalProperties: false };
  const events = await collect(
    client.streamEvents(req('fake:echo', 'hi', { tools: [{ name: 'get_weather', description: 'Weather', parameters: toStruct(schema) }] })),
  );
  assert.deepEqual(structToObject(events[0].start.input.tools[0].parameters), schema);
});
