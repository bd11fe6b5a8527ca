/**
 * The notification each device receives: structured fields an app can act on, plus title and body
 * in plain words for a service worker to show as they are. The encrypted record holds 4096 bytes
 * (103 of them overhead) and some mobile bridges take less, so the JSON stays within 3 KB.
 */
import type { Avatar, ExpiredData, FailedData, ReadyData, Reason, RejectedData, ReviewRequestedData } from '@avatar-pipeline/kit/events';
import { EventType } from '@avatar-pipeline/kit/topology';

export const MAX_PAYLOAD_BYTES = 3072;

/** The upload's status after the event, as the status API names it (`in_review` is not final: another notification follows). */
export type NotificationStatus = 'ready' | 'rejected' | 'failed' | 'expired' | 'in_review';

export interface Notification {
  type: `avatar.${NotificationStatus}`;
  uploadId: string;
  status: NotificationStatus;
  avatar?: Avatar;
  reason?: Reason;
  title: string;
  body: string;
  /** The 128 px thumbnail of a ready avatar. */
  icon?: string;
}

export type OutcomeEvent =
  | { type: typeof EventType.ready; data: ReadyData }
  | { type: typeof EventType.rejected; data: RejectedData }
  | { type: typeof EventType.failed; data: FailedData }
  | { type: typeof EventType.expired; data: ExpiredData }
  | { type: typeof EventType.reviewRequested; data: ReviewRequestedData };

/** "the image was refused: X" -> "The image was refused: X." */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return trimmed;
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function notificationFor(event: OutcomeEvent): Notification {
  const { uploadId } = event.data;
  switch (event.type) {
    case EventType.ready: {
      const { avatar } = event.data;
      const icon = avatar.thumbnails['128'];
      return {
        type: 'avatar.ready',
        uploadId,
        status: 'ready',
        avatar,
        title: 'Your new avatar is ready',
        body: 'Your upload has been checked and your new avatar can now be seen.',
        ...(icon ? { icon } : {}),
      };
    }
    case EventType.rejected:
      return {
        type: 'avatar.rejected',
        uploadId,
        status: 'rejected',
        reason: event.data.reason,
        title: 'Your avatar was not accepted',
        body: sentence(event.data.reason.message) || 'Please choose a different picture.',
      };
    case EventType.failed:
      return {
        type: 'avatar.failed',
        uploadId,
        status: 'failed',
        reason: event.data.reason,
        title: 'Your avatar could not be processed',
        body: 'Something went wrong on our side. Please try uploading it again.',
      };
    case EventType.expired:
      return {
        type: 'avatar.expired',
        uploadId,
        status: 'expired',
        reason: event.data.reason,
        title: 'Your avatar upload did not arrive',
        body: 'The upload was not finished in time. Please choose your picture again.',
      };
    case EventType.reviewRequested:
      // No labels: what the model suspected is for moderators, not a message to the player.
      return {
        type: 'avatar.in_review',
        uploadId,
        status: 'in_review',
        title: 'Your avatar is under review',
        body: 'A moderator will check your picture before it can be seen. We will let you know.',
      };
  }
}

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

/** Cuts `text` (by code points, never inside a surrogate pair) to the longest prefix for which `fits` holds. */
function longestFitting(text: string, fits: (candidate: string) => boolean): string {
  if (fits(text)) return text;
  const chars = Array.from(text);
  let low = 0;
  let high = chars.length - 1;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(`${chars.slice(0, mid).join('')}…`)) low = mid;
    else high = mid - 1;
  }
  return low === 0 ? '' : `${chars.slice(0, low).join('').trimEnd()}…`;
}

/**
 * Serializes a notification within `maxBytes` of UTF-8. The body gives way first; a reason
 * message only when the structured fields alone would not fit (the title is short and what the
 * player sees), then the title. Throws when even that is not enough (URLs of absurd length),
 * which no retry can fix.
 */
export function encodeNotification(notification: Notification, maxBytes = MAX_PAYLOAD_BYTES): string {
  let current = notification;
  const fitsWith = (patch: Partial<Notification>) => bytes({ ...current, ...patch }) <= maxBytes;
  current = { ...current, body: longestFitting(current.body, (body) => fitsWith({ body })) };
  const { reason } = current;
  if (reason) {
    current = { ...current, reason: { ...reason, message: longestFitting(reason.message, (message) => fitsWith({ reason: { ...reason, message } })) } };
  }
  current = { ...current, title: longestFitting(current.title, (title) => fitsWith({ title })) };
  const json = JSON.stringify(current);
  if (Buffer.byteLength(json, 'utf8') > maxBytes) throw new RangeError(`the notification does not fit in ${maxBytes} bytes`);
  return json;
}
