/** Readiness checks shared by services (an `ObjectStore` has its own: `ready`). */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentCommand } from './sdk.js';

const GetCommand = documentCommand('GetCommand');

/** A consistent read of a key that never exists: proves the table, endpoint and credentials work, at no cost. */
export function tableReadiness(doc: DynamoDBDocumentClient, table: string): () => Promise<unknown> {
  return () => doc.send(new GetCommand({ TableName: table, Key: { pk: 'READINESS', sk: 'READINESS' } }));
}
