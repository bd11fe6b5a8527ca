/**
 * The object store as the services see it: a small port (`ObjectStore`) over one bucket, built
 * from an S3 client in a service's start.ts (`s3Objects`), and replaced by `memoryObjects` in
 * tests. Uploads are written by players, so reads are capped and pinned to the version an event
 * named, and a missing or replaced object is an answer, not an error.
 */
import { createHash } from 'node:crypto';
import type { GetObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { s3Command } from './sdk.js';

const DeleteObjectCommand = s3Command('DeleteObjectCommand');
const DeleteObjectsCommand = s3Command('DeleteObjectsCommand');
const GetObjectCommand = s3Command('GetObjectCommand');
const HeadBucketCommand = s3Command('HeadBucketCommand');
const HeadObjectCommand = s3Command('HeadObjectCommand');
const ListObjectsV2Command = s3Command('ListObjectsV2Command');
const PutObjectCommand = s3Command('PutObjectCommand');

/** Which version of an object a read must return. */
export interface ObjectPin {
  /** The ETag an event announced (sent as If-Match). */
  eTag?: string | undefined;
  /** The SHA-256 (lowercase hex) of the bytes that were checked: decides where ETags cannot (stores that ignore If-Match, MD5 collisions). */
  sha256?: string | undefined;
}

/** What a pinned read found. */
export type PinnedRead =
  | { kind: 'ok'; body: Buffer; eTag: string; contentType: string | undefined }
  | { kind: 'missing' }
  /** The key holds other bytes than the pin names: a newer write, which has an event of its own. */
  | { kind: 'replaced' }
  /** Larger than allowed; `size` when the store declared it before the bytes were read. */
  | { kind: 'too_large'; size: number | undefined };

export interface PutOptions {
  contentType: string;
  cacheControl?: string | undefined;
}

/** One bucket, through the few operations the services use. Keys are object keys in it. */
export interface ObjectStore {
  readonly bucket: string;
  /** Reads an object's bytes, refusing more than `maxBytes` (by its declared length, then while streaming). */
  getPinned(key: string, pin: ObjectPin, maxBytes: number): Promise<PinnedRead>;
  put(key: string, body: Uint8Array, options: PutOptions): Promise<void>;
  /** Deletes one object; a missing one is fine, so a repeat is harmless. */
  delete(key: string): Promise<void>;
  /** Deletes these objects (in batches of 1,000); fails naming the first it could not delete. */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Deletes every object under `prefix`; returns how many there were. */
  deletePrefix(prefix: string): Promise<number>;
  /** Every key under `prefix`, page by page. */
  list(prefix: string): AsyncIterable<string>;
  exists(key: string): Promise<boolean>;
  /** A presigned GET URL of the object, valid for `expiresSeconds` (on the store's own origin). */
  signedGetUrl(key: string, expiresSeconds: number): Promise<string>;
  /** A readiness check: proves endpoint, credentials and access at no cost. */
  ready(): Promise<unknown>;
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
 * The SHA-256 of an object's bytes (lowercase hex). Unlike an ETag (an MD5 for single-part
 * uploads, where colliding files are easy to make) it names the content, and holds on stores that
 * ignore conditional reads.
 */
export function contentSha256(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

const DELETE_OBJECTS_MAX = 1000;
let presigner: Promise<typeof import('@aws-sdk/s3-request-presigner')> | undefined;

class TooLarge extends Error {}

/** The bucket through an S3 client (S3, MinIO, s3rver). */
export function s3Objects(s3: S3Client, bucket: string): ObjectStore {
  async function read(input: GetObjectCommandInput & { Key: string }, maxBytes: number) {
    const res = await s3.send(new GetObjectCommand(input));
    const stream = res.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    if (res.ContentLength !== undefined && res.ContentLength > maxBytes) {
      stream?.destroy?.();
      return { tooLarge: res.ContentLength } as const;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of stream ?? []) {
      size += chunk.length;
      // A length can be absent, and a stand-in may misreport it.
      if (size > maxBytes) {
        stream?.destroy?.();
        throw new TooLarge();
      }
      chunks.push(chunk);
    }
    return { body: Buffer.concat(chunks, size), eTag: res.ETag, contentType: res.ContentType } as const;
  }

  const store: ObjectStore = {
    bucket,
    async getPinned(key, pin, maxBytes) {
      try {
        const res = await read({ Bucket: bucket, Key: key, ...(pin.eTag ? { IfMatch: quotedETag(pin.eTag) } : {}) }, maxBytes);
        if ('tooLarge' in res) return { kind: 'too_large', size: res.tooLarge };
        const eTag = (res.eTag ?? pin.eTag)?.replace(/"/g, '');
        if (!eTag) throw new Error(`GetObject gave no ETag for ${key}`);
        // Checked here too: some stores (s3rver) ignore If-Match on GET.
        if (pin.eTag !== undefined && eTag !== pin.eTag.replace(/"/g, '')) return { kind: 'replaced' };
        if (pin.sha256 !== undefined && contentSha256(res.body) !== pin.sha256) return { kind: 'replaced' };
        return { kind: 'ok', body: res.body, eTag, contentType: res.contentType };
      } catch (err) {
        if (err instanceof TooLarge) return { kind: 'too_large', size: undefined };
        const status = awsStatus(err);
        if (status === 412) return { kind: 'replaced' };
        if (status === 404) return { kind: 'missing' };
        throw err;
      }
    },
    async put(key, body, options) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: options.contentType, ...(options.cacheControl ? { CacheControl: options.cacheControl } : {}) }));
    },
    async delete(key) {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async deleteMany(keys) {
      for (let i = 0; i < keys.length; i += DELETE_OBJECTS_MAX) {
        const chunk = keys.slice(i, i + DELETE_OBJECTS_MAX);
        const res = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }));
        const failed = res.Errors ?? [];
        if (failed.length > 0) throw new Error(`could not delete ${failed.length} objects (first: ${failed[0]?.Key}: ${failed[0]?.Code})`);
      }
    },
    async deletePrefix(prefix) {
      const keys: string[] = [];
      for await (const key of store.list(prefix)) keys.push(key);
      await store.deleteMany(keys);
      return keys.length;
    },
    async *list(prefix) {
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        for (const object of page.Contents ?? []) if (object.Key) yield object.Key;
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    },
    async exists(key) {
      try {
        await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (err) {
        if (awsStatus(err) === 404) return false;
        throw err;
      }
    },
    async signedGetUrl(key, expiresSeconds) {
      // Loaded on first use: only profile's moderator routes sign reads.
      const { getSignedUrl } = await (presigner ??= import('@aws-sdk/s3-request-presigner'));
      return getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresSeconds });
    },
    ready: () => s3.send(new HeadBucketCommand({ Bucket: bucket })),
  };
  return store;
}
