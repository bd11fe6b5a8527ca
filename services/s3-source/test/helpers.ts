/** Test doubles: a real HTTP sink that records what it is sent, and a source wired to it. */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@avatar-pipeline/kit/logger';
import { createS3SourceService, type S3SourceDeps } from '../src/index.js';

export interface SinkRequest {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Sink {
  url: string;
  requests: SinkRequest[];
  /** Status answered from now on (default 202, as a Knative broker does). */
  status: number;
  /** How long each answer waits once the request is in (default 0: a slow broker when set). */
  delayMs: number;
  /** Requests received but not answered yet. */
  pending: number;
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const requests: SinkRequest[] = [];
  const sink = { requests, status: 202, delayMs: 0, pending: 0 } as Sink;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = sink.status;
      sink.pending += 1;
      setTimeout(() => {
        sink.pending -= 1;
        if (!res.destroyed) res.writeHead(status).end();
      }, sink.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  sink.close = () => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return sink;
}

/** A URL where nothing listens: a server bound to port 0, then closed. */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/`;
}

export function testSource(config: Partial<S3SourceDeps['config']> & { K_SINK: string }, deps: Partial<Omit<S3SourceDeps, 'config'>> = {}) {
  return createS3SourceService({
    // A webhook without a token is open on purpose here, as WEBHOOK_AUTH_DISABLED=true makes it
    // (SQS mode has no webhook, so no webhook setting).
    config: {
      AWS_REGION: 'us-east-1',
      SQS_VISIBILITY_TIMEOUT_SECONDS: 60,
      WEBHOOK_AUTH_DISABLED: config.WEBHOOK_AUTH_TOKEN === undefined && config.SQS_QUEUE_URL === undefined,
      ...config,
    },
    logger: createLogger('s3-source-test', 'silent'),
    delivery: { retryDelayMs: 1 },
    ...deps,
  });
}

export function post(source: ReturnType<typeof testSource>, body: string, headers: Record<string, string> = {}, path = '/webhook') {
  return source.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

/** A counter's value for the given labels (0 when never incremented). */
export async function counterValue(source: ReturnType<typeof testSource>, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await source.metrics.registry.getSingleMetric(name)?.get();
  if (!metric) throw new Error(`no metric ${name}`);
  const sample = metric.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return sample?.value ?? 0;
}
