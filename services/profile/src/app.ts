/**
 * The profile service: turns thumbnailed uploads into the player's avatar (POST /events),
 * settles events that exhausted their retries (POST /dead-letter), and serves the profile and
 * upload-status API and the moderators' (the review queue and the ban list).
 */
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import type { Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { createApiService, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { apiRoutes } from './api.js';
import type { PictureRetryPolicy, PictureSync } from './cognito.js';
import type { ProfileConfig } from './config.js';
import { deadLetterRoute } from './dead-letter.js';
import { erasureRoutes } from './erasure.js';
import { profileMetrics } from './metrics.js';
import { overdueUploadsGauge } from './overdue.js';
import { removeAvatar } from './avatar-removal.js';
import { bansRoutes } from './bans-api.js';
import { moderationRoutes } from './moderation.js';
import { readyCompletion, thumbnailedRoute } from './ready.js';
import { DEFAULT_PENDING_TIMEOUT_SECONDS, DEFAULT_PROCESSING_TIMEOUT_SECONDS, DEFAULT_REVIEW_TIMEOUT_SECONDS } from './reconcile-config.js';
import type { ProfileStores } from './stores.js';

export interface ProfileDeps {
  config: Pick<ProfileConfig, 'MEDIA_BASE_URL' | 'K_SINK' | 'K_SINK_OIDC_TOKEN_FILE'> &
    /** The reconciler's deadlines, for `avatarpipeline_uploads_overdue_seconds` (default: its defaults). */
    Partial<Pick<ProfileConfig, 'UPLOAD_PENDING_TIMEOUT_SECONDS' | 'UPLOAD_PROCESSING_TIMEOUT_SECONDS' | 'REVIEW_TIMEOUT_SECONDS'>> &
    /** The role that may act on any player (default `moderator`); where browsers reach S3 (image links). */
    Partial<Pick<ProfileConfig, 'MODERATOR_ROLE' | 'S3_PUBLIC_URL'>>;
  /** The table (`profileStores`). */
  stores: ProfileStores;
  /** The bucket: uploads' originals and the avatars' renditions. */
  objects: ObjectStore;
  /** Cognito's `picture`, when a user pool is configured (COGNITO_USER_POOL_ID). */
  pictures?: PictureSync | undefined;
  /** The Cognito picture sync's own retries (default `defaultPictureRetry`). */
  pictureRetry?: PictureRetryPolicy | undefined;
  /** Which players' tokens the API accepts (see `authFromConfig`). */
  auth: AuthOptions;
  logger: Logger;
  /** The routes' clock (the stores keep their own). */
  clock?: Clock;
  /** Posts the failed events to K_SINK. */
  fetch?: typeof fetch;
  /** The token Knative's deliveries (events and dead letters) must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

export function createProfileService(deps: ProfileDeps): Service {
  const { config, stores, objects, pictures, pictureRetry } = deps;
  const { uploads, profiles, records, owners, tombstones, bans } = stores;
  const clock = deps.clock ?? systemClock;
  const moderatorRole = config.MODERATOR_ROLE ?? 'moderator';
  // Where the routes that announce something post it (K_SINK).
  const broker = { sink: config.K_SINK, sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE, ...(deps.fetch ? { fetch: deps.fetch } : {}) };
  const service = createApiService({
    name: 'profile',
    logger: deps.logger,
    readiness: { dynamodb: stores.ready },
    eventAuth: deps.eventAuth,
  });
  const metrics = profileMetrics(service.metrics.registry);
  overdueUploadsGauge(service.metrics.registry, {
    uploads,
    deadlines: {
      pending: config.UPLOAD_PENDING_TIMEOUT_SECONDS ?? DEFAULT_PENDING_TIMEOUT_SECONDS,
      processing: config.UPLOAD_PROCESSING_TIMEOUT_SECONDS ?? DEFAULT_PROCESSING_TIMEOUT_SECONDS,
      in_review: config.REVIEW_TIMEOUT_SECONDS ?? DEFAULT_REVIEW_TIMEOUT_SECONDS,
    },
    logger: deps.logger,
    clock,
  });

  // Shared by the thumbnailed route and the dead-letter sink: either may finish a ready upload.
  const complete = readyCompletion({ objects, profiles, records, owners, tombstones, pictures, pictureRetry, metrics });

  const thumbnailed = thumbnailedRoute({
    mediaBaseUrl: config.MEDIA_BASE_URL,
    objects,
    uploads,
    profiles,
    processed: stores.processed.thumbnailed,
    complete,
    metrics,
    clock,
  });
  const deadLetter = deadLetterRoute({ ...broker, uploads, profiles, objects, settled: stores.processed.deadLetters, complete, metrics });

  const { app } = service;
  app.post('/events', eventEndpoint(service, [thumbnailed]));
  app.post('/dead-letter', eventEndpoint(service, [deadLetter]));
  app.use('/v1/*', bearerAuth(deps.auth));
  apiRoutes(app, { profiles, uploads });
  // Removing an avatar: its owner's or a moderator's DELETE, and a moderator's ban of it.
  const removal = { profiles, records, owners, objects, pictures, pictureRetry };
  erasureRoutes(app, {
    moderatorRole,
    removal,
    erasure: { ...broker, objects, partitions: stores.partitions, tombstones, subscriptions: stores.subscriptions, owners, pictures },
  });
  // Moderators only: each route checks the role itself (players get 403).
  moderationRoutes(app, { ...broker, reviews: stores.reviews, bans, objects, s3PublicUrl: config.S3_PUBLIC_URL, moderatorRole, clock });
  bansRoutes(app, {
    bans,
    owners,
    uploads,
    removeAvatar: (playerId, uploadId) => removeAvatar(removal, playerId, { uploadId }),
    moderatorRole,
  });
  serveOpenApi(app, { title: 'avatar-pipeline profiles (profile)', description: "Players' avatars and the status of their uploads" });
  return service;
}
