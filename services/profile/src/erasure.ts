/**
 * A player's avatar removed, and a player erased: `DELETE /v1/players/{playerId}/avatar` and
 * `DELETE /v1/players/{playerId}`, each for the player themself or a moderator (403 otherwise).
 *
 * Erasure writes the tombstone (`PLAYER#<id>` / `ERASED`, tombstones.ts) first, then deletes, by key and by
 * prefix, never by scanning: the player's partition (upload records, profile, subscriptions with
 * their `PUSHEP#` claims, the idempotency records of its uploads' events), each of its uploads'
 * OWNER and REVIEW items, push claims (`PUSHED#<uploadId>.<kind>`), the rate-limit windows, every object under `uploads/<id>/` and `avatars/<id>/`, and the Cognito
 * `picture`; then it posts `avatarpipeline.player.erased` to K_SINK. Its upload ids are kept on
 * the tombstone before anything is deleted, so a repeat (or the reconciler) still knows them.
 *
 * In flight: a pipeline step that began before the erasure may still write after it. Each step
 * writes upload state conditionally on the upload record, which is gone; profile's ready path
 * checks the tombstone after its writes and undoes them (ready.ts); and the tombstone stays in the
 * `open-uploads` index (`openStatus = erasure`) until the reconciler, once no step that began
 * before the erasure can still be running (UPLOAD_PROCESSING_TIMEOUT_SECONDS later), sweeps
 * everything again and announces the erasure if the request could not. The tombstone itself
 * expires after 3 days. What cannot be found by key is listed in docs/data-model.md (Erasure).
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import pLimit from 'p-limit';
import { z } from 'zod';
import { sendEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import { AVATAR_PREFIX, playerErasedSchema, playerIdSchema, uploadIdSchema } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import type { ObjectStore } from '@avatar-pipeline/kit/objects';
import { hasRole } from '@avatar-pipeline/kit/player-auth';
import { playerRateLimitScopes, rateLimitKey } from '@avatar-pipeline/kit/rate-limit';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import { itemKeys, keys, openStatuses, terminalStatuses } from '@avatar-pipeline/kit/table';
import { EventType, UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import type { SubscriptionStore } from '@avatar-pipeline/webpush';
import { BEARER, createRoute, errorResponses, invalidAs, json } from '@avatar-pipeline/kit/openapi';
import { removeAvatar, type AvatarRemovalDeps } from './avatar-removal.js';
import type { PictureSync } from './cognito.js';
import type { Partitions } from './partitions.js';
import { SOURCE } from './ready.js';
import { ERASED, type Tombstone, type Tombstones } from './tombstones.js';

/** The erasure event: the same id for every announcement of one erasure (consumers take it once). */
export function erasedEvent(tombstone: Pick<Tombstone, 'playerId' | 'erasedAt'>): OutgoingEvent {
  const { playerId, erasedAt } = tombstone;
  const data = playerErasedSchema.parse({ playerId, erasedAt });
  return { id: `${playerId}.erased.${Date.parse(erasedAt)}`, source: SOURCE, type: EventType.playerErased, subject: `players/${playerId}`, time: erasedAt, data };
}

/**
 * What push's claims are named after (`PUSHED#<uploadId>.<status>`): the upload's status the
 * notification tells (terminal, or `in_review`). Every status is Queried: one with no claims costs little.
 */
const notificationKinds = [...openStatuses, ...terminalStatuses];

export interface ErasureDeps {
  objects: ObjectStore;
  partitions: Partitions;
  tombstones: Tombstones;
  subscriptions: Pick<SubscriptionStore, 'removeByHash'>;
  owners: Pick<UploadOwners, 'delete'>;
  /** Cognito's `picture`, when a user pool is configured (the reconciler has none: the request cleared it). */
  pictures?: PictureSync | undefined;
  /** The broker (K_SINK), and the OIDC token it requires. */
  sink: string;
  sinkTokenFile?: string | undefined;
  fetch?: typeof fetch;
}

/** What one pass deleted (for logs and tests). */
export interface SweepResult {
  objects: number;
  items: number;
  uploadIds: string[];
}

/** Uploads handled at once (each a few Queries and deletes). */
const PARALLEL = 8;

/** Every key under a prefix. */
async function keysUnder(objects: ObjectStore, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const key of objects.list(prefix)) found.push(key);
  return found;
}

/** The upload id in `uploads/<p>/<u>` or `avatars/<p>/<u>/<name>`, when it is one. */
function uploadIdOf(key: string): string | undefined {
  const id = key.split('/')[2];
  return id !== undefined && uploadIdSchema.safeParse(id).success ? id : undefined;
}

/**
 * One erasure pass: everything the system holds about the player, found by key or prefix (see the
 * module comment). Idempotent: a repeat deletes whatever is there. The tombstone must exist.
 */
export async function sweep(deps: ErasureDeps, playerId: string, tombstone: Tombstone, log: Logger): Promise<SweepResult> {
  const { objects, partitions } = deps;
  const [items, objectKeys] = await Promise.all([
    partitions.items(keys.player(playerId)),
    Promise.all([UPLOAD_PREFIX, AVATAR_PREFIX].map((prefix) => keysUnder(objects, `${prefix}${playerId}/`))).then((lists) => lists.flat()),
  ]);

  const ids = new Set(tombstone.uploadIds);
  const subscriptionHashes: string[] = [];
  for (const item of items) {
    const sk = String(item['sk']);
    if (sk.startsWith(keys.upload(''))) ids.add(sk.slice(keys.upload('').length));
    else if (sk.startsWith(keys.subscriptionPrefix)) subscriptionHashes.push(sk.slice(keys.subscriptionPrefix.length));
    for (const attribute of ['avatarUploadId', 'previousAvatarUploadId']) if (typeof item[attribute] === 'string') ids.add(item[attribute]);
  }
  for (const key of objectKeys) {
    const id = uploadIdOf(key);
    if (id) ids.add(id);
  }
  const uploadIds = [...ids].filter((id) => uploadIdSchema.safeParse(id).success).sort();
  // Before anything they lead to is deleted: a repeat, or the final pass, still finds them.
  await deps.tombstones.remember(playerId, uploadIds.filter((id) => !tombstone.uploadIds.includes(id)));

  await objects.deleteMany(objectKeys);

  let deletedItems = 0;
  const limit = pLimit(PARALLEL);
  await Promise.all(
    uploadIds.map((uploadId) =>
      limit(async () => {
        const claims = await Promise.all(notificationKinds.map((kind) => partitions.items(`PUSHED#${uploadId}.${kind}`)));
        const perUpload = [
          itemKeys.review(uploadId),
          ...claims.flat().map((claim) => ({ pk: String(claim['pk']), sk: String(claim['sk']) })),
        ];
        await partitions.delete(perUpload);
        await deps.owners.delete(uploadId);
        deletedItems += perUpload.length + 1;
      }),
    ),
  );

  // The endpoint's PUSHEP# claim goes with each subscription.
  for (const hash of subscriptionHashes) await deps.subscriptions.removeByHash(playerId, hash);

  const windows = await Promise.all(playerRateLimitScopes.map((scope) => partitions.items(rateLimitKey(scope, playerId, new Date(0)).pk)));
  const rest = [...windows.flat(), ...items.filter((item) => item['sk'] !== ERASED && !String(item['sk']).startsWith(keys.subscriptionPrefix))];
  await partitions.delete(rest.map((item) => ({ pk: String(item['pk']), sk: String(item['sk']) })));
  deletedItems += rest.length + subscriptionHashes.length;

  if (deps.pictures) await deps.pictures.clearPicture(playerId, AbortSignal.timeout(10_000));
  log.info({ playerId, objects: objectKeys.length, uploads: uploadIds.length, subscriptions: subscriptionHashes.length }, 'erasure pass done');
  return { objects: objectKeys.length, items: deletedItems, uploadIds };
}

/** Posts the erasure event unless it was; then records that it was. */
export async function announceErasure(deps: Pick<ErasureDeps, 'tombstones' | 'sink' | 'sinkTokenFile' | 'fetch'>, tombstone: Tombstone): Promise<boolean> {
  if (tombstone.announced) return false;
  await sendEvent(deps.sink, erasedEvent(tombstone), { fetch: deps.fetch, tokenFile: deps.sinkTokenFile });
  await deps.tombstones.announced(tombstone.playerId);
  return true;
}

/** An erasure request: the tombstone first, one pass, the announcement. Rejects when a step fails (a repeat, or the final pass, finishes it). */
export async function erasePlayer(deps: ErasureDeps, playerId: string, log: Logger): Promise<Tombstone> {
  const tombstone = await deps.tombstones.mark(playerId);
  await sweep(deps, playerId, tombstone, log);
  await announceErasure(deps, tombstone);
  return tombstone;
}

const playerParam = z.object({ playerId: playerIdSchema });
const security = [{ [BEARER]: [] }];

const erasureSchema = z
  .object({
    playerId: z.string(),
    erasedAt: z.iso.datetime().meta({ description: 'When the player was first erased (the same on a repeat within 3 days)' }),
  })
  .meta({ id: 'Erasure' });

const removeAvatarRoute = createRoute({
  method: 'delete',
  path: '/v1/players/{playerId}/avatar',
  tags: ['players'],
  summary: "Remove a player's current avatar (the player themself, or a moderator)",
  description:
    'The profile stops serving it, and its objects, the Cognito `picture` and its upload\'s fingerprint record are deleted. Idempotent: 204 also when there is no avatar; a repeat finishes a removal that failed.',
  security,
  request: { params: playerParam },
  responses: { 204: { description: 'Removed (or there was none)' }, ...errorResponses(400, 401, 403, 404, 503) },
});

const erasePlayerRoute = createRoute({
  method: 'delete',
  path: '/v1/players/{playerId}',
  tags: ['players'],
  summary: 'Erase everything the system holds about a player (the player themself, or a moderator)',
  description:
    'Upload records and their objects, the profile, push subscriptions, reviews, and the Cognito `picture` are deleted, and `avatarpipeline.player.erased` is posted to the broker. ' +
    'Uploads still in flight cannot bring anything back; the reconciler runs a last pass once none can still be running. Idempotent: a repeat deletes again and answers the same `erasedAt`.',
  security,
  request: { params: playerParam },
  responses: { 202: json(erasureSchema, 'Erased; a last pass follows'), ...errorResponses(400, 401, 403, 404, 503) },
});

export interface ErasureRoutesDeps {
  /** The role that may act on any player (MODERATOR_ROLE). */
  moderatorRole: string;
  removal: AvatarRemovalDeps;
  erasure: ErasureDeps;
}

export function erasureRoutes(app: OpenAPIHono<AppEnv>, deps: ErasureRoutesDeps): void {
  /** The player themself, or a moderator. */
  const allowed = (c: { get(key: 'playerId'): string }, playerId: string, moderator: boolean) => c.get('playerId') === playerId || moderator;

  app.openapi(
    removeAvatarRoute,
    async (c) => {
      const { playerId } = c.req.valid('param');
      if (!allowed(c, playerId, hasRole(c, deps.moderatorRole))) throw new HttpError(403, 'forbidden', "only the player or a moderator may remove a player's avatar");
      const log = c.get('log').child({ playerId, by: c.get('playerId') });
      try {
        const { uploadId, removed } = await removeAvatar(deps.removal, playerId);
        log.info({ uploadId, removed }, uploadId ? 'avatar removed' : 'no avatar to remove');
      } catch (err) {
        // Retryable: every step is idempotent.
        throw unavailable('the avatar could not be removed', err, { logFields: { playerId, by: c.get('playerId') } });
      }
      return c.body(null, 204);
    },
    invalidAs('invalid_player_id'),
  );

  app.openapi(
    erasePlayerRoute,
    async (c) => {
      const { playerId } = c.req.valid('param');
      if (!allowed(c, playerId, hasRole(c, deps.moderatorRole))) throw new HttpError(403, 'forbidden', 'only the player or a moderator may erase a player');
      const log = c.get('log').child({ playerId, by: c.get('playerId') });
      let tombstone: Tombstone;
      try {
        tombstone = await erasePlayer(deps.erasure, playerId, log);
      } catch (err) {
        throw unavailable('the erasure could not be completed', err, { logFields: { playerId, by: c.get('playerId') } });
      }
      log.info({ erasedAt: tombstone.erasedAt }, 'player erased');
      c.header('Cache-Control', 'no-store');
      return c.json({ playerId, erasedAt: tombstone.erasedAt }, 202);
    },
    invalidAs('invalid_player_id'),
  );
}
