import { Counter, Histogram, type Registry } from 'prom-client';
import { zeroed } from '@avatar-pipeline/kit/metrics';

/** What became of one approved upload; bounded label values. */
export const renderOutcomes = ['rendered', 'reused', 'failed', 'error', 'unapproved'] as const;
export type RenderOutcome = (typeof renderOutcomes)[number];

export interface ThumbnailMetrics {
  duration: Histogram;
  bytesWritten: Counter;
  rendered: Counter<'outcome'>;
}

export function thumbnailMetrics(registry: Registry): ThumbnailMetrics {
  return {
    duration: new Histogram({
      name: 'avatarpipeline_thumbnail_duration_seconds',
      help: 'Time to validate one upload and render all its renditions (no S3 transfers, no queue wait)',
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    bytesWritten: new Counter({
      name: 'avatarpipeline_thumbnail_bytes_written_total',
      help: 'Bytes of WebP renditions written to the bucket',
      registers: [registry],
    }),
    rendered: zeroed(
      new Counter({
        name: 'avatarpipeline_thumbnails_rendered_total',
        help: 'Approved uploads handled: rendered, reused (a redelivery after the original was gone), failed (permanently), error (retried) or unapproved (an event for bytes moderate did not approve, ignored)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
      renderOutcomes.map((outcome) => ({ outcome })),
    ),
  };
}
