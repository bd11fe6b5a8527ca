/**
 * An `ObjectStore` in memory, for tests: the port's semantics without a server (ETags are MD5s
 * as S3 makes them for single-part uploads). Failure tests override one operation of it:
 * `{ ...memoryObjects('b'), delete: () => Promise.reject(new Error('S3 is down')) }`.
 */
import { createHash } from 'node:crypto';
import { contentSha256, type ObjectStore } from './objects.js';

export interface MemoryObject {
  body: Buffer;
  eTag: string;
  contentType: string | undefined;
  cacheControl: string | undefined;
}

export interface MemoryObjectStore extends ObjectStore {
  /** The objects by key (write to it to seed a test). */
  readonly objects: Map<string, MemoryObject>;
}

/** An object as `put` would store it. */
export function memoryObject(body: Uint8Array, contentType?: string, cacheControl?: string): MemoryObject {
  const bytes = Buffer.from(body);
  return { body: bytes, eTag: createHash('md5').update(bytes).digest('hex'), contentType, cacheControl };
}

export function memoryObjects(bucket = 'avatars'): MemoryObjectStore {
  const objects = new Map<string, MemoryObject>();
  const keysUnder = (prefix: string) => [...objects.keys()].filter((key) => key.startsWith(prefix)).sort();
  return {
    bucket,
    objects,
    async getPinned(key, pin, maxBytes) {
      const object = objects.get(key);
      if (!object) return { kind: 'missing' };
      if (pin.eTag !== undefined && pin.eTag.replace(/"/g, '') !== object.eTag) return { kind: 'replaced' };
      if (object.body.length > maxBytes) return { kind: 'too_large', size: object.body.length };
      if (pin.sha256 !== undefined && contentSha256(object.body) !== pin.sha256) return { kind: 'replaced' };
      return { kind: 'ok', body: Buffer.from(object.body), eTag: object.eTag, contentType: object.contentType };
    },
    async put(key, body, options) {
      objects.set(key, memoryObject(body, options.contentType, options.cacheControl));
    },
    async delete(key) {
      objects.delete(key);
    },
    async deleteMany(keys) {
      for (const key of keys) objects.delete(key);
    },
    async deletePrefix(prefix) {
      const keys = keysUnder(prefix);
      for (const key of keys) objects.delete(key);
      return keys.length;
    },
    async *list(prefix) {
      yield* keysUnder(prefix);
    },
    async exists(key) {
      return objects.has(key);
    },
    async signedGetUrl(key, expiresSeconds) {
      return `https://${bucket}.s3.invalid/${key}?X-Amz-Expires=${expiresSeconds}`;
    },
    ready: async () => undefined,
  };
}
