/**
 * Page cursors of the paged APIs: a Query's LastEvaluatedKey as the client sees it, opaque
 * base64url JSON. Checked against the key's schema when it comes back, so a forged one can neither
 * point the Query at another partition nor make DynamoDB fail: it is a 400 `invalid_cursor`.
 */
import type { NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import type { z } from 'zod';
import { HttpError } from './errors.js';

type Key = Record<string, NativeAttributeValue>;

export function encodeCursor(key: Key): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, schema: z.ZodType<Key>): Key {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const key = schema.safeParse(parsed);
  if (!key.success) throw new HttpError(400, 'invalid_cursor', 'cursor is not one this API returned');
  return key.data;
}
