// Presign's CPU per request and requests/s, in one run, against four targets:
//   bare     a bare Hono JSON route (parses the same JSON body, answers 201 JSON): the anchor
//   writes   the bare route plus the two DynamoDB writes presign makes per ticket (the kit's rate
//            limiter and upload store through the AWS SDK, in presign's environment): what the
//            SDK alone costs, the floor under presign's figure as long as it makes those writes
//   direct   the built presign service (services/presign/dist/main.js) on its own port
//   gateway  the same presign through the local gateway (createGateway, as the stack builds it)
// Each target is a child process started as the local stack starts its services: presign gets
// the stack's environment (serviceEnv), the child guard preloaded and a log pipe this process
// drains. The stack runs its gateway, dev issuer and stand-ins inside its own process; here each
// gets a process of its own (this file again, by role), so that every figure is one process's
// CPU: the gateway (with the dev issuer behind it serving the JWKS, as in the stack; the bench
// mints its tokens with the same key), and s3rver plus dynalite (in memory) as "stand-ins".
// Every request is a real upload ticket: token verification (ES256 against the JWKS, issuer,
// audience, expiry), zod validation, the rate limiter's conditional UpdateItem, the presigned
// POST and the pending record (PutItem), logs at --log-level (default info, as deployed).
//
// Usage (after `npx tsc -b`; Linux, for /proc):
//   node bench/presign.mjs [--duration 10] [--warmup 20] [--connections 50] [--players 1000]
//                          [--rounds 3] [--targets bare,writes,direct,gateway] [--log-level info]
//                          [--cpu-prof DIR] [--node-flags=--perf-basic-prof] [--baseline DIR] [--json]
//
// Load: autocannon in this process, `--connections` keep-alive connections, POST /v1/uploads
// with a JSON body, each request carrying the token of the next of `--players` players (tokens
// minted up front, one per player, as clients hold theirs). Presign limits uploads per player
// (RATE_LIMIT_UPLOADS per RATE_LIMIT_WINDOW_SECONDS, 10/60 s by default): the bench raises the
// limit out of reach, so the limiter still makes its conditional write on every request but
// never refuses one, and 429s cannot stand in for work. There are no other quotas.
// CPU ms per request = utime + stime of the serving process (from /proc, every thread) over the
// measured run, divided by the responses it answered, so it does not depend on what else uses
// the cores; requests/s is wall-clock and does (2 cores here, shared by the load generator,
// presign, the gateway and the stand-ins). The serving process of `gateway` is the gateway;
// presign's own share is beside it. Each target gets `--warmup` seconds of the same load before
// its first round (V8 takes tens of seconds of this load to optimise the SDK's and dynalite's hot
// code: CPU per request falls by ~40% over the first 30 s) and 2 s before each later one; rounds
// alternate between the targets, and each figure is the median over the rounds.
// --cpu-prof DIR starts presign under `node --cpu-prof` and leaves its .cpuprofile in DIR when
// the bench stops it (best with --targets direct); --node-flags adds node options to presign's
// command line (e.g. --perf-basic-prof, for `perf record -p`: its pid is printed at start).
// --baseline DIR also starts the presign built in another checkout (DIR/services/presign/dist,
// e.g. `git worktree add DIR main && (cd DIR && npm ci && npx tsc -b)`) beside this one, against
// the same stand-ins, as target `baseline`: measured in the same rounds as `direct`, a before and
// after comparison that the machine's other load affects alike.
// --json prints the figures as one JSON object (progress lines go to stderr).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { Registry } from 'prom-client';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { DEFAULT_MAX_UPLOAD_BYTES } from '@avatar-pipeline/kit/config';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { RateLimiter } from '@avatar-pipeline/kit/rate-limit';
import { runService } from '@avatar-pipeline/kit/server';
import { UploadStore } from '@avatar-pipeline/kit/table';
import {
  LOCAL_AUDIENCE,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  childGuardScript,
  createDevIssuer,
  createGateway,
  createPostPolicyGuard,
  freePort,
  serviceEnv,
  startDynamoServer,
  startS3Server,
} from '@avatar-pipeline/local';

const root = new URL('..', import.meta.url).pathname;
const self = new URL(import.meta.url).pathname;
const guard = childGuardScript(root);
const role = process.env['BENCH_PRESIGN_ROLE'];

// --- Child roles: this file run again with BENCH_PRESIGN_ROLE set -------------------------------

/** s3rver and dynalite (in memory), with the bucket and the table, on the ports given. */
async function standIns() {
  await startS3Server({ directory: join(process.env['BENCH_DATA_DIR'], 's3'), buckets: [LOCAL_BUCKET], port: Number(process.env['BENCH_S3_PORT']) });
  await startDynamoServer({ table: LOCAL_TABLE, port: Number(process.env['BENCH_DYNAMO_PORT']) });
  serve({ fetch: () => Response.json({ status: 'ok' }), port: Number(process.env['PORT']), hostname: '127.0.0.1' });
}

/** The local gateway as the stack builds it, with presign its only upstream and the dev issuer behind /.well-known. */
async function gateway() {
  const level = process.env['LOG_LEVEL'] ?? 'info';
  const issuer = await createDevIssuer({
    issuer: process.env['BENCH_ISSUER'],
    audience: LOCAL_AUDIENCE,
    logger: createLogger('dev-issuer', level),
    directory: process.env['BENCH_DATA_DIR'], // the key the bench minted its tokens with
  });
  const service = createGateway({
    logger: createLogger('gateway', level),
    upstream: (name) => (name === 'presign' ? process.env['BENCH_PRESIGN_URL'] : undefined),
    issuer: issuer.service.app,
    storage: createPostPolicyGuard({ upstream: process.env['BENCH_S3_ENDPOINT'], logger: createLogger('post-policy', level) }),
    media: (c) => c.notFound(), // no avatars are served here
    maxBodyBytes: DEFAULT_MAX_UPLOAD_BYTES + 64 * 1024,
  });
  await runService(service, { port: Number(process.env['PORT']), hostname: '127.0.0.1', graceMs: 5000 });
}

/** The anchor: one JSON route, nothing else (no logs, metrics, auth or validation). */
function bare() {
  const app = new Hono();
  app.post('/v1/uploads', async (c) => c.json({ received: await c.req.json() }, 201));
  app.get('/readyz', (c) => c.json({ status: 'ok' }));
  serve({ fetch: app.fetch, port: Number(process.env['PORT']), hostname: '127.0.0.1' });
}

/**
 * The second anchor: the bare route plus exactly the two DynamoDB writes presign makes per ticket
 * (the kit's rate limiter and upload store, through the AWS SDK as presign builds it, in presign's
 * environment), without auth, validation, signing, logs or metrics: what the SDK costs on its own.
 */
function writes() {
  const doc = dynamoDocumentClient({ region: process.env['AWS_REGION'], dynamodbEndpoint: process.env['AWS_ENDPOINT_URL_DYNAMODB'] });
  const table = process.env['TABLE_NAME'];
  const limiter = new RateLimiter(doc, table, { scope: 'uploads', limit: 1_000_000_000, windowSeconds: 60, registry: new Registry() });
  const uploads = new UploadStore(doc, table);
  let next = 0;
  const app = new Hono();
  app.post('/v1/uploads', async (c) => {
    const body = await c.req.json();
    const playerId = `bench-player-${next++ % 1000}`;
    await limiter.enforce(playerId);
    const uploadId = randomUUID();
    await uploads.createPending({ playerId, uploadId, contentType: body.contentType, maxBytes: body.contentLength });
    return c.json({ uploadId }, 201);
  });
  app.get('/readyz', (c) => c.json({ status: 'ok' }));
  serve({ fetch: app.fetch, port: Number(process.env['PORT']), hostname: '127.0.0.1' });
}

if (role) {
  await { 'stand-ins': standIns, gateway, bare, writes }[role]();
} else {
  await bench();
}

// --- The bench ----------------------------------------------------------------------------------

/** CPU ms (user + system, every thread) of a process so far, from /proc (USER_HZ is 100 on Linux). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * A child process as the stack's supervisor runs one (child guard preloaded, stdin held open, its
 * log lines read off a pipe), minus restarts: a child that dies ends the bench. Resolves once
 * `${url}/readyz` answers 200.
 */
async function startChild(name, { script, env, port, execArgv = [] }) {
  const child = spawn(process.execPath, [...execArgv, '--import', guard, script], {
    env: { ...env, PORT: String(port) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 20) lines.shift();
    });
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (stopping) return;
    console.error(`${name} exited (${signal ?? code}) during the bench; its last lines:\n${lines.join('\n')}`);
    process.exit(1);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} did not get ready; its last lines:\n${lines.join('\n')}`);
    await sleep(100);
  }
  return {
    name,
    pid: child.pid,
    url,
    async stop() {
      stopping = true;
      child.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => true), sleep(10_000, false)])) === false) child.kill('SIGKILL');
      await exited;
    },
  };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function bench() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '20' },
      connections: { type: 'string', default: '50' },
      players: { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '3' },
      targets: { type: 'string', default: 'bare,writes,direct,gateway' },
      'log-level': { type: 'string', default: 'info' },
      'cpu-prof': { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      baseline: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const duration = Number(values.duration);
  const warmup = Number(values.warmup);
  const connections = Number(values.connections);
  const playerCount = Number(values.players);
  const rounds = Number(values.rounds);
  const targetNames = values.targets.split(',').map((t) => t.trim());
  if (values.baseline && !targetNames.includes('baseline')) targetNames.push('baseline');
  const logLevel = values['log-level'];
  const say = values.json ? (...args) => console.error(...args) : (...args) => console.log(...args);
  const { default: autocannon } = await import('autocannon');

  const dataDir = mkdtempSync(join(tmpdir(), 'ap-bench-presign-'));
  const children = [];
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  try {
    const [gatewayPort, presignPort, barePort, standInsPort, s3Port, dynamoPort, baselinePort, writesPort] = await Promise.all(Array.from({ length: 8 }, () => freePort()));
    // As in the stack: the gateway's public origin is the token issuer, its loopback address serves the JWKS.
    const gatewayUrl = `http://localhost:${gatewayPort}`;
    const internalGatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    const s3Endpoint = `http://127.0.0.1:${s3Port}`;
    const dynamoEndpoint = `http://127.0.0.1:${dynamoPort}`;
    const presignUrl = `http://127.0.0.1:${presignPort}`;

    // The dev issuer's key is written to the data directory here and read by the gateway's copy.
    const issuer = await createDevIssuer({ issuer: gatewayUrl, audience: LOCAL_AUDIENCE, logger: createLogger('dev-issuer', 'silent'), directory: dataDir });
    const tokens = await Promise.all(Array.from({ length: playerCount }, (_, i) => issuer.mint(`bench-player-${i}`)));

    const roleEnv = (name, extra) => ({ ...process.env, BENCH_PRESIGN_ROLE: name, BENCH_DATA_DIR: dataDir, LOG_LEVEL: logLevel, ...extra });
    const standInsChild = await startChild('stand-ins', {
      script: self,
      port: standInsPort,
      env: roleEnv('stand-ins', { BENCH_S3_PORT: String(s3Port), BENCH_DYNAMO_PORT: String(dynamoPort) }),
    });
    children.push(standInsChild);
    const gatewayChild = await startChild('gateway', {
      script: self,
      port: gatewayPort,
      env: roleEnv('gateway', { BENCH_ISSUER: gatewayUrl, BENCH_PRESIGN_URL: presignUrl, BENCH_S3_ENDPOINT: s3Endpoint }),
    });
    children.push(gatewayChild);
    const presignEnv = serviceEnv('presign', {
      // Out of reach: every request still makes the limiter's conditional write (see the header).
      inherited: { ...process.env, RATE_LIMIT_UPLOADS: '1000000000' },
      addresses: { gatewayUrl, internalGatewayUrl, brokerUrl: 'http://127.0.0.1:9', s3Endpoint, dynamoEndpoint },
      logLevel,
      region: 'us-east-1',
      maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
      shutdownGraceSeconds: 5,
      webhookToken: 'unused',
      vapidFile: join(dataDir, 'vapid.json'),
    });
    const profileDir = values['cpu-prof'];
    const execArgv = [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), ...values['node-flags'].split(' ').filter(Boolean)];
    const presignChild = await startChild('presign', { script: join(root, 'services/presign/dist/main.js'), port: presignPort, env: presignEnv, execArgv });
    children.push(presignChild);
    const baselineChild = values.baseline
      ? await startChild('baseline', { script: join(values.baseline, 'services/presign/dist/main.js'), port: baselinePort, env: presignEnv, execArgv })
      : undefined;
    if (baselineChild) children.push(baselineChild);
    const bareChild = await startChild('bare', { script: self, port: barePort, env: roleEnv('bare', {}) });
    children.push(bareChild);
    const writesChild = targetNames.includes('writes')
      ? await startChild('writes', { script: self, port: writesPort, env: { ...presignEnv, BENCH_PRESIGN_ROLE: 'writes' } })
      : undefined;
    if (writesChild) children.push(writesChild);
    say(children.map((child) => `${child.name} pid ${child.pid}`).join(', '));

    // The process that answers each target, and the presign behind it.
    const targets = {
      bare: { url: `${bareChild.url}/v1/uploads`, serving: bareChild },
      direct: { url: `${presignUrl}/v1/uploads`, serving: presignChild, presign: presignChild },
      gateway: { url: `${internalGatewayUrl}/v1/uploads`, serving: gatewayChild, presign: presignChild },
      ...(writesChild ? { writes: { url: `${writesChild.url}/v1/uploads`, serving: writesChild } } : {}),
      ...(baselineChild ? { baseline: { url: `${baselineChild.url}/v1/uploads`, serving: baselineChild, presign: baselineChild } } : {}),
    };
    for (const name of targetNames) if (!targets[name]) throw new Error(`unknown target ${name}: use bare, writes, direct, gateway (baseline with --baseline)`);

    const body = JSON.stringify({ contentType: 'image/jpeg', contentLength: 200_000 });
    const load = async (url, seconds) => {
      let next = 0;
      const result = await autocannon({
        url,
        connections,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }),
          },
        ],
      });
      return result;
    };

    const cpu = Object.fromEntries(children.map((child) => [child.pid, child.name]));
    const runs = new Map(targetNames.map((name) => [name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const name of targetNames) {
        const target = targets[name];
        await load(target.url, round === 1 ? warmup : Math.min(warmup, 2));
        const before = Object.fromEntries(Object.keys(cpu).map((pid) => [pid, cpuMs(pid)]));
        const loadBefore = process.cpuUsage();
        const result = await load(target.url, duration);
        const used = Object.fromEntries(Object.keys(cpu).map((pid) => [cpu[pid], cpuMs(pid) - before[pid]]));
        const loadUsed = process.cpuUsage(loadBefore);
        const responses = result['2xx'] + result.non2xx;
        const perRequest = (ms) => (responses ? ms / responses : NaN);
        const run = {
          requestsPerSecond: responses / (result.duration || duration),
          cpuMsPerRequest: perRequest(used[cpu[target.serving.pid]]),
          presignCpuMsPerRequest: target.presign ? perRequest(used[target.presign.name]) : null,
          standInsCpuMsPerRequest: target.presign ? perRequest(used['stand-ins']) : null,
          loadGeneratorCpuMsPerRequest: perRequest((loadUsed.user + loadUsed.system) / 1000),
          responses,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          latencyP50Ms: result.latency.p50,
          latencyP99Ms: result.latency.p99,
        };
        runs.get(name).push(run);
        say(
          `round ${round}  ${name.padEnd(8)}  ${run.requestsPerSecond.toFixed(0).padStart(6)} req/s  ` +
            `${run.cpuMsPerRequest.toFixed(3)} ms CPU/req (${target.serving.name})  non-2xx ${run.non2xx}  errors ${run.errors + run.timeouts}`,
        );
      }
    }

    const summary = targetNames.map((name) => {
      const list = runs.get(name);
      const pick = (key) => (list[0][key] === null ? null : median(list.map((r) => r[key])));
      return {
        target: name,
        serving: targets[name].serving.name,
        requestsPerSecond: pick('requestsPerSecond'),
        cpuMsPerRequest: pick('cpuMsPerRequest'),
        presignCpuMsPerRequest: pick('presignCpuMsPerRequest'),
        standInsCpuMsPerRequest: pick('standInsCpuMsPerRequest'),
        loadGeneratorCpuMsPerRequest: pick('loadGeneratorCpuMsPerRequest'),
        latencyP50Ms: pick('latencyP50Ms'),
        latencyP99Ms: pick('latencyP99Ms'),
        non2xx: list.reduce((sum, r) => sum + r.non2xx, 0),
        errors: list.reduce((sum, r) => sum + r.errors + r.timeouts, 0),
      };
    });
    const settings = { durationSeconds: duration, warmupSeconds: warmup, connections, players: playerCount, rounds, logLevel };
    const machine = { cpus: cpus().length, model: cpus()[0]?.model.trim(), node: process.version };

    // direct against baseline round by round (measured seconds apart), so slow swings in the
    // machine's other load cancel out of the ratio.
    const paired = runs.has('direct') && runs.has('baseline') ? runs.get('direct').map((r, i) => r.cpuMsPerRequest / runs.get('baseline')[i].cpuMsPerRequest) : [];
    const comparison = paired.length ? { directOverBaselineCpu: median(paired), perRound: paired } : undefined;

    if (values.json) {
      console.log(JSON.stringify({ bench: 'presign', machine, settings, targets: summary, ...(comparison ? { comparison } : {}) }, null, 2));
    } else {
      const fixed = (v, digits) => (v === null ? '–' : v.toFixed(digits));
      console.log(
        `\n${connections} connections, ${duration} s per target after ${warmup} s warm-up, ${playerCount} players, ${rounds} round(s), ` +
          `LOG_LEVEL=${logLevel}; ${machine.cpus} x ${machine.model}, Node ${machine.node}\n`,
      );
      console.log('| target | requests/s | CPU ms/request (serving process) | presign CPU ms/request | stand-ins CPU ms/request | p50 / p99 ms | non-2xx | errors |');
      console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const s of summary) {
        console.log(
          `| ${s.target} | ${fixed(s.requestsPerSecond, 0)} | ${fixed(s.cpuMsPerRequest, 3)} (${s.serving}) | ${fixed(s.presignCpuMsPerRequest, 3)} | ` +
            `${fixed(s.standInsCpuMsPerRequest, 3)} | ${s.latencyP50Ms} / ${s.latencyP99Ms} | ${s.non2xx} | ${s.errors} |`,
        );
      }
      if (comparison) {
        console.log(
          `\ndirect / baseline CPU per request: x${comparison.directOverBaselineCpu.toFixed(3)} (median of the rounds' ratios: ${paired.map((r) => r.toFixed(3)).join(', ')})`,
        );
      }
    }
  } finally {
    for (const child of children.reverse()) await child.stop();
  }
}
