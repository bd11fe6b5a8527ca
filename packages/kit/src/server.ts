/** Runs a service: listens, and on SIGTERM/SIGINT drains in-flight work before exiting (Knative scale-down). */
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ConfigError } from './config.js';
import type { Service } from './service.js';
import { startTracing, stopTracing } from './tracing.js';

export interface RunOptions {
  port: number;
  hostname?: string;
  /** Longest wait for in-flight requests after a stop signal. */
  graceMs: number;
  /** Closes clients, pollers and other resources once requests have drained. */
  onClose?: () => Promise<void> | void;
}

/** Listen address, port and drain time from the shared variables (see `commonEnv`). */
export function listenOptions(config: { PORT: number; HOST: string; SHUTDOWN_GRACE_SECONDS: number }): Pick<RunOptions, 'port' | 'hostname' | 'graceMs'> {
  return { port: config.PORT, hostname: config.HOST, graceMs: config.SHUTDOWN_GRACE_SECONDS * 1000 };
}

export interface RunningService {
  server: Server;
  port: number;
  /** Stops accepting, drains, then runs onClose. Safe to call more than once. */
  close(): Promise<void>;
}

export async function runService(service: Service, options: RunOptions): Promise<RunningService> {
  const { logger, lifecycle } = service;
  const server = await new Promise<Server>((resolve) => {
    const s = serve(
      { fetch: service.app.fetch, port: options.port, hostname: options.hostname ?? '0.0.0.0' },
      () => resolve(s as Server),
    ) as Server;
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port }, `${service.name} listening`);

  // While draining, each answer ends its connection (`Connection: close` when its headers are not
  // out yet), so keep-alive clients reconnect elsewhere and no response is cut off mid-write.
  const answering = new Set<ServerResponse>();
  const lastOnItsConnection = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('Connection', 'close');
    res.once('close', () => server.closeIdleConnections());
  };
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (lifecycle.draining) return lastOnItsConnection(res);
    answering.add(res);
    res.once('close', () => answering.delete(res));
  });

  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal, inflight: lifecycle.active }, 'draining');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const signals = ['SIGTERM', 'SIGINT'] as const;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const signal of signals) process.off(signal, onSignal);
      lifecycle.draining = true;
      for (const res of answering) lastOnItsConnection(res);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        Promise.all([closed, lifecycle.idle()]).then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), options.graceMs))),
      ]);
      clearTimeout(timer);
      if (!drained) {
        logger.warn({ inflight: lifecycle.active }, 'grace period over with requests in flight');
        server.closeAllConnections();
      }
      await closed;
      await options.onClose?.();
      // The last spans (this shutdown's requests) are exported before the process exits.
      await stopTracing();
      logger.info('stopped');
    })());

  for (const signal of signals) process.once(signal, onSignal);
  return { server, port, close };
}

export interface MainOptions {
  /**
   * Trace the process as this service when an OTLP endpoint is configured (see tracing.ts).
   * Tracing starts before `start` runs, so let `start` import the service's modules: the AWS SDK
   * is instrumented only if it loads after that (`main(() => import('./start.js').then(...))`).
   */
  tracing?: string;
}

/** Entry point wrapper: configuration errors print one clear line and exit 1. */
export function main(start: () => Promise<unknown>, options: MainOptions = {}): void {
  const { tracing } = options;
  (tracing === undefined ? start() : startTracing(tracing).then(start)).catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
    } else {
      process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exit(1);
  });
}
