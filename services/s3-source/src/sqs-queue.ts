/**
 * The poller's `SqsQueue` over an SQS client: the queue S3 notifies (directly or through SNS).
 * Imported by start.ts in SQS mode only: the webhook mode never loads the SQS SDK.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SqsQueue } from './sqs.js';

/** SQS's largest batch. */
const MAX_MESSAGES = 10;

export function sqsQueue(client: Pick<SQSClient, 'send'>, queueUrl: string): SqsQueue {
  return {
    async receive({ waitSeconds, visibilityTimeoutSeconds }, signal) {
      const { Messages = [] } = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          WaitTimeSeconds: waitSeconds,
          MaxNumberOfMessages: MAX_MESSAGES,
          VisibilityTimeout: visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        }),
        { abortSignal: signal },
      );
      return Messages.map((m) => ({ id: m.MessageId, receipt: m.ReceiptHandle, body: m.Body, receiveCount: m.Attributes?.ApproximateReceiveCount }));
    },
    async delete(receipts, signal) {
      const entries = receipts.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle }));
      const { Failed = [] } = await client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }), { abortSignal: signal });
      return Failed.map((failure) => ({ code: failure.Code, message: failure.Message }));
    },
  };
}
