/**
 * The OpenTelemetry SDK behind tracing.ts, loaded only when an OTLP endpoint is configured. The
 * SDK reads the standard OTEL_* variables (exporter protocol, sampler, batch delays, resource
 * attributes); this adds the service's name, the AWS SDK and undici (fetch) instrumentations, and
 * leaves metrics (Prometheus) and logs (JSON on stdout) as they are: traces only.
 *
 * Trace context on events and records is W3C `traceparent`/`tracestate` whatever OTEL_PROPAGATORS
 * says: the CloudEvents distributed tracing extension is defined so.
 */
import { format } from 'node:util';
import {
  DiagLogLevel,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  diag,
  isSpanContextValid,
  trace,
  type Context,
  type DiagLogFunction,
  type Link,
  type SpanContext,
} from '@opentelemetry/api';
import { AwsInstrumentation } from '@opentelemetry/instrumentation-aws-sdk';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { startNodeSdk } from '@opentelemetry/sdk-node';
import { createLogger } from './logger.js';
import type { ActiveSpan, SpanKind as Kind, SpanSpec, TraceContext, Tracing } from './tracing.js';

const kinds: Record<Kind, SpanKind> = { server: SpanKind.SERVER, consumer: SpanKind.CONSUMER, producer: SpanKind.PRODUCER };

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A W3C `traceparent` (and `tracestate`) as a remote span context; undefined when malformed. */
export function parseTraceContext(carrier: TraceContext): SpanContext | undefined {
  const match = TRACEPARENT.exec(carrier.traceparent.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  // Version ff is invalid; version 00 has nothing after the flags.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext: SpanContext = {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: parseInt(flags!, 16),
    isRemote: true,
    ...(carrier.tracestate ? { traceState: createTraceState(carrier.tracestate) } : {}),
  };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}

export function formatTraceContext(spanContext: SpanContext): TraceContext {
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
  const tracestate = spanContext.traceState?.serialize();
  return { traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`, ...(tracestate ? { tracestate } : {}) };
}

/** The SDK's own warnings (an unreachable collector, say) as JSON log lines, like everything else the service says. */
function diagnosticsTo(service: string, level: string): void {
  const log = createLogger(service, level).child({ component: 'opentelemetry' });
  const at =
    (method: 'error' | 'warn' | 'info' | 'debug' | 'trace'): DiagLogFunction =>
    (message, ...args) =>
      log[method](format(message, ...args));
  diag.setLogger(
    { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), verbose: at('trace') },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}

export function startSdk(service: string, logLevel: string): Tracing {
  const sdk = startNodeSdk({ logLevel: 'warn', resourceAttributes: { 'service.name': service }, metricReaders: [], logRecordProcessors: [] });
  diagnosticsTo(service, logLevel);
  // Made once the SDK and its logger are up: each enables itself, hooking the AWS SDK's modules
  // as they load (a module loaded earlier stays uninstrumented: see `main`).
  const instrumentations = [new AwsInstrumentation(), new UndiciInstrumentation()];
  const tracer = trace.getTracer('@avatar-pipeline/kit');

  const startSpan = (spec: SpanSpec): ActiveSpan => {
    const active = context.active();
    const activeSpan = trace.getSpanContext(active);
    const remote = spec.parent && parseTraceContext(spec.parent);
    let parent: Context = active;
    const links: Link[] = [];
    if (remote && remote.traceId !== activeSpan?.traceId) {
      parent = trace.setSpanContext(active, remote);
      if (activeSpan && isSpanContextValid(activeSpan)) links.push({ context: activeSpan });
    }
    const span = tracer.startSpan(spec.name, { kind: kinds[spec.kind], links, ...(spec.attributes ? { attributes: { ...spec.attributes } } : {}) }, parent);
    const withSpan = trace.setSpan(parent, span);
    const spanContext = span.spanContext();
    return {
      context: formatTraceContext(spanContext),
      logFields: { trace_id: spanContext.traceId, span_id: spanContext.spanId },
      run: (work) => context.with(withSpan, work),
      rename: (name) => span.updateName(name),
      setAttributes: (attributes) => span.setAttributes({ ...attributes }),
      end: (problem) => {
        if (problem !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: problem });
        span.end();
      },
    };
  };

  return {
    startSpan,
    current: () => {
      const spanContext = trace.getSpanContext(context.active());
      return spanContext && isSpanContextValid(spanContext) ? formatTraceContext(spanContext) : undefined;
    },
    shutdown: async () => {
      await sdk.shutdown();
      for (const instrumentation of instrumentations) instrumentation.disable();
    },
  };
}
