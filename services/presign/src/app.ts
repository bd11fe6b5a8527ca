/**
 * Presign: hands a player a presigned S3 POST for one avatar upload (see upload-tickets.ts), each
 * recorded as pending before it is issued and counted against the player's upload window.
 */
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { Metrics } from '@avatar-pipeline/kit/metrics';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import type { AuthOptions } from '@avatar-pipeline/kit/player-auth';
import type { Service } from '@avatar-pipeline/kit/service';
import { createApiService, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { issuedCounter } from './metrics.js';
import type { PostPolicySigner } from './post-signer.js';
import type { PresignStores } from './stores.js';
import { uploadTicketRoutes, type PresignSettings } from './upload-tickets.js';

export interface PresignDeps {
  logger: Logger;
  stores: PresignStores;
  /** Signs the POST policies (a PostSigner over the S3 client). */
  signer: PostPolicySigner;
  /** The bucket browsers upload to: its name, signed into each policy, and its readiness. */
  objects: Pick<ObjectStore, 'bucket' | 'ready'>;
  auth: AuthOptions;
  settings: PresignSettings;
  metrics?: Metrics;
}

export function createPresignService(deps: PresignDeps): Service {
  const { stores, objects, settings } = deps;
  const service = createApiService({
    name: 'presign',
    logger: deps.logger,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    readiness: { table: stores.ready, bucket: objects.ready },
  });
  const { registry } = service.metrics;
  const issued = issuedCounter(registry);
  uploadTicketRoutes(service.app, {
    auth: deps.auth,
    limiter: stores.rateLimiter({ scope: 'uploads', limit: settings.rateLimit.uploads, windowSeconds: settings.rateLimit.windowSeconds, registry }),
    uploads: stores.uploads,
    signer: deps.signer,
    bucket: objects.bucket,
    issued,
    settings,
  });
  serveOpenApi(service.app, { title: 'avatar-pipeline uploads (presign)', description: 'Upload tickets: presigned POSTs for avatar images' });

  return service;
}
