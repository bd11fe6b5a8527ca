/**
 * The broker's OIDC delivery tokens, reused per destination service for a while, as Knative's token
 * provider reuses the token it got for an audience until shortly before it expires (eventing
 * pkg/auth, OIDCTokenProvider's cache). Minting one per attempt signs an ES256 JWT in the broker's
 * process for every delivery (several per upload), which the cluster never does; each subscriber
 * still verifies every token it gets.
 */
import type { Destination, ServiceName } from '@avatar-pipeline/kit/topology';

export interface TokenCacheOptions {
  /**
   * How long a token is reused. Keep it well inside the minted tokens' lifetime (the dev issuer's
   * is an hour), so a cached token never reaches a subscriber close to its expiry.
   */
  maxAgeMs: number;
  /** Milliseconds now (tests). */
  now?: () => number;
}

/** The default reuse period: 5 minutes, so a reused dev-issuer token has at least 55 minutes left. */
export const TOKEN_REUSE_MS = 5 * 60_000;

export function cachedTokens(mint: (destination: Destination) => Promise<string>, options: TokenCacheOptions): (destination: Destination) => Promise<string> {
  const now = options.now ?? Date.now;
  const cache = new Map<ServiceName, { token: Promise<string>; until: number }>();
  return (destination) => {
    const hit = cache.get(destination.service);
    if (hit && now() < hit.until) return hit.token;
    // Concurrent attempts to one service share a single mint; a failed mint is not kept.
    const token = mint(destination);
    const entry = { token, until: now() + options.maxAgeMs };
    cache.set(destination.service, entry);
    token.catch(() => {
      if (cache.get(destination.service) === entry) cache.delete(destination.service);
    });
    return token;
  };
}
