/**
 * The reconciler against real stand-ins (dynalite with the open-uploads index, s3rver, an HTTP
 * sink for K_SINK), with a clock the tests move: abandoned tickets end expired, stuck processing
 * ends failed (timeout), each announced once with a deterministic id, orphans under uploads/ go,
 * and a second pass changes nothing.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { itemKeys, TTL_ATTRIBUTE, type OpenUpload, type UploadStore } from '@avatar-pipeline/kit/table';
import { EventType, processingWorstCaseMs, uploadDeliveryWorstCaseMs } from '@avatar-pipeline/kit/topology';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { metricValue } from '@avatar-pipeline/kit/testing';
import { DEFAULT_PENDING_TIMEOUT_SECONDS, DEFAULT_PROCESSING_TIMEOUT_SECONDS, MAX_RETENTION_SECONDS, MAX_TIMEOUT_SECONDS, reconcileEnv, reconcileTimeoutsEnv, reconcileTimerEnv, timeoutWarnings } from '../src/reconcile-config.js';
import { ProfileStore } from '../src/profiles.js';
import { reconcile, reconcilerMetrics, startReconcileTimer, type ReconcileDeps } from '../src/reconcile.js';
import {
  BUCKET,
  TABLE,
  deliver,
  existing,
  newPlayerId,
  newUploadId,
  objectExists,
  profileService,
  putOriginal,
  putRenditions,
  readEvent,
  startStack,
  storesOf,
  testClock,
  thumbnailedEvent,
  type Stack,
} from './harness.js';

const PENDING_TIMEOUT = 600;
const PROCESSING_TIMEOUT = 1800;
const logger = createLogger('reconciler-test', 'silent');

describe('reconcile', () => {
  let stack: Stack;
  let clock: ReturnType<typeof testClock>;
  let uploads: UploadStore;
  let registry: Registry;
  let deps: ReconcileDeps;

  beforeEach(async () => {
    // A stack per test: a pass looks at the whole index and the whole uploads/ prefix.
    stack = await startStack();
    clock = testClock();
    const stores = storesOf(stack, clock.fn);
    uploads = stores.uploads;
    registry = new Registry();
    deps = {
      stores,
      objects: stack.objects,
      sink: stack.sink.url,
      pendingTimeoutSeconds: PENDING_TIMEOUT,
      processingTimeoutSeconds: PROCESSING_TIMEOUT,
      reviewTimeoutSeconds: 86_400,
      avatarRetainSeconds: 86_400,
      metrics: reconcilerMetrics(registry),
      logger,
      clock: clock.fn,
    };
  });
  afterEach(async () => {
    await stack?.close();
  });

  const sent = () => stack.sink.received.map((r) => readEvent(r.headers, r.body));
  const metric = (name: string, labels: Record<string, string> = {}) => metricValue(registry, name, labels);
  /** A ticket issued now, valid for five minutes. */
  async function ticket(playerId: string, uploadId: string) {
    await uploads.createPending({ playerId, uploadId, contentType: 'image/png', maxBytes: 1024, ticketExpiresAt: new Date(clock.now + 300_000).toISOString() });
  }

  it('ends a pending upload expired once its ticket expired more than the grace ago, deletes a late object, and tells the player once', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await ticket(playerId, uploadId);
    const issuedAt = new Date(clock.now).toISOString();

    // The ticket expired, but the grace has not passed: an upload begun in time may still arrive.
    clock.advance(300_000 + PENDING_TIMEOUT * 1000 - 1000);
    expect(await reconcile(deps)).toMatchObject({ expired: 0, errors: 0, oldestOpenSeconds: { pending: 300 + PENDING_TIMEOUT - 1 } });
    expect((await uploads.get(playerId, uploadId))?.status).toBe('pending');

    clock.advance(2000);
    // A late upload landed (S3 took it; its event may come later, or never).
    await putOriginal(stack, playerId, uploadId);
    const summary = await reconcile(deps);
    expect(summary).toMatchObject({ expired: 1, timedOut: 0, reannounced: 0, skipped: 0, errors: 0, orphansDeleted: { no_record: 0, ended: 0, invalid_key: 0 } });
    expect(summary.oldestOpenSeconds).toEqual({});
    const record = await uploads.get(playerId, uploadId);
    expect(record).toMatchObject({ status: 'expired', reason: { code: 'expired' }, updatedAt: new Date(clock.now).toISOString() });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(sent()).toEqual([
      {
        id: `${uploadId}.expired`,
        type: EventType.expired,
        source: '/avatar-pipeline/profile',
        subject: uploadKey(playerId, uploadId),
        data: { playerId, uploadId, createdAt: issuedAt, reason: record?.reason },
      },
    ]);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total', { reason: 'expired' })).toBe(1);
    expect(await metric('avatarpipeline_reconciler_oldest_open_upload_seconds', { status: 'pending' })).toBe(0);

    // Idempotent: a re-run (or a second reconciler) changes and announces nothing.
    clock.advance(60_000);
    expect(await reconcile(deps)).toMatchObject({ expired: 0, timedOut: 0, reannounced: 0, skipped: 0, errors: 0 });
    expect(sent()).toHaveLength(1);
    expect(await uploads.get(playerId, uploadId)).toEqual(record);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total')).toBe(1);
    expect(await metric('avatarpipeline_reconciler_runs_total', { outcome: 'ok' })).toBe(3);
  });

  it('fails an upload stuck processing with reason timeout, deletes its original and renditions, and announces failed', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await ticket(playerId, uploadId);
    const issuedAt = new Date(clock.now).toISOString();
    clock.advance(10_000);
    await uploads.markProcessing(playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    // Thumbnail rendered, then the thumbnailed event was lost.
    const renditions = await putRenditions(stack, playerId, uploadId);

    clock.advance(PROCESSING_TIMEOUT * 1000 - 1000);
    expect(await reconcile(deps)).toMatchObject({ timedOut: 0, oldestOpenSeconds: { processing: 10 + PROCESSING_TIMEOUT - 1 } });
    expect((await uploads.get(playerId, uploadId))?.status).toBe('processing');
    expect(sent()).toEqual([]);

    clock.advance(2000);
    expect(await reconcile(deps)).toMatchObject({ expired: 0, timedOut: 1, errors: 0 });
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'failed', reason: { code: 'timeout' } });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(await existing(stack, renditions)).toEqual([false, false, false, false]);
    const [event, ...more] = sent();
    expect(more).toEqual([]);
    expect(event).toMatchObject({ id: `${uploadId}.failed`, type: EventType.failed, data: { playerId, uploadId, uploadedAt: issuedAt, reason: { code: 'timeout' } } });
    expect(event?.data).not.toHaveProperty('failedEventType');
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total', { reason: 'timeout' })).toBe(1);

    expect(await reconcile(deps)).toMatchObject({ timedOut: 0, reannounced: 0, skipped: 0 });
    expect(sent()).toHaveLength(1);
  });

  it('leaves alone an overdue upload the pipeline moved on or ended meanwhile (the index lags)', async () => {
    const playerId = newPlayerId();
    const [moved, ended] = [newUploadId(), newUploadId()];
    await ticket(playerId, moved);
    await ticket(playerId, ended);
    // What a stale index page still shows: both pending, long overdue.
    const stale: OpenUpload[] = [];
    for await (const open of uploads.openUploads('pending')) stale.push(open);
    clock.advance(3600_000);
    await uploads.markProcessing(playerId, moved);
    await uploads.finish(playerId, ended, 'ready');
    vi.spyOn(uploads, 'openUploads').mockImplementation(async function* (status) {
      if (status === 'pending') yield* stale;
    });
    expect(await reconcile(deps)).toMatchObject({ expired: 0, skipped: 2, errors: 0 });
    expect((await uploads.get(playerId, moved))?.status).toBe('processing');
    expect((await uploads.get(playerId, ended))?.status).toBe('ready');
    expect(sent()).toEqual([]);
  });

  it('ends every overdue upload in one pass across index pages, as entries leave the index behind it', async () => {
    const playerId = newPlayerId();
    const ids = Array.from({ length: 7 }, () => newUploadId());
    for (const id of ids) await ticket(playerId, id);
    clock.advance(3600_000);
    const openUploads = uploads.openUploads.bind(uploads);
    vi.spyOn(uploads, 'openUploads').mockImplementation((status, before) => openUploads(status, before, 2));
    expect(await reconcile(deps)).toMatchObject({ expired: 7, errors: 0 });
    expect(sent().map((e) => e.id).sort()).toEqual(ids.map((id) => `${id}.expired`).sort());
    expect(await reconcile(deps)).toMatchObject({ expired: 0, reannounced: 0, skipped: 0 });
  });

  it('announces on the next pass an end whose announcement failed, then lets it go', async () => {
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await ticket(playerId, uploadId);
    clock.advance(3600_000);
    stack.sink.state.failNext = 1;
    expect(await reconcile(deps)).toMatchObject({ expired: 1, errors: 1 });
    expect((await uploads.get(playerId, uploadId))?.status).toBe('expired');
    expect(sent()).toEqual([]);
    expect(await metric('avatarpipeline_reconciler_runs_total', { outcome: 'error' })).toBe(1);
    expect(await metric('avatarpipeline_reconciler_last_success_timestamp_seconds')).toBe(0);

    expect(await reconcile(deps)).toMatchObject({ expired: 0, reannounced: 1, errors: 0 });
    expect(sent().map((e) => e.id)).toEqual([`${uploadId}.expired`]);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total')).toBe(1);
    expect(await metric('avatarpipeline_reconciler_last_success_timestamp_seconds')).toBe(clock.now / 1000);

    expect(await reconcile(deps)).toMatchObject({ expired: 0, reannounced: 0, errors: 0 });
    expect(sent()).toHaveLength(1);
  });

  it('deletes objects under uploads/ that nothing will handle, and only those', async () => {
    const playerId = newPlayerId();
    const [open, done] = [newUploadId(), newUploadId()];
    await ticket(playerId, open);
    await ticket(playerId, done);
    await uploads.finish(playerId, done, 'rejected', { reason: { code: 'corrupt', message: 'x' } });
    const keys = {
      open: uploadKey(playerId, open),
      done: uploadKey(playerId, done),
      noRecord: uploadKey(playerId, newUploadId()),
      invalid: 'uploads/junk.txt',
      avatar: `avatars/${playerId}/${done}/64.webp`,
    };
    for (const key of Object.values(keys)) await stack.objects.put(key, Buffer.from('x'), { contentType: 'application/octet-stream' });

    expect(await reconcile(deps)).toMatchObject({ expired: 0, errors: 0, orphansDeleted: { no_record: 1, ended: 1, invalid_key: 1 } });
    expect(await existing(stack, [keys.open, keys.done, keys.noRecord, keys.invalid, keys.avatar])).toEqual([true, false, false, false, true]);
    expect(await metric('avatarpipeline_reconciler_orphans_deleted_total')).toBe(3);
    expect(await reconcile(deps)).toMatchObject({ orphansDeleted: { no_record: 0, ended: 0, invalid_key: 0 } });
    expect(sent()).toEqual([]);
  });

  it("deletes a superseded avatar's objects and OWNER item AVATAR_RETAIN_SECONDS after a newer one became current, never the current one's", async () => {
    const RETAIN = 3600;
    deps = { ...deps, avatarRetainSeconds: RETAIN };
    const service = profileService(stack, { clock: clock.fn });
    const owners = new UploadOwners(stack.doc, TABLE);
    const playerId = newPlayerId();
    const [first, late, current] = [newUploadId(3_000), newUploadId(2_000), newUploadId(1_000)];
    const renditions: Record<string, string[]> = {};
    async function ready(uploadId: string) {
      await ticket(playerId, uploadId);
      await uploads.markProcessing(playerId, uploadId);
      await owners.put({ uploadId, playerId, fingerprint: '0123456789abcdef' });
      renditions[uploadId] = await putRenditions(stack, playerId, uploadId);
      expect((await deliver(service, '/events', thumbnailedEvent(playerId, uploadId, new Date(clock.now).toISOString()))).status).toBe(200);
    }
    const item = async (uploadId: string) =>
      (await stack.doc.send(new GetCommand({ TableName: TABLE, Key: itemKeys.upload(playerId, uploadId), ConsistentRead: true }))).Item;

    await ready(first);
    // The current avatar's record is kept while it is (no TTL): it will carry the deletion's date.
    expect(await item(first)).not.toHaveProperty(TTL_ATTRIBUTE);
    clock.advance(1_000);
    await ready(current);
    const supersededAt = new Date(clock.now).toISOString();
    expect(await item(first)).toMatchObject({ openStatus: 'superseded', openSince: supersededAt, supersededAt, [TTL_ATTRIBUTE]: expect.any(Number) });
    expect(await item(current)).not.toHaveProperty(TTL_ATTRIBUTE);
    // An older upload finishing late is never current: superseded at once.
    clock.advance(1_000);
    await ready(late);
    expect(await item(late)).toMatchObject({ openStatus: 'superseded', openSince: new Date(clock.now).toISOString() });

    // Kept for the retention (CDN caches may still serve them), then deleted one by one as each is due.
    clock.advance(RETAIN * 1000 - 1_000);
    expect(await reconcile(deps)).toMatchObject({ avatarsDeleted: 0, errors: 0 });
    expect(await existing(stack, renditions[first]!)).toEqual([true, true, true, true]);
    clock.advance(500);
    expect(await reconcile(deps)).toMatchObject({ avatarsDeleted: 1, errors: 0 });
    expect(await existing(stack, renditions[first]!)).toEqual([false, false, false, false]);
    expect(await existing(stack, renditions[late]!)).toEqual([true, true, true, true]);
    clock.advance(1_000);
    expect(await reconcile(deps)).toMatchObject({ avatarsDeleted: 1, errors: 0 });
    expect(await existing(stack, renditions[late]!)).toEqual([false, false, false, false]);

    expect(await existing(stack, renditions[current]!)).toEqual([true, true, true, true]);
    expect(await owners.get(first)).toBeUndefined();
    expect(await owners.get(late)).toBeUndefined();
    expect(await owners.get(current)).toBeDefined();
    // Out of the index; the records expire like any finished one.
    for (const id of [first, late]) {
      expect(await item(id)).not.toHaveProperty('openStatus');
      // The status API no longer lists URLs that are gone.
      expect(await item(id)).not.toHaveProperty('avatar');
    }
    expect(await item(current)).toHaveProperty('avatar');
    expect(await metric('avatarpipeline_reconciler_superseded_avatars_deleted_total')).toBe(2);
    clock.advance(RETAIN * 1000);
    expect(await reconcile(deps)).toMatchObject({ avatarsDeleted: 0, errors: 0 });
    expect((await new ProfileStore(stack.doc, TABLE).get(playerId))?.avatarUploadId).toBe(current);
  });

  it('rejects an upload left in review past REVIEW_TIMEOUT_SECONDS: review expired, original deleted, rejected announced once', async () => {
    const REVIEW_TIMEOUT = 7200;
    // Longer than the review, so only the review's own timeout can end it.
    deps = { ...deps, reviewTimeoutSeconds: REVIEW_TIMEOUT, processingTimeoutSeconds: 3 * REVIEW_TIMEOUT };
    const playerId = newPlayerId();
    const uploadId = newUploadId();
    await ticket(playerId, uploadId);
    await uploads.markProcessing(playerId, uploadId);
    await putOriginal(stack, playerId, uploadId);
    const uploadedAt = new Date(clock.now - 1_000).toISOString();
    const label = { name: 'Suggestive', confidence: 62 };
    const approved = {
      playerId,
      uploadId,
      uploadedAt,
      bucket: BUCKET,
      key: uploadKey(playerId, uploadId),
      eTag: 'etag',
      sha256: 'a'.repeat(64),
      contentType: 'image/png' as const,
      width: 512,
      height: 512,
      provider: 'nsfwjs',
      labels: [label],
    };
    expect((await uploads.requestReview({ playerId, uploadId, review: { fingerprint: '0123456789abcdef', labels: [label], uploadedAt, approved } })).changed).toBe(true);
    const review = async () => (await stack.doc.send(new GetCommand({ TableName: TABLE, Key: itemKeys.review(uploadId), ConsistentRead: true }))).Item;

    clock.advance(REVIEW_TIMEOUT * 1000 - 1_000);
    expect(await reconcile(deps)).toMatchObject({ reviewsExpired: 0, errors: 0, oldestOpenSeconds: { in_review: REVIEW_TIMEOUT - 1 } });
    expect((await uploads.get(playerId, uploadId))?.status).toBe('in_review');

    // The announcement fails once: the next pass announces it.
    clock.advance(2_000);
    stack.sink.state.failNext = 1;
    expect(await reconcile(deps)).toMatchObject({ reviewsExpired: 1, errors: 1 });
    expect(await uploads.get(playerId, uploadId)).toMatchObject({ status: 'rejected', reason: { code: 'review_timeout' } });
    expect(await review()).toMatchObject({ status: 'expired', expiredAt: new Date(clock.now).toISOString() });
    expect(await objectExists(stack, uploadKey(playerId, uploadId))).toBe(false);
    expect(sent()).toEqual([]);

    expect(await reconcile(deps)).toMatchObject({ reviewsExpired: 0, reannounced: 1, errors: 0 });
    expect(sent()).toEqual([
      {
        id: `${uploadId}.rejected`,
        type: EventType.rejected,
        source: '/avatar-pipeline/profile',
        subject: uploadKey(playerId, uploadId),
        data: { playerId, uploadId, uploadedAt, reason: { code: 'review_timeout', message: expect.any(String) } },
      },
    ]);
    expect(await metric('avatarpipeline_reconciler_uploads_ended_total', { reason: 'review_timeout' })).toBe(1);
    expect(await reconcile(deps)).toMatchObject({ reviewsExpired: 0, reannounced: 0, errors: 0 });
    expect(sent()).toHaveLength(1);
    expect((await review())?.['status']).toBe('expired');
  });

  it('runs on a timer until stopped, never two passes at once', async () => {
    let running = 0;
    let most = 0;
    let passes = 0;
    const timer = startReconcileTimer(
      async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 15));
        passes += 1;
        running -= 1;
      },
      5,
      logger,
    );
    await new Promise((r) => setTimeout(r, 120));
    await timer.stop();
    const stoppedAt = passes;
    await new Promise((r) => setTimeout(r, 40));
    expect(stoppedAt).toBeGreaterThanOrEqual(2);
    expect(passes).toBe(stoppedAt);
    expect(most).toBe(1);
  });
});

describe('reconciler settings', () => {
  it('refuse timeouts the records would not outlive', () => {
    expect(loadConfig(reconcileTimeoutsEnv, {})).toEqual({
      UPLOAD_PENDING_TIMEOUT_SECONDS: 3600,
      UPLOAD_PROCESSING_TIMEOUT_SECONDS: 7200,
      REVIEW_TIMEOUT_SECONDS: 86_400,
      AVATAR_RETAIN_SECONDS: 86_400,
    });
    expect(() => loadConfig(reconcileTimeoutsEnv, { AVATAR_RETAIN_SECONDS: String(MAX_RETENTION_SECONDS + 1) })).toThrow(/AVATAR_RETAIN_SECONDS: must be at most 1728000/);
    expect(() => loadConfig(reconcileTimeoutsEnv, { REVIEW_TIMEOUT_SECONDS: '0' })).toThrow(/REVIEW_TIMEOUT_SECONDS/);
    expect(loadConfig(reconcileTimeoutsEnv, { UPLOAD_PENDING_TIMEOUT_SECONDS: '2' })).toMatchObject({ UPLOAD_PENDING_TIMEOUT_SECONDS: 2 });
    expect(loadConfig(reconcileTimerEnv, { RECONCILE_PERIOD_SECONDS: '0.5' })).toEqual({ RECONCILE_PERIOD_SECONDS: 0.5 });
    expect(() => loadConfig(reconcileTimeoutsEnv, { UPLOAD_PROCESSING_TIMEOUT_SECONDS: String(MAX_TIMEOUT_SECONDS + 1) })).toThrow(/UPLOAD_PROCESSING_TIMEOUT_SECONDS: must be at most 72000/);
    expect(() => loadConfig(reconcileEnv, {})).toThrow('invalid configuration: K_SINK is required');
  });

  it('default to timeouts longer than the pipeline itself can take, and warn about shorter ones', () => {
    expect(DEFAULT_PENDING_TIMEOUT_SECONDS * 1000).toBeGreaterThan(uploadDeliveryWorstCaseMs());
    expect(DEFAULT_PROCESSING_TIMEOUT_SECONDS * 1000).toBeGreaterThan(processingWorstCaseMs());
    expect(timeoutWarnings({ UPLOAD_PENDING_TIMEOUT_SECONDS: DEFAULT_PENDING_TIMEOUT_SECONDS, UPLOAD_PROCESSING_TIMEOUT_SECONDS: DEFAULT_PROCESSING_TIMEOUT_SECONDS })).toEqual([]);
    const warnings = timeoutWarnings({ UPLOAD_PENDING_TIMEOUT_SECONDS: 2, UPLOAD_PROCESSING_TIMEOUT_SECONDS: 3 });
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toMatch(/UPLOAD_PENDING_TIMEOUT_SECONDS \(2\)[\s\S]*UPLOAD_PROCESSING_TIMEOUT_SECONDS \(3\)/);
  });
});
