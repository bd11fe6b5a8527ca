/**
 * The AWS SDK clients and the CloudEvents library, loaded when a service first uses them instead
 * of when it imports the kit. Each is a large module graph and no service needs all of them:
 * s3-source uses neither S3 nor DynamoDB, subscribe and push no S3, presign and subscribe no
 * CloudEvents (@aws-sdk/client-s3 alone adds 2-7 MB to a process and 60-100 ms of CPU to its
 * start, bench/footprint.mjs). A service that does use one loads it at start all the same, where it
 * makes its clients (`s3Client`, `dynamoDocumentClient`) or its event endpoint (`eventEndpoint`).
 *
 * These packages are CommonJS with no `exports` map, so `require` returns the very module an
 * `import` of them gets: the classes are shared (instanceof, aws-sdk-client-mock's stubs).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type S3Sdk = typeof import('@aws-sdk/client-s3');
type DynamoSdk = typeof import('@aws-sdk/client-dynamodb');
type DocumentSdk = typeof import('@aws-sdk/lib-dynamodb');
type CloudEventsSdk = typeof import('cloudevents');

let s3: S3Sdk | undefined;
let dynamo: DynamoSdk | undefined;
let document: DocumentSdk | undefined;
let cloudEvents: CloudEventsSdk | undefined;

export const s3Sdk = (): S3Sdk => (s3 ??= require('@aws-sdk/client-s3') as S3Sdk);
export const dynamoSdk = (): DynamoSdk => (dynamo ??= require('@aws-sdk/client-dynamodb') as DynamoSdk);
export const documentSdk = (): DocumentSdk => (document ??= require('@aws-sdk/lib-dynamodb') as DocumentSdk);
export const cloudEventsSdk = (): CloudEventsSdk => (cloudEvents ??= require('cloudevents') as CloudEventsSdk);

/**
 * A stand-in for an SDK command class that loads its package on first use: `new` on it returns an
 * instance of the real class (what `send`, instanceof and aws-sdk-client-mock see).
 */
function lazyClass<C extends new (...args: any[]) => object>(load: () => C): C {
  return function (...args: unknown[]) {
    return new (load())(...args);
  } as unknown as C;
}

type ClassesOf<M> = { [K in keyof M as M[K] extends new (...args: any[]) => object ? K : never]: M[K] };

export const s3Command = <K extends keyof ClassesOf<S3Sdk>>(name: K): ClassesOf<S3Sdk>[K] => lazyClass(() => (s3Sdk() as ClassesOf<S3Sdk>)[name]);
export const documentCommand = <K extends keyof ClassesOf<DocumentSdk>>(name: K): ClassesOf<DocumentSdk>[K] =>
  lazyClass(() => (documentSdk() as ClassesOf<DocumentSdk>)[name]);
