/**
 * Processed-event records: events are delivered at least once, so a consumer remembers each
 * event it finished (by source and id, with a TTL) together with the reply it gave, and answers
 * a redelivery with that same reply instead of doing the work again.
 *
 * A record of an event about an upload (subject `uploads/<playerId>/<uploadId>`) lives in the
 * player's partition (`PLAYER#<playerId>`, sk `EVENT#<consumer>#<hash>`): the reply names the
 * player, and erasing the player deletes the partition, so no record outlives the erasure (S3
 * makes up its events' ids: a record keyed by them alone could not be found again). Other events'
 * records have a partition of their own (`EVENT#<consumer>#<hash>`, sk `EVENT`).
 */
import { createHash } from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { OutgoingEvent } from './cloudevents.js';
import { parseUploadKey } from './events.js';
import { documentCommand } from './sdk.js';
import { TTL_ATTRIBUTE, epochSeconds, keys, systemClock, type Clock } from './table.js';

const GetCommand = documentCommand('GetCommand');
const PutCommand = documentCommand('PutCommand');

const DEFAULT_TTL_SECONDS = 7 * 24 * 3600;

/** What names an event: its source and id; its subject says whose it is. */
export interface ProcessedEvent {
  source: string;
  id: string;
  subject?: string | undefined;
}

export class ProcessedEvents {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly consumer: string,
    private readonly clock: Clock = systemClock,
    private readonly ttlSeconds = DEFAULT_TTL_SECONDS,
  ) {}

  private key({ source, id, subject }: ProcessedEvent) {
    const name = `EVENT#${this.consumer}#${createHash('sha256').update(`${source}\n${id}`).digest('base64url')}`;
    const upload = subject === undefined ? undefined : parseUploadKey(subject);
    return upload ? { pk: keys.player(upload.playerId), sk: name } : { pk: name, sk: 'EVENT' };
  }

  /** The recorded outcome of an event, or undefined if it was never finished. */
  async lookup(event: ProcessedEvent): Promise<{ reply: OutgoingEvent | undefined } | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(event), ConsistentRead: true }));
    if (!Item) return undefined;
    return { reply: Item['reply'] as OutgoingEvent | undefined };
  }

  async record(event: ProcessedEvent, reply: OutgoingEvent | undefined): Promise<void> {
    const now = this.clock();
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...this.key(event), reply, processedAt: now.toISOString(), [TTL_ATTRIBUTE]: epochSeconds(now) + this.ttlSeconds },
      }),
    );
  }

  /**
   * Runs `work` unless this event was already finished, in which case the first reply is
   * returned. `work` itself must be idempotent: two concurrent deliveries may both run it.
   */
  async once(event: ProcessedEvent, work: () => Promise<OutgoingEvent | undefined>): Promise<{ reply: OutgoingEvent | undefined; duplicate: boolean }> {
    const seen = await this.lookup(event);
    if (seen) return { reply: seen.reply, duplicate: true };
    const reply = await work();
    await this.record(event, reply);
    return { reply, duplicate: false };
  }
}
