/**
 * The review queue's table side: `REVIEW#<uploadId>` / `REVIEW` items (written by moderate when an
 * upload enters the review band, together with the upload's move to `in_review`), the
 * moderators' decisions on them, and the reconciler's expiry of those nobody decided in time.
 *
 * Open reviews are found through the sparse `open-uploads` index (`openStatus = in_review`, oldest
 * request first), never a scan; the index is eventually consistent, so a page is read back from
 * the REVIEW items themselves and only those still open are listed (a page may hold fewer than
 * asked for: follow the cursor until there is none).
 *
 * A decision is one TransactWriteItems: the REVIEW item (only while `open`) and the upload record
 * (only while `in_review`) change together, so of two moderators racing exactly one wins, and an
 * upload is never approved in one item and rejected (or timed out) in the other.
 */
import {
  BatchGetCommand,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type NativeAttributeValue,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { fingerprintSchema } from '@avatar-pipeline/kit/bans';
import { HttpError } from '@avatar-pipeline/kit/errors';
import { approvedSchema, labelSchema, moderatorRejected, playerIdSchema, uploadIdSchema } from '@avatar-pipeline/kit/events';
import { decodeCursor, encodeCursor } from '@avatar-pipeline/kit/page-cursor';
import { itemKeys, OPEN_SINCE_ATTRIBUTE, OPEN_STATUS_ATTRIBUTE, OPEN_UPLOADS_INDEX, TTL_ATTRIBUTE, isConditionFailure, reviewStatuses } from '@avatar-pipeline/kit/table';

export const reviewDecisions = ['approve', 'reject'] as const;

/** Who decided, when, what, and why: kept on the review item for good. */
export const reviewDecisionSchema = z.object({
  /** The moderator's player id. */
  by: playerIdSchema,
  at: z.iso.datetime(),
  decision: z.enum(reviewDecisions),
  note: z.string().max(500).optional(),
});
export type ReviewDecision = z.infer<typeof reviewDecisionSchema>;

/** A REVIEW item as stored (`UploadStore.requestReview`), read back through this schema: the table is an edge too. */
export const reviewItemSchema = z.object({
  uploadId: uploadIdSchema,
  playerId: playerIdSchema,
  status: z.enum(reviewStatuses),
  /** Every label the model gave, with its confidence: the scores the moderator judges by. */
  labels: z.array(labelSchema),
  fingerprint: fingerprintSchema,
  requestedAt: z.iso.datetime(),
  uploadedAt: z.iso.datetime({ offset: true }),
  /** The approved event's data moderate would have sent: an approval sends exactly it. */
  approved: approvedSchema,
  decision: reviewDecisionSchema.optional(),
});
/** The kit's `Review`, as read back (zod's optional fields may hold undefined). */
export type ReviewItem = z.infer<typeof reviewItemSchema>;

/** BatchGetItem takes at most 100 keys: the largest page. */
export const MAX_PAGE = 100;


/**
 * The index position a page ends at (DynamoDB's LastEvaluatedKey), as the client sees it: opaque
 * base64url. Checked when it comes back, so a forged one can neither point the Query at another
 * partition of the index nor make DynamoDB fail.
 */
const cursorSchema = z.strictObject({
  [OPEN_STATUS_ATTRIBUTE]: z.literal('in_review'),
  [OPEN_SINCE_ATTRIBUTE]: z.string().max(64),
  pk: z.string().startsWith('PLAYER#').max(200),
  sk: z.string().startsWith('UPLOAD#').max(100),
});

/** What became of a decision's write. */
export type DecideOutcome =
  /** This call recorded it. */
  | { written: true; review: ReviewItem }
  /** It was not written: the review as it stands (decided, expired or gone), and the upload's status. */
  | { written: false; review: ReviewItem | undefined; uploadStatus: string | undefined };

export class ReviewStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async get(uploadId: string): Promise<ReviewItem | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: itemKeys.review(uploadId), ConsistentRead: true }));
    return Item ? parseReview(Item) : undefined;
  }

  /** One page of open reviews, oldest request first. */
  async listOpen(options: { limit: number; cursor?: string | undefined }): Promise<{ items: ReviewItem[]; cursor?: string }> {
    const page = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: OPEN_UPLOADS_INDEX,
        KeyConditionExpression: '#openStatus = :inReview',
        ExpressionAttributeNames: { '#openStatus': OPEN_STATUS_ATTRIBUTE },
        ExpressionAttributeValues: { ':inReview': 'in_review' },
        ScanIndexForward: true,
        Limit: Math.min(options.limit, MAX_PAGE),
        ...(options.cursor ? { ExclusiveStartKey: decodeCursor(options.cursor, cursorSchema) } : {}),
      }),
    );
    const uploadIds = (page.Items ?? []).flatMap((item) => (typeof item['uploadId'] === 'string' ? [item['uploadId']] : []));
    const found = new Map((await this.batchGet(uploadIds)).map((review) => [review.uploadId, review]));
    // In the index's order; an entry whose review was decided (or erased) since is left out.
    const items = uploadIds.flatMap((id) => {
      const review = found.get(id);
      return review?.status === 'open' ? [review] : [];
    });
    return { items, ...(page.LastEvaluatedKey ? { cursor: encodeCursor(page.LastEvaluatedKey) } : {}) };
  }

  private async batchGet(uploadIds: string[]): Promise<ReviewItem[]> {
    const reviews: ReviewItem[] = [];
    let pending: Record<string, NativeAttributeValue>[] = [...new Set(uploadIds)].map(itemKeys.review);
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) {
        // Unprocessed keys mean throttling: back off before asking for them again.
        if (attempt > 5) throw new HttpError(503, 'unavailable', 'the review queue cannot be read right now', { 'Retry-After': '1' });
        await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
      }
      const res = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }));
      reviews.push(...(res.Responses?.[this.table] ?? []).map(parseReview));
      pending = res.UnprocessedKeys?.[this.table]?.Keys ?? [];
    }
    return reviews;
  }

  /**
   * Records `decision` on an open review and moves its upload on, in one transaction: approve ->
   * the upload is `processing` again (its processing clock restarts now, and the approved bytes'
   * SHA-256 is what thumbnail will check); reject -> the upload ends `rejected` (reason
   * `moderator`, the review's labels) and leaves the reconciler's index.
   */
  async decide(review: ReviewItem, decision: ReviewDecision): Promise<DecideOutcome> {
    // The decision's moment is the upload's too: its new processing clock, its end.
    const now = new Date(decision.at);
    const { playerId, uploadId } = review;
    const status = decision.decision === 'approve' ? 'approved' : 'rejected';
    const names = { '#status': 'status', '#openStatus': OPEN_STATUS_ATTRIBUTE, '#openSince': OPEN_SINCE_ATTRIBUTE };
    const upload =
      decision.decision === 'approve'
        ? {
            UpdateExpression: 'SET #status = :processing, updatedAt = :now, #openStatus = :processing, #openSince = :now, sha256 = :sha256',
            ConditionExpression: '#status = :inReview AND (attribute_not_exists(sha256) OR sha256 = :sha256)',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ':processing': 'processing', ':inReview': 'in_review', ':now': now.toISOString(), ':sha256': review.approved.sha256 },
          }
        : {
            // Its TTL stays: a finished record's 30 days, set when the review was requested.
            UpdateExpression: 'SET #status = :rejected, reason = :reason, labels = :labels, updatedAt = :now REMOVE #openStatus, #openSince',
            ConditionExpression: '#status = :inReview',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ':rejected': 'rejected', ':inReview': 'in_review', ':reason': moderatorRejected, ':labels': review.labels, ':now': now.toISOString() },
          };
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.table,
                Key: itemKeys.review(uploadId),
                UpdateExpression: 'SET #status = :status, decision = :decision',
                ConditionExpression: '#status = :open',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':status': status, ':decision': decision, ':open': 'open' },
              },
            },
            { Update: { TableName: this.table, Key: itemKeys.upload(playerId, uploadId), ...upload } },
          ],
        }),
      );
      return { written: true, review: { ...review, status, decision } };
    } catch (err) {
      if ((err as { name?: string }).name !== 'TransactionCanceledException') throw err;
    }
    // Someone else decided, the reconciler ended the review, the upload went away, or the
    // transaction collided with another: the caller tells them apart from what stands now.
    const [current, record] = await Promise.all([
      this.get(uploadId),
      this.doc.send(new GetCommand({ TableName: this.table, Key: itemKeys.upload(playerId, uploadId), ConsistentRead: true, ProjectionExpression: '#status', ExpressionAttributeNames: { '#status': 'status' } })),
    ]);
    const uploadStatus = record.Item?.['status'];
    return { written: false, review: current, uploadStatus: typeof uploadStatus === 'string' ? uploadStatus : undefined };
  }

  /**
   * The review of an upload that timed out: `open` -> `expired` (a decided one stays as decided:
   * the upload record's conditional end already settled which came first). Returns when the object
   * was uploaded, for the rejected event.
   */
  async expire(uploadId: string, now: Date): Promise<{ uploadedAt?: string }> {
    const key = itemKeys.review(uploadId);
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #status = :expired, expiredAt = :now',
          ConditionExpression: '#status = :open',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':expired': 'expired', ':open': 'open', ':now': now.toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return uploadedAtOf(Attributes);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
    return uploadedAtOf(Item);
  }
}

const uploadedAtOf = (item: Record<string, unknown> | undefined): { uploadedAt?: string } =>
  typeof item?.['uploadedAt'] === 'string' ? { uploadedAt: item['uploadedAt'] } : {};

function parseReview(item: Record<string, NativeAttributeValue>): ReviewItem {
  const { pk: _pk, sk: _sk, [TTL_ATTRIBUTE]: _ttl, ...fields } = item;
  return reviewItemSchema.parse(fields);
}
