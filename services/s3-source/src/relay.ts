/**
 * From notification to sink: maps a notification and posts its events to K_SINK with bounded
 * concurrency (shared by every input) and a few quick retries. The broker retries downstream,
 * and the caller (MinIO, SQS) redelivers the whole notification when any event was not accepted.
 */
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { Counter, type Registry } from 'prom-client';
import { sendEvent, type OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import { parseUploadKey } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { zeroed } from '@avatar-pipeline/kit/metrics';
import type { TraceContext } from '@avatar-pipeline/kit/tracing';
import { mapNotification, type MappingOptions, type SkipReason } from './mapping.js';

export type Input = 'webhook' | 'sqs';

export type RelayOutcome =
  | { ok: true; emitted: number; skipped: number; failed: number }
  | { ok: false; problem: string };

export interface RelayOptions {
  sink: string;
  mapping: MappingOptions;
  registry: Registry;
  /** Events in flight to the sink at once, across all inputs (default 16). */
  concurrency?: number;
  /** Retries after the first attempt (default 2). */
  retries?: number;
  /** First retry delay; doubles, with jitter (default 100 ms). */
  retryDelayMs?: number;
  fetch?: typeof fetch;
  /** The OIDC token the broker requires (K_SINK_OIDC_TOKEN_FILE). */
  sinkTokenFile?: string | undefined;
  /**
   * With tracing on: the trace presign recorded with an upload (UploadStore.trace), which its event
   * continues. A lookup that fails or is slow only costs the link, never the event.
   */
  uploadTrace?: ((playerId: string, uploadId: string, signal: AbortSignal) => Promise<TraceContext | undefined>) | undefined;
}

const TRACE_LOOKUP_MS = 1000;

/**
 * Relays one notification body (JSON text, as MinIO posts it and SQS holds it). When `signal`
 * aborts (shutdown, or the SQS message about to become visible again), deliveries still pending
 * stop and count as failed: the notification is redelivered and nothing is lost.
 */
export type Relay = (body: string, input: Input, log: Logger, signal?: AbortSignal) => Promise<RelayOutcome>;

const skipReasons: readonly SkipReason[] = ['test_event', 'not_object_created', 'outside_uploads', 'undecodable_key'];

export function createRelay(options: RelayOptions): Relay {
  const registers = [options.registry];
  const emitted = zeroed(
    new Counter({
      name: 'avatarpipeline_s3source_events_emitted_total',
      help: 'CloudEvents accepted by the sink, by input',
      labelNames: ['input'],
      registers,
    }),
    (['webhook', 'sqs'] satisfies Input[]).map((input) => ({ input })),
  );
  const skipped = zeroed(
    new Counter({
      name: 'avatarpipeline_s3source_records_skipped_total',
      help: 'Notification records (or S3 test events) that produce no event, by reason',
      labelNames: ['reason'],
      registers,
    }),
    skipReasons.map((reason) => ({ reason })),
  );
  const sinkFailures = new Counter({
    name: 'avatarpipeline_s3source_sink_failures_total',
    help: 'Events the sink did not accept after retries (their notification is redelivered)',
    registers,
  });

  const limit = pLimit(options.concurrency ?? 16);
  const retry = { retries: options.retries ?? 2, minTimeout: options.retryDelayMs ?? 100, factor: 2, randomize: true };
  const baseFetch = options.fetch ?? fetch;
  /** The sink's fetch, also cut short by `signal`. */
  const fetchUntil =
    (signal: AbortSignal | undefined): typeof fetch =>
    (input, init) =>
      baseFetch(input, signal ? { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal } : init);

  const withUploadTrace = async (event: OutgoingEvent, log: Logger): Promise<OutgoingEvent> => {
    const { uploadTrace } = options;
    const upload = uploadTrace && event.subject !== undefined ? parseUploadKey(event.subject) : undefined;
    if (!uploadTrace || !upload) return event;
    try {
      const trace = await uploadTrace(upload.playerId, upload.uploadId, AbortSignal.timeout(TRACE_LOOKUP_MS));
      return trace ? { ...event, ...trace } : event;
    } catch (err) {
      log.warn({ err: (err as Error).message }, "the upload's trace could not be read; its event starts a new one");
      return event;
    }
  };

  const deliver = (mapped: OutgoingEvent, input: Input, log: Logger, signal: AbortSignal | undefined) =>
    limit(async () => {
      const eventLog = log.child({ ceId: mapped.id, ceType: mapped.type, subject: mapped.subject });
      if (signal?.aborted) {
        eventLog.info({ input }, 'delivery abandoned before it started; the notification will be redelivered');
        return false;
      }
      const event = await withUploadTrace(mapped, eventLog);
      try {
        await pRetry(() => sendEvent(options.sink, event, { fetch: fetchUntil(signal), tokenFile: options.sinkTokenFile }), {
          ...retry,
          ...(signal ? { signal } : {}),
          onFailedAttempt: ({ error, attemptNumber }) => eventLog.debug({ attempt: attemptNumber, err: error.message }, 'sink attempt failed'),
        });
        emitted.inc({ input });
        eventLog.info({ input }, 'event emitted');
        return true;
      } catch (err) {
        if (signal?.aborted) {
          // Not the sink's fault: we stopped waiting (shutdown or visibility deadline).
          eventLog.info({ input, err: (err as Error).message }, 'delivery abandoned; the notification will be redelivered');
          return false;
        }
        sinkFailures.inc();
        eventLog.warn({ input, err: (err as Error).message }, 'sink did not accept the event');
        return false;
      }
    });

  return async (body, input, log, signal) => {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return { ok: false, problem: 'the body is not JSON' };
    }
    const mapped = mapNotification(json, options.mapping);
    if (!mapped.ok) return mapped;
    for (const reason of mapped.skipped) skipped.inc({ reason });
    const delivered = await Promise.all(mapped.events.map((event) => deliver(event, input, log, signal)));
    const failed = delivered.filter((ok) => !ok).length;
    return { ok: true, emitted: delivered.length - failed, skipped: mapped.skipped.length, failed };
  };
}
