/**
 * Bearer JWT auth: signature against a JWKS, issuer, audience, expiry and an algorithm
 * allow-list (so `alg: none` and HMAC confusion never pass). Sets `playerId` from a claim.
 */
import { createMiddleware } from 'hono/factory';
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { playerIdSchema } from './events.js';
import { HttpError } from './errors.js';
import type { AppEnv } from './service.js';

export interface AuthOptions {
  keys: JWTVerifyGetKey;
  issuer: string;
  audience: string;
  algorithms: readonly string[];
  /** Claim holding the player id (default `sub`). */
  playerClaim?: string;
  /** Seconds of clock skew tolerated on exp/nbf (default 5). */
  clockToleranceSeconds?: number;
}

/** A JWKS fetched over HTTP and cached, refetched when an unknown `kid` shows up. */
export function remoteJwks(url: string): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL(url), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5000 });
}

/** Auth options from the shared JWT_* variables (see `authEnv`), with the JWKS fetched remotely. */
export function authFromConfig(config: {
  JWT_JWKS_URL: string;
  JWT_ISSUER: string;
  JWT_AUDIENCE: string;
  JWT_ALGORITHMS: readonly string[];
  JWT_PLAYER_CLAIM: string;
}): AuthOptions {
  return {
    keys: remoteJwks(config.JWT_JWKS_URL),
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    algorithms: config.JWT_ALGORITHMS,
    playerClaim: config.JWT_PLAYER_CLAIM,
  };
}

function unauthorized(description: string): HttpError {
  return new HttpError(401, 'unauthorized', description, {
    'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description.replace(/"/g, "'")}"`,
  });
}

export function bearerAuth(options: AuthOptions) {
  const claim = options.playerClaim ?? 'sub';
  return createMiddleware<AppEnv>(async (c, next) => {
    const header = c.req.header('authorization');
    const match = header ? /^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i.exec(header) : null;
    if (!match?.[1]) {
      throw new HttpError(401, 'unauthorized', 'a bearer token is required', { 'WWW-Authenticate': 'Bearer' });
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(match[1], options.keys, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: [...options.algorithms],
        requiredClaims: ['exp', claim],
        clockTolerance: options.clockToleranceSeconds ?? 5,
      }));
    } catch (err) {
      if (keysUnavailable(err)) {
        // Not the caller's fault: a 401 would tell clients to throw away a good token.
        c.get('log')?.warn({ err }, 'signing keys unavailable');
        throw new HttpError(503, 'auth_unavailable', 'tokens cannot be verified right now', { 'Retry-After': '5' });
      }
      throw unauthorized(describeJoseError(err));
    }
    const player = playerIdSchema.safeParse(payload[claim]);
    if (!player.success) throw unauthorized(`claim ${claim} is not a usable player id`);
    c.set('playerId', player.data);
    await next();
  });
}

function describeJoseError(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim} is not accepted`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token was not signed by a known key';
  return 'token is invalid';
}

/**
 * The JWKS could not be fetched or read: a timeout, a network error (not a JOSEError), a non-200
 * answer or unparsable body (plain JOSEError), or a malformed key set.
 */
function keysUnavailable(err: unknown): boolean {
  return (
    !(err instanceof errors.JOSEError) ||
    err instanceof errors.JWKSTimeout ||
    err instanceof errors.JWKSInvalid ||
    err.code === errors.JOSEError.code
  );
}
