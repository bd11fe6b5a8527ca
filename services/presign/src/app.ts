/**
 * Presign: hands a player a presigned S3 POST for one avatar upload. The policy pins the object
 * key under the caller's own player id, the exact content type and the largest size, so the
 * client can choose none of them, and every upload is recorded as pending before it is issued.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Counter } from 'prom-client';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { uploadTicketSchema, type UploadTicket } from '@avatar-pipeline/kit/api-routes';
import { browserS3Url } from '@avatar-pipeline/kit/config';
import { HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import { uploadKey } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { zeroed, type Metrics } from '@avatar-pipeline/kit/metrics';
import { bucketReadiness } from '@avatar-pipeline/kit/objects';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { RateLimiter, rateLimit, type playerRateLimitScopes } from '@avatar-pipeline/kit/rate-limit';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import type { Service } from '@avatar-pipeline/kit/service';
import { UploadStore, systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { tracing } from '@avatar-pipeline/kit/tracing';
import { BEARER, createApiService, createRoute, errorResponses, json, jsonRequest, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { allowedContentTypes, type AllowedContentType } from './config.js';
import { PostSigner, type SignedPost } from './post-signer.js';

export interface PresignSettings {
  bucket: string;
  table: string;
  /** Largest upload accepted, in bytes. */
  maxBytes: number;
  /** Lifetime of an issued POST policy. */
  expiresSeconds: number;
  /** Replaces the origin of the POST URL (`${publicUrl}/${bucket}`); see S3_PUBLIC_URL and `browserS3Url`. */
  publicUrl?: string | undefined;
  rateLimit: { uploads: number; windowSeconds: number };
}

export interface PresignDependencies {
  logger: Logger;
  s3: S3Client;
  doc: DynamoDBDocumentClient;
  auth: AuthOptions;
  settings: PresignSettings;
  clock?: Clock;
  metrics?: Metrics;
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

export function createPresignService(deps: PresignDependencies): Service {
  const { s3, doc, settings } = deps;
  const clock = deps.clock ?? systemClock;
  const service = createApiService({
    name: 'presign',
    logger: deps.logger,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    readiness: { table: tableReadiness(doc, settings.table), bucket: bucketReadiness(s3, settings.bucket) },
  });
  const { registry } = service.metrics;
  const issued = zeroed(
    new Counter({
      name: 'avatarpipeline_presign_uploads_issued_total',
      help: 'Presigned uploads issued, by content type',
      labelNames: ['content_type'],
      registers: [registry],
    }),
    allowedContentTypes.map((content_type) => ({ content_type })),
  );
  const uploads = new UploadStore(doc, settings.table, clock);
  const signer = new PostSigner(s3);
  const limiter = new RateLimiter(doc, settings.table, {
    scope: 'uploads' satisfies (typeof playerRateLimitScopes)[number],
    limit: settings.rateLimit.uploads,
    windowSeconds: settings.rateLimit.windowSeconds,
    clock,
    registry,
  });
  const publicUrl = settings.publicUrl?.replace(/\/+$/, '');
  const maxMiB = (settings.maxBytes / (1024 * 1024)).toFixed(2).replace(/\.?0+$/, '');

  const limit = rateLimit({ limiter, unavailableMessage: UNAVAILABLE });

  service.app.openapi(issueUploadRoute(deps.auth, limit), async (c) => {
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
        Bucket: settings.bucket,
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
  serveOpenApi(service.app, { title: 'avatar-pipeline uploads (presign)', description: 'Upload tickets: presigned POSTs for avatar images' });

  return service;
}
