// `npm run test:images`: builds every target of the Dockerfile with podman (on a stand-in for
// node:24-bookworm-slim when no registry serves it), runs each image the way the kind chart runs
// it against loopback stand-ins (s3rver, dynalite, an event sink, the dev-issuer image for the
// JWKS), waits for GET /readyz 200, sends one approved event through thumbnail, and prints each
// image's size and start-to-ready time. Logs go to test-artifacts/images/. Exits non-zero on any
// failure; containers are removed either way.
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBaseImage } from './base-image.mjs';
import { containerEnv, readChart, runFlags, sinkBound, toStandIns, workloads } from './chart.mjs';
import { buildTarget, imageName, imageSize, logTail, removeContainers, runToCompletion, startUntilReady } from './containers.mjs';
import { ensureDebianPackages } from './debian.mjs';
import { exec } from './exec.mjs';
import { deliverApprovedEvent } from './thumbnail-event.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
process.chdir(root);
// The stand-ins' AWS clients run on this machine's Node, whatever its version; the images run Node 24.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const artifacts = join(root, 'test-artifacts', 'images');
const log = join(artifacts, 'build.log');
const say = (line) => console.log(`test:images: ${line}`);
const READY_TIMEOUT_MS = 120_000;
const VAPID_DIR = '/vapid';

/** A free loopback port (released before use: fine for a test that owns the machine's loopback). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** K_SINK for the services a SinkBinding targets: accepts events like the broker's ingress. */
async function startEventSink() {
  const server = createServer((request, response) => {
    request.resume().on('end', () => response.writeHead(202).end());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function build(targets, baseImage) {
  const times = new Map();
  const started = performance.now();
  for (const target of targets) {
    say(`building ${target}`);
    times.set(target, await buildTarget(target, { baseImage, log }));
  }
  return { times, totalMs: performance.now() - started };
}

/** Starts every workload of the chart from its image and checks it; returns figures per target. */
async function runImages(objects, work) {
  // The local package's stand-ins, compiled by main's tsc -b.
  const { LOCAL_CREDENTIALS, startDynamoServer, startS3Server } = await import('@avatar-pipeline/local');
  const { s3Client } = await import('@avatar-pipeline/kit');
  const chart = workloads(objects);
  const bound = sinkBound(objects);
  const cleanup = [];
  // Containers left by an interrupted run would hold the names.
  await removeContainers();
  try {
    const s3 = await startS3Server({ directory: join(work, 's3'), buckets: ['avatars'] });
    cleanup.push(() => s3.close());
    const dynamo = await startDynamoServer({ table: 'avatar-pipeline' });
    cleanup.push(() => dynamo.close());
    const sink = await startEventSink();
    cleanup.push(() => sink.close());

    // The values the chart takes from Secrets; the VAPID pair comes from the vapid-init Job below.
    const secrets = {
      'stand-in-credentials': { AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey },
      's3-source-webhook': { token: randomBytes(24).toString('base64url') },
    };
    const ports = new Map(await Promise.all(chart.map(async (w) => [w.name, await freePort()])));
    const standIns = { minio: s3.endpoint, dynamodb: dynamo.endpoint, 'dev-issuer': `http://127.0.0.1:${ports.get('dev-issuer')}` };
    // Written by the Job as uid 10001, read-only for the services.
    const vapid = join(work, 'vapid');
    await mkdir(vapid);
    await chown(vapid, 10001, 10001);

    const spec = (workload) => {
      const env = toStandIns(containerEnv(objects, workload.container, secrets), standIns);
      const job = workload.kind === 'Job';
      const local = {
        // Loopback only, each on its own port of the host network.
        ...(job ? {} : { PORT: String(ports.get(workload.name)), HOST: '127.0.0.1' }),
        ...(bound.has(workload.name) ? { K_SINK: sink.url } : {}),
        // The cluster keeps the pair in a Secret through the Kubernetes API; here, in a mounted file.
        ...(env.VAPID_STORE === 'k8s-secret' ? { VAPID_STORE: 'file', VAPID_FILE: `${VAPID_DIR}/vapid.json` } : {}),
      };
      return {
        name: workload.name,
        target: workload.target,
        flags: runFlags(workload),
        env: { ...env, ...local },
        volumes: local.VAPID_FILE ? [`${vapid}:${VAPID_DIR}:${job ? 'rw' : 'ro'}`] : [],
        // The images have no ENTRYPOINT, so the pod's command runs as the image's command would.
        command: [...(workload.container.command ?? []), ...(workload.container.args ?? [])],
      };
    };

    for (const job of chart.filter((w) => w.kind === 'Job')) {
      say(`running the ${job.name} Job (${job.target} image)`);
      await runToCompletion(spec(job));
    }
    // The dev issuer first: it serves the JWKS the API services are configured with.
    const services = chart.filter((w) => w.kind !== 'Job').sort((a, b) => (b.name === 'dev-issuer') - (a.name === 'dev-issuer'));
    const figures = new Map();
    for (const service of services) {
      try {
        figures.set(service.target, await startUntilReady(spec(service), { port: ports.get(service.name), timeoutMs: READY_TIMEOUT_MS }));
      } catch (err) {
        throw new Error(`${err.message}\n${await logTail(service.name)}`);
      }
      say(`${service.name} ready in ${Math.round(figures.get(service.target).fromStartMs)} ms`);
    }

    const thumbnail = services.find((s) => s.target === 'thumbnail');
    const client = s3Client({ region: 'us-east-1', s3Endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS });
    cleanup.push(async () => client.destroy());
    const event = await deliverApprovedEvent({
      url: `http://127.0.0.1:${ports.get(thumbnail.name)}`,
      s3: client,
      bucket: 'avatars',
      photo: join(root, 'fixtures', 'photos', 'leaf.jpg'),
    }).catch(async (err) => {
      throw new Error(`${err.message}\n${await logTail(thumbnail.name)}`);
    });
    return { figures, event };
  } finally {
    await removeContainers(artifacts).catch((err) => console.error(`test:images: removing containers: ${err.message}`));
    for (const step of cleanup.reverse()) await step().catch(() => {});
  }
}

function report({ baseImage, build: built, sizes, baseSize, figures, event }) {
  const mb = (bytes) => (bytes / 1e6).toFixed(0);
  const rows = [...sizes.keys()].map((target) => {
    const f = figures.get(target);
    return `| ${target} | ${mb(sizes.get(target))} | ${mb(sizes.get(target) - baseSize)} | ${Math.round(f.fromStartMs)} | ${Math.round(f.fromRunMs)} | ${(built.times.get(target) / 1000).toFixed(1)} |`;
  });
  console.log(
    [
      '',
      '| image | size (MB) | over the base (MB) | process start → /readyz 200 (ms) | podman run → /readyz 200 (ms) | build (s) |',
      '| --- | --- | --- | --- | --- | --- |',
      ...rows,
      '',
      `Base image ${baseImage}: ${mb(baseSize)} MB. Built ${sizes.size} targets in ${(built.totalMs / 1000).toFixed(1)} s.`,
      `thumbnail: approved → thumbnailed in ${Math.round(event.ms)} ms for a ${event.photo} JPEG; ` +
        event.renditions.map((r) => `${r.name} ${r.width}x${r.height} ${(r.bytes / 1024).toFixed(1)} KiB`).join(', '),
    ].join('\n'),
  );
}

async function main() {
  await rm(artifacts, { recursive: true, force: true });
  await mkdir(artifacts, { recursive: true });
  await ensureDebianPackages({ log, say });
  say('compiling the local stand-ins (tsc -b local)');
  await exec('npx', ['tsc', '-b', 'local'], { timeoutMs: 600_000 });
  const baseImage = await ensureBaseImage({ log, say });

  const objects = await readChart(join(root, 'charts', 'kind', 'templates'));
  const targets = [...new Set(workloads(objects).map((w) => w.target))];
  const built = await build(targets, baseImage);
  const sizes = new Map(await Promise.all(targets.map(async (t) => [t, await imageSize(imageName(t))])));
  const baseSize = await imageSize(baseImage);

  const work = await mkdtemp(join(tmpdir(), 'avatar-pipeline-images-'));
  try {
    const { figures, event } = await runImages(objects, work);
    report({ baseImage, build: built, sizes, baseSize, figures, event });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  () => say('passed'),
  (err) => {
    console.error(`test:images: FAILED: ${err.stack ?? err}`);
    process.exitCode = 1;
  },
);
