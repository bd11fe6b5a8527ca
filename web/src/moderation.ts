/**
 * The moderation API as the moderator page sees it (`/v1/moderation/*`, for tokens carrying the
 * moderator role; players get 403 `forbidden`). Answers are checked like the player's (api.ts).
 */
import * as z from 'zod/mini';
import { ApiClient } from './api.js';

export const reviewStatuses = ['open', 'approved', 'rejected', 'expired'] as const;
export type ReviewStatus = (typeof reviewStatuses)[number];
export const decisions = ['approve', 'reject'] as const;
export type Decision = (typeof decisions)[number];
/** The longest note the server keeps with a decision. */
export const MAX_NOTE_LENGTH = 500;

const labelSchema = z.object({ name: z.string(), parent: z.optional(z.string()), confidence: z.number() });
export type Label = z.infer<typeof labelSchema>;

const reviewSchema = z.object({
  uploadId: z.string(),
  playerId: z.string(),
  status: z.enum(reviewStatuses),
  /** The model's scores: each label with its confidence (0-100). */
  labels: z.array(labelSchema),
  fingerprint: z.string(),
  requestedAt: z.string(),
  uploadedAt: z.string(),
  decision: z.optional(z.object({ by: z.string(), at: z.string(), decision: z.enum(decisions), note: z.optional(z.string()) })),
  /** A short-lived (5 minute) link to the original picture; absent once it is deleted. */
  imageUrl: z.optional(z.url()),
});
export type Review = z.infer<typeof reviewSchema>;

const banSchema = z.object({
  /** The fingerprint itself: banning the same picture twice is one ban. */
  id: z.string(),
  fingerprint: z.string(),
  uploadId: z.string(),
  /** `moderation` (the model), `moderator` (a rejected review) or `manual` (banned by hand); others shown as they are. */
  reason: z.string(),
  by: z.string(),
  createdAt: z.string(),
  labels: z.optional(z.array(labelSchema)),
});
export type Ban = z.infer<typeof banSchema>;

const pageOf = <T>(item: z.ZodMiniType<T>) => z.object({ items: z.array(item), cursor: z.optional(z.string()) });
const reviewPageSchema = pageOf(reviewSchema);
const banPageSchema = pageOf(banSchema);

export interface Page<T> {
  items: T[];
  /** Pass back for the next page; absent on the last one. */
  cursor?: string | undefined;
}

export interface PageRequest {
  limit?: number;
  cursor?: string | undefined;
}

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export class ModerationApi extends ApiClient {
  /** Reviews waiting for a decision, oldest first. */
  async openReviews(page: PageRequest = {}): Promise<Page<Review>> {
    const res = await this.send(`/v1/moderation/reviews${query({ status: 'open', limit: page.limit, cursor: page.cursor })}`, { auth: true });
    return this.parse(reviewPageSchema, res!);
  }

  /** One review in any state, with its decision once there is one. */
  async review(uploadId: string): Promise<Review> {
    const res = await this.send(`/v1/moderation/reviews/${encodeURIComponent(uploadId)}`, { auth: true });
    return this.parse(reviewSchema, res!);
  }

  /** Decides an open review; 409 `already_decided` when another moderator was first. */
  async decide(uploadId: string, decision: Decision, note?: string): Promise<Review> {
    const trimmed = note?.trim();
    const json = trimmed ? { decision, note: trimmed } : { decision };
    const res = await this.send(`/v1/moderation/reviews/${encodeURIComponent(uploadId)}`, { auth: true, method: 'POST', json });
    return this.parse(reviewSchema, res!);
  }

  async bans(page: PageRequest = {}): Promise<Page<Ban>> {
    const res = await this.send(`/v1/moderation/bans${query({ limit: page.limit, cursor: page.cursor })}`, { auth: true });
    return this.parse(banPageSchema, res!);
  }

  /** Bans an upload's picture (and removes it if it is its player's avatar). */
  async ban(uploadId: string): Promise<Ban> {
    const res = await this.send('/v1/moderation/bans', { auth: true, method: 'POST', json: { uploadId } });
    return this.parse(banSchema, res!);
  }

  /** Lifts a ban; false when there was none (already lifted). */
  async liftBan(id: string): Promise<boolean> {
    const res = await this.send(`/v1/moderation/bans/${encodeURIComponent(id)}`, { auth: true, method: 'DELETE', allow404: true });
    return res !== undefined;
  }
}
