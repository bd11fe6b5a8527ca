/**
 * S3-format notifications (AWS S3, MinIO, s3rver; optionally inside an SNS envelope) turned into
 * CloudEvents the way the CloudEvents AWS S3 adapter maps them. Pure: no I/O, no clock.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { describeZodError } from '@avatar-pipeline/kit/errors';
import { s3EntitySchema } from '@avatar-pipeline/kit/events';
import { S3_OBJECT_CREATED_PREFIX, UPLOAD_PREFIX } from '@avatar-pipeline/kit/topology';

/** Why a notification or record produced no event (a bounded metric label). */
export type SkipReason = 'test_event' | 'not_object_created' | 'outside_uploads' | 'undecodable_key';

export type MappingResult =
  | { ok: true; events: OutgoingEvent[]; skipped: SkipReason[] }
  | { ok: false; problem: string };

export interface MappingOptions {
  /** Region used in `source` when a record has none (MinIO without a configured region). */
  defaultRegion: string;
}

/** SNS -> SQS without raw message delivery wraps the S3 notification in this envelope. */
const snsEnvelopeSchema = z.looseObject({ Type: z.literal('Notification'), Message: z.string() });
/** S3 sends this once when a notification configuration is saved. */
const testEventSchema = z.looseObject({ Event: z.literal('s3:TestEvent') });
/** Only `eventName` is needed to decide whether a record is ours; other event kinds vary in shape. */
const notificationSchema = z.looseObject({ Records: z.array(z.looseObject({ eventName: z.string() })) });

const createdRecordSchema = z.looseObject({
  eventSource: z.string().min(1),
  awsRegion: z.string().optional(),
  eventTime: z.iso.datetime({ offset: true }),
  eventName: z.string(),
  responseElements: z
    .looseObject({ 'x-amz-request-id': z.string().optional(), 'x-amz-id-2': z.string().optional() })
    .nullish(),
  s3: s3EntitySchema,
});
type CreatedRecord = z.infer<typeof createdRecordSchema>;

const OBJECT_CREATED = 'ObjectCreated:';

/** S3 encodes keys form-style: `+` is a space, the rest percent-encoded. */
export function decodeS3Key(key: string): string | undefined {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** `<x-amz-request-id>.<x-amz-id-2>`, or a hash of what identifies this write when S3 gave neither. */
function eventId(record: CreatedRecord, key: string): string {
  const requestId = record.responseElements?.['x-amz-request-id'];
  const hostId = record.responseElements?.['x-amz-id-2'];
  if (requestId && hostId) return `${requestId}.${hostId}`;
  const { bucket, object } = record.s3;
  const identity = [bucket.name, key, object.versionId ?? '', object.eTag ?? '', object.sequencer ?? ''].join('\n');
  return createHash('sha256').update(identity).digest('base64url');
}

function toEvent(record: CreatedRecord, eventName: string, key: string, options: MappingOptions): OutgoingEvent {
  const { s3 } = record;
  return {
    id: eventId(record, key),
    source: `${record.eventSource}.${record.awsRegion || options.defaultRegion}.${s3.bucket.name}`,
    // The topology routes on this prefix: build the type from it.
    type: `${S3_OBJECT_CREATED_PREFIX}${eventName.slice(OBJECT_CREATED.length)}`,
    subject: key,
    time: record.eventTime,
    data: { ...s3, object: { ...s3.object, key } },
  };
}

function unwrap(body: unknown): { ok: true; body: unknown } | { ok: false; problem: string } {
  const envelope = snsEnvelopeSchema.safeParse(body);
  if (!envelope.success) return { ok: true, body };
  try {
    return { ok: true, body: JSON.parse(envelope.data.Message) as unknown };
  } catch {
    return { ok: false, problem: 'SNS Message is not JSON' };
  }
}

/**
 * Maps one notification body to the events for its object-created records under `uploads/`.
 * Other records are skipped with a reason; a body that is not a notification is `ok: false`.
 */
export function mapNotification(raw: unknown, options: MappingOptions): MappingResult {
  const unwrapped = unwrap(raw);
  if (!unwrapped.ok) return unwrapped;
  if (testEventSchema.safeParse(unwrapped.body).success) return { ok: true, events: [], skipped: ['test_event'] };
  const notification = notificationSchema.safeParse(unwrapped.body);
  if (!notification.success) return { ok: false, problem: `not an S3 notification: ${describeZodError(notification.error)}` };

  const events: OutgoingEvent[] = [];
  const skipped: SkipReason[] = [];
  for (const [index, candidate] of notification.data.Records.entries()) {
    // MinIO names events `s3:ObjectCreated:Put`, S3 `ObjectCreated:Put`.
    const eventName = candidate.eventName.replace(/^s3:/, '');
    if (!eventName.startsWith(OBJECT_CREATED)) {
      skipped.push('not_object_created');
      continue;
    }
    const record = createdRecordSchema.safeParse(candidate);
    if (!record.success) {
      const problems = record.error.issues.map((issue) => `${['Records', index, ...issue.path].join('.')}: ${issue.message}`);
      return { ok: false, problem: problems.join('; ') };
    }
    const key = decodeS3Key(record.data.s3.object.key);
    if (key === undefined) {
      skipped.push('undecodable_key');
      continue;
    }
    if (!key.startsWith(UPLOAD_PREFIX)) {
      skipped.push('outside_uploads');
      continue;
    }
    events.push(toEvent(record.data, eventName, key, options));
  }
  return { ok: true, events, skipped };
}
