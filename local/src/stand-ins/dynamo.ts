/** A DynamoDB-compatible server (dynalite, LevelDB-backed, with TransactWriteItems added) with the table created. */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { BatchWriteItemCommand, DeleteTableCommand, DescribeTableCommand, DynamoDBClient, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { OPEN_SINCE_ATTRIBUTE, OPEN_STATUS_ATTRIBUTE } from '@avatar-pipeline/kit/table';
import { addTransactions } from './dynamo-transactions.js';
import { LOCAL_CREDENTIALS } from './s3.js';
import { ensureTable } from './table-setup.js';

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
  /** Stops listening and closes the store; `dropConnections` also cuts every open connection at once, as a crash would. */
  close(options?: { dropConnections?: boolean }): Promise<void>;
}

export async function startDynamoServer(options: DynamoServerOptions): Promise<DynamoServer> {
  if (options.directory) await mkdir(options.directory, { recursive: true });
  const server: Server = dynalite({
    ...(options.directory ? { path: options.directory } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  addTransactions(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ region: options.region ?? 'us-east-1', endpoint, credentials: LOCAL_CREDENTIALS });
  try {
    if (!(await ensureTable(client, options.table))) await rebuildWithIndexes(client, options.table);
  } finally {
    client.destroy();
  }
  return {
    endpoint,
    port,
    close: (closing) =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        if (closing?.dropConnections) server.closeAllConnections();
      }),
  };
}

/**
 * dynalite cannot add an index to an existing table (it ignores UpdateTable's index updates), so a
 * table kept in a data directory from before the `open-uploads` index is copied out, created
 * again with it, and filled back in (the index is built as the items go back).
 */
async function rebuildWithIndexes(client: DynamoDBClient, table: string): Promise<void> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: table, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  // Uploads still open then join the index (their clock from their last change), so they end too.
  for (const item of items) {
    const status = item['status']?.S;
    if (item['sk']?.S?.startsWith('UPLOAD#') && (status === 'pending' || status === 'processing') && item['updatedAt']?.S) {
      item[OPEN_STATUS_ATTRIBUTE] = { S: status };
      item[OPEN_SINCE_ATTRIBUTE] = { S: item['updatedAt'].S };
    }
  }
  await client.send(new DeleteTableCommand({ TableName: table }));
  // dynalite deletes a moment later (the table is DELETING until then).
  for (let i = 0; ; i++) {
    try {
      await client.send(new DescribeTableCommand({ TableName: table }));
    } catch (err) {
      if ((err as { name?: string }).name === 'ResourceNotFoundException') break;
      throw err;
    }
    if (i >= 200) throw new Error(`table ${table} was not deleted`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (!(await ensureTable(client, table))) throw new Error(`could not create table ${table} with its indexes`);
  for (let i = 0; i < items.length; i += 25) {
    let unprocessed: Record<string, AttributeValue>[] = items.slice(i, i + 25);
    while (unprocessed.length > 0) {
      const { UnprocessedItems } = await client.send(
        new BatchWriteItemCommand({ RequestItems: { [table]: unprocessed.map((Item) => ({ PutRequest: { Item } })) } }),
      );
      unprocessed = (UnprocessedItems?.[table] ?? []).flatMap((request) => (request.PutRequest?.Item ? [request.PutRequest.Item] : []));
    }
  }
}
