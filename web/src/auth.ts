/**
 * Where the page gets its bearer token. Locally that is the dev issuer (`POST /dev/token`); a
 * game implements TokenSource over its own login (Cognito, its account service, ...) and passes
 * it to the page instead: nothing else in the client knows where tokens come from.
 */
import * as z from 'zod/mini';
import { ApiError } from './api.js';

export interface Session {
  playerId: string;
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

export interface TokenSource {
  /** The signed-in player, if any. */
  current(): Session | undefined;
  /** A token valid for a while yet, renewed when needed; throws when signed out. */
  token(): Promise<string>;
  signOut(): void;
}

const sessionSchema = z.object({ playerId: z.string(), token: z.string(), expiresAt: z.number() });
const tokenSchema = z.object({ token: z.string(), expiresIn: z.number() });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** A token this close to expiry is renewed before use. */
const RENEW_MARGIN_MS = 60_000;

export interface DevTokenOptions {
  /** The sessionStorage key (pages of one origin share the tab's storage: each role its own key). */
  key?: string;
  /** Roles the token carries (the moderator page asks for `moderator`). */
  roles?: readonly string[];
}

/**
 * Dev tokens for a player id the user types, kept in sessionStorage (per tab, gone when the tab
 * closes). The dev issuer signs anything it is asked: local use only.
 */
export class DevTokenSource implements TokenSource {
  private readonly key: string;
  private readonly roles: readonly string[] | undefined;

  constructor(
    private readonly baseUrl = '',
    private readonly storage: Storage = sessionStorage,
    options: DevTokenOptions = {},
  ) {
    this.key = options.key ?? 'avatar-pipeline.session';
    this.roles = options.roles;
  }

  current(): Session | undefined {
    const saved = this.storage.getItem(this.key);
    if (!saved) return undefined;
    try {
      const parsed = sessionSchema.safeParse(JSON.parse(saved));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async signIn(playerId: string): Promise<Session> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(this.roles ? { playerId, roles: this.roles } : { playerId }),
      });
    } catch {
      throw new ApiError(0, 'network', 'the server could not be reached');
    }
    const body: unknown = await res.json().catch(() => undefined);
    if (!res.ok) {
      const error = errorSchema.safeParse(body);
      // The issuer validates the id like every service: a 400 is a bad player id.
      if (res.status === 400) throw new ApiError(400, 'invalid_player_id', error.success ? error.data.error.message : 'invalid player id');
      throw error.success ? new ApiError(res.status, error.data.error.code, error.data.error.message) : new ApiError(res.status, `http_${res.status}`, 'sign-in failed');
    }
    const parsed = tokenSchema.safeParse(body);
    if (!parsed.success) throw new ApiError(res.status, 'unexpected_response', 'unexpected answer from the token endpoint');
    const session = { playerId, token: parsed.data.token, expiresAt: Date.now() + parsed.data.expiresIn * 1000 };
    this.storage.setItem(this.key, JSON.stringify(session));
    return session;
  }

  async token(): Promise<string> {
    const session = this.current();
    if (!session) throw new ApiError(401, 'unauthorized', 'not signed in');
    if (session.expiresAt - Date.now() > RENEW_MARGIN_MS) return session.token;
    return (await this.signIn(session.playerId)).token;
  }

  signOut(): void {
    this.storage.removeItem(this.key);
  }
}
