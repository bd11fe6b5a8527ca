import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { OPEN_UPLOADS_INDEX } from '@avatar-pipeline/kit/table';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTable, hasOpenUploadsIndex, startTestBackends, type DynamoBackend } from '../src/index.js';

const TABLE = 'table-setup-test';

let backends: DynamoBackend;
beforeAll(async () => {
  backends = await startTestBackends({ prefix: 'local-table-', s3: false, dynamo: { table: TABLE } });
});
afterAll(async () => {
  await backends?.close();
});

describe('ensureTable', () => {
  it('creates the table with the open-uploads index, and says when a table created before the index cannot get it', async () => {
    const client = new DynamoDBClient({ region: 'us-east-1', endpoint: backends.dynamoServer.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    try {
      const described = await client.send(new DescribeTableCommand({ TableName: TABLE }));
      expect(described.Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName)).toEqual([OPEN_UPLOADS_INDEX]);
      expect(await ensureTable(client, TABLE)).toBe(true);
      // dynalite ignores UpdateTable's index updates: ensureTable says so (startDynamoServer then rebuilds the table).
      await client.send(
        new CreateTableCommand({
          TableName: 'table-setup-old',
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'sk', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
        }),
      );
      expect(await hasOpenUploadsIndex(client, 'table-setup-old')).toBe(false);
      expect(await ensureTable(client, 'table-setup-old')).toBe(false);
    } finally {
      client.destroy();
    }
  });
});
