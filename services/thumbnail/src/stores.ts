/** What thumbnail reads from the table: the upload records, for what moderate approved. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { systemClock, UploadStore, type Clock } from '@avatar-pipeline/kit/table';

export interface ThumbnailStores {
  /** The SHA-256 moderate's conditional approval recorded on an upload. */
  approvals: Pick<UploadStore, 'approvedSha256'>;
  ready(): Promise<unknown>;
}

export function thumbnailStores(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): ThumbnailStores {
  return { approvals: new UploadStore(doc, table, clock), ready: tableReadiness(doc, table) };
}
