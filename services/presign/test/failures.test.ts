import { Writable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { Service } from '@avatar-pipeline/kit/service';
import { createKeys, presign, requestUpload, startBackends, type Backends, type Keys } from './support.js';

const body = { contentType: 'image/webp', contentLength: 4096 };

/** A pino destination that keeps every line. */
function captureLines() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

async function issued(service: Service): Promise<number> {
  const metric = await service.metrics.registry.getSingleMetric('avatarpipeline_presign_uploads_issued_total')?.get();
  return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

describe('presign when things go wrong', () => {
  let backends: Backends;
  let keys: Keys;

  beforeAll(async () => {
    backends = await startBackends();
    keys = await createKeys();
  });
  afterAll(async () => {
    await backends?.close();
  });

  it('answers 503 and issues nothing when the pending record cannot be written', async () => {
    const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    const table = mockClient(doc);
    table.on(UpdateCommand).resolves({ Attributes: { count: 1 } });
    table.on(PutCommand).rejects(Object.assign(new Error('throughput exceeded'), { name: 'ProvisionedThroughputExceededException' }));
    const service = presign(backends, keys, { doc });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'uploads are unavailable right now; try again shortly' } });
    expect(table.commandCalls(PutCommand)).toHaveLength(1);
    expect(await issued(service)).toBe(0);
  });

  it('answers 503 without recording anything when the rate limit cannot be checked', async () => {
    const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    const table = mockClient(doc);
    table.on(UpdateCommand).rejects(new Error('connection refused'));
    const service = presign(backends, keys, { doc });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: { code: 'unavailable', message: 'uploads are unavailable right now; try again shortly' } });
    expect(table.commandCalls(PutCommand)).toHaveLength(0);
    expect(await issued(service)).toBe(0);
  });

  it('answers 503 and records nothing when the upload cannot be signed', async () => {
    const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    const table = mockClient(doc);
    table.on(UpdateCommand).resolves({ Attributes: { count: 1 } });
    const s3 = new S3Client({ region: 'us-east-1', credentials: () => Promise.reject(new Error('no credentials')) });
    const service = presign(backends, keys, { doc, s3 });

    const res = await requestUpload(service.app, await keys.token('player-1'), body);
    expect(res.status).toBe(503);
    expect(table.commandCalls(PutCommand)).toHaveLength(0);
    expect(await issued(service)).toBe(0);
  });

  it('never writes the bearer token to the logs', async () => {
    const { lines, stream } = captureLines();
    const service = presign(backends, keys, { logger: createLogger('presign', 'trace', stream) });
    const good = await keys.token('player-logs');
    const wrongAudience = await keys.token('player-logs', { aud: 'elsewhere' });
    const expired = await keys.token('player-logs', { exp: Math.floor(Date.now() / 1000) - 60 });

    expect((await requestUpload(service.app, good, body)).status).toBe(201);
    expect((await requestUpload(service.app, wrongAudience, body)).status).toBe(401);
    expect((await requestUpload(service.app, expired, body)).status).toBe(401);
    expect((await requestUpload(service.app, good, { ...body, contentType: 'image/gif' })).status).toBe(400);
    const inQuery = await service.app.request(`/v1/uploads?access_token=${good}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(inQuery.status).toBe(401);

    const failing = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: 'http://127.0.0.1:9' });
    mockClient(failing).on(UpdateCommand).resolves({ Attributes: { count: 1 } }).on(PutCommand).rejects(new Error('table gone'));
    const broken = presign(backends, keys, { doc: failing, logger: createLogger('presign', 'trace', stream) });
    expect((await requestUpload(broken.app, good, body)).status).toBe(503);

    expect(lines.some((line) => line.includes('"msg":"upload issued"'))).toBe(true);
    expect(lines.some((line) => line.includes('"status":401'))).toBe(true);
    expect(lines.some((line) => line.includes('recording the pending upload failed'))).toBe(true);
    for (const token of [good, wrongAudience, expired]) {
      const signature = token.split('.')[2]!;
      for (const line of lines) {
        expect(line).not.toContain(token);
        expect(line).not.toContain(signature);
      }
    }
  });
});
