/** Push's records in the table: the players' subscriptions and the claims that keep each device notified once. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { SubscriptionStore } from '@avatar-pipeline/webpush';
import { DeliveryClaims } from './claims.js';

export interface PushStores {
  subscriptions: SubscriptionStore;
  claims: DeliveryClaims;
  ready(): Promise<unknown>;
}

/** `claimLeaseMs`: how long a claim being sent holds off other deliveries (`claimLeaseMs(PUSH_TIMEOUT_MS)`). */
export function pushStores(doc: DynamoDBDocumentClient, table: string, claimLeaseMs: number, clock: Clock = systemClock): PushStores {
  return {
    subscriptions: new SubscriptionStore(doc, table, clock),
    claims: new DeliveryClaims(doc, table, claimLeaseMs, clock),
    ready: tableReadiness(doc, table),
  };
}
