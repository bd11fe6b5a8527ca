/**
 * Long-polls the SQS queue S3 notifies (directly or through SNS). A message is deleted only once
 * its handler says every event in it reached the sink; any other message becomes visible again
 * after the visibility timeout and is redelivered (or moved to the queue's dead-letter queue by
 * its redrive policy). Duplicates are harmless: event ids are deterministic.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '@avatar-pipeline/kit';

export interface SqsPollerOptions {
  client: Pick<SQSClient, 'send'>;
  queueUrl: string;
  visibilityTimeoutSeconds: number;
  /** Handles one message body; resolves true when the message may be deleted. */
  handle: (body: string, log: Logger) => Promise<boolean>;
  logger: Logger;
  /** Wait after a failed receive: doubles from `minMs` up to `maxMs` (defaults 1 s and 30 s). */
  backoff?: { minMs: number; maxMs: number };
}

/** SQS limits: 20 s is the longest long poll, 10 the largest batch. */
const WAIT_TIME_SECONDS = 20;
const MAX_MESSAGES = 10;

export class SqsPoller {
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private lastError: Error | undefined;
  private readonly log: Logger;

  constructor(private readonly options: SqsPollerOptions) {
    this.log = options.logger.child({ queueUrl: options.queueUrl });
  }

  start(): void {
    if (this.loop) return;
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal);
  }

  /** Aborts the long poll and waits for the batch in hand to be delivered and deleted. */
  async close(): Promise<void> {
    this.controller?.abort();
    await this.loop;
  }

  /** Readiness: fails while the poller is not running or while receiving fails. */
  async check(): Promise<void> {
    if (!this.loop || this.controller?.signal.aborted) throw new Error('SQS poller is not running');
    if (this.lastError) throw new Error(`receiving from SQS fails: ${this.lastError.message}`);
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { minMs, maxMs } = this.options.backoff ?? { minMs: 1000, maxMs: 30_000 };
    let failures = 0;
    this.log.info('polling SQS');
    while (!signal.aborted) {
      let messages: Message[];
      try {
        const received = await this.options.client.send(
          new ReceiveMessageCommand({
            QueueUrl: this.options.queueUrl,
            WaitTimeSeconds: WAIT_TIME_SECONDS,
            MaxNumberOfMessages: MAX_MESSAGES,
            VisibilityTimeout: this.options.visibilityTimeoutSeconds,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: signal },
        );
        messages = received.Messages ?? [];
        failures = 0;
        this.lastError = undefined;
      } catch (err) {
        if (signal.aborted) break;
        failures += 1;
        this.lastError = err as Error;
        const delayMs = Math.min(maxMs, minMs * 2 ** (failures - 1));
        this.log.warn({ err: (err as Error).message, failures, retryInMs: delayMs }, 'receiving from SQS failed');
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
        continue;
      }
      if (messages.length > 0) await this.process(messages);
    }
    this.log.info('stopped polling SQS');
  }

  private async process(messages: Message[]): Promise<void> {
    const done = await Promise.all(messages.map((message) => this.handle(message)));
    const entries = messages
      .filter((message, i) => done[i] && message.ReceiptHandle)
      .map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle }));
    if (entries.length === 0) return;
    try {
      const { Failed = [] } = await this.options.client.send(new DeleteMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries: entries }));
      for (const failure of Failed) this.log.warn({ code: failure.Code, problem: failure.Message }, 'could not delete a delivered message; it will be redelivered');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, count: entries.length }, 'could not delete delivered messages; they will be redelivered');
    }
  }

  private async handle(message: Message): Promise<boolean> {
    const log = this.log.child({ sqsMessageId: message.MessageId, receiveCount: message.Attributes?.ApproximateReceiveCount });
    try {
      return await this.options.handle(message.Body ?? '', log);
    } catch (err) {
      log.error({ err }, 'handling an SQS message failed; it will be redelivered');
      return false;
    }
  }
}
