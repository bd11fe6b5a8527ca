/** Serves a fetch handler (a Hono app) on a port, with a close that does not wait for idle keep-alive sockets. */
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Listening {
  port: number;
  close(): Promise<void>;
}

export type FetchHandler = (request: Request, env: unknown) => Response | Promise<Response>;

export async function listen(name: string, fetch: FetchHandler, port: number, hostname = '127.0.0.1'): Promise<Listening> {
  let server: Server | undefined;
  await new Promise<void>((resolve, reject) => {
    server = serve({ fetch, port, hostname }, () => resolve()) as Server;
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`${name}: port ${port} on ${hostname} is already in use`) : err),
    );
  });
  const s = server!;
  return {
    port: (s.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeIdleConnections();
        // Requests still running after a moment are cut: the stack is going away.
        setTimeout(() => s.closeAllConnections(), 1000).unref();
      }),
  };
}
