/**
 * Players' bearer tokens, from one or more identity providers. The token's `iss` picks the issuer
 * (read unverified, only to choose whose keys verify it; that issuer is then required), and
 * `token_use` what else it must carry:
 * - ID tokens (`token_use: id`, Cognito's; or no `token_use`, as generic OIDC providers issue):
 *   an accepted `aud`;
 * - access tokens (`token_use: access`, Cognito's, which have no `aud`): an accepted `client_id`;
 * - anything else (`refresh`, ...) is refused.
 * The player id is a claim of the verified token (`sub` unless configured), its roles another
 * (`roles` unless configured: see `requireRole`).
 */
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { decodeJwt, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { bearerToken, invalidToken, remoteJwks, verifyToken } from './auth.js';
import { HttpError } from './errors.js';
import { playerIdSchema } from './events.js';
import { playerAuthSettings, type AuthConfig } from './player-auth-config.js';
import type { AppEnv } from './service.js';

/** An issuer whose tokens are accepted, and its signing keys. */
export interface TrustedIssuer {
  issuer: string;
  keys: JWTVerifyGetKey;
}

export interface AuthOptions {
  issuers: readonly TrustedIssuer[];
  /** ID tokens must name one of these in `aud` (none: ID tokens are refused). */
  audiences: readonly string[];
  /** Access tokens must carry one of these `client_id`s (none, the default: access tokens are refused). */
  clientIds?: readonly string[] | undefined;
  algorithms: readonly string[];
  /** Claim holding the player id (default `sub`). */
  playerClaim?: string | undefined;
  /** Claim holding the player id in access tokens (default `playerClaim`). */
  accessPlayerClaim?: string | undefined;
  /** Seconds of clock skew tolerated on exp/nbf (default 5). */
  clockToleranceSeconds?: number | undefined;
  /** Claim holding the player's roles, an array of strings (default `roles`). */
  rolesClaim?: string | undefined;
}

/** More than any real token carries: a forged one cannot make each request scan a huge list. */
const MAX_ROLES = 100;

/** The roles a claim holds: its strings when it is an array; anything else (absent, a string, an object) is none. */
export function rolesOf(claim: unknown): string[] {
  return Array.isArray(claim) ? claim.filter((role): role is string => typeof role === 'string').slice(0, MAX_ROLES) : [];
}

/** Auth options from the shared JWT_* variables (see `authEnv`), each issuer's JWKS fetched remotely. */
export function authFromConfig(config: AuthConfig): AuthOptions {
  const settings = playerAuthSettings(config);
  return { ...settings, issuers: settings.issuers.map(({ issuer, jwksUrl }) => ({ issuer, keys: remoteJwks(jwksUrl) })) };
}

/** The claims, unverified: only to pick the issuer and the kind of token. */
function unverifiedClaims(token: string): JWTPayload {
  try {
    return decodeJwt(token);
  } catch {
    throw invalidToken('token is invalid');
  }
}

/** Sets `playerId` and `roles` from a token `options` accept; 401 otherwise (503 while the issuer's keys cannot be fetched). */
export function bearerAuth(options: AuthOptions) {
  const keysOf = new Map(options.issuers.map(({ issuer, keys }) => [issuer, keys]));
  const clientIds = new Set(options.clientIds ?? []);
  const playerClaim = options.playerClaim ?? 'sub';
  const accessPlayerClaim = options.accessPlayerClaim ?? playerClaim;
  const rolesClaim = options.rolesClaim ?? 'roles';
  return createMiddleware<AppEnv>(async (c, next) => {
    const token = bearerToken(c);
    const { iss, token_use: use } = unverifiedClaims(token);
    const keys = typeof iss === 'string' ? keysOf.get(iss) : undefined;
    if (typeof iss !== 'string' || keys === undefined) {
      // Names the refused issuer: a JWT_ISSUERS entry off by a trailing slash shows here.
      if (typeof iss === 'string') c.get('log')?.info({ iss: iss.slice(0, 200) }, 'token from an issuer not configured');
      throw invalidToken('token claim iss is not accepted');
    }
    // The kind, read unverified, picks the checks; the signature verified next covers it too.
    const access = use === 'access';
    const claim = access ? accessPlayerClaim : playerClaim;
    const check = { keys, issuer: iss, algorithms: options.algorithms, clockToleranceSeconds: options.clockToleranceSeconds };
    const payload = access
      ? await verifyToken(c, token, check, [claim, 'client_id'])
      : await verifyToken(c, token, { ...check, audience: options.audiences }, [claim]);
    if (access) {
      const clientId = payload['client_id'];
      if (typeof clientId !== 'string' || !clientIds.has(clientId)) throw invalidToken('token claim client_id is not accepted');
    } else if (use !== undefined && use !== 'id') {
      throw invalidToken('token claim token_use is not accepted');
    }
    const player = playerIdSchema.safeParse(payload[claim]);
    if (!player.success) throw invalidToken(`claim ${claim} is not a usable player id`);
    c.set('playerId', player.data);
    c.set('roles', rolesOf(payload[rolesClaim]));
    await next();
  });
}

/** Whether the request's verified token (`bearerAuth`, before) carries `role`. */
export function hasRole(c: Context<AppEnv>, role: string): boolean {
  return (c.get('roles') ?? []).includes(role);
}

/** After `bearerAuth`: 403 `forbidden` unless the token carries `role` (e.g. the config's MODERATOR_ROLE). */
export function requireRole(role: string) {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (!hasRole(c, role)) throw new HttpError(403, 'forbidden', `this needs the ${role} role`);
    await next();
  });
}
