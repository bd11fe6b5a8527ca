/**
 * A small SQS stand-in over HTTP for tests that run the built service as a process: the AWS
 * JSON 1.0 protocol the SDK speaks (ReceiveMessage with long polling, DeleteMessageBatch), with
 * the MD5 the SDK checks. One queue; in-flight messages stay hidden until deleted (no
 * visibility expiry: the tests look at what was deleted and when).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SqsCall {
  action: string;
  at: number;
  input: Record<string, unknown>;
}

export interface FakeSqs {
  endpoint: string;
  queueUrl: string;
  calls: SqsCall[];
  /** Receipt handles deleted, in order, with when. */
  deleted: { handle: string; at: number }[];
  send(body: string): string;
  close(): Promise<void>;
}

interface Waiter {
  max: number;
  answer: (messages: object[]) => void;
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

export async function startFakeSqs(): Promise<FakeSqs> {
  const visible: { id: string; body: string }[] = [];
  const waiters = new Set<Waiter>();
  let sequence = 0;
  const fake = { calls: [], deleted: [] } as unknown as FakeSqs;

  const take = (max: number) =>
    visible.splice(0, max).map((m) => ({
      MessageId: m.id,
      ReceiptHandle: `handle-${m.id}`,
      MD5OfBody: md5(m.body),
      Body: m.body,
      Attributes: { ApproximateReceiveCount: '1' },
    }));

  const reply = (res: ServerResponse, status: number, body: object) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' }).end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse, text: string) => {
    const action = String(req.headers['x-amz-target'] ?? '').replace(/^AmazonSQS\./, '');
    const input = JSON.parse(text || '{}') as Record<string, unknown>;
    fake.calls.push({ action, at: Date.now(), input });
    if (input['QueueUrl'] !== fake.queueUrl) return reply(res, 400, { __type: 'com.amazonaws.sqs#QueueDoesNotExist', message: 'no such queue' });
    switch (action) {
      case 'ReceiveMessage': {
        const max = Number(input['MaxNumberOfMessages'] ?? 1);
        if (visible.length > 0) return reply(res, 200, { Messages: take(max) });
        let timer: NodeJS.Timeout | undefined;
        const waiter: Waiter = {
          max,
          answer: (messages) => {
            clearTimeout(timer);
            waiters.delete(waiter);
            reply(res, 200, messages.length > 0 ? { Messages: messages } : {});
          },
        };
        timer = setTimeout(() => waiter.answer([]), Number(input['WaitTimeSeconds'] ?? 0) * 1000);
        waiters.add(waiter);
        // The client gave up (aborted long poll): nothing is handed to it.
        res.once('close', () => {
          clearTimeout(timer);
          waiters.delete(waiter);
        });
        return;
      }
      case 'DeleteMessageBatch': {
        const entries = (input['Entries'] ?? []) as { Id: string; ReceiptHandle: string }[];
        for (const entry of entries) fake.deleted.push({ handle: entry.ReceiptHandle, at: Date.now() });
        return reply(res, 200, { Successful: entries.map((e) => ({ Id: e.Id })), Failed: [] });
      }
      default:
        return reply(res, 400, { __type: 'com.amazonaws.sqs#UnsupportedOperation', message: `${action} is not faked` });
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.queueUrl = `${fake.endpoint}/123456789012/avatar-uploads`;
  fake.send = (body) => {
    const id = `m${++sequence}`;
    visible.push({ id, body });
    for (const waiter of waiters) {
      if (visible.length === 0) break;
      waiter.answer(take(waiter.max));
    }
    return `handle-${id}`;
  };
  fake.close = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}
