/**
 * The profile service: turns thumbnailed uploads into the player's avatar (POST /events),
 * settles events that exhausted their retries (POST /dead-letter), and serves the profile and
 * upload-status API.
 */
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { JWTVerifyGetKey } from 'jose';
import {
  ProcessedEvents,
  UploadStore,
  bearerAuth,
  createService,
  eventEndpoint,
  systemClock,
  tableReadiness,
  type Clock,
  type Logger,
  type Service,
  type TokenPolicy,
} from '@avatar-pipeline/kit';
import { apiRoutes } from './api.js';
import { cognitoPictureSync, type PictureRetryPolicy } from './cognito.js';
import type { ProfileConfig } from './config.js';
import { deadLetterRoute } from './dead-letter.js';
import { profileMetrics } from './metrics.js';
import { ProfileStore } from './profiles.js';
import { readyCompletion, thumbnailedRoute } from './ready.js';

export interface ProfileDeps {
  config: Pick<
    ProfileConfig,
    | 'TABLE_NAME'
    | 'BUCKET'
    | 'MEDIA_BASE_URL'
    | 'K_SINK'
    | 'K_SINK_OIDC_TOKEN_FILE'
    | 'COGNITO_USER_POOL_ID'
    | 'JWT_ISSUER'
    | 'JWT_AUDIENCE'
    | 'JWT_ALGORITHMS'
    | 'JWT_PLAYER_CLAIM'
  >;
  doc: DynamoDBDocumentClient;
  s3: S3Client;
  /** Used only when COGNITO_USER_POOL_ID is set. */
  cognito?: CognitoIdentityProviderClient | undefined;
  /** The Cognito picture sync's own retries (default `defaultPictureRetry`). */
  pictureRetry?: PictureRetryPolicy | undefined;
  jwks: JWTVerifyGetKey;
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
  const service = createService({
    name: 'profile',
    logger: deps.logger,
    readiness: { dynamodb: tableReadiness(doc, table) },
    eventAuth: deps.eventAuth,
  });
  const metrics = profileMetrics(service.metrics.registry);
  const uploads = new UploadStore(doc, table, clock);
  const profiles = new ProfileStore(doc, table, clock);
  const pictures = config.COGNITO_USER_POOL_ID && deps.cognito ? cognitoPictureSync(deps.cognito, config.COGNITO_USER_POOL_ID) : undefined;

  // Shared by the thumbnailed route and the dead-letter sink: either may finish a ready upload.
  const complete = readyCompletion({ bucket: config.BUCKET, s3: deps.s3, profiles, pictures, pictureRetry: deps.pictureRetry, metrics });

  const thumbnailed = thumbnailedRoute({
    mediaBaseUrl: config.MEDIA_BASE_URL,
    bucket: config.BUCKET,
    s3: deps.s3,
    uploads,
    processed: new ProcessedEvents(doc, table, 'profile', clock),
    complete,
    metrics,
    clock,
  });
  const deadLetter = deadLetterRoute({
    bucket: config.BUCKET,
    sink: config.K_SINK,
    sinkTokenFile: config.K_SINK_OIDC_TOKEN_FILE,
    uploads,
    s3: deps.s3,
    settled: new ProcessedEvents(doc, table, 'profile-dead-letter', clock),
    complete,
    metrics,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });

  const { app } = service;
  app.post('/events', eventEndpoint(service, [thumbnailed]));
  app.post('/dead-letter', eventEndpoint(service, [deadLetter]));
  app.use(
    '/v1/*',
    bearerAuth({
      keys: deps.jwks,
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      algorithms: config.JWT_ALGORITHMS,
      playerClaim: config.JWT_PLAYER_CLAIM,
    }),
  );
  apiRoutes(app, { profiles, uploads });
  return service;
}
