/**
 * The public API: which public service answers which path. The only way in from outside; the
 * cluster's nginx gateway and the local gateway both route from this table, so internal paths
 * (/events, /dead-letter, /metrics, /readyz) are never reachable.
 */
import type { PublicService } from './topology.js';

/** What presign answers to `POST /v1/uploads`: one upload ticket (a presigned browser-form POST). */
export interface UploadTicket {
  uploadId: string;
  method: 'POST';
  url: string;
  fields: Record<string, string>;
  expiresAt: string;
  maxBytes: number;
}

export interface ApiRoute {
  /** `exact`: this path only. `prefix`: every path starting with it (it ends in `/`). */
  match: 'exact' | 'prefix';
  path: string;
  service: PublicService;
  /** Methods allowed (GET implies HEAD); every method when absent. */
  methods?: readonly ('GET' | 'POST' | 'PUT' | 'DELETE')[];
}

export const apiRoutes: readonly ApiRoute[] = [
  { match: 'exact', path: '/v1/uploads', service: 'presign', methods: ['POST'] },
  { match: 'prefix', path: '/v1/uploads/', service: 'profile', methods: ['GET'] },
  { match: 'exact', path: '/v1/players', service: 'profile' },
  { match: 'prefix', path: '/v1/players/', service: 'profile' },
  { match: 'exact', path: '/v1/push', service: 'subscribe' },
  { match: 'prefix', path: '/v1/push/', service: 'subscribe' },
];
