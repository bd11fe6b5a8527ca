// podman as this machine needs it: the runc runtime (crun refuses the hybrid cgroup setup) and
// explicit ulimits no higher than this process's own (the defaults ask for more than is allowed).
import { exec } from './exec.mjs';

/** podman starts the runtime under conmon with at most 32768 processes; runc cannot set more. */
const CONMON_NPROC = 32768;

const [nofile, nproc] = (await exec('bash', ['-c', 'ulimit -n; ulimit -u'])).trim().split('\n').map((value) => (value === 'unlimited' ? Infinity : Number(value)));

/** `--ulimit` flags for `podman run` and `podman build`. */
const files = Math.min(nofile, 1_048_576);
const processes = Math.min(nproc, CONMON_NPROC);
export const ulimits = ['--ulimit', `nofile=${files}:${files}`, '--ulimit', `nproc=${processes}:${processes}`];

export function podman(args, options) {
  return exec('podman', ['--runtime', 'runc', ...args], options);
}

export async function imageExists(image) {
  try {
    await podman(['image', 'exists', image], { timeoutMs: 30_000 });
    return true;
  } catch {
    return false;
  }
}
