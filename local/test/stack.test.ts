/**
 * End to end through the real stack: the gateway, s3rver, dynalite, the broker and every service
 * as a child process (build first: `npx tsc -b`; the suite fails, naming any service not built).
 * One stack for the whole file; each test uses its own player, so their uploads and rate limits
 * do not meet.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLimits, squareRegion } from '@avatar-pipeline/imaging';
import { hiddenInAlpha, meanDifference, pngBomb, strip, textFile, tileInStrip, truncated } from '@avatar-pipeline/imaging/hostile';
import { apiRouteMethods, apiRoutes } from '@avatar-pipeline/kit/api-routes';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { toBinary } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { EventType, deadLetterSink, serviceNames, triggers } from '@avatar-pipeline/kit/topology';
import { LOCAL_CREDENTIALS } from '../src/stand-ins/s3.js';
import { LOCAL_TABLE } from '../src/supervision/service-env.js';
import { repoRoot, startStack, type Stack, type StackOptions } from '../src/stack.js';
import { requireBuilt } from '../src/test-backends.js';
import { isUploadCreated, type S3Notification } from '../src/stand-ins/notifications.js';
import { startWebPushTesting, type WebPushTesting } from '../src/stand-ins/web-push-testing.js';
import { ApiClient, eventually, postUpload, type UploadStatus } from './support/api.js';

const photo = (name: string) => readFile(join(repoRoot, 'fixtures', 'photos', name));
const WEBHOOK_TOKEN = 'stack-test-webhook-token';

describe('local stack', () => {
  let dataDir: string;
  let stack: Stack;
  let api: ApiClient;
  let s3: S3Client;
  /** The push service emulator every notification of this file goes to. */
  let pushService: WebPushTesting;
  /** Every JSON log line of the stack and its services. */
  const logs: string[] = [];
  const notifications: S3Notification[] = [];
  /** Every token handed out, to prove none reaches a log. */
  const tokens: string[] = [];

  const options = (): StackOptions => ({
    dataDir,
    logLevel: 'info',
    sink: (line) => logs.push(line),
    // The topology's retries span minutes; scaled, a delivery that keeps failing gives up within
    // about a second (processing: 510 s of waits in 0.5 s), dead-letter retries in about two.
    backoffScale: 0.001,
    stopGraceMs: 5000,
    webhookToken: WEBHOOK_TOKEN,
    onS3Event: (n) => notifications.push(n),
    // Local testing only: the emulator's endpoints are http://localhost:<port>.
    env: { ...process.env, PUSH_ALLOW_HTTP: 'true', PUSH_ALLOWED_HOSTS: pushService.host },
  });

  async function token(playerId: string): Promise<string> {
    const t = await api.token(playerId);
    tokens.push(t);
    return t;
  }

  /** Asks for an upload and posts `file` to it; returns the upload id. */
  async function upload(playerId: string, t: string, file: Uint8Array, contentType: string): Promise<string> {
    const ticket = await api.requestUpload(t, contentType, file.length);
    const res = await postUpload(ticket, file, contentType);
    expect(res.status, await res.clone().text()).toBe(204);
    expect(ticket.fields['key']).toBe(uploadKey(playerId, ticket.uploadId));
    return ticket.uploadId;
  }

  async function objectStatus(key: string): Promise<number> {
    try {
      await s3.send(new HeadObjectCommand({ Bucket: 'avatars', Key: key }));
      return 200;
    } catch (err) {
      return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
    }
  }

  /** A counter from a /metrics page: the sample of `name` carrying every one of `labels`. */
  async function metric(baseUrl: string | undefined, name: string, labels: string): Promise<number> {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  }

  beforeAll(async () => {
    requireBuilt(serviceNames);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-stack-'));
    pushService = await startWebPushTesting();
    stack = await startStack(options());
    api = new ApiClient(stack.gatewayUrl);
    s3 = s3Client({ region: 'us-east-1', s3Endpoint: stack.s3Endpoint, credentials: LOCAL_CREDENTIALS });
  });
  afterAll(async () => {
    await stack?.stop();
    await pushService?.close();
    s3?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  describe('foundation', () => {
    it('issues a token, a presigned POST, takes the upload and announces it on the broker', async () => {
      const t = await token('p-foundation');
      const leaf = await photo('leaf.jpg');
      const ticket = await api.requestUpload(t, 'image/jpeg', leaf.length);
      expect(ticket.url).toBe(`${stack.gatewayUrl}/s3/avatars`);
      const res = await postUpload(ticket, leaf, 'image/jpeg');
      expect(res.status).toBe(204);

      const key = uploadKey('p-foundation', ticket.uploadId);
      const emitted = await eventually(
        () =>
          logs
            .map((line) => JSON.parse(line) as Record<string, unknown>)
            .find((l) => l['service'] === 's3-source' && l['subject'] === key && l['msg'] === 'event emitted'),
        's3-source to emit the upload event',
      );
      expect(emitted['ceType']).toBe('com.amazonaws.s3.ObjectCreated:Post');
      expect(await metric(stack.brokerUrl, 'avatarpipeline_broker_events_ingested_total', 'origin="http",outcome="routed"')).toBeGreaterThanOrEqual(1);
    });

    it('answers unknown routes and malformed JSON with JSON errors', async () => {
      const unknown = await api.json<{ error: { code: string } }>('/no/such/route');
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('not_found');

      const t = await token('p-errors');
      const malformed = await api.json<{ error: { code: string } }>('/v1/uploads', { method: 'POST', token: t, body: '{"contentType":' });
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.code).toBe('invalid_json');
      expect(malformed.headers.get('content-type')).toMatch(/^application\/json/);
    });

    it('refuses an upload that breaks its POST policy at the gateway', async () => {
      const t = await token('p-policy');
      const leaf = await photo('leaf.jpg');
      const ticket = await api.requestUpload(t, 'image/jpeg', 1000);
      const res = await postUpload(ticket, leaf, 'image/jpeg');
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/EntityTooLarge/);
      expect(await objectStatus(uploadKey('p-policy', ticket.uploadId))).toBe(404);
    });

    it('serves only derived avatars under /media', async () => {
      expect((await fetch(`${stack.gatewayUrl}/media/avatars/nobody/none/64.webp`)).status).toBe(404);
      // Uploads exist in the same bucket but are never public.
      const t = await token('p-private');
      const leaf = await photo('leaf.jpg');
      const ticket = await api.requestUpload(t, 'image/jpeg', leaf.length);
      await postUpload(ticket, leaf, 'image/jpeg');
      const res = await fetch(`${stack.gatewayUrl}/media/${uploadKey('p-private', ticket.uploadId)}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no such media' } });
      expect((await fetch(`${stack.gatewayUrl}/media/avatars/..%2F${uploadKey('p-private', ticket.uploadId)}`)).status).toBe(404);
    });

    it('takes only presigned POSTs and GETs on /s3: no planting avatars, no reading or deleting objects', async () => {
      const planted = 'avatars/p-planted/0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b/64.webp';
      const put = await fetch(`${stack.gatewayUrl}/s3/avatars/${planted}`, { method: 'PUT', body: 'not moderated', headers: { 'content-type': 'image/webp' } });
      expect(put.status).toBe(405);
      expect(put.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS');
      expect(await objectStatus(planted)).toBe(404);
      expect((await fetch(`${stack.gatewayUrl}/media/${planted}`)).status).toBe(404);

      // Outside uploads/, so the pipeline leaves it alone while the test runs.
      const existing = 'avatars/p-s3-methods/0196b7a4-1c2d-7e3f-8a9b-0c1d2e3f4a5b/64.webp';
      await s3.send(new PutObjectCommand({ Bucket: 'avatars', Key: existing, Body: 'webp', ContentType: 'image/webp' }));
      // Reads without a signature are refused as S3 refuses anonymous ones; DELETE is not a method of /s3.
      for (const [method, status] of [['GET', 403], ['HEAD', 403], ['DELETE', 405]] as const) {
        const res = await fetch(`${stack.gatewayUrl}/s3/avatars/${existing}`, { method });
        expect(res.status, method).toBe(status);
        if (method === 'DELETE') expect(((await res.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
      }
      // A POST that is not a form upload (DeleteObjects) is refused as S3 refuses an anonymous one.
      const deleteObjects = await fetch(`${stack.gatewayUrl}/s3/avatars?delete`, {
        method: 'POST',
        body: `<Delete><Object><Key>${existing}</Key></Object></Delete>`,
        headers: { 'content-type': 'application/xml' },
      });
      expect(deleteObjects.status).toBe(403);
      expect(await objectStatus(existing)).toBe(200);
    });

    it('refuses, at every event endpoint, an event without a delivery token the broker signed for that service', async () => {
      const playerToken = await token('p-forger');
      const forged = toBinary({ id: 'forged-1', source: '/avatar-pipeline/profile', type: EventType.failed, subject: 'uploads/p-forger/x', data: {} });
      const endpoints = new Map([...triggers.map((t) => t.subscriber), deadLetterSink].map((d) => [`${d.service}${d.path}`, d]));
      const running = [...endpoints.values()].filter((d) => stack.services[d.service] !== undefined);
      expect(running.length).toBeGreaterThan(0);
      for (const { service, path } of running) {
        for (const authorization of [undefined, `Bearer ${playerToken}`]) {
          const res = await fetch(`${stack.services[service]}${path}`, {
            method: 'POST',
            headers: { ...forged.headers, ...(authorization ? { authorization } : {}) },
            body: forged.body,
          });
          expect(res.status, `${service}${path}`).toBe(401);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
        }
      }
    });

    it('reports every service ready', async () => {
      const res = await api.json<{ status: string; checks: Record<string, string> }>('/readyz');
      expect(res.status).toBe(200);
      expect(Object.keys(res.body.checks).sort()).toEqual(Object.keys(stack.services).sort());
    });
  });

  describe('processing', () => {
    let player: string;
    let playerToken: string;
    let readyUpload: UploadStatus;

    it('turns a phone photo into public, metadata-free WebP avatars', async () => {
      player = 'p-ready';
      playerToken = await token(player);
      // A phone photo: 750x1200 pixels turned by EXIF orientation 6. Not the cups fixture: the model
      // (MobileNetV2) takes every square crop of it for 'Sexy', and the avatar square is judged too.
      const upright = await sharp(await photo('leaf.jpg')).resize(1200, 750).toBuffer();
      const phonePhoto = await sharp(upright).rotate(270).withMetadata({ orientation: 6 }).jpeg().toBuffer();
      const uploadId = await upload(player, playerToken, phonePhoto, 'image/jpeg');
      readyUpload = await api.settled(playerToken, uploadId);
      expect(readyUpload.status, JSON.stringify(readyUpload)).toBe('ready');

      const profile = await api.json<{ avatar: { thumbnails: Record<string, string>; full: string } }>(`/v1/players/${player}/profile`, { token: playerToken });
      expect(profile.status).toBe(200);
      const { thumbnails, full } = profile.body.avatar;
      expect(Object.keys(thumbnails).sort()).toEqual(['128', '256', '64']);
      for (const [size, url] of Object.entries(thumbnails)) {
        expect(url.startsWith(`${stack.gatewayUrl}/media/avatars/${player}/${uploadId}/`)).toBe(true);
        const res = await fetch(url); // no credentials: a CDN URL
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('image/webp');
        expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
        const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
        expect(meta).toMatchObject({ format: 'webp', width: Number(size), height: Number(size) });
        expect(meta.exif).toBeUndefined();

        const etag = res.headers.get('etag');
        expect(etag).toBeTruthy();
        const again = await fetch(url, { headers: { 'if-none-match': etag! } });
        expect(again.status).toBe(304);
        expect(again.headers.get('etag')).toBe(etag);
      }
      // The original's pixels are 750x1200, shown turned by EXIF orientation 6 (1200x750):
      // `full` is upright, within 1024 px, and clean.
      const fullMeta = await sharp(Buffer.from(await (await fetch(full)).arrayBuffer())).metadata();
      expect(fullMeta).toMatchObject({ format: 'webp', width: 1024, height: 640 });
      expect(fullMeta.exif).toBeUndefined();
    });

    it('handles a duplicated S3 notification once', async () => {
      expect(readyUpload?.status).toBe('ready');
      const key = uploadKey(player, readyUpload.uploadId);
      const notification = notifications.find((n) => JSON.stringify(n).includes(key));
      expect(notification).toBeDefined();
      const before = await api.json<{ updatedAt: string }>(`/v1/players/${player}/profile`, { token: playerToken });
      const counts = () =>
        Promise.all([
          metric(stack.services['s3-source'], 'avatarpipeline_s3source_events_emitted_total', 'input="webhook"'),
          metric(stack.brokerUrl, 'avatarpipeline_broker_deliveries_total', 'trigger="moderate-uploads",outcome="delivered"'),
          metric(stack.services.profile, 'avatarpipeline_profile_updates_total', 'outcome="current"'),
        ]);
      const [emitted, moderated, updates] = await counts();

      // Redelivered as MinIO would: the same notification to s3-source's webhook.
      const res = await fetch(`${stack.services['s3-source']}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${WEBHOOK_TOKEN}` },
        body: JSON.stringify(notification),
      });
      expect(res.status).toBe(200);
      await stack.idle();

      // It went through the pipeline again, and changed nothing.
      expect(await counts()).toEqual([emitted + 1, moderated + 1, updates]);
      const after = await api.json<{ updatedAt: string }>(`/v1/players/${player}/profile`, { token: playerToken });
      expect(after.body.updatedAt).toBe(before.body.updatedAt);
      expect(await api.status(playerToken, readyUpload.uploadId)).toEqual(readyUpload);
    });

    it('keeps an upload ready when its presigned POST is used again, and deletes the later write', async () => {
      const playerId = 'p-reused-ticket';
      const t = await token(playerId);
      const leaf = await photo('leaf.jpg');
      const ticket = await api.requestUpload(t, 'image/jpeg', leaf.length);
      expect((await postUpload(ticket, leaf, 'image/jpeg')).status).toBe(204);
      const ready = await api.settled(t, ticket.uploadId);
      expect(ready.status, JSON.stringify(ready)).toBe('ready');
      const full = async () => Buffer.from(await (await fetch(ready.avatar!.full)).arrayBuffer());
      const avatar = await full();

      // The ticket has not expired: the same POST again, with other bytes within its size range.
      const key = uploadKey(playerId, ticket.uploadId);
      const other = await sharp(leaf).resize(320).jpeg().toBuffer();
      expect((await postUpload(ticket, other, 'image/jpeg')).status).toBe(204);
      await eventually(async () => ((await objectStatus(key)) === 404 ? true : undefined), 'the later write to be deleted');
      await stack.idle();

      // Both writes' notifications delivered again (at least once): still one outcome.
      const both = notifications.filter((n) => n.Records.some(isUploadCreated) && JSON.stringify(n).includes(key));
      expect(both).toHaveLength(2);
      for (const notification of both) {
        const res = await fetch(`${stack.services['s3-source']}/webhook`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${WEBHOOK_TOKEN}` },
          body: JSON.stringify(notification),
        });
        expect(res.status).toBe(200);
      }
      await stack.idle();

      expect(await api.status(t, ticket.uploadId)).toEqual(ready);
      expect((await full()).equals(avatar)).toBe(true);
      expect(await objectStatus(key)).toBe(404);
    });

    it.each([
      ['a truncated JPEG', async () => truncated(await photo('leaf.jpg')), 'image/jpeg'],
      ['a text file sent as image/jpeg', () => Promise.resolve(textFile), 'image/jpeg'],
      ['a PNG decompression bomb', () => Promise.resolve(pngBomb(20_000)), 'image/png'],
    ])('rejects %s and deletes it', async (_name, make, contentType) => {
      const playerId = `p-hostile-${contentType.slice(6)}-${Math.random().toString(36).slice(2, 8)}`;
      const t = await token(playerId);
      const uploadId = await upload(playerId, t, await make(), contentType);
      const result = await api.settled(t, uploadId);
      expect(result.status, JSON.stringify(result)).toBe('rejected');
      expect(result.reason?.code).toMatch(/^[a-z_]+$/);
      expect(result.reason?.message).toBeTruthy();
      expect(await objectStatus(uploadKey(playerId, uploadId))).toBe(404);
    });

    it('shows the model a transparent upload on black and on white, and keeps its alpha in the avatars', async () => {
      const playerId = 'p-alpha';
      const t = await token(playerId);
      const views = () =>
        Promise.all(['whole', 'square'].flatMap((region) => ['black', 'white'].map((bg) => metric(stack.services.moderate, 'avatarpipeline_moderation_views_total', `region="${region}",background="${bg}"`))));
      const before = await views();
      // White colour channels, the leaf in the alpha channel: blank on white, the leaf on black.
      const uploadId = await upload(playerId, t, await hiddenInAlpha(await photo('leaf.jpg')), 'image/png');
      const result = await api.settled(t, uploadId);
      expect(result.status, JSON.stringify(result)).toBe('ready');
      expect((await views()).map((n, i) => n - before[i]!)).toEqual([1, 1, 1, 1]);
      const profile = await api.json<{ avatar: { thumbnails: Record<string, string> } }>(`/v1/players/${playerId}/profile`, { token: t });
      for (const url of Object.values(profile.body.avatar.thumbnails)) {
        expect(await sharp(Buffer.from(await (await fetch(url)).arrayBuffer())).metadata(), url).toMatchObject({ format: 'webp', hasAlpha: true });
      }
    });

    it('refuses an image longer than IMAGE_MAX_ASPECT, and serves as the avatar square exactly the region the model saw', async () => {
      const playerId = 'p-strip';
      const t = await token(playerId);
      const tooLong = await sharp(await photo('leaf.jpg')).resize(1500, 300, { fit: 'fill' }).jpeg().toBuffer();
      const refused = await api.settled(t, await upload(playerId, t, tooLong, 'image/jpeg'));
      expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'aspect_ratio' } });

      const image = await tileInStrip();
      const uploadId = await upload(playerId, t, image, 'image/png');
      const result = await api.settled(t, uploadId);
      expect(result.status, JSON.stringify(result)).toBe('ready');
      const region = await squareRegion(image, { width: strip.width, height: strip.height }, 'attention', defaultLimits);
      expect(region).toMatchObject({ left: strip.tileLeft, size: strip.height });
      const profile = await api.json<{ avatar: { thumbnails: Record<string, string> } }>(`/v1/players/${playerId}/profile`, { token: t });
      // Compared at 32 px: the tile is noise, which lossy WebP cannot keep pixel for pixel.
      const small = (img: Sharp) => img.resize(32, 32).removeAlpha().raw().toBuffer();
      const served = await small(sharp(Buffer.from(await (await fetch(profile.body.avatar.thumbnails['256']!)).arrayBuffer())));
      const cut = (left: number) => small(sharp(image).extract({ left, top: 0, width: region.size, height: region.size }));
      expect(meanDifference(served, await cut(region.left))).toBeLessThan(6);
      // The flat grey left of the tile is told apart: the comparison is not lenient.
      expect(meanDifference(served, await cut(0))).toBeGreaterThan(20);
    });

    it('fails an upload whose processing keeps failing, through the dead-letter sink', async () => {
      const playerId = 'p-dead-letter';
      const t = await token(playerId);
      // Issued but never uploaded: moderate's approval is on the record, as after a crash between
      // approving and the object's loss, but thumbnail cannot find the object the event names.
      const ticket = await api.requestUpload(t, 'image/jpeg', 1000);
      const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: stack.dynamoEndpoint, credentials: LOCAL_CREDENTIALS });
      expect((await new UploadStore(doc, LOCAL_TABLE).approve(playerId, ticket.uploadId, '0'.repeat(64))).approved).toBe(true);
      doc.destroy();
      const approved = toBinary({
        id: `${ticket.uploadId}.approved`,
        source: '/avatar-pipeline/moderate',
        type: EventType.approved,
        subject: uploadKey(playerId, ticket.uploadId),
        data: {
          playerId,
          uploadId: ticket.uploadId,
          uploadedAt: new Date().toISOString(),
          bucket: 'avatars',
          key: uploadKey(playerId, ticket.uploadId),
          eTag: '0123456789abcdef0123456789abcdef',
          sha256: '0'.repeat(64),
          contentType: 'image/jpeg',
          width: 640,
          height: 480,
          provider: 'test',
          labels: [],
        },
      });
      const res = await fetch(stack.brokerUrl, { method: 'POST', headers: approved.headers, body: approved.body });
      expect(res.status).toBe(202);
      const result = await api.settled(t, ticket.uploadId);
      expect(result.status, JSON.stringify(result)).toBe('failed');
      expect(result.reason?.code).toBe('processing_failed');
      await stack.idle();
      expect(await metric(stack.brokerUrl, 'avatarpipeline_broker_deliveries_total', 'trigger="thumbnail-approved",outcome="dead_lettered"')).toBe(1);
    });
  });

  describe('web push', () => {
    interface Notification {
      type: string;
      uploadId: string;
      status: string;
      title: string;
      body: string;
      icon?: string;
      avatar?: { thumbnails: Record<string, string> };
      reason?: { code: string };
    }
    const received = async (clientHash: string) =>
      (await pushService.notifications(clientHash)).map((text) => JSON.parse(text) as Notification);

    async function device(t: string): Promise<string> {
      const key = await api.json<{ publicKey: string }>('/v1/push/vapid-public-key');
      expect(key.status).toBe(200);
      const { subscription, clientHash } = await pushService.subscribe(key.body.publicKey);
      const res = await api.json('/v1/push/subscriptions', { method: 'POST', token: t, body: JSON.stringify(subscription) });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return clientHash;
    }

    it('tells every device of the player the outcome, once, and prunes expired subscriptions', async () => {
      const playerId = 'p-push';
      const t = await token(playerId);
      const [phone, laptop] = [await device(t), await device(t)];

      const uploadId = await upload(playerId, t, await photo('leaf.jpg'), 'image/jpeg');
      const ready = await api.settled(t, uploadId);
      expect(ready.status).toBe('ready');
      for (const clientHash of [phone, laptop]) {
        const [note, ...more] = await eventually(async () => {
          const list = await received(clientHash);
          return list.length > 0 ? list : undefined;
        }, 'the ready notification to arrive, decrypted');
        expect(more).toEqual([]);
        expect(note).toMatchObject({ type: 'avatar.ready', uploadId, status: 'ready', icon: ready.avatar?.thumbnails['128'] });
        expect(note?.title).toBeTruthy();
      }

      // The broker redelivers the same ready event: nobody is told twice.
      const again = toBinary({
        id: `${uploadId}.ready`,
        source: '/avatar-pipeline/profile',
        type: EventType.ready,
        subject: uploadKey(playerId, uploadId),
        data: { playerId, uploadId, uploadedAt: new Date().toISOString(), avatar: ready.avatar },
      });
      expect((await fetch(stack.brokerUrl, { method: 'POST', headers: again.headers, body: again.body })).status).toBe(202);
      await stack.idle();
      expect(await received(phone)).toHaveLength(1);
      expect(await received(laptop)).toHaveLength(1);

      // The laptop's subscription expires at the push service: the next outcome prunes it.
      await pushService.expire(laptop);
      const pruned = () => metric(stack.services.push, 'avatarpipeline_push_subscriptions_pruned_total', 'reason="gone"');
      const prunedBefore = await pruned();
      const rejectedId = await upload(playerId, t, textFile, 'image/jpeg');
      expect((await api.settled(t, rejectedId)).status).toBe('rejected');
      const note = await eventually(async () => (await received(phone)).find((n) => n.uploadId === rejectedId), 'the rejection to reach the phone');
      expect(note).toMatchObject({ type: 'avatar.rejected', status: 'rejected', reason: { code: 'unsupported_format' } });
      await stack.idle();
      await eventually(async () => ((await pruned()) === prunedBefore + 1 ? true : undefined), 'the expired subscription to be pruned');
    });
  });

  describe('restart', () => {
    it('keeps objects, table and issuer key', async () => {
      const playerId = 'p-restart';
      const t = await token(playerId);
      const uploadId = await upload(playerId, t, await photo('leaf.jpg'), 'image/jpeg');
      expect((await api.settled(t, uploadId)).status).toBe('ready');
      const jwks = await (await fetch(`${stack.gatewayUrl}/.well-known/jwks.json`)).json();

      await stack.stop();
      stack = await startStack(options());
      api = new ApiClient(stack.gatewayUrl);
      s3.destroy();
      s3 = s3Client({ region: 'us-east-1', s3Endpoint: stack.s3Endpoint, credentials: LOCAL_CREDENTIALS });

      expect(await (await fetch(`${stack.gatewayUrl}/.well-known/jwks.json`)).json()).toEqual(jwks);
      // The gateway's port (part of the issuer) is new, so a new token; the data is the old one.
      const fresh = await token(playerId);
      const profile = await api.json<{ avatar: { thumbnails: Record<string, string> } }>(`/v1/players/${playerId}/profile`, { token: fresh });
      expect(profile.status).toBe(200);
      expect((await api.status(fresh, uploadId)).status).toBe('ready');
      const thumbnail = profile.body.avatar.thumbnails['64']!;
      expect(await objectStatus(thumbnail.slice(thumbnail.indexOf('/media/') + '/media/'.length))).toBe(200);
    });
  });

  it('describes exactly the public API at /openapi.json (OpenAPI 3.1, from the services) and shows it at /docs', async () => {
    const res = await fetch(`${stack.gatewayUrl}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { security?: unknown[] }>>; components: { securitySchemes: Record<string, unknown> } };
    expect(doc.openapi).toBe('3.1.0');
    const described = Object.entries(doc.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
    expect(described.sort()).toEqual(
      [
        'DELETE /v1/moderation/bans/{id}',
        'DELETE /v1/players/{playerId}',
        'DELETE /v1/players/{playerId}/avatar',
        'DELETE /v1/push/subscriptions',
        'GET /v1/moderation/bans',
        'GET /v1/moderation/reviews',
        'GET /v1/moderation/reviews/{uploadId}',
        'GET /v1/players/{playerId}/profile',
        'GET /v1/push/vapid-public-key',
        'GET /v1/uploads/{uploadId}',
        'POST /v1/moderation/bans',
        'POST /v1/moderation/reviews/{uploadId}',
        'POST /v1/push/subscriptions',
        'POST /v1/uploads',
      ].sort(),
    );
    // Every described operation is one the gateway routes to the service that describes it.
    for (const entry of described) {
      const [method, path] = entry.split(' ') as [string, string];
      const concrete = path.replace(/\{[^}]+\}/g, 'x');
      const route = apiRoutes.find((r) => (r.match === 'exact' ? r.path === concrete : concrete.startsWith(r.path)));
      expect(route, entry).toBeDefined();
      expect(apiRouteMethods(route!), entry).toContain(method);
    }
    expect(Object.keys(doc.components.securitySchemes)).toEqual(['bearer']);
    expect(doc.paths['/v1/uploads']!['post']!.security).toEqual([{ bearer: [] }]);
    const page = await fetch(`${stack.gatewayUrl}/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/docs/swagger-ui-bundle.js');
    expect((await fetch(`${stack.gatewayUrl}/docs/swagger-ui-bundle.js`)).status).toBe(200);
  });

  it('never logs a token', () => {
    expect(tokens.length).toBeGreaterThan(3);
    expect(logs.length).toBeGreaterThan(50);
    const leaks = logs.filter((line) => tokens.some((t) => line.includes(t)) || line.includes(WEBHOOK_TOKEN));
    expect(leaks).toEqual([]);
    // Every line is JSON naming its service.
    for (const line of logs) expect(typeof (JSON.parse(line) as { service?: unknown }).service).toBe('string');
  });
});
