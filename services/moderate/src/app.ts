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
import type { TokenPolicy } from '@avatar-pipeline/kit/auth';
import { eventEndpoint } from '@avatar-pipeline/kit/cloudevents';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { moderationPolicy, type ModerateConfig } from './config.js';
import { moderationMetrics } from './metrics.js';
import { objectCreatedRoute } from './moderation.js';
import { moderationOutcomes } from './outcomes.js';
import type { ModerationProvider } from './providers/provider.js';
import type { ModerateStores } from './stores.js';

export type ModerateAppConfig = Pick<
  ModerateConfig,
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
  /** The bucket the uploads are written to: only its events are moderated. */
  objects: ObjectStore;
  stores: ModerateStores;
  provider: ModerationProvider;
  logger: Logger;
  clock?: Clock;
  /** The token Knative's deliveries must carry (see `eventAuthFromConfig`). */
  eventAuth?: TokenPolicy | undefined;
}

export function createModerateService(deps: ModerateDeps): Service {
  const { config, objects, stores, provider, logger } = deps;
  const clock = deps.clock ?? systemClock;
  // The provider (the model) is loaded before the app exists, so readiness covers the stores.
  const service = createService({
    name: 'moderate',
    logger,
    readiness: { dynamodb: stores.ready, s3: objects.ready },
    eventAuth: deps.eventAuth,
  });
  const { uploads, processed, owners, bans } = stores;
  const metrics = moderationMetrics(service.metrics.registry, provider.name);
  const policy = moderationPolicy(config);

  const outcomes = moderationOutcomes({ uploads, owners, metrics, provider: provider.name, objects, clock });
  const objectCreated = objectCreatedRoute({ config, objects, provider, uploads, processed, bans, metrics, policy, outcomes });

  service.app.post('/events', eventEndpoint(service, [objectCreated]));
  return service;
}
