/**
 * The transactions added to dynalite (src/stand-ins/dynamo-transactions.ts) behave as a real implementation's:
 * every case runs against the local server and against moto's DynamoDB, whose TransactWriteItems is
 * its own, so the emulation cannot agree only with itself.
 */
import { CreateTableCommand, DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDynamoServer } from '../src/stand-ins/dynamo.js';
import { motoSkipReason, startMoto } from '../src/stand-ins/moto.js';

const TABLE = 'tx-test';

interface Backend {
  endpoint: string;
  close(): Promise<void>;
}

const backends: [string, () => Promise<Backend>][] = [
  ['the local DynamoDB (dynalite, transactions added)', () => startDynamoServer({ table: TABLE })],
  [
    "moto's DynamoDB",
    async () => {
      const moto = await startMoto();
      const client = new DynamoDBClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
      await client.send(
        new CreateTableCommand({
          TableName: TABLE,
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'sk', AttributeType: 'S' },
          ],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      client.destroy();
      return moto;
    },
  ],
];

async function cancelled(run: Promise<unknown>): Promise<TransactionCanceledException> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransactionCanceledException);
  return err as TransactionCanceledException;
}

describe.each(backends)('TransactWriteItems on %s', (name, start) => {
  const skip = name.startsWith('moto') ? motoSkipReason() : undefined;
  let server: Backend | undefined;
  let client: DynamoDBClient;
  let doc: DynamoDBDocumentClient;
  let seq = 0;
  const key = (label: string) => ({ pk: `T#${++seq}#${label}`, sk: 'ITEM' });
  const read = async (k: { pk: string; sk: string }) => (await doc.send(new GetCommand({ TableName: TABLE, Key: k, ConsistentRead: true }))).Item;

  beforeAll(async () => {
    if (skip) return;
    server = await start();
    client = new DynamoDBClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    doc = DynamoDBDocumentClient.from(client);
  }, 90_000);
  afterAll(async () => {
    client?.destroy();
    await server?.close();
  });


  it.skipIf(skip)('applies every write when every condition holds', async () => {
    const [a, b, c, d] = [key('a'), key('b'), key('c'), key('d')];
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...b, n: 1, status: 'open' } }));
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...c, gone: true } }));
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...d, guard: 'yes' } }));
    await doc.send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: TABLE, Item: { ...a, v: 'new' }, ConditionExpression: 'attribute_not_exists(pk)' } },
          {
            Update: {
              TableName: TABLE,
              Key: b,
              UpdateExpression: 'SET #status = :done, n = n + :one',
              ConditionExpression: '#status = :open',
              ExpressionAttributeNames: { '#status': 'status' },
              ExpressionAttributeValues: { ':done': 'done', ':open': 'open', ':one': 1 },
            },
          },
          { Delete: { TableName: TABLE, Key: c } },
          { ConditionCheck: { TableName: TABLE, Key: d, ConditionExpression: 'guard = :yes', ExpressionAttributeValues: { ':yes': 'yes' } } },
        ],
      }),
    );
    expect(await read(a)).toEqual({ ...a, v: 'new' });
    expect(await read(b)).toEqual({ ...b, n: 2, status: 'done' });
    expect(await read(c)).toBeUndefined();
    expect(await read(d)).toEqual({ ...d, guard: 'yes' });
  });

  it.skipIf(skip)('writes nothing when one condition fails, and says which (with the item when asked)', async () => {
    const [a, b, guard] = [key('a'), key('b'), key('guard')];
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...b, status: 'closed' } }));
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...guard, guard: 'no' } }));
    const err = await cancelled(
      doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: TABLE, Item: { ...a, v: 1 } } },
            {
              Update: {
                TableName: TABLE,
                Key: b,
                UpdateExpression: 'SET v = :v',
                ConditionExpression: '#status = :open',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':v': 1, ':open': 'open' },
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              },
            },
            { ConditionCheck: { TableName: TABLE, Key: guard, ConditionExpression: 'guard = :yes', ExpressionAttributeValues: { ':yes': 'yes' } } },
          ],
        }),
      ),
    );
    expect(err.CancellationReasons?.map((r) => r.Code)).toEqual(['None', 'ConditionalCheckFailed', 'ConditionalCheckFailed']);
    expect(err.CancellationReasons?.[1]?.Item).toEqual({ pk: { S: b.pk }, sk: { S: 'ITEM' }, status: { S: 'closed' } });
    expect(err.CancellationReasons?.[2]?.Item).toBeUndefined();
    expect(err.message).toContain('[None, ConditionalCheckFailed, ConditionalCheckFailed]');
    expect(await read(a)).toBeUndefined();
    expect(await read(b)).toEqual({ ...b, status: 'closed' });
  });

  it.skipIf(skip)('evaluates conditions on nested attributes and on items that do not exist', async () => {
    const [a, b] = [key('a'), key('b')];
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...a, approved: { sha256: 'abc' } } }));
    const put = (sha: string) =>
      doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: TABLE,
                Item: { ...a, approved: { sha256: sha }, again: true },
                ConditionExpression: 'attribute_not_exists(pk) OR #approved.#sha = :sha',
                ExpressionAttributeNames: { '#approved': 'approved', '#sha': 'sha256' },
                ExpressionAttributeValues: { ':sha': sha },
              },
            },
            { ConditionCheck: { TableName: TABLE, Key: b, ConditionExpression: 'attribute_not_exists(pk)' } },
          ],
        }),
      );
    await cancelled(put('other'));
    await put('abc');
    expect(await read(a)).toMatchObject({ again: true });
  });

  it.skipIf(skip)('lets exactly one of many racing transactions win the same condition', async () => {
    const claim = key('claim');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        doc.send(
          new TransactWriteCommand({
            TransactItems: [
              { Put: { TableName: TABLE, Item: { ...claim, winner: i }, ConditionExpression: 'attribute_not_exists(pk)' } },
              { Put: { TableName: TABLE, Item: { pk: `${claim.pk}#${i}`, sk: 'SIDE', winner: i } } },
            ],
          }),
        ),
      ),
    );
    const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    expect((await read(claim))?.['winner']).toBe(won[0]);
    for (let i = 0; i < 12; i++) expect((await read({ pk: `${claim.pk}#${i}`, sk: 'SIDE' }))?.['winner'], `side ${i}`).toBe(i === won[0] ? i : undefined);
  });

  it.skipIf(skip)('orders plain writes around a transaction: a conditional update racing it sees it whole or not at all', async () => {
    const [a, b] = [key('a'), key('b')];
    await doc.send(new PutCommand({ TableName: TABLE, Item: { ...a, status: 'processing' } }));
    const move = doc.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: TABLE,
              Key: a,
              UpdateExpression: 'SET #status = :review',
              ConditionExpression: '#status = :processing',
              ExpressionAttributeNames: { '#status': 'status' },
              ExpressionAttributeValues: { ':review': 'in_review', ':processing': 'processing' },
            },
          },
          { Put: { TableName: TABLE, Item: { ...b, status: 'open' } } },
        ],
      }),
    );
    const finish = doc.send(
      new UpdateCommand({
        TableName: TABLE,
        Key: a,
        UpdateExpression: 'SET #status = :ready',
        ConditionExpression: '#status = :processing',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':ready': 'ready', ':processing': 'processing' },
      }),
    );
    const [moved, finished] = await Promise.allSettled([move, finish]);
    // One of them wins, never both.
    expect([moved.status, finished.status].sort()).toEqual(['fulfilled', 'rejected']);
    const status = (await read(a))?.['status'];
    expect(status).toBe(moved.status === 'fulfilled' ? 'in_review' : 'ready');
    expect(await read(b)).toEqual(moved.status === 'fulfilled' ? { ...b, status: 'open' } : undefined);
  });

  it.skipIf(skip)('refuses two operations on one item, and bad expressions, as DynamoDB does', async () => {
    const a = key('a');
    const twice = doc.send(
      new TransactWriteCommand({
        TransactItems: [{ Put: { TableName: TABLE, Item: { ...a, v: 1 } } }, { Delete: { TableName: TABLE, Key: a } }],
      }),
    );
    await expect(twice).rejects.toMatchObject({ name: 'ValidationException', message: expect.stringContaining('multiple operations on one item') });
    const bad = doc.send(new TransactWriteCommand({ TransactItems: [{ Update: { TableName: TABLE, Key: a, UpdateExpression: 'SET v = :missing' } }] }));
    // DynamoDB (and the emulation) refuses it as invalid; moto cancels the transaction instead: either way nothing is written.
    await expect(bad).rejects.toMatchObject({ name: expect.stringMatching(/^(ValidationException|TransactionCanceledException)$/) });
    // DynamoDB requires 1 to 100 items; moto takes an empty list (nothing of ours sends one).
    if (!name.startsWith('moto')) await expect(doc.send(new TransactWriteCommand({ TransactItems: [] }))).rejects.toMatchObject({ name: 'ValidationException' });
    expect(await read(a)).toBeUndefined();
  });
});
