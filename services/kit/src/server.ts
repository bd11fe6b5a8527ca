/** Runs a service: listens, and on SIGTERM/SIGINT drains in-flight work before exiting (Knative scale-down). */
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { ConfigError } from './config.js';
import type { Service } from './service.js';

export interface RunOptions {
  port: number;
  hostname?: string;
  /** Longest wait for in-flight requests after a stop signal. */
  graceMs: number;
  /** Closes clients, pollers and other resources once requests have drained. */
  onClose?: () => Promise<void> | void;
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

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      lifecycle.draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drained = await Promise.race([
        lifecycle.idle().then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), options.graceMs).unref()),
      ]);
      if (!drained) logger.warn({ inflight: lifecycle.active }, 'grace period over with requests in flight');
      server.closeAllConnections();
      await closed;
      await options.onClose?.();
      logger.info('stopped');
    })());

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal, inflight: lifecycle.active }, 'draining');
      close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
  return { server, port, close };
}

/** Entry point wrapper: configuration errors print one clear line and exit 1. */
export function main(start: () => Promise<unknown>): void {
  start().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
    } else {
      process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exit(1);
  });
}
