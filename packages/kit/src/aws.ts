/** AWS SDK v3 client factories that honour endpoint overrides for local and in-cluster stand-ins. */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentSdk, dynamoSdk, s3Sdk } from './sdk.js';

export interface AwsOptions {
  region: string;
  /** Override for S3-compatible servers (s3rver, MinIO); implies path-style addressing. */
  s3Endpoint?: string | undefined;
  dynamodbEndpoint?: string | undefined;
  /** Fixed credentials (the local stand-ins' dummy account); default: the SDK's provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
}

/** Common constructor options: region, endpoint, bounded retries. */
export function clientOptions(region: string, endpoint?: string, credentials?: AwsOptions['credentials']) {
  return { region, maxAttempts: 3, ...(endpoint ? { endpoint } : {}), ...(credentials ? { credentials } : {}) };
}

export function s3Client(options: AwsOptions): S3Client {
  const { S3Client } = s3Sdk();
  const client = new S3Client({
    ...clientOptions(options.region, options.s3Endpoint, options.credentials),
    forcePathStyle: Boolean(options.s3Endpoint),
    // Local S3 stand-ins do not speak the newer checksum defaults.
    ...(options.s3Endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
  if (options.s3Endpoint) {
    // Path-style bucket requests go out as `/<bucket>/`, but s3rver signs `/<bucket>`, so every
    // bucket-level call (HeadBucket, ListObjectsV2, CreateBucket) fails with SignatureDoesNotMatch.
    // Dropping the slash before signing is equivalent for S3-compatible servers.
    client.middlewareStack.add(
      (next) => (args) => {
        const request = args.request as { path?: unknown };
        if (typeof request.path === 'string' && /^\/[^/]+\/$/.test(request.path)) request.path = request.path.slice(0, -1);
        return next(args);
      },
      { step: 'build', name: 'bucketPathWithoutTrailingSlash' },
    );
  }
  return client;
}

export function dynamoDocumentClient(options: AwsOptions): DynamoDBDocumentClient {
  const { DynamoDBClient } = dynamoSdk();
  const { DynamoDBDocumentClient } = documentSdk();
  return DynamoDBDocumentClient.from(new DynamoDBClient(clientOptions(options.region, options.dynamodbEndpoint, options.credentials)), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/** Reads the shared AWS settings from a parsed config (see `awsEnv`). */
export function awsOptions(config: { AWS_REGION: string; AWS_ENDPOINT_URL_S3?: string | undefined; AWS_ENDPOINT_URL_DYNAMODB?: string | undefined }): AwsOptions {
  return { region: config.AWS_REGION, s3Endpoint: config.AWS_ENDPOINT_URL_S3, dynamodbEndpoint: config.AWS_ENDPOINT_URL_DYNAMODB };
}
