/**
 * Cross-origin access for browsers on a game's own origin: the one policy both gateways apply to
 * the public API (the cluster's nginx, cdk8s/src/gateway.ts, and the local one), and the bucket
 * CORS rule a browser's presigned POST needs from the storage itself (S3 or its stand-ins).
 * Only configured origins get CORS headers: an allowed Origin is echoed, never `*`.
 */
import { z } from 'zod';
import { env } from './config.js';

/** An Origin header is scheme://host[:port], nothing more: any other value would never match. */
export function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

/** CORS_ORIGINS: a comma-separated list of origins (none by default: same-origin clients only). */
export const corsOriginsEnv = {
  CORS_ORIGINS: env
    .list()
    .pipe(z.array(z.string().refine(isOrigin, { message: 'each entry must be an origin: scheme://host[:port], no path or trailing slash' })))
    .describe('Origins (scheme://host[:port], comma-separated) whose pages may use the API and post uploads cross-origin; none: same-origin clients only.'),
};

/** Request headers the API takes cross-origin: the bearer token and the JSON body's type. */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type'] as const;
/** Response headers a page may read besides the safelisted ones (the web client reads Retry-After). */
export const CORS_EXPOSE_HEADERS = ['Retry-After', 'X-Request-Id'] as const;
/** How long a browser may reuse a preflight answer. */
export const CORS_MAX_AGE_SECONDS = 600;

/** One rule of an S3 bucket CORS configuration (PutBucketCors's shape). */
export interface BucketCorsRule {
  AllowedOrigins: string[];
  AllowedMethods: string[];
  ExposeHeaders: string[];
  MaxAgeSeconds: number;
}

/**
 * The bucket CORS rule presigned uploads need from pages on `origins`: a multipart form POST (no
 * custom headers, so browsers send it without a preflight, but only let the page read the answer
 * when the storage allows its origin). Nothing else is allowed: the bucket stays private.
 */
export function uploadBucketCorsRules(origins: readonly string[]): BucketCorsRule[] {
  if (origins.length === 0) return [];
  return [{ AllowedOrigins: [...origins], AllowedMethods: ['POST'], ExposeHeaders: ['ETag', 'Location'], MaxAgeSeconds: CORS_MAX_AGE_SECONDS }];
}
