// A bounded load test of rdepth serve on 127.0.0.1: starts the server, then runs phases of N
// concurrent streaming clients (the openai npm client), each sending completion after completion
// until its phase's time is up; stops the server (SIGTERM) and reports per phase: requests
// served, refused (429) and failed, time to first token (p50, p99), tokens/s in total, and the
// speed-up over one client (continuous batching). Exits 1 if any request failed other than 429.
//   node benchmarks/serve_load.mjs --rdepth build/tools/rdepth --client build/tests/openai_client
//        (--model DIR | --shape huginn-mini --tokenizer FILE) [--weights bf16] [--clients 1,4,16]
//        [--seconds 30] [--phase-seconds 10] [--max-tokens 32] [--steps R] [--threads N]
//        [--prompts FILE.jsonl] [--max-batch N] [--max-queue Q] [--json FILE]
// The last phase (the most clients) runs --seconds, the others --phase-seconds. The server's batch
// holds the most clients unless --max-batch says less (then some wait, or get 429 past --max-queue:
// a refused client waits 50 ms before its next request).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadOpenAI, startServer } from '../tests/serve/server_process.mjs';

const { values: options } = parseArgs({
  options: {
    rdepth: { type: 'string', default: 'build/tools/rdepth' },
    client: { type: 'string', default: 'build/tests/openai_client' },
    model: { type: 'string' },
    shape: { type: 'string' },
    tokenizer: { type: 'string' },
    weights: { type: 'string', default: 'bf16' },
    clients: { type: 'string', default: '1,4,16' },
    seconds: { type: 'string', default: '30' },
    'phase-seconds': { type: 'string', default: '10' },
    'max-tokens': { type: 'string', default: '32' },
    steps: { type: 'string' },
    threads: { type: 'string' },
    prompts: { type: 'string', default: 'models/arithmetic/tasks/heldout.jsonl' },
    'max-batch': { type: 'string' },
    'max-queue': { type: 'string', default: '64' },
    json: { type: 'string' },
  },
});
const clientCounts = options.clients.split(',').map(Number).sort((a, b) => a - b);
const maxTokens = Number(options['max-tokens']);
const prompts = fs.readFileSync(options.prompts, 'utf8').trim().split('\n')
  .map((line) => JSON.parse(line).prompt);

const flags = ['--weights', options.weights, '--max-batch',
  options['max-batch'] ?? String(clientCounts.at(-1)), '--max-queue', options['max-queue']];
if (options.model) flags.push('--model', options.model);
if (options.shape) flags.push('--shape', options.shape, '--tokenizer', options.tokenizer);
if (options.threads) flags.push('--threads', options.threads);
const OpenAI = await loadOpenAI(options.client);
const server = await startServer(options.rdepth, flags, 600);
const openai = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
const request = { model: 'any', max_tokens: maxTokens, ignore_eos: true, stream: true };
if (options.steps) request.steps = Number(options.steps);

const percentile = (values, p) => {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

// One client: completions until `end`; the one under way at `end` finishes.
async function client(index, end, tally) {
  for (let n = 0; performance.now() < end; n += 1) {
    const start = performance.now();
    let first = null;
    let tokens = 0;
    try {
      const stream = await openai.completions.create(
        { ...request, prompt: prompts[(index * 7919 + n) % prompts.length] });
      for await (const chunk of stream) {
        if (!chunk.choices.length || chunk.choices[0].finish_reason) continue;
        first ??= performance.now() - start;
        tokens += 1;
      }
      tally.served += 1;
      tally.tokens += tokens;
      tally.ttft.push(first);
    } catch (error) {
      if (error.status === 429) {
        tally.refused += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      } else {
        tally.failed += 1;
        tally.errors.add(String(error.message));
      }
    }
  }
}

async function phase(clients, seconds) {
  const tally = { served: 0, refused: 0, failed: 0, tokens: 0, ttft: [], errors: new Set() };
  const start = performance.now();
  await Promise.all(Array.from({ length: clients },
    (_, i) => client(i, start + seconds * 1000, tally)));
  const elapsed = (performance.now() - start) / 1000;
  return {
    clients,
    seconds: elapsed,
    served: tally.served,
    refused_429: tally.refused,
    failed: tally.failed,
    errors: [...tally.errors],
    tokens: tally.tokens,
    tokens_per_second: tally.tokens / elapsed,
    ttft_p50_ms: percentile(tally.ttft, 50),
    ttft_p99_ms: percentile(tally.ttft, 99),
  };
}

const phases = [];
for (const clients of clientCounts) {
  const seconds = Number(clients === clientCounts.at(-1) ? options.seconds : options['phase-seconds']);
  phases.push(await phase(clients, seconds));
}
const largestBatch = (await server.health()).largest_batch;
const status = await server.stop();

const base = phases[0].tokens_per_second;
console.log(`rdepth serve load test: ${options.model ?? options.shape}, ${options.weights}, `
  + `${maxTokens} tokens per request${options.steps ? `, r = ${options.steps}` : ''}; `
  + `largest batch ${largestBatch}`);
console.log('clients  seconds  served  429  failed  tokens  tokens/s  speed-up  TTFT p50 ms  TTFT p99 ms');
for (const p of phases) {
  console.log([String(p.clients).padStart(7), p.seconds.toFixed(1).padStart(8),
    String(p.served).padStart(7), String(p.refused_429).padStart(4), String(p.failed).padStart(7),
    String(p.tokens).padStart(7), p.tokens_per_second.toFixed(1).padStart(9),
    `${(p.tokens_per_second / base).toFixed(2)}x`.padStart(9),
    p.ttft_p50_ms.toFixed(0).padStart(12), p.ttft_p99_ms.toFixed(0).padStart(12)].join(' '));
  for (const e of p.errors) console.log(`  error: ${e}`);
}
const report = { model: options.model ?? options.shape, weights: options.weights, max_tokens: maxTokens,
  steps: options.steps ? Number(options.steps) : null, largest_batch: largestBatch, phases,
  server_exit: status };
if (options.json) fs.writeFileSync(options.json, `${JSON.stringify(report, null, 2)}\n`);
const failed = phases.reduce((n, p) => n + p.failed, 0);
if (status.code !== 0) console.log(`server exited with ${JSON.stringify(status)}: ${server.stderr()}`);
process.exit(failed || status.code !== 0 ? 1 : 0);
