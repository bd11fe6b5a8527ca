import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { s3EntitySchema } from '@avatar-pipeline/kit/events';
import { matchesFilters } from '@avatar-pipeline/kit/filters';
import { triggers } from '@avatar-pipeline/kit/topology';
import { BUCKET, startTestBackends, type S3Backend } from '@avatar-pipeline/local';
import { decodeS3Key, mapNotification, type MappingResult } from '../src/index.js';
import { UPLOAD_ID, awsNotification, awsRecord, minioBody, s3TestEvent, snsEnvelope } from './fixtures.js';

const options = { defaultRegion: 'eu-central-1' };

function mapped(body: unknown): { events: OutgoingEvent[]; skipped: string[] } {
  const result = mapNotification(body, options);
  if (!result.ok) throw new Error(`expected a notification, got: ${result.problem}`);
  return result;
}

function problem(result: MappingResult): string {
  if (result.ok) throw new Error('expected a malformed notification');
  return result.problem;
}

const moderateTrigger = triggers.find((t) => t.subscriber.service === 'moderate');

describe('S3 notification from AWS', () => {
  it('maps an object-created record to the CloudEvents S3 adapter attributes', () => {
    const { events, skipped } = mapped(awsNotification());
    expect(skipped).toEqual([]);
    expect(events).toEqual([
      {
        id: 'C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD',
        source: 'aws:s3.us-west-2.avatars-prod',
        type: 'com.amazonaws.s3.ObjectCreated:Post',
        subject: `uploads/player+1/${UPLOAD_ID}`,
        time: '2025-05-04T10:11:12.345Z',
        data: {
          s3SchemaVersion: '1.0',
          configurationId: 'avatar-uploads',
          bucket: { name: 'avatars-prod', ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: 'arn:aws:s3:::avatars-prod' },
          object: { key: `uploads/player+1/${UPLOAD_ID}`, size: 48213, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '0055AED6DCD90281E5' },
        },
      },
    ]);
    expect(s3EntitySchema.safeParse(events[0]?.data).success).toBe(true);
  });

  it('produces events the moderate trigger selects', () => {
    const [event] = mapped(awsNotification()).events;
    expect(moderateTrigger).toBeDefined();
    expect(matchesFilters(moderateTrigger!.filters, { type: event?.type, subject: event?.subject })).toBe(true);
  });

  it('decodes keys form-style: + is a space, %XX a byte of UTF-8', () => {
    expect(decodeS3Key('uploads/my+photo%20%281%29.jpg')).toBe('uploads/my photo (1).jpg');
    expect(decodeS3Key('uploads/caf%C3%A9%2Bcr%C3%A8me')).toBe('uploads/café+crème');
    expect(decodeS3Key('uploads/%E0%A4%A')).toBeUndefined();
  });

  it('maps every record of a multi-record notification and skips the rest with reasons', () => {
    const put = awsRecord({ eventName: 'ObjectCreated:Put' });
    const removed = awsRecord({ eventName: 'ObjectRemoved:Delete' });
    const thumbnail = awsRecord();
    thumbnail.s3.object.key = `avatars/player-1/${UPLOAD_ID}/256.webp`;
    const badKey = awsRecord();
    badKey.s3.object.key = 'uploads/%E0%A4%A';
    const { events, skipped } = mapped(awsNotification(awsRecord(), removed, thumbnail, put, badKey));
    expect(events.map((e) => e.type)).toEqual(['com.amazonaws.s3.ObjectCreated:Post', 'com.amazonaws.s3.ObjectCreated:Put']);
    expect(skipped).toEqual(['not_object_created', 'outside_uploads', 'undecodable_key']);
  });

  it('uses a deterministic id when S3 gave no request ids', () => {
    const bare = awsRecord({ responseElements: undefined });
    const first = mapped(awsNotification(bare)).events[0]!.id;
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(mapped(awsNotification(awsRecord({ responseElements: undefined }))).events[0]!.id).toBe(first);
    expect(mapped(awsNotification(awsRecord({ responseElements: { 'x-amz-request-id': 'ABC', 'x-amz-id-2': '' } }))).events[0]!.id).toBe(first);
    const rewritten = awsRecord({ responseElements: undefined });
    rewritten.s3.object.sequencer = '0055AED6DCD90281E6';
    expect(mapped(awsNotification(rewritten)).events[0]!.id).not.toBe(first);
  });

  it('rejects bodies that are not notifications, naming the problem', () => {
    expect(problem(mapNotification('garbage', options))).toMatch(/not an S3 notification/);
    expect(problem(mapNotification([], options))).toMatch(/not an S3 notification/);
    expect(problem(mapNotification({ Records: 'x' }, options))).toMatch(/Records/);
    expect(problem(mapNotification({ Records: [{ eventTime: 'now' }] }, options))).toMatch(/Records\.0\.eventName/);
    const noTime = awsRecord({ eventTime: 'yesterday' });
    expect(problem(mapNotification(awsNotification(noTime), options))).toMatch(/^Records\.0\.eventTime: /);
    const noBucket = awsRecord();
    (noBucket.s3 as Record<string, unknown>).bucket = {};
    expect(problem(mapNotification(awsNotification(awsRecord(), noBucket), options))).toMatch(/^Records\.1\.s3\.bucket\.name: /);
  });

  it('accepts an empty Records list', () => {
    expect(mapped({ Records: [] })).toEqual({ ok: true, events: [], skipped: [] });
  });
});

describe('MinIO webhook body', () => {
  it('maps s3:-prefixed event names and QueryEscaped keys; an empty region takes the default', () => {
    const { events, skipped } = mapped(minioBody());
    expect(skipped).toEqual([]);
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event).toMatchObject({
      id: '18BE12ED5938E79E.dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8',
      source: 'minio:s3.eu-central-1.avatars',
      type: 'com.amazonaws.s3.ObjectCreated:Post',
      subject: `uploads/player-1/${UPLOAD_ID}`,
      time: '2025-05-04T10:11:12.345Z',
      data: { bucket: { name: 'avatars' }, object: { key: `uploads/player-1/${UPLOAD_ID}`, contentType: 'image/png', eTag: '5d41402abc4b2a76b9719d911017c592' } },
    });
    expect(s3EntitySchema.safeParse(event?.data).success).toBe(true);
    expect(matchesFilters(moderateTrigger!.filters, { type: event?.type, subject: event?.subject })).toBe(true);
  });

  it('uses the region MinIO reports when it has one', () => {
    const body = minioBody();
    body.Records[0]!.awsRegion = 'us-east-1';
    expect(mapped(body).events[0]?.source).toBe('minio:s3.us-east-1.avatars');
  });

  it('skips removals and keys outside uploads/', () => {
    expect(mapped(minioBody(`uploads/player-1/${UPLOAD_ID}`, 's3:ObjectRemoved:Delete'))).toMatchObject({ events: [], skipped: ['not_object_created'] });
    expect(mapped(minioBody(`avatars/player-1/${UPLOAD_ID}/64.webp`))).toMatchObject({ events: [], skipped: ['outside_uploads'] });
  });
});

describe('SQS message bodies', () => {
  it('maps an S3 notification held directly in the message body', () => {
    const body = JSON.stringify(awsNotification());
    expect(mapped(JSON.parse(body)).events[0]?.id).toBe('C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD');
  });

  it('unwraps an SNS envelope', () => {
    const direct = mapped(awsNotification());
    expect(mapped(JSON.parse(JSON.stringify(snsEnvelope(awsNotification()))))).toEqual(direct);
  });

  it('skips the S3 test event, direct or through SNS', () => {
    expect(mapped(s3TestEvent)).toEqual({ ok: true, events: [], skipped: ['test_event'] });
    expect(mapped(snsEnvelope(s3TestEvent))).toEqual({ ok: true, events: [], skipped: ['test_event'] });
  });

  it('rejects an SNS envelope whose Message is not a notification', () => {
    expect(problem(mapNotification({ ...snsEnvelope({}), Message: '{not json' }, options))).toMatch(/SNS Message is not JSON/);
    expect(problem(mapNotification(snsEnvelope({ hello: 'world' }), options))).toMatch(/not an S3 notification/);
  });
});

describe('s3rver notification', () => {
  let backends: S3Backend;
  const notifications: unknown[] = [];

  beforeAll(async () => {
    backends = await startTestBackends({ prefix: 's3-source-', dynamo: false, s3: { onEvent: (n) => notifications.push(n) } });
  });
  afterAll(async () => {
    await backends?.close();
  });

  it('maps the events a real s3rver emits for an upload', async () => {
    const key = `uploads/player-1/${UPLOAD_ID}`;
    await backends.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'png bytes', ContentType: 'image/png' }));
    await backends.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `avatars/player-1/${UPLOAD_ID}/64.webp`, Body: 'webp' }));
    expect(notifications).toHaveLength(2);

    const upload = mapped(notifications[0]);
    expect(upload.skipped).toEqual([]);
    const [event] = upload.events;
    const record = (notifications[0] as { Records: { responseElements: Record<string, string> }[] }).Records[0]!;
    expect(event).toMatchObject({
      id: `${record.responseElements['x-amz-request-id']}.${record.responseElements['x-amz-id-2']}`,
      source: 'aws:s3.us-east-1.avatars',
      type: 'com.amazonaws.s3.ObjectCreated:Put',
      subject: key,
      data: { bucket: { name: 'avatars' }, object: { key, size: 9 } },
    });
    expect(Date.parse(event!.time!)).not.toBeNaN();
    expect(s3EntitySchema.safeParse(event?.data).success).toBe(true);

    expect(mapped(notifications[1])).toEqual({ ok: true, events: [], skipped: ['outside_uploads'] });
  });
});
