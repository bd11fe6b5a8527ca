/**
 * The single DynamoDB table (`pk`, `sk`, TTL attribute `expiresAt`):
 *
 *   PLAYER#<playerId>  PROFILE            the player's current avatar
 *   PLAYER#<playerId>  UPLOAD#<uploadId>  one upload and its status
 *   PLAYER#<playerId>  SUB#<hash>         one Web Push subscription
 *   PUSHEP#<hash>      OWNER              the player holding a push endpoint (subscriptions.ts)
 *   EVENT#<consumer>#<hash>  EVENT        an event a consumer has processed (TTL)
 *   RATE#<scope>#<playerId>  <window>     a rate-limit window counter (TTL)
 */
import { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import type { Avatar, ModerationLabel, Reason } from './events.js';

export const TTL_ATTRIBUTE = 'expiresAt';

export const keys = {
  player: (playerId: string) => `PLAYER#${playerId}`,
  profile: 'PROFILE',
  upload: (uploadId: string) => `UPLOAD#${uploadId}`,
  subscription: (hash: string) => `SUB#${hash}`,
  subscriptionPrefix: 'SUB#',
};

export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
export const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

export const terminalStatuses = ['ready', 'rejected', 'failed'] as const;
export type TerminalStatus = (typeof terminalStatuses)[number];
export type UploadStatus = 'pending' | 'processing' | TerminalStatus;

export const isTerminal = (status: UploadStatus): status is TerminalStatus => (terminalStatuses as readonly string[]).includes(status);

export interface UploadRecord {
  playerId: string;
  uploadId: string;
  status: UploadStatus;
  contentType: string;
  maxBytes: number;
  createdAt: string;
  updatedAt: string;
  reason?: Reason;
  labels?: ModerationLabel[];
  avatar?: Avatar;
  /** SHA-256 of the bytes moderate approved: the first approved object decides the upload. */
  sha256?: string;
}

/** Pending uploads that never arrive vanish after a day; finished ones are kept for 30 days. */
const PENDING_TTL_SECONDS = 24 * 3600;
const FINISHED_TTL_SECONDS = 30 * 24 * 3600;

export function isConditionFailure(err: unknown): boolean {
  return err instanceof ConditionalCheckFailedException || (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

/** An upload item as its record: the table's keys and TTL left out. */
function withoutKeys(item: Record<string, NativeAttributeValue> | undefined): UploadRecord {
  const { pk: _pk, sk: _sk, [TTL_ATTRIBUTE]: _ttl, ...record } = item ?? {};
  return record as UploadRecord;
}

export class UploadStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  async createPending(upload: { playerId: string; uploadId: string; contentType: string; maxBytes: number }): Promise<UploadRecord> {
    const now = this.clock();
    const record: UploadRecord = { ...upload, status: 'pending', createdAt: now.toISOString(), updatedAt: now.toISOString() };
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { pk: keys.player(upload.playerId), sk: keys.upload(upload.uploadId), ...record, [TTL_ATTRIBUTE]: epochSeconds(now) + PENDING_TTL_SECONDS },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
    return record;
  }

  async get(playerId: string, uploadId: string): Promise<UploadRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: keys.player(playerId), sk: keys.upload(uploadId) }, ConsistentRead: true }),
    );
    return Item ? withoutKeys(Item) : undefined;
  }

  /** The SHA-256 of the bytes moderate approved for this upload, if it approved any (only `approve` writes it). */
  async approvedSha256(playerId: string, uploadId: string): Promise<string | undefined> {
    return (await this.get(playerId, uploadId))?.sha256;
  }

  /** pending -> processing; a no-op in any other state. */
  async markProcessing(playerId: string, uploadId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.upload(uploadId) },
          UpdateExpression: 'SET #status = :processing, updatedAt = :now',
          ConditionExpression: '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':processing': 'processing', ':pending': 'pending', ':now': this.clock().toISOString() },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Records that moderate approved the bytes with this SHA-256, while the upload is in flight. The
   * first approval decides: the same bytes are approved again (a redelivery, a retried POST of the
   * same file), other bytes never (a later write under the key). `approved: false` returns the
   * record as it stands: ended, or holding other approved bytes.
   */
  async approve(playerId: string, uploadId: string, sha256: string): Promise<{ approved: boolean; record: UploadRecord | undefined }> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.upload(uploadId) },
          UpdateExpression: 'SET sha256 = :sha256',
          ConditionExpression: 'attribute_exists(pk) AND #status IN (:pending, :processing) AND (attribute_not_exists(sha256) OR sha256 = :sha256)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':sha256': sha256, ':pending': 'pending', ':processing': 'processing' },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { approved: true, record: withoutKeys(Attributes) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { approved: false, record: await this.get(playerId, uploadId) };
    }
  }

  /**
   * Moves an upload into a terminal state exactly once. Returns the record as it stands
   * afterwards: if it had already ended (in any terminal state) it is returned unchanged, so a
   * redelivered event sees the first outcome and never a second one.
   *
   * `moderated` (moderate's own outcomes) names the bytes the outcome is about (undefined: none
   * were read); it is refused, leaving the upload in flight, when other bytes were approved first.
   */
  async finish(
    playerId: string,
    uploadId: string,
    status: TerminalStatus,
    details: { reason?: Reason; labels?: ModerationLabel[]; avatar?: Avatar } = {},
    moderated?: { sha256: string | undefined },
  ): Promise<{ changed: boolean; record: UploadRecord | undefined }> {
    const now = this.clock();
    const names: Record<string, string> = { '#status': 'status', '#ttl': TTL_ATTRIBUTE };
    const values: Record<string, unknown> = {
      ':status': status,
      ':now': now.toISOString(),
      ':ttl': epochSeconds(now) + FINISHED_TTL_SECONDS,
      ':pending': 'pending',
      ':processing': 'processing',
    };
    const sets = ['#status = :status', 'updatedAt = :now', '#ttl = :ttl'];
    for (const [field, value] of Object.entries(details)) {
      if (value === undefined) continue;
      names[`#${field}`] = field;
      values[`:${field}`] = value;
      sets.push(`#${field} = :${field}`);
    }
    let condition = 'attribute_exists(pk) AND #status IN (:pending, :processing)';
    if (moderated?.sha256 !== undefined) {
      condition += ' AND (attribute_not_exists(sha256) OR sha256 = :sha256)';
      values[':sha256'] = moderated.sha256;
    } else if (moderated) {
      condition += ' AND attribute_not_exists(sha256)';
    }
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.upload(uploadId) },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { changed: true, record: withoutKeys(Attributes) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { changed: false, record: await this.get(playerId, uploadId) };
    }
  }
}

/** Creates the table (and its TTL) if it does not exist: used by the local stack and tests. */
export async function ensureTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return;
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
  }
  await client.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  for (let i = 0; i < 100; i++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    if (Table?.TableStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }));
  } catch {
    // Some local servers do not implement TTL; expiry is then simply not enforced.
  }
}
