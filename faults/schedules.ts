/**
 * The fault classes: what each run does to the stack while the uploads flow. Every schedule
 * spreads its faults over the load (`loadMs`), so uploads are in every stage when they strike.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceName } from '@avatar-pipeline/kit/topology';
import { describeMode, type FaultMode } from './proxy.js';
import { allServices, type FaultContext } from './run.js';

export interface FaultClass {
  name: string;
  /** What it injects, in words (the report's second column). */
  faults: string;
  schedule(ctx: FaultContext): Promise<void>;
}

/** Waits until `at` ms after `start`. */
async function until(start: number, at: number): Promise<void> {
  const wait = start + at - Date.now();
  if (wait > 0) await sleep(wait);
}

/**
 * Signals each service in turn (waiting for it to be back), then all of them at once. SIGKILL is
 * a crash; SIGTERM is a rollout or scale-down: the service drains what it is handling within
 * SHUTDOWN_GRACE_SECONDS and exits, and the supervisor starts it again.
 */
export function signalEachThenAll(signal: 'SIGKILL' | 'SIGTERM', services: readonly ServiceName[] = allServices): FaultClass {
  const name = signal === 'SIGKILL' ? 'kill' : 'drain';
  return {
    name,
    faults: `${signal} ${services.join(', ')} in turn, then all at once`,
    async schedule({ stack, loadMs, note, allReady }) {
      const start = Date.now();
      const gap = loadMs / (services.length + 2);
      for (const [i, service] of services.entries()) {
        await until(start, gap * (i + 1));
        const pid = stack.signal(service, signal);
        note(`${signal} ${service} (pid ${pid ?? 'none'})`);
        const t = Date.now();
        note(`${service} ${(await allReady()) ? `ready again after ${((Date.now() - t) / 1000).toFixed(1)} s` : 'NOT ready again within 30 s'}`);
      }
      await until(start, gap * (services.length + 1));
      const pids = services.map((service) => stack.signal(service, signal));
      note(`${signal} all at once (pids ${pids.join(', ')})`);
      const t = Date.now();
      note(`all ${(await allReady(60_000)) ? `ready again after ${((Date.now() - t) / 1000).toFixed(1)} s` : 'NOT ready again within 60 s'}`);
    },
  };
}

/** Restarts s3rver and dynalite in turn, `restarts` times each, down for `downMs` each time. */
export function restartStandIns(restarts: number, downMs = 1500): FaultClass {
  return {
    name: 'stand-ins',
    faults: `restart S3 and DynamoDB stand-ins in turn, ${restarts}× each, down ${downMs / 1000} s (connections cut)`,
    async schedule({ stack, loadMs, note }) {
      const start = Date.now();
      const order = Array.from({ length: restarts * 2 }, (_, i) => (i % 2 === 0 ? 's3' : 'dynamodb') as 's3' | 'dynamodb');
      const gap = loadMs / (order.length + 1);
      for (const [i, which] of order.entries()) {
        await until(start, gap * (i + 1) - downMs / 2);
        note(`restarting ${which} (down ${downMs} ms)`);
        await stack.restartStandIn(which, downMs);
        note(`${which} back`);
      }
    },
  };
}

export interface ProxyPhase {
  s3: FaultMode;
  dynamodb: FaultMode;
}

/** The proxy phases: latency, 503s, resets, then all three, each on both stores at once. */
export const defaultPhases: readonly ProxyPhase[] = [
  { s3: { latencyMs: 300 }, dynamodb: { latencyMs: 300 } },
  { s3: { errorRate: 0.3 }, dynamodb: { errorRate: 0.3 } },
  { s3: { resetRate: 0.2 }, dynamodb: { resetRate: 0.2 } },
  { s3: { latencyMs: 100, errorRate: 0.15, resetRate: 0.15 }, dynamodb: { latencyMs: 100, errorRate: 0.15, resetRate: 0.15 } },
];

/** Switches both fault proxies through `phases`, each on for a share of the load with a pass gap after it. */
export function proxyFaults(phases: readonly ProxyPhase[] = defaultPhases): FaultClass {
  const words = phases.map((p) => (describeMode(p.s3) === describeMode(p.dynamodb) ? describeMode(p.s3) : `S3 ${describeMode(p.s3)} / DynamoDB ${describeMode(p.dynamodb)}`));
  return {
    name: 'proxy',
    faults: `between services and S3/DynamoDB: ${words.join('; ')}`,
    async schedule({ s3Proxy, dynamoProxy, loadMs, note }) {
      const start = Date.now();
      // Each phase takes 2/3 of its slot, the rest passes (so recovery between phases is seen too).
      const slot = loadMs / phases.length;
      for (const [i, phase] of phases.entries()) {
        await until(start, slot * i);
        s3Proxy.set(phase.s3);
        dynamoProxy.set(phase.dynamodb);
        note(`proxy: ${words[i]}`);
        await until(start, slot * i + (slot * 2) / 3);
        s3Proxy.set({});
        dynamoProxy.set({});
        note('proxy: pass');
      }
      await until(start, loadMs);
    },
  };
}

/**
 * Outages longer than the (scaled) processing retries: the services cannot reach S3 at all (every
 * connection reset) for `downMs`, then DynamoDB answers 503 to everything for as long. Clients
 * still reach the stores (the gateway talks to s3rver directly; presign fails and they retry), so
 * uploads keep arriving. Events that exhaust their retries are dead-lettered and their uploads end
 * failed, which the dead-letter sink can only record, and push announce, once the store is back.
 */
export function outages(downMs: number): FaultClass {
  return {
    name: 'outage',
    faults: `services cut off from S3 (every connection reset) for ${downMs / 1000} s, then DynamoDB 503 × 100 % for ${downMs / 1000} s`,
    async schedule({ s3Proxy, dynamoProxy, loadMs, note }) {
      const start = Date.now();
      const lead = Math.max(0, (loadMs - 2 * downMs) / 3);
      await until(start, lead);
      s3Proxy.set({ resetRate: 1 });
      note(`proxy: S3 unreachable for ${downMs / 1000} s`);
      await until(start, lead + downMs);
      s3Proxy.set({});
      note('proxy: S3 back');
      await until(start, 2 * lead + downMs);
      dynamoProxy.set({ errorRate: 1 });
      note(`proxy: DynamoDB 503 for ${downMs / 1000} s`);
      await until(start, 2 * lead + 2 * downMs);
      dynamoProxy.set({});
      note('proxy: DynamoDB back');
    },
  };
}

/**
 * Not in the default plan (run with FAULTS_CLASSES=slow-crash): DynamoDB slowed by `latencyMs` on
 * every request while `services` are SIGKILLed every `everyMs`, so crashes land between a
 * service's side effect and the write that records it (push: the push service's 2xx and the
 * claim's `done`).
 */
export function slowStoreCrashes(services: readonly ServiceName[] = ['push'], latencyMs = 400, everyMs = 4000): FaultClass {
  return {
    name: 'slow-crash',
    faults: `DynamoDB +${latencyMs} ms on every request, SIGKILL ${services.join(', ')} every ${everyMs / 1000} s`,
    async schedule({ stack, dynamoProxy, loadMs, note }) {
      const start = Date.now();
      dynamoProxy.set({ latencyMs });
      note(`proxy: DynamoDB +${latencyMs} ms`);
      for (let at = everyMs; at < loadMs; at += everyMs) {
        await until(start, at);
        for (const service of services) note(`SIGKILL ${service} (pid ${stack.signal(service, 'SIGKILL') ?? 'none'})`);
      }
      await until(start, loadMs);
      dynamoProxy.set({});
    },
  };
}

/** Not in the default plan (FAULTS_CLASSES=throttled): DynamoDB answers 503 to `rate` of all requests for the whole load. */
export function throttledStore(rate = 0.6): FaultClass {
  return {
    name: 'throttled',
    faults: `DynamoDB 503 × ${Math.round(rate * 100)} % for the whole load`,
    async schedule({ dynamoProxy, loadMs, note }) {
      dynamoProxy.set({ errorRate: rate });
      note(`proxy: DynamoDB 503 × ${Math.round(rate * 100)} %`);
      await sleep(loadMs);
      dynamoProxy.set({});
    },
  };
}

/** No faults: the baseline the others are read against. */
export const baseline: FaultClass = {
  name: 'baseline',
  faults: 'none',
  async schedule({ loadMs }) {
    await sleep(loadMs);
  },
};
