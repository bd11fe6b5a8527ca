/**
 * moderate: decides whether an uploaded avatar may be used. It consumes S3 object-created events
 * for `uploads/<playerId>/<uploadId>` and replies `avatarpipeline.avatar.approved`,
 * `avatarpipeline.avatar.rejected`, or (the policy's review band) `avatarpipeline.avatar.review_requested`
 * with the upload left `in_review` for a moderator; a rejected upload's object is deleted and its
 * record ends `rejected`. Each picture's perceptual hash (fingerprint) is checked against the ban
 * list before the model runs, and a picture the policy rejects is banned. Transient failures (S3,
 * DynamoDB, the provider) answer 500 so the broker retries.
 *
 * The decision flow and its redeliveries: moderation.ts; what each decision records and replies:
 * outcomes.ts.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { BanList } from '@avatar-pipeline/kit/bans';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { bucketReadiness } from '@avatar-pipeline/kit/objects';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { systemClock, UploadStore, type Clock } from '@avatar-pipeline/kit/table';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { moderationPolicy, type ModerateConfig } from './config.js';
import { moderationMetrics } from './metrics.js';
import { objectCreatedRoute } from './moderation.js';
import { moderationOutcomes } from './outcomes.js';
import type { ModerationProvider } from './providers/provider.js';

export type ModerateAppConfig = Pick<
  ModerateConfig,
  | 'TABLE_NAME'
  | 'BUCKET'
  | 'AVATAR_MAX_BYTES'
  | 'IMAGE_MAX_PIXELS'
  | 'IMAGE_MAX_SIDE'
  | 'IMAGE_MIN_SIDE'
  | 'IMAGE_MAX_ASPECT'
  | 'THUMBNAIL_CROP'
  | 'MODERATION_POLICY'
  | 'BAN_MAX_DISTANCE'
>;

export interface ModerateDeps {
  config: ModerateAppConfig;
  s3: S3Client;
  doc: DynamoDBDocumentClient;
  provider: ModerationProvider;
  logger: Logger;
  clock?: Clock;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

export function createModerateService(deps: ModerateDeps): Service {
  const { config, s3, provider, logger } = deps;
  const clock = deps.clock ?? systemClock;
  // The provider (the model) is loaded before the app exists, so readiness covers the stores.
  const service = createService({
    name: 'moderate',
    logger,
    readiness: { dynamodb: tableReadiness(deps.doc, config.TABLE_NAME), s3: bucketReadiness(s3, config.BUCKET) },
    eventAuth: deps.eventAuth,
  });
  const uploads = new UploadStore(deps.doc, config.TABLE_NAME, clock);
  const processed = new ProcessedEvents(deps.doc, config.TABLE_NAME, 'moderate', clock);
  const owners = new UploadOwners(deps.doc, config.TABLE_NAME, clock);
  const bans = new BanList(deps.doc, config.TABLE_NAME, clock);
  const metrics = moderationMetrics(service.metrics.registry, provider.name);
  const policy = moderationPolicy(config);

  const deleteObject = (bucket: string, key: string) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  const outcomes = moderationOutcomes({ uploads, owners, metrics, provider: provider.name, deleteObject, clock });
  const objectCreated = objectCreatedRoute({ config, s3, provider, uploads, processed, bans, metrics, policy, outcomes, deleteObject });

  service.app.post('/events', eventEndpoint(service, [objectCreated]));
  return service;
}
