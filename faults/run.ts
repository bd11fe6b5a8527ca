/**
 * One fault-injection run: the whole local stack (every service a child process, s3rver and
 * dynalite behind fault proxies, the broker with its retries scaled down), web-push-testing with a
 * subscription for every device of every player, a steady rate of uploads through the real client
 * path (presign through the gateway with a dev-issuer token, the form POSTed to the S3 stand-in
 * URL), a fault schedule running meanwhile, then a settle time, then the count: the terminal state
 * of every upload from the status API and every notification every device received.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { deliveryBudget, deliveryPolicies, type ServiceName } from '@avatar-pipeline/kit/topology';
import { textFile, truncated } from '@avatar-pipeline/imaging/hostile';
import { repoRoot, startStack, type Stack } from '../local/src/stack.js';
import { requireBuilt } from '../local/src/test-backends.js';
import { startWebPushTesting, type WebPushTesting } from '../local/src/stand-ins/web-push-testing.js';
import { ApiClient, postUpload, type UploadTicket } from '../local/src/client.js';
import { startFaultProxy, type FaultProxy, type FaultStats } from './proxy.js';

export const terminalStates = ['ready', 'rejected', 'failed', 'expired'] as const;
export type TerminalState = (typeof terminalStates)[number];
const isTerminal = (status: string | undefined): status is TerminalState => terminalStates.includes(status as TerminalState);
const isNotified = (status: string | undefined): boolean => isTerminal(status);

/** Every service of the stack, in topology order. */
export const allServices: readonly ServiceName[] = ['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push'];

export interface Timing {
  /**
   * Multiplies every broker backoff (the topology's retries span minutes: processing 8 min 30 s,
   * notifications 17 min, dead letters 34 min). Per-attempt timeouts are not scaled.
   */
  backoffScale: number;
  /** PUSH_TIMEOUT_MS: push's budget per event; its per-device claim lease is this + 10 s. */
  pushTimeoutMs: number;
  /** PRESIGN_EXPIRES_SECONDS: how long a ticket (and so the client's retries of its POST) lasts. */
  presignExpiresSeconds: number;
  /**
   * The reconciler (a timer in profile locally, every RECONCILE_PERIOD_SECONDS): a `pending` upload
   * is expired UPLOAD_PENDING_TIMEOUT_SECONDS after its ticket expired, a `processing` one failed
   * after UPLOAD_PROCESSING_TIMEOUT_SECONDS.
   */
  reconcilePeriodSeconds: number;
  pendingTimeoutSeconds: number;
  processingTimeoutSeconds: number;
}

const spanMs = (policy: Parameters<typeof deliveryBudget>[0], scale: number) => deliveryBudget(policy).backoffMs * scale;

/**
 * Time, scaled. Retries are scaled by 1/20: processing retries span 25.5 s instead of 8 min 30 s,
 * notifications 51 s instead of 17 min, dead letters 102 s instead of 34 min. push's claim lease
 * (PUSH_TIMEOUT_MS + 10 s) is not a backoff, so PUSH_TIMEOUT_MS comes down to 5 s: a lease of 15 s
 * still leaves a redelivered notification two attempts after the lease of a killed push ran out,
 * as the real 17 minutes leave many after the real 30 s. The reconciler's timeouts are the scaled
 * budgets they stand for: pending, the upload event's retries to moderate; processing, every
 * stage's retries and the dead-letter sink's (so it only ends what the pipeline lost).
 */
export function scaledTiming(backoffScale = 0.05): Timing {
  const { processing, publishing, deadLetters } = deliveryPolicies;
  const pipelineMs = spanMs(processing, backoffScale) * 2 + spanMs(publishing, backoffScale) + spanMs(deadLetters, backoffScale);
  return {
    backoffScale,
    pushTimeoutMs: 5000,
    presignExpiresSeconds: 30,
    reconcilePeriodSeconds: 5,
    pendingTimeoutSeconds: Math.ceil(spanMs(processing, backoffScale) / 1000) + 10,
    processingTimeoutSeconds: Math.ceil(pipelineMs / 1000) + 20,
  };
}

export const defaultTiming: Timing = scaledTiming();

/**
 * How long after the last upload started the run waits for every upload to end and every
 * notification to arrive before it counts what is left as stuck: at least the scaled retries of a
 * whole chain (moderate, thumbnail, profile, the dead-letter sink, then push), and at least the
 * reconciler's budgets (an upload left pending until its ticket expired, then processing).
 */
export function settleBudgetMs(timing: Timing): number {
  const { processing, publishing, deadLetters, notification } = deliveryPolicies;
  const scale = timing.backoffScale;
  const chainMs = spanMs(processing, scale) * 2 + spanMs(publishing, scale) + spanMs(deadLetters, scale) + spanMs(notification, scale);
  // The last ticket is used just before it expires; its upload event may take the processing
  // retries to reach moderate; then it waits out the longer timeout and a reconciler period.
  const waitMs = Math.max(timing.pendingTimeoutSeconds * 1000, spanMs(processing, scale) + timing.processingTimeoutSeconds * 1000);
  const reconcilerMs = timing.presignExpiresSeconds * 1000 + waitMs + timing.reconcilePeriodSeconds * 1000 + spanMs(notification, scale);
  return Math.ceil(Math.max(chainMs, reconcilerMs) + 15_000);
}

export interface Fixture {
  name: string;
  bytes: Buffer;
  contentType: string;
  /** What a healthy pipeline makes of it. */
  expect: 'ready' | 'rejected';
}

/** Benign photographs and images the pipeline refuses (format, corruption, the moderation model). */
export async function loadFixtures(): Promise<Fixture[]> {
  const photo = (name: string) => readFile(join(repoRoot, 'fixtures', 'photos', name));
  const leaf = await photo('leaf.jpg');
  const autumn = await photo('autumn.webp');
  const benign: Fixture[] = [
    { name: 'leaf.jpg', bytes: leaf, contentType: 'image/jpeg', expect: 'ready' },
    { name: 'autumn.webp', bytes: autumn, contentType: 'image/webp', expect: 'ready' },
  ];
  // Seven benign uploads in every ten, then one of each refused kind.
  return [
    ...Array.from({ length: 7 }, (_, i) => benign[i % 2]!),
    { name: 'text-as-jpeg', bytes: textFile, contentType: 'image/jpeg', expect: 'rejected' },
    { name: 'truncated-leaf.jpg', bytes: truncated(leaf), contentType: 'image/jpeg', expect: 'rejected' },
    // MobileNetV2 takes the cups' avatar square for 'Sexy' (see services/moderate/test/nsfwjs.test.ts).
    { name: 'cups-exif-rotated.jpg', bytes: await photo('cups-exif-rotated.jpg'), contentType: 'image/jpeg', expect: 'rejected' },
  ];
}

export interface Player {
  id: string;
  token: string;
  /** web-push-testing client hashes, one per device. */
  devices: string[];
}

export interface Upload {
  index: number;
  playerId: string;
  fixture: string;
  expect: 'ready' | 'rejected';
  uploadId?: string;
  /** The file was POSTed (204). An upload counts as started once its ticket is issued. */
  posted: boolean;
  /** Presign calls and POSTs it took (retries after faults). */
  presignAttempts: number;
  postAttempts: number;
  /** Why it never started, or why its POST was given up. */
  problem?: string;
  status?: string;
  reason?: string;
}

export interface FaultContext {
  stack: Stack;
  s3Proxy: FaultProxy;
  dynamoProxy: FaultProxy;
  /** How long the uploads take to start at the run's rate. */
  loadMs: number;
  /** Records what was done, for the report. */
  note(event: string): void;
  /** Resolves once every service answers /readyz again (after a kill), or after `timeoutMs`. */
  allReady(timeoutMs?: number): Promise<boolean>;
}

export interface RunOptions {
  name: string;
  /** What the schedule injects, in words, for the report. */
  faults: string;
  uploads: number;
  ratePerSecond: number;
  players: number;
  timing?: Timing;
  schedule(ctx: FaultContext): Promise<void>;
  /** Where logs and the per-upload record go. */
  artifactsDir: string;
}

export interface NotificationCount {
  expected: number;
  received: number;
  missing: number;
  duplicates: number;
  /** Notifications whose status is not the upload's final state (e.g. `failed` for a ready upload). */
  wrong: number;
  /** Notifications for uploads this run did not start. */
  other: number;
}

export interface RunResult {
  name: string;
  faults: string;
  started: number;
  notStarted: number;
  ready: number;
  rejected: number;
  failed: number;
  expired: number;
  stuck: number;
  /** Uploads whose state is not what their fixture leads to (benign not ready, refused ready). */
  unexpected: number;
  notifications: NotificationCount;
  loadMs: number;
  settleMs: number;
  settleBudgetMs: number;
  totalMs: number;
  events: string[];
  proxies: Record<string, FaultStats>;
  broker: Record<string, number>;
  failedReasons: Record<string, number>;
  stuckUploads: { uploadId: string; playerId: string; status: string | undefined }[];
  /** Which device missed or got more than once which outcome (for finding the cause in the logs). */
  missingNotifications: { uploadId: string; device: string; status: string }[];
  duplicateNotifications: { uploadId: string; device: string; status: string; times: number }[];
  problems: string[];
  timing: Timing;
}

interface Notification {
  uploadId?: string;
  status?: string;
}

/** Counters from a Prometheus text page, `name{labels}` → value, for the given metric names. */
async function scrape(url: string, names: readonly string[]): Promise<Record<string, number>> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      if (!names.some((n) => line.startsWith(`${n}{`))) continue;
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (value > 0) out[line.slice(0, line.lastIndexOf(' '))] = value;
    }
    return out;
  } catch {
    return {};
  }
}

async function withRetry<T>(what: string, attempt: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      await sleep(Math.min(100 * 2 ** n, 2000));
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function runFaults(options: RunOptions): Promise<RunResult> {
  const timing = options.timing ?? defaultTiming;
  const began = Date.now();
  requireBuilt(allServices);

  await mkdir(options.artifactsDir, { recursive: true });
  const logFile = join(options.artifactsDir, `${options.name}.log`);
  const log = createWriteStream(logFile);
  const events: string[] = [];
  const note = (event: string) => {
    const line = `+${((Date.now() - began) / 1000).toFixed(1)}s ${event}`;
    events.push(line);
    log.write(`${JSON.stringify({ level: 'info', time: new Date().toISOString(), service: 'faults', msg: event, t: line })}\n`);
  };

  const dataDir = await mkdtemp(join(tmpdir(), `ap-faults-${options.name}-`));
  let pushService: WebPushTesting | undefined;
  let stack: Stack | undefined;
  const proxies: FaultProxy[] = [];
  try {
    pushService = await startWebPushTesting();
    const push = pushService;
    stack = await startStack({
      dataDir,
      logLevel: 'info',
      sink: (line) => log.write(`${line}\n`),
      backoffScale: timing.backoffScale,
      stopGraceMs: 10_000,
      serviceEndpoints: async ({ s3Endpoint, dynamoEndpoint }) => {
        proxies.push(await startFaultProxy({ name: 's3', target: s3Endpoint, flavor: 's3' }));
        proxies.push(await startFaultProxy({ name: 'dynamodb', target: dynamoEndpoint, flavor: 'dynamodb' }));
        return { s3Endpoint: proxies[0]!.url, dynamoEndpoint: proxies[1]!.url };
      },
      env: {
        ...process.env,
        LOG_LEVEL: 'info',
        // Local testing only: the emulator's endpoints are http://localhost:<port>.
        PUSH_ALLOW_HTTP: 'true',
        PUSH_ALLOWED_HOSTS: push.host,
        PUSH_TIMEOUT_MS: String(timing.pushTimeoutMs),
        PRESIGN_EXPIRES_SECONDS: String(timing.presignExpiresSeconds),
        RECONCILE_PERIOD_SECONDS: String(timing.reconcilePeriodSeconds),
        UPLOAD_PENDING_TIMEOUT_SECONDS: String(timing.pendingTimeoutSeconds),
        UPLOAD_PROCESSING_TIMEOUT_SECONDS: String(timing.processingTimeoutSeconds),
        // A steady rate from a few players: the per-player limits are not under test here.
        RATE_LIMIT_UPLOADS: '100000',
        RATE_LIMIT_SUBSCRIPTIONS: '100000',
      },
    });
    const [s3Proxy, dynamoProxy] = proxies as [FaultProxy, FaultProxy];
    const running = stack;
    const api = new ApiClient(stack.gatewayUrl);
    note(`stack up: ${allServices.length} services, broker backoff × ${timing.backoffScale}`);

    // Every player has one or two devices, each a web-push-testing subscription.
    const { body: key } = await api.json<{ publicKey: string }>('/v1/push/vapid-public-key');
    const players: Player[] = [];
    for (let i = 0; i < options.players; i++) {
      const id = `f-${options.name}-${i}`;
      const token = await running.mint(id);
      const devices: string[] = [];
      for (let d = 0; d < (i % 2 === 0 ? 2 : 1); d++) {
        const { subscription, clientHash } = await push.subscribe(key.publicKey);
        const res = await api.json('/v1/push/subscriptions', { method: 'POST', token, body: JSON.stringify(subscription) });
        if (res.status !== 201) throw new Error(`subscribing a device answered ${res.status}: ${JSON.stringify(res.body)}`);
        devices.push(clientHash);
      }
      players.push({ id, token, devices });
    }
    const byId = new Map(players.map((p) => [p.id, p]));
    note(`${players.length} players, ${players.reduce((n, p) => n + p.devices.length, 0)} devices subscribed`);

    const fixtures = await loadFixtures();
    const uploads: Upload[] = [];

    /** The client: asks for a ticket and POSTs the file, retrying what a client would retry. */
    async function upload(index: number): Promise<void> {
      const player = players[index % players.length]!;
      const fixture = fixtures[index % fixtures.length]!;
      const u: Upload = { index, playerId: player.id, fixture: fixture.name, expect: fixture.expect, posted: false, presignAttempts: 0, postAttempts: 0 };
      uploads.push(u);
      let ticket: UploadTicket | undefined;
      const presignDeadline = Date.now() + 60_000;
      for (let n = 0; !ticket; n++) {
        u.presignAttempts += 1;
        try {
          const res = await api.json<UploadTicket>('/v1/uploads', {
            method: 'POST',
            token: player.token,
            body: JSON.stringify({ contentType: fixture.contentType, contentLength: fixture.bytes.length }),
          });
          if (res.status === 201) {
            ticket = res.body;
            break;
          }
          u.problem = `presign answered ${res.status}`;
          if (res.status < 500 && res.status !== 429) return;
        } catch (err) {
          u.problem = `presign: ${(err as Error).message}`;
        }
        if (Date.now() > presignDeadline) return;
        await sleep(Math.min(200 * 2 ** n, 3000));
      }
      u.uploadId = ticket.uploadId;
      const postDeadline = Date.parse(ticket.expiresAt) - 2000;
      for (let n = 0; ; n++) {
        u.postAttempts += 1;
        try {
          const res = await postUpload(ticket, fixture.bytes, fixture.contentType);
          await res.arrayBuffer();
          if (res.status === 204) {
            u.posted = true;
            delete u.problem;
            return;
          }
          u.problem = `POST answered ${res.status}`;
          if (res.status < 500) return;
        } catch (err) {
          u.problem = `POST: ${(err as Error).message}`;
        }
        if (Date.now() > postDeadline) return;
        await sleep(Math.min(200 * 2 ** n, 3000));
      }
    }

    const allReady = async (timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      // The supervisor sees the exit a moment after the signal.
      await sleep(300);
      while (Date.now() < deadline) {
        try {
          if ((await fetch(`${running.gatewayUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok) return true;
        } catch {
          // The gateway itself is never down; a timeout is a busy machine.
        }
        await sleep(200);
      }
      return false;
    };

    // The load: one upload every 1/rate seconds whatever happens to the earlier ones (open loop).
    const loadMs = Math.round((options.uploads / options.ratePerSecond) * 1000);
    const loadStart = Date.now();
    note(`load: ${options.uploads} uploads at ${options.ratePerSecond}/s from ${players.length} players`);
    const inFlight: Promise<void>[] = [];
    const load = (async () => {
      for (let i = 0; i < options.uploads; i++) {
        const due = loadStart + (i * 1000) / options.ratePerSecond;
        if (due > Date.now()) await sleep(due - Date.now());
        inFlight.push(upload(i));
      }
    })();
    const schedule = options.schedule({ stack: running, s3Proxy, dynamoProxy, loadMs, note, allReady });
    await Promise.all([load, schedule]);
    // Whatever the schedule left on, the settle time is fault-free.
    for (const proxy of proxies) proxy.set({});
    note('faults over');
    await Promise.all(inFlight);
    const loadEnd = Date.now();
    const issued = uploads.filter((u) => u.uploadId !== undefined).length;
    const posted = uploads.filter((u) => u.posted).length;
    note(`tickets issued: ${issued} of ${options.uploads}, files posted: ${posted} (${((loadEnd - loadStart) / 1000).toFixed(1)} s)`);
    if (!(await allReady(60_000))) note('not every service is ready 60 s after the faults');

    // Settle: every started upload terminal and the broker idle, or the budget is spent.
    const budgetMs = settleBudgetMs(timing);
    const settleStart = Date.now();
    const deadline = settleStart + budgetMs;
    const tracked = uploads.filter((u) => u.uploadId !== undefined);
    for (;;) {
      await pool(
        tracked.filter((u) => !isTerminal(u.status)),
        8,
        async (u) => {
          try {
            const res = await api.json<{ status: string; reason?: { code: string } }>(`/v1/uploads/${u.uploadId}`, { token: byId.get(u.playerId)!.token });
            if (res.status === 200) {
              u.status = res.body.status;
              if (res.body.reason) u.reason = res.body.reason.code;
            }
          } catch {
            // Asked again on the next round.
          }
        },
      );
      const open = tracked.filter((u) => !isTerminal(u.status));
      if (open.length === 0) {
        const idle = await Promise.race([running.idle().then(() => true), sleep(Math.max(0, deadline - Date.now()), false)]);
        if (idle) break;
      }
      if (Date.now() > deadline) break;
      await sleep(1000);
    }
    const settleMs = Date.now() - settleStart;
    note(`settled after ${(settleMs / 1000).toFixed(1)} s (budget ${(budgetMs / 1000).toFixed(0)} s)`);

    // The count.
    const result = await tally({ name: options.name, faults: options.faults, uploads, players, push });
    const broker = await scrape(running.brokerUrl, ['avatarpipeline_broker_deliveries_total']);
    for (const k of Object.keys(broker)) if (!/outcome="(dead_lettered|undeliverable)"/.test(k)) delete broker[k];
    const undeliverable = (await (await fetch(`${running.brokerUrl}/_broker/undeliverable`)).json()) as { count: number };
    if (undeliverable.count > 0) broker['undeliverable (parked)'] = undeliverable.count;
    const problems = [...new Set(uploads.filter((u) => u.problem).map((u) => u.problem!))];
    const failedReasons: Record<string, number> = {};
    for (const u of uploads) if (u.status === 'failed' || u.status === 'expired') failedReasons[`${u.status}:${u.reason ?? '?'}`] = (failedReasons[`${u.status}:${u.reason ?? '?'}`] ?? 0) + 1;
    const out: RunResult = {
      ...result,
      loadMs: loadEnd - loadStart,
      settleMs,
      settleBudgetMs: budgetMs,
      totalMs: Date.now() - began,
      events,
      proxies: Object.fromEntries(proxies.map((p) => [p.name, { ...p.stats }])),
      broker,
      failedReasons,
      problems,
      timing,
    };
    await writeRecord(options.artifactsDir, options.name, out, uploads);
    return out;
  } finally {
    await stack?.stop();
    await pushService?.close();
    await Promise.all(proxies.map((p) => p.close()));
    await new Promise<void>((resolve) => log.end(() => resolve()));
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function writeRecord(dir: string, name: string, result: RunResult, uploads: readonly Upload[]): Promise<void> {
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify({ result, uploads }, null, 2)}\n`);
}

/**
 * The count, from the uploads' last known states and the notifications each device received: a
 * terminal upload (ready, rejected, failed, or expired by the reconciler, which announces it as
 * `avatarpipeline.avatar.expired`) is expected once on every device of its player; a second copy
 * of the same outcome on a device is a duplicate, an outcome other than the upload's final state
 * is wrong.
 */
export async function tally(input: {
  name: string;
  faults: string;
  uploads: readonly Upload[];
  players: readonly Pick<Player, 'id' | 'devices'>[];
  push: Pick<WebPushTesting, 'notifications'>;
}) {
  const { uploads, players, push } = input;
  const started = uploads.filter((u) => u.uploadId !== undefined);
  const count = (status: string) => started.filter((u) => u.status === status).length;
  const byUpload = new Map(started.map((u) => [u.uploadId!, u]));
  const notifications: NotificationCount = { expected: 0, received: 0, missing: 0, duplicates: 0, wrong: 0, other: 0 };
  const missingNotifications: RunResult['missingNotifications'] = [];
  const duplicateNotifications: RunResult['duplicateNotifications'] = [];
  for (const player of players) {
    const mine = started.filter((u) => u.playerId === player.id);
    for (const device of player.devices) {
      const got = (await withRetry('reading notifications', () => push.notifications(device))).map((text) => JSON.parse(text) as Notification);
      const seen = new Map<string, number>();
      for (const n of got) {
        const key = `${n.uploadId}|${n.status}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        const u = n.uploadId ? byUpload.get(n.uploadId) : undefined;
        if (!u || u.playerId !== player.id) notifications.other += 1;
        else if (n.status !== u.status) notifications.wrong += 1;
      }
      for (const [key, times] of seen) {
        if (times < 2) continue;
        notifications.duplicates += times - 1;
        const [uploadId = '', status = ''] = key.split('|');
        duplicateNotifications.push({ uploadId, device, status, times });
      }
      for (const u of mine) {
        if (!isNotified(u.status)) continue;
        notifications.expected += 1;
        if ((seen.get(`${u.uploadId}|${u.status}`) ?? 0) > 0) notifications.received += 1;
        else {
          notifications.missing += 1;
          missingNotifications.push({ uploadId: u.uploadId!, device, status: u.status! });
        }
      }
    }
  }
  const terminal = started.filter((u) => isTerminal(u.status));
  return {
    name: input.name,
    faults: input.faults,
    started: started.length,
    notStarted: uploads.length - started.length,
    ready: count('ready'),
    rejected: count('rejected'),
    failed: count('failed'),
    expired: count('expired'),
    stuck: started.length - terminal.length,
    unexpected: terminal.filter((u) => (u.status === 'ready' || u.status === 'rejected') && u.status !== u.expect).length,
    notifications,
    stuckUploads: started.filter((u) => !isTerminal(u.status)).map((u) => ({ uploadId: u.uploadId!, playerId: u.playerId, status: u.status })),
    missingNotifications,
    duplicateNotifications,
  };
}
