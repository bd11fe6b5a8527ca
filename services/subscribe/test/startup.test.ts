import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE, startTestBackends, type DynamoBackend } from '@avatar-pipeline/local';
import { FileVapidStore, generateVapidKeys } from '@avatar-pipeline/webpush';

/** The built entry point, as the container runs it (npm test builds before testing). */
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let backends: DynamoBackend;
let dir: string;
beforeAll(async () => {
  backends = await startTestBackends({ prefix: 'subscribe-main-', s3: false });
  dir = backends.dir;
});
afterAll(async () => {
  await backends?.close();
});

const baseEnv = () => ({
  PATH: process.env['PATH'] ?? '',
  PORT: '0',
  LOG_LEVEL: 'info',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_ENDPOINT_URL_DYNAMODB: backends.dynamoServer.endpoint,
  TABLE_NAME: TABLE,
  JWT_JWKS_URL: 'http://127.0.0.1:9/.well-known/jwks.json',
  JWT_ISSUER: 'https://issuer.test',
  JWT_AUDIENCE: 'avatar-pipeline',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});

/** Starts main.js; resolves with its port once it listens, or with its exit code and stderr. */
function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const outcome = new Promise<{ port: number } | { code: number | null; stderr: string }>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as { port?: number; msg?: string };
      if (entry.msg === 'subscribe listening' && entry.port) resolve({ port: entry.port });
    });
    void exited.then((code) => resolve({ code, stderr }));
  });
  return { child, exited, outcome };
}

describe('subscribe main', () => {
  it('is built', () => {
    expect(existsSync(MAIN), `${MAIN} is missing: run npx tsc -b services/subscribe`).toBe(true);
  });

  it('serves the stored VAPID public key, and drains on SIGTERM', async () => {
    const file = join(dir, 'good', 'vapid.json');
    const keys = generateVapidKeys();
    await new FileVapidStore(file).createIfAbsent(keys);
    const { child, exited, outcome } = start({ ...baseEnv(), VAPID_FILE: file, PUSH_MAX_DEVICES: '3' });
    const started = await outcome;
    expect(started).toHaveProperty('port');
    const { port } = started as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/v1/push/vapid-public-key`);
    expect(await res.json()).toEqual({ publicKey: keys.publicKey });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('refuses to start without a key pair, naming the init command', async () => {
    const { outcome } = start({ ...baseEnv(), VAPID_FILE: join(dir, 'absent', 'vapid.json') });
    const result = await outcome;
    expect(result).toMatchObject({ code: 1 });
    expect((result as { stderr: string }).stderr).toMatch(/no VAPID key pair in file .*absent\/vapid\.json: create it with the VAPID init command/);
  });

  it('refuses to start when the public key is not the private key\'s', async () => {
    const file = join(dir, 'mismatch.json');
    await writeFile(file, JSON.stringify({ publicKey: generateVapidKeys().publicKey, privateKey: generateVapidKeys().privateKey }));
    const result = await start({ ...baseEnv(), VAPID_FILE: file }).outcome;
    expect(result).toMatchObject({ code: 1 });
    expect((result as { stderr: string }).stderr).toMatch(/does not belong to the private key/);
  });

  it('refuses a malformed PUSH_ALLOWED_HOSTS with one line', async () => {
    const result = await start({ ...baseEnv(), PUSH_ALLOWED_HOSTS: 'fcm.googleapis.com,https://evil' }).outcome;
    expect(result).toEqual({ code: 1, stderr: expect.stringMatching(/^invalid configuration: PUSH_ALLOWED_HOSTS: "https:\/\/evil" is not a host[^\n]*\n$/) });
  });
});
