/**
 * The live suite, against a cluster the chart was deployed to (`skaffold run`): waits until every
 * Knative Service and Trigger is Ready, then runs an upload through the gateway to `ready` and
 * checks that push received the outcome. Skipped, with the reason in its title, when no cluster is
 * configured (no KUBECONFIG nor ~/.kube/config) or its API server does not answer.
 *   AVATAR_ENV        kind (default) or eks: kind gets a token from the dev issuer
 *   AVATAR_NAMESPACE  default avatar-pipeline
 *   LIVE_TOKEN        a player's bearer token (required on eks: a Cognito ID token)
 * The gateway is reached through a port-forward this suite opens itself (client-node).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PortForward, VersionApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventType, serviceNames, triggers } from '@avatar-pipeline/kit/topology';
import { environmentFromEnv } from '@avatar-pipeline/cdk8s';

const namespace = process.env['AVATAR_NAMESPACE'] ?? 'avatar-pipeline';
const environment = environmentFromEnv();
const READY_TIMEOUT_MS = 5 * 60_000;
const PIPELINE_TIMEOUT_MS = 3 * 60_000;

/** Why the suite cannot run, or undefined when a cluster answers. */
async function unreachable(kc: KubeConfig): Promise<string | undefined> {
  const configured = process.env['KUBECONFIG'] || existsSync(join(homedir(), '.kube', 'config'));
  if (!configured) return 'no cluster configured: set KUBECONFIG (or create ~/.kube/config) after `skaffold run`';
  kc.loadFromDefault();
  const server = kc.getCurrentCluster()?.server ?? '(none)';
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      kc.makeApiClient(VersionApi).getCode(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000))),
    ]);
    return undefined;
  } catch (err) {
    return `the API server ${server} is unreachable (${(err as Error).message})`;
  } finally {
    clearTimeout(timer);
  }
}

const kc = new KubeConfig();
const skipReason = await unreachable(kc);
if (skipReason) console.warn(`k8s-tests live suite skipped: ${skipReason}`);

interface Condition {
  type: string;
  status: string;
  message?: string;
}
interface Resource {
  metadata: { name: string };
  status?: { conditions?: Condition[] };
}

const isReady = (r: Resource) => r.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value, or fails with what `describe` says at the deadline. */
async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(2000);
  }
  throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${last ? `: ${(last as Error).message}` : ''}`);
}

/** A local port forwarded to port `port` of the first running pod matching `selector`. */
async function forward(selector: string, port: number): Promise<{ url: string; server: Server }> {
  const core = kc.makeApiClient(CoreV1Api);
  const pod = await eventually(`a running pod for ${selector}`, READY_TIMEOUT_MS, async () => {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: selector });
    return pods.items.find((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)?.metadata?.name;
  });
  const portForward = new PortForward(kc);
  const server = createServer((socket) => {
    portForward.portForward(namespace, pod, [port], socket, null, socket).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.url} answered ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

describe.skipIf(skipReason !== undefined)(`live cluster (${skipReason ? `skipped: ${skipReason}` : `${environment}, namespace ${namespace}`})`, () => {
  const custom = () => kc.makeApiClient(CustomObjectsApi);
  const list = async (group: string, plural: string) =>
    ((await custom().listNamespacedCustomObject({ group, version: 'v1', namespace, plural })) as { items: Resource[] }).items;
  let gateway: { url: string; server: Server } | undefined;

  beforeAll(async () => {
    gateway = await forward('app.kubernetes.io/name=gateway', 8080);
  }, READY_TIMEOUT_MS);
  afterAll(() => gateway?.server.close());

  // On eks s3-source polls SQS as a Deployment (values-eks.yaml: s3Source.mode sqs).
  const knativeServiceNames = serviceNames.filter((n) => environment === 'kind' || n !== 's3-source');

  it('has every Knative Service Ready', async () => {
    const names = await eventually('all Knative Services Ready', READY_TIMEOUT_MS, async () => {
      const services = await list('serving.knative.dev', 'services');
      const ready = services.filter(isReady).map((s) => s.metadata.name);
      return knativeServiceNames.every((n) => ready.includes(n)) ? ready : undefined;
    });
    expect(names).toEqual(expect.arrayContaining(knativeServiceNames));
  }, READY_TIMEOUT_MS + 10_000);

  it('has every Trigger Ready', async () => {
    const names = await eventually('all Triggers Ready', READY_TIMEOUT_MS, async () => {
      const ready = (await list('eventing.knative.dev', 'triggers')).filter(isReady).map((t) => t.metadata.name);
      return triggers.every((t) => ready.includes(t.name)) ? ready : undefined;
    });
    expect(names).toEqual(expect.arrayContaining(triggers.map((t) => t.name)));
  }, READY_TIMEOUT_MS + 10_000);

  it('takes an upload through moderation and thumbnails to ready, and push gets the outcome', async () => {
    const base = gateway?.url ?? '';
    const playerId = `live-${Date.now().toString(36)}`;
    const token =
      process.env['LIVE_TOKEN'] ??
      (environment === 'kind'
        ? (await json<{ token: string }>(await fetch(`${base}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ playerId }) }))).token
        : undefined);
    if (!token) throw new Error('set LIVE_TOKEN to a player token for this environment');
    const auth = { authorization: `Bearer ${token}` };

    const photo = readFileSync(new URL('../fixtures/photos/leaf.jpg', import.meta.url));
    const ticket = await json<{ uploadId: string; url: string; fields: Record<string, string> }>(
      await fetch(`${base}/v1/uploads`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ contentType: 'image/jpeg', contentLength: photo.length }),
      }),
    );
    // A POST policy signs the form, not the host: on kind the gateway's /s3 is reached through the forward.
    const target = environment === 'kind' ? `${base}${new URL(ticket.url).pathname}` : ticket.url;
    const form = new FormData();
    for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
    form.append('file', new Blob([photo], { type: 'image/jpeg' }), 'leaf.jpg');
    const posted = await fetch(target, { method: 'POST', body: form });
    expect(posted.status, await posted.clone().text()).toBeLessThan(300);

    const status = await eventually('the upload becoming ready', PIPELINE_TIMEOUT_MS, async () => {
      const upload = await json<{ status: string; avatar?: Record<string, string> }>(await fetch(`${base}/v1/uploads/${ticket.uploadId}`, { headers: auth }));
      if (upload.status === 'rejected' || upload.status === 'failed') throw new Error(`the upload ended ${upload.status}`);
      return upload.status === 'ready' ? upload : undefined;
    });
    expect(status.avatar).toBeDefined();

    // push consumed the ready event: its own counter, scraped from its pod like Prometheus does.
    const push = await forward('serving.knative.dev/service=push', 8080);
    try {
      const handled = await eventually('push handling the ready event', 60_000, async () => {
        const metrics = await (await fetch(`${push.url}/metrics`)).text();
        const line = metrics.split('\n').find((l) => l.startsWith('avatarpipeline_cloudevents_handled_total{') && l.includes(`type="${EventType.ready}"`) && !l.includes('outcome="error"'));
        return line && Number(line.split(' ').pop()) > 0 ? line : undefined;
      });
      expect(handled).toContain(EventType.ready);
    } finally {
      push.server.close();
    }
  }, PIPELINE_TIMEOUT_MS + 2 * 60_000);
});
