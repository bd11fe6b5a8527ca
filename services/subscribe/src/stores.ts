/** Subscribe's records in the table: the players' push subscriptions and their subscription windows. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { playerRateLimiters, type PlayerRateLimiters } from '@avatar-pipeline/kit/rate-limit';
import { tableReadiness } from '@avatar-pipeline/kit/readiness';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';
import { SubscriptionStore } from '@avatar-pipeline/webpush';

export interface SubscribeStores {
  subscriptions: SubscriptionStore;
  rateLimiter: PlayerRateLimiters;
  ready(): Promise<unknown>;
}

export function subscribeStores(doc: DynamoDBDocumentClient, table: string, clock: Clock = systemClock): SubscribeStores {
  return {
    subscriptions: new SubscriptionStore(doc, table, clock),
    rateLimiter: playerRateLimiters(doc, table, clock),
    ready: tableReadiness(doc, table),
  };
}
