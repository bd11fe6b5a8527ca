/**
 * moto's server (AWS APIs in one Python process: SQS, S3 and its notifications, SSM, Cognito) on a
 * free loopback port, from the venv `npm test` installs (scripts/python-tools.mjs). For the tests
 * of the production AWS paths: the services' own SDK clients, pointed at `endpoint`.
 */
import { spawn } from 'node:child_process';
import { pythonTool, pythonToolsSkipReason, requirePythonTools } from './python-tools.js';

/**
 * Why moto tests cannot run here (said on stderr too, so a skip is seen), or undefined when they
 * can. On CI nothing is a reason to skip: `startMoto` then fails the tests instead.
 */
export const motoSkipReason = (): string | undefined => pythonToolsSkipReason('moto');

export interface MotoServer {
  /** http://127.0.0.1:<port>, for every service's `endpoint`. */
  endpoint: string;
  /** Forgets every resource (queues, buckets, parameters, pools), as a fresh server would. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs moto's server as werkzeug does with port 0 (the OS picks a free port, which it prints), and
 * ends it when our stdin closes, so a test process that dies does not leave it behind.
 */
const LAUNCHER = `
import os, sys, threading
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
from moto.server import main
main(["--host", "127.0.0.1", "--port", "0"])
`;

const STARTUP_TIMEOUT_MS = 60_000;

export async function startMoto(): Promise<MotoServer> {
  requirePythonTools();
  const child = spawn(pythonTool('python'), ['-c', LAUNCHER], { stdio: ['pipe', 'pipe', 'pipe'] });
  // werkzeug logs every request: keep only the tail, for the error message.
  let output = '';
  let port: string | undefined;
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
    port ??= / \* Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let endpoint: string;
  try {
    endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`moto did not start within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
      const seen = () => {
        if (port === undefined) return;
        clearTimeout(timer);
        child.stderr.off('data', seen);
        child.stdout.off('data', seen);
        resolve(`http://127.0.0.1:${port}`);
      };
      child.stderr.on('data', seen);
      child.stdout.on('data', seen);
      child.once('error', reject);
      void exited.then(() => reject(new Error(`moto exited (${child.exitCode ?? child.signalCode})`)));
    });
    // Listening is announced before the first request is served: wait until one is answered.
    const answered = await fetch(`${endpoint}/moto-api/data.json`);
    if (!answered.ok) throw new Error(`moto answered ${answered.status}`);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}:\n${output}`);
  }

  return {
    endpoint,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset answered ${res.status}`);
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
