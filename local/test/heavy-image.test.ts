/**
 * The heaviest valid upload through the built moderate and thumbnail, each a child process set up
 * as its pod is (the image's ENV from the Dockerfile, then the container's environment,
 * containerConcurrency and memory limit from the kind chart as the real helm renders it; the real
 * nsfwjs model), as many at once as the pod's containerConcurrency lets in: a 6000x6000 16-bit RGBA PNG with EXIF
 * orientation 6, 4.6 MiB, 288 MB once decoded. Peak RSS (VmHWM) must stay under the pod's memory
 * limit, and nothing may be written to /tmp (TMPDIR points below a file: any temporary file, such
 * as libvips spilling a large image to disk, fails the upload).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { heavyPng } from '@avatar-pipeline/imaging/hostile';
import { toBinary, toCloudEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { DEFAULT_MAX_UPLOAD_BYTES } from '@avatar-pipeline/kit/config';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUCKET, TABLE, requireBuilt, startTestBackends, type TestBackends } from '../src/index.js';
import { repoRoot } from '../src/stack.js';
// The chart rendered by the real helm (built by k8s-tests/support/go-tools.ts on first use), and the Dockerfile's stages.
import { lineage, parseDockerfile } from '../../k8s-tests/support/dockerfile.js';
import { rendered } from '../../k8s-tests/support/helm.js';

const main = (name: string) => join(repoRoot, 'services', name, 'dist', 'main.js');

/** A Kubernetes memory quantity in Mi, as the profiles write them. */
function mebibytes(quantity: string): number {
  const match = /^(\d+)Mi$/.exec(quantity);
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * 1024 * 1024;
}

type HeavyService = 'moderate' | 'thumbnail';

/** How the kind chart runs a service: its container's own variables, concurrency and memory limit. */
interface Pod {
  env: Record<string, string>;
  containerConcurrency: number;
  memoryLimit: string;
}

/**
 * Variables of the container the test replaces: the event endpoints' OIDC settings (deliveries
 * here carry no Knative token, and no service account token is mounted), and the shared
 * ConfigMap's (envFrom), whose endpoints, bucket and table are the local servers'. Only
 * AVATAR_MAX_BYTES of the ConfigMap is kept: it bounds the images the services accept.
 */
const REPLACED = new Set(['EVENTS_OIDC_AUDIENCES', 'EVENTS_OIDC_JWKS_TOKEN_FILE', 'NODE_EXTRA_CA_CERTS']);

/** The ENV of an image target's stages (`KEY=value` pairs, as the Dockerfile writes them), later stages last. */
function imageEnv(target: HeavyService): Record<string, string> {
  const dockerfile = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
  const env: Record<string, string> = {};
  for (const stage of lineage(dockerfile, target).reverse()) {
    for (const instruction of stage.instructions.filter((i) => i.keyword === 'ENV')) {
      for (const pair of instruction.args.trim().split(/\s+/)) {
        const match = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\s]*)$/.exec(pair);
        if (!match) throw new Error(`${target}: ENV ${instruction.args} is not plain KEY=value pairs`);
        env[match[1]!] = match[2]!;
      }
    }
  }
  return env;
}

async function kindPods(): Promise<Record<HeavyService, Pod>> {
  const { objects } = await rendered('kind');
  type Container = { env?: { name: string; value?: string; valueFrom?: unknown }[]; resources: { limits: { memory: string } } };
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const shared = (find('ConfigMap', 'avatar-pipeline-env') as unknown as { data: Record<string, string> }).data;
  const pod = (name: HeavyService): Pod => {
    const ksvc = find('Service', name) as unknown as { spec: { template: { spec: { containerConcurrency: number; containers: Container[] } } } };
    const [container] = ksvc.spec.template.spec.containers;
    // The container's variables override the image's, as in a pod.
    const env: Record<string, string> = { ...imageEnv(name), AVATAR_MAX_BYTES: shared['AVATAR_MAX_BYTES'] ?? '' };
    for (const v of container?.env ?? []) {
      if (v.valueFrom !== undefined) throw new Error(`${name}: ${v.name} comes from a reference this test does not resolve`);
      if (!REPLACED.has(v.name)) env[v.name] = v.value ?? '';
    }
    return { env, containerConcurrency: ksvc.spec.template.spec.containerConcurrency, memoryLimit: container?.resources.limits.memory ?? '' };
  };
  return { moderate: pod('moderate'), thumbnail: pod('thumbnail') };
}

/** Peak resident set of a live process (Linux). */
function peakRss(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) * 1024;
}

interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

describe.runIf(process.platform === 'linux')('a heavy valid upload within the pods memory limits', () => {
  let backends: TestBackends;
  let heavy: Buffer;
  let pods: Record<HeavyService, Pod>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    pods = await kindPods();
    // The embedded model, as on kind (rekognition would call AWS).
    expect(pods.moderate.env['MODERATION_PROVIDER']).toBe('nsfwjs');
  }, 20 * 60_000);

  beforeAll(async () => {
    requireBuilt(['moderate', 'thumbnail']);
    backends = await startTestBackends({ prefix: 'ap-heavy-' });
    heavy = await heavyPng();
  }, 120_000);
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await backends?.close();
  });

  /** Starts a built service with its pod's environment; resolves once it listens. */
  async function start(name: HeavyService): Promise<Running> {
    const notADirectory = join(backends.dir, 'not-a-directory');
    await writeFile(notADirectory, '');
    const child = spawn(process.execPath, [main(name)], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...pods[name].env,
        TMPDIR: join(notADirectory, 'tmp'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_ENDPOINT_URL_S3: backends.s3Server.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: backends.dynamoServer.endpoint,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        TABLE_NAME: TABLE,
        BUCKET,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        // Logs are JSON lines; nsfwjs prints one plain line of its own.
        if (!line.startsWith('{')) return;
        const entry = JSON.parse(line) as { port?: number; msg?: string };
        if (entry.msg === `${name} listening` && entry.port) resolve(entry.port);
      });
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${stderr}`)));
    });
    return { child, url: `http://127.0.0.1:${port}/events`, stderr: () => stderr };
  }

  async function deliver(service: Running, event: OutgoingEvent) {
    const { headers, body } = toBinary(event);
    const res = await fetch(service.url, { method: 'POST', headers, body });
    const text = await res.text();
    const replyHeaders: Record<string, string> = {};
    res.headers.forEach((value, name) => (replyHeaders[name] = value));
    if (res.status !== 200) throw new Error(`${service.url} answered ${res.status}: ${text}\n${service.stderr()}`);
    const reply = toCloudEvent(replyHeaders, text);
    return { id: reply.id, source: reply.source, type: reply.type, subject: reply.subject ?? '', data: reply.data } satisfies OutgoingEvent;
  }

  it('is the image the limits allow at their edge: within AVATAR_MAX_BYTES and 40 MP, 16 bits per channel, turned by EXIF', async () => {
    expect(heavy.length).toBeLessThanOrEqual(DEFAULT_MAX_UPLOAD_BYTES);
    expect(heavy.length).toBeGreaterThan(4 * 1024 * 1024);
    expect(await sharp(heavy).metadata()).toMatchObject({ format: 'png', width: 6000, height: 6000, depth: 'ushort', channels: 4, orientation: 6 });
  });

  it('goes through moderate and thumbnail, each at its containerConcurrency, under each pod memory limit', async () => {
    const uploads = new UploadStore(backends.doc, TABLE);
    const uploadIds = Array.from({ length: pods.thumbnail.containerConcurrency }, (_, i) => `0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a${String(i).padStart(2, '0')}`);
    const created = await Promise.all(
      uploadIds.map(async (uploadId) => {
        const playerId = `p-heavy-${uploadId.slice(-2)}`;
        const key = uploadKey(playerId, uploadId);
        await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: DEFAULT_MAX_UPLOAD_BYTES });
        const put = await backends.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: heavy, ContentType: 'image/png' }));
        return { key, eTag: (put.ETag ?? '').replace(/"/g, '') };
      }),
    );

    const moderate = await start('moderate');
    // As many at once as the pod's queue-proxy lets in.
    const approved = await pLimit(pods.moderate.containerConcurrency).map(created, ({ key, eTag }) =>
      deliver(moderate, {
        id: `heavy-${key}`,
        source: `aws:s3.us-east-1.${BUCKET}`,
        type: 'com.amazonaws.s3.ObjectCreated:Post',
        subject: key,
        time: new Date().toISOString(),
        data: { s3SchemaVersion: '1.0', configurationId: 'uploads', bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` }, object: { key, size: heavy.length, eTag } },
      }),
    );
    expect(approved.map((event) => event.type)).toEqual(uploadIds.map(() => EventType.approved));
    const moderatePeak = peakRss(moderate.child.pid!);
    moderate.child.kill('SIGTERM');

    const thumbnail = await start('thumbnail');
    const thumbnailed = await pLimit(pods.thumbnail.containerConcurrency).map(approved, (event) => deliver(thumbnail, event));
    expect(thumbnailed.map((event) => event.type)).toEqual(uploadIds.map(() => EventType.thumbnailed));
    const thumbnailPeak = peakRss(thumbnail.child.pid!);
    thumbnail.child.kill('SIGTERM');

    const { objects } = thumbnailed[0]!.data as { objects: Record<string, string> };
    for (const [name, key] of Object.entries(objects)) {
      const body = await (await backends.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray();
      const meta = await sharp(body).metadata();
      expect([meta.width, meta.height], name).toEqual(name === 'full' ? [1024, 1024] : [Number(name), Number(name)]);
    }

    const MiB = 1024 * 1024;
    console.info(`pod environments: ${JSON.stringify({ moderate: pods.moderate.env, thumbnail: pods.thumbnail.env })}`);
    console.info(
      `peak RSS: moderate ${(moderatePeak / MiB).toFixed(0)} MiB for ${pods.moderate.containerConcurrency} at once ` +
        `(limit ${pods.moderate.memoryLimit}), thumbnail ${(thumbnailPeak / MiB).toFixed(0)} MiB for ` +
        `${pods.thumbnail.containerConcurrency} at once (limit ${pods.thumbnail.memoryLimit})`,
    );
    expect(moderatePeak).toBeLessThan(mebibytes(pods.moderate.memoryLimit));
    expect(thumbnailPeak).toBeLessThan(mebibytes(pods.thumbnail.memoryLimit));
  }, 300_000);
});
