/**
 * Processed-event records: events are delivered at least once, so a consumer remembers each
 * event it finished (by source and id, with a TTL) together with the reply it gave, and answers
 * a redelivery with that same reply instead of doing the work again.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { OutgoingEvent } from './cloudevents.js';
import { documentCommand } from './sdk.js';
import { TTL_ATTRIBUTE, epochSeconds, systemClock, type Clock } from './table.js';

const GetCommand = documentCommand('GetCommand');
const PutCommand = documentCommand('PutCommand');

const DEFAULT_TTL_SECONDS = 7 * 24 * 3600;

export class ProcessedEvents {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly consumer: string,
    private readonly clock: Clock = systemClock,
    private readonly ttlSeconds = DEFAULT_TTL_SECONDS,
  ) {}

  private key(source: string, id: string) {
    const hash = createHash('sha256').update(`${source}\n${id}`).digest('base64url');
    return { pk: `EVENT#${this.consumer}#${hash}`, sk: 'EVENT' };
  }

  /** The recorded outcome of an event, or undefined if it was never finished. */
  async lookup(source: string, id: string): Promise<{ reply: OutgoingEvent | undefined } | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(source, id), ConsistentRead: true }));
    if (!Item) return undefined;
    return { reply: Item['reply'] as OutgoingEvent | undefined };
  }

  async record(source: string, id: string, reply: OutgoingEvent | undefined): Promise<void> {
    const now = this.clock();
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...this.key(source, id), reply, processedAt: now.toISOString(), [TTL_ATTRIBUTE]: epochSeconds(now) + this.ttlSeconds },
      }),
    );
  }

  /**
   * Runs `work` unless this event was already finished, in which case the first reply is
   * returned. `work` itself must be idempotent: two concurrent deliveries may both run it.
   */
  async once(
    event: { source: string; id: string },
    work: () => Promise<OutgoingEvent | undefined>,
  ): Promise<{ reply: OutgoingEvent | undefined; duplicate: boolean }> {
    const seen = await this.lookup(event.source, event.id);
    if (seen) return { reply: seen.reply, duplicate: true };
    const reply = await work();
    await this.record(event.source, event.id, reply);
    return { reply, duplicate: false };
  }
}
