/**
 * A small client for the stack's public API, as a game client uses it: tokens, upload tickets, the
 * browser-form POST of the file, upload status. Tests, the fault-injection runs and the benchmarks
 * (bench/pipeline.mjs) drive the stack through it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { UploadTicket } from '@avatar-pipeline/kit/api-routes';

export type { UploadTicket };

export interface UploadStatus {
  uploadId: string;
  status: 'pending' | 'processing' | 'in_review' | 'ready' | 'rejected' | 'failed' | 'expired';
  reason?: { code: string; message: string };
  avatar?: { thumbnails: Record<string, string>; full: string };
  /** When the status last changed: for a terminal upload, the moment it ended. */
  updatedAt: string;
}

export const terminalUploadStates: readonly UploadStatus['status'][] = ['ready', 'rejected', 'failed', 'expired'];

export class ApiClient {
  constructor(readonly baseUrl: string) {}

  async json<T>(path: string, init: RequestInit & { token?: string; body?: string } = {}): Promise<{ status: number; body: T; headers: Headers }> {
    const { token, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    if (rest.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
    const res = await fetch(`${this.baseUrl}${path}`, { ...rest, headers });
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      throw new Error(`${init.method ?? 'GET'} ${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, body: body as T, headers: res.headers };
  }

  /** A token from the dev issuer; `roles` (e.g. `['moderator']`) go in its `roles` claim. */
  async token(playerId: string, roles?: readonly string[]): Promise<string> {
    const res = await this.json<{ token: string }>('/dev/token', { method: 'POST', body: JSON.stringify({ playerId, ...(roles ? { roles } : {}) }) });
    if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.token;
  }

  async requestUpload(token: string, contentType: string, contentLength: number): Promise<UploadTicket> {
    const res = await this.json<UploadTicket>('/v1/uploads', { method: 'POST', token, body: JSON.stringify({ contentType, contentLength }) });
    if (res.status !== 201) throw new Error(`upload request: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async status(token: string, uploadId: string): Promise<UploadStatus> {
    const res = await this.json<UploadStatus>(`/v1/uploads/${uploadId}`, { token });
    if (res.status !== 200) throw new Error(`status: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Polls the upload (every `intervalMs`) until it reaches a terminal status. */
  settled(token: string, uploadId: string, timeoutMs = 20_000, intervalMs = 100): Promise<UploadStatus> {
    return this.reaches(token, uploadId, terminalUploadStates, timeoutMs, intervalMs);
  }

  /** Polls the upload (every `intervalMs`) until it is in one of `states` (e.g. `['in_review']`, or terminal). */
  async reaches(token: string, uploadId: string, states: readonly UploadStatus['status'][], timeoutMs = 20_000, intervalMs = 100): Promise<UploadStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: UploadStatus | undefined;
    while (Date.now() < deadline) {
      last = await this.status(token, uploadId);
      if (states.includes(last.status)) return last;
      await sleep(intervalMs);
    }
    throw new Error(`upload ${uploadId} still ${last?.status} after ${timeoutMs} ms`);
  }
}

/** Posts a file to a presigned POST the way a browser form does: the policy's fields, then the file. */
export async function postUpload(ticket: Pick<UploadTicket, 'url' | 'fields'>, file: Uint8Array, contentType: string): Promise<Response> {
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
  form.append('file', new Blob([file], { type: contentType }), 'avatar');
  return fetch(ticket.url, { method: 'POST', body: form });
}
