/**
 * thumbnail: turns an approved upload into WebP avatars (squares plus a sanitized `full`), then
 * deletes the original. Consumes `avatarpipeline.avatar.approved`, replies
 * `avatarpipeline.avatar.thumbnailed` (thumbnailing.ts: which bytes may be rendered, and
 * redeliveries; render.ts: the renditions).
 */
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import pLimit from 'p-limit';
import type { ThumbnailConfig } from './config.js';
import { thumbnailMetrics } from './metrics.js';
import type { ThumbnailStores } from './stores.js';
import { approvedRoute } from './thumbnailing.js';

export interface ThumbnailDeps {
  config: ThumbnailConfig;
  /** The bucket of the uploads and their renditions. */
  objects: ObjectStore;
  stores: ThumbnailStores;
  logger: Logger;
  clock?: Clock;
  /** Renders run at once in this process; later events wait their turn (default 2, one per core). */
  renderConcurrency?: number;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

export function createThumbnailService(deps: ThumbnailDeps): Service {
  const { config, objects, stores, logger, clock = systemClock } = deps;
  const service = createService({
    name: 'thumbnail',
    logger,
    readiness: { s3: objects.ready, dynamodb: stores.ready },
    eventAuth: deps.eventAuth,
  });
  const metrics = thumbnailMetrics(service.metrics.registry);
  // A burst of events must not decode a burst of images at once: each holds its pixels in memory.
  const renderQueue = pLimit(deps.renderConcurrency ?? 2);
  const approved = approvedRoute({ config, objects, approvals: stores.approvals, renderQueue, metrics, clock });

  service.app.post('/events', eventEndpoint(service, [approved]));
  return service;
}
