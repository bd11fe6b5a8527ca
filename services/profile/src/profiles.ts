/** The profile store: one `PLAYER#<id> / PROFILE` item holding the player's current avatar. */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure, keys, systemClock, type Avatar, type Clock } from '@avatar-pipeline/kit';

export interface Profile {
  playerId: string;
  avatar: Avatar;
  /** The upload the avatar came from (UUIDv7: later uploads sort higher). */
  avatarUploadId: string;
  updatedAt: string;
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
    return { playerId: Item['playerId'], avatar: Item['avatar'], avatarUploadId: Item['avatarUploadId'], updatedAt: Item['updatedAt'] } as Profile;
  }

  /**
   * Makes an upload's avatar current unless the same or a newer upload already is, so an older
   * upload finishing late never replaces a newer avatar. Upload ids are UUIDv7, so string order
   * is upload order. Only the avatar attributes are set: anything else on the profile stays.
   */
  async setAvatar(playerId: string, uploadId: string, avatar: Avatar): Promise<AvatarOutcome> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.profile },
          UpdateExpression: 'SET playerId = :playerId, avatar = :avatar, avatarUploadId = :uploadId, updatedAt = :now',
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
}
