/** A DynamoDB-compatible server (dynalite, LevelDB-backed) with the table created. */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { ensureTable } from '@avatar-pipeline/kit';
import { LOCAL_CREDENTIALS } from './s3.js';

export interface DynamoServerOptions {
  /** LevelDB directory; omitted means in memory. */
  directory?: string;
  port?: number;
  table: string;
  region?: string;
}

export interface DynamoServer {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

export async function startDynamoServer(options: DynamoServerOptions): Promise<DynamoServer> {
  if (options.directory) await mkdir(options.directory, { recursive: true });
  const server: Server = dynalite({
    ...(options.directory ? { path: options.directory } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ region: options.region ?? 'us-east-1', endpoint, credentials: LOCAL_CREDENTIALS });
  try {
    await ensureTable(client, options.table);
  } finally {
    client.destroy();
  }
  return {
    endpoint,
    port,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
