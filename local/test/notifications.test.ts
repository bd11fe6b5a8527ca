import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { listen, type Listening } from '../src/listen.js';
import { createNotificationForwarder, isUploadCreated } from '../src/stand-ins/notifications.js';
import { freePort } from '../src/ports.js';

const record = (eventName: string, key: string) => ({ eventName, s3: { bucket: { name: 'avatars' }, object: { key } } });
const logger = createLogger('local', 'silent');

describe('S3 notification forwarding', () => {
  const servers: Listening[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  /** A webhook answering with `statuses` in turn (then 200), recording what it received. */
  async function webhook(statuses: number[], port = 0) {
    const received: { auth: string | undefined; body: { Records: { s3: { object: { key: string } } }[] } }[] = [];
    const app = new Hono();
    app.post('/webhook', async (c) => {
      received.push({ auth: c.req.header('authorization'), body: await c.req.json() });
      return c.body(null, (statuses.shift() ?? 200) as 200);
    });
    servers.push(await listen('webhook', app.fetch, port));
    return { received, url: `http://127.0.0.1:${servers.at(-1)!.port}/webhook` };
  }

  it('selects object creation under uploads/, as the bucket notification configuration does', () => {
    expect(isUploadCreated(record('ObjectCreated:Post', 'uploads/p/u'))).toBe(true);
    expect(isUploadCreated(record('ObjectCreated:Put', 'avatars/p/u/64.webp'))).toBe(false);
    expect(isUploadCreated(record('ObjectRemoved:Delete', 'uploads/p/u'))).toBe(false);
    expect(isUploadCreated({ eventName: 'ObjectCreated:Post' })).toBe(false);
  });

  it('retries until the webhook takes each notification, in order, with its token', async () => {
    const hook = await webhook([503, 502]);
    const forwarder = createNotificationForwarder({ target: () => hook.url, token: 'hook-secret', logger, retryDelayMs: 5 });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/1')] });
    forwarder.push({ Records: [record('ObjectRemoved:Delete', 'uploads/p/1')] });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/2'), record('ObjectCreated:Put', 'avatars/p/2/64.webp')] });
    await forwarder.idle();
    const keys = hook.received.map((r) => r.body.Records.map((rec) => rec.s3.object.key).join(','));
    expect(keys).toEqual(['uploads/p/1', 'uploads/p/1', 'uploads/p/1', 'uploads/p/2']);
    expect(new Set(hook.received.map((r) => r.auth))).toEqual(new Set(['Bearer hook-secret']));
    await forwarder.close();
  });

  it('keeps a notification while s3-source is not listening yet', async () => {
    const port = await freePort();
    const forwarder = createNotificationForwarder({ target: () => `http://127.0.0.1:${port}/webhook`, logger, retryDelayMs: 20 });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/late')] });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const hook = await webhook([], port);
    await forwarder.idle();
    expect(hook.received.map((r) => r.body.Records[0]?.s3.object.key)).toEqual(['uploads/p/late']);
    await forwarder.close();
  });

  it('drops a notification the webhook refuses as invalid instead of retrying forever', async () => {
    const hook = await webhook([400]);
    const forwarder = createNotificationForwarder({ target: () => hook.url, logger, retryDelayMs: 5 });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/bad')] });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/good')] });
    await forwarder.idle();
    expect(hook.received.map((r) => r.body.Records[0]?.s3.object.key)).toEqual(['uploads/p/bad', 'uploads/p/good']);
    await forwarder.close();
  });

  it('stops retrying when closed', async () => {
    const port = await freePort();
    const forwarder = createNotificationForwarder({ target: () => `http://127.0.0.1:${port}/webhook`, logger, retryDelayMs: 5 });
    forwarder.push({ Records: [record('ObjectCreated:Post', 'uploads/p/never')] });
    await forwarder.close();
    await forwarder.idle();
  });
});
