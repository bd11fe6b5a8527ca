/** Presign's own metric: the tickets it issued. */
import { Counter, type Registry } from 'prom-client';
import { zeroed } from '@avatar-pipeline/kit/metrics';
import { allowedContentTypes } from './config.js';

/** Every allowed content type's series starts at 0. */
export function issuedCounter(registry: Registry): Counter<'content_type'> {
  return zeroed(
    new Counter({
      name: 'avatarpipeline_presign_uploads_issued_total',
      help: 'Presigned uploads issued, by content type',
      labelNames: ['content_type'],
      registers: [registry],
    }),
    allowedContentTypes.map((content_type) => ({ content_type })),
  );
}
