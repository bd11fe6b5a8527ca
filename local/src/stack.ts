/**
 * The whole product on one machine: s3rver, dynalite, the dev issuer, the broker with the
 * project's triggers, the POST policy guard and the gateway run in this process; every built
 * service runs as a child process configured exactly as in the cluster, through its environment.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { s3Client } from '@avatar-pipeline/kit/aws';
import { DEFAULT_MAX_UPLOAD_BYTES } from '@avatar-pipeline/kit/config';
import { uploadBucketCorsRules } from '@avatar-pipeline/kit/cors';
import { createLogger, type Logger } from '@avatar-pipeline/kit/logger';
import { eventAudience, serviceNames, triggers, type ServiceName } from '@avatar-pipeline/kit/topology';
import { createBroker } from './broker.js';
import { cachedTokens, TOKEN_REUSE_MS } from './broker/tokens.js';
import { startDynamoServer } from './dynamo.js';
import { createGateway } from './gateway.js';
import { FileVapidStore, initVapidKeys } from '@avatar-pipeline/webpush';
import { createDevIssuer } from './issuer.js';
import { webClient } from './web-client.js';
import { listen, type FetchHandler } from './listen.js';
import { mediaHandler } from './media.js';
import { repoRoot } from './config.js';
import { createNotificationForwarder, type S3Notification } from './notifications.js';
import { sinkDestination, stdoutSink, type LogSink } from './output.js';
import { portOrFree } from './ports.js';
import { writeStackState } from './stack-state.js';
import { createPostPolicyGuard } from './post-policy.js';
import { LOCAL_CREDENTIALS, startS3Server } from './s3.js';
import { LOCAL_AUDIENCE, LOCAL_BUCKET, LOCAL_NAMESPACE, LOCAL_TABLE, serviceEnv } from './service-env.js';
import { SupervisedChild } from './supervisor.js';

export { repoRoot } from './config.js';

export interface StackOptions {
  /** Objects, table and the issuer's key live here and survive restarts. */
  dataDir: string;
  /** Where services/<name>/dist/main.js are found (default: this repository). */
  root?: string;
  /** 0 picks a free port (every port below defaults to 0). The in-process servers listen on 127.0.0.1. */
  gatewayPort?: number;
  s3Port?: number;
  dynamoPort?: number;
  brokerPort?: number;
  servicePorts?: Partial<Record<ServiceName, number>>;
  /** Services to run (default: every one that is built). */
  services?: readonly ServiceName[];
  logLevel?: string;
  region?: string;
  /** Largest upload (AVATAR_MAX_BYTES), for presign, the guard and the image services. */
  maxUploadBytes?: number;
  /** Origins whose pages may call the API and post uploads cross-origin (CORS_ORIGINS). */
  corsOrigins?: readonly string[];
  /** Passed to every service underneath the stack's own variables (default: this process's environment). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Receives every JSON log line, the services' and the stack's own (default: stdout, pretty on a terminal). */
  sink?: LogSink;
  /**
   * Scales the broker's retry delays, the triggers' and the dead-letter sink's (tests only: small, to
   * exhaust retries that span minutes in about a second). Default 1: the topology's real budgets.
   */
  backoffScale?: number;
  /** How long each service may take to get ready (default 60 s). */
  readyTimeoutMs?: number;
  /** How long a stopping service may drain before it is killed (default 10 s). */
  stopGraceMs?: number;
  /** Shared secret s3-source requires on its webhook (default: a random one). */
  webhookToken?: string;
  /** Sees every bucket notification s3rver emits. */
  onS3Event?: (notification: S3Notification) => void;
  /**
   * Where the services reach S3 and DynamoDB, asked once both stand-ins listen (default: the
   * stand-ins themselves). Fault injection puts a proxy in between this way; the gateway's upload
   * guard and media routes keep talking to s3rver directly.
   */
  serviceEndpoints?: (standIns: StandInEndpoints) => Promise<Partial<StandInEndpoints>> | Partial<StandInEndpoints>;
}

export interface StandInEndpoints {
  s3Endpoint: string;
  dynamoEndpoint: string;
}

export type StandIn = 's3' | 'dynamodb';

export interface Stack {
  gatewayUrl: string;
  brokerUrl: string;
  s3Endpoint: string;
  dynamoEndpoint: string;
  /** The token issuer (`iss`) and audience the services accept. */
  issuer: string;
  audience: string;
  /** Mints a player token directly (the same tokens `POST /dev/token` hands out), with `roles` if given. */
  mint(playerId: string, roles?: readonly string[]): Promise<string>;
  /** Base URL of each running service. */
  services: Readonly<Partial<Record<ServiceName, string>>>;
  /** Resolves once no S3 notification and no broker delivery is pending. */
  idle(): Promise<void>;
  /**
   * Fault injection: sends `signal` to a service's process, which the stack restarts (with
   * backoff) as after any crash. Returns the pid, or undefined when the service is not running.
   */
  signal(name: ServiceName, signal: NodeJS.Signals): number | undefined;
  /** The process id of a running service (benchmarks read its CPU time from /proc). */
  pid(name: ServiceName): number | undefined;
  /**
   * Fault injection: stops a stand-in at once (open connections cut, as in a crash), waits
   * `downMs`, and starts it again on the same port with the same data.
   */
  restartStandIn(which: StandIn, downMs?: number): Promise<void>;
  /** Stops the services, then every server. Safe to call more than once. */
  stop(): Promise<void>;
}

/** The services whose build output exists, in topology order. */
export function builtServices(root: string): ServiceName[] {
  return serviceNames.filter((name) => existsSync(serviceScript(root, name)));
}

function serviceScript(root: string, name: ServiceName): string {
  return join(root, 'services', name, 'dist', 'main.js');
}

/** Runs `steps` in reverse order, logging failures instead of stopping at the first one. */
async function unwind(steps: (() => Promise<void>)[], logger: Logger): Promise<void> {
  for (const step of steps.reverse()) {
    try {
      await step();
    } catch (err) {
      logger.error({ err }, 'error while stopping');
    }
  }
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const root = options.root ?? repoRoot;
  const level = options.logLevel ?? 'info';
  const sink = options.sink ?? stdoutSink();
  const destination = sinkDestination(sink);
  const loggerFor = (name: string) => createLogger(name, level, destination);
  const logger = loggerFor('local');
  const region = options.region ?? 'us-east-1';
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const stopGraceMs = options.stopGraceMs ?? 10_000;

  const names = options.services ?? builtServices(root);
  for (const name of names) {
    if (!existsSync(serviceScript(root, name))) throw new Error(`${name} is not built: run npx tsc -b first`);
  }

  // Undone in reverse if start-up fails half way, and by stop().
  const cleanup: (() => Promise<void>)[] = [];
  try {
    await mkdir(options.dataDir, { recursive: true });

    // The gateway listens first: its address is the token issuer the services are configured
    // with. Until everything is wired it answers 503.
    let handler: FetchHandler = () => Response.json({ error: { code: 'starting', message: 'the stack is starting' } }, { status: 503 });
    const gatewayServer = await listen('gateway', (request, env) => handler(request, env), options.gatewayPort ?? 0);
    cleanup.push(() => gatewayServer.close());
    const gatewayUrl = `http://localhost:${gatewayServer.port}`;
    // Services reach the gateway by address: `localhost` may resolve to an interface it does not listen on.
    const internalGatewayUrl = `http://127.0.0.1:${gatewayServer.port}`;

    const children = new Map<ServiceName, SupervisedChild>();
    const running = (name: ServiceName) => children.get(name)?.url;

    const webhookToken = options.webhookToken ?? randomBytes(24).toString('base64url');
    const forwarder = createNotificationForwarder({
      target: () => {
        const url = running('s3-source');
        return url && `${url}/webhook`;
      },
      token: webhookToken,
      logger,
    });
    const startS3 = (port: number | undefined) =>
      startS3Server({
        directory: join(options.dataDir, 's3'),
        buckets: [LOCAL_BUCKET],
        cors: uploadBucketCorsRules(options.corsOrigins ?? []),
        ...(port ? { port } : {}),
        onEvent: (notification) => {
          options.onS3Event?.(notification);
          forwarder.push(notification);
        },
      });
    // Reassigned by restartStandIn (same port, same data).
    let s3 = await startS3(options.s3Port);
    cleanup.push(() => s3.close());

    const startDynamo = (port: number | undefined) =>
      startDynamoServer({ directory: join(options.dataDir, 'dynamodb'), table: LOCAL_TABLE, region, ...(port ? { port } : {}) });
    let dynamo = await startDynamo(options.dynamoPort);
    cleanup.push(() => dynamo.close());
    const standIns: StandInEndpoints = { s3Endpoint: s3.endpoint, dynamoEndpoint: dynamo.endpoint };
    const serviceEndpoints = { ...standIns, ...(await options.serviceEndpoints?.(standIns)) };

    const issuer = await createDevIssuer({ issuer: gatewayUrl, audience: LOCAL_AUDIENCE, logger: loggerFor('dev-issuer'), directory: options.dataDir });

    const ports = new Map<ServiceName, number>();
    for (const name of names) ports.set(name, await portOrFree(options.servicePorts?.[name]));
    // The broker listens before it exists: its address goes into its own dead-letter records.
    let brokerFetch: FetchHandler = () => new Response(null, { status: 503 });
    const brokerServer = await listen('broker', (request, env) => brokerFetch(request, env), await portOrFree(options.brokerPort));
    const brokerUrl = `http://127.0.0.1:${brokerServer.port}`;
    const broker = createBroker({
      // As in the cluster, a trigger exists only where its subscriber is deployed.
      triggers: triggers.filter((trigger) => names.includes(trigger.subscriber.service)),
      resolve: ({ service }) => running(service) ?? `http://${service}.not-running.invalid`,
      logger: loggerFor('broker'),
      address: brokerUrl,
      token: cachedTokens(({ service }) => issuer.mintFor(eventAudience(LOCAL_NAMESPACE, service), 'local-broker'), { maxAgeMs: TOKEN_REUSE_MS }),
      ...(options.backoffScale !== undefined ? { backoffScale: options.backoffScale } : {}),
    });
    brokerFetch = broker.service.app.fetch;
    cleanup.push(async () => {
      await broker.close();
      await brokerServer.close();
    });

    const mediaS3 = s3Client({ region, s3Endpoint: s3.endpoint, credentials: LOCAL_CREDENTIALS });
    cleanup.push(async () => mediaS3.destroy());
    const gateway = createGateway({
      logger: loggerFor('gateway'),
      upstream: running,
      issuer: issuer.service.app,
      storage: createPostPolicyGuard({ upstream: s3.endpoint, logger: loggerFor('post-policy'), corsOrigins: options.corsOrigins ?? [] }),
      corsOrigins: options.corsOrigins ?? [],
      media: mediaHandler({ s3: mediaS3, bucket: LOCAL_BUCKET, mountPath: '/media/' }),
      web: existsSync(join(root, 'web', 'dist', 'index.html')) ? webClient(join(root, 'web', 'dist')) : undefined,
      // An upload plus its form fields.
      maxBodyBytes: maxUploadBytes + 64 * 1024,
      readiness: Object.fromEntries(
        names.map((name) => [name, async () => {
          if (!children.get(name)?.isReady) throw new Error(`${name} is not ready`);
        }]),
      ),
    });
    handler = gateway.app.fetch;

    const envOptions = {
      inherited: options.env ?? process.env,
      addresses: { gatewayUrl, internalGatewayUrl, brokerUrl, ...serviceEndpoints },
      logLevel: level,
      region,
      maxUploadBytes,
      // Half the stack's grace: a service drains, then exits well before it would be killed.
      shutdownGraceSeconds: Math.max(1, Math.floor(stopGraceMs / 2000)),
      webhookToken,
      vapidFile: join(options.dataDir, 'vapid.json'),
    };

    // The cluster's vapid-init Job, locally: create the pair once, before push and subscribe read it.
    if (names.some((name) => name === 'push' || name === 'subscribe')) {
      const vapid = await initVapidKeys(new FileVapidStore(envOptions.vapidFile));
      if (vapid.created) logger.info({ file: envOptions.vapidFile }, 'created the VAPID key pair');
    }

    const supervision = { logger, sink, readyTimeoutMs: options.readyTimeoutMs ?? 60_000, stopGraceMs };
    const guard = join(root, 'local', 'dist', 'child-guard.js');
    for (const name of names) {
      children.set(
        name,
        new SupervisedChild(
          {
            name,
            script: serviceScript(root, name),
            cwd: join(root, 'services', name),
            port: ports.get(name)!,
            env: serviceEnv(name, envOptions),
            ...(existsSync(guard) ? { preload: [guard] } : {}),
          },
          supervision,
        ),
      );
    }
    // Stop order (cleanup runs in reverse): notifications, services, broker, stores, and the
    // gateway last, as draining services may still fetch the issuer's keys through it.
    cleanup.push(async () => {
      await Promise.all([...children.values()].map((child) => child.stop()));
    });
    cleanup.push(() => forwarder.close());
    await Promise.all([...children.values()].map((child) => child.start()));
    // Last in, so the first thing stop() does: `npm run events` learns the stack is going away.
    cleanup.push(await writeStackState(options.dataDir, { pid: process.pid, gatewayUrl, brokerUrl, startedAt: new Date().toISOString() }));

    let stopping: Promise<void> | undefined;
    return {
      gatewayUrl,
      brokerUrl,
      s3Endpoint: s3.endpoint,
      dynamoEndpoint: dynamo.endpoint,
      issuer: gatewayUrl,
      audience: LOCAL_AUDIENCE,
      mint: (playerId, roles) => issuer.mint(playerId, roles && roles.length > 0 ? { roles: [...roles] } : {}),
      services: Object.fromEntries([...children].map(([name, child]) => [name, child.url])),
      idle: async () => {
        await forwarder.idle();
        await broker.idle();
      },
      signal: (name, signal) => children.get(name)?.signal(signal),
      pid: (name) => children.get(name)?.pid,
      restartStandIn: async (which, downMs = 0) => {
        if (which === 's3') {
          await s3.close({ dropConnections: true });
          await sleep(downMs);
          s3 = await startS3(s3.port);
        } else {
          await dynamo.close({ dropConnections: true });
          await sleep(downMs);
          dynamo = await startDynamo(dynamo.port);
        }
        logger.warn({ standIn: which, downMs }, `${which} stand-in restarted`);
      },
      stop: () =>
        (stopping ??= (async () => {
          logger.info('stopping');
          await unwind(cleanup, logger);
          logger.info('stopped');
        })()),
    };
  } catch (err) {
    await unwind(cleanup, logger);
    throw err;
  }
}
