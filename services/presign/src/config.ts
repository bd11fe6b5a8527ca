/** Presign's own settings, on top of the kit's common, AWS, table, bucket and auth variables. */
import { z } from 'zod';
import { env, uploadLimitEnv } from '@avatar-pipeline/kit';

export const allowedContentTypes = ['image/jpeg', 'image/png', 'image/webp'] as const;
export type AllowedContentType = (typeof allowedContentTypes)[number];

export const presignEnv = {
  ...uploadLimitEnv,
  /** Lifetime of a presigned POST; kept short because it is a bearer capability. */
  PRESIGN_EXPIRES_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  /**
   * Public origin (and path) browsers reach the bucket through, e.g. http://localhost:8080/s3.
   * A POST policy signature covers the policy, not the host, so the URL may be swapped freely.
   */
  S3_PUBLIC_URL: env.url().optional(),
  RATE_LIMIT_UPLOADS: env.int(10, 1),
  RATE_LIMIT_WINDOW_SECONDS: env.int(60, 1),
};
