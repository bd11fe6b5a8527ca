/**
 * The erasure's access to the table: whole partitions read and items deleted by key, never a scan
 * (erasure.ts says which partitions).
 */
import { BatchWriteCommand, QueryCommand, type DynamoDBDocumentClient, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';

type Item = Record<string, NativeAttributeValue>;

interface ItemKey {
  pk: string;
  sk: string;
}

/** DynamoDB's BatchWriteItem limit. */
const BATCH = 25;

export class Partitions {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  /** Every item of one partition (a consistent Query, paged). */
  async items(pk: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Deletes these items, a batch at a time; rejects when DynamoDB keeps leaving some unprocessed. */
  async delete(keys: readonly ItemKey[]): Promise<void> {
    for (let i = 0; i < keys.length; i += BATCH) {
      let requests: NonNullable<ConstructorParameters<typeof BatchWriteCommand>[0]['RequestItems']>[string] = keys
        .slice(i, i + BATCH)
        .map((Key) => ({ DeleteRequest: { Key } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        // Unprocessed items mean throttling: back off before sending them again.
        if (attempt > 0) {
          if (attempt > 8) throw new Error('DynamoDB kept items of a batch delete unprocessed');
          await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
        }
        const res = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: requests } }));
        requests = res.UnprocessedItems?.[this.table] ?? [];
      }
    }
  }
}
