/**
 * Players' Web Push subscriptions in the single table:
 *
 *   PLAYER#<playerId>  SUB#<hash>   one device: endpoint, keys, expirationTime, createdAt, updatedAt
 *   PUSHEP#<hash>      OWNER        which player holds the endpoint (playerId)
 *
 * `hash` is the base64url SHA-256 of the endpoint. Both items carry the same TTL: the browser's
 * expirationTime plus a margin, none when the browser gave none.
 *
 * One endpoint belongs to one player. When player B subscribes an endpoint player A holds, it
 * moves to B only if B presents the same keys (p256dh and auth) A registered: the same browser
 * subscription, so the browser profile changed hands, and A's notifications must stop reaching
 * it. Anyone who merely learned A's endpoint cannot present A's keys and gets an
 * `EndpointInUseError`; no call ever returns or deletes another player's item otherwise.
 *
 * DynamoDB Local stand-ins have no transactions, so each step is a single conditional write,
 * ordered so a crash in between never leaves a device notified for the wrong player: the old
 * holder's item goes first, then the claim, then the new item.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentCommand } from '@avatar-pipeline/kit/sdk';
import { TTL_ATTRIBUTE, isConditionFailure, keys, systemClock, type Clock } from '@avatar-pipeline/kit/table';

const DeleteCommand = documentCommand('DeleteCommand');
const GetCommand = documentCommand('GetCommand');
const QueryCommand = documentCommand('QueryCommand');
const UpdateCommand = documentCommand('UpdateCommand');

/** A browser's PushSubscriptionJSON, validated. `expirationTime` is epoch milliseconds. */
export interface PushSubscriptionData {
  endpoint: string;
  expirationTime: number | null;
  keys: { p256dh: string; auth: string };
}

export interface StoredSubscription extends PushSubscriptionData {
  playerId: string;
  /** base64url SHA-256 of the endpoint: the item's key, safe to log and return. */
  hash: string;
  createdAt: string;
  updatedAt: string;
}

export interface UpsertResult {
  /** `created`: new for this player (including an endpoint moved from another player). */
  status: 'created' | 'updated';
  subscription: StoredSubscription;
  /** Hashes of this player's oldest subscriptions deleted to stay within maxDevices. */
  evicted: string[];
  /** Set when the endpoint moved here from another player (for logs; never shown to clients). */
  movedFrom?: string;
}

/** The endpoint is held by another player with different keys. */
export class EndpointInUseError extends Error {
  constructor() {
    super('this push endpoint is registered with different keys');
    this.name = 'EndpointInUseError';
  }
}

/** Kept past the browser's expirationTime so a late send still gets the push service's 404/410. */
const EXPIRY_MARGIN_SECONDS = 24 * 3600;
const CLAIM_ATTEMPTS = 3;

function expiresAt(subscription: PushSubscriptionData): number | undefined {
  return subscription.expirationTime === null ? undefined : Math.ceil(subscription.expirationTime / 1000) + EXPIRY_MARGIN_SECONDS;
}

export function endpointHash(endpoint: string): string {
  return createHash('sha256').update(endpoint).digest('base64url');
}

const ownerKey = (hash: string) => ({ pk: `PUSHEP#${hash}`, sk: 'OWNER' });
const itemKey = (playerId: string, hash: string) => ({ pk: keys.player(playerId), sk: keys.subscription(hash) });

function toStored(item: Record<string, unknown>): StoredSubscription {
  const k = item['keys'] as { p256dh: string; auth: string };
  return {
    playerId: item['playerId'] as string,
    hash: (item['sk'] as string).slice(keys.subscriptionPrefix.length),
    endpoint: item['endpoint'] as string,
    keys: { p256dh: k.p256dh, auth: k.auth },
    expirationTime: (item['expirationTime'] as number | null | undefined) ?? null,
    createdAt: item['createdAt'] as string,
    updatedAt: item['updatedAt'] as string,
  };
}

export class SubscriptionStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Stores a subscription for a player. Re-subscribing the same endpoint updates it and keeps its
   * createdAt; beyond `maxDevices` the player's oldest subscriptions (by createdAt) are deleted.
   * Throws `EndpointInUseError` when another player holds the endpoint with other keys.
   */
  async upsert(playerId: string, subscription: PushSubscriptionData, options: { maxDevices: number }): Promise<UpsertResult> {
    const hash = endpointHash(subscription.endpoint);
    const movedFrom = await this.claim(playerId, hash, subscription);
    const now = this.clock();
    const ttl = expiresAt(subscription);
    const { Attributes: before } = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: itemKey(playerId, hash),
        UpdateExpression: `SET playerId = :player, endpoint = :endpoint, #keys = :keys, expirationTime = :exp, updatedAt = :now, createdAt = if_not_exists(createdAt, :now)${ttl === undefined ? ' REMOVE #ttl' : ', #ttl = :ttl'}`,
        ExpressionAttributeNames: { '#keys': 'keys', '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':player': playerId,
          ':endpoint': subscription.endpoint,
          ':keys': { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth },
          ':exp': subscription.expirationTime,
          ':now': now.toISOString(),
          ...(ttl === undefined ? {} : { ':ttl': ttl }),
        },
        ReturnValues: 'ALL_OLD',
      }),
    );
    const stored: StoredSubscription = {
      playerId,
      hash,
      endpoint: subscription.endpoint,
      keys: { ...subscription.keys },
      expirationTime: subscription.expirationTime,
      createdAt: (before?.['createdAt'] as string | undefined) ?? now.toISOString(),
      updatedAt: now.toISOString(),
    };
    const evicted = await this.evict(playerId, hash, options.maxDevices);
    return { status: before ? 'updated' : 'created', subscription: stored, evicted, ...(movedFrom ? { movedFrom } : {}) };
  }

  /** The player's subscriptions, oldest first, without those past their expirationTime. */
  async list(playerId: string): Promise<StoredSubscription[]> {
    const now = this.clock().getTime();
    return (await this.query(playerId)).filter((s) => s.expirationTime === null || s.expirationTime > now);
  }

  /** Deletes the player's subscription for an endpoint; false if there was none (idempotent). */
  remove(playerId: string, endpoint: string): Promise<boolean> {
    return this.removeByHash(playerId, endpointHash(endpoint));
  }

  /** As `remove`, by the endpoint's hash (push prunes gone subscriptions this way). */
  async removeByHash(playerId: string, hash: string): Promise<boolean> {
    const { Attributes } = await this.doc.send(new DeleteCommand({ TableName: this.table, Key: itemKey(playerId, hash), ReturnValues: 'ALL_OLD' }));
    await this.releaseClaim(playerId, hash);
    return Attributes !== undefined;
  }

  /**
   * Makes `playerId` the holder of the endpoint. Returns the previous holder when it moved. A claim
   * whose holder no longer has the item (deleted, expired) is stale and taken over.
   */
  private async claim(playerId: string, hash: string, subscription: PushSubscriptionData): Promise<string | undefined> {
    for (let attempt = 1; ; attempt++) {
      const { Item: owner } = await this.doc.send(new GetCommand({ TableName: this.table, Key: ownerKey(hash), ConsistentRead: true }));
      const holder = owner?.['playerId'] as string | undefined;
      let movedFrom: string | undefined;
      if (holder !== undefined && holder !== playerId) {
        const { Item: held } = await this.doc.send(new GetCommand({ TableName: this.table, Key: itemKey(holder, hash), ConsistentRead: true }));
        if (held) {
          const heldKeys = held['keys'] as { p256dh?: unknown; auth?: unknown } | undefined;
          if (heldKeys?.p256dh !== subscription.keys.p256dh || heldKeys.auth !== subscription.keys.auth) throw new EndpointInUseError();
          // Same browser subscription, new player: the old holder stops being notified first.
          await this.doc.send(new DeleteCommand({ TableName: this.table, Key: itemKey(holder, hash) }));
          movedFrom = holder;
        }
      }
      const ttl = expiresAt(subscription);
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: ownerKey(hash),
            UpdateExpression: `SET playerId = :player${ttl === undefined ? ' REMOVE #ttl' : ', #ttl = :ttl'}`,
            // Unchanged since read: a concurrent claim by a third player makes us look again.
            ConditionExpression: holder === undefined ? 'attribute_not_exists(pk)' : 'playerId = :holder',
            ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
            ExpressionAttributeValues: { ':player': playerId, ...(holder === undefined ? {} : { ':holder': holder }), ...(ttl === undefined ? {} : { ':ttl': ttl }) },
          }),
        );
        return movedFrom;
      } catch (err) {
        if (!isConditionFailure(err) || attempt >= CLAIM_ATTEMPTS) throw err;
      }
    }
  }

  /** Drops the endpoint's claim if this player still holds it. */
  private async releaseClaim(playerId: string, hash: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({ TableName: this.table, Key: ownerKey(hash), ConditionExpression: 'playerId = :player', ExpressionAttributeValues: { ':player': playerId } }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  private async query(playerId: string): Promise<StoredSubscription[]> {
    const items: StoredSubscription[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': keys.player(playerId), ':prefix': keys.subscriptionPrefix },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) items.push(toStored(item));
      start = page.LastEvaluatedKey;
    } while (start);
    return items.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.hash.localeCompare(b.hash));
  }

  /** Deletes the oldest subscriptions beyond `maxDevices`, never the one just written. */
  private async evict(playerId: string, keep: string, maxDevices: number): Promise<string[]> {
    const all = await this.query(playerId);
    const excess = all.length - maxDevices;
    if (excess <= 0) return [];
    const victims = all.filter((s) => s.hash !== keep).slice(0, excess);
    for (const victim of victims) await this.removeByHash(playerId, victim.hash);
    return victims.map((v) => v.hash);
  }
}
