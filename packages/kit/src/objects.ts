/**
 * Reading and probing S3 objects whose size, existence and content are not ours to trust: uploads
 * are written by players, so a download is capped, a missing object or a failed precondition is
 * told apart from a transient failure by its HTTP status, and content is named by its SHA-256.
 */
import { createHash } from 'node:crypto';
import type { GetObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { s3Command } from './sdk.js';

const DeleteObjectCommand = s3Command('DeleteObjectCommand');
const GetObjectCommand = s3Command('GetObjectCommand');
const HeadBucketCommand = s3Command('HeadBucketCommand');
const HeadObjectCommand = s3Command('HeadObjectCommand');
const ListObjectsV2Command = s3Command('ListObjectsV2Command');

export class ObjectTooLargeError extends Error {
  constructor(
    readonly key: string,
    readonly maxBytes: number,
  ) {
    super(`object ${key} is larger than ${maxBytes} bytes`);
    this.name = 'ObjectTooLargeError';
  }
}

export interface DownloadedObject {
  body: Buffer;
  eTag: string | undefined;
  contentType: string | undefined;
}

/** The HTTP status of a failed AWS call: 404 for NoSuchKey/NotFound, 412 for a failed If-Match. */
export function awsStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** An ETag as an If-Match header value (quoted). */
export function quotedETag(tag: string): string {
  return `"${tag.replace(/"/g, '')}"`;
}

/**
 * Downloads an object into memory, refusing anything over `maxBytes`: first by its declared
 * length, then while streaming (a length can be absent, and a stand-in may misreport it).
 */
export async function getObjectBytes(s3: S3Client, input: GetObjectCommandInput & { Key: string }, maxBytes: number): Promise<DownloadedObject> {
  const res = await s3.send(new GetObjectCommand(input));
  const stream = res.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
  if (res.ContentLength !== undefined && res.ContentLength > maxBytes) {
    stream?.destroy?.();
    throw new ObjectTooLargeError(input.Key, maxBytes);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream ?? []) {
    size += chunk.length;
    if (size > maxBytes) {
      stream?.destroy?.();
      throw new ObjectTooLargeError(input.Key, maxBytes);
    }
    chunks.push(chunk);
  }
  return { body: Buffer.concat(chunks, size), eTag: res.ETag, contentType: res.ContentType };
}

/**
 * The SHA-256 of an object's bytes (lowercase hex). Unlike an ETag (an MD5 for single-part
 * uploads, where colliding files are easy to make) it names the content, and holds on stores that
 * ignore conditional reads.
 */
export function contentSha256(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** Deletes every object under `prefix` (none is fine, so a repeat is harmless); returns how many were deleted. */
export async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  let deleted = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    const keys = (page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
    // One call per object: prefixes deleted here hold one upload's handful of renditions.
    await Promise.all(keys.map((key) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))));
    deleted += keys.length;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return deleted;
}

/** Whether an object exists (HeadObject); errors other than 404 propagate. */
export async function objectExists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if (awsStatus(err) === 404) return false;
    throw err;
  }
}

/** A readiness check for a bucket: HeadBucket proves endpoint, credentials and access at no cost. */
export function bucketReadiness(s3: S3Client, bucket: string): () => Promise<unknown> {
  return () => s3.send(new HeadBucketCommand({ Bucket: bucket }));
}
