/**
 * Bearer JWT verification: signature against a JWKS, issuer, audience, expiry and an algorithm
 * allow-list (so `alg: none` and HMAC confusion never pass). Players' tokens go through
 * `bearerAuth` (player-auth.ts); event deliveries carry Knative's OIDC token (see
 * `eventAuthFromConfig`).
 */
import { readFile } from 'node:fs/promises';
import type { Context } from 'hono';
import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ConfigError, type EventAuthConfig } from './config.js';
import { HttpError } from './errors.js';
import type { Logger } from './logger.js';
import type { AppEnv } from './service.js';

/** What a bearer token must carry: a signature by one of `keys`, `iss`, one of the audiences, `exp`, an allowed `alg`. */
export interface TokenPolicy {
  keys: JWTVerifyGetKey;
  issuer: string;
  audience: string | readonly string[];
  algorithms: readonly string[];
  /** Seconds of clock skew tolerated on exp/nbf (default 5). */
  clockToleranceSeconds?: number | undefined;
}

/** A `TokenPolicy` whose audience may be left unchecked (Cognito's access tokens carry none). */
export type TokenCheck = Omit<TokenPolicy, 'audience'> & { audience?: TokenPolicy['audience'] | undefined };

/** A token file's content, read at each use: the kubelet and Knative rewrite them as tokens rotate. */
export async function readTokenFile(file: string): Promise<string> {
  return (await readFile(file, 'utf8')).trim();
}

export interface RemoteJwksOptions {
  /** Sent as `Authorization: Bearer` with every fetch (the pod's service account token). */
  tokenFile?: string | undefined;
}

/** A JWKS fetched over HTTP and cached, refetched when an unknown `kid` shows up. */
export function remoteJwks(url: string, options: RemoteJwksOptions = {}): JWTVerifyGetKey {
  const { tokenFile } = options;
  return createRemoteJWKSet(new URL(url), {
    cacheMaxAge: 10 * 60_000,
    cooldownDuration: 30_000,
    timeoutDuration: 5000,
    ...(tokenFile
      ? {
          [customFetch]: async (resource: string, init: { headers: Headers }) => {
            init.headers.set('authorization', `Bearer ${await readTokenFile(tokenFile)}`);
            return fetch(resource, init);
          },
        }
      : {}),
  });
}

/** A 401 for a token that is there but not accepted, saying why (never echoing the token). */
export function invalidToken(description: string): HttpError {
  return new HttpError(401, 'unauthorized', description, {
    'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description.replace(/"/g, "'")}"`,
  });
}

/** The request's bearer token; a 401 asking for one when there is none. */
export function bearerToken(c: Context<AppEnv>): string {
  const header = c.req.header('authorization');
  const match = header ? /^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i.exec(header) : null;
  if (!match?.[1]) {
    throw new HttpError(401, 'unauthorized', 'a bearer token is required', { 'WWW-Authenticate': 'Bearer' });
  }
  return match[1];
}

/**
 * Verifies `token` against `check` (`exp` is always required) and returns its claims; throws the
 * 401, or a 503 when the signing keys cannot be fetched.
 */
export async function verifyToken(c: Context<AppEnv>, token: string, check: TokenCheck, requiredClaims: readonly string[] = []): Promise<JWTPayload> {
  const { audience } = check;
  try {
    const { payload } = await jwtVerify(token, check.keys, {
      issuer: check.issuer,
      ...(audience === undefined ? {} : { audience: typeof audience === 'string' ? audience : [...audience] }),
      algorithms: [...check.algorithms],
      requiredClaims: ['exp', ...requiredClaims],
      clockTolerance: check.clockToleranceSeconds ?? 5,
    });
    return payload;
  } catch (err) {
    if (keysUnavailable(err)) {
      // Not the caller's fault: a 401 would tell clients to throw away a good token.
      c.get('log')?.warn({ err }, 'signing keys unavailable');
      throw new HttpError(503, 'auth_unavailable', 'tokens cannot be verified right now', { 'Retry-After': '5' });
    }
    throw invalidToken(describeJoseError(err));
  }
}

/** Verifies the request's bearer token against `policy` (see `verifyToken`). */
export async function verifyBearer(c: Context<AppEnv>, policy: TokenPolicy, requiredClaims: readonly string[] = []): Promise<JWTPayload> {
  return verifyToken(c, bearerToken(c), policy, requiredClaims);
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

/**
 * The policy for Knative's OIDC delivery tokens from EVENTS_OIDC_*: undefined when none is set
 * (event endpoints then take anything, so that is logged as a warning); a partial set is a
 * configuration error rather than a silent off.
 */
export function eventAuthFromConfig(config: EventAuthConfig, logger: Logger): TokenPolicy | undefined {
  const { EVENTS_OIDC_ISSUER: issuer, EVENTS_OIDC_AUDIENCES: audiences, EVENTS_OIDC_JWKS_URL: jwksUrl } = config;
  const missing = [
    ...(issuer === undefined ? ['EVENTS_OIDC_ISSUER'] : []),
    ...(audiences.length === 0 ? ['EVENTS_OIDC_AUDIENCES'] : []),
    ...(jwksUrl === undefined ? ['EVENTS_OIDC_JWKS_URL'] : []),
  ];
  if (missing.length === 3) {
    logger.warn('EVENTS_OIDC_* not set: event endpoints take deliveries without a token, from anyone who can reach them');
    return undefined;
  }
  if (issuer === undefined || jwksUrl === undefined || missing.length > 0) {
    throw new ConfigError(`invalid configuration: ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required with the other EVENTS_OIDC_* variables`);
  }
  return {
    keys: remoteJwks(jwksUrl, { tokenFile: config.EVENTS_OIDC_JWKS_TOKEN_FILE }),
    issuer,
    audience: audiences,
    algorithms: config.EVENTS_OIDC_ALGORITHMS,
  };
}
