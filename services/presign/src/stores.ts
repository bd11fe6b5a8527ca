/** Presign's records in the table: the pending upload each ticket starts, and the players' upload windows. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { playerRateLimiters, type PlayerRateLimiters } from '@avatar-pipeline/kit/rate-limit';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { UploadStore, systemClock, type Clock } from '@avatar-pipeline/kit/table';

export interface PresignStores {
  uploads: UploadStore;
  rateLimiter: PlayerRateLimiters;
  ready(): Promise<unknown>;
}

export function presignStores(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): PresignStores {
  return {
    uploads: new UploadStore(doc, table, clock),
    rateLimiter: playerRateLimiters(doc, table, clock),
    ready: tableReadiness(doc, table),
  };
}
