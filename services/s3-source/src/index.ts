export { createS3SourceService, type S3Source, type S3SourceDeps } from './app.js';
export { inputMode, loadS3SourceConfig, s3SourceEnv, type InputMode, type S3SourceConfig } from './config.js';
export { decodeS3Key, mapNotification, type MappingOptions, type MappingResult, type SkipReason } from './mapping.js';
export { SqsPoller, type DeleteFailure, type QueueMessage, type SqsPollerOptions, type SqsQueue } from './sqs.js';
