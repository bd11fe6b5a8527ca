/**
 * POST /v1/uploads: a ticket for one avatar upload, a presigned S3 POST whose policy pins the
 * object key under the caller's own player id, the exact content type and the largest size, so
 * the client can choose none of them. The upload is recorded as pending before it is issued.
 */
import type { Counter } from 'prom-client';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { uploadTicketSchema, type UploadTicket } from '@avatar-pipeline/kit/api-routes';
import { browserS3Url } from '@avatar-pipeline/kit/config';
import { HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { rateLimit, type RateLimiter } from '@avatar-pipeline/kit/rate-limit';
import type { UploadStore } from '@avatar-pipeline/kit/table';
import { tracing } from '@avatar-pipeline/kit/tracing';
import { BEARER, createRoute, errorResponses, json, jsonRequest, type ApiService } from '@avatar-pipeline/kit/openapi';
import { allowedContentTypes, type AllowedContentType } from './config.js';
import type { PostPolicySigner, SignedPost } from './post-signer.js';

export interface PresignSettings {
  /** Largest upload accepted, in bytes. */
  maxBytes: number;
  /** Lifetime of an issued POST policy. */
  expiresSeconds: number;
  /** Replaces the origin of the POST URL (`${publicUrl}/${bucket}`); see S3_PUBLIC_URL and `browserS3Url`. */
  publicUrl?: string | undefined;
  rateLimit: { uploads: number; windowSeconds: number };
}

export interface UploadTicketDeps {
  auth: AuthOptions;
  /** The caller's upload window, counted before the body is read. */
  limiter: Pick<RateLimiter, 'scope' | 'enforce'>;
  uploads: UploadStore;
  signer: PostPolicySigner;
  /** The bucket the policies are for. */
  bucket: string;
  /** `avatarpipeline_presign_uploads_issued_total`. */
  issued: Counter<'content_type'>;
  settings: PresignSettings;
}

const uploadRequestSchema = z
  .strictObject({
    contentType: z
      .string({ error: 'contentType must be a string such as image/jpeg' })
      .min(1)
      .max(255)
      .meta({ description: `The file's type: ${allowedContentTypes.join(', ')}`, example: 'image/jpeg' }),
    contentLength: z
      .number({ error: 'contentLength must be the file size in bytes' })
      .int('contentLength must be a whole number of bytes')
      .positive('contentLength must be at least 1 byte')
      .meta({ description: "The file's size in bytes: the most the ticket accepts", example: 182044 }),
  })
  .meta({ id: 'UploadRequest' });

/** What a 503 tells the caller: a dependency failed (the cause is logged, not answered). */
const UNAVAILABLE = 'uploads are unavailable right now; try again shortly';

function isAllowedType(type: string): type is AllowedContentType {
  return (allowedContentTypes as readonly string[]).includes(type);
}

const issueUploadRoute = (auth: AuthOptions, limit: ReturnType<typeof rateLimit>) =>
  createRoute({
    method: 'post',
    path: '/v1/uploads',
    tags: ['uploads'],
    summary: 'Ask for an upload ticket: a presigned POST for one avatar image',
    description:
      'The key is bound to the caller, the content type to the one named and the size to at most contentLength. ' +
      'The upload is recorded as pending first; its outcome comes by push and from GET /v1/uploads/{uploadId}.',
    security: [{ [BEARER]: [] }],
    middleware: [bearerAuth(auth), limit] as const,
    request: { body: jsonRequest(uploadRequestSchema) },
    responses: {
      201: { ...json(uploadTicketSchema, 'The ticket'), headers: { 'Cache-Control': { schema: { type: 'string' }, description: 'no-store: the fields are a bearer capability' } } },
      ...errorResponses(400, 401, 413, 415, 429, 503),
    },
  });

export function uploadTicketRoutes(app: ApiService['app'], deps: UploadTicketDeps): void {
  const { settings, uploads, signer, issued } = deps;
  const publicUrl = settings.publicUrl?.replace(/\/+$/, '');
  const maxMiB = (settings.maxBytes / (1024 * 1024)).toFixed(2).replace(/\.?0+$/, '');
  const limit = rateLimit({ limiter: deps.limiter, unavailableMessage: UNAVAILABLE });

  app.openapi(issueUploadRoute(deps.auth, limit), async (c) => {
    const playerId = c.get('playerId');
    const log = c.get('log').child({ playerId });
    const body = c.req.valid('json');
    const { contentLength } = body;
    const contentType = body.contentType.toLowerCase();
    if (!isAllowedType(contentType)) {
      throw new HttpError(400, 'unsupported_content_type', `contentType must be one of ${allowedContentTypes.join(', ')}`);
    }
    if (contentLength > settings.maxBytes) {
      throw new HttpError(400, 'too_large', `contentLength must be at most ${settings.maxBytes} bytes (${maxMiB} MiB)`);
    }

    const uploadId = uuidv7();
    const key = uploadKey(playerId, uploadId);
    // Signing is local computation (plus fetching credentials): nothing is issued until the
    // pending record exists, so a failed write leaves no ticket behind.
    let post: SignedPost;
    try {
      post = await signer.sign({
        Bucket: deps.bucket,
        Key: key,
        Expires: settings.expiresSeconds,
        Conditions: [{ key }, ['eq', '$Content-Type', contentType], ['content-length-range', 1, contentLength]],
        Fields: { key, 'Content-Type': contentType },
      });
    } catch (err) {
      throw unavailable('signing the upload failed', err, { message: UNAVAILABLE, logFields: { playerId } });
    }
    // The policy document's expiration: the source of truth for when the POST stops working.
    const { expiresAt } = post;
    try {
      // The ticket's expiry starts the reconciler's clock: a pending upload ends `expired` some time after it.
      // With tracing on, the upload's events continue this request's trace (s3-source reads it back).
      await uploads.createPending({ playerId, uploadId, contentType, maxBytes: contentLength, ticketExpiresAt: expiresAt, trace: tracing()?.current() });
    } catch (err) {
      throw unavailable('recording the pending upload failed; nothing issued', err, { message: UNAVAILABLE, logFields: { playerId, uploadId } });
    }

    issued.inc({ content_type: contentType });
    log.info({ uploadId, contentType, maxBytes: contentLength }, 'upload issued');
    const ticket: UploadTicket = {
      uploadId,
      method: 'POST',
      url: browserS3Url(post.url, publicUrl),
      fields: post.fields,
      expiresAt,
      maxBytes: contentLength,
    };
    // The fields are a bearer capability: keep them out of every cache.
    c.header('Cache-Control', 'no-store');
    return c.json(ticket, 201);
  });
}
