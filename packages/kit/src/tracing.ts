/**
 * OpenTelemetry tracing, when it is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). This module is what the rest of the kit imports: without
 * an endpoint it loads nothing else, so the OpenTelemetry SDK (a few hundred ms of start-up and
 * over 10 MB) stays out of a service that does not export traces. With one, `startTracing` loads
 * tracing-sdk.ts and `tracing()` returns it. See docs/tracing.md.
 */
import { z } from 'zod';
import { commonEnv, env, loadConfig } from './config.js';

/** W3C trace context as it travels: HTTP headers, CloudEvent extensions, the upload record. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string | undefined;
}

/** The spans the kit makes: an HTTP request (server), an event delivery (consumer), an emitted event (producer). */
export type SpanKind = 'server' | 'consumer' | 'producer';

export interface SpanSpec {
  kind: SpanKind;
  name: string;
  attributes?: Readonly<Record<string, string | number>>;
  /**
   * The remote context this span continues (an incoming header, an event's extension, a record).
   * The active span stays the parent when it is already in that trace; a context from another
   * trace becomes the parent, and the active span a link. Without one the active span is the parent.
   */
  parent?: TraceContext | undefined;
}

export interface ActiveSpan {
  /** This span as the next hop continues it: put on requests and events. */
  readonly context: TraceContext;
  /** What log lines carry to name the span. */
  readonly logFields: { trace_id: string; span_id: string };
  /** Runs `work` with this span active: the spans it starts (AWS SDK, fetch) are its children. */
  run<T>(work: () => Promise<T>): Promise<T>;
  rename(name: string): void;
  setAttributes(attributes: Readonly<Record<string, string | number>>): void;
  /** `problem` marks the span failed. */
  end(problem?: string): void;
}

export interface Tracing {
  startSpan(spec: SpanSpec): ActiveSpan;
  /** The active span's context (undefined: none is active). */
  current(): TraceContext | undefined;
  /** Exports what is still buffered and stops. */
  shutdown(): Promise<void>;
}

/** The variables that switch tracing on; the SDK reads every other OTEL_* variable itself. */
export const tracingEnv = {
  OTEL_EXPORTER_OTLP_ENDPOINT: env
    .url()
    .optional()
    .describe('An OTLP collector (http(s) URL): set, the service exports traces there; unset, no tracing code is even loaded.'),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.url().optional().describe('The standard traces-only endpoint, in place of OTEL_EXPORTER_OTLP_ENDPOINT.'),
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .enum(['http/protobuf', 'http/json', 'grpc'])
    .optional()
    .describe(
      'The export protocol (unset: http/protobuf). The SDK reads every other standard OTEL_* variable itself (OTEL_TRACES_SAMPLER, OTEL_BSP_SCHEDULE_DELAY, OTEL_RESOURCE_ATTRIBUTES, ...).',
    ),
  OTEL_TRACES_SAMPLER: z
    .enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'])
    .optional()
    .describe('Which spans are kept (unset: parentbased_always_on: all, or as the caller\'s trace says); read by the SDK.'),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional().describe('The ratio of the *traceidratio samplers (0-1); read by the SDK.'),
  OTEL_SERVICE_NAME: z.string().min(1).optional().describe('`service.name` of its spans (default: the service\'s name).'),
  OTEL_SDK_DISABLED: env.bool(false).describe('Tracing off even with an endpoint set.'),
  /** The SDK's warnings are log lines of the service. */
  LOG_LEVEL: commonEnv.LOG_LEVEL,
};

let active: Tracing | undefined;

/** The running tracing, or undefined when it is off: every caller skips its spans then. */
export const tracing = (): Tracing | undefined => active;

/**
 * Starts tracing for `service` (OTEL_SERVICE_NAME overrides the name) when an OTLP endpoint is
 * configured; otherwise does nothing and loads nothing. Call it before the modules that load
 * the AWS SDK are imported: the instrumentation hooks it as it loads (see `main`).
 */
export async function startTracing(service: string, environment: Readonly<Record<string, string | undefined>> = process.env): Promise<void> {
  const config = loadConfig(tracingEnv, environment);
  const endpoint = config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? config.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (active || endpoint === undefined || config.OTEL_SDK_DISABLED) return;
  const { startSdk } = await import('./tracing-sdk.js');
  active = startSdk(config.OTEL_SERVICE_NAME ?? service, config.LOG_LEVEL);
}

/**
 * Exports what is buffered and stops tracing (runService's shutdown); nothing when it is off. Best
 * effort, for at most `timeoutMs`: an unreachable collector (the SDK logs why) must not hold the exit.
 */
export async function stopTracing(timeoutMs = 2000): Promise<void> {
  const stopping = active;
  active = undefined;
  if (!stopping) return;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
  await Promise.race([stopping.shutdown().catch(() => undefined), deadline]);
  clearTimeout(timer);
}

/** The trace context of an HTTP request: its `traceparent`/`tracestate`, else a binary-mode event's `ce-` ones. */
export function requestTrace(header: (name: string) => string | undefined): TraceContext | undefined {
  for (const prefix of ['', 'ce-']) {
    const traceparent = header(`${prefix}traceparent`);
    if (traceparent) return { traceparent, tracestate: header(`${prefix}tracestate`) };
  }
  return undefined;
}

/** Log fields naming the trace: the span's ids with tracing on, else the caller's `traceparent` as received. */
export function traceLogFields(span: ActiveSpan | undefined, received: TraceContext | undefined): Record<string, string> {
  if (span) return span.logFields;
  return received ? { traceparent: received.traceparent } : {};
}
