// rdepth serve driven by the official OpenAI client (the openai npm package, pinned in
// package.json): completions and chats, whole and streamed; the recurrence fields; equality with
// rdepth generate and rdepth chat run alone, for requests batched together; stop texts; 400s with
// OpenAI's error body; 429 past the queue; a disconnecting client freeing its place at once; the
// request timeout; shutdown on SIGTERM. Prints one line per test; exits 1 if any failed.
//   node client_test.mjs --rdepth BIN --client DIR --chat-model DIR --shipped-model DIR
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadOpenAI, startServer } from './server_process.mjs';

const { values: args } = parseArgs({
  options: {
    rdepth: { type: 'string' },
    client: { type: 'string' },
    'chat-model': { type: 'string' },
    'shipped-model': { type: 'string' },
  },
});
const OpenAI = await loadOpenAI(args.client);
const rdepth = args.rdepth;
const chatModel = args['chat-model'];
const shippedModel = args['shipped-model'];
const threads = ['--threads', '1'];

const client = (server) => new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });

// ---- rdepth run alone ------------------------------------------------------------------------

function stopIds(model) {
  const config = JSON.parse(fs.readFileSync(path.join(model, 'generation_config.json'), 'utf8'));
  return [config.eos_token_id].flat();
}

// A request's extension fields as rdepth generate's flags (exit_threshold -> --exit-threshold).
function flags(fields) {
  return Object.entries(fields).flatMap(([name, value]) => {
    const flag = `--${name.replaceAll('_', '-')}`;
    return value === true ? [flag] : [flag, String(value)];
  });
}

function generateAlone(model, prompt, maxTokens, fields) {
  const out = execFileSync(rdepth, ['generate', '--model', model, '--prompt', prompt,
    '--max-new-tokens', String(maxTokens), '--stop-ids', stopIds(model).join(','), ...threads,
    '--json', ...flags(fields)]);
  const result = JSON.parse(out);
  const stopped = stopIds(model).includes(result.tokens.at(-1));
  // The server leaves out the text of the stop token that ended the completion.
  result.expected = stopped ? result.text.replace(/<\|[a-z_]+\|>$/, '') : result.text;
  result.finish_reason = stopped ? 'stop' : 'length';
  return result;
}

function chatAlone(model, system, message) {
  return execFileSync(rdepth, ['chat', '--model', model, '--system', system, ...threads],
    { input: `${message}\n`, stdio: 'pipe' }).toString().replace(/\n$/, '');
}

// ---- helpers ---------------------------------------------------------------------------------

async function postRaw(server, route, body) {
  const response = await fetch(`${server.baseURL}${route}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// A streamed completion: its chunks, its text (the last chunk may hold text held back to the end)
// and the number of token events.
async function streamCompletion(openai, request, options = {}) {
  const stream = await openai.completions.create({ ...request, stream: true }, options);
  const chunks = [];
  for await (const chunk of stream) chunks.push({ chunk, at: performance.now() });
  const choices = chunks.filter(({ chunk }) => chunk.choices.length);
  const tokens = choices.filter(({ chunk }) => !chunk.choices[0].finish_reason);
  return {
    chunks: chunks.map(({ chunk }) => chunk),
    text: choices.map(({ chunk }) => chunk.choices[0].text).join(''),
    tokenCount: tokens.length,
    last: chunks.map(({ chunk }) => chunk).find((c) => c.choices[0]?.finish_reason),
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, seconds, what) {
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    if (await condition()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function expectApiError(promise, status, pattern) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.status, status, `status of ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

// ---- tests -----------------------------------------------------------------------------------

const tests = [];
const test = (name, body) => tests.push({ name, body });

const prompt = 'The quick brown fox';
// Batched together, each must give what rdepth generate gives alone.
const variants = [
  {},
  { steps: 2 },
  { steps: 8, exit: 'kl', exit_threshold: 0.01 },
  { steps: 6, cache: 'latest-m4', continuous: true },
  { steps: 6, cache: 'compress-s2' },
  { steps: 6, draft_steps: 2, lookahead: 3 },
  { temperature: 0.8, top_p: 0.9, seed: 11 },
  { temperature: 1.0, top_k: 20, seed: 5, init: 'random', steps: 3 },
];

test('models and health', async ({ chat }) => {
  const models = await client(chat).models.list();
  assert.deepEqual(models.data.map((m) => m.id), [path.basename(chatModel)]);
  const health = await chat.health();
  assert.equal(health.status, 'ok');
});

test('completions batched together equal rdepth generate alone (greedy, exit, caches, warm '
  + 'start, speculative, seeded sampling), in new sessions and in finished requests\' sessions',
async ({ chat }) => {
  const openai = client(chat);
  const maxTokens = 20;
  const alone = variants.map((fields, i) => generateAlone(chatModel, `${prompt} ${i}`, maxTokens,
    fields));
  // The second round, in the other order, runs in the first round's sessions, restarted (each
  // cache kept, or replaced where the rule changed).
  const ascending = [...variants.keys()];
  for (const [round, indices] of [ascending, [...ascending].reverse()].entries()) {
    const reusedBefore = (await chat.health()).reused_sessions;
    const answers = await Promise.all(indices.map((i) => openai.completions.create(
      { model: 'any', prompt: `${prompt} ${i}`, max_tokens: maxTokens, ...variants[i] })));
    const health = await chat.health();
    assert.ok(health.largest_batch >= 2, 'the requests ran in one batch');
    if (round === 1) assert.ok(health.reused_sessions > reusedBefore, 'sessions were reused');
    indices.forEach((i, k) => {
      const answer = answers[k];
      const expected = alone[i];
      const what = JSON.stringify(variants[i]);
      assert.equal(answer.object, 'text_completion');
      assert.equal(answer.choices[0].text, expected.expected, what);
      assert.equal(answer.choices[0].finish_reason, expected.finish_reason, what);
      assert.equal(answer.usage.prompt_tokens, expected.prompt_ids.length, what);
      assert.equal(answer.usage.completion_tokens, expected.tokens.length, what);
      assert.equal(answer.usage.total_tokens, expected.prompt_ids.length + expected.tokens.length);
      assert.equal(answer.usage.core_iterations, expected.core_iterations, what);
    });
  }
});

test('a streamed completion: one event per token, then the finish reason and usage',
  async ({ chat }) => {
    const openai = client(chat);
    const request = { model: 'any', prompt, max_tokens: 12, steps: 3, ignore_eos: true };
    const whole = await openai.completions.create(request);
    const streamed = await streamCompletion(openai,
      { ...request, stream_options: { include_usage: true } });
    assert.equal(streamed.text, whole.choices[0].text);
    assert.equal(streamed.tokenCount, 12);
    assert.equal(streamed.last.choices[0].finish_reason, 'length');
    assert.deepEqual(streamed.last.usage, whole.usage);
    const usageChunk = streamed.chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.deepEqual(usageChunk.usage, whole.usage);
  });

test('chat, whole and streamed, equals rdepth chat', async ({ chat }) => {
  const openai = client(chat);
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }];
  const whole = await openai.chat.completions.create({ model: 'any', messages });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.equal(whole.choices[0].message.content, chatAlone(chatModel, 'Be brief.', 'Hello there'));
  assert.ok(whole.usage.completion_tokens >= 1 && whole.usage.core_iterations > 0);

  const stream = await openai.chat.completions.create({ model: 'any', messages, stream: true });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''),
    whole.choices[0].message.content);
  assert.equal(chunks.at(-1).choices[0].finish_reason, whole.choices[0].finish_reason);
  assert.deepEqual(chunks.at(-1).usage, whole.usage);
});

test('stop texts end the text before them, whole and streamed', async ({ chat }) => {
  const openai = client(chat);
  const request = { model: 'any', prompt, max_tokens: 30, ignore_eos: true };
  const full = (await openai.completions.create(request)).choices[0].text;
  const stop = full.slice(6, 9);
  assert.equal(stop.length, 3, `a long enough text: ${full}`);
  const cut = full.slice(0, full.indexOf(stop));
  const whole = await openai.completions.create({ ...request, stop: [stop, 'never seen'] });
  assert.equal(whole.choices[0].text, cut);
  assert.equal(whole.choices[0].finish_reason, 'stop');
  const streamed = await streamCompletion(openai, { ...request, stop });
  assert.equal(streamed.text, cut);
  assert.equal(streamed.last.choices[0].finish_reason, 'stop');
});

test('bad requests get 400 with an OpenAI error body; the server keeps serving',
  async ({ chat }) => {
    const cases = [
      ['/completions', '{"prompt": "hi", ', /malformed JSON/],
      ['/completions', '[1, 2]', /JSON object/],
      ['/completions', {}, /prompt is required/],
      ['/completions', { prompt: 'hi', temperature: 'hot' }, /temperature: expected a number/],
      ['/completions', { prompt: 'hi', max_tokens: 2.5 }, /max_tokens: expected an integer/],
      ['/completions', { prompt: 'hi', max_tokens: 0 }, /max_tokens is 0/],
      ['/completions', { prompt: 'hi', steps: -1 }, /steps is -1, expected steps >= 0/],
      ['/completions', { prompt: 'hi', steps: 100000 }, /more than this server's --max-steps/],
      ['/completions', { prompt: 'hi', exit: 'kl' }, /needs exit_threshold/],
      ['/completions', { prompt: 'hi', exit: 'often', exit_threshold: 1 }, /unknown criterion/],
      ['/completions', { prompt: 'hi', cache: 'bogus' }, /cache bogus: unknown cache rule/],
      ['/completions', { prompt: 'hi', draft_steps: 2, continuous: true },
        /continuous does not combine with draft_steps/],
      ['/completions', { prompt: 'hi', temperature: 0, top_p: 0.5 }, /top_p needs temperature/],
      ['/completions', { prompt: 'hi', stream: 'yes' }, /stream: expected true or false/],
      ['/completions', { prompt: 'hi', stop: [''] }, /stop: expected/],
      ['/completions', { prompt: 'hi', n: 2 }, /one choice/],
      ['/completions', { prompt: [1, -5] }, /not a token id/],
      ['/completions', { prompt: 'word '.repeat(400) }, /more than the model's context/],
      ['/completions', { prompt: 'hi', max_tokens: 1000 }, /leaves room for/],
      ['/chat/completions', { messages: [] }, /messages: expected a non-empty array/],
      ['/chat/completions', { messages: [{ role: 'user', content: 5 }] }, /content: expected/],
    ];
    for (const [route, body, pattern] of cases) {
      const { status, body: answer } = await postRaw(chat, route, body);
      const what = JSON.stringify(body);
      assert.equal(status, 400, what);
      assert.equal(answer.error.type, 'invalid_request_error', what);
      assert.match(answer.error.message, pattern, what);
    }
    const tooLong = await postRaw(chat, '/completions', { prompt: 'word '.repeat(400) });
    assert.equal(tooLong.body.error.code, 'context_length_exceeded');
    const missing = await fetch(`${chat.url}/v1/nothing`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.type, 'not_found_error');
    // Through the client: a BadRequestError; then a good request is still served.
    await expectApiError(client(chat).completions.create({ model: 'any', prompt: 'hi', steps: -2 }),
      400, /steps is -2/);
    const answer = await client(chat).completions.create({ model: 'any', prompt, max_tokens: 3 });
    assert.ok(answer.usage.completion_tokens >= 1);
  });

test('the shipped model: completions equal rdepth generate; no chat template: 400',
  async ({ shipped }) => {
    const openai = client(shipped);
    const question = '7+3*9+4=';
    for (const fields of [{ steps: 1 }, { steps: 8 }, { steps: 8, exit: 'kl', exit_threshold: 1e-3 }]) {
      const answer = await openai.completions.create({ model: 'any', prompt: question, max_tokens: 4, ...fields });
      const alone = generateAlone(shippedModel, question, 4, fields);
      assert.equal(answer.choices[0].text, alone.expected, JSON.stringify(fields));
      assert.equal(answer.usage.core_iterations, alone.core_iterations);
    }
    const { status, body } = await postRaw(shipped, '/chat/completions',
      { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(status, 400);
    assert.match(body.error.message, /no chat template tokens/);
  });

// A long generation: many iterations per token, kept small by the latest-m4 cache.
const slow = { model: 'any', prompt, max_tokens: 300, steps: 2000, cache: 'latest-m4', ignore_eos: true };

test('429 past the queue; a client that disconnects frees its place at once', async ({ small }) => {
  const openai = client(small);
  const abort = new AbortController();
  const first = await openai.completions.create({ ...slow, stream: true }, { signal: abort.signal });
  const times = [];
  const reading = (async () => {
    try {
      for await (const _ of first) times.push(performance.now());
    } catch { /* aborted */ }
  })();
  await until(() => times.length >= 3, 60, 'the first tokens of the long request');
  const queued = streamCompletion(openai, { model: 'any', prompt, max_tokens: 4, steps: 2 });
  await until(async () => (await small.health()).queued === 1, 30, 'the second request queued');
  const refused = await postRaw(small, '/completions', { prompt, max_tokens: 2 });
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'queue_full');
  await expectApiError(openai.completions.create({ model: 'any', prompt, max_tokens: 2 }), 429, /busy/);

  const perToken = (times.at(-1) - times[0]) / (times.length - 1);
  const aborted = performance.now();
  abort.abort();
  await reading;
  const second = await queued;
  const waited = performance.now() - aborted;
  assert.equal(second.last.choices[0].finish_reason, 'length');
  // The long request had about 300 tokens to go; the queued one did not wait for them.
  assert.ok(waited < 0.25 * perToken * (300 - times.length),
    `waited ${waited.toFixed(0)} ms, ${perToken.toFixed(1)} ms per token of the long request`);
  const health = await small.health();
  assert.equal(health.running + health.queued, 0);
});

test('SIGTERM: the running request finishes, new ones are refused, exit 0', async ({ small }) => {
  const openai = client(small);
  const request = { ...slow, max_tokens: 40, steps: 500 };
  const chunks = [];
  const running = (async () => {
    for await (const chunk of await openai.completions.create({ ...request, stream: true }))
      chunks.push(chunk);
  })();
  await until(() => chunks.length >= 1, 60, 'the first token');
  small.child.kill('SIGTERM');
  await until(async () => (await small.health()).status === 'shutting_down', 10, 'shutting down');
  const refused = await postRaw(small, '/completions', { prompt, max_tokens: 2 });
  assert.equal(refused.status, 503);
  await running;
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  assert.equal(chunks.at(-1).usage.completion_tokens, 40);
  const status = await small.exited;
  assert.deepEqual(status, { code: 0, signal: null });
});

test('a request past --timeout: 504, whole or streamed', async ({ timeout }) => {
  const openai = client(timeout);
  await expectApiError(openai.completions.create(slow), 504, /--timeout/);
  await assert.rejects(streamCompletion(openai, slow), /--timeout/);
  assert.equal((await timeout.health()).running, 0);
});

// ---- run -------------------------------------------------------------------------------------

const chatServer = (...flags) => startServer(rdepth, ['--model', chatModel, ...threads, ...flags]);
const servers = {
  chat: await chatServer('--max-batch', '8'),
  shipped: await startServer(rdepth, ['--model', shippedModel, ...threads]),
  small: await chatServer('--max-batch', '1', '--max-queue', '1', '--max-steps', '4096'),
  timeout: await chatServer('--timeout', '1', '--max-steps', '4096'),
};
let failed = 0;
for (const { name, body } of tests) {
  const start = performance.now();
  try {
    await body(servers);
    console.log(`ok - ${name} (${((performance.now() - start) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failed += 1;
    console.log(`not ok - ${name}\n${error.stack}`);
  }
}
for (const [name, server] of Object.entries(servers)) {
  const status = server.child.exitCode === null ? await server.stop() : await server.exited;
  if (status.code !== 0) {
    failed += 1;
    console.log(`not ok - server ${name} exited with ${JSON.stringify(status)}:\n${server.stderr()}`);
  }
}
console.log(failed ? `${failed} failed` : `all ${tests.length} tests passed`);
process.exit(failed ? 1 : 0);
