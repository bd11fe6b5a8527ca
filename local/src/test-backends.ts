/**
 * What the test suites start from: dynalite with the pipeline's table and s3rver with its bucket
 * (the local stack's stand-ins, on free ports, in a temporary directory), with clients for both;
 * and, for the end-to-end suites, a check that the services they run are built. Never loaded by
 * the local stack itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import type { ServiceName } from '@avatar-pipeline/kit/topology';
import { startDynamoServer, type DynamoServer } from './stand-ins/dynamo.js';
import { LOCAL_CREDENTIALS, startS3Server, type S3Server, type S3ServerOptions } from './stand-ins/s3.js';
import { LOCAL_BUCKET, LOCAL_TABLE } from './supervision/service-env.js';
import { builtServices, repoRoot } from './stack.js';

/** The table the tests' dynalite holds: the pipeline's, as in the local stack. */
export const TABLE = LOCAL_TABLE;
/** The bucket the tests' s3rver holds: the pipeline's, as in the local stack. */
export const BUCKET = LOCAL_BUCKET;

export interface TestBackendOptions {
  /** Prefix of the temporary directory's name (default `ap-test-`). */
  prefix?: string;
  /** dynalite's table (default TABLE); false: no dynalite. */
  dynamo?: false | { table?: string };
  /** s3rver's buckets (default [BUCKET]), event listener and CORS rules; false: no s3rver. */
  s3?: false | Partial<Omit<S3ServerOptions, 'directory' | 'port'>>;
}

interface Common {
  /** A temporary directory for the test's own files too; close() removes it. */
  dir: string;
  /** Closes the clients and servers and removes `dir`. */
  close(): Promise<void>;
}

export interface DynamoBackend extends Common {
  dynamoServer: DynamoServer;
  /** A document client on dynalite (local credentials). */
  doc: ReturnType<typeof dynamoDocumentClient>;
  /** The table dynalite holds. */
  table: string;
}

export interface S3Backend extends Common {
  s3Server: S3Server;
  /** A client on s3rver (local credentials, path-style). */
  s3: S3Client;
  /** Where s3rver keeps its objects (`<s3Directory>/<bucket>/<key>._S3rver_object`). */
  s3Directory: string;
}

export type TestBackends = DynamoBackend & S3Backend;

/**
 * Starts dynalite (table created, with its indexes) and s3rver (buckets created), each on a free
 * port, or only one of them (`s3: false`, `dynamo: false`).
 */
export function startTestBackends(options: TestBackendOptions & { s3: false }): Promise<DynamoBackend>;
export function startTestBackends(options: TestBackendOptions & { dynamo: false }): Promise<S3Backend>;
export function startTestBackends(options?: TestBackendOptions): Promise<TestBackends>;
export async function startTestBackends(options: TestBackendOptions = {}): Promise<Partial<TestBackends> & Common> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix ?? 'ap-test-'));
  // Undone in reverse by close(), or at once if start-up fails half way.
  const undo: (() => unknown)[] = [() => rm(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const step of undo.splice(0).reverse()) await step();
  };
  try {
    const backends: Partial<TestBackends> & Common = { dir, close };
    if (options.dynamo !== false) {
      const table = options.dynamo?.table ?? TABLE;
      const dynamoServer = await startDynamoServer({ table });
      undo.push(() => dynamoServer.close());
      const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: dynamoServer.endpoint, credentials: LOCAL_CREDENTIALS });
      undo.push(() => doc.destroy());
      Object.assign(backends, { dynamoServer, doc, table });
    }
    if (options.s3 !== false) {
      const s3Directory = join(dir, 's3');
      const s3Server = await startS3Server({ ...options.s3, buckets: options.s3?.buckets ?? [BUCKET], directory: s3Directory });
      undo.push(() => s3Server.close());
      const s3 = s3Client({ region: 'us-east-1', s3Endpoint: s3Server.endpoint, credentials: LOCAL_CREDENTIALS });
      undo.push(() => s3.destroy());
      Object.assign(backends, { s3Server, s3, s3Directory });
    }
    return backends;
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Throws, naming the build step, unless every one of `services` is built: an end-to-end suite
 * calls it before starting the stack, so it fails with the reason instead of skipping.
 */
export function requireBuilt(services: readonly ServiceName[], root = repoRoot): void {
  const built = builtServices(root);
  const missing = services.filter((name) => !built.includes(name));
  if (missing.length > 0) throw new Error(`services not built (${missing.join(', ')}): run npx tsc -b`);
}
