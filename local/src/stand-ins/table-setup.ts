/**
 * Creating the pipeline's table where nothing else does: the local stack's and the tests' dynalite
 * (dynamo.ts). On a cluster the stand-ins' setup Job creates it (cdk8s/src/stand-ins.ts), and on
 * AWS the operator does (docs/deploy.md); all three from the kit's definitions of the key
 * attributes and the `open-uploads` index.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { OPEN_UPLOADS_INDEX, TTL_ATTRIBUTE, openUploadsIndex, tableAttributeDefinitions } from '@avatar-pipeline/kit/table';

/** The table's description, or undefined when it does not exist. */
async function describe(client: DynamoDBClient, table: string) {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: table }))).Table;
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

/** Waits until the table and every index of it are ACTIVE (local servers: at once). */
async function untilActive(client: DynamoDBClient, table: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const description = await describe(client, table);
    const indexes = description?.GlobalSecondaryIndexes ?? [];
    if (description?.TableStatus === 'ACTIVE' && indexes.every((index) => index.IndexStatus === undefined || index.IndexStatus === 'ACTIVE')) return;
    await new Promise((r) => setTimeout(r, i < 100 ? 50 : 1000));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

/** Whether the table has the reconciler's index. */
export async function hasOpenUploadsIndex(client: DynamoDBClient, table: string): Promise<boolean> {
  return ((await describe(client, table))?.GlobalSecondaryIndexes ?? []).some((index) => index.IndexName === OPEN_UPLOADS_INDEX);
}

/**
 * Creates the table (its TTL and the `open-uploads` index) if it does not exist, and adds the
 * index to a table created before it (UpdateTable). Returns whether the table has the index
 * afterwards (a server that ignores index updates, such as dynalite, leaves an old table without
 * it: startDynamoServer then rebuilds the table).
 */
export async function ensureTable(client: DynamoDBClient, table: string): Promise<boolean> {
  const existing = await describe(client, table);
  if (existing) {
    if (existing.GlobalSecondaryIndexes?.some((index) => index.IndexName === OPEN_UPLOADS_INDEX)) return true;
    try {
      await client.send(
        new UpdateTableCommand({
          TableName: table,
          AttributeDefinitions: tableAttributeDefinitions(),
          GlobalSecondaryIndexUpdates: [{ Create: openUploadsIndex() }],
        }),
      );
    } catch (err) {
      // dynalite refuses an on-demand index (it wants throughput it would then ignore anyway).
      if ((err as { name?: string }).name === 'ValidationException') return false;
      throw err;
    }
    await untilActive(client, table);
    return hasOpenUploadsIndex(client, table);
  }
  await client.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: tableAttributeDefinitions(),
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [openUploadsIndex()],
    }),
  );
  await untilActive(client, table);
  try {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }));
  } catch {
    // Some local servers do not implement TTL; expiry is then simply not enforced.
  }
  return true;
}
