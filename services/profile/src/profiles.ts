/** The profile store: one `PLAYER#<id> / PROFILE` item holding the player's current avatar. */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure, keys, systemClock, type Avatar, type Clock } from '@avatar-pipeline/kit';

export interface Profile {
  playerId: string;
  avatar: Avatar;
  /** The upload the avatar came from (UUIDv7: later uploads sort higher). */
  avatarUploadId: string;
  updatedAt: string;
  /**
   * Set to `avatarUploadId` while that avatar's Cognito `picture` sync has failed (best effort,
   * never holding back ready): what is left to retry. Removed by a later successful sync and by
   * any newer avatar (whose own sync supersedes it). Internal: never served by the API.
   */
  pictureSyncPending?: string;
}

export type AvatarOutcome =
  /** This upload's avatar is now the current one. */
  | 'updated'
  /** It already was (a redelivery): nothing written. */
  | 'unchanged'
  /** A newer upload is current: nothing written. */
  | 'stale';

export class ProfileStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  async get(playerId: string): Promise<Profile | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: keys.player(playerId), sk: keys.profile }, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const pending = Item['pictureSyncPending'] as string | undefined;
    return {
      playerId: Item['playerId'],
      avatar: Item['avatar'],
      avatarUploadId: Item['avatarUploadId'],
      updatedAt: Item['updatedAt'],
      ...(pending ? { pictureSyncPending: pending } : {}),
    } as Profile;
  }

  /**
   * Makes an upload's avatar current unless the same or a newer upload already is, so an older
   * upload finishing late never replaces a newer avatar. Upload ids are UUIDv7, so string order
   * is upload order. Only the avatar attributes are set (and a pending Cognito sync of the
   * previous avatar dropped: this one's sync follows): anything else on the profile stays.
   * Deterministic per upload (the same URLs for the same upload), so any retry may run it again.
   */
  async setAvatar(playerId: string, uploadId: string, avatar: Avatar): Promise<AvatarOutcome> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.profile },
          UpdateExpression: 'SET playerId = :playerId, avatar = :avatar, avatarUploadId = :uploadId, updatedAt = :now REMOVE pictureSyncPending',
          ConditionExpression: 'attribute_not_exists(avatarUploadId) OR avatarUploadId < :uploadId',
          ExpressionAttributeValues: { ':playerId': playerId, ':avatar': avatar, ':uploadId': uploadId, ':now': this.clock().toISOString() },
        }),
      );
      return 'updated';
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // Equal ids mean a redelivery: report it as current without touching updatedAt.
    const current = await this.get(playerId);
    return current?.avatarUploadId === uploadId ? 'unchanged' : 'stale';
  }

  /**
   * Records that the Cognito sync of this upload's avatar failed, while it is still the current
   * avatar (a newer one has its own sync). Returns false when it no longer is.
   */
  async markPictureSyncPending(playerId: string, uploadId: string): Promise<boolean> {
    return this.conditional({
      UpdateExpression: 'SET pictureSyncPending = :uploadId',
      ConditionExpression: 'avatarUploadId = :uploadId',
      ExpressionAttributeValues: { ':uploadId': uploadId },
    }, playerId);
  }

  /** Drops the pending mark of this upload's sync (it has now succeeded); false when there was none. */
  async clearPictureSyncPending(playerId: string, uploadId: string): Promise<boolean> {
    return this.conditional({
      UpdateExpression: 'REMOVE pictureSyncPending',
      ConditionExpression: 'pictureSyncPending = :uploadId',
      ExpressionAttributeValues: { ':uploadId': uploadId },
    }, playerId);
  }

  private async conditional(
    update: { UpdateExpression: string; ConditionExpression: string; ExpressionAttributeValues: Record<string, unknown> },
    playerId: string,
  ): Promise<boolean> {
    try {
      await this.doc.send(new UpdateCommand({ TableName: this.table, Key: { pk: keys.player(playerId), sk: keys.profile }, ...update }));
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}
