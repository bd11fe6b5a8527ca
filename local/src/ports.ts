/** Port allocation for the stack's parts: a fixed port when configured, else a free one picked now. */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Asks the OS for a free loopback port. The port is released before it is used, so another
 * process could take it in between: acceptable for a dev stack, and it lets a child process be
 * told its port up front (and keep it across restarts).
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** `port` when it is set (non-zero), otherwise a free one. */
export async function portOrFree(port: number | undefined): Promise<number> {
  return port ? port : freePort();
}
