/**
 * An erased player's tombstone (`PLAYER#<id>` / `ERASED`): written first by every erasure request
 * (erasure.ts), read by the ready path after its writes (ready.ts), and kept in the `open-uploads`
 * index until the reconciler's final pass settles it.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { openIndexEntries, OPEN_SINCE_ATTRIBUTE, OPEN_STATUS_ATTRIBUTE, TTL_ATTRIBUTE, epochSeconds, isConditionFailure, keys, systemClock, type Clock } from '@avatar-pipeline/kit/table';

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

/** The `PLAYER#<id>` / `ERASED` items: see the module comment, and erasure.ts's. */
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
