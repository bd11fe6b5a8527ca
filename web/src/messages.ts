/**
 * Every sentence a player reads. Codes come from the API (errors, rejection reasons); the
 * server's own message is shown only when a code is unknown to this client. A game translates
 * this one file.
 */
import type { ApiError, Reason, UploadStatus } from './api.js';

/** Why an upload was rejected, failed or expired (`reason.code` of the upload status and of pushes). */
const reasonSentences: Readonly<Record<string, string>> = {
  too_large: 'The file is too large.',
  empty: 'The file is empty.',
  unsupported_format: 'That kind of file is not supported. Use a JPEG, PNG or WebP image.',
  corrupt: 'The image file is damaged or incomplete.',
  too_many_pixels: 'The image has too many pixels. Use a smaller image.',
  too_wide: 'The image is too wide or too tall. Use a smaller image.',
  too_small: 'The image is too small. Use one at least 32 pixels on each side.',
  aspect_ratio: 'The image is too long and narrow. Use one at most four times as wide as it is tall (or tall as it is wide).',
  format_mismatch: 'The file is not the kind of image its name or type says it is.',
  moderation: 'The image does not follow the content rules.',
  rejected: 'The image was not accepted.',
  processing_failed: 'We could not process the image. Please try again later.',
  object_replaced: 'The file was changed after it was checked. Please upload it again.',
  timeout: 'Processing the image took too long. Please try again.',
  expired: 'The upload was not finished in time. Please choose your picture again.',
  banned: 'This picture is not allowed.',
  moderator: 'A moderator decided the image does not follow the content rules.',
  review_timeout: 'No moderator could look at the image in time. Please upload it again or choose another picture.',
};

/** Errors of the API calls the page makes (`error.code`). */
const errorSentences: Readonly<Record<string, string>> = {
  network: 'The server could not be reached. Check your connection and try again.',
  unauthorized: 'Your session has ended. Please sign in again.',
  rate_limited: 'You have uploaded too many images in a short time. Please wait a moment.',
  too_large: 'The file is too large.',
  unsupported_content_type: 'That kind of file is not supported. Use a JPEG, PNG or WebP image.',
  invalid_request: 'The request was not valid.',
  invalid_player_id: 'A player id may only contain letters, digits, dots, dashes and underscores.',
  upload_not_found: 'That upload could not be found.',
  unavailable: 'Uploads are unavailable right now. Please try again shortly.',
  service_unavailable: 'The service is unavailable right now. Please try again shortly.',
  upstream_timeout: 'The server took too long to answer. Please try again.',
  auth_unavailable: 'Signing in is unavailable right now. Please try again shortly.',
  unexpected_response: 'The server sent an answer this page does not understand.',
  forbidden: 'This account may not do that.',
  not_found: 'That could not be found. It may have been removed already.',
  already_decided: 'Another moderator has already decided this one.',
};

const statusSentences: Readonly<Record<UploadStatus, string>> = {
  pending: 'Uploaded. Waiting for the image to be checked…',
  processing: 'Checking your image and making your avatar…',
  in_review: 'Your image is waiting for a moderator to look at it. Your avatar will change once it is approved.',
  ready: 'Your new avatar is ready.',
  rejected: 'Your image was not accepted.',
  failed: 'Something went wrong with your image.',
  expired: 'Your upload did not arrive.',
};

/** "The server said: x." with the first letter capitalised and a full stop. */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return '';
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function reasonText(reason: Reason | undefined): string {
  if (!reason) return '';
  return reasonSentences[reason.code] ?? sentence(reason.message);
}

export function errorText(error: Pick<ApiError, 'code' | 'message'>): string {
  return errorSentences[error.code] ?? sentence(error.message);
}

/** Any failure as a sentence: an API error by its code, anything else in general words. */
export function describeError(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) return errorText(err as { code: string; message: string });
  return 'Something went wrong. Please try again.';
}

/** The status line for an upload: its state, and why when it was refused, failed or expired. */
export function statusText(status: UploadStatus, reason?: Reason): string {
  const why = reasonText(reason);
  return why && (status === 'rejected' || status === 'failed' || status === 'expired') ? `${statusSentences[status]} ${why}` : statusSentences[status];
}

/** When the page stops following an upload that has no outcome yet (`status`: the last one seen). */
export function stillWaitingText(status: string | undefined): string {
  return status === 'in_review'
    ? 'A moderator has not decided yet. Come back later to see your avatar.'
    : 'This is taking longer than usual. Your avatar will change here once it is ready.';
}

/** Notification text when a push carries none of its own. */
export function notificationText(status: UploadStatus, reason?: Reason): { title: string; body: string } {
  switch (status) {
    case 'ready':
      return { title: 'Your new avatar is ready', body: 'Everyone now sees your new picture.' };
    case 'rejected':
      return { title: 'Your avatar was not accepted', body: reasonText(reason) || 'Please choose another image.' };
    case 'failed':
      return { title: 'Your avatar could not be processed', body: reasonText(reason) || 'Please try again later.' };
    case 'expired':
      return { title: 'Your avatar upload did not arrive', body: reasonText(reason) || 'Please choose your picture again.' };
    case 'in_review':
      return { title: 'Your avatar is being reviewed', body: 'A moderator will look at your picture. You will be told when it is decided.' };
    default:
      return { title: 'Avatar update', body: statusSentences[status] };
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MB`;
}

// The moderator page (moderator.ts).

const banReasons: Readonly<Record<string, string>> = {
  moderation: 'Refused by the model',
  moderator: 'Rejected by a moderator',
  manual: 'Banned by a moderator',
};

/** Why a picture is on the ban list (`ban.reason`). */
export function banReasonText(reason: string): string {
  return banReasons[reason] ?? reason;
}

/** A model score: "Explicit", or "Child (Parent)" for a label under another. */
export function labelText(label: { name: string; parent?: string | undefined }): string {
  return label.parent ? `${label.name} (${label.parent})` : label.name;
}

/** A confidence (0-100) as the page shows it: "42.5%". */
export function confidenceText(confidence: number): string {
  return `${confidence.toFixed(1)}%`;
}

export function reviewCountText(count: number, more: boolean): string {
  if (count === 0) return more ? 'None found yet: show more to keep looking.' : 'No pictures are waiting for review.';
  const pictures = count === 1 ? '1 picture' : `${count} pictures`;
  return `${pictures}${more ? ' (and more)' : ''} waiting for review, oldest first.`;
}

export function banCountText(count: number, more: boolean): string {
  if (count === 0) return more ? 'None found yet: show more to keep looking.' : 'No picture is banned.';
  return `${count === 1 ? '1 banned picture' : `${count} banned pictures`}${more ? ' (and more)' : ''}.`;
}

/** What became of a review this moderator decided. */
export function decidedText(decision: 'approve' | 'reject', playerId: string): string {
  return decision === 'approve'
    ? `Approved the picture of ${playerId}: it becomes their avatar.`
    : `Rejected the picture of ${playerId}: it is deleted and its fingerprint banned.`;
}

/** A review another moderator decided first. */
export function decidedByOtherText(review: { status: string; decision?: { by: string; decision: 'approve' | 'reject' } | undefined }): string {
  if (!review.decision) return review.status === 'expired' ? 'This review ran out of time before anyone decided.' : errorText({ code: 'already_decided', message: '' });
  return `${review.decision.by} has already ${review.decision.decision === 'approve' ? 'approved' : 'rejected'} this picture.`;
}
