/**
 * What a push carries (sent by the push service) and what the service worker tells open pages
 * on the BroadcastChannel. Shared by the page and the service worker.
 */
import * as z from 'zod/mini';
import { avatarSchema, reasonSchema, uploadStatuses } from './api.js';

export const pushPayloadSchema = z.object({
  type: z.string(),
  uploadId: z.string(),
  status: z.enum(uploadStatuses),
  avatar: z.optional(avatarSchema),
  reason: z.optional(reasonSchema),
  /** Display text chosen by the server (its language, its wording); the client has fallbacks. */
  title: z.optional(z.string()),
  body: z.optional(z.string()),
  icon: z.optional(z.url()),
});
export type PushPayload = z.infer<typeof pushPayloadSchema>;

/** Parses push data; undefined when it is not a payload of ours. */
export function parsePushPayload(text: string | undefined): PushPayload | undefined {
  if (!text) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = pushPayloadSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

export const CHANNEL_NAME = 'avatar-pipeline';

/** Messages on the BroadcastChannel, from the service worker to every open page. */
export type ChannelMessage =
  /** A push arrived (and its notification was shown). */
  | { kind: 'push'; payload: PushPayload }
  /** The push subscription changed and could not be re-posted: a page with a token should. */
  | { kind: 'resubscribe' };

/** Messages from a page to the service worker (postMessage). */
export const workerMessageSchema = z.discriminatedUnion('kind', [
  /** The signed-in player's token, for `pushsubscriptionchange` when no page is open. */
  z.object({ kind: z.literal('session'), token: z.string(), expiresAt: z.number(), apiBase: z.string() }),
  z.object({ kind: z.literal('signed-out') }),
]);
export type WorkerMessage = z.infer<typeof workerMessageSchema>;

/** The thumbnail a notification shows: 128 px, or the nearest size the avatar has. */
export function notificationIcon(payload: PushPayload): string | undefined {
  if (payload.icon) return payload.icon;
  const thumbnails = payload.avatar?.thumbnails;
  if (!thumbnails) return undefined;
  const sizes = Object.keys(thumbnails).map(Number).sort((a, b) => Math.abs(a - 128) - Math.abs(b - 128));
  return sizes.length > 0 ? thumbnails[String(sizes[0])] : undefined;
}
