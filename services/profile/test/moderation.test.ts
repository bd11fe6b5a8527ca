/**
 * The moderators' API against dynalite and s3rver: the review queue (paging, image links, the
 * decisions and what follows them, races, retries of a failed post) and the ban list, with
 * moderator tokens and players' tokens (403 everywhere).
 */
import { randomBytes } from 'node:crypto';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BanList } from '@avatar-pipeline/kit/bans';
import { reviewTimedOut, uploadKey, type ApprovedData, type ModerationLabel } from '@avatar-pipeline/kit/events';
import type { Service } from '@avatar-pipeline/kit/service';
import { itemKeys, keys } from '@avatar-pipeline/kit/table';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import {
  BUCKET,
  TABLE,
  deliver,
  newPlayerId,
  newUploadId,
  objectExists,
  processingUpload,
  profileService,
  putOriginal,
  putRenditions,
  readEvent,
  startStack,
  thumbnailedEvent,
  type Stack,
} from './harness.js';

const MODERATOR = 'mod-1';
const OTHER_MODERATOR = 'mod-2';
const labels: ModerationLabel[] = [{ name: 'Non-Explicit Nudity of Intimate parts and Kissing', confidence: 55.5 }];
const fingerprintOf = () => randomBytes(8).toString('hex');

interface ReviewBody {
  uploadId: string;
  playerId: string;
  status: string;
  labels: ModerationLabel[];
  fingerprint: string;
  requestedAt: string;
  uploadedAt: string;
  imageUrl: string;
  decision?: { by: string; at: string; decision: string; note?: string };
}

describe('moderation API', () => {
  let stack: Stack;
  let service: Service;
  let bans: BanList;
  let owners: UploadOwners;
  let moderator: string;
  let otherModerator: string;
  let player: string;
  const playerId = newPlayerId();

  const call = (method: string, path: string, bearer?: string, body?: unknown) =>
    service.app.request(path, {
      method,
      headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const decide = (uploadId: string, body: unknown, bearer = moderator) => call('POST', `/v1/moderation/reviews/${uploadId}`, bearer, body);
  const sent = () => stack.sink.received.map((r) => readEvent(r.headers, r.body));
  const uploadItem = async (owner: string, uploadId: string) =>
    (await stack.doc.send(new GetCommand({ TableName: TABLE, Key: { pk: keys.player(owner), sk: keys.upload(uploadId) }, ConsistentRead: true }))).Item;

  /** An upload as moderate leaves one in the review band: in_review with its REVIEW item, the original in the bucket, its OWNER item. */
  async function inReview(owner = playerId, uploadId = newUploadId()) {
    const fingerprint = fingerprintOf();
    const uploadedAt = new Date().toISOString();
    const approved: ApprovedData = {
      playerId: owner,
      uploadId,
      uploadedAt,
      bucket: BUCKET,
      key: uploadKey(owner, uploadId),
      eTag: 'etag',
      sha256: randomBytes(32).toString('hex'),
      contentType: 'image/png',
      width: 512,
      height: 512,
      square: { left: 0, top: 0, size: 512 },
      provider: 'nsfwjs',
      labels,
    };
    await processingUpload(stack, owner, uploadId);
    await putOriginal(stack, owner, uploadId);
    const { changed } = await stack.uploads.requestReview({ playerId: owner, uploadId, review: { fingerprint, labels, uploadedAt, approved } });
    expect(changed).toBe(true);
    await owners.put({ uploadId, playerId: owner, fingerprint });
    return { uploadId, fingerprint, approved };
  }

  beforeAll(async () => {
    stack = await startStack();
    service = profileService(stack);
    bans = new BanList(stack.doc, TABLE, () => new Date());
    owners = new UploadOwners(stack.doc, TABLE);
    moderator = await stack.issuer.mint(MODERATOR, { roles: ['moderator'] });
    otherModerator = await stack.issuer.mint(OTHER_MODERATOR, { roles: ['moderator', 'support'] });
    player = await stack.issuer.mint(playerId);
  });
  afterAll(async () => {
    await stack?.close();
  });
  beforeEach(() => {
    stack.sink.received.length = 0;
    stack.sink.state.failNext = 0;
  });

  describe('access', () => {
    const routes: [string, string, unknown?][] = [
      ['GET', '/v1/moderation/reviews'],
      ['GET', `/v1/moderation/reviews/${newUploadId()}`],
      ['POST', `/v1/moderation/reviews/${newUploadId()}`, { decision: 'approve' }],
      ['GET', '/v1/moderation/bans'],
      ['POST', '/v1/moderation/bans', { uploadId: newUploadId() }],
      ['DELETE', '/v1/moderation/bans/0123456789abcdef'],
    ];

    it.each(routes)('%s %s: 403 for a player, 401 without a token', async (method, path, body) => {
      const res = await call(method, path, player, body);
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: 'forbidden' } });
      expect((await call(method, path, undefined, body)).status).toBe(401);
    });

    it('refuses a token whose roles claim is not a list', async () => {
      const odd = await stack.issuer.mint('mod-odd', { roles: 'moderator' });
      expect((await call('GET', '/v1/moderation/reviews', odd)).status).toBe(403);
    });

    it('documents every route in OpenAPI, with the bearer scheme and 403', async () => {
      const doc = (await (await service.app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>> };
      const operations = [
        ['/v1/moderation/reviews', 'get'],
        ['/v1/moderation/reviews/{uploadId}', 'get'],
        ['/v1/moderation/reviews/{uploadId}', 'post'],
        ['/v1/moderation/bans', 'get'],
        ['/v1/moderation/bans', 'post'],
        ['/v1/moderation/bans/{id}', 'delete'],
      ] as const;
      for (const [path, method] of operations) {
        const operation = doc.paths[path]?.[method];
        expect(operation, `${method} ${path}`).toBeDefined();
        expect(operation?.security).toEqual([{ bearer: [] }]);
        expect(Object.keys(operation?.responses ?? {})).toContain('403');
      }
    });
  });

  describe('reviews', () => {
    it('lists the open reviews oldest first, a page at a time, each with a working image link', async () => {
      const owner = newPlayerId();
      const created = [];
      for (let i = 0; i < 3; i++) created.push(await inReview(owner));
      const seen: ReviewBody[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const res = await call('GET', `/v1/moderation/reviews?limit=2${cursor ? `&cursor=${cursor}` : ''}`, moderator);
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        const page = (await res.json()) as { items: ReviewBody[]; cursor?: string };
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items);
        cursor = page.cursor;
        pages += 1;
      } while (cursor && pages < 50);
      const mine = seen.filter((review) => review.playerId === owner);
      expect(mine.map((review) => review.uploadId)).toEqual(created.map((review) => review.uploadId));
      const requested = seen.map((review) => review.requestedAt);
      expect(requested).toEqual([...requested].sort());
      const [first] = mine;
      expect(first).toEqual({
        uploadId: created[0]!.uploadId,
        playerId: owner,
        status: 'open',
        labels,
        fingerprint: created[0]!.fingerprint,
        requestedAt: expect.any(String),
        uploadedAt: created[0]!.approved.uploadedAt,
        imageUrl: expect.stringContaining(`/${BUCKET}/uploads/${owner}/${created[0]!.uploadId}?`),
      });
      const image = await fetch(first!.imageUrl);
      expect(image.status).toBe(200);
      expect(await image.text()).toBe('png');
      expect(new URL(first!.imageUrl).searchParams.get('X-Amz-Expires')).toBe('300');
    });

    it('refuses a cursor it did not hand out, and a limit out of range', async () => {
      const forged = Buffer.from(JSON.stringify({ openStatus: 'pending', openSince: '2026', pk: 'PLAYER#x', sk: 'UPLOAD#y' })).toString('base64url');
      for (const cursor of [forged, 'not-base64-json']) {
        const res = await call('GET', `/v1/moderation/reviews?cursor=${cursor}`, moderator);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: 'invalid_cursor' } });
      }
      expect((await call('GET', '/v1/moderation/reviews?limit=0', moderator)).status).toBe(400);
      expect((await call('GET', '/v1/moderation/reviews?limit=101', moderator)).status).toBe(400);
      expect((await call('GET', '/v1/moderation/reviews?status=approved', moderator)).status).toBe(400);
    });

    it('shows one review; 404 for an upload without one, 400 for a bad id', async () => {
      const { uploadId, fingerprint } = await inReview();
      const res = await call('GET', `/v1/moderation/reviews/${uploadId}`, moderator);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ uploadId, playerId, status: 'open', fingerprint, labels });
      const missing = await call('GET', `/v1/moderation/reviews/${newUploadId()}`, moderator);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
      const bad = await call('GET', '/v1/moderation/reviews/nope', moderator);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: { code: 'invalid_upload_id' } });
    });

    it('approve: records the decision, puts the upload back in processing and posts the approval moderate would have sent', async () => {
      const { uploadId, approved } = await inReview();
      const res = await decide(uploadId, { decision: 'approve', note: 'a beach photo' });
      expect(res.status).toBe(200);
      const body = (await res.json()) as ReviewBody;
      expect(body).toMatchObject({ uploadId, status: 'approved', decision: { by: MODERATOR, decision: 'approve', note: 'a beach photo', at: expect.any(String) } });

      const item = await uploadItem(playerId, uploadId);
      expect(item).toMatchObject({ status: 'processing', openStatus: 'processing', sha256: approved.sha256 });
      expect(item?.['openSince']).toBe(body.decision?.at);
      const [event, ...more] = sent();
      expect(more).toEqual([]);
      expect(event).toMatchObject({ id: `${uploadId}.approved`, type: 'avatarpipeline.avatar.approved', source: '/avatar-pipeline/profile', subject: uploadKey(playerId, uploadId) });
      expect(event?.data).toEqual(approved);
      // Out of the queue, kept with its decision.
      const list = (await (await call('GET', '/v1/moderation/reviews?limit=100', moderator)).json()) as { items: ReviewBody[] };
      expect(list.items.map((review) => review.uploadId)).not.toContain(uploadId);
      expect(await (await call('GET', `/v1/moderation/reviews/${uploadId}`, moderator)).json()).toMatchObject({ status: 'approved', decision: { by: MODERATOR } });
      // The original stays: thumbnail renders it.
      expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(true);
    });

    it('reject: ends the upload rejected, deletes the original, bans the fingerprint and tells the player', async () => {
      const { uploadId, fingerprint } = await inReview();
      const res = await decide(uploadId, { decision: 'reject' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'rejected', decision: { by: MODERATOR, decision: 'reject' } });
      const item = await uploadItem(playerId, uploadId);
      expect(item).toMatchObject({ status: 'rejected', reason: { code: 'moderator' }, labels });
      expect(item?.['openStatus']).toBeUndefined();
      expect(item?.['expiresAt']).toEqual(expect.any(Number));
      expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
      expect(await bans.get(fingerprint)).toMatchObject({ id: fingerprint, fingerprint, uploadId, reason: 'moderator', by: MODERATOR });
      const [event] = sent();
      expect(event).toMatchObject({ id: `${uploadId}.rejected`, type: 'avatarpipeline.avatar.rejected', source: '/avatar-pipeline/profile' });
      expect(event?.data).toEqual({ playerId, uploadId, uploadedAt: expect.any(String), reason: { code: 'moderator', message: 'a moderator rejected this picture' }, labels });
      // The player sees it in the status API.
      const status = await call('GET', `/v1/uploads/${uploadId}`, player);
      expect(await status.json()).toMatchObject({ status: 'rejected', reason: { code: 'moderator' } });
    });

    it('the same decision again answers 200 and posts the same event; another decision is 409', async () => {
      const { uploadId } = await inReview();
      const first = await decide(uploadId, { decision: 'approve' });
      const again = await decide(uploadId, { decision: 'approve', note: 'ignored: the first decision stands' });
      expect(again.status).toBe(200);
      const [a, b] = [(await first.json()) as ReviewBody, (await again.json()) as ReviewBody];
      expect(b.decision).toEqual(a.decision);
      expect(sent().map((event) => [event.id, event.data])).toEqual([
        [`${uploadId}.approved`, sent()[0]!.data],
        [`${uploadId}.approved`, sent()[0]!.data],
      ]);
      for (const [body, bearer] of [
        [{ decision: 'reject' }, moderator],
        [{ decision: 'approve' }, otherModerator],
      ] as const) {
        const res = await decide(uploadId, body, bearer);
        expect(res.status).toBe(409);
        expect(await res.json()).toMatchObject({ error: { code: 'already_decided' } });
      }
      expect(sent()).toHaveLength(2);
    });

    it('of two moderators deciding at once, exactly one wins; the other gets 409', async () => {
      const { uploadId } = await inReview();
      const results = await Promise.all([decide(uploadId, { decision: 'approve' }), decide(uploadId, { decision: 'reject' }, otherModerator)]);
      const statuses = results.map((res) => res.status).sort();
      // A transaction that collided without losing (503, nothing recorded) is retried by the client.
      expect(statuses).toContain(200);
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      const review = (await (await call('GET', `/v1/moderation/reviews/${uploadId}`, moderator)).json()) as ReviewBody;
      const winner = review.decision?.decision;
      expect(sent().map((event) => event.id)).toEqual([`${uploadId}.${winner === 'approve' ? 'approved' : 'rejected'}`]);
      expect((await uploadItem(playerId, uploadId))?.['status']).toBe(winner === 'approve' ? 'processing' : 'rejected');
    });

    it('a decision whose event could not be posted answers 503, and repeating it finishes it', async () => {
      const { uploadId, fingerprint } = await inReview();
      stack.sink.state.failNext = 1;
      const failed = await decide(uploadId, { decision: 'reject' });
      expect(failed.status).toBe(503);
      expect(await failed.json()).toMatchObject({ error: { code: 'decision_incomplete' } });
      // Recorded all the same: nobody else can decide it now.
      expect((await decide(uploadId, { decision: 'approve' }, otherModerator)).status).toBe(409);
      const retried = await decide(uploadId, { decision: 'reject' });
      expect(retried.status).toBe(200);
      expect(sent().map((event) => event.id)).toEqual([`${uploadId}.rejected`]);
      expect(await bans.get(fingerprint)).toBeDefined();
    });

    it('a review whose upload is no longer in review cannot be decided (409), and nothing is written', async () => {
      const { uploadId } = await inReview();
      // The reconciler's review timeout has ended the upload and not yet closed the review.
      const { changed } = await stack.uploads.endOverdue(playerId, uploadId, 'in_review', 'rejected', new Date(Date.now() + 60_000), reviewTimedOut);
      expect(changed).toBe(true);
      const res = await decide(uploadId, { decision: 'approve' });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ error: { code: 'not_in_review' } });
      expect(await (await call('GET', `/v1/moderation/reviews/${uploadId}`, moderator)).json()).toMatchObject({ status: 'open' });
      // Then the reconciler closes the review: nobody decided it.
      await stack.doc.send(
        new UpdateCommand({ TableName: TABLE, Key: itemKeys.review(uploadId), UpdateExpression: 'SET #status = :expired', ExpressionAttributeNames: { '#status': 'status' }, ExpressionAttributeValues: { ':expired': 'expired' } }),
      );
      const expired = await decide(uploadId, { decision: 'reject' });
      expect(expired.status).toBe(409);
      expect(await expired.json()).toEqual({ error: { code: 'already_decided', message: 'the review expired: nobody decided in time' } });
      expect(sent()).toEqual([]);
    });

    it('validates the decision: 404 without a review, 400 for a bad body or id', async () => {
      expect((await decide(newUploadId(), { decision: 'approve' })).status).toBe(404);
      const { uploadId } = await inReview();
      for (const body of [{ decision: 'maybe' }, { decision: 'approve', note: 'x'.repeat(501) }, { decision: 'approve', extra: 1 }, {}]) {
        const res = await decide(uploadId, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(await res.json()).toMatchObject({ error: { code: 'invalid_request' } });
      }
      expect(await (await decide('not-an-id', { decision: 'approve' })).json()).toMatchObject({ error: { code: 'invalid_upload_id' } });
      expect((await decide(uploadId, { decision: 'approve', note: 'x'.repeat(500) })).status).toBe(200);
    });
  });

  describe('bans', () => {
    it('bans an upload by its fingerprint (201, then 200), lists it, lifts it (204, then 404)', async () => {
      const { uploadId, fingerprint } = await inReview();
      const created = await call('POST', '/v1/moderation/bans', moderator, { uploadId });
      expect(created.status).toBe(201);
      const ban = await created.json();
      // No labels: an upload in review keeps its scores on the review, its record has none.
      expect(ban).toEqual({ id: fingerprint, fingerprint, uploadId, reason: 'manual', by: MODERATOR, createdAt: expect.any(String) });
      const again = await call('POST', '/v1/moderation/bans', otherModerator, { uploadId });
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual(ban);

      const listed: unknown[] = [];
      let cursor: string | undefined;
      do {
        const page = (await (await call('GET', `/v1/moderation/bans?limit=100${cursor ? `&cursor=${cursor}` : ''}`, moderator)).json()) as { items: unknown[]; cursor?: string };
        listed.push(...page.items);
        cursor = page.cursor;
      } while (cursor);
      expect(listed).toContainEqual(ban);

      expect((await call('DELETE', `/v1/moderation/bans/${fingerprint}`, moderator)).status).toBe(204);
      expect(await bans.get(fingerprint)).toBeUndefined();
      const gone = await call('DELETE', `/v1/moderation/bans/${fingerprint}`, moderator);
      expect(gone.status).toBe(404);
      expect(await gone.json()).toMatchObject({ error: { code: 'not_found' } });
    });

    it("banning a player's current avatar removes the avatar too", async () => {
      const owner = newPlayerId();
      const uploadId = newUploadId();
      await processingUpload(stack, owner, uploadId);
      await putRenditions(stack, owner, uploadId);
      expect((await deliver(service, '/events', thumbnailedEvent(owner, uploadId, new Date().toISOString()))).status).toBe(200);
      const fingerprint = fingerprintOf();
      await owners.put({ uploadId, playerId: owner, fingerprint });
      const ownerToken = await stack.issuer.mint(owner);
      expect((await call('GET', `/v1/players/${owner}/profile`, ownerToken)).status).toBe(200);

      const res = await call('POST', '/v1/moderation/bans', moderator, { uploadId });
      expect(res.status).toBe(201);
      expect((await call('GET', `/v1/players/${owner}/profile`, ownerToken)).status).toBe(404);
      expect(await objectExists(stack, `avatars/${owner}/${uploadId}/128.webp`)).toBe(false);
      expect(await bans.get(fingerprint)).toMatchObject({ uploadId, reason: 'manual' });
    });

    it('404 for an upload it knows nothing of; 400 for a bad upload id or ban id', async () => {
      const unknown = await call('POST', '/v1/moderation/bans', moderator, { uploadId: newUploadId() });
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ error: { code: 'not_found' } });
      expect((await call('POST', '/v1/moderation/bans', moderator, { uploadId: 'nope' })).status).toBe(400);
      const badId = await call('DELETE', '/v1/moderation/bans/NOT-A-FINGERPRINT', moderator);
      expect(badId.status).toBe(400);
      expect(await badId.json()).toMatchObject({ error: { code: 'invalid_ban_id' } });
    });
  });
});
