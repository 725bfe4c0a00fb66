// `rdepth serve` as a child process for the client tests (client_test.mjs) and the load test
// (benchmarks/serve_load.mjs): started on 127.0.0.1 with --port 0, its address read from the
// first line it prints; and the pinned OpenAI client, loaded from where tests/npm_install.sh put it.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

// The OpenAI class of the openai package installed in clientDir (clientDir/node_modules/openai).
export async function loadOpenAI(clientDir) {
  const module = await import(path.join(path.resolve(clientDir), 'node_modules/openai/index.mjs'));
  return module.OpenAI;
}

// Starts `rdepth serve ...flags` (--model DIR or --shape NAME among them) and resolves once it
// listens.
export function startServer(rdepth, flags, startSeconds = 60) {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', ...flags];
  // OpenMP threads that spin between forwards would take the cores from the HTTP threads and
  // the clients on the same machine.
  const env = { OMP_WAIT_POLICY: 'PASSIVE', ...process.env };
  const child = spawn(rdepth, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rdepth serve did not start within ${startSeconds} s: ${stderr}`));
    }, startSeconds * 1000);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`rdepth serve ${args.join(' ')} exited (${code ?? signal}): ${stderr}`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1];
      resolve({
        url,
        baseURL: `${url}/v1`,
        child,
        exited,
        stderr: () => stderr,
        health: async () => (await fetch(`${url}/health`)).json(),
        // SIGTERM, then the exit status ({code, signal}); SIGKILL after `seconds`.
        stop: async (seconds = 30) => {
          child.kill('SIGTERM');
          const kill = setTimeout(() => child.kill('SIGKILL'), seconds * 1000);
          const status = await exited;
          clearTimeout(kill);
          return status;
        },
      });
    });
  });
}
