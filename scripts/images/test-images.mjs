// `npm run test:images`: builds every target of the Dockerfile with podman (on a stand-in for
// node:24-bookworm-slim when no registry serves it), runs each image the way the kind chart (as
// helm renders it) runs it against loopback stand-ins (s3rver, dynalite, an event sink checking
// the broker's OIDC token, the dev-issuer image for the players' JWKS, a Kubernetes API serving
// the service account issuer's JWKS), waits for GET /readyz 200, sends one approved event through
// thumbnail (refused without a valid delivery token, handled with one), and prints each image's
// size and start-to-ready time. Logs go to test-artifacts/images/. Exits non-zero on any failure;
// containers are removed either way.
import { randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBaseImage } from './base-image.mjs';
import {
  containerEnv,
  renderChart,
  runFlags,
  SERVICE_ACCOUNT_DIR,
  serviceAccount,
  SINK_TOKEN_DIR,
  sinkAudience,
  sinkBound,
  subscriberAudiences,
  toStandIns,
  workloads,
} from './chart.mjs';
import { buildTarget, imageName, imageSize, logTail, removeContainers, runToCompletion, startUntilReady } from './containers.mjs';
import { ensureDebianPackages } from './debian.mjs';
import { exec } from './exec.mjs';
import { startKubernetesStandIn } from './kubernetes.mjs';
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

/**
 * K_SINK for the services a SinkBinding targets: accepts events like the broker's ingress with
 * authentication-oidc, only with a token `verify` accepts (401 otherwise, each counted in `refused`).
 */
async function startEventSink(verify) {
  const refused = [];
  const server = createServer((request, response) => {
    const match = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '');
    const checked = match ? verify(match[1]).then(() => undefined, (err) => err.message) : Promise.resolve('no token');
    request.resume().on('end', async () => {
      const problem = await checked;
      if (problem) refused.push(problem);
      response.writeHead(problem ? 401 : 202).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, refused, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Files the services read from what the kubelet or Knative mounts: each must be in a mounted volume and exist. */
const MOUNTED_FILES = ['EVENTS_OIDC_JWKS_TOKEN_FILE', 'NODE_EXTRA_CA_CERTS', 'K_SINK_OIDC_TOKEN_FILE'];

/** Writes `files` into a new directory the container user may read (as the kubelet's projected volumes are: 0644). */
async function podVolume(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content, { mode: 0o644 });
  await chmod(dir, 0o755);
  return dir;
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
async function runImages({ namespace, objects }, work) {
  // The local package's stand-ins, compiled by main's tsc -b.
  const { LOCAL_CREDENTIALS, startDynamoServer, startS3Server } = await import('@avatar-pipeline/local');
  const { DEFAULT_MAX_UPLOAD_BYTES } = await import('@avatar-pipeline/kit/config');
  const { dynamoDocumentClient, s3Client } = await import('@avatar-pipeline/kit/aws');
  const { UploadStore } = await import('@avatar-pipeline/kit/table');
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
    // The service account issuer the event endpoints trust (the chart's in-cluster Kubernetes API).
    const kubernetes = await startKubernetesStandIn({ namespace });
    cleanup.push(() => kubernetes.close());
    const sinkAudiences = [...bound].map((name) => sinkAudience(objects, name));
    const sink = await startEventSink((token) => kubernetes.verify(token, sinkAudiences));
    cleanup.push(() => sink.close());

    // The values the chart takes from Secrets; the VAPID pair comes from the vapid-init Job below.
    const secrets = {
      'stand-in-credentials': { AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey },
      's3-source-webhook': { token: randomBytes(24).toString('base64url') },
    };
    const ports = new Map(await Promise.all(chart.map(async (w) => [w.name, await freePort()])));
    const standIns = {
      minio: s3.endpoint,
      dynamodb: dynamo.endpoint,
      'dev-issuer': `http://127.0.0.1:${ports.get('dev-issuer')}`,
      // The issuer and its JWKS URL (https://kubernetes.default.svc/openid/v1/jwks) both point here.
      kubernetes: kubernetes.issuer,
    };
    // Written by the Job as uid 10001, read-only for the services.
    const vapid = join(work, 'vapid');
    await mkdir(vapid);
    await chown(vapid, 10001, 10001);

    // What the kubelet and Knative mount into each pod: the service account's token (its audience
    // the API server's, for reading the JWKS), ca.crt and namespace where the token is automounted;
    // the token for the broker's audience where a SinkBinding applies. Read-only, as they are.
    const mounts = new Map();
    for (const workload of chart) {
      const volumes = [];
      const account = serviceAccount(objects, workload);
      if (account.automount) {
        const dir = await podVolume(join(work, 'pods', workload.name, 'serviceaccount'), {
          token: await kubernetes.mint(account.name),
          'ca.crt': kubernetes.ca,
          namespace,
        });
        volumes.push({ host: dir, path: SERVICE_ACCOUNT_DIR, mode: 'ro' });
      }
      if (bound.has(workload.name)) {
        // Knative mints it for a service account of its own per SinkBinding.
        const dir = await podVolume(join(work, 'pods', workload.name, 'oidc'), {
          token: await kubernetes.mint(`${workload.name}-sinkbinding-oidc`, sinkAudience(objects, workload.name)),
        });
        volumes.push({ host: dir, path: SINK_TOKEN_DIR, mode: 'ro' });
      }
      mounts.set(workload.name, volumes);
    }

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
      const volumes = [...mounts.get(workload.name), ...(local.VAPID_FILE ? [{ host: vapid, path: VAPID_DIR, mode: job ? 'rw' : 'ro' }] : [])];
      return {
        name: workload.name,
        target: workload.target,
        flags: runFlags(workload),
        env: { ...env, ...local },
        volumes: volumes.map(({ host, path, mode }) => `${host}:${path}:${mode}`),
        // The images have no ENTRYPOINT, so the pod's command runs as the image's command would.
        command: [...(workload.container.command ?? []), ...(workload.container.args ?? [])],
      };
    };

    // A path the chart names but the pod would not have fails only at the first event in a cluster: check each here.
    for (const workload of chart) {
      const env = containerEnv(objects, workload.container, secrets);
      for (const name of MOUNTED_FILES.filter((n) => env[n] !== undefined)) {
        const volume = mounts.get(workload.name).find((v) => env[name].startsWith(`${v.path}/`));
        if (!volume) throw new Error(`${workload.name}: ${name}=${env[name]} is in no volume its pod mounts`);
        await access(join(volume.host, posix.relative(volume.path, env[name]))).catch(() => {
          throw new Error(`${workload.name}: ${name}=${env[name]}: the mounted volume has no such file`);
        });
      }
    }

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
    // Knative's delivery tokens: for the audience the chart's Trigger names for thumbnail, and
    // (refused) for another subscriber's. Knative mints them for a service account per Trigger;
    // the endpoints check issuer, audience, expiry and signature, not the subject.
    const audiences = subscriberAudiences(objects);
    if (!audiences.has(thumbnail.name)) throw new Error(`no Trigger delivers to ${thumbnail.name}`);
    const [otherName, otherAudience] = [...audiences].find(([name]) => name !== thumbnail.name);
    const event = await deliverApprovedEvent({
      url: `http://127.0.0.1:${ports.get(thumbnail.name)}`,
      s3: client,
      bucket: 'avatars',
      photo: join(root, 'fixtures', 'photos', 'leaf.jpg'),
      token: await kubernetes.mint('trigger-oidc', audiences.get(thumbnail.name)),
      approve: async (playerId, uploadId, sha256) => {
        const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: dynamo.endpoint, credentials: LOCAL_CREDENTIALS });
        const uploads = new UploadStore(doc, 'avatar-pipeline');
        await uploads.createPending({ playerId, uploadId, contentType: 'image/jpeg', maxBytes: DEFAULT_MAX_UPLOAD_BYTES });
        const { approved } = await uploads.approve(playerId, uploadId, sha256);
        doc.destroy();
        if (!approved) throw new Error('the stand-in table refused the approval');
      },
      refusals: [
        { problem: 'no token', headers: {} },
        { problem: `a token for ${otherName}'s audience`, headers: { authorization: `Bearer ${await kubernetes.mint('trigger-oidc', otherAudience)}` } },
      ],
    }).catch(async (err) => {
      throw new Error(`${err.message}\n${await logTail(thumbnail.name)}`);
    });
    // thumbnail verified the token with the keys it fetched over TLS (the CA from ca.crt) with its own service account token.
    const thumbnailAccount = `system:serviceaccount:${namespace}:${serviceAccount(objects, thumbnail).name}`;
    const refusedFetches = kubernetes.fetches.filter((f) => f.refused);
    if (refusedFetches.length > 0) throw new Error(`the Kubernetes stand-in refused ${refusedFetches.length} JWKS request(s): ${refusedFetches.map((f) => f.refused).join(', ')}`);
    if (!kubernetes.fetches.some((f) => f.subject === thumbnailAccount)) throw new Error(`thumbnail never fetched the JWKS as ${thumbnailAccount}`);
    if (sink.refused.length > 0) throw new Error(`the event sink refused ${sink.refused.length} event(s): ${sink.refused.join('; ')}`);
    event.jwksFetchedAs = thumbnailAccount;
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
      `thumbnail: the event was refused with ${event.refused.map((r) => `${r.problem} (${r.status})`).join(' and ')}; ` +
        `handled with thumbnail's delivery token, verified with the keys fetched as ${event.jwksFetchedAs}.`,
    ].join('\n'),
  );
}

async function main() {
  await rm(artifacts, { recursive: true, force: true });
  await mkdir(artifacts, { recursive: true });
  await ensureDebianPackages({ log, say });
  say('compiling the local stand-ins and the chart config (tsc -b local cdk8s)');
  await exec('npx', ['tsc', '-b', 'local', 'cdk8s'], { timeoutMs: 600_000 });
  const baseImage = await ensureBaseImage({ log, say });

  say('rendering charts/kind (helm template)');
  const chart = await renderChart('kind');
  const { objects } = chart;
  const targets = [...new Set(workloads(objects).map((w) => w.target))];
  const built = await build(targets, baseImage);
  const sizes = new Map(await Promise.all(targets.map(async (t) => [t, await imageSize(imageName(t))])));
  const baseSize = await imageSize(baseImage);

  const work = await mkdtemp(join(tmpdir(), 'avatar-pipeline-images-'));
  try {
    const { figures, event } = await runImages(chart, work);
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
