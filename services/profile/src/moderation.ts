/**
 * The moderators' API (every route requires the moderator role; players get 403): the review
 * queue (`/v1/moderation/reviews`) and the ban list (`/v1/moderation/bans`, bans-api.ts).
 *
 * A decision is recorded first (reviews.ts: one transaction on the review and the upload), then
 * carried out: approve posts the approved event moderate would have sent (thumbnail, profile,
 * ready and push follow as for any approval); reject deletes the original, bans its fingerprint
 * and posts the rejected event. Every step after the record is idempotent and the events' ids are
 * per upload (`<uploadId>.approved`, `<uploadId>.rejected`; consumers take each once), so the same
 * decision by the same moderator, repeated, does them all again and answers 200: that is how a
 * decision whose event could not be posted is finished. Another decision is 409 `already_decided`.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { z } from 'zod';
import type { BanList } from '@avatar-pipeline/kit/bans';
import { sendEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { browserS3Url } from '@avatar-pipeline/kit/config';
import { HttpError } from '@avatar-pipeline/kit/errors';
import { labelSchema, moderatorRejected, uploadIdSchema, uploadKey, type RejectedData } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { requireRole } from '@avatar-pipeline/kit/player-auth';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import { reviewStatuses, type Clock } from '@avatar-pipeline/kit/table';
import { EventType } from '@avatar-pipeline/kit/topology';
import { BEARER, createRoute, errorResponses, invalidAs, json, jsonRequest } from '@avatar-pipeline/kit/openapi';
import { SOURCE } from './ready.js';
import { MAX_PAGE, reviewDecisionSchema, reviewDecisions, type ReviewDecision, type ReviewItem, type ReviewStore } from './reviews.js';

/** How long a review's image link works: long enough to look, short enough not to be passed around. */
export const IMAGE_URL_SECONDS = 300;

/** Presigned links and moderators' data: never kept by a cache. */
const NO_STORE = { 'Cache-Control': 'no-store' };

export const reviewSchema = z
  .object({
    uploadId: z.string(),
    playerId: z.string(),
    status: z.enum(reviewStatuses).meta({ description: 'open until decided; approved or rejected by a moderator; expired when nobody decided in time (the upload was rejected)' }),
    labels: z.array(labelSchema).meta({ description: 'What the model found, with its confidences (0-100): the scores that put the picture in review' }),
    fingerprint: z.string().meta({ description: "The picture's 64-bit perceptual hash, 16 hex digits" }),
    requestedAt: z.iso.datetime().meta({ description: 'When moderation asked for the review' }),
    uploadedAt: z.iso.datetime({ offset: true }),
    decision: reviewDecisionSchema.meta({ id: 'ReviewDecision', description: 'Who decided, when, what and why' }).optional(),
    imageUrl: z.url().meta({ description: `A presigned GET of the original upload, valid ${IMAGE_URL_SECONDS} s (the original is deleted once the upload is rejected or rendered)` }),
  })
  .meta({ id: 'Review' });
export type Review = z.infer<typeof reviewSchema>;

const reviewPageSchema = z
  .object({
    items: z.array(reviewSchema),
    cursor: z.string().optional().meta({ description: 'Pass as `cursor` for the next page; absent on the last one' }),
  })
  .meta({ id: 'ReviewPage' });

const decisionRequestSchema = z
  .strictObject({
    decision: z.enum(reviewDecisions).meta({ description: 'approve: the upload goes on to become the avatar; reject: it is deleted and its fingerprint banned' }),
    note: z.string().max(500).optional().meta({ description: 'Why, for the record (at most 500 characters)' }),
  })
  .meta({ id: 'ReviewDecisionRequest' });

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(20).meta({ description: `Items per page, 1-${MAX_PAGE} (default 20)` }),
  // Cursors are base64url: anything else is not one this API returned (and a long URL never reaches it).
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,1024}$/)
    .optional()
    .meta({ description: 'From the previous page' }),
};

const uploadParam = z.object({ uploadId: uploadIdSchema });

/** A bad upload id in the path is `invalid_upload_id`; anything else the request got wrong, `invalid_request`. */
const invalidInput = (result: { target: string; success: boolean; error?: z.ZodError }, c: Context<AppEnv>) =>
  invalidAs(result.target === 'param' ? 'invalid_upload_id' : 'invalid_request')(result, c);
const security = [{ [BEARER]: [] }];

const listReviewsRoute = (role: string) =>
  createRoute({
    method: 'get',
    path: '/v1/moderation/reviews',
    tags: ['moderation'],
    summary: 'The open reviews, oldest first (moderators only)',
    description: 'A page may hold fewer items than `limit` while a `cursor` follows: keep paging until there is none.',
    security,
    middleware: [requireRole(role)] as const,
    request: { query: z.object({ status: z.enum(['open']).default('open').meta({ description: 'Only open reviews are listed' }), ...pageQuery }) },
    responses: { 200: json(reviewPageSchema, 'A page of open reviews'), ...errorResponses(400, 401, 403, 503) },
  });

const getReviewRoute = (role: string) =>
  createRoute({
    method: 'get',
    path: '/v1/moderation/reviews/{uploadId}',
    tags: ['moderation'],
    summary: 'One review, open or decided, with its decision (moderators only)',
    security,
    middleware: [requireRole(role)] as const,
    request: { params: uploadParam },
    responses: { 200: json(reviewSchema, 'The review'), ...errorResponses(400, 401, 403, 404, 503) },
  });

const decideRoute = (role: string) =>
  createRoute({
    method: 'post',
    path: '/v1/moderation/reviews/{uploadId}',
    tags: ['moderation'],
    summary: 'Approve or reject a picture in review (moderators only)',
    description:
      'Approve: the upload continues as an automatic approval would (thumbnails, profile, ready, push). Reject: the original is deleted, its ' +
      'fingerprint banned and the player told. The same decision by the same moderator again answers 200 and repeats what follows it ' +
      '(the way to finish one answered 503); another decision on a decided review is 409 `already_decided`.',
    security,
    middleware: [requireRole(role)] as const,
    request: { params: uploadParam, body: jsonRequest(decisionRequestSchema) },
    responses: { 200: json(reviewSchema, 'The decided review'), ...errorResponses(400, 401, 403, 404, 409, 415, 503) },
  });

export interface ModerationDeps {
  reviews: ReviewStore;
  bans: BanList;
  objects: ObjectStore;
  /** Where browsers reach S3 (S3_PUBLIC_URL): image links point there. */
  s3PublicUrl?: string | undefined;
  /** The broker (K_SINK): decisions' events go there. */
  sink: string;
  sinkTokenFile?: string | undefined;
  fetch?: typeof fetch;
  /** The role a token must carry (MODERATOR_ROLE). */
  moderatorRole: string;
  clock: Clock;
}

/**
 * A presigned GET of the original under `uploads/`, for the moderator's browser: signed for S3 as
 * the service reaches it, at the address browsers reach it (`browserS3Url`).
 */
export async function imageUrl(deps: Pick<ModerationDeps, 'objects' | 's3PublicUrl'>, playerId: string, uploadId: string): Promise<string> {
  return browserS3Url(await deps.objects.signedGetUrl(uploadKey(playerId, uploadId), IMAGE_URL_SECONDS), deps.s3PublicUrl);
}

/** A review as the API shows it: without the stored event data, with a fresh image link. */
async function present(deps: Pick<ModerationDeps, 'objects' | 's3PublicUrl'>, review: ReviewItem): Promise<Review> {
  const { uploadId, playerId, status, labels, fingerprint, requestedAt, uploadedAt, decision } = review;
  return {
    uploadId,
    playerId,
    status,
    labels,
    fingerprint,
    requestedAt,
    uploadedAt,
    ...(decision ? { decision } : {}),
    imageUrl: await imageUrl(deps, playerId, uploadId),
  };
}

/** The event a decided review announces: the same on every repeat (id, time, data). */
export function decisionEvent(review: ReviewItem, decision: ReviewDecision): OutgoingEvent {
  const { playerId, uploadId } = review;
  const base = { source: SOURCE, subject: uploadKey(playerId, uploadId), time: decision.at };
  if (decision.decision === 'approve') {
    return { ...base, id: `${uploadId}.approved`, type: EventType.approved, data: review.approved };
  }
  const data: RejectedData = { playerId, uploadId, uploadedAt: review.uploadedAt, reason: moderatorRejected, labels: review.labels };
  return { ...base, id: `${uploadId}.rejected`, type: EventType.rejected, data };
}

export function moderationRoutes(app: OpenAPIHono<AppEnv>, deps: ModerationDeps): void {
  const { reviews, moderatorRole: role } = deps;

  /** What follows a decision, each step idempotent (see the module comment). */
  async function carryOut(review: ReviewItem, decision: ReviewDecision): Promise<void> {
    const { playerId, uploadId } = review;
    try {
      if (decision.decision === 'reject') {
        await deps.objects.delete(uploadKey(playerId, uploadId));
        await deps.bans.add({ fingerprint: review.fingerprint, uploadId, reason: 'moderator', by: decision.by, labels: review.labels });
      }
      await sendEvent(deps.sink, decisionEvent(review, decision), { fetch: deps.fetch, tokenFile: deps.sinkTokenFile });
    } catch (err) {
      // Logged once, with its cause, by the service's error handler.
      throw new HttpError(
        503,
        'decision_incomplete',
        'the decision is recorded but could not be carried out yet: send the same decision again',
        { 'Retry-After': '5', ...NO_STORE },
        { cause: err, logMessage: 'decision recorded but not carried out', logFields: { playerId, uploadId, decision: decision.decision } },
      );
    }
  }

  /** Records a decision on an open review; the review as it stands afterwards (decided by this call or another). */
  async function record(review: ReviewItem, decision: ReviewDecision, log: Logger): Promise<ReviewItem> {
    const outcome = await reviews.decide(review, decision);
    if (outcome.written) {
      log.info({ uploadId: review.uploadId, playerId: review.playerId, decision: decision.decision }, 'review decided');
      return outcome.review;
    }
    if (!outcome.review) throw new HttpError(404, 'not_found', 'no review of this upload', NO_STORE);
    if (outcome.review.status !== 'open') return outcome.review;
    // Open, but its upload is not waiting for it (ended meanwhile, or erased).
    if (outcome.uploadStatus !== 'in_review') {
      throw new HttpError(409, 'not_in_review', `the upload is no longer in review (${outcome.uploadStatus ?? 'gone'})`, NO_STORE);
    }
    // Both still waiting: the transaction collided with another write, and nothing was recorded.
    throw new HttpError(503, 'unavailable', 'the review changed while deciding; try again', { 'Retry-After': '1', ...NO_STORE });
  }

  app.openapi(listReviewsRoute(role), async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const page = await reviews.listOpen({ limit, cursor });
    const items = await Promise.all(page.items.map((review) => present(deps, review)));
    c.header('Cache-Control', 'no-store');
    return c.json({ items, ...(page.cursor ? { cursor: page.cursor } : {}) }, 200);
  });

  app.openapi(
    getReviewRoute(role),
    async (c) => {
      const { uploadId } = c.req.valid('param');
      const review = await reviews.get(uploadId);
      if (!review) throw new HttpError(404, 'not_found', 'no review of this upload', NO_STORE);
      c.header('Cache-Control', 'no-store');
      return c.json(await present(deps, review), 200);
    },
    invalidAs('invalid_upload_id'),
  );

  app.openapi(
    decideRoute(role),
    async (c) => {
      const { uploadId } = c.req.valid('param');
      const body = c.req.valid('json');
      const by = c.get('playerId');
      const log = c.get('log');
      const found = await reviews.get(uploadId);
      if (!found) throw new HttpError(404, 'not_found', 'no review of this upload', NO_STORE);
      const decision: ReviewDecision = { by, at: deps.clock().toISOString(), decision: body.decision, ...(body.note !== undefined ? { note: body.note } : {}) };
      const review = found.status === 'open' ? await record(found, decision, log) : found;
      const decided = review.decision;
      if (!decided || decided.by !== by || decided.decision !== body.decision) {
        const what = review.status === 'expired' ? 'the review expired: nobody decided in time' : `already ${review.status}${decided && decided.by !== by ? ' by another moderator' : ''}`;
        throw new HttpError(409, 'already_decided', what, NO_STORE);
      }
      await carryOut(review, decided);
      c.header('Cache-Control', 'no-store');
      return c.json(await present(deps, review), 200);
    },
    invalidInput,
  );
}
