/**
 * The reconciler in the real local stack (build first: `npx tsc -b`), with its timeouts set to
 * seconds: an abandoned ticket ends `expired` and the player's device is told; an upload whose
 * pipeline stalls after moderation (thumbnail is not deployed, so the approved event goes
 * nowhere) ends `failed` with reason `timeout` and is told; a late upload for an expired ticket is
 * deleted and ignored by moderate; a stray object under uploads/ is deleted; and the passes that
 * follow change nothing. s3-source does not run: each test hands the broker the S3 events it wants
 * seen, so nothing but the reconciler ever looks at the others.
 * Without the built services the suite fails, naming them; it does not skip.
 */
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { toBinary } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { OPEN_UPLOADS_INDEX, UploadStore, keys } from '@avatar-pipeline/kit/table';
import { S3_OBJECT_CREATED_PREFIX, type ServiceName } from '@avatar-pipeline/kit/topology';
import { startDynamoServer } from '../src/stand-ins/dynamo.js';
import { LOCAL_CREDENTIALS } from '../src/stand-ins/s3.js';
import { repoRoot, startStack, type Stack } from '../src/stack.js';
import { BUCKET, TABLE, requireBuilt, startTestBackends } from '../src/test-backends.js';
import { startWebPushTesting, type WebPushTesting } from '../src/stand-ins/web-push-testing.js';
import { ApiClient, eventually, postUpload, type UploadStatus } from './support/api.js';

const SERVICES: ServiceName[] = ['presign', 'moderate', 'profile', 'subscribe', 'push'];
/** An id shaped as a UUIDv7 (what upload ids are), for uploads nobody issued. */
const uuidv7 = () => randomUUID().replace(/^(.{14})4/, '$17');

interface Notification {
  type: string;
  uploadId: string;
  status: string;
  title: string;
  body: string;
  reason?: { code: string };
}

describe('the reconciler in the local stack', () => {
  let dataDir: string;
  let stack: Stack;
  let api: ApiClient;
  let s3: S3Client;
  let pushService: WebPushTesting;
  const logs: string[] = [];

  beforeAll(async () => {
    requireBuilt(SERVICES);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-reconciler-'));
    pushService = await startWebPushTesting();
    stack = await startStack({
      dataDir,
      services: SERVICES,
      logLevel: 'info',
      sink: (line) => logs.push(line),
      stopGraceMs: 5000,
      env: {
        ...process.env,
        PUSH_ALLOW_HTTP: 'true',
        PUSH_ALLOWED_HOSTS: pushService.host,
        // Seconds instead of hours: tickets live 3 s, then wait 3 s more; processing may last 6 s
        // (moderation takes about a second here, so the upload is approved before it times out).
        PRESIGN_EXPIRES_SECONDS: '3',
        UPLOAD_PENDING_TIMEOUT_SECONDS: '3',
        UPLOAD_PROCESSING_TIMEOUT_SECONDS: '6',
        RECONCILE_PERIOD_SECONDS: '0.5',
      },
    });
    api = new ApiClient(stack.gatewayUrl);
    s3 = s3Client({ region: 'us-east-1', s3Endpoint: stack.s3Endpoint, credentials: LOCAL_CREDENTIALS });
  });
  afterAll(async () => {
    await stack?.stop();
    await pushService?.close();
    s3?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const photo = (name: string) => readFile(join(repoRoot, 'fixtures', 'photos', name));
  const received = async (clientHash: string) => (await pushService.notifications(clientHash)).map((text) => JSON.parse(text) as Notification);

  /** A device of the player, subscribed to push through the API. */
  async function device(token: string): Promise<string> {
    const key = await api.json<{ publicKey: string }>('/v1/push/vapid-public-key');
    const { subscription, clientHash } = await pushService.subscribe(key.body.publicKey);
    const res = await api.json('/v1/push/subscriptions', { method: 'POST', token, body: JSON.stringify(subscription) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return clientHash;
  }

  async function objectStatus(key: string): Promise<number> {
    try {
      await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      return 200;
    } catch (err) {
      return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
    }
  }

  /** What s3-source would post for a new object: handed to the broker, as MinIO's webhook would have it. */
  async function announceObject(key: string): Promise<void> {
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    const event = toBinary({
      id: `test-${uuidv7()}`,
      source: `aws:s3.us-east-1.${BUCKET}`,
      type: `${S3_OBJECT_CREATED_PREFIX}Post`,
      subject: key,
      data: { s3SchemaVersion: '1.0', bucket: { name: BUCKET }, object: { key, size: head.ContentLength, eTag: head.ETag?.replace(/"/g, '') } },
    });
    const res = await fetch(stack.brokerUrl, { method: 'POST', headers: event.headers, body: event.body });
    expect(res.status).toBe(202);
  }

  /** A sample of a metric on profile's /metrics (the reconciler's timer runs there). */
  async function metric(name: string, labels = ''): Promise<number> {
    const text = await (await fetch(`${stack.services.profile}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  }

  const logLines = () => logs.map((line) => JSON.parse(line) as Record<string, unknown>);
  const settled: { token: string; status: UploadStatus }[] = [];
  const devices: string[] = [];

  it('ends an abandoned ticket expired and tells the player; a late upload for it is deleted and ignored', async () => {
    const playerId = 'p-abandoned';
    const token = await api.token(playerId);
    const phone = await device(token);
    devices.push(phone);
    const ticket = await api.requestUpload(token, 'image/jpeg', 100_000);

    const status = await api.settled(token, ticket.uploadId, 15_000);
    expect(status).toMatchObject({ status: 'expired', reason: { code: 'expired' } });
    settled.push({ token, status });
    const note = await eventually(async () => (await received(phone)).find((n) => n.uploadId === ticket.uploadId), 'the expired notification', 15_000);
    expect(note).toMatchObject({ type: 'avatar.expired', status: 'expired', reason: { code: 'expired' } });
    expect(note.title).toBeTruthy();

    // The ticket is dead: the POST is refused.
    const leaf = await photo('leaf.jpg');
    expect((await postUpload(ticket, leaf, 'image/jpeg')).status).toBe(403);
    // An upload S3 took just before the expiry, whose event comes now: moderate drops and deletes it.
    const key = uploadKey(playerId, ticket.uploadId);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: leaf, ContentType: 'image/jpeg' }));
    await announceObject(key);
    await eventually(
      () => logLines().find((l) => l['service'] === 'moderate' && l['uploadId'] === ticket.uploadId && l['msg'] === 'upload already finished; no new work'),
      'moderate to turn the late upload away',
    );
    await eventually(async () => ((await objectStatus(key)) === 404 ? true : undefined), 'the late upload to be deleted');
    expect((await api.status(token, ticket.uploadId)).status).toBe('expired');
    await stack.idle();
    expect((await received(phone)).filter((n) => n.uploadId === ticket.uploadId)).toHaveLength(1);
  });

  it('fails an upload whose pipeline stalled (no thumbnail stage) with reason timeout, and tells the player', async () => {
    const playerId = 'p-stalled';
    const token = await api.token(playerId);
    const phone = await device(token);
    devices.push(phone);
    const leaf = await photo('leaf.jpg');
    const ticket = await api.requestUpload(token, 'image/jpeg', leaf.length);
    expect((await postUpload(ticket, leaf, 'image/jpeg')).status).toBe(204);
    const key = uploadKey(playerId, ticket.uploadId);
    await announceObject(key);
    // Moderate takes it (processing) and approves it; the approved event has no Trigger here.
    await eventually(
      () => logLines().find((l) => l['service'] === 'moderate' && l['uploadId'] === ticket.uploadId && l['msg'] === 'upload approved'),
      'moderate to approve the upload',
      20_000,
    );

    const status = await api.settled(token, ticket.uploadId, 20_000);
    expect(status).toMatchObject({ status: 'failed', reason: { code: 'timeout' } });
    settled.push({ token, status });
    const note = await eventually(async () => (await received(phone)).find((n) => n.uploadId === ticket.uploadId), 'the failed notification', 15_000);
    expect(note).toMatchObject({ type: 'avatar.failed', status: 'failed', reason: { code: 'timeout' } });
    // Nothing of the unfinished upload is left under its key.
    expect(await objectStatus(key)).toBe(404);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total', 'reason="timeout"')).toBeGreaterThanOrEqual(1);
  });

  it('deletes an object under uploads/ that has no upload record', async () => {
    const key = uploadKey('p-stray', uuidv7());
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'not an upload anyone issued' }));
    await eventually(async () => ((await objectStatus(key)) === 404 ? true : undefined), 'the stray object to be deleted');
    // Counted just after the delete returns.
    await eventually(async () => ((await metric('avatarpipeline_reconciler_orphans_deleted_total', 'reason="no_record"')) >= 1 ? true : undefined), 'the deletion to be counted');
  });

  it('changes nothing on the passes that follow', async () => {
    expect(settled).toHaveLength(2);
    const ended = await metric('avatarpipeline_reconciler_uploads_ended_total');
    const expired = await metric('avatarpipeline_reconciler_uploads_ended_total', 'reason="expired"');
    const notified = await Promise.all(devices.map(async (d) => (await received(d)).length));
    const runs = await metric('avatarpipeline_reconciler_runs_total', 'outcome="ok"');
    await eventually(async () => ((await metric('avatarpipeline_reconciler_runs_total', 'outcome="ok"')) >= runs + 3 ? true : undefined), 'three more passes');
    for (const { token, status } of settled) expect(await api.status(token, status.uploadId)).toEqual(status);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total')).toBe(ended);
    expect(expired).toBeGreaterThanOrEqual(1);
    await stack.idle();
    expect(await Promise.all(devices.map(async (d) => (await received(d)).length))).toEqual(notified);
    expect(await metric('avatarpipeline_reconciler_runs_total', 'outcome="error"')).toBe(0);
    expect(await metric('avatarpipeline_reconciler_oldest_open_upload_seconds', 'status="processing"')).toBe(0);
  });
});

const reconcileMain = join(repoRoot, 'services', 'profile', 'dist', 'reconcile-main.js');

describe("the CronJob's command, once", () => {
  /** Runs `node services/profile/dist/reconcile-main.js` as the CronJob does; its exit code and JSON log lines. */
  function run(env: Record<string, string>): Promise<{ code: number | null; lines: Record<string, any>[] }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [reconcileMain], { cwd: repoRoot, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.on('error', reject);
      child.on('close', (code) =>
        resolve({
          code,
          lines: out
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, any>),
        }),
      );
    });
  }

  it('ends what is overdue, posts the outcome to K_SINK with the mounted token, logs one summary and exits 0; 1 when the broker refuses', async () => {
    expect(existsSync(reconcileMain), `${reconcileMain} is missing: run npx tsc -b`).toBe(true);
    const { dir, s3Server, dynamoServer: dynamo, doc, close } = await startTestBackends({ prefix: 'ap-reconcile-main-' });
    const received: { authorization: string | undefined; type: string | undefined }[] = [];
    let refuse = true;
    const sink = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (refuse) return void res.writeHead(503).end();
        received.push({ authorization: req.headers.authorization, type: req.headers['ce-type'] as string | undefined });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    try {
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, 'broker-token\n');
      const playerId = 'p-cron';
      const uploadId = uuidv7();
      await new UploadStore(doc, TABLE).createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 10, ticketExpiresAt: '2020-01-01T00:00:00Z' });
      const env = {
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        AWS_ENDPOINT_URL_S3: s3Server.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
        K_SINK: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`,
        K_SINK_OIDC_TOKEN_FILE: tokenFile,
      };

      const failed = await run(env);
      expect(failed.code).toBe(1);
      expect(failed.lines.find((l) => l['msg'] === 'reconcile pass finished')).toMatchObject({ service: 'reconciler', level: 'error', summary: { expired: 1, errors: 1 } });

      refuse = false;
      const ok = await run(env);
      expect(ok.code, JSON.stringify(ok.lines)).toBe(0);
      const summaries = ok.lines.filter((l) => l['msg'] === 'reconcile pass finished');
      expect(summaries).toHaveLength(1);
      expect(summaries[0]).toMatchObject({ level: 'info', summary: { expired: 0, reannounced: 1, errors: 0 } });
      expect(received).toEqual([{ authorization: 'Bearer broker-token', type: 'avatarpipeline.avatar.expired' }]);
      expect((await new UploadStore(doc, TABLE).get(playerId, uploadId))?.status).toBe('expired');

      // A configuration error is one line and exit 1, as for every service.
      const { K_SINK: _sink, ...withoutSink } = env;
      const misconfigured = await run(withoutSink);
      expect(misconfigured.code).toBe(1);
    } finally {
      await new Promise<void>((resolve) => sink.close(() => resolve()));
      await close();
    }
  });
});

describe('the local table', () => {
  it('is rebuilt with the open-uploads index when kept from before it, its items and open uploads carried over', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ap-dynamo-'));
    const table = TABLE;
    const playerId = 'p-old';
    const uploadId = uuidv7();
    try {
      // A data directory from before the index: the table as it was created then, one pending upload.
      const old = await startDynamoServer({ directory: dir, table: 'other' });
      const client = new DynamoDBClient({ region: 'us-east-1', endpoint: old.endpoint, credentials: LOCAL_CREDENTIALS });
      await client.send(
        new CreateTableCommand({
          TableName: table,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'sk', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
        }),
      );
      // dynalite makes a new table ACTIVE a moment later.
      await eventually(async () => ((await client.send(new DescribeTableCommand({ TableName: table }))).Table?.TableStatus === 'ACTIVE' ? true : undefined), 'the old table');
      const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: old.endpoint, credentials: LOCAL_CREDENTIALS });
      const item = { pk: keys.player(playerId), sk: keys.upload(uploadId), playerId, uploadId, status: 'pending', createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' };
      await doc.send(new PutCommand({ TableName: table, Item: item }));
      await doc.send(new PutCommand({ TableName: table, Item: { pk: keys.player(playerId), sk: keys.profile, playerId } }));
      doc.destroy();
      client.destroy();
      await old.close();

      const server = await startDynamoServer({ directory: dir, table });
      const after = new DynamoDBClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: LOCAL_CREDENTIALS });
      const docAfter = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: server.endpoint, credentials: LOCAL_CREDENTIALS });
      try {
        const described = await after.send(new DescribeTableCommand({ TableName: table }));
        expect(described.Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName)).toEqual([OPEN_UPLOADS_INDEX]);
        const { Item } = await docAfter.send(new GetCommand({ TableName: table, Key: { pk: item.pk, sk: item.sk } }));
        expect(Item).toEqual({ ...item, openStatus: 'pending', openSince: item.updatedAt });
        expect((await docAfter.send(new GetCommand({ TableName: table, Key: { pk: item.pk, sk: keys.profile } }))).Item).toBeDefined();
      } finally {
        docAfter.destroy();
        after.destroy();
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
