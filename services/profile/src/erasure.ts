/**
 * A player's avatar removed, and a player erased: `DELETE /v1/players/{playerId}/avatar` and
 * `DELETE /v1/players/{playerId}`, each for the player themself or a moderator (403 otherwise).
 *
 * Erasure writes the tombstone (`PLAYER#<id>` / `ERASED`) first, then deletes, by key and by
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
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { BatchWriteCommand, GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { sendEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { HttpError, unavailable } from '@avatar-pipeline/kit/errors';
import { AVATAR_PREFIX, playerErasedSchema, playerIdSchema, uploadIdSchema } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { hasRole } from '@avatar-pipeline/kit/player-auth';
import { playerRateLimitScopes, rateLimitKey } from '@avatar-pipeline/kit/rate-limit';
import type { AppEnv } from '@avatar-pipeline/kit/service';
import { itemKeys, openIndexEntries, OPEN_SINCE_ATTRIBUTE, OPEN_STATUS_ATTRIBUTE, TTL_ATTRIBUTE, epochSeconds, isConditionFailure, keys, openStatuses, systemClock, terminalStatuses, type Clock } from '@avatar-pipeline/kit/table';
import { EventType, UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';
import type { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import type { SubscriptionStore } from '@avatar-pipeline/webpush';
import { BEARER, createRoute, errorResponses, invalidAs, json } from '@avatar-pipeline/kit/openapi';
import { removeAvatar, type AvatarRemovalDeps } from './avatar-removal.js';
import type { PictureSync } from './cognito.js';
import { SOURCE } from './ready.js';

/** The tombstone's sort key under `PLAYER#<playerId>`. */
export const ERASED = 'ERASED';
/** The `open-uploads` partition of erasures awaiting the reconciler's final pass. */
export const ERASURE = 'erasure';
/** Longer than any upload can stay in flight (ready.ts checks it; the final pass runs long before). */
export const TOMBSTONE_TTL_SECONDS = 3 * 24 * 3600;

export interface Tombstone {
  playerId: string;
  /** The first request's time: the erasure's (its event id and what the API answers). */
  erasedAt: string;
  /** The latest request's time: an upload issued before it never becomes the avatar. */
  requestedAt: string;
  /** `avatarpipeline.player.erased` has been posted. */
  announced: boolean;
  /** Every upload id an erasure pass found (kept until the final pass). */
  uploadIds: string[];
}

const tombstoneKey = (playerId: string) => ({ pk: keys.player(playerId), sk: ERASED });

function toTombstone(item: Record<string, NativeAttributeValue>): Tombstone {
  const ids = item['uploadIds'] as Set<string> | undefined;
  return {
    playerId: item['playerId'] as string,
    erasedAt: item['erasedAt'] as string,
    requestedAt: (item['requestedAt'] as string | undefined) ?? (item['erasedAt'] as string),
    announced: item['announced'] === true,
    uploadIds: ids ? [...ids].sort() : [],
  };
}

/** The `PLAYER#<id>` / `ERASED` items: see the module comment. */
export class Tombstones {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Records an erasure request: the first sets `erasedAt`; every one moves `requestedAt` and the
   * final pass's clock (the index entry) to now, and the expiry 3 days past it.
   */
  async mark(playerId: string): Promise<Tombstone> {
    const now = this.clock();
    const { Attributes } = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: tombstoneKey(playerId),
        UpdateExpression:
          'SET playerId = :playerId, erasedAt = if_not_exists(erasedAt, :now), requestedAt = :now, #openStatus = :erasure, #openSince = :now, #ttl = :ttl',
        ExpressionAttributeNames: { '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE, '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: { ':playerId': playerId, ':now': now.toISOString(), ':erasure': ERASURE, ':ttl': epochSeconds(now) + TOMBSTONE_TTL_SECONDS },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return toTombstone(Attributes ?? {});
  }

  async get(playerId: string): Promise<Tombstone | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: tombstoneKey(playerId), ConsistentRead: true }));
    return Item ? toTombstone(Item) : undefined;
  }

  /** Adds upload ids to the tombstone's (before their items are deleted). */
  async remember(playerId: string, uploadIds: readonly string[]): Promise<void> {
    if (uploadIds.length === 0) return;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: tombstoneKey(playerId),
        UpdateExpression: 'ADD uploadIds :ids',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':ids': new Set(uploadIds) },
      }),
    );
  }

  async announced(playerId: string): Promise<void> {
    await this.doc.send(
      new UpdateCommand({ TableName: this.table, Key: tombstoneKey(playerId), UpdateExpression: 'SET announced = :true', ConditionExpression: 'attribute_exists(pk)', ExpressionAttributeValues: { ':true': true } }),
    );
  }

  /** The final pass is done: out of the index, unless a newer request (another `requestedAt`) came meanwhile. */
  async settled(tombstone: Pick<Tombstone, 'playerId' | 'requestedAt'>): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: tombstoneKey(tombstone.playerId),
          UpdateExpression: 'REMOVE #openStatus, #openSince, uploadIds',
          ConditionExpression: 'requestedAt = :requestedAt',
          ExpressionAttributeNames: { '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE },
          ExpressionAttributeValues: { ':requestedAt': tombstone.requestedAt },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Players whose latest erasure request came before `before` and whose final pass is still to run, oldest first. */
  async *due(before: Date, pageSize = 100): AsyncGenerator<string> {
    for await (const item of openIndexEntries(this.doc, this.table, ERASURE, before, pageSize)) if (typeof item['playerId'] === 'string') yield item['playerId'];
  }
}

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
  doc: DynamoDBDocumentClient;
  table: string;
  s3: S3Client;
  bucket: string;
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

/** DynamoDB's BatchWriteItem limit. */
const BATCH = 25;
/** DeleteObjects' limit. */
const DELETE_OBJECTS_MAX = 1000;
/** Uploads handled at once (each a few Queries and deletes). */
const PARALLEL = 8;

async function deleteItems(doc: DynamoDBDocumentClient, table: string, itemKeys: readonly { pk: string; sk: string }[]): Promise<void> {
  for (let i = 0; i < itemKeys.length; i += BATCH) {
    let requests: NonNullable<ConstructorParameters<typeof BatchWriteCommand>[0]['RequestItems']>[string] = itemKeys
      .slice(i, i + BATCH)
      .map((Key) => ({ DeleteRequest: { Key } }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      // Unprocessed items mean throttling: back off before sending them again.
      if (attempt > 0) {
        if (attempt > 8) throw new Error('DynamoDB kept items of a batch delete unprocessed');
        await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
      }
      const res = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
      requests = res.UnprocessedItems?.[table] ?? [];
    }
  }
}

/** Every item of one partition (a Query, paged). */
async function partition(doc: DynamoDBDocumentClient, table: string, pk: string): Promise<Record<string, NativeAttributeValue>[]> {
  const items: Record<string, NativeAttributeValue>[] = [];
  let start: Record<string, NativeAttributeValue> | undefined;
  do {
    const page = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Every key under a prefix (ListObjectsV2, paged). */
async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    for (const object of page.Contents ?? []) if (object.Key) found.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return found;
}

async function deleteObjects(s3: S3Client, bucket: string, objectKeys: readonly string[]): Promise<void> {
  for (let i = 0; i < objectKeys.length; i += DELETE_OBJECTS_MAX) {
    const chunk = objectKeys.slice(i, i + DELETE_OBJECTS_MAX);
    const res = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }));
    const failed = res.Errors ?? [];
    if (failed.length > 0) throw new Error(`could not delete ${failed.length} objects (first: ${failed[0]?.Key}: ${failed[0]?.Code})`);
  }
}

/** Runs `work` over `items`, `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
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
  const { doc, table, s3, bucket } = deps;
  const pk = keys.player(playerId);
  const [items, objectKeys] = await Promise.all([
    partition(doc, table, pk),
    Promise.all([listKeys(s3, bucket, `${UPLOAD_PREFIX}${playerId}/`), listKeys(s3, bucket, `${AVATAR_PREFIX}${playerId}/`)]).then((lists) => lists.flat()),
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

  await deleteObjects(s3, bucket, objectKeys);

  let deletedItems = 0;
  await eachLimited(uploadIds, PARALLEL, async (uploadId) => {
    const claims = await Promise.all(notificationKinds.map((kind) => partition(doc, table, `PUSHED#${uploadId}.${kind}`)));
    const perUpload = [
      itemKeys.review(uploadId),
      ...claims.flat().map((claim) => ({ pk: String(claim['pk']), sk: String(claim['sk']) })),
    ];
    await deleteItems(doc, table, perUpload);
    await deps.owners.delete(uploadId);
    deletedItems += perUpload.length + 1;
  });

  // The endpoint's PUSHEP# claim goes with each subscription.
  for (const hash of subscriptionHashes) await deps.subscriptions.removeByHash(playerId, hash);

  const windows = await Promise.all(playerRateLimitScopes.map((scope) => partition(doc, table, rateLimitKey(scope, playerId, new Date(0)).pk)));
  const rest = [...windows.flat(), ...items.filter((item) => item['sk'] !== ERASED && !String(item['sk']).startsWith(keys.subscriptionPrefix))];
  await deleteItems(doc, table, rest.map((item) => ({ pk: String(item['pk']), sk: String(item['sk']) })));
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
