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
};

const statusSentences: Readonly<Record<UploadStatus, string>> = {
  pending: 'Uploaded. Waiting for the image to be checked…',
  processing: 'Checking your image and making your avatar…',
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

/** The status line for an upload: its state, and why when it was refused, failed or expired. */
export function statusText(status: UploadStatus, reason?: Reason): string {
  const why = reasonText(reason);
  return why && (status === 'rejected' || status === 'failed' || status === 'expired') ? `${statusSentences[status]} ${why}` : statusSentences[status];
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
    default:
      return { title: 'Avatar update', body: statusSentences[status] };
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MB`;
}
