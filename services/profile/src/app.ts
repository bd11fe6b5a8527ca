/**
 * The profile service: turns thumbnailed uploads into the player's avatar (POST /events),
 * settles events that exhausted their retries (POST /dead-letter), and serves the profile and
 * upload-status API and the moderators' (the review queue and the ban list).
 */
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { BanList } from '@avatar-pipeline/kit/bans';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { bearerAuth, type AuthOptions } from '@avatar-pipeline/kit/player-auth';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import type { Service } from '@avatar-pipeline/kit/service';
import { UploadStore, systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { SubscriptionStore } from '@avatar-pipeline/webpush';
import { createApiService, serveOpenApi } from '@avatar-pipeline/kit/openapi';
import { apiRoutes } from './api.js';
import { cognitoPictureSync, type PictureRetryPolicy } from './cognito.js';
import type { ProfileConfig } from './config.js';
import { DEAD_LETTER_CONSUMER, deadLetterRoute } from './dead-letter.js';
import { Tombstones, erasureRoutes } from './erasure.js';
import { profileMetrics } from './metrics.js';
import { overdueUploadsGauge } from './overdue.js';
import { AvatarRecords, ProfileStore } from './profiles.js';
import { removeAvatar } from './avatar-removal.js';
import { bansRoutes } from './bans-api.js';
import { moderationRoutes } from './moderation.js';
import { ReviewStore } from './reviews.js';
import { THUMBNAILED_CONSUMER, readyCompletion, thumbnailedRoute } from './ready.js';
import { DEFAULT_PENDING_TIMEOUT_SECONDS, DEFAULT_PROCESSING_TIMEOUT_SECONDS, DEFAULT_REVIEW_TIMEOUT_SECONDS } from './reconcile-config.js';

export interface ProfileDeps {
  config: Pick<
    ProfileConfig,
    | 'TABLE_NAME'
    | 'BUCKET'
    | 'MEDIA_BASE_URL'
    | 'K_SINK'
    | 'K_SINK_OIDC_TOKEN_FILE'
    | 'COGNITO_USER_POOL_ID'
  > &
    /** The reconciler's deadlines, for `avatarpipeline_uploads_overdue_seconds` (default: its defaults). */
    Partial<Pick<ProfileConfig, 'UPLOAD_PENDING_TIMEOUT_SECONDS' | 'UPLOAD_PROCESSING_TIMEOUT_SECONDS' | 'REVIEW_TIMEOUT_SECONDS'>> &
    /** The role that may act on any player (default `moderator`); where browsers reach S3 (image links). */
    Partial<Pick<ProfileConfig, 'MODERATOR_ROLE' | 'S3_PUBLIC_URL'>>;
  doc: DynamoDBDocumentClient;
  s3: S3Client;
  /** Used only when COGNITO_USER_POOL_ID is set. */
  cognito?: CognitoIdentityProviderClient | undefined;
  /** The Cognito picture sync's own retries (default `defaultPictureRetry`). */
  pictureRetry?: PictureRetryPolicy | undefined;
  /** Which players' tokens the API accepts (see `authFromConfig`). */
  auth: AuthOptions;
  logger: Logger;
  clock?: Clock;
  /** Posts the failed events to K_SINK. */
  fetch?: typeof fetch;
  /** The token Knative's deliveries (events and dead letters) must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

export function createProfileService(deps: ProfileDeps): Service {
  const { config, doc } = deps;
  const clock = deps.clock ?? systemClock;
  const table = config.TABLE_NAME;
  const service = createApiService({
    name: 'profile',
    logger: deps.logger,
    readiness: { dynamodb: tableReadiness(doc, table) },
    eventAuth: deps.eventAuth,
  });
  const metrics = profileMetrics(service.metrics.registry);
  const uploads = new UploadStore(doc, table, clock);
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
  const profiles = new ProfileStore(doc, table, clock);
  const pictures = config.COGNITO_USER_POOL_ID && deps.cognito ? cognitoPictureSync(deps.cognito, config.COGNITO_USER_POOL_ID) : undefined;

  const records = new AvatarRecords(doc, table, clock);
  const owners = new UploadOwners(doc, table, clock);
  const tombstones = new Tombstones(doc, table, clock);

  // Shared by the thumbnailed route and the dead-letter sink: either may finish a ready upload.
  const complete = readyCompletion({ bucket: config.BUCKET, s3: deps.s3, profiles, records, owners, tombstones, pictures, pictureRetry: deps.pictureRetry, metrics });

  const thumbnailed = thumbnailedRoute({
    mediaBaseUrl: config.MEDIA_BASE_URL,
    bucket: config.BUCKET,
    s3: deps.s3,
    uploads,
    profiles,
    processed: new ProcessedEvents(doc, table, THUMBNAILED_CONSUMER, clock),
    complete,
    metrics,
    clock,
  });
  const deadLetter = deadLetterRoute({
    bucket: config.BUCKET,
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    uploads,
    profiles,
    s3: deps.s3,
    settled: new ProcessedEvents(doc, table, DEAD_LETTER_CONSUMER, clock),
    complete,
    metrics,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });

  const { app } = service;
  app.post('/events', eventEndpoint(service, [thumbnailed]));
  app.post('/dead-letter', eventEndpoint(service, [deadLetter]));
  app.use('/v1/*', bearerAuth(deps.auth));
  apiRoutes(app, { profiles, uploads });
  // Removing an avatar: its owner's or a moderator's DELETE, and a moderator's ban of it.
  const removal = { profiles, records, owners, s3: deps.s3, bucket: config.BUCKET, pictures, pictureRetry: deps.pictureRetry };
  erasureRoutes(app, {
    moderatorRole: config.MODERATOR_ROLE ?? 'moderator',
    removal,
    erasure: {
      doc,
      table,
      s3: deps.s3,
      bucket: config.BUCKET,
      tombstones,
      subscriptions: new SubscriptionStore(doc, table, clock),
      owners,
      pictures,
      sink: config.K_SINK,
      sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    },
  });
  // Moderators only: each route checks the role itself (players get 403).
  const moderatorRole = config.MODERATOR_ROLE ?? 'moderator';
  const bans = new BanList(doc, table, clock);
  moderationRoutes(app, {
    reviews: new ReviewStore(doc, table),
    bans,
    s3: deps.s3,
    bucket: config.BUCKET,
    s3PublicUrl: config.S3_PUBLIC_URL,
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    moderatorRole,
    clock,
  });
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
