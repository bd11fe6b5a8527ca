/**
 * The single DynamoDB table (`pk`, `sk`, TTL attribute `expiresAt`):
 *
 *   PLAYER#<playerId>  PROFILE            the player's current avatar
 *   PLAYER#<playerId>  UPLOAD#<uploadId>  one upload and its status
 *   REVIEW#<uploadId>  REVIEW             an upload in moderation's review band, and its decision
 *   PLAYER#<playerId>  SUB#<hash>         one Web Push subscription
 *   PUSHEP#<hash>      OWNER              the player holding a push endpoint (subscriptions.ts)
 *   EVENT#<consumer>#<hash>  EVENT        an event a consumer has processed (TTL)
 *   RATE#<scope>#<playerId>  <window>     a rate-limit window counter (TTL)
 *
 * Upload items also carry `openStatus` and `openSince` while the reconciler watches them: the keys
 * of the sparse global secondary index `open-uploads` (see `openUploadsIndex`).
 *
 * The key attributes and the index are defined here, for whoever creates the table: the local
 * stack and the tests (local/src/stand-ins/table-setup.ts), the stand-ins' setup Job (cdk8s/src/stand-ins.ts)
 * and the operator on AWS (docs/deploy.md).
 */
import type { AttributeDefinition, GlobalSecondaryIndex } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient, NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import type { ApprovedData, Avatar, ModerationLabel, Reason } from './events.js';
import { documentCommand } from './sdk.js';
import type { TraceContext } from './tracing.js';

const GetCommand = documentCommand('GetCommand');
const PutCommand = documentCommand('PutCommand');
const QueryCommand = documentCommand('QueryCommand');
const TransactWriteCommand = documentCommand('TransactWriteCommand');
const UpdateCommand = documentCommand('UpdateCommand');

export const TTL_ATTRIBUTE = 'expiresAt';

export const keys = {
  player: (playerId: string) => `PLAYER#${playerId}`,
  profile: 'PROFILE',
  upload: (uploadId: string) => `UPLOAD#${uploadId}`,
  subscription: (hash: string) => `SUB#${hash}`,
  subscriptionPrefix: 'SUB#',
  review: (uploadId: string) => `REVIEW#${uploadId}`,
  reviewSk: 'REVIEW',
};

/** The whole keys of the items several modules address: an upload record, a review. */
export const itemKeys = {
  upload: (playerId: string, uploadId: string) => ({ pk: keys.player(playerId), sk: keys.upload(uploadId) }),
  review: (uploadId: string) => ({ pk: keys.review(uploadId), sk: keys.reviewSk }),
};

export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
export const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

/** `expired`: the ticket was never used in time (only the reconciler ends an upload so). */
export const terminalStatuses = ['ready', 'rejected', 'failed', 'expired'] as const;
export type TerminalStatus = (typeof terminalStatuses)[number];
/**
 * The statuses an upload waits in; the reconciler ends one that waits too long. `in_review`: moderation
 * put it in the policy's review band; a moderator's approval moves it back to `processing` (the
 * pipeline goes on as after an automatic approval), a rejection or the review timeout ends it `rejected`.
 */
export const openStatuses = ['pending', 'processing', 'in_review'] as const;
export type OpenStatus = (typeof openStatuses)[number];
export type UploadStatus = OpenStatus | TerminalStatus;

/**
 * The sparse index of the uploads the reconciler watches (`reconcile` in the profile package):
 * partition `openStatus` (the status it waits in), sort `openSince` (ISO 8601, UTC: when that
 * wait's clock started: for `pending` the ticket's expiry, as no upload can begin after it; for
 * `processing` the moment processing began; for `in_review` the moment review was requested, so the
 * open reviews are one Query too, oldest first). Only upload items in a non-terminal state carry the
 * two attributes, so the index holds nothing else and "pending for too long" is one Query
 * (`openStatus = pending AND openSince < now - timeout`), never a table scan. Every terminal
 * transition removes them, except the reconciler's own, which keeps them until the outcome has
 * been announced (its index entry then stands for "end reached, player not told yet").
 */
export const OPEN_UPLOADS_INDEX = 'open-uploads';
export const OPEN_STATUS_ATTRIBUTE = 'openStatus';
export const OPEN_SINCE_ATTRIBUTE = 'openSince';

/** The index as CreateTable and UpdateTable (and the AWS CLI's JSON) take it. */
export function openUploadsIndex(): GlobalSecondaryIndex {
  return {
    IndexName: OPEN_UPLOADS_INDEX,
    KeySchema: [
      { AttributeName: OPEN_STATUS_ATTRIBUTE, KeyType: 'HASH' },
      { AttributeName: OPEN_SINCE_ATTRIBUTE, KeyType: 'RANGE' },
    ],
    // What the reconciler reads from the index; it reads the rest from the item itself.
    Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['status', 'playerId', 'uploadId', 'createdAt'] },
  };
}

/** Every key attribute of the table and its index (all strings). */
export function tableAttributeDefinitions(): AttributeDefinition[] {
  return ['pk', 'sk', OPEN_STATUS_ATTRIBUTE, OPEN_SINCE_ATTRIBUTE].map((AttributeName) => ({ AttributeName, AttributeType: 'S' }));
}

export const isTerminal = (status: UploadStatus): status is TerminalStatus => (terminalStatuses as readonly string[]).includes(status);

export interface UploadRecord {
  playerId: string;
  uploadId: string;
  status: UploadStatus;
  contentType: string;
  maxBytes: number;
  createdAt: string;
  updatedAt: string;
  reason?: Reason;
  labels?: ModerationLabel[];
  avatar?: Avatar;
  /** SHA-256 of the bytes moderate approved (or sent to review): the first such object decides the upload. */
  sha256?: string;
  /** The picture's 64-bit perceptual hash (16 lowercase hex digits), written by moderate when it decides. */
  fingerprint?: string;
  /** With tracing on, the trace of the request that issued the upload: its events continue it (see `trace`). */
  traceparent?: string;
  tracestate?: string;
}

export const reviewStatuses = ['open', 'approved', 'rejected', 'expired'] as const;
/** `open` until a moderator decides (`approved`, `rejected`) or the review times out (`expired`). */
export type ReviewStatus = (typeof reviewStatuses)[number];

/** A moderator's decision on a review. */
export interface ReviewDecision {
  /** The moderator's player id. */
  by: string;
  at: string;
  decision: 'approve' | 'reject';
  note?: string;
}

/** `REVIEW#<uploadId>` / `REVIEW`: an upload in moderation's review band (kept after the decision: the record of who decided what). */
export interface Review {
  uploadId: string;
  playerId: string;
  status: ReviewStatus;
  /** Every label the model gave, with its confidence: the scores a moderator sees. */
  labels: ModerationLabel[];
  fingerprint: string;
  requestedAt: string;
  uploadedAt: string;
  /** The exact data of the `avatarpipeline.avatar.approved` event moderate would have sent: an approval sends it. */
  approved: ApprovedData;
  decision?: ReviewDecision;
}

/** What moderate knows when it sends an upload to review. */
export interface ReviewRequest {
  fingerprint: string;
  labels: ModerationLabel[];
  uploadedAt: string;
  approved: ApprovedData;
}

/** Pending uploads that never arrive vanish after a day; finished ones are kept for 30 days. */
const PENDING_TTL_SECONDS = 24 * 3600;
const FINISHED_TTL_SECONDS = 30 * 24 * 3600;

/** The SDK's ConditionalCheckFailedException (or a stand-in's error of that name), known by its name. */
export function isConditionFailure(err: unknown): boolean {
  return (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

/**
 * A TransactWriteItems call refused because a condition of one of its items failed (as opposed to a
 * conflict with another transaction or a throttle, worth retrying as they are).
 */
export function isTransactionConditionFailure(err: unknown): boolean {
  const e = err as { name?: string; CancellationReasons?: { Code?: string }[] } | null;
  return e?.name === 'TransactionCanceledException' && (e.CancellationReasons ?? []).some((r) => r?.Code === 'ConditionalCheckFailed');
}

/** An upload item as its record: the table's keys, TTL and index attributes left out. */
function withoutKeys(item: Record<string, NativeAttributeValue> | undefined): UploadRecord {
  const { pk: _pk, sk: _sk, [TTL_ATTRIBUTE]: _ttl, [OPEN_STATUS_ATTRIBUTE]: _open, [OPEN_SINCE_ATTRIBUTE]: _since, ...record } = item ?? {};
  return record as UploadRecord;
}

/** One entry of the `open-uploads` index. */
export interface OpenUpload {
  playerId: string;
  uploadId: string;
  /** The status the index files it under. */
  openStatus: OpenStatus;
  openSince: string;
  /** The item's status when the index was read (eventually consistent): terminal while its end awaits announcement. */
  status: UploadStatus;
  createdAt: string;
}

/** The outcome of `endOverdue`. */
export interface OverdueEnd {
  /** This call ended the upload. */
  changed: boolean;
  /** The record as it stands afterwards (undefined: no such upload). */
  record: UploadRecord | undefined;
  /** The upload is still in the index in a terminal state: its end has not been announced yet. */
  unannounced: boolean;
}

/**
 * The `open-uploads` index entries filed under `openStatus` (an upload's waiting status, or another
 * item's: an erasure, a superseded avatar) whose clock started before `before`, oldest first, a page
 * at a time.
 */
export async function* openIndexEntries(
  doc: DynamoDBDocumentClient,
  table: string,
  openStatus: string,
  before?: Date,
  pageSize = 100,
): AsyncGenerator<Record<string, NativeAttributeValue>> {
  let start: Record<string, NativeAttributeValue> | undefined;
  do {
    const page = await doc.send(
      new QueryCommand({
        TableName: table,
        IndexName: OPEN_UPLOADS_INDEX,
        KeyConditionExpression: before ? '#openStatus = :status AND #openSince < :before' : '#openStatus = :status',
        ExpressionAttributeNames: { '#openStatus': OPEN_STATUS_ATTRIBUTE, ...(before ? { '#openSince': OPEN_SINCE_ATTRIBUTE } : {}) },
        ExpressionAttributeValues: { ':status': openStatus, ...(before ? { ':before': before.toISOString() } : {}) },
        ScanIndexForward: true,
        Limit: pageSize,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    yield* page.Items ?? [];
    start = page.LastEvaluatedKey;
  } while (start);
}

export class UploadStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Records an issued upload as pending. `ticketExpiresAt` (the POST policy's expiration) starts
   * the reconciler's clock for it (default: now).
   */
  async createPending(upload: {
    playerId: string;
    uploadId: string;
    contentType: string;
    maxBytes: number;
    ticketExpiresAt?: string | undefined;
    trace?: TraceContext | undefined;
  }): Promise<UploadRecord> {
    const now = this.clock();
    const { ticketExpiresAt, trace, ...fields } = upload;
    const record: UploadRecord = {
      ...fields,
      status: 'pending',
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
      ...(trace ? { traceparent: trace.traceparent, ...(trace.tracestate ? { tracestate: trace.tracestate } : {}) } : {}),
    };
    const openSince = ticketExpiresAt === undefined ? now.toISOString() : new Date(ticketExpiresAt).toISOString();
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          pk: keys.player(upload.playerId),
          sk: keys.upload(upload.uploadId),
          ...record,
          [OPEN_STATUS_ATTRIBUTE]: 'pending',
          [OPEN_SINCE_ATTRIBUTE]: openSince,
          [TTL_ATTRIBUTE]: epochSeconds(now) + PENDING_TTL_SECONDS,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
    return record;
  }

  async get(playerId: string, uploadId: string): Promise<UploadRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: itemKeys.upload(playerId, uploadId), ConsistentRead: true }),
    );
    return Item ? withoutKeys(Item) : undefined;
  }

  /**
   * The trace context presign recorded with the upload, for the first event about it to continue
   * (an upload reaches S3 from the browser, with no header to carry it). A plain read: the record
   * was written before the ticket was issued.
   */
  async trace(playerId: string, uploadId: string, signal?: AbortSignal): Promise<TraceContext | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: itemKeys.upload(playerId, uploadId), ProjectionExpression: 'traceparent, tracestate' }),
      signal ? { abortSignal: signal } : {},
    );
    const traceparent: unknown = Item?.['traceparent'];
    const tracestate: unknown = Item?.['tracestate'];
    return typeof traceparent === 'string' ? { traceparent, tracestate: typeof tracestate === 'string' ? tracestate : undefined } : undefined;
  }

  /** The SHA-256 of the bytes moderate approved for this upload, if it approved any (only `approve` writes it). */
  async approvedSha256(playerId: string, uploadId: string): Promise<string | undefined> {
    return (await this.get(playerId, uploadId))?.sha256;
  }

  /** pending -> processing (the reconciler's processing clock starts); a no-op in any other state. */
  async markProcessing(playerId: string, uploadId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: itemKeys.upload(playerId, uploadId),
          UpdateExpression: 'SET #status = :processing, updatedAt = :now, #openStatus = :processing, #openSince = :now',
          ConditionExpression: '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status', '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE },
          ExpressionAttributeValues: { ':processing': 'processing', ':pending': 'pending', ':now': this.clock().toISOString() },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Records that moderate approved the bytes with this SHA-256, while the upload is in flight. The
   * first approval decides: the same bytes are approved again (a redelivery, a retried POST of the
   * same file), other bytes never (a later write under the key). `approved: false` returns the
   * record as it stands: ended, or holding other approved bytes.
   */
  async approve(playerId: string, uploadId: string, sha256: string): Promise<{ approved: boolean; record: UploadRecord | undefined }> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: itemKeys.upload(playerId, uploadId),
          UpdateExpression: 'SET sha256 = :sha256',
          ConditionExpression: 'attribute_exists(pk) AND #status IN (:pending, :processing) AND (attribute_not_exists(sha256) OR sha256 = :sha256)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':sha256': sha256, ':pending': 'pending', ':processing': 'processing' },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { approved: true, record: withoutKeys(Attributes) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { approved: false, record: await this.get(playerId, uploadId) };
    }
  }

  /**
   * processing -> in_review, and the REVIEW item (status open) with it, in one transaction: the
   * pair is never half written. The bytes under review decide the upload as approved ones do
   * (`approve`): their SHA-256 goes on the record, and other bytes never take their place. Returns
   * the record as it stands afterwards; `changed: false` when the upload was not processing (a
   * redelivery finding it already in review, or it ended or moved on) or held other bytes, as
   * `finish` does. A REVIEW item already there is kept: a decided review never reopens (after an
   * approval the upload is processing again and a redelivery must not send it back); one still
   * open with the same picture is written again, so the request is idempotent either way.
   */
  async requestReview(request: { playerId: string; uploadId: string; review: ReviewRequest }): Promise<{ changed: boolean; record: UploadRecord | undefined }> {
    const { playerId, uploadId, review } = request;
    const clock = this.clock();
    const now = clock.toISOString();
    const item: Review = {
      uploadId,
      playerId,
      status: 'open',
      labels: review.labels,
      fingerprint: review.fingerprint,
      requestedAt: now,
      uploadedAt: review.uploadedAt,
      approved: review.approved,
    };
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.table,
                Key: itemKeys.upload(playerId, uploadId),
                // Kept as long as a finished record: a review may outlast the day a pending record is given.
                UpdateExpression:
                  'SET #status = :inReview, updatedAt = :now, #openStatus = :inReview, #openSince = :now, fingerprint = :fingerprint, sha256 = :sha256, #ttl = :ttl',
                ConditionExpression: 'attribute_exists(pk) AND #status = :processing AND (attribute_not_exists(sha256) OR sha256 = :sha256)',
                ExpressionAttributeNames: { '#status': 'status', '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE, '#ttl': TTL_ATTRIBUTE },
                ExpressionAttributeValues: {
                  ':ttl': epochSeconds(clock) + FINISHED_TTL_SECONDS,
                  ':inReview': 'in_review',
                  ':processing': 'processing',
                  ':now': now,
                  ':fingerprint': review.fingerprint,
                  ':sha256': review.approved.sha256,
                },
              },
            },
            {
              Put: {
                TableName: this.table,
                Item: { pk: keys.review(uploadId), sk: keys.reviewSk, ...item },
                ConditionExpression: 'attribute_not_exists(pk) OR (#status = :open AND fingerprint = :fingerprint AND #approved.#sha256 = :sha256)',
                ExpressionAttributeNames: { '#status': 'status', '#approved': 'approved', '#sha256': 'sha256' },
                ExpressionAttributeValues: { ':open': 'open', ':fingerprint': review.fingerprint, ':sha256': review.approved.sha256 },
              },
            },
          ],
        }),
      );
      return { changed: true, record: await this.get(playerId, uploadId) };
    } catch (err) {
      if (!isTransactionConditionFailure(err)) throw err;
      return { changed: false, record: await this.get(playerId, uploadId) };
    }
  }

  /**
   * Moves an upload into a terminal state exactly once. Returns the record as it stands
   * afterwards: if it had already ended (in any terminal state) it is returned unchanged, so a
   * redelivered event sees the first outcome and never a second one. An upload `in_review` is not
   * ended here: only a moderator's decision or the review timeout (`endOverdue`) ends it.
   *
   * `moderated` (moderate's own outcomes) names the bytes the outcome is about (undefined: none
   * were read); it is refused, leaving the upload in flight, when other bytes were approved first.
   */
  async finish(
    playerId: string,
    uploadId: string,
    status: TerminalStatus,
    details: { reason?: Reason; labels?: ModerationLabel[]; avatar?: Avatar } = {},
    moderated?: { sha256: string | undefined },
  ): Promise<{ changed: boolean; record: UploadRecord | undefined }> {
    const now = this.clock();
    const names: Record<string, string> = { '#status': 'status', '#ttl': TTL_ATTRIBUTE, '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE };
    const values: Record<string, unknown> = {
      ':status': status,
      ':now': now.toISOString(),
      ':ttl': epochSeconds(now) + FINISHED_TTL_SECONDS,
      ':pending': 'pending',
      ':processing': 'processing',
    };
    const sets = ['#status = :status', 'updatedAt = :now', '#ttl = :ttl'];
    for (const [field, value] of Object.entries(details)) {
      if (value === undefined) continue;
      names[`#${field}`] = field;
      values[`:${field}`] = value;
      sets.push(`#${field} = :${field}`);
    }
    let condition = 'attribute_exists(pk) AND #status IN (:pending, :processing)';
    if (moderated?.sha256 !== undefined) {
      condition += ' AND (attribute_not_exists(sha256) OR sha256 = :sha256)';
      values[':sha256'] = moderated.sha256;
    } else if (moderated) {
      condition += ' AND attribute_not_exists(sha256)';
    }
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: itemKeys.upload(playerId, uploadId),
          // Out of the reconciler's index: whoever ends an upload here announces it (a reply, K_SINK).
          UpdateExpression: `SET ${sets.join(', ')} REMOVE #openStatus, #openSince`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { changed: true, record: withoutKeys(Attributes) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { changed: false, record: await this.get(playerId, uploadId) };
    }
  }
  /**
   * The uploads waiting in `status` whose clock started before `before`, oldest first, a page at a
   * time (the index is eventually consistent: every change made from it is a conditional write).
   */
  async *openUploads(status: OpenStatus, before?: Date, pageSize = 100): AsyncGenerator<OpenUpload> {
    for await (const item of openIndexEntries(this.doc, this.table, status, before, pageSize)) yield item as OpenUpload;
  }

  /** The upload that has waited longest in `status` and still does (undefined: none). */
  async oldestOpen(status: OpenStatus): Promise<OpenUpload | undefined> {
    // Entries whose end awaits announcement sort among them; they are rare, so a few pages suffice.
    for await (const upload of this.openUploads(status, undefined, 25)) if (upload.status === status) return upload;
    return undefined;
  }

  /**
   * Ends an upload that waited in `from` since before `cutoff` (`pending` -> `expired`,
   * `processing` -> `failed`, `in_review` -> `rejected`), exactly once and only if it still waits: a concurrent step of the
   * pipeline that moved it on or ended it wins, and this changes nothing. The upload stays in the
   * index (now terminal) until `announced`, so a run that dies before telling the player is
   * followed by one that does. Not changed, `unannounced` says whether an earlier run ended it
   * without announcing it yet.
   */
  async endOverdue(playerId: string, uploadId: string, from: OpenStatus, to: 'expired' | 'failed' | 'rejected', cutoff: Date, reason: Reason): Promise<OverdueEnd> {
    const now = this.clock();
    const key = itemKeys.upload(playerId, uploadId);
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #status = :to, reason = :reason, updatedAt = :now, #ttl = :ttl',
          ConditionExpression: 'attribute_exists(pk) AND #status = :from AND #openStatus = :from AND #openSince < :cutoff',
          ExpressionAttributeNames: { '#status': 'status', '#ttl': TTL_ATTRIBUTE, '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE },
          ExpressionAttributeValues: {
            ':to': to,
            ':from': from,
            ':reason': reason,
            ':now': now.toISOString(),
            ':ttl': epochSeconds(now) + FINISHED_TTL_SECONDS,
            ':cutoff': cutoff.toISOString(),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { changed: true, record: withoutKeys(Attributes), unannounced: true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
    const record = Item ? withoutKeys(Item) : undefined;
    const unannounced = record !== undefined && isTerminal(record.status) && Item?.[OPEN_STATUS_ATTRIBUTE] !== undefined;
    return { changed: false, record, unannounced };
  }

  /** The end of an upload ended by `endOverdue` has been announced: it leaves the index. */
  async announced(playerId: string, uploadId: string, status: TerminalStatus): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: itemKeys.upload(playerId, uploadId),
          UpdateExpression: 'REMOVE #openStatus, #openSince',
          ConditionExpression: '#status = :status AND attribute_exists(#openStatus)',
          ExpressionAttributeNames: { '#status': 'status', '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE },
          ExpressionAttributeValues: { ':status': status },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
