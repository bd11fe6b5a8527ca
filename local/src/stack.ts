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
import { FileVapidStore, initVapidKeys } from '@avatar-pipeline/webpush';
import { createBroker } from './broker/broker.js';
import { cachedTokens, TOKEN_REUSE_MS } from './broker/tokens.js';
import { repoRoot } from './config.js';
import { createGateway } from './gateway/gateway.js';
import { webClient } from './gateway/web-client.js';
import { listen, type FetchHandler } from './listen.js';
import { sinkDestination, stdoutSink, type LogSink } from './output/log-sink.js';
import { portOrFree } from './ports.js';
import { writeStackState } from './stack-state.js';
import { startDynamoServer } from './stand-ins/dynamo.js';
import { createDevIssuer, type DevIssuer } from './stand-ins/issuer.js';
import { mediaHandler } from './stand-ins/media.js';
import { createNotificationForwarder, type NotificationForwarder, type S3Notification } from './stand-ins/notifications.js';
import { createPostPolicyGuard } from './stand-ins/post-policy.js';
import { LOCAL_CREDENTIALS, startS3Server } from './stand-ins/s3.js';
import { LOCAL_AUDIENCE, LOCAL_BUCKET, LOCAL_NAMESPACE, LOCAL_TABLE, serviceEnv, type ServiceEnvOptions, type StackAddresses } from './supervision/service-env.js';
import { childGuardScript, SupervisedChild } from './supervision/supervisor.js';

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

export async function startStack(options: StackOptions): Promise<Stack> {
  const setup = stackSetup(options);
  // Filled once the addresses are known; the stand-ins, the broker and the gateway find the services through it.
  const children = new Map<ServiceName, SupervisedChild>();
  try {
    await mkdir(options.dataDir, { recursive: true });
    const gateway = await listenGateway(setup);
    const standIns = await startStandIns(setup, children);
    const serviceEndpoints = { ...standIns.endpoints, ...(await options.serviceEndpoints?.(standIns.endpoints)) };
    const issuer = await createDevIssuer({ issuer: gateway.url, audience: LOCAL_AUDIENCE, logger: setup.loggerFor('dev-issuer'), directory: options.dataDir });
    const ports = await servicePorts(setup);
    const broker = await startBroker(setup, issuer, children);
    gateway.serve(wireGateway(setup, standIns.endpoints.s3Endpoint, issuer, children));

    const vapidFile = join(options.dataDir, 'vapid.json');
    await ensureVapidKeys(setup, vapidFile);
    const addresses = { gatewayUrl: gateway.url, internalGatewayUrl: gateway.internalUrl, brokerUrl: broker.url, ...serviceEndpoints };
    superviseServices(setup, children, ports, addresses, vapidFile);
    // Stop order (cleanup runs in reverse): notifications, services, broker, stores, and the
    // gateway last, as draining services may still fetch the issuer's keys through it.
    setup.cleanup.push(async () => {
      await Promise.all([...children.values()].map((child) => child.stop()));
    });
    setup.cleanup.push(() => standIns.forwarder.close());
    await Promise.all([...children.values()].map((child) => child.start()));
    // Last in, so the first thing stop() does: `npm run events` learns the stack is going away.
    setup.cleanup.push(await writeStackState(options.dataDir, { pid: process.pid, gatewayUrl: gateway.url, brokerUrl: broker.url, startedAt: new Date().toISOString() }));

    return stackHandle(setup, { gateway, standIns, issuer, broker, children });
  } catch (err) {
    await unwind(setup.cleanup, setup.logger);
    throw err;
  }
}

/** Each service's supervised child process, by name; a service runs where it has one with a URL. */
type Children = ReadonlyMap<ServiceName, SupervisedChild>;

/** The options with their defaults, the loggers, and what start-up has done that stopping undoes. */
interface Setup {
  options: StackOptions;
  root: string;
  /** The services to run. */
  names: readonly ServiceName[];
  level: string;
  sink: LogSink;
  loggerFor: (name: string) => Logger;
  /** The stack's own logger. */
  logger: Logger;
  region: string;
  maxUploadBytes: number;
  stopGraceMs: number;
  corsOrigins: readonly string[];
  webhookToken: string;
  /** Undone in reverse if start-up fails half way, and by stop(). */
  cleanup: (() => Promise<void>)[];
}

function stackSetup(options: StackOptions): Setup {
  const root = options.root ?? repoRoot;
  const level = options.logLevel ?? 'info';
  const sink = options.sink ?? stdoutSink();
  const destination = sinkDestination(sink);
  const loggerFor = (name: string) => createLogger(name, level, destination);
  const names = options.services ?? builtServices(root);
  for (const name of names) {
    if (!existsSync(serviceScript(root, name))) throw new Error(`${name} is not built: run npx tsc -b first`);
  }
  return {
    options,
    root,
    names,
    level,
    sink,
    loggerFor,
    logger: loggerFor('local'),
    region: options.region ?? 'us-east-1',
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    stopGraceMs: options.stopGraceMs ?? 10_000,
    corsOrigins: options.corsOrigins ?? [],
    webhookToken: options.webhookToken ?? randomBytes(24).toString('base64url'),
    cleanup: [],
  };
}

/** A server that listens at once and answers with `starting` until `serve` gives it its handler: others need its address first. */
async function listenBeforeWired(name: string, port: number, starting: FetchHandler) {
  let handler = starting;
  const server = await listen(name, (request, env) => handler(request, env), port);
  return {
    ...server,
    serve: (wired: FetchHandler) => {
      handler = wired;
    },
  };
}

interface GatewayListener {
  /** The public origin, also the token issuer the services are configured with. */
  url: string;
  /** The same gateway by address, for the services. */
  internalUrl: string;
  /** Puts the wired gateway in place of its 503. */
  serve(handler: FetchHandler): void;
}

/**
 * The gateway listens first: its address is the token issuer the services are configured with.
 * Until everything is wired it answers 503.
 */
async function listenGateway(setup: Setup): Promise<GatewayListener> {
  const starting = () => Response.json({ error: { code: 'starting', message: 'the stack is starting' } }, { status: 503 });
  const server = await listenBeforeWired('gateway', setup.options.gatewayPort ?? 0, starting);
  setup.cleanup.push(() => server.close());
  return {
    serve: server.serve,
    url: `http://localhost:${server.port}`,
    // Services reach the gateway by address: `localhost` may resolve to an interface it does not listen on.
    internalUrl: `http://127.0.0.1:${server.port}`,
  };
}

interface StandIns {
  /** s3rver's bucket notifications on their way to s3-source. */
  forwarder: NotificationForwarder;
  /** Where s3rver and dynalite listen (the same ports after a restart). */
  endpoints: StandInEndpoints;
  restart(which: StandIn, downMs: number): Promise<void>;
}

/** s3rver, its notifications forwarded to s3-source's webhook, and dynalite, keeping their data in the data directory. */
async function startStandIns(setup: Setup, children: Children): Promise<StandIns> {
  const { options, region, logger } = setup;
  const forwarder = createNotificationForwarder({
    target: () => {
      const url = children.get('s3-source')?.url;
      return url && `${url}/webhook`;
    },
    token: setup.webhookToken,
    logger,
  });
  const startS3 = (port: number | undefined) =>
    startS3Server({
      directory: join(options.dataDir, 's3'),
      buckets: [LOCAL_BUCKET],
      cors: uploadBucketCorsRules(setup.corsOrigins),
      ...(port ? { port } : {}),
      onEvent: (notification) => {
        options.onS3Event?.(notification);
        forwarder.push(notification);
      },
    });
  // Reassigned by restart (same port, same data).
  let s3 = await startS3(options.s3Port);
  setup.cleanup.push(() => s3.close());

  const startDynamo = (port: number | undefined) =>
    startDynamoServer({ directory: join(options.dataDir, 'dynamodb'), table: LOCAL_TABLE, region, ...(port ? { port } : {}) });
  let dynamo = await startDynamo(options.dynamoPort);
  setup.cleanup.push(() => dynamo.close());

  return {
    forwarder,
    endpoints: { s3Endpoint: s3.endpoint, dynamoEndpoint: dynamo.endpoint },
    restart: async (which, downMs) => {
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
  };
}

/** Each service's port, picked before any starts: a service is told its port up front and keeps it across restarts. */
async function servicePorts(setup: Setup): Promise<Map<ServiceName, number>> {
  const ports = new Map<ServiceName, number>();
  for (const name of setup.names) ports.set(name, await portOrFree(setup.options.servicePorts?.[name]));
  return ports;
}

interface LocalBroker {
  url: string;
  idle(): Promise<void>;
}

/**
 * The broker with the triggers of the services that run, its deliveries carrying the dev issuer's
 * tokens. It listens before it exists: its address goes into its own dead-letter records.
 */
async function startBroker(setup: Setup, issuer: DevIssuer, children: Children): Promise<LocalBroker> {
  const server = await listenBeforeWired('broker', await portOrFree(setup.options.brokerPort), () => new Response(null, { status: 503 }));
  const url = `http://127.0.0.1:${server.port}`;
  const broker = createBroker({
    // As in the cluster, a trigger exists only where its subscriber is deployed.
    triggers: triggers.filter((trigger) => setup.names.includes(trigger.subscriber.service)),
    resolve: ({ service }) => children.get(service)?.url ?? `http://${service}.not-running.invalid`,
    logger: setup.loggerFor('broker'),
    address: url,
    token: cachedTokens(({ service }) => issuer.mintFor(eventAudience(LOCAL_NAMESPACE, service), 'local-broker'), { maxAgeMs: TOKEN_REUSE_MS }),
    ...(setup.options.backoffScale !== undefined ? { backoffScale: setup.options.backoffScale } : {}),
  });
  server.serve(broker.service.app.fetch);
  setup.cleanup.push(async () => {
    await broker.close();
    await server.close();
  });
  return { url, idle: () => broker.idle() };
}

/** The gateway's routes: the services' API, the dev issuer, uploads through the POST policy guard, avatars from the CDN stand-in, the built web client. */
function wireGateway(setup: Setup, s3Endpoint: string, issuer: DevIssuer, children: Children): FetchHandler {
  const { root, region, corsOrigins } = setup;
  const mediaS3 = s3Client({ region, s3Endpoint, credentials: LOCAL_CREDENTIALS });
  setup.cleanup.push(async () => mediaS3.destroy());
  const gateway = createGateway({
    logger: setup.loggerFor('gateway'),
    upstream: (name) => children.get(name)?.url,
    issuer: issuer.service.app,
    storage: createPostPolicyGuard({ upstream: s3Endpoint, logger: setup.loggerFor('post-policy'), corsOrigins }),
    corsOrigins,
    media: mediaHandler({ s3: mediaS3, bucket: LOCAL_BUCKET, mountPath: '/media/' }),
    web: existsSync(join(root, 'web', 'dist', 'index.html')) ? webClient(join(root, 'web', 'dist')) : undefined,
    // An upload plus its form fields.
    maxBodyBytes: setup.maxUploadBytes + 64 * 1024,
    readiness: Object.fromEntries(
      setup.names.map((name) => [name, async () => {
        if (!children.get(name)?.isReady) throw new Error(`${name} is not ready`);
      }]),
    ),
  });
  return gateway.app.fetch;
}

/** The cluster's vapid-init Job, locally: create the pair once, before push and subscribe read it. */
async function ensureVapidKeys(setup: Setup, vapidFile: string): Promise<void> {
  if (!setup.names.some((name) => name === 'push' || name === 'subscribe')) return;
  const vapid = await initVapidKeys(new FileVapidStore(vapidFile));
  if (vapid.created) setup.logger.info({ file: vapidFile }, 'created the VAPID key pair');
}

/** A supervised child for each service (started by the caller), configured through its environment as in the cluster. */
function superviseServices(setup: Setup, children: Map<ServiceName, SupervisedChild>, ports: ReadonlyMap<ServiceName, number>, addresses: StackAddresses, vapidFile: string): void {
  const { options, root, stopGraceMs } = setup;
  const envOptions: ServiceEnvOptions = {
    inherited: options.env ?? process.env,
    addresses,
    logLevel: setup.level,
    region: setup.region,
    maxUploadBytes: setup.maxUploadBytes,
    // Half the stack's grace: a service drains, then exits well before it would be killed.
    shutdownGraceSeconds: Math.max(1, Math.floor(stopGraceMs / 2000)),
    webhookToken: setup.webhookToken,
    vapidFile,
  };
  const supervision = { logger: setup.logger, sink: setup.sink, readyTimeoutMs: options.readyTimeoutMs ?? 60_000, stopGraceMs };
  const guard = childGuardScript(root);
  for (const name of setup.names) {
    const spec = {
      name,
      script: serviceScript(root, name),
      cwd: join(root, 'services', name),
      port: ports.get(name)!,
      env: serviceEnv(name, envOptions),
      ...(existsSync(guard) ? { preload: [guard] } : {}),
    };
    children.set(name, new SupervisedChild(spec, supervision));
  }
}

interface StackParts {
  gateway: GatewayListener;
  standIns: StandIns;
  issuer: DevIssuer;
  broker: LocalBroker;
  children: Children;
}

/** The running stack as its users see it. */
function stackHandle(setup: Setup, { gateway, standIns, issuer, broker, children }: StackParts): Stack {
  const { logger } = setup;
  let stopping: Promise<void> | undefined;
  return {
    gatewayUrl: gateway.url,
    brokerUrl: broker.url,
    ...standIns.endpoints,
    issuer: gateway.url,
    audience: LOCAL_AUDIENCE,
    mint: (playerId, roles) => issuer.mint(playerId, roles && roles.length > 0 ? { roles: [...roles] } : {}),
    services: Object.fromEntries([...children].map(([name, child]) => [name, child.url])),
    idle: async () => {
      await standIns.forwarder.idle();
      await broker.idle();
    },
    signal: (name, signal) => children.get(name)?.signal(signal),
    pid: (name) => children.get(name)?.pid,
    restartStandIn: (which, downMs = 0) => standIns.restart(which, downMs),
    stop: () =>
      (stopping ??= (async () => {
        logger.info('stopping');
        await unwind(setup.cleanup, logger);
        logger.info('stopped');
      })()),
  };
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
