/**
 * web-push-testing (a push service emulator: issues subscriptions, verifies the VAPID signature,
 * decrypts aes128gcm/aesgcm payloads) as a child process on a free port, for tests and the local
 * stack. Its endpoints are `http://localhost:<port>/notify/<clientHash>`, so whatever sends to
 * them needs PUSH_ALLOW_HTTP=true and PUSH_ALLOWED_HOSTS=localhost:<port>.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../ports.js';

export interface EmulatedSubscription {
  /** What a browser's `subscription.toJSON()` gives: post it to the subscribe API as it is. */
  subscription: { endpoint: string; expirationTime: null; keys: { p256dh: string; auth: string } };
  /** The emulator's id for the subscription (the last path segment of the endpoint). */
  clientHash: string;
}

export interface WebPushTesting {
  /** http://localhost:<port> */
  url: string;
  port: number;
  /** The emulator's process id (benchmarks read its CPU time from /proc). */
  pid: number | undefined;
  /** `localhost:<port>`: the PUSH_ALLOWED_HOSTS entry for this emulator. */
  host: string;
  /** A new subscription for the application server key (a VAPID public key, base64url). */
  subscribe(applicationServerKey: string): Promise<EmulatedSubscription>;
  /** The decrypted payloads delivered to a subscription so far, oldest first. */
  notifications(clientHash: string): Promise<string[]>;
  /** Makes the subscription gone: later sends get 410. */
  expire(clientHash: string): Promise<void>;
  /** The emulator's recent output (it logs why it refused a notification). */
  output(): string;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15_000;
const KEPT_OUTPUT = 64 * 1024;

/**
 * The emulator reads its port from argv and exits if it cannot bind. The child also exits when
 * its stdin (held by this process) ends, so a crashed test run leaves nothing on the port.
 */
function childProgram(script: string, port: number): string {
  return [
    "process.stdin.on('end', () => process.exit(0)); process.stdin.on('error', () => process.exit(0)); process.stdin.resume(); process.stdin.unref();",
    `process.argv[2] = ${JSON.stringify(String(port))};`,
    `require(${JSON.stringify(script)});`,
  ].join('\n');
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
    signal: AbortSignal.timeout(5000),
  });
}

async function startOnce(port: number): Promise<{ child: ChildProcess; output: () => string } | undefined> {
  const script = require.resolve('web-push-testing/src/bin/server.js');
  const child = spawn(process.execPath, ['-e', childProgram(script, port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  // Always drained: a full pipe would block the emulator.
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-KEPT_OUTPUT));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline && !exited) {
    try {
      if ((await post(`http://localhost:${port}/status`, {})).ok) return { child, output: () => output };
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  if (!exited) {
    child.kill('SIGKILL');
    throw new Error(`web-push-testing did not start on port ${port}: ${output.trim()}`);
  }
  // It exited (the port was taken in between): the caller tries another port.
  return undefined;
}

export async function startWebPushTesting(): Promise<WebPushTesting> {
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const started = await startOnce(port);
    if (!started) continue;
    const { child, output } = started;
    const url = `http://localhost:${port}`;
    const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    const call = async (path: string, body: unknown) => {
      const res = await post(`${url}${path}`, body);
      const text = await res.text();
      if (!res.ok) throw new Error(`web-push-testing ${path} answered ${res.status}: ${text}`);
      return res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as unknown) : text;
    };
    return {
      url,
      port,
      pid: child.pid,
      host: `localhost:${port}`,
      async subscribe(applicationServerKey) {
        // The emulator insists on the string "true", as a browser's form would send it.
        const { data } = (await call('/subscribe', { userVisibleOnly: 'true', applicationServerKey })) as {
          data: { endpoint: string; keys: { p256dh: string; auth: string }; clientHash: string };
        };
        return { subscription: { endpoint: data.endpoint, expirationTime: null, keys: data.keys }, clientHash: data.clientHash };
      },
      async notifications(clientHash) {
        const { data } = (await call('/get-notifications', { clientHash })) as { data: { messages: string[] } };
        return data.messages;
      },
      async expire(clientHash) {
        await call(`/expire-subscription/${encodeURIComponent(clientHash)}`, {});
      },
      output,
      async close() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      },
    };
  }
  throw new Error(`web-push-testing could not bind a free port in ${START_ATTEMPTS} attempts`);
}
