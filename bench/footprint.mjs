// Start time and idle memory of every service, against the targets of issue 13 (goal 5):
//   ready     process start → the first GET /readyz 200. Each built service
//             (services/<name>/dist/main.js) is spawned as the local stack spawns it: node with the
//             stack's child guard preloaded, the environment the stack gives it (serviceEnv), the
//             local stand-ins behind it; /readyz is polled every `--poll` ms from the spawn on.
//             Beside it: the CPU time (user + system, every thread, from /proc) the process had
//             used by then, which does not depend on what else the machine is doing.
//   idle RSS  VmRSS from /proc/<pid>/status once the ready service has been left alone for `--idle`
//             seconds (nothing but this bench talks to it). V8 trims its heap some 8 s after start
//             when nothing happens (its memory reducer), so the RSS 1 s after ready is shown too.
//   after GC  VmRSS right after a full garbage collection at the end of the idle time: the bench
//             preloads a listener (node --expose-gc --import data:...) that runs gc() on SIGUSR2;
//             the service's own code is as built. Idle RSS, not this, is held against the target.
// Each figure is the median of `--runs` starts; the services run one at a time, in turn, against
// the stand-ins the local stack runs in this process (s3rver, dynalite, the dev issuer behind the
// gateway, the broker), so every readiness check a service makes is answered. MB = 10^6 bytes.
//
// Usage (after `npx tsc -b`; Linux, for /proc):
//   node bench/footprint.mjs [--runs 5] [--idle 12] [--poll 5] [--services presign,push] [--node PATH]
//                            [--node-flags=...] [--entry TEMPLATE] [--images | --images-only] [--json]
//   --node        the Node binary the services run on (default: this one). The images run Node 24:
//                 scripts/test-node24.sh leaves one in node_modules/.cache/node24.
//   --node-flags  more node options on each service's command line (after the stack's own).
//   --entry       what to start (default services/{name}/dist/main.js), e.g. a bundled build.
//   --images      also measures the built container images (podman; --images-only: only them),
//                 which this bench does not build (`npm run test:images` does, in minutes). If
//                 podman or an image is missing it says so and skips them. Each runs its own CMD (the GC
//                 listener put in after `node`) on the host network, read-only, with the chart's
//                 memory limit (charts/avatar-pipeline/values.yaml) and the same environment as
//                 above (nothing else of this machine's), a copy of the VAPID pair mounted. Ready is timed from
//                 the container's process start (podman's StartedAt) and from `podman run`; RSS and
//                 CPU are those of the container's node process, by its host pid, from /proc.
//   --json        prints one JSON object instead of the tables (progress goes to stderr).
import { execFile, spawn } from 'node:child_process';
import { chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_MAX_UPLOAD_BYTES } from '@avatar-pipeline/kit/config';
import { serviceNames } from '@avatar-pipeline/kit/topology';
import { builtServices, childGuardScript, portOrFree, serviceEnv, startStack } from '@avatar-pipeline/local';
import { FileVapidStore, initVapidKeys } from '@avatar-pipeline/webpush';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    idle: { type: 'string', default: '12' },
    poll: { type: 'string', default: '5' },
    services: { type: 'string' },
    node: { type: 'string', default: process.execPath },
    'node-flags': { type: 'string', default: '' },
    entry: { type: 'string', default: 'services/{name}/dist/main.js' },
    images: { type: 'boolean', default: false },
    'images-only': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const idleMs = Number(values.idle) * 1000;
const pollMs = Number(values.poll);
const nodeBinary = values.node.includes('/') ? resolve(values.node) : values.node;
const READY_TIMEOUT_MS = 60_000;
/** RSS is also read this long after ready, before the process has settled (the "1 s" column). */
const SETTLE_MS = 1000;
if (!(idleMs > SETTLE_MS)) throw new Error('--idle must be more than 1 (seconds)');
const say = (line) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);

/** Issue 13, goal 5: MB (10^6 bytes) of idle RSS, ms from process start to /readyz 200. */
const targets = Object.fromEntries(serviceNames.map((name) => [name, name === 'moderate' ? { rssMB: 250, readyMs: 1500 } : { rssMB: 80, readyMs: 300 }]));

const wanted = values.services ? values.services.split(',').map((s) => s.trim()) : builtServices(root);
for (const name of wanted) {
  if (!serviceNames.includes(name)) throw new Error(`unknown service ${name} (one of ${serviceNames.join(', ')})`);
  if (!builtServices(root).includes(name)) throw new Error(`${name} is not built: run npx tsc -b first`);
}

// A preload that collects garbage on SIGUSR2 (the service's own code is untouched). It exposes
// gc() itself rather than by --expose-gc, which would change V8's flags and so miss the images'
// compile cache (keyed by them; docker/warm-compile-cache.mjs).
const GC_ON_SIGNAL =
  "data:text/javascript,import v8 from 'node:v8';import vm from 'node:vm';v8.setFlagsFromString('--expose-gc');const gc=vm.runInNewContext('gc');process.on('SIGUSR2',()=>gc())";
const gcFlags = ['--import', GC_ON_SIGNAL];

/** VmRSS and its parts (anonymous, file-backed) in bytes, from /proc; undefined once the process is gone. */
function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kB = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kB('VmRSS'), anon: kB('RssAnon'), file: kB('RssFile') };
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, every thread) a process has used so far, in ms, from /proc. */
function cpuMsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / 100) * 1000; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return NaN;
  }
}

/** Status of one GET /readyz, 0 when nothing answers (a fresh connection each time, as a probe). */
function probe(port) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Polls /readyz until 200; rejects when `alive()` turns false or after the timeout. */
async function untilReady(port, alive, describe) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if ((await probe(port)) === 200) return performance.now();
    if (!(await alive())) throw new Error(`${describe()} stopped before it was ready`);
    if (Date.now() > deadline) throw new Error(`${describe()} did not answer /readyz 200 within ${READY_TIMEOUT_MS / 1000} s`);
    await sleep(pollMs);
  }
}

const median = (xs) => {
  const sorted = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** One start of a built service under node, as the stack's supervisor spawns it. */
async function nodeStart(name, env) {
  const port = await portOrFree(undefined);
  const guard = childGuardScript(root);
  const lines = [];
  const started = performance.now();
  const extra = values['node-flags'].split(/\s+/).filter(Boolean);
  const child = spawn(nodeBinary, ['--import', guard, ...gcFlags, ...extra, resolve(root, values.entry.replaceAll('{name}', name))], {
    cwd: join(root, 'services', name),
    env: { ...env, PORT: String(port) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const keep = (chunk) => lines.push(...chunk.toString().split('\n').filter(Boolean).slice(-20));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => {
    child.once('exit', resolve);
    child.once('error', (err) => (lines.push(`spawn failed: ${err.message}`), resolve()));
  });
  try {
    const ready = await untilReady(port, async () => child.exitCode === null && child.signalCode === null, () => `${name} (pid ${child.pid})`);
    const cpuMs = cpuMsOf(child.pid);
    await sleep(SETTLE_MS);
    const early = memoryOf(child.pid);
    await sleep(idleMs - SETTLE_MS);
    const idle = memoryOf(child.pid);
    child.kill('SIGUSR2');
    await sleep(300);
    const afterGc = memoryOf(child.pid);
    return { readyMs: ready - started, cpuMs, early, idle, afterGc };
  } catch (err) {
    throw new Error(`${err.message}; its last output:\n${lines.slice(-20).join('\n')}`);
  } finally {
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(10_000, false)]);
    if (!stopped) child.kill('SIGKILL');
    await exited;
  }
}

// --- images -----------------------------------------------------------------------------------

const run = promisify(execFile);
const imageName = (name) => `localhost/avatar-pipeline/${name}`;
const CONTAINER_PREFIX = 'avatar-pipeline-footprint-';
/** Where a container finds the VAPID pair (a copy its user, 10001 as in the image, may read). */
const CONTAINER_VAPID_DIR = '/vapid';
const CONTAINER_UID = 10001;

/** `podman run` needs explicit ulimits no higher than this process's own here (scripts/images/podman.mjs). */
async function podmanArgs() {
  const { stdout } = await run('bash', ['-c', 'ulimit -n; ulimit -u']);
  const [nofile, nproc] = stdout.trim().split('\n').map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  const files = Math.min(nofile, 1_048_576);
  const processes = Math.min(nproc, 32768);
  return ['--ulimit', `nofile=${files}:${files}`, '--ulimit', `nproc=${processes}:${processes}`];
}
const podman = async (args) => (await run('podman', ['--runtime', 'runc', ...args], { maxBuffer: 16 << 20 })).stdout.trim();

/** Why the images cannot be measured here, or undefined when they can. */
async function imagesUnavailable(names) {
  try {
    await podman(['--version']);
  } catch {
    return 'podman is not installed (npm run test:images installs it and builds the images)';
  }
  const missing = [];
  for (const name of names) {
    try {
      await podman(['image', 'exists', imageName(name)]);
    } catch {
      missing.push(name);
    }
  }
  return missing.length ? `images not built: ${missing.join(', ')} (npm run test:images builds them, in minutes)` : undefined;
}

/** The chart's memory limit per service (charts/avatar-pipeline/values.yaml), in bytes. */
function memoryLimits() {
  const values = parseYaml(readFileSync(join(root, 'charts/avatar-pipeline/values.yaml'), 'utf8'));
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
  return Object.fromEntries(
    Object.entries(values.services ?? {}).map(([name, s]) => {
      const match = /^(\d+)(Ki|Mi|Gi)$/.exec(String(s?.resources?.limits?.memory ?? ''));
      return [name, match ? Number(match[1]) * unit[match[2]] : undefined];
    }),
  );
}

/** One start of a service's image: its own CMD with the GC preload put in after `node`. */
async function imageStart(name, env, { ulimits, limits, vapidDir }) {
  const port = await portOrFree(undefined);
  const container = `${CONTAINER_PREFIX}${name}`;
  await podman(['rm', '--force', '--time', '0', container]).catch(() => {});
  const [node, ...rest] = JSON.parse(await podman(['image', 'inspect', '--format', '{{json .Config.Cmd}}', imageName(name)]));
  const containerEnv = { ...env, PORT: String(port) };
  const args = [
    'run', '--detach', '--name', container, '--network', 'host', '--pull', 'never', ...ulimits,
    '--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    ...(limits[name] ? ['--memory', String(limits[name])] : []),
    '--volume', `${vapidDir}:${CONTAINER_VAPID_DIR}:ro`,
    ...Object.entries(containerEnv).filter(([, v]) => v !== undefined).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    imageName(name), node, ...gcFlags, ...rest,
  ];
  const launched = performance.now();
  try {
    await podman(args);
    const state = async () => (await podman(['inspect', '--format', '{{.State.Status}}', container]).catch(() => 'gone')) === 'running';
    const ready = await untilReady(port, state, () => `the ${name} container`);
    const readyAt = Date.now() - (performance.now() - ready);
    const [startedNs, pid] = (await podman(['inspect', '--format', '{{.State.StartedAt.UnixNano}} {{.State.Pid}}', container])).split(' ').map(Number);
    const cpuMs = cpuMsOf(pid);
    await sleep(SETTLE_MS);
    const early = memoryOf(pid);
    await sleep(idleMs - SETTLE_MS);
    const idle = memoryOf(pid);
    await podman(['kill', '--signal', 'SIGUSR2', container]);
    await sleep(300);
    const afterGc = memoryOf(pid);
    return { readyMs: readyAt - startedNs / 1e6, fromRunMs: ready - launched, cpuMs, early, idle, afterGc };
  } catch (err) {
    const logs = await podman(['logs', '--tail', '20', container]).catch((e) => e.message);
    throw new Error(`${err.message}; its last output:\n${logs}`);
  } finally {
    await podman(['rm', '--force', '--time', '5', container]).catch(() => {});
  }
}

// --- the run ----------------------------------------------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), 'avatar-pipeline-footprint-'));
const webhookToken = 'footprint-bench-webhook-token';
const stack = await startStack({ dataDir, services: [], logLevel: 'warn', sink: () => {}, webhookToken });
const vapidFile = join(dataDir, 'vapid.json');
await initVapidKeys(new FileVapidStore(vapidFile));
const internalGatewayUrl = stack.gatewayUrl.replace('localhost', '127.0.0.1');
const envFor = (name, inherited) =>
  serviceEnv(name, {
    inherited,
    addresses: { gatewayUrl: stack.gatewayUrl, internalGatewayUrl, brokerUrl: stack.brokerUrl, s3Endpoint: stack.s3Endpoint, dynamoEndpoint: stack.dynamoEndpoint },
    logLevel: 'info',
    region: 'us-east-1',
    maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
    shutdownGraceSeconds: 5,
    webhookToken,
    vapidFile,
  });

/** Runs `start` `runs` times per service, the services in turn; returns the medians and samples per service. */
async function measure(label, start) {
  const samples = Object.fromEntries(wanted.map((name) => [name, []]));
  for (let i = 1; i <= runs; i++) {
    for (const name of wanted) {
      const sample = await start(name);
      samples[name].push(sample);
      say(`${label} ${name} run ${i}/${runs}: ready ${sample.readyMs.toFixed(0)} ms (CPU ${sample.cpuMs.toFixed(0)} ms), idle RSS ${mb(sample.idle?.rss)} MB, after GC ${mb(sample.afterGc?.rss)} MB`);
    }
  }
  return Object.fromEntries(
    wanted.map((name) => {
      const s = samples[name];
      const figures = {
        readyMs: median(s.map((x) => x.readyMs)),
        ...(s[0].fromRunMs !== undefined ? { fromRunMs: median(s.map((x) => x.fromRunMs)) } : {}),
        cpuMs: median(s.map((x) => x.cpuMs)),
        earlyMB: median(s.map((x) => x.early?.rss / 1e6)),
        rssMB: median(s.map((x) => x.idle?.rss / 1e6)),
        anonMB: median(s.map((x) => x.idle?.anon / 1e6)),
        fileMB: median(s.map((x) => x.idle?.file / 1e6)),
        afterGcMB: median(s.map((x) => x.afterGc?.rss / 1e6)),
      };
      const target = targets[name];
      return [name, { ...figures, target, met: figures.rssMB <= target.rssMB && figures.readyMs <= target.readyMs, samples: s }];
    }),
  );
}
const mb = (bytes) => (bytes === undefined || !Number.isFinite(bytes) ? '?' : (bytes / 1e6).toFixed(1));

const nodeVersion = (await run(nodeBinary, ['--version'])).stdout.trim();
const result = { runs, idleSeconds: idleMs / 1000, host: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' } };
try {
  if (!values['images-only']) result.node = { node: nodeVersion, services: await measure('node', (name) => nodeStart(name, envFor(name, process.env))) };
  if (values.images || values['images-only']) {
    const why = await imagesUnavailable(wanted);
    if (why) {
      say(`--images: skipped: ${why}`);
      result.images = { skipped: why };
    } else {
      const vapidDir = join(dataDir, 'vapid-for-images');
      mkdirSync(vapidDir, { mode: 0o700 });
      copyFileSync(vapidFile, join(vapidDir, 'vapid.json'));
      for (const path of [vapidDir, join(vapidDir, 'vapid.json')]) chownSync(path, CONTAINER_UID, CONTAINER_UID);
      const context = { ulimits: await podmanArgs(), limits: memoryLimits(), vapidDir };
      // Only the stack's own variables go into a container (nothing of this machine's environment),
      // less the node options and malloc settings: the image's own ENV decides those, as in a pod.
      const containerEnv = (name) => {
        const { NODE_OPTIONS: _options, MALLOC_ARENA_MAX: _arenas, ...env } = envFor(name, {});
        return { ...env, VAPID_FILE: `${CONTAINER_VAPID_DIR}/vapid.json` };
      };
      result.images = { services: await measure('image', (name) => imageStart(name, containerEnv(name), context)) };
    }
  }
} finally {
  await stack.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

function table(title, services) {
  const rows = Object.entries(services).map(([name, f]) => {
    const ok = (value, target) => (value <= target ? `${value.toFixed(0)}` : `**${value.toFixed(0)}**`);
    return (
      `| ${name} | ${ok(f.readyMs, f.target.readyMs)} | ${f.target.readyMs} | ${f.cpuMs.toFixed(0)} | ${f.fromRunMs !== undefined ? `${f.fromRunMs.toFixed(0)} | ` : ''}` +
      `${f.earlyMB.toFixed(0)} | ${ok(f.rssMB, f.target.rssMB)} | ${f.target.rssMB} | ${f.anonMB.toFixed(0)} / ${f.fileMB.toFixed(0)} | ${f.afterGcMB.toFixed(0)} | ${f.met ? 'yes' : 'no'} |`
    );
  });
  const images = Object.values(services).some((f) => f.fromRunMs !== undefined);
  return [
    '',
    title,
    '',
    `| service | start → /readyz 200 (ms) | target (ms) | CPU to ready (ms) | ${images ? 'podman run → /readyz 200 (ms) | ' : ''}RSS 1 s after ready (MB) | idle RSS (MB) | target (MB) | anon / file (MB) | after GC (MB) | met |`,
    `| --- | --- | --- | --- | ${images ? '--- | ' : ''}--- | --- | --- | --- | --- | --- |`,
    ...rows,
  ].join('\n');
}

if (values.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const header = `${result.host.cores} cores (${result.host.cpu}); median of ${runs} starts; RSS after ${idleMs / 1000} s idle; MB = 10^6 bytes; misses in bold`;
  console.log(`\n${header}`);
  if (result.node) console.log(table(`Built services on node (${result.node.node}), as the local stack starts them:`, result.node.services));
  if (result.images?.services) console.log(table('Container images (podman, the chart\'s memory limits; ready from the container\'s process start):', result.images.services));
  else if (result.images) console.log(`\nContainer images: skipped: ${result.images.skipped}`);
}
