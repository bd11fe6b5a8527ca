/**
 * `UPLOAD#<uploadId>` / `OWNER`: whose an upload is and its picture's perceptual hash, for what is
 * given only an upload id (a moderator banning an upload or a current avatar). moderate writes it
 * once it has the fingerprint; it expires with the upload record, except for the upload that is its
 * player's current avatar (profile keeps it until that avatar is superseded, removed or erased).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentCommand } from './sdk.js';
import { epochSeconds, isConditionFailure, systemClock, TTL_ATTRIBUTE, type Clock } from './table.js';

const DeleteCommand = documentCommand('DeleteCommand');
const GetCommand = documentCommand('GetCommand');
const PutCommand = documentCommand('PutCommand');
const UpdateCommand = documentCommand('UpdateCommand');

export interface UploadOwner {
  uploadId: string;
  playerId: string;
  /** 64-bit perceptual hash, 16 lowercase hex digits. */
  fingerprint: string;
  createdAt: string;
}

/** As long as a finished upload record is kept. */
const OWNER_TTL_SECONDS = 30 * 24 * 3600;

const key = (uploadId: string) => ({ pk: `UPLOAD#${uploadId}`, sk: 'OWNER' });

export class UploadOwners {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Idempotent: a redelivery writes the same owner and fingerprint (the first approved bytes decide an upload). */
  async put(owner: Omit<UploadOwner, 'createdAt'>): Promise<void> {
    const now = this.clock();
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...key(owner.uploadId), ...owner, createdAt: now.toISOString(), [TTL_ATTRIBUTE]: epochSeconds(now) + OWNER_TTL_SECONDS },
      }),
    );
  }

  async get(uploadId: string): Promise<UploadOwner | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: key(uploadId), ConsistentRead: true }));
    if (!Item) return undefined;
    const { uploadId: id, playerId, fingerprint, createdAt } = Item as UploadOwner;
    return { uploadId: id, playerId, fingerprint, createdAt };
  }

  /** The upload became its player's current avatar: kept past the upload record's expiry. */
  async keep(uploadId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({ TableName: this.table, Key: key(uploadId), UpdateExpression: 'REMOVE #ttl', ConditionExpression: 'attribute_exists(pk)', ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE } }),
      );
    } catch (err) {
      // No owner item (an upload moderated before fingerprints existed): nothing to keep.
      if (!isConditionFailure(err)) throw err;
    }
  }

  async delete(uploadId: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.table, Key: key(uploadId) }));
  }
}
