/**
 * The heaviest valid upload through the built moderate and thumbnail, each a child process set up
 * as its pod is (the pod's environment from the cdk8s profile, the real nsfwjs model), as many at
 * once as the pod's containerConcurrency lets in: a 6000x6000 16-bit RGBA PNG with EXIF
 * orientation 6, 4.6 MiB, 288 MB once decoded. Peak RSS (VmHWM) must stay under the pod's memory
 * limit, and nothing may be written to /tmp (TMPDIR points below a file: any temporary file, such
 * as libvips spilling a large image to disk, fails the upload).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { environments, serviceProfiles } from '@avatar-pipeline/cdk8s';
import { heavyPng } from '@avatar-pipeline/imaging/hostile';
import {
  DEFAULT_MAX_UPLOAD_BYTES,
  dynamoDocumentClient,
  EventType,
  s3Client,
  toBinary,
  toCloudEvent,
  uploadKey,
  UploadStore,
  type OutgoingEvent,
} from '@avatar-pipeline/kit';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDynamoServer, startS3Server, type DynamoServer, type S3Server } from '../src/index.js';
import { repoRoot } from '../src/stack.js';

const BUCKET = 'avatars';
const TABLE = 'avatar-pipeline';
const main = (name: string) => join(repoRoot, 'services', name, 'dist', 'main.js');

/** A Kubernetes memory quantity in Mi, as the profiles write them. */
function mebibytes(quantity: string): number {
  const match = /^(\d+)Mi$/.exec(quantity);
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * 1024 * 1024;
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
  let dir: string;
  let s3Server: S3Server;
  let ddbServer: DynamoServer;
  let s3: S3Client;
  let doc: ReturnType<typeof dynamoDocumentClient>;
  let heavy: Buffer;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    for (const name of ['moderate', 'thumbnail']) {
      if (!existsSync(main(name))) throw new Error(`${main(name)} is missing: run npx tsc -b first`);
    }
    dir = await mkdtemp(join(tmpdir(), 'ap-heavy-'));
    s3Server = await startS3Server({ directory: join(dir, 's3'), buckets: [BUCKET] });
    ddbServer = await startDynamoServer({ table: TABLE });
    s3 = s3Client({ region: 'us-east-1', s3Endpoint: s3Server.endpoint });
    doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: ddbServer.endpoint });
    heavy = await heavyPng();
  }, 120_000);
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    s3?.destroy();
    doc?.destroy();
    await s3Server?.close();
    await ddbServer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts a built service with its pod's environment; resolves once it listens. */
  async function start(name: 'moderate' | 'thumbnail'): Promise<Running> {
    const notADirectory = join(dir, 'not-a-directory');
    await writeFile(notADirectory, '');
    const pod = Object.fromEntries(serviceProfiles[name].env(environments.kind).flatMap((v) => (v.value === undefined ? [] : [[v.name, v.value]])));
    const child = spawn(process.execPath, [main(name)], {
      env: {
        PATH: process.env['PATH'] ?? '',
        ...pod,
        TMPDIR: join(notADirectory, 'tmp'),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_ENDPOINT_URL_S3: s3Server.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: ddbServer.endpoint,
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

  /** Runs `work` on every item, `concurrency` at a time, as a pod's queue-proxy lets requests in. */
  async function inBatches<T, R>(items: readonly T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
    const results: R[] = [];
    for (let i = 0; i < items.length; i += concurrency) results.push(...(await Promise.all(items.slice(i, i + concurrency).map(work))));
    return results;
  }

  it('is the image the limits allow at their edge: within AVATAR_MAX_BYTES and 40 MP, 16 bits per channel, turned by EXIF', async () => {
    expect(heavy.length).toBeLessThanOrEqual(DEFAULT_MAX_UPLOAD_BYTES);
    expect(heavy.length).toBeGreaterThan(4 * 1024 * 1024);
    expect(await sharp(heavy).metadata()).toMatchObject({ format: 'png', width: 6000, height: 6000, depth: 'ushort', channels: 4, orientation: 6 });
  });

  it('goes through moderate and thumbnail, each at its containerConcurrency, under each pod memory limit', async () => {
    const uploads = new UploadStore(doc, TABLE);
    const uploadIds = Array.from({ length: serviceProfiles.thumbnail.containerConcurrency }, (_, i) => `0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a${String(i).padStart(2, '0')}`);
    const created = await Promise.all(
      uploadIds.map(async (uploadId) => {
        const playerId = `p-heavy-${uploadId.slice(-2)}`;
        const key = uploadKey(playerId, uploadId);
        await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: DEFAULT_MAX_UPLOAD_BYTES });
        const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: heavy, ContentType: 'image/png' }));
        return { key, eTag: (put.ETag ?? '').replace(/"/g, '') };
      }),
    );

    const moderate = await start('moderate');
    const approved = await inBatches(created, serviceProfiles.moderate.containerConcurrency, ({ key, eTag }) =>
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
    const thumbnailed = await inBatches(approved, serviceProfiles.thumbnail.containerConcurrency, (event) => deliver(thumbnail, event));
    expect(thumbnailed.map((event) => event.type)).toEqual(uploadIds.map(() => EventType.thumbnailed));
    const thumbnailPeak = peakRss(thumbnail.child.pid!);
    thumbnail.child.kill('SIGTERM');

    const { objects } = thumbnailed[0]!.data as { objects: Record<string, string> };
    for (const [name, key] of Object.entries(objects)) {
      const body = await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray();
      const meta = await sharp(body).metadata();
      expect([meta.width, meta.height], name).toEqual(name === 'full' ? [1024, 1024] : [Number(name), Number(name)]);
    }

    const MiB = 1024 * 1024;
    console.info(
      `peak RSS: moderate ${(moderatePeak / MiB).toFixed(0)} MiB for ${serviceProfiles.moderate.containerConcurrency} at once ` +
        `(limit ${serviceProfiles.moderate.resources.limits.memory}), thumbnail ${(thumbnailPeak / MiB).toFixed(0)} MiB for ` +
        `${serviceProfiles.thumbnail.containerConcurrency} at once (limit ${serviceProfiles.thumbnail.resources.limits.memory})`,
    );
    expect(moderatePeak).toBeLessThan(mebibytes(serviceProfiles.moderate.resources.limits.memory));
    expect(thumbnailPeak).toBeLessThan(mebibytes(serviceProfiles.thumbnail.resources.limits.memory));
  }, 300_000);
});
