/**
 * Trust and safety end to end through the local stack (issue 15's acceptance): a policy whose review
 * band every picture falls in, moderators deciding through the API, the ban list catching a
 * resized and recompressed copy without the model, and erasure leaving nothing of a player, even with
 * an upload in flight. Needs the built services (`npx tsc -b`): the suite fails, not skips, without them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { serviceNames } from '@avatar-pipeline/kit/topology';
import { LOCAL_CREDENTIALS } from '../src/stand-ins/s3.js';
import { LOCAL_TABLE } from '../src/supervision/service-env.js';
import { repoRoot, startStack, type Stack } from '../src/stack.js';
import { requireBuilt } from '../src/test-backends.js';
import { startWebPushTesting, type WebPushTesting } from '../src/stand-ins/web-push-testing.js';
import { ApiClient, eventually, postUpload, type UploadStatus } from './support/api.js';

const photo = (name: string) => readFile(join(repoRoot, 'fixtures', 'photos', name));

/** Every label nsfwjs reports has a review threshold just above zero: every picture goes to review. */
const REVIEW_EVERYTHING = JSON.stringify({
  Explicit: { block: 99.99, review: 0.0001 },
  'Non-Explicit Nudity of Intimate parts and Kissing': { block: 99.99, review: 0.0001 },
});

interface Review {
  uploadId: string;
  playerId: string;
  status: string;
  labels: { name: string; confidence: number }[];
  fingerprint: string;
  imageUrl: string;
  decision?: { by: string; decision: string; note?: string };
}

interface Notification {
  uploadId: string;
  status: string;
  reason?: { code: string };
}

describe('trust and safety through the local stack', () => {
  let dataDir: string;
  let stack: Stack;
  let api: ApiClient;
  let s3: S3Client;
  let doc: DynamoDBDocumentClient;
  let pushService: WebPushTesting;
  let moderator: string;

  beforeAll(async () => {
    requireBuilt(serviceNames);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-safety-'));
    pushService = await startWebPushTesting();
    stack = await startStack({
      dataDir,
      logLevel: 'warn',
      sink: () => {},
      backoffScale: 0.001,
      stopGraceMs: 5000,
      webhookToken: 'safety-test-webhook-token',
      env: { ...process.env, PUSH_ALLOW_HTTP: 'true', PUSH_ALLOWED_HOSTS: pushService.host, MODERATION_POLICY: REVIEW_EVERYTHING },
    });
    api = new ApiClient(stack.gatewayUrl);
    s3 = s3Client({ region: 'us-east-1', s3Endpoint: stack.s3Endpoint, credentials: LOCAL_CREDENTIALS });
    doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: stack.dynamoEndpoint, credentials: LOCAL_CREDENTIALS });
    moderator = await api.token('mod-1', ['moderator']);
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await pushService?.close();
    s3?.destroy();
    doc?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function upload(t: string, file: Uint8Array, contentType: string): Promise<string> {
    const ticket = await api.requestUpload(t, contentType, file.length);
    const res = await postUpload(ticket, file, contentType);
    expect(res.status, await res.clone().text()).toBe(204);
    return ticket.uploadId;
  }

  const statusOf = (t: string, uploadId: string, wanted: UploadStatus['status']) =>
    eventually(async () => {
      const status = await api.status(t, uploadId);
      return status.status === wanted ? status : undefined;
    }, `upload ${uploadId} to be ${wanted}`, 30_000);

  async function device(t: string): Promise<string> {
    const key = await api.json<{ publicKey: string }>('/v1/push/vapid-public-key');
    const { subscription, clientHash } = await pushService.subscribe(key.body.publicKey);
    const res = await api.json('/v1/push/subscriptions', { method: 'POST', token: t, body: JSON.stringify(subscription) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return clientHash;
  }

  const notified = (clientHash: string, uploadId: string, status: string) =>
    eventually(async () => {
      const notes = (await pushService.notifications(clientHash)).map((text) => JSON.parse(text) as Notification);
      return notes.find((n) => n.uploadId === uploadId && n.status === status);
    }, `a ${status} notification for ${uploadId}`, 30_000);

  async function openReview(uploadId: string): Promise<Review> {
    return eventually(async () => {
      const res = await api.json<{ items: Review[] }>('/v1/moderation/reviews?status=open', { token: moderator });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.items.find((r) => r.uploadId === uploadId);
    }, `the review of ${uploadId}`, 30_000);
  }

  const decide = (uploadId: string, decision: 'approve' | 'reject', note: string) =>
    api.json<Review>(`/v1/moderation/reviews/${uploadId}`, { method: 'POST', token: moderator, body: JSON.stringify({ decision, note }) });

  /** Runs of the model so far: the provider's duration histogram counts one per upload it saw. */
  async function modelRuns(): Promise<number> {
    const text = await (await fetch(`${stack.services.moderate}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('avatarpipeline_moderation_duration_seconds_count{'));
    return Number(line?.slice(line.lastIndexOf(' ') + 1) ?? NaN);
  }

  it('keeps a picture in the review band from the player until a moderator approves it; then it is their avatar, with a ready push', async () => {
    const playerId = 'p-review';
    const t = await api.token(playerId);
    const phone = await device(t);
    const uploadId = await upload(t, await photo('leaf.jpg'), 'image/jpeg');

    await statusOf(t, uploadId, 'in_review');
    await notified(phone, uploadId, 'in_review');
    const review = await openReview(uploadId);
    expect(review).toMatchObject({ playerId, status: 'open', fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(review.labels.length).toBeGreaterThan(0);
    // The moderator's short-lived link shows the original.
    const image = await fetch(review.imageUrl);
    expect(image.status).toBe(200);
    expect((await sharp(Buffer.from(await image.arrayBuffer())).metadata()).format).toBe('jpeg');
    // Nothing is served meanwhile, and players cannot reach the moderator API.
    expect((await api.json(`/v1/players/${playerId}/profile`, { token: t })).status).toBe(404);
    expect((await api.json('/v1/moderation/reviews?status=open', { token: t })).status).toBe(403);
    expect((await api.json(`/v1/moderation/reviews/${uploadId}`, { method: 'POST', token: t, body: JSON.stringify({ decision: 'approve' }) })).status).toBe(403);

    const decided = await decide(uploadId, 'approve', 'a leaf');
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    expect(decided.body.decision).toMatchObject({ by: 'mod-1', decision: 'approve', note: 'a leaf' });
    const ready = await statusOf(t, uploadId, 'ready');
    expect(ready.avatar?.thumbnails['128']).toBeTruthy();
    await notified(phone, uploadId, 'ready');
    const profile = await api.json<{ avatar: { thumbnails: Record<string, string> } }>(`/v1/players/${playerId}/profile`, { token: t });
    expect(profile.body.avatar).toEqual(ready.avatar);
    // The decision is on record.
    const recorded = await api.json<Review>(`/v1/moderation/reviews/${uploadId}`, { token: moderator });
    expect(recorded.body).toMatchObject({ status: 'approved', decision: { by: 'mod-1', decision: 'approve' } });
  });

  it('bans what a moderator rejects: the same picture resized to 90% and recompressed at quality 70 is rejected `banned` without the model', async () => {
    const playerId = 'p-banned';
    const t = await api.token(playerId);
    const original = await photo('path.png');
    const uploadId = await upload(t, original, 'image/png');
    await openReview(uploadId);
    const decided = await decide(uploadId, 'reject', 'not allowed here');
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const rejected = await statusOf(t, uploadId, 'rejected');
    expect(rejected.reason?.code).toBe('moderator');

    const bans = await api.json<{ items: { id: string; uploadId: string; reason: string }[] }>('/v1/moderation/bans', { token: moderator });
    expect(bans.body.items).toContainEqual(expect.objectContaining({ uploadId, reason: 'moderator' }));

    const runs = await modelRuns();
    const meta = await sharp(original).metadata();
    const copy = await sharp(original).resize(Math.round(meta.width * 0.9)).jpeg({ quality: 70 }).toBuffer();
    const again = await upload(t, copy, 'image/jpeg');
    const banned = await statusOf(t, again, 'rejected');
    expect(banned.reason?.code).toBe('banned');
    expect(await modelRuns()).toBe(runs);
  });

  it('erases everything of a player, with an upload still in flight, and nothing comes back', async () => {
    const playerId = 'p-erase';
    const t = await api.token(playerId);
    await device(t);
    const first = await upload(t, await photo('autumn.webp'), 'image/webp');
    await openReview(first);
    expect((await decide(first, 'approve', 'fine')).status).toBe(200);
    await statusOf(t, first, 'ready');

    // Another upload is on its way through the pipeline while the player is erased.
    const inFlight = await upload(t, await photo('leaf.jpg'), 'image/jpeg');
    const erased = await api.json<{ playerId: string }>(`/v1/players/${playerId}`, { method: 'DELETE', token: t });
    expect(erased.status, JSON.stringify(erased.body)).toBe(202);
    await stack.idle();
    // A second erasure is harmless, and finds whatever the in-flight upload left.
    expect((await api.json(`/v1/players/${playerId}`, { method: 'DELETE', token: t })).status).toBe(202);
    await stack.idle();

    for (const prefix of [`uploads/${playerId}/`, `avatars/${playerId}/`]) {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'avatars', Prefix: prefix }));
      expect(listed.Contents ?? [], prefix).toEqual([]);
    }
    const items = [];
    for (let start: Record<string, unknown> | undefined; ; ) {
      const page = await doc.send(new ScanCommand({ TableName: LOCAL_TABLE, ...(start ? { ExclusiveStartKey: start } : {}) }));
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
      if (!start) break;
    }
    const mentions = items.filter((item) => JSON.stringify(item).includes(playerId) || [first, inFlight].some((id) => JSON.stringify(item).includes(id)));
    // Only the tombstone remains: it keeps the in-flight upload from writing anything back, and expires.
    expect(mentions.map((item) => `${String(item['pk'])} ${String(item['sk'])}`)).toEqual([`PLAYER#${playerId} ERASED`]);
    expect((await api.json(`/v1/players/${playerId}/profile`, { token: t })).status).toBe(404);
  });
});
