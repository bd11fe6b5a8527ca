import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createVapidStore, generateVapidKeys, initVapidKeys, loadVapidKeys, podNamespace, vapidEnv, type VapidKeys } from '../src/index.js';
import { defaultSecretApi, SecretVapidStore } from '../src/secret-store.js';
import { loadConfig } from '@avatar-pipeline/kit/config';

interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/**
 * A fake Kubernetes API server for namespaced Secrets: GET and POST with the response shapes of
 * the real one (the object with server-set metadata, `Status` objects for 404 and 409).
 */
function fakeApiServer() {
  const secrets = new Map<string, Record<string, unknown>>();
  const requests: Recorded[] = [];
  /** Secrets that answer 404 to the next GET although they exist (a create landing in between). */
  const hiddenOnce = new Set<string>();
  let forbidden = false;
  const status = (code: number, reason: string, message: string, name: string) => ({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    details: { name, kind: 'secrets' },
    code,
  });
  const server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
    const send = (code: number, payload: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (forbidden) {
      return send(403, { ...status(403, 'Forbidden', 'secrets is forbidden: User "system:serviceaccount:x:y" cannot get resource "secrets"', ''), details: { kind: 'secrets' } });
    }
    const one = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(path);
    const collection = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(path);
    if (req.method === 'GET' && one) {
      const key = `${one[1]}/${one[2]}`;
      const secret = secrets.get(key);
      if (!secret || hiddenOnce.delete(key)) return send(404, status(404, 'NotFound', `secrets "${one[2]}" not found`, one[2]!));
      return send(200, secret);
    }
    if (req.method === 'POST' && collection && body) {
      const metadata = body['metadata'] as { name: string };
      const key = `${collection[1]}/${metadata.name}`;
      if (secrets.has(key)) return send(409, status(409, 'AlreadyExists', `secrets "${metadata.name}" already exists`, metadata.name));
      const created = {
        ...body,
        metadata: { ...metadata, namespace: collection[1], uid: `uid-${secrets.size + 1}`, resourceVersion: String(1000 + secrets.size), creationTimestamp: '2030-01-01T00:00:00Z' },
      };
      secrets.set(key, created);
      return send(201, created);
    }
    send(404, status(404, 'NotFound', 'the server could not find the requested resource', ''));
  });
  return {
    server,
    secrets,
    requests,
    hiddenOnce,
    forbid: (on: boolean) => (forbidden = on),
    seed(namespace: string, name: string, keys: Partial<VapidKeys>) {
      const data = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
      secrets.set(`${namespace}/${name}`, { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace }, data });
    },
  };
}

let fake: ReturnType<typeof fakeApiServer>;
let dir: string;
let kubeconfig: string;
const previousKubeconfig = process.env['KUBECONFIG'];
let seq = 0;
const nextName = () => `vapid-${++seq}`;

beforeAll(async () => {
  fake = fakeApiServer();
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  const { port } = fake.server.address() as AddressInfo;
  dir = await mkdtemp(join(tmpdir(), 'vapid-k8s-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: http://127.0.0.1:${port}`,
      // client-node refuses plain http unless this is set (as for `kubectl proxy`).
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: init-job',
      '  user:',
      '    token: fake-service-account-token',
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: init-job',
      'current-context: fake',
      '',
    ].join('\n'),
  );
  process.env['KUBECONFIG'] = kubeconfig;
});
afterAll(async () => {
  if (previousKubeconfig === undefined) delete process.env['KUBECONFIG'];
  else process.env['KUBECONFIG'] = previousKubeconfig;
  await new Promise<void>((resolve) => fake?.server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.forbid(false);
});

const store = (name: string, namespace = 'games') => new SecretVapidStore(defaultSecretApi(), { name, namespace });

describe('Kubernetes Secret VAPID key store', () => {
  it('reads nothing when the Secret does not exist (404 Status)', async () => {
    const name = nextName();
    expect(await store(name).read()).toBeUndefined();
    expect(fake.requests).toEqual([{ method: 'GET', path: `/api/v1/namespaces/games/secrets/${name}`, authorization: 'Bearer fake-service-account-token', body: undefined }]);
    expect(store(name).describe()).toBe(`Kubernetes Secret games/${name}`);
  });

  it('creates an immutable Secret once, then keeps it', async () => {
    const name = nextName();
    const keys = generateVapidKeys();
    expect(await store(name).createIfAbsent(keys)).toEqual({ created: true, keys });
    const post = fake.requests.find((r) => r.method === 'POST');
    expect(post).toMatchObject({
      path: '/api/v1/namespaces/games/secrets',
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        immutable: true,
        metadata: { name, labels: { 'app.kubernetes.io/part-of': 'avatar-pipeline' } },
        data: { publicKey: Buffer.from(keys.publicKey).toString('base64'), privateKey: Buffer.from(keys.privateKey).toString('base64') },
      },
    });
    expect(await loadVapidKeys(store(name))).toEqual(keys);

    fake.requests.length = 0;
    expect(await store(name).createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys });
    expect(fake.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('reads the winner after losing a create race (409 AlreadyExists)', async () => {
    const name = nextName();
    const winner = generateVapidKeys();
    fake.seed('games', name, winner);
    fake.hiddenOnce.add(`games/${name}`);
    expect(await store(name).createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys: winner });
    expect(fake.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'GET']);
  });

  it('two concurrent inits converge on one pair', async () => {
    const name = nextName();
    const [a, b] = await Promise.all([initVapidKeys(store(name)), initVapidKeys(store(name))]);
    expect(a.keys).toEqual(b.keys);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
  });

  it('derives a missing public key, and refuses a Secret with only a public key', async () => {
    const keys = generateVapidKeys();
    const privateOnly = nextName();
    fake.seed('games', privateOnly, { privateKey: keys.privateKey });
    expect(await store(privateOnly).read()).toEqual(keys);
    const publicOnly = nextName();
    fake.seed('games', publicOnly, { publicKey: keys.publicKey });
    await expect(store(publicOnly).read()).rejects.toThrow(/public key without its private key/);
  });

  it('passes other API errors on (403)', async () => {
    fake.forbid(true);
    await expect(store(nextName()).read()).rejects.toMatchObject({ code: 403 });
  });

  it('is chosen by VAPID_STORE=k8s-secret, in the pod namespace by default', async () => {
    const namespaceFile = join(dir, 'namespace');
    await writeFile(namespaceFile, 'pod-ns\n');
    expect(podNamespace(namespaceFile)).toBe('pod-ns');
    expect(podNamespace(join(dir, 'absent'))).toBeUndefined();
    const fromPod = createVapidStore(loadConfig(vapidEnv, { VAPID_STORE: 'k8s-secret' }), { namespaceFile });
    expect(fromPod.describe()).toBe('Kubernetes Secret pod-ns/avatar-pipeline-vapid');
    const named = createVapidStore(loadConfig(vapidEnv, { VAPID_STORE: 'k8s-secret', VAPID_SECRET_NAME: 'keys', VAPID_SECRET_NAMESPACE: 'other' }), { namespaceFile });
    expect(named.describe()).toBe('Kubernetes Secret other/keys');
    const keys = generateVapidKeys();
    fake.seed('other', 'keys', keys);
    expect(await loadVapidKeys(named)).toEqual(keys);
    expect(() => createVapidStore(loadConfig(vapidEnv, { VAPID_STORE: 'k8s-secret' }), { namespaceFile: join(dir, 'absent') })).toThrow(/VAPID_SECRET_NAMESPACE is required/);
  });
});
