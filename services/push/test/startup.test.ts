/** Start-up refuses a key pair that cannot work and a VAPID subject push services reject. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import { FileVapidStore, VapidKeyError, generateVapidKeys } from '@avatar-pipeline/webpush';
import { pushEnv } from '../src/index.js';
import { pushService, startStack, type Stack } from './harness.js';

describe('push start-up', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('refuses to start when the stored public key is not the private key’s', async () => {
    const path = join(stack.dir, 'mismatched.json');
    const other = generateVapidKeys();
    await writeFile(path, JSON.stringify({ publicKey: other.publicKey, privateKey: stack.keys.privateKey }));
    const started = pushService(stack, { allowedHosts: '', vapidStore: new FileVapidStore(path) });
    await expect(started).rejects.toThrow(VapidKeyError);
    await expect(started).rejects.toThrow(/does not belong to the private key/);
  });

  it('refuses to start without a key pair, naming the init command', async () => {
    const started = pushService(stack, { allowedHosts: '', vapidStore: new FileVapidStore(join(stack.dir, 'absent.json')) });
    await expect(started).rejects.toThrow(/no VAPID key pair .* create it with/);
  });

  it('starts with a matching pair', async () => {
    const push = await pushService(stack, { allowedHosts: '' });
    expect((await push.service.app.request('/healthz')).status).toBe(200);
    await push.close();
  });
});

describe('push configuration', () => {
  const base = { VAPID_SUBJECT: 'mailto:ops@example.com' };

  it('has the documented defaults', () => {
    const config = loadConfig(pushEnv, base);
    expect(config).toMatchObject({
      PUSH_TTL_SECONDS: 86_400,
      PUSH_ALLOW_HTTP: false,
      PUSH_HOST_CONCURRENCY: 16,
      PUSH_MAX_ATTEMPTS: 3,
      PUSH_TIMEOUT_MS: 20_000,
      VAPID_STORE: 'file',
    });
    expect(config.PUSH_ALLOWED_HOSTS.map((p) => `${p.subdomains ? '*.' : ''}${p.host}`)).toEqual([
      'fcm.googleapis.com',
      'updates.push.services.mozilla.com',
      '*.notify.windows.com',
      '*.push.apple.com',
    ]);
  });

  it('requires VAPID_SUBJECT', () => {
    expect(() => loadConfig(pushEnv, {})).toThrow(/VAPID_SUBJECT is required/);
  });

  it.each(['mailto:ops@example.com', 'https://example.com/contact', 'mailto:push%2Bops@games.example'])('accepts the subject %s', (subject) => {
    expect(loadConfig(pushEnv, { VAPID_SUBJECT: subject }).VAPID_SUBJECT).toBe(subject);
  });

  it.each([
    ['http://example.com', /mailto: address or an https: URL/],
    ['ops@example.com', /mailto: address or an https: URL/],
    ['https://localhost/contact', /localhost/],
    ['https://127.0.0.1', /localhost/],
    ['https://[::1]/', /localhost/],
    ['https://push.localhost', /localhost/],
    ['mailto:root@localhost', /localhost/],
    ['mailto:', /mailto: address such as/],
  ])('refuses the subject %s', (subject, problem) => {
    expect(() => loadConfig(pushEnv, { VAPID_SUBJECT: subject })).toThrow(ConfigError);
    expect(() => loadConfig(pushEnv, { VAPID_SUBJECT: subject })).toThrow(problem);
  });

  it.each([
    ['PUSH_TTL_SECONDS', '2419201'],
    ['PUSH_HOST_CONCURRENCY', '0'],
    ['PUSH_MAX_ATTEMPTS', '0'],
    ['PUSH_TIMEOUT_MS', '10'],
    ['PUSH_ALLOWED_HOSTS', 'https://fcm.googleapis.com/'],
  ])('refuses %s=%s', (name, value) => {
    expect(() => loadConfig(pushEnv, { ...base, [name]: value })).toThrow(new RegExp(name));
  });
});
