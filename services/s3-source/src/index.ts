export { createS3Source, type S3Source, type S3SourceDeps } from './app.js';
export { s3SourceEnv, webhookMode, type S3SourceConfig, type WebhookMode } from './config.js';
export { decodeS3Key, mapNotification, type MappingOptions, type MappingResult, type SkipReason } from './mapping.js';
export { SqsPoller, type SqsPollerOptions } from './sqs.js';
