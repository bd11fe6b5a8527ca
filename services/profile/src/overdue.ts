/**
 * Uploads not ended in time, on profile's /metrics. The reconciler ends an upload that waited past
 * its deadline (UPLOAD_PENDING_TIMEOUT_SECONDS after its ticket expired, UPLOAD_PROCESSING_TIMEOUT_SECONDS
 * after processing began, REVIEW_TIMEOUT_SECONDS after review was requested), but in a cluster it is a CronJob whose own metrics leave with its pod:
 * nothing scrapes them. Profile is scraped, so each scrape reads the head of the `open-uploads`
 * index per open status (one Query of one item: the index sorts by when the wait began) and
 * reports how far the longest wait is past its deadline. That stays 0 while the reconciler keeps
 * up and grows once it stops ending uploads (not running, failing, unable to announce): exactly
 * when nothing else says so. See docs/runbooks.md (AvatarUploadsNotEndedInTime).
 */
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { withTimeout } from '@avatar-pipeline/kit/service';
import { openStatuses, systemClock, type Clock, type OpenStatus, type UploadStore } from '@avatar-pipeline/kit/table';

/** A scrape must not wait on a slow table: Prometheus drops the whole scrape after its timeout (10 s). */
const READ_TIMEOUT_MS = 2000;

export interface OverdueDeps {
  uploads: UploadStore;
  /** Seconds an upload may wait in each open status before the reconciler must have ended it. */
  deadlines: Readonly<Record<OpenStatus, number>>;
  logger: Logger;
  clock?: Clock;
}

export function overdueUploadsGauge(registry: Registry, deps: OverdueDeps): Gauge<'status'> {
  const clock = deps.clock ?? systemClock;
  /** The longest wait's excess: an entry the reconciler ended but has not announced counts too (its player was not told). */
  async function overdueSeconds(status: OpenStatus): Promise<number> {
    for await (const upload of deps.uploads.openUploads(status, undefined, 1)) {
      return Math.max(0, Math.floor((clock().getTime() - Date.parse(upload.openSince)) / 1000) - deps.deadlines[status]);
    }
    return 0;
  }
  return new Gauge({
    name: 'avatarpipeline_uploads_overdue_seconds',
    help: 'How long the longest-waiting upload in each open status (pending, processing, in_review) is past the deadline by which the reconciler must end it; 0 when none is. Read from the table on each scrape',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      await Promise.all(
        openStatuses.map(async (status) => {
          try {
            this.set({ status }, await withTimeout(overdueSeconds(status), READ_TIMEOUT_MS));
          } catch (err) {
            // No sample rather than a stale one; the rest of /metrics is still served.
            this.remove({ status });
            deps.logger.warn({ err, status }, 'could not read the open uploads for /metrics');
          }
        }),
      );
    },
  });
}
