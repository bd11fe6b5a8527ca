/** Everything profile and its reconciler keep in the table, built once from a document client. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BanList } from '@avatar-pipeline/kit/bans';
import { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { UploadStore, systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';
import { SubscriptionStore } from '@avatar-pipeline/webpush';
import { Partitions } from './partitions.js';
import { AvatarRecords, ProfileStore } from './profiles.js';
import { ReviewStore } from './reviews.js';
import { Tombstones } from './tombstones.js';

/** Whose processed-event records the thumbnailed route keeps (`ProcessedEvents`: in the player's partition, which erasure deletes). */
export const THUMBNAILED_CONSUMER = 'profile';

/** Whose processed-event records the dead-letter sink keeps (`ProcessedEvents`: in the player's partition, which erasure deletes). */
export const DEAD_LETTER_CONSUMER = 'profile-dead-letter';

export interface ProfileStores {
  uploads: UploadStore;
  profiles: ProfileStore;
  records: AvatarRecords;
  owners: UploadOwners;
  tombstones: Tombstones;
  subscriptions: SubscriptionStore;
  bans: BanList;
  reviews: ReviewStore;
  /** The events each consumer has taken: the thumbnailed route's, and the dead-letter sink's. */
  processed: { thumbnailed: ProcessedEvents; deadLetters: ProcessedEvents };
  /** Whole partitions, for the erasure. */
  partitions: Partitions;
  /** The table's readiness check. */
  ready(): Promise<unknown>;
}

export function profileStores(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): ProfileStores {
  return {
    uploads: new UploadStore(doc, table, clock),
    profiles: new ProfileStore(doc, table, clock),
    records: new AvatarRecords(doc, table, clock),
    owners: new UploadOwners(doc, table, clock),
    tombstones: new Tombstones(doc, table, clock),
    subscriptions: new SubscriptionStore(doc, table, clock),
    bans: new BanList(doc, table, clock),
    reviews: new ReviewStore(doc, table),
    processed: {
      thumbnailed: new ProcessedEvents(doc, table, THUMBNAILED_CONSUMER, clock),
      deadLetters: new ProcessedEvents(doc, table, DEAD_LETTER_CONSUMER, clock),
    },
    partitions: new Partitions(doc, table),
    ready: tableReadiness(doc, table),
  };
}
