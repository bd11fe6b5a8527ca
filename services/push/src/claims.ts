/**
 * One claim per (notification, device), taken before sending, so a redelivered event never
 * notifies a device twice:
 *
 *   PUSHED#<uploadId>.<status>  SUB#<endpoint hash>   state sending|done, token, leaseUntil, expiresAt (7 days)
 *
 * The key comes from the event's data, the same as its deterministic id (`<uploadId>.ready`), so
 * any copy of the outcome finds it. A claim is `sending` with a lease while its message is in
 * flight, `done` once the push service answered for good (sent, gone, rejected), and deleted
 * when the send failed transiently so the broker's retry can try again. If the process dies
 * mid-send the lease runs out and a later delivery sends again: at least once per device, with a
 * duplicate only when the crash fell between the push service's 2xx and the `done` write (the
 * message's Topic and the app's notification tag make that duplicate replace the first).
 */
import { randomUUID } from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { TTL_ATTRIBUTE, epochSeconds, isConditionFailure, systemClock, type Clock } from '@avatar-pipeline/kit/table';

const CLAIM_TTL_SECONDS = 7 * 24 * 3600;
/** How much longer than the event's whole budget a claim's lease lasts. */
const LEASE_MARGIN_MS = 10_000;

/** A claim's lease outlasts the event's time budget (PUSH_TIMEOUT_MS), so it never expires under a live delivery. */
export const claimLeaseMs = (timeoutMs: number): number => timeoutMs + LEASE_MARGIN_MS;

export type Claim = { kind: 'claimed'; token: string } | { kind: 'done' } | { kind: 'in_flight' };

export class DeliveryClaims {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    /** How long a `sending` claim holds off other deliveries: longer than one event's time budget. */
    private readonly leaseMs: number,
    private readonly clock: Clock = systemClock,
  ) {}

  private key(notificationId: string, hash: string) {
    return { pk: `PUSHED#${notificationId}`, sk: `SUB#${hash}` };
  }

  /** Takes the device's claim unless it is done or another delivery holds a live lease. */
  async claim(notificationId: string, hash: string): Promise<Claim> {
    const now = this.clock();
    const token = randomUUID();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...this.key(notificationId, hash),
            state: 'sending',
            token,
            leaseUntil: now.getTime() + this.leaseMs,
            claimedAt: now.toISOString(),
            [TTL_ATTRIBUTE]: epochSeconds(now) + CLAIM_TTL_SECONDS,
          },
          ConditionExpression: 'attribute_not_exists(pk) OR (#state = :sending AND leaseUntil < :now)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':sending': 'sending', ':now': now.getTime() },
        }),
      );
      return { kind: 'claimed', token };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: this.key(notificationId, hash), ConsistentRead: true }));
    return Item?.['state'] === 'done' ? { kind: 'done' } : { kind: 'in_flight' };
  }

  /** Marks the device done; a no-op if the lease was lost to another delivery meanwhile. */
  async complete(notificationId: string, hash: string, token: string, outcome: string): Promise<void> {
    await this.ifHeld(
      new UpdateCommand({
        TableName: this.table,
        Key: this.key(notificationId, hash),
        UpdateExpression: 'SET #state = :done, outcome = :outcome, doneAt = :now REMOVE leaseUntil',
        ConditionExpression: '#token = :token',
        ExpressionAttributeNames: { '#state': 'state', '#token': 'token' },
        ExpressionAttributeValues: { ':done': 'done', ':outcome': outcome, ':now': this.clock().toISOString(), ':token': token },
      }),
    );
  }

  /** Gives the claim up so a redelivery can send (after a transient failure). */
  async release(notificationId: string, hash: string, token: string): Promise<void> {
    await this.ifHeld(
      new DeleteCommand({
        TableName: this.table,
        Key: this.key(notificationId, hash),
        ConditionExpression: '#token = :token',
        ExpressionAttributeNames: { '#token': 'token' },
        ExpressionAttributeValues: { ':token': token },
      }),
    );
  }

  private async ifHeld(command: UpdateCommand | DeleteCommand): Promise<void> {
    try {
      await this.doc.send(command);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
