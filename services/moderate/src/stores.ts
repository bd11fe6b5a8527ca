/** What moderate keeps in the table: the upload records and their owners, the events it answered, the ban list. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BanList } from '@avatar-pipeline/kit/bans';
import { ProcessedEvents } from '@avatar-pipeline/kit/idempotency';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { systemClock, UploadStore, type Clock } from '@avatar-pipeline/kit/table';
import { UploadOwners } from '@avatar-pipeline/kit/upload-owners';

export interface ModerateStores {
  uploads: UploadStore;
  processed: ProcessedEvents;
  owners: UploadOwners;
  bans: BanList;
  ready(): Promise<unknown>;
}

export function moderateStores(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): ModerateStores {
  return {
    uploads: new UploadStore(doc, table, clock),
    processed: new ProcessedEvents(doc, table, 'moderate', clock),
    owners: new UploadOwners(doc, table, clock),
    bans: new BanList(doc, table, clock),
    ready: tableReadiness(doc, table),
  };
}
