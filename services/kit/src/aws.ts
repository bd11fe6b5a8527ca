/** AWS SDK v3 client factories that honour endpoint overrides for local and in-cluster stand-ins. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface AwsOptions {
  region: string;
  /** Override for S3-compatible servers (s3rver, MinIO); implies path-style addressing. */
  s3Endpoint?: string | undefined;
  dynamodbEndpoint?: string | undefined;
}

/** Common constructor options: region, endpoint, bounded retries. */
export function clientOptions(region: string, endpoint?: string) {
  return { region, maxAttempts: 3, ...(endpoint ? { endpoint } : {}) };
}

export function s3Client(options: AwsOptions): S3Client {
  return new S3Client({
    ...clientOptions(options.region, options.s3Endpoint),
    forcePathStyle: Boolean(options.s3Endpoint),
    // Local S3 stand-ins do not speak the newer checksum defaults.
    ...(options.s3Endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
  });
}

export function dynamoDocumentClient(options: AwsOptions): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient(clientOptions(options.region, options.dynamodbEndpoint)), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/** Reads the shared AWS settings from a parsed config (see `awsEnv`). */
export function awsOptions(config: { AWS_REGION: string; AWS_ENDPOINT_URL_S3?: string | undefined; AWS_ENDPOINT_URL_DYNAMODB?: string | undefined }): AwsOptions {
  return { region: config.AWS_REGION, s3Endpoint: config.AWS_ENDPOINT_URL_S3, dynamodbEndpoint: config.AWS_ENDPOINT_URL_DYNAMODB };
}
