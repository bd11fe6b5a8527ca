/**
 * The profile store: one `PLAYER#<id> / PROFILE` item holding the player's current avatar, and the
 * upload records' side of an avatar's life (`AvatarRecords`): kept while current, superseded when
 * a newer one takes its place, deleted AVATAR_RETAIN_SECONDS later by the reconciler.
 */
import { DeleteCommand, GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Avatar } from '@avatar-pipeline/kit/events';
import { itemKeys, OPEN_SINCE_ATTRIBUTE, OPEN_STATUS_ATTRIBUTE, openIndexEntries, TTL_ATTRIBUTE, epochSeconds, isConditionFailure, keys, systemClock, type Clock } from '@avatar-pipeline/kit/table';

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

/**
 * The PROFILE item as stored. A removed avatar (`removeAvatar`) leaves the item without `avatar`
 * but with its `avatarUploadId`: the high-water mark that keeps that upload (a redelivery) or an
 * older one finishing late from becoming the avatar again.
 */
export interface ProfileItem {
  playerId: string;
  avatarUploadId?: string;
  avatar?: Avatar;
  /** The avatar this one replaced (itself for a player's first): superseded again by a redelivery if the first attempt stopped short. */
  previousAvatarUploadId?: string;
  avatarRemovedAt?: string;
  updatedAt?: string;
  pictureSyncPending?: string;
}

export type AvatarOutcome =
  /** This upload's avatar is now the current one. */
  | 'updated'
  /** It already was (a redelivery): nothing written. */
  | 'unchanged'
  /** A newer upload is current, or this one's avatar was removed: nothing written. */
  | 'stale';

export interface AvatarChange {
  outcome: AvatarOutcome;
  /** For a current avatar, the upload it replaced (absent for a player's first). */
  previous?: string;
}

export class ProfileStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /** The stored item, with or without an avatar. */
  async item(playerId: string): Promise<ProfileItem | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: keys.player(playerId), sk: keys.profile }, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { pk: _pk, sk: _sk, ...item } = Item;
    return item as ProfileItem;
  }

  /** The player's current avatar (undefined: none yet, or removed). */
  async get(playerId: string): Promise<Profile | undefined> {
    const item = await this.item(playerId);
    if (!item?.avatar || !item.avatarUploadId) return undefined;
    const { avatar, avatarUploadId, updatedAt = '', pictureSyncPending: pending } = item;
    return { playerId: item.playerId, avatar, avatarUploadId, updatedAt, ...(pending ? { pictureSyncPending: pending } : {}) };
  }

  /**
   * Makes an upload's avatar current unless the same or a newer upload already is, so an older
   * upload finishing late never replaces a newer avatar. Upload ids are UUIDv7, so string order
   * is upload order. Only the avatar attributes are set (and a pending Cognito sync of the
   * previous avatar dropped: this one's sync follows): anything else on the profile stays.
   * Deterministic per upload (the same URLs for the same upload), so any retry may run it again.
   * The avatar it replaces is kept on the item (`previousAvatarUploadId`), so a retry that finds
   * it already current still knows which one to supersede.
   */
  async setAvatar(playerId: string, uploadId: string, avatar: Avatar): Promise<AvatarChange> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.profile },
          UpdateExpression:
            'SET playerId = :playerId, avatar = :avatar, previousAvatarUploadId = if_not_exists(avatarUploadId, :uploadId), avatarUploadId = :uploadId, updatedAt = :now REMOVE pictureSyncPending, avatarRemovedAt',
          ConditionExpression: 'attribute_not_exists(avatarUploadId) OR avatarUploadId < :uploadId',
          ExpressionAttributeValues: { ':playerId': playerId, ':avatar': avatar, ':uploadId': uploadId, ':now': this.clock().toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return withPrevious('updated', uploadId, Attributes?.['previousAvatarUploadId']);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    // Equal ids mean a redelivery: report it as current without touching updatedAt. Equal ids
    // without an avatar: it was removed, and stays so.
    const current = await this.item(playerId);
    return current?.avatarUploadId === uploadId && current.avatar ? withPrevious('unchanged', uploadId, current.previousAvatarUploadId) : { outcome: 'stale' };
  }

  /**
   * Removes the avatar if it is still this upload's (a newer one that became current meanwhile
   * stays). The item keeps `avatarUploadId`: see `ProfileItem`. False when it was not current.
   */
  async removeAvatar(playerId: string, uploadId: string): Promise<boolean> {
    const now = this.clock().toISOString();
    return this.conditional({
      UpdateExpression: 'SET avatarRemovedAt = :now, updatedAt = :now REMOVE avatar, pictureSyncPending',
      ConditionExpression: 'avatarUploadId = :uploadId AND attribute_exists(avatar)',
      ExpressionAttributeValues: { ':uploadId': uploadId, ':now': now },
    }, playerId);
  }

  /** Deletes the item if its avatar is this upload's (an erased player's late ready): a newer one stays. */
  async deleteIfCurrent(playerId: string, uploadId: string): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: keys.player(playerId), sk: keys.profile },
          ConditionExpression: 'avatarUploadId = :uploadId',
          ExpressionAttributeValues: { ':uploadId': uploadId },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
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

function withPrevious(outcome: AvatarOutcome, uploadId: string, previous: unknown): AvatarChange {
  return typeof previous === 'string' && previous !== uploadId ? { outcome, previous } : { outcome };
}

/** How long a finished upload record is kept (as `UploadStore.finish` keeps it). */
export const FINISHED_TTL_SECONDS = 30 * 24 * 3600;

/** The `open-uploads` partition of superseded avatars awaiting deletion. */
export const SUPERSEDED = 'superseded';

/** An entry of the superseded partition of the `open-uploads` index. */
export interface SupersededAvatar {
  playerId: string;
  uploadId: string;
  /** When it was superseded. */
  openSince: string;
}

/**
 * The upload records of avatars. The current avatar's record has no TTL (`keep`), so that when it
 * is superseded its record is still there to carry the deletion's due date: the superseded record
 * joins the `open-uploads` index (`openStatus = superseded`, `openSince` = when), and the
 * reconciler finds those due with one Query, deletes their objects, and takes them out of the
 * index (`retired`). The record then expires like any finished one. Every write here is
 * conditional on the record existing: none ever creates one (an erased player's stays erased).
 */
export class AvatarRecords {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  private async update(playerId: string, uploadId: string, update: { UpdateExpression: string; ConditionExpression: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> }): Promise<boolean> {
    try {
      await this.doc.send(new UpdateCommand({ TableName: this.table, Key: itemKeys.upload(playerId, uploadId), ...update }));
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** The upload is the current avatar: its record stays as long as it is. */
  keep(playerId: string, uploadId: string): Promise<boolean> {
    return this.update(playerId, uploadId, {
      UpdateExpression: 'REMOVE #ttl',
      ConditionExpression: 'attribute_exists(pk) AND #status = :ready AND attribute_not_exists(supersededAt)',
      ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE, '#status': 'status' },
      ExpressionAttributeValues: { ':ready': 'ready' },
    });
  }

  /**
   * A newer avatar replaced this one (or one was current before it ended ready): its objects are
   * deleted once the retention has passed. Once per upload (`supersededAt`): a redelivery does not
   * push the due date back. The record expires like any finished one, after its deletion is due.
   */
  supersede(playerId: string, uploadId: string): Promise<boolean> {
    const now = this.clock();
    return this.update(playerId, uploadId, {
      UpdateExpression: 'SET supersededAt = :now, #openStatus = :superseded, #openSince = :now, #ttl = :ttl',
      ConditionExpression: 'attribute_exists(pk) AND #status = :ready AND attribute_not_exists(supersededAt)',
      ExpressionAttributeNames: { '#status': 'status', '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE, '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: { ':ready': 'ready', ':superseded': SUPERSEDED, ':now': now.toISOString(), ':ttl': epochSeconds(now) + FINISHED_TTL_SECONDS },
    });
  }

  /**
   * The avatar was removed (its objects are gone): the record no longer lists their URLs, and
   * expires again like any finished one.
   */
  release(playerId: string, uploadId: string): Promise<boolean> {
    const now = this.clock();
    return this.update(playerId, uploadId, {
      UpdateExpression: 'SET #ttl = if_not_exists(#ttl, :ttl) REMOVE avatar',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: { ':ttl': epochSeconds(now) + FINISHED_TTL_SECONDS },
    });
  }

  /** Superseded avatars whose deletion is due (superseded before `before`), oldest first, a page at a time. */
  async *superseded(before: Date, pageSize = 100): AsyncGenerator<SupersededAvatar> {
    for await (const item of openIndexEntries(this.doc, this.table, SUPERSEDED, before, pageSize)) {
      const { playerId, uploadId, [OPEN_SINCE_ATTRIBUTE]: openSince } = item;
      if (typeof playerId === 'string' && typeof uploadId === 'string') yield { playerId, uploadId, openSince: String(openSince) };
    }
  }

  /** A superseded avatar's objects are deleted: it leaves the index, and its record no longer lists their URLs. */
  retired(playerId: string, uploadId: string): Promise<boolean> {
    return this.update(playerId, uploadId, {
      UpdateExpression: 'REMOVE #openStatus, #openSince, avatar',
      ConditionExpression: '#openStatus = :superseded',
      ExpressionAttributeNames: { '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE },
      ExpressionAttributeValues: { ':superseded': SUPERSEDED },
    });
  }
}
