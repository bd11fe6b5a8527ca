/**
 * A trace collector for tests: an HTTP server taking OTLP/HTTP JSON exports (`POST /v1/traces`,
 * what the SDK sends with OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and keeping every span, flattened
 * with the service that sent it.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

export type ReceivedSpanKind = 'unspecified' | 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export interface ReceivedSpan {
  /** The resource's `service.name`. */
  service: string;
  traceId: string;
  spanId: string;
  /** Undefined for a root span. */
  parentSpanId: string | undefined;
  name: string;
  kind: ReceivedSpanKind;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string }[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
}

export interface OtlpReceiver {
  /** The base URL: the value for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly ReceivedSpan[];
  close(): Promise<void>;
}

const kinds: readonly ReceivedSpanKind[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

const anyValueSchema = z
  .object({
    stringValue: z.string(),
    boolValue: z.boolean(),
    intValue: z.union([z.string(), z.number()]).transform(Number),
    doubleValue: z.number(),
  })
  .partial()
  .loose();
const attributesSchema = z.array(z.object({ key: z.string(), value: anyValueSchema })).default([]);

const exportSchema = z.object({
  resourceSpans: z.array(
    z.object({
      resource: z.object({ attributes: attributesSchema }).optional(),
      scopeSpans: z.array(
        z.object({
          spans: z.array(
            z.object({
              traceId: z.string(),
              spanId: z.string(),
              parentSpanId: z.string().optional(),
              name: z.string(),
              kind: z.number().int().min(0).max(5),
              attributes: attributesSchema,
              links: z.array(z.object({ traceId: z.string(), spanId: z.string() })).default([]),
              status: z.object({ code: z.number().int().optional() }).optional(),
            }),
          ),
        }),
      ),
    }),
  ),
});

function attributes(list: z.infer<typeof attributesSchema>): Record<string, unknown> {
  return Object.fromEntries(list.map(({ key, value }) => [key, value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue]));
}

function flatten(request: z.infer<typeof exportSchema>): ReceivedSpan[] {
  return request.resourceSpans.flatMap(({ resource, scopeSpans }) => {
    const service = String(attributes(resource?.attributes ?? [])['service.name'] ?? '');
    return scopeSpans.flatMap(({ spans }) =>
      spans.map((span) => ({
        service,
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId || undefined,
        name: span.name,
        kind: kinds[span.kind]!,
        attributes: attributes(span.attributes),
        links: span.links.map(({ traceId, spanId }) => ({ traceId, spanId })),
        statusCode: span.status?.code ?? 0,
      })),
    );
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Status and body of the answer to one export; the spans go to `into`. */
async function receive(req: IncomingMessage, into: ReceivedSpan[]): Promise<[number, unknown]> {
  if (req.method !== 'POST' || req.url !== '/v1/traces') return [404, { code: 5, message: 'only POST /v1/traces is served' }];
  if (!req.headers['content-type']?.startsWith('application/json')) return [415, { code: 3, message: 'only OTLP/HTTP JSON is decoded' }];
  let json: unknown;
  try {
    json = JSON.parse(await readBody(req));
  } catch (err) {
    return [400, { code: 3, message: String(err) }];
  }
  const parsed = exportSchema.safeParse(json);
  if (!parsed.success) return [400, { code: 3, message: parsed.error.message }];
  into.push(...flatten(parsed.data));
  return [200, {}];
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    void receive(req, spans).then(([status, body]) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
