/**
 * The public API: which public service answers which path. The only way in from outside; the
 * cluster's nginx gateway and the local gateway both route from this table, so internal paths
 * (/events, /dead-letter, /metrics, /readyz) are never reachable.
 */
import { z } from 'zod';
import type { PublicService } from './topology.js';

/** What presign answers to `POST /v1/uploads`: one upload ticket (a presigned browser-form POST). */
export const uploadTicketSchema = z
  .object({
    uploadId: z.string().meta({ description: 'Names the upload in the status API and in pushes' }),
    method: z.literal('POST'),
    url: z.string().meta({ description: 'Where the browser posts the form (multipart/form-data)' }),
    fields: z.record(z.string(), z.string()).meta({ description: 'Form fields to send, in order, before the file' }),
    expiresAt: z.iso.datetime().meta({ description: 'When the POST policy stops working' }),
    maxBytes: z.number().int().positive().meta({ description: 'The largest file the policy accepts' }),
  })
  .meta({ id: 'UploadTicket' });
export type UploadTicket = z.infer<typeof uploadTicketSchema>;

export interface ApiRoute {
  /** `exact`: this path only. `prefix`: every path starting with it (it ends in `/`). */
  match: 'exact' | 'prefix';
  path: string;
  service: PublicService;
  /** Methods allowed (GET implies HEAD); every method when absent. */
  methods?: readonly ('GET' | 'POST' | 'PUT' | 'DELETE')[];
}

/**
 * The methods of a route that names none (the kit's "every method"): every method a route can
 * name. Their services answer the methods they do not serve with their own 404.
 */
export const apiRouteMethods = (route: ApiRoute): readonly string[] => route.methods ?? ['GET', 'POST', 'PUT', 'DELETE'];

export const apiRoutes: readonly ApiRoute[] = [
  { match: 'exact', path: '/v1/uploads', service: 'presign', methods: ['POST'] },
  { match: 'prefix', path: '/v1/uploads/', service: 'profile', methods: ['GET'] },
  { match: 'exact', path: '/v1/players', service: 'profile' },
  { match: 'prefix', path: '/v1/players/', service: 'profile' },
  // Moderators' reviews and ban list (profile checks their role).
  { match: 'prefix', path: '/v1/moderation/', service: 'profile', methods: ['GET', 'POST', 'DELETE'] },
  { match: 'exact', path: '/v1/push', service: 'subscribe' },
  { match: 'prefix', path: '/v1/push/', service: 'subscribe' },
];
