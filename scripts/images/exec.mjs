// Child processes with a bounded run time. Output is kept (for errors and for callers that parse
// it) or appended to a log file for the long, chatty steps (builds, debootstrap).
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';

/**
 * Runs `command args`; resolves with its stdout (and stderr, with `mergeStderr`), rejects with
 * the tail of its output on a non-zero exit or after `timeoutMs`.
 */
export function exec(command, args, { timeoutMs = 60_000, log, env, mergeStderr = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      if (log) appendFileSync(log, chunk);
      else stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      if (log) appendFileSync(log, chunk);
      else if (mergeStderr) stdout += chunk;
      stderr = (stderr + chunk).slice(-8192);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      const why = signal === 'SIGKILL' ? `timed out after ${timeoutMs / 1000} s` : `exited with ${code ?? signal}`;
      const where = log ? ` (log: ${log})` : '';
      const output = mergeStderr ? stdout : stderr;
      reject(new Error(`${command} ${args.join(' ')} ${why}${where}\n${output.trim().split('\n').slice(-15).join('\n')}`));
    });
  });
}

/** Whether `command` is on PATH. */
export async function available(command) {
  try {
    await exec('sh', ['-c', `command -v ${command}`], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}
