/**
 * Long-polls the SQS queue S3 notifies (directly or through SNS). A message is deleted only once
 * its handler says every event in it reached the sink; any other message becomes visible again
 * after the visibility timeout and is redelivered (or moved to the queue's dead-letter queue by
 * its redrive policy). Duplicates are harmless: event ids are deterministic.
 *
 * Every wait is bounded, so the loop cannot hang: a receive longer than the long poll plus a
 * margin counts as a failed receive, a message still being handled shortly before it becomes
 * visible again is given up (left for redelivery), and a delete has a few seconds. `close` stops
 * receiving at once and gives the batch in hand until the grace period is nearly over.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Registry } from 'prom-client';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { zeroed } from '@avatar-pipeline/kit/metrics';

/** A received message, as the poller handles it. */
export interface QueueMessage {
  id: string | undefined;
  /** What deletes this receipt of the message (SQS's receipt handle). */
  receipt: string | undefined;
  body: string | undefined;
  /** How often the message was received, this time included (for the logs). */
  receiveCount: string | undefined;
}

/** A message the queue did not delete, and why. */
export interface DeleteFailure {
  code: string | undefined;
  message: string | undefined;
}

/**
 * The queue through the two calls the poller makes: the SQS client start.ts builds (`sqsQueue`,
 * sqs-queue.ts), or a fake in tests. Both stop when `signal` aborts.
 */
export interface SqsQueue {
  /** Up to a batch of messages, waiting at most `waitSeconds` for one; each hidden from other receives for `visibilityTimeoutSeconds`. */
  receive(request: { waitSeconds: number; visibilityTimeoutSeconds: number }, signal: AbortSignal): Promise<QueueMessage[]>;
  /** Deletes messages by their receipts; resolves with the ones the queue could not delete. */
  delete(receipts: string[], signal: AbortSignal): Promise<DeleteFailure[]>;
}

export interface SqsPollerOptions {
  queue: SqsQueue;
  /** The queue's URL, for the logs. */
  queueUrl: string;
  visibilityTimeoutSeconds: number;
  /**
   * Handles one message body; resolves true when the message may be deleted. Should stop when
   * `signal` aborts (shutdown, or the message about to become visible again): its answer no longer
   * counts then, and the message is left for redelivery.
   */
  handle: (body: string, log: Logger, signal: AbortSignal) => Promise<boolean>;
  logger: Logger;
  /** Where the poller's counters go (default: a registry of its own). */
  registry?: Registry;
  /** Wait after a failed receive: doubles from `minMs` up to `maxMs` (defaults 1 s and 30 s). */
  backoff?: { minMs: number; maxMs: number };
  /** Bounds on each SQS call (tests shorten them); defaults: receive 30 s, delete 5 s. */
  timeouts?: { receiveMs?: number; deleteMs?: number };
}

/** SQS's longest long poll. */
const WAIT_TIME_SECONDS = 20;
/** A long poll answers within WaitTimeSeconds: one taking 10 s longer is hung. */
const RECEIVE_TIMEOUT_MS = (WAIT_TIME_SECONDS + 10) * 1000;
const DELETE_TIMEOUT_MS = 5000;

type State = 'idle' | 'running' | 'stopping' | 'stopped';

/** Rejects with the signal's reason once it aborts, whatever the promise does. */
function until<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * A signal that aborts after `ms`, or with `parent`; `dispose` clears the timer and unhooks it
 * from `parent` (which lives as long as the poller, so per-call listeners must not pile up on it).
 */
function deadline(ms: number, parent?: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${ms} ms`)), ms);
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}

export class SqsPoller {
  private state: State = 'idle';
  /** Aborted by `close`: no receive starts after it, and the one under way is cut. */
  private readonly receiving = new AbortController();
  /** Aborted when the grace period is nearly over: handling stops, finished messages are still deleted. */
  private readonly handling = new AbortController();
  private loop: Promise<void> | undefined;
  /** Why the poller is not ready, or undefined once a receive succeeded (until one fails). */
  private problem: string | undefined = 'no receive from SQS has succeeded yet';
  private readonly log: Logger;
  private readonly receiveTimeoutMs: number;
  private readonly deleteTimeoutMs: number;
  /** How long a batch may be handled: a little less than the visibility timeout, leaving time to delete. */
  private readonly handleWithinMs: number;
  private readonly messages: Counter<'outcome'>;
  private readonly receiveFailures: Counter;

  constructor(private readonly options: SqsPollerOptions) {
    this.log = options.logger.child({ queueUrl: options.queueUrl });
    this.receiveTimeoutMs = options.timeouts?.receiveMs ?? RECEIVE_TIMEOUT_MS;
    this.deleteTimeoutMs = options.timeouts?.deleteMs ?? DELETE_TIMEOUT_MS;
    const visibilityMs = options.visibilityTimeoutSeconds * 1000;
    this.handleWithinMs = visibilityMs - Math.min(this.deleteTimeoutMs, visibilityMs / 4);
    const registers = [options.registry ?? new Registry()];
    this.messages = zeroed(
      new Counter({
        name: 'avatarpipeline_s3source_sqs_messages_total',
        help: 'SQS messages received, by outcome: deleted (every event reached the sink) or left (redelivered after the visibility timeout)',
        labelNames: ['outcome'],
        registers,
      }),
      ['deleted', 'left'].map((outcome) => ({ outcome })),
    );
    this.receiveFailures = new Counter({
      name: 'avatarpipeline_s3source_sqs_receive_failures_total',
      help: 'ReceiveMessage calls that failed or timed out',
      registers,
    });
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.loop = this.run().then(
      () => {
        this.state = 'stopped';
      },
      (err: unknown) => {
        this.state = 'stopped';
        this.log.error({ err }, 'the SQS poller stopped unexpectedly');
      },
    );
  }

  /**
   * Stops receiving now (the long poll under way is aborted) and waits for the batch in hand:
   * it is delivered and its delivered messages deleted. A batch still being handled when only
   * the delete time (5 s, at most a quarter of `graceMs`) is left is given up: what reached the
   * sink is deleted, the rest left for redelivery. Resolves within `graceMs`, whatever happens.
   */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.state === 'idle') this.state = 'stopped';
    if (this.state === 'running') this.state = 'stopping';
    this.receiving.abort(new Error('the SQS poller is stopping'));
    if (!this.loop) return;
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number) => new Promise<'timeout'>((resolve) => Number.isFinite(ms) && timers.push(setTimeout(() => resolve('timeout'), Math.max(0, ms))));
    try {
      // The end of the grace period is kept for deleting what was delivered.
      const reserveMs = Math.min(this.deleteTimeoutMs, graceMs / 4);
      const ended = this.loop.then(() => 'ended' as const);
      if ((await Promise.race([ended, after(graceMs - reserveMs)])) === 'ended') return;
      this.log.warn({ graceMs }, 'grace period nearly over: giving up the messages still being handled (they will be redelivered)');
      this.handling.abort(new Error('the grace period is over'));
      if ((await Promise.race([ended, after(reserveMs)])) === 'timeout') this.log.error('the SQS poller did not stop within the grace period');
    } finally {
      for (const timer of timers) clearTimeout(timer);
    }
  }

  /**
   * Readiness: fails unless the poller is running and its last receive succeeded (so a rollout
   * with a wrong queue URL or role never becomes ready). The first receive, and the first after
   * a failure, is a short poll: readiness follows within a moment, not after a 20 s long poll.
   */
  async check(): Promise<void> {
    if (this.state === 'idle') throw new Error('SQS poller not started');
    if (this.state !== 'running') throw new Error(`SQS poller ${this.state}`);
    if (this.problem) throw new Error(this.problem);
  }

  private async run(): Promise<void> {
    const { minMs, maxMs } = this.options.backoff ?? { minMs: 1000, maxMs: 30_000 };
    const stop = this.receiving.signal;
    let failures = 0;
    this.log.info('polling SQS');
    while (!stop.aborted) {
      let messages: QueueMessage[];
      const call = deadline(this.receiveTimeoutMs, stop);
      try {
        messages = await until(
          this.options.queue.receive({ waitSeconds: this.problem ? 0 : WAIT_TIME_SECONDS, visibilityTimeoutSeconds: this.options.visibilityTimeoutSeconds }, call.signal),
          call.signal,
        );
        failures = 0;
        this.problem = undefined;
      } catch (err) {
        if (stop.aborted) break;
        failures += 1;
        this.problem = `receiving from SQS fails: ${(err as Error).message}`;
        this.receiveFailures.inc();
        const delayMs = Math.min(maxMs, minMs * 2 ** (failures - 1));
        this.log.warn({ err: (err as Error).message, failures, retryInMs: delayMs }, 'receiving from SQS failed');
        await sleep(delayMs, undefined, { signal: stop }).catch(() => undefined);
        continue;
      } finally {
        call.dispose();
      }
      // Once received, a batch is finished even when a stop comes meanwhile: see `close`.
      if (messages.length > 0) {
        await this.process(messages).catch((err: unknown) => this.log.error({ err }, 'handling a batch failed; its messages will be redelivered'));
      }
    }
    this.log.info('stopped polling SQS');
  }

  private async process(messages: QueueMessage[]): Promise<void> {
    const handling = deadline(this.handleWithinMs, this.handling.signal);
    const done = await Promise.all(messages.map((message) => this.handle(message, handling.signal))).finally(handling.dispose);
    const receipts = messages.flatMap((message, i) => (done[i] && message.receipt ? [message.receipt] : []));
    let deleted = 0;
    if (receipts.length > 0) {
      try {
        const call = deadline(this.deleteTimeoutMs);
        const failed = await until(this.options.queue.delete(receipts, call.signal), call.signal).finally(call.dispose);
        for (const failure of failed) this.log.warn({ code: failure.code, problem: failure.message }, 'could not delete a delivered message; it will be redelivered');
        deleted = receipts.length - failed.length;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, count: receipts.length }, 'could not delete delivered messages; they will be redelivered');
      }
    }
    this.messages.inc({ outcome: 'deleted' }, deleted);
    this.messages.inc({ outcome: 'left' }, messages.length - deleted);
  }

  private async handle(message: QueueMessage, signal: AbortSignal): Promise<boolean> {
    const log = this.log.child({ sqsMessageId: message.id, receiveCount: message.receiveCount });
    try {
      return await until(this.options.handle(message.body ?? '', log, signal), signal);
    } catch (err) {
      if (signal.aborted) log.warn({ reason: (signal.reason as Error | undefined)?.message }, 'stopped handling an SQS message; it will be redelivered');
      else log.error({ err }, 'handling an SQS message failed; it will be redelivered');
      return false;
    }
  }
}
