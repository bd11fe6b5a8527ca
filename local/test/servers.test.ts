import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { createDevIssuer, startDynamoServer, startS3Server, type DynamoServer, type S3Server } from '../src/index.js';

describe('local stand-in servers', () => {
  let dir: string;
  let s3: S3Server;
  let ddb: DynamoServer;
  const events: unknown[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ap-local-'));
    s3 = await startS3Server({ directory: join(dir, 's3'), buckets: ['avatars'], onEvent: (e) => events.push(e) });
    ddb = await startDynamoServer({ directory: join(dir, 'ddb'), table: 'avatar-pipeline' });
  });
  afterAll(async () => {
    await s3?.close();
    await ddb?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores objects and emits S3 notifications', async () => {
    const client = s3Client({ region: 'us-east-1', s3Endpoint: s3.endpoint });
    await client.send(new PutObjectCommand({ Bucket: 'avatars', Key: 'uploads/p1/x', Body: 'hello', ContentType: 'text/plain' }));
    const got = await client.send(new GetObjectCommand({ Bucket: 'avatars', Key: 'uploads/p1/x' }));
    expect(await got.Body?.transformToString()).toBe('hello');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ Records: [{ eventName: 'ObjectCreated:Put', s3: { object: { key: 'uploads/p1/x' } } }] });
  });

  it('serves the table', async () => {
    const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: ddb.endpoint });
    await doc.send(new PutCommand({ TableName: 'avatar-pipeline', Item: { pk: 'a', sk: 'b', v: 1 } }));
    const { Item } = await doc.send(new GetCommand({ TableName: 'avatar-pipeline', Key: { pk: 'a', sk: 'b' } }));
    expect(Item).toMatchObject({ v: 1 });
  });

  it('issues verifiable dev tokens', async () => {
    const issuer = await createDevIssuer({ issuer: 'http://localhost:8080/dev', audience: 'avatar-pipeline', logger: createLogger('t', 'silent') });
    const res = await issuer.service.app.request('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ playerId: 'p-1' }) });
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    expect(token.split('.')).toHaveLength(3);
    const bad = await issuer.service.app.request('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"playerId":"../x"}' });
    expect(bad.status).toBe(400);
    const jwks = (await (await issuer.service.app.request('/.well-known/jwks.json')).json()) as { keys: { d?: string }[] };
    expect(jwks.keys[0]?.d).toBeUndefined();
  });
});
