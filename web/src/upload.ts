/**
 * Sending the file: checks before asking for an upload URL (the server checks everything again,
 * and again after the upload), then the presigned POST through XHR, whose upload progress
 * events drive the progress bar (fetch has no upload progress in most browsers yet).
 */
import { formatBytes } from './messages.js';
import type { UploadTicket } from './api.js';

/** The types presign accepts (mirrors its allow-list). */
export const acceptedTypes = ['image/jpeg', 'image/png', 'image/webp'] as const;

export interface FileProblem {
  code: 'unsupported_type' | 'too_large' | 'empty';
  message: string;
}

/** A problem a player can fix before anything is sent, or undefined when the file may go. */
export function checkFile(file: { type: string; size: number }, maxBytes: number): FileProblem | undefined {
  if (!(acceptedTypes as readonly string[]).includes(file.type)) {
    return { code: 'unsupported_type', message: 'That kind of file is not supported. Use a JPEG, PNG or WebP image.' };
  }
  if (file.size === 0) return { code: 'empty', message: 'The file is empty.' };
  if (file.size > maxBytes) {
    return { code: 'too_large', message: `The file is ${formatBytes(file.size)}; the largest allowed is ${formatBytes(maxBytes)}.` };
  }
  return undefined;
}

export class StorageError extends Error {
  constructor(
    /** HTTP status, 0 when the request never completed. */
    readonly status: number,
    /** The S3 error code (AccessDenied, EntityTooLarge, ...) when the store sent one. */
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/** S3 answers errors in XML: `<Error><Code>..</Code><Message>..</Message></Error>`. */
function s3ErrorCode(xml: string): string | undefined {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  return doc.querySelector('Error > Code')?.textContent ?? undefined;
}

function storageMessage(code: string | undefined): string {
  switch (code) {
    case 'EntityTooLarge':
      return 'The file is larger than the upload allows.';
    case 'AccessDenied':
      // Expired policy, or a file that does not match what was asked for.
      return 'The upload was refused. Please try again.';
    default:
      return 'The upload did not complete. Please try again.';
  }
}

/**
 * POSTs the file as a form: the ticket's fields first (S3 ignores fields after the file), the
 * file last. Resolves when the store has it; reports progress as a fraction from 0 to 1.
 */
export function postFile(ticket: UploadTicket, file: Blob, onProgress: (fraction: number) => void, signal?: AbortSignal): Promise<void> {
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
  form.append('file', file);

  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', ticket.url);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
        return;
      }
      const code = s3ErrorCode(xhr.responseText);
      reject(new StorageError(xhr.status, code, storageMessage(code)));
    });
    xhr.addEventListener('error', () => reject(new StorageError(0, undefined, 'The upload was interrupted. Check your connection and try again.')));
    xhr.addEventListener('abort', () => reject(new StorageError(0, undefined, 'The upload was cancelled.')));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}
