/** An S3-compatible server (s3rver) with the avatar bucket, for the local stack and tests. */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import S3rver from '@20minutes/s3rver';
import { DeleteBucketCorsCommand, PutBucketCorsCommand } from '@aws-sdk/client-s3';
import { s3Client } from '@avatar-pipeline/kit/aws';
import type { BucketCorsRule } from '@avatar-pipeline/kit/cors';

/** s3rver's built-in account; the local stand-ins accept it (dynalite accepts any). */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3ServerOptions {
  /** Where objects are kept; survives restarts. */
  directory: string;
  port?: number;
  buckets: readonly string[];
  /** Called with every S3 event record batch ({ Records: [...] }) the server emits. */
  onEvent?: (notification: { Records: unknown[] }) => void;
  /**
   * The buckets' CORS rules, set with PutBucketCors as on S3 (none: DeleteBucketCors, as the
   * server keeps a bucket's configuration with its data).
   */
  cors?: readonly BucketCorsRule[];
}

export interface S3Server {
  endpoint: string;
  port: number;
  /** Stops listening; `dropConnections` also cuts every open connection at once, as a crash would. */
  close(options?: { dropConnections?: boolean }): Promise<void>;
}

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  await mkdir(options.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    directory: options.directory,
    silent: true,
    // Path-style only: clients reach it by IP, not by bucket subdomain.
    vhostBuckets: false,
    configureBuckets: options.buckets.map((name) => ({ name, configs: [] })),
  });
  if (options.onEvent) server.on('event', options.onEvent);
  const address = (await server.run()) as AddressInfo;
  const endpoint = `http://127.0.0.1:${address.port}`;
  if (options.cors) await configureCors(endpoint, options.buckets, options.cors);
  return {
    endpoint,
    port: address.port,
    close: (closing) => {
      const done = server.close();
      if (closing?.dropConnections) server.httpServer?.closeAllConnections();
      return done;
    },
  };
}

/** Sets (or, with no rules, removes) each bucket's CORS configuration through the S3 API. */
async function configureCors(endpoint: string, buckets: readonly string[], rules: readonly BucketCorsRule[]): Promise<void> {
  const s3 = s3Client({ region: 'us-east-1', s3Endpoint: endpoint, credentials: LOCAL_CREDENTIALS });
  try {
    for (const bucket of buckets) {
      if (rules.length > 0) await s3.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: rules.map((rule) => ({ ...rule })) } }));
      else await s3.send(new DeleteBucketCorsCommand({ Bucket: bucket }));
    }
  } finally {
    s3.destroy();
  }
}
