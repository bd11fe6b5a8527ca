/**
 * TransactWriteItems for dynalite, which has no transactions: the services write some items in
 * pairs that must never be half written (an upload moving to review with its REVIEW item, a
 * moderator's decision), and DynamoDB (and DynamoDB Local, the cluster's stand-in) does them in
 * one call.
 *
 * Emulated in front of dynalite's own request handler: a transaction takes the writes gate
 * exclusively (every other write holds it shared while dynalite runs it), reads each item,
 * checks every condition with dynalite's own expression code, and only when all hold applies the
 * writes one after the other (each still conditional: nothing else can write in between). So
 * against other writes it is all or nothing, as DynamoDB's is. What it does not give: a read may
 * see some of its writes and not yet the others (for the milliseconds they take), and a write that
 * dynalite refuses only when applying it (an update expression on an attribute of the wrong type)
 * leaves the writes before it done. ClientRequestToken is accepted and ignored.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Wire-format items and values (`{"S": "..."}`), as dynalite stores them. */
type Item = Record<string, unknown>;
type OpData = Record<string, unknown>;
interface DynaliteError extends Error {
  statusCode?: number;
  body?: unknown;
}
interface OpValidation {
  types: Record<string, unknown>;
  custom: (data: OpData, store: unknown) => string | undefined;
}

// dynalite's pure parts (no store): request validation, which also parses the expressions, and condition checks.
const validations = require('dynalite/validations/index.js') as {
  checkTypes(data: OpData, types: Record<string, unknown>): OpData;
  checkValidations(data: OpData, types: Record<string, unknown>, custom: OpValidation['custom'], store: unknown): void;
};
const db = require('dynalite/db/index.js') as {
  checkConditional(data: OpData, existing: Item | undefined): DynaliteError | null | undefined;
};
const opValidations: Record<Kind, OpValidation> = {
  Put: require('dynalite/validations/putItem.js') as OpValidation,
  Update: require('dynalite/validations/updateItem.js') as OpValidation,
  Delete: require('dynalite/validations/deleteItem.js') as OpValidation,
  // Key, condition, names and values: exactly what a conditional delete is checked for.
  ConditionCheck: require('dynalite/validations/deleteItem.js') as OpValidation,
};
/** What putItem's validation reads from the store. */
const validationStore = { options: { maxItemSize: 400 * 1024 } };

const kinds = ['Put', 'Update', 'Delete', 'ConditionCheck'] as const;
type Kind = (typeof kinds)[number];
const singleOperation: Record<Exclude<Kind, 'ConditionCheck'>, string> = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem' };
const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);
const MAX_ITEMS = 100;

/** Many writes at once, or one transaction alone. */
class WritesGate {
  private shared = 0;
  private exclusive = false;
  private readonly waiting: { exclusive: boolean; go: () => void }[] = [];

  acquire(exclusive: boolean): Promise<() => void> {
    return new Promise((resolve) => {
      this.waiting.push({
        exclusive,
        go: () => {
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            if (exclusive) this.exclusive = false;
            else this.shared -= 1;
            this.pump();
          });
        },
      });
      this.pump();
    });
  }

  /** First come, first served: a transaction waits for the writes before it, the writes after it wait for it. */
  private pump(): void {
    for (let next = this.waiting[0]; next; next = this.waiting[0]) {
      if (this.exclusive || (next.exclusive && this.shared > 0)) return;
      this.waiting.shift();
      if (next.exclusive) this.exclusive = true;
      else this.shared += 1;
      next.go();
    }
  }
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': randomUUID() });
  res.end(text);
}

const validationError = (message: string) => ({ __type: 'com.amazon.coral.validate#ValidationException', message });

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Adds TransactWriteItems to a dynalite server (before it listens). */
export function addTransactions(server: Server): void {
  const handlers = server.listeners('request') as Listener[];
  server.removeAllListeners('request');
  const handle: Listener = (req, res) => {
    for (const handler of handlers) handler(req, res);
  };
  const gate = new WritesGate();
  // Marks the transaction's own calls, which run inside its exclusive hold.
  const inside = `tx-${randomUUID()}`;
  const INSIDE_HEADER = 'x-local-transaction';
  const keySchemas = new Map<string, string[]>();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    if (req.headers[INSIDE_HEADER] === inside) {
      delete req.headers[INSIDE_HEADER];
      return handle(req, res);
    }
    if (operation === 'TransactWriteItems' && req.method === 'POST') {
      transact(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err) });
        else res.destroy();
      });
      return;
    }
    if (!WRITES.has(operation)) return handle(req, res);
    void gate.acquire(false).then((release) => {
      res.once('close', release);
      handle(req, res);
    });
  });

  /** One call of the plain API to dynalite, as the transaction's caller (its credentials headers). */
  async function call(req: IncomingMessage, operation: string, body: OpData): Promise<{ status: number; body: Record<string, unknown> }> {
    const { port } = server.address() as AddressInfo;
    const headers: Record<string, string> = {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${operation}`,
      [INSIDE_HEADER]: inside,
    };
    for (const name of ['authorization', 'x-amz-date', 'x-amz-security-token']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function keySchema(req: IncomingMessage, table: string): Promise<string[] | { status: number; body: unknown }> {
    const known = keySchemas.get(table);
    if (known) return known;
    const described = await call(req, 'DescribeTable', { TableName: table });
    if (described.status !== 200) return described;
    const schema = ((described.body['Table'] as { KeySchema?: { AttributeName: string }[] } | undefined)?.KeySchema ?? []).map((k) => k.AttributeName);
    keySchemas.set(table, schema);
    return schema;
  }

  async function transact(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let request: { TransactItems?: unknown };
    try {
      request = JSON.parse(await readBody(req)) as { TransactItems?: unknown };
    } catch {
      return send(res, 400, { __type: 'com.amazon.coral.service#SerializationException' });
    }
    const entries = request.TransactItems;
    if (!Array.isArray(entries) || entries.length === 0 || entries.length > MAX_ITEMS) {
      return send(res, 400, validationError(`TransactItems must have between 1 and ${MAX_ITEMS} items`));
    }
    const release = await gate.acquire(true);
    try {
      const ops: { kind: Kind; data: OpData; checked: OpData; table: string; key: Item; returnOld: boolean }[] = [];
      for (const entry of entries as Record<string, unknown>[]) {
        const present = kinds.filter((kind) => entry?.[kind] !== undefined);
        if (present.length !== 1) return send(res, 400, validationError('each of TransactItems must have exactly one of Put, Update, Delete, ConditionCheck'));
        const kind = present[0]!;
        const { ReturnValuesOnConditionCheckFailure: onFailure, ...data } = entry[kind] as OpData;
        if (kind === 'ConditionCheck' && typeof data['ConditionExpression'] !== 'string') return send(res, 400, validationError('a ConditionCheck needs a ConditionExpression'));
        let checked: OpData;
        try {
          const validation = opValidations[kind];
          checked = validations.checkTypes(structuredClone(data), validation.types);
          validations.checkValidations(checked, validation.types, validation.custom, validationStore);
        } catch (err) {
          const e = err as DynaliteError;
          if (e.statusCode) return send(res, e.statusCode, e.body);
          throw err;
        }
        const table = String(data['TableName']);
        let key = data['Key'] as Item | undefined;
        if (kind === 'Put') {
          const schema = await keySchema(req, table);
          if (!Array.isArray(schema)) return send(res, schema.status, schema.body);
          const item = data['Item'] as Item;
          key = Object.fromEntries(schema.map((name) => [name, item[name]]));
        }
        // `checked` carries the parsed expressions (for the condition check); the writes send `data` as it came.
        ops.push({ kind, data, checked, table, key: key ?? {}, returnOld: onFailure === 'ALL_OLD' });
      }
      const ids = ops.map((op) => `${op.table}\u0000${JSON.stringify(op.key)}`);
      if (new Set(ids).size !== ids.length) return send(res, 400, validationError('Transaction request cannot include multiple operations on one item'));

      // Every condition against the items as they are, before anything is written.
      const reasons: Record<string, unknown>[] = [];
      for (const op of ops) {
        const got = await call(req, 'GetItem', { TableName: op.table, Key: op.key, ConsistentRead: true });
        if (got.status !== 200) return send(res, got.status, got.body);
        const existing = got.body['Item'] as Item | undefined;
        const failed = db.checkConditional(op.checked, existing);
        reasons.push(
          failed
            ? { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed', ...(op.returnOld && existing ? { Item: existing } : {}) }
            : { Code: 'None' },
        );
      }
      if (reasons.some((r) => r['Code'] !== 'None')) {
        return send(res, 400, {
          __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r['Code']).join(', ')}]`,
          CancellationReasons: reasons,
        });
      }
      for (const op of ops) {
        if (op.kind === 'ConditionCheck') continue;
        const written = await call(req, singleOperation[op.kind], op.data);
        if (written.status !== 200) return send(res, written.status, written.body);
      }
      send(res, 200, {});
    } finally {
      release();
    }
  }
}
