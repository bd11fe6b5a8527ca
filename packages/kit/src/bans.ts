/**
 * The ban list: pictures refused on sight, by perceptual hash (`fingerprint` in the imaging
 * package), in the single table:
 *
 *   BANS                     BAN#<fingerprint>  one ban (its id is its fingerprint: one ban per picture)
 *   BANBAND#<b>#<4 hex>      BANBAND            string set `fingerprints`: the bans whose band b is that value
 *
 * Finding the bans within Hamming distance d of a hash never scans: the 64 bits are cut in 4 bands
 * of 16, and two hashes at distance d ≤ 3 agree exactly on at least one band (pigeonhole), so the 4
 * band items of the hash hold every candidate; for d ≤ 7 some band differs in at most one bit, so
 * each band value and its 16 one-bit neighbours do (68 items; multi-index hashing). Either is one
 * BatchGetItem, whatever the number of bans; the candidates are then checked by their real distance.
 *
 * No transactions: the BAN item is the truth and the band items its index. `add` writes the BAN item
 * first, then the bands; `remove` deletes from the bands first, then the BAN item. A crash between
 * the two leaves a ban that `get` and `list` show and `remove` removes (and that a retried `add`
 * makes matchable again), never an index entry nobody can see. A band entry whose BAN item is gone
 * (an add and a remove of one picture racing) is skipped by `match` and cleared by the next remove.
 * A band item holds up to ~23,000 fingerprints (400 KB), far above what 16 bits of real hashes share.
 */
import type { DynamoDBDocumentClient, NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { labelSchema, type ModerationLabel } from './events.js';
import { decodeCursor, encodeCursor } from './page-cursor.js';
import { documentCommand } from './sdk.js';
import { isConditionFailure, systemClock, type Clock } from './table.js';

const BatchGetCommand = documentCommand('BatchGetCommand');
const DeleteCommand = documentCommand('DeleteCommand');
const GetCommand = documentCommand('GetCommand');
const PutCommand = documentCommand('PutCommand');
const QueryCommand = documentCommand('QueryCommand');
const UpdateCommand = documentCommand('UpdateCommand');

/** A 64-bit perceptual hash: 16 lowercase hex digits. */
export const fingerprintSchema = z.string().regex(/^[0-9a-f]{16}$/, 'a fingerprint is 16 lowercase hex digits');

export const banReasons = ['moderation', 'moderator', 'manual'] as const;
export type BanReason = (typeof banReasons)[number];

export interface Ban {
  /** The fingerprint. */
  id: string;
  fingerprint: string;
  /** The upload the ban was made from. */
  uploadId: string;
  /** `moderation`: the model rejected it; `moderator`: rejected in review; `manual`: banned by a moderator. */
  reason: BanReason;
  /** `moderate`, or the moderator's player id. */
  by: string;
  createdAt: string;
  labels?: ModerationLabel[];
}

export type NewBan = Pick<Ban, 'fingerprint' | 'uploadId' | 'reason' | 'by' | 'labels'>;

/** The largest distance `match` takes: beyond 7 the 4 bands no longer guarantee a candidate. */
export const MAX_BAN_DISTANCE = 7;

const BANS = 'BANS';
const BAND_SK = 'BANBAND';
const banKey = (fingerprint: string) => ({ pk: BANS, sk: `BAN#${fingerprint}` });
const bandKey = (band: number, value: number) => ({ pk: `BANBAND#${band}#${value.toString(16).padStart(4, '0')}`, sk: BAND_SK });
const bandValues = (fingerprint: string) => [0, 1, 2, 3].map((band) => parseInt(fingerprint.slice(band * 4, band * 4 + 4), 16));

/** The band items that hold every ban within `maxDistance` of `fingerprint`: 4 (d ≤ 3) or 68 (d ≤ 7). */
export function bandKeysWithin(fingerprint: string, maxDistance: number): { pk: string; sk: string }[] {
  return bandValues(fingerprint).flatMap((value, band) => [
    bandKey(band, value),
    ...(maxDistance <= 3 ? [] : Array.from({ length: 16 }, (_, bit) => bandKey(band, value ^ (1 << bit)))),
  ]);
}

const popcount32 = (n: number) => {
  n -= (n >>> 1) & 0x55555555;
  n = (n & 0x33333333) + ((n >>> 2) & 0x33333333);
  return (((n + (n >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

/** The number of bits in which two fingerprints differ. */
export function hammingDistance(a: string, b: string): number {
  const half = (s: string, at: number) => parseInt(s.slice(at, at + 8), 16);
  return popcount32(half(a, 0) ^ half(b, 0)) + popcount32(half(a, 8) ^ half(b, 8));
}

const newBanSchema = z.object({
  fingerprint: fingerprintSchema,
  uploadId: z.string().min(1),
  reason: z.enum(banReasons),
  by: z.string().min(1),
  labels: z.array(labelSchema).optional(),
});

/** A page cursor is the Query's LastEvaluatedKey, checked when it comes back so a forged one reads nothing else. */
const cursorSchema = z.strictObject({ pk: z.literal(BANS), sk: z.string().regex(/^BAN#[0-9a-f]{16}$/) });

const BATCH_ATTEMPTS = 8;
const ADD_ATTEMPTS = 3;

function toBan(item: Record<string, NativeAttributeValue>): Ban {
  const { id, fingerprint, uploadId, reason, by, createdAt, labels } = item as Ban;
  return { id, fingerprint, uploadId, reason, by, createdAt, ...(labels ? { labels } : {}) };
}

export class BanList {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Bans a picture; banning it again returns the first ban (and re-indexes it: a retry completes a crashed add). */
  async add(input: NewBan): Promise<Ban> {
    const { fingerprint, uploadId, reason, by, labels } = newBanSchema.parse(input);
    const ban: Ban = { id: fingerprint, fingerprint, uploadId, reason, by, createdAt: this.clock().toISOString(), ...(labels ? { labels } : {}) };
    let stored: Ban | undefined;
    for (let attempt = 1; !stored; attempt++) {
      try {
        await this.doc.send(new PutCommand({ TableName: this.table, Item: { ...banKey(fingerprint), ...ban }, ConditionExpression: 'attribute_not_exists(pk)' }));
        stored = ban;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        stored = await this.get(fingerprint);
        // Removed in between (a concurrent remove): put it again.
        if (!stored && attempt >= ADD_ATTEMPTS) throw new Error(`ban ${fingerprint} kept vanishing while being added`);
      }
    }
    const set = new Set([fingerprint]);
    await Promise.all(
      bandKeysWithin(fingerprint, 0).map((Key) =>
        this.doc.send(new UpdateCommand({ TableName: this.table, Key, UpdateExpression: 'ADD fingerprints :fp', ExpressionAttributeValues: { ':fp': set } })),
      ),
    );
    return stored;
  }

  /** Lifts a ban; false if there was none (its index entries are cleared either way). */
  async remove(id: string): Promise<boolean> {
    if (!fingerprintSchema.safeParse(id).success) return false;
    await Promise.all(bandKeysWithin(id, 0).map((Key) => this.unindex(Key, id)));
    const { Attributes } = await this.doc.send(new DeleteCommand({ TableName: this.table, Key: banKey(id), ReturnValues: 'ALL_OLD' }));
    return Attributes !== undefined;
  }

  async get(id: string): Promise<Ban | undefined> {
    if (!fingerprintSchema.safeParse(id).success) return undefined;
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: banKey(id), ConsistentRead: true }));
    return Item ? toBan(Item) : undefined;
  }

  /** A page of bans in fingerprint order; pass `cursor` back for the next (a bad one is a 400 `invalid_cursor`). */
  async list(options: { limit: number; cursor?: string | undefined }): Promise<{ items: Ban[]; cursor?: string }> {
    const page = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': BANS, ':prefix': 'BAN#' },
        Limit: options.limit,
        ...(options.cursor ? { ExclusiveStartKey: decodeCursor(options.cursor, cursorSchema) } : {}),
      }),
    );
    const items = (page.Items ?? []).map(toBan);
    return { items, ...(page.LastEvaluatedKey ? { cursor: encodeCursor(page.LastEvaluatedKey) } : {}) };
  }

  /** The nearest ban within `maxDistance` (0-7) of `fingerprint`, if any: one BatchGetItem of 4 or 68 band items. */
  async match(fingerprint: string, maxDistance: number): Promise<Ban | undefined> {
    fingerprintSchema.parse(fingerprint);
    z.int().min(0).max(MAX_BAN_DISTANCE).parse(maxDistance);
    const candidates = new Map<string, number>();
    for (const item of await this.batchGet(bandKeysWithin(fingerprint, maxDistance))) {
      for (const banned of (item['fingerprints'] as Set<string> | undefined) ?? []) {
        const distance = hammingDistance(fingerprint, banned);
        if (distance <= maxDistance) candidates.set(banned, distance);
      }
    }
    const nearest = [...candidates].sort(([a, da], [b, db]) => da - db || a.localeCompare(b));
    for (const [banned] of nearest) {
      const ban = await this.get(banned);
      if (ban) return ban;
    }
    return undefined;
  }

  /** Every item of `keys` that exists, retrying what DynamoDB leaves unprocessed (with backoff, as its SDKs do). */
  private async batchGet(keys: Record<string, string>[]): Promise<Record<string, NativeAttributeValue>[]> {
    const items: Record<string, NativeAttributeValue>[] = [];
    let pending: Record<string, NativeAttributeValue>[] = keys;
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > BATCH_ATTEMPTS) throw new Error(`BatchGetItem left ${pending.length} band keys unprocessed after ${BATCH_ATTEMPTS} attempts`);
      if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** (attempt - 2) * (0.5 + Math.random()))));
      const { Responses, UnprocessedKeys } = await this.doc.send(
        new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ProjectionExpression: 'fingerprints', ConsistentRead: true } } }),
      );
      items.push(...(Responses?.[this.table] ?? []));
      pending = UnprocessedKeys?.[this.table]?.Keys ?? [];
    }
    return items;
  }

  /** Takes a fingerprint out of a band item, and deletes the item once its set is empty. */
  private async unindex(Key: Record<string, string>, fingerprint: string): Promise<void> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key,
          UpdateExpression: 'DELETE fingerprints :fp',
          // Never creates an item for a band that does not hold it.
          ConditionExpression: 'contains(fingerprints, :one)',
          ExpressionAttributeValues: { ':fp': new Set([fingerprint]), ':one': fingerprint },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      // DynamoDB drops a set once empty; the item goes too unless a concurrent add refilled it.
      if (Attributes?.['fingerprints'] === undefined) {
        await this.doc.send(new DeleteCommand({ TableName: this.table, Key, ConditionExpression: 'attribute_not_exists(fingerprints)' }));
      }
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
