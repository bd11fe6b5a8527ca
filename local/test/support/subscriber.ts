/** A recording CloudEvents subscriber on a real HTTP port, answering as each test tells it to. */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CloudEvent } from 'cloudevents';
import { toBinary, toCloudEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';

export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The request parsed as a CloudEvent, if it is one. */
  event: CloudEvent<unknown> | undefined;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (timeouts, concurrency). */
  delayMs?: number;
}

/** Decides the answer to the n-th request (0-based). */
export type Responder = (request: Received, n: number) => Answer;

export interface Subscriber {
  url: string;
  received: Received[];
  /** Most requests being handled at the same moment. */
  maxConcurrent: number;
  close(): Promise<void>;
}

export const accept: Responder = () => ({ status: 202 });

/** A 200 carrying `event` in binary mode: the Knative reply pattern. */
export function replyWith(event: OutgoingEvent): Answer {
  const { headers, body } = toBinary(event);
  return { status: 200, headers, body };
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

export async function startSubscriber(respond: Responder = accept): Promise<Subscriber> {
  const received: Received[] = [];
  let active = 0;
  const state = { maxConcurrent: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      active += 1;
      state.maxConcurrent = Math.max(state.maxConcurrent, active);
      const headers = flatten(req.headers);
      const body = Buffer.concat(chunks).toString('utf8');
      let event: CloudEvent<unknown> | undefined;
      try {
        event = toCloudEvent(headers, body);
      } catch {
        event = undefined;
      }
      const request: Received = { path: req.url ?? '/', headers, body, event };
      const answer = respond(request, received.length);
      received.push(request);
      setTimeout(() => {
        active -= 1;
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? '');
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
