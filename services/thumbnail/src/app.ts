/**
 * thumbnail: turns an approved upload into WebP avatars (squares plus a sanitized `full`), then
 * deletes the original. Consumes `avatarpipeline.avatar.approved`, replies
 * `avatarpipeline.avatar.thumbnailed` (thumbnailing.ts: which bytes may be rendered, and
 * redeliveries; render.ts: the renditions).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { bucketReadiness } from '@avatar-pipeline/kit/objects';
import { createService, type ReadinessCheck, type Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock, type UploadStore } from '@avatar-pipeline/kit/table';
import pLimit from 'p-limit';
import type { ThumbnailConfig } from './config.js';
import { thumbnailMetrics } from './metrics.js';
import { approvedRoute } from './thumbnailing.js';

export interface ThumbnailDeps {
  config: ThumbnailConfig;
  s3: S3Client;
  logger: Logger;
  clock?: Clock;
  /** Renders run at once in this process; later events wait their turn (default 2, one per core). */
  renderConcurrency?: number;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
  /** What moderate approved: the upload record (an `UploadStore`). */
  approvals: Pick<UploadStore, 'approvedSha256'>;
  /** Answers readiness for the approvals' store. */
  approvalsReadiness?: ReadinessCheck;
}

export function createThumbnailService(deps: ThumbnailDeps): Service {
  const { config, s3, logger, clock = systemClock } = deps;
  const service = createService({
    name: 'thumbnail',
    logger,
    readiness: { s3: bucketReadiness(s3, config.BUCKET), ...(deps.approvalsReadiness ? { dynamodb: deps.approvalsReadiness } : {}) },
    eventAuth: deps.eventAuth,
  });
  const metrics = thumbnailMetrics(service.metrics.registry);
  // A burst of events must not decode a burst of images at once: each holds its pixels in memory.
  const renderQueue = pLimit(deps.renderConcurrency ?? 2);
  const approved = approvedRoute({ config, s3, approvals: deps.approvals, renderQueue, metrics, clock });

  service.app.post('/events', eventEndpoint(service, [approved]));
  return service;
}
