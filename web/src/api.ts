/**
 * The avatar API as a game client sees it. Shared by the page and the service worker, so it uses
 * nothing but fetch. Every answer is checked against the shape the client relies on, and every
 * failure becomes an ApiError carrying the server's `{"error":{"code","message"}}`.
 */
import * as z from 'zod/mini';

/** `in_review`: moderation was unsure and a moderator decides (not an outcome: it goes on from there). */
export const uploadStatuses = ['pending', 'processing', 'in_review', 'ready', 'rejected', 'failed', 'expired'] as const;
export type UploadStatus = (typeof uploadStatuses)[number];
/** `expired`: the upload never arrived before its ticket ran out (the server ends it some time later). */
export const terminalStatuses: readonly UploadStatus[] = ['ready', 'rejected', 'failed', 'expired'];

export const avatarSchema = z.object({
  /** Square renditions by edge length in pixels ("64", "128", "256"). */
  thumbnails: z.record(z.string(), z.url()),
  full: z.url(),
});
export type Avatar = z.infer<typeof avatarSchema>;

export const reasonSchema = z.object({ code: z.string(), message: z.string() });
export type Reason = z.infer<typeof reasonSchema>;

const profileSchema = z.object({ playerId: z.string(), avatar: avatarSchema, updatedAt: z.string() });
export type Profile = z.infer<typeof profileSchema>;

const uploadSchema = z.object({
  uploadId: z.string(),
  status: z.enum(uploadStatuses),
  reason: z.optional(reasonSchema),
  avatar: z.optional(avatarSchema),
  updatedAt: z.optional(z.string()),
});
export type Upload = z.infer<typeof uploadSchema>;

const ticketSchema = z.object({
  uploadId: z.string(),
  url: z.url(),
  fields: z.record(z.string(), z.string()),
  expiresAt: z.string(),
  maxBytes: z.number(),
});
export type UploadTicket = z.infer<typeof ticketSchema>;

const vapidKeySchema = z.object({ publicKey: z.string().check(z.regex(/^[A-Za-z0-9_-]+$/)) });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when the server could not be reached. */
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds the server asked us to wait (Retry-After), if it did. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Returns a bearer token for the signed-in player (see auth.ts). */
export type TokenProvider = () => Promise<string>;

export interface ApiOptions {
  /** Origin (and path prefix) of the API; '' means the page's own origin. */
  baseUrl: string;
  token: TokenProvider;
  fetch?: typeof fetch;
}

function retryAfter(res: Response): number | undefined {
  const value = Number(res.headers.get('retry-after'));
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

async function errorFrom(res: Response): Promise<ApiError> {
  const body = errorSchema.safeParse(await res.json().catch(() => undefined));
  return body.success
    ? new ApiError(res.status, body.data.error.code, body.data.error.message, retryAfter(res))
    : new ApiError(res.status, `http_${res.status}`, `the server answered ${res.status} ${res.statusText}`.trim(), retryAfter(res));
}

export interface SendOptions {
  auth?: boolean;
  method?: string;
  json?: unknown;
  /** A 404 answers undefined instead of throwing. */
  allow404?: boolean;
}

/** Requests and answer checks shared by the API clients (this one, and the moderator's: moderation.ts). */
export class ApiClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: ApiOptions) {
    // Bound: a bare `fetch` called as a method of another object throws "Illegal invocation".
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  protected async send(path: string, request: SendOptions): Promise<Response | undefined> {
    const headers = new Headers({ accept: 'application/json' });
    if (request.auth) headers.set('authorization', `Bearer ${await this.options.token()}`);
    if (request.json !== undefined) headers.set('content-type', 'application/json');
    let res: Response;
    try {
      res = await this.fetch(`${this.options.baseUrl}${path}`, {
        method: request.method ?? 'GET',
        headers,
        ...(request.json !== undefined ? { body: JSON.stringify(request.json) } : {}),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'network', 'the server could not be reached');
    }
    if (res.ok) return res;
    if (res.status === 404 && request.allow404) return undefined;
    throw await errorFrom(res);
  }

  protected async parse<T>(schema: z.ZodMiniType<T>, res: Response): Promise<T> {
    const parsed = schema.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success) throw new ApiError(res.status, 'unexpected_response', 'the server sent an answer this client does not understand');
    return parsed.data;
  }
}

export class AvatarApi extends ApiClient {
  /** The player's current avatar, or undefined while they have none. */
  async profile(playerId: string): Promise<Profile | undefined> {
    const res = await this.send(`/v1/players/${encodeURIComponent(playerId)}/profile`, { auth: true, allow404: true });
    return res ? this.parse(profileSchema, res) : undefined;
  }

  /** Asks for a presigned POST for one file of this type and size. */
  async requestUpload(contentType: string, contentLength: number): Promise<UploadTicket> {
    const res = await this.send('/v1/uploads', { auth: true, method: 'POST', json: { contentType, contentLength } });
    return this.parse(ticketSchema, res!);
  }

  async upload(uploadId: string): Promise<Upload> {
    const res = await this.send(`/v1/uploads/${encodeURIComponent(uploadId)}`, { auth: true });
    return this.parse(uploadSchema, res!);
  }

  /** The VAPID public key (base64url, uncompressed P-256) to subscribe with. */
  async vapidPublicKey(): Promise<string> {
    const res = await this.send('/v1/push/vapid-public-key', {});
    return (await this.parse(vapidKeySchema, res!)).publicKey;
  }

  /** Registers (or refreshes) this device's push subscription for the signed-in player. */
  async saveSubscription(subscription: PushSubscriptionJSON): Promise<void> {
    await this.send('/v1/push/subscriptions', { auth: true, method: 'POST', json: subscription });
  }

  async deleteSubscription(endpoint: string): Promise<void> {
    await this.send('/v1/push/subscriptions', { auth: true, method: 'DELETE', json: { endpoint }, allow404: true });
  }
}
