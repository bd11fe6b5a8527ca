/**
 * `/media/*`: the CDN stand-in. Serves derived avatars (`avatars/...` objects) publicly with
 * their stored Content-Type, Cache-Control and ETag, honours If-None-Match, and never serves
 * anything else in the bucket (uploads stay private until processed, and are deleted if rejected).
 */
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Handler } from 'hono';
import { errorBody } from '@avatar-pipeline/kit/errors';
import type { AppEnv } from '@avatar-pipeline/kit/service';

export interface MediaOptions {
  s3: S3Client;
  bucket: string;
  /** Path prefix the handler is mounted under, e.g. `/media/`. */
  mountPath: string;
}

/** Key segments are plain names (no dots first, so no `.`/`..`), nothing percent-encoded. */
const AVATAR_KEY = /^avatars(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,4}$/;

const passedHeaders = {
  'Content-Type': 'ContentType',
  'Cache-Control': 'CacheControl',
  ETag: 'ETag',
  'Content-Length': 'ContentLength',
} as const;

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** If-None-Match semantics (RFC 9110 13.1.2): weak comparison against a list, or `*`. */
export function noneMatch(header: string | undefined, etag: string | undefined): boolean {
  if (!header || !etag) return false;
  if (header.trim() === '*') return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => opaque(tag) === opaque(etag));
}

export function mediaHandler(options: MediaOptions): Handler<AppEnv> {
  return async (c) => {
    const key = c.req.path.slice(options.mountPath.length);
    const notFound = () => c.json(errorBody('not_found', 'no such media'), 404);
    if (!AVATAR_KEY.test(key)) return notFound();
    const input = { Bucket: options.bucket, Key: key };
    let object;
    try {
      object =
        c.req.method === 'HEAD'
          ? await options.s3.send(new HeadObjectCommand(input))
          : await options.s3.send(new GetObjectCommand(input));
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || status === 403) return notFound();
      throw err;
    }
    const headers: Record<string, string> = { 'X-Content-Type-Options': 'nosniff' };
    for (const [header, field] of Object.entries(passedHeaders)) {
      const value = object[field];
      if (value !== undefined) headers[header] = String(value);
    }
    if (object.LastModified) headers['Last-Modified'] = object.LastModified.toUTCString();
    const body = 'Body' in object ? object.Body : undefined;
    if (noneMatch(c.req.header('if-none-match'), object.ETag)) {
      await body?.transformToWebStream().cancel();
      delete headers['Content-Type'];
      delete headers['Content-Length'];
      return c.body(null, 304, headers);
    }
    // HEAD answers carry the headers only.
    return body ? c.body(body.transformToWebStream(), 200, headers) : c.body(null, 200, headers);
  };
}
