// Building the Dockerfile's targets and running their images with podman, on the host network
// (every service listens on 127.0.0.1, each on its own port).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { podman, ulimits } from './podman.mjs';

/** Every container this test starts carries this name prefix, so leftovers can be found and removed. */
const PREFIX = 'avatar-pipeline-test-';

export const imageName = (target) => `localhost/avatar-pipeline/${target}`;

/** Builds one target; layers are cached by podman, so an unchanged target is quick to rebuild. */
export async function buildTarget(target, { baseImage, log }) {
  const started = performance.now();
  // The host network: npm ci inside the build needs the registry.
  await podman(
    ['build', '--pull=never', '--network', 'host', ...ulimits, '--build-arg', `NODE_IMAGE=${baseImage}`, '--target', target, '--tag', imageName(target), '--file', 'Dockerfile', '.'],
    { timeoutMs: 30 * 60_000, log },
  );
  return performance.now() - started;
}

/** Uncompressed size in bytes, as `podman images` reports it. */
export async function imageSize(image) {
  return Number(await podman(['image', 'inspect', '--format', '{{.Size}}', image]));
}

const runArgs = ({ name, target, flags = [], env = {}, volumes = [], command = [] }, ...options) => [
  'run',
  ...options,
  '--name',
  PREFIX + name,
  '--network',
  'host',
  '--pull',
  'never',
  ...ulimits,
  ...flags,
  ...volumes.flatMap((v) => ['--volume', v]),
  ...Object.entries(env).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
  imageName(target),
  ...command,
];

/** Runs a container to completion (a Job's pod). */
export async function runToCompletion(spec, timeoutMs = 60_000) {
  await podman(runArgs(spec, '--rm'), { timeoutMs, mergeStderr: true });
}

/**
 * Starts a service container and polls its /readyz until 200. Returns how long that took from
 * `podman run` and from the container's process start (podman's State.StartedAt).
 */
export async function startUntilReady(spec, { port, timeoutMs }) {
  const launched = Date.now();
  await podman(runArgs(spec, '--detach'), { timeoutMs: 60_000 });
  const url = `http://127.0.0.1:${port}/readyz`;
  const deadline = launched + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    const status = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      async (response) => (await response.arrayBuffer(), response.status),
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`${spec.name}: GET /readyz did not answer 200 within ${timeoutMs / 1000} s (last: ${status || 'no answer'})`);
    if (attempt % 20 === 0 && (await state(spec.name)) !== 'running') throw new Error(`${spec.name}: the container stopped before it was ready`);
    await sleep(25);
  }
  const ready = Date.now();
  const startedAt = Number(await podman(['inspect', '--format', '{{.State.StartedAt.UnixNano}}', PREFIX + spec.name])) / 1e6;
  return { fromRunMs: ready - launched, fromStartMs: ready - startedAt };
}

const state = async (name) => (await podman(['inspect', '--format', '{{.State.Status}}', PREFIX + name]).catch(() => 'gone')).trim();

/** Saves every test container's log into `dir`, then removes the containers (leftovers of earlier runs too). */
export async function removeContainers(dir) {
  const names = (await podman(['ps', '--all', '--filter', `name=^${PREFIX}`, '--format', '{{.Names}}'])).split('\n').filter(Boolean);
  for (const name of names) {
    if (dir) {
      const logs = await podman(['logs', name], { mergeStderr: true }).catch((err) => err.message);
      await writeFile(join(dir, `${name.slice(PREFIX.length)}.log`), logs);
    }
  }
  if (names.length > 0) await podman(['rm', '--force', '--time', '2', ...names], { timeoutMs: 60_000 });
}

/** The last lines a container logged (for failure messages). */
export async function logTail(name, lines = 20) {
  return podman(['logs', '--tail', String(lines), PREFIX + name], { mergeStderr: true }).catch((err) => err.message);
}
