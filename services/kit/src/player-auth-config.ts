/**
 * Which players' tokens the APIs accept, from the JWT_* variables: the issuers and where their
 * keys are, the audiences of ID tokens, the app clients of access tokens (see player-auth.ts).
 */
import { z } from 'zod';
import { ConfigError, env } from './config.js';

export const authEnv = {
  /** The single-issuer form; its keys at JWT_JWKS_URL, by default `<issuer>/.well-known/jwks.json`. */
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_JWKS_URL: env.url().optional(),
  /** Several issuers (e.g. Cognito user pools); their keys at JWT_JWKS_URLS, one per issuer in order, or each at `<issuer>/.well-known/jwks.json`. */
  JWT_ISSUERS: env.list(),
  JWT_JWKS_URLS: env.list().pipe(z.array(env.url())),
  /** ID tokens (`token_use: id`, or none) must name one of these in `aud`. */
  JWT_AUDIENCE: env.list(),
  /** Access tokens (`token_use: access`, Cognito's, no `aud`) must carry one of these `client_id`s; none: access tokens are refused. */
  JWT_CLIENT_IDS: env.list(),
  JWT_ALGORITHMS: env.list(['RS256', 'ES256']),
  JWT_PLAYER_CLAIM: z.string().min(1).default('sub'),
  /** The player id's claim in access tokens (default JWT_PLAYER_CLAIM): Cognito names the username `username` there, `cognito:username` in ID tokens. */
  JWT_ACCESS_PLAYER_CLAIM: z.string().min(1).optional(),
};

export type AuthConfig = z.output<z.ZodObject<typeof authEnv>>;

export interface PlayerAuthSettings {
  issuers: { issuer: string; jwksUrl: string }[];
  audiences: string[];
  clientIds: string[];
  algorithms: string[];
  playerClaim: string;
  accessPlayerClaim: string;
}

const isHttpUrl = (value: string) => env.url().safeParse(value).success;

/** Cognito's (and most providers') JWKS location: `<issuer>/.well-known/jwks.json`. */
const wellKnownJwksUrl = (issuer: string) => new URL('.well-known/jwks.json', issuer.endsWith('/') ? issuer : `${issuer}/`).href;

/**
 * The settings the JWT_* variables make together; a ConfigError naming every inconsistency (the
 * variables one by one are `authEnv`'s to check).
 */
export function playerAuthSettings(config: AuthConfig): PlayerAuthSettings {
  const { JWT_ISSUER: single, JWT_JWKS_URL: singleJwks, JWT_ISSUERS: many, JWT_JWKS_URLS: manyJwks } = config;
  const problems: string[] = [];
  if (single === undefined && many.length === 0) problems.push('JWT_ISSUER or JWT_ISSUERS is required');
  if (single !== undefined && many.length > 0) problems.push('JWT_ISSUER and JWT_ISSUERS exclude each other: list every issuer in JWT_ISSUERS');
  if (singleJwks !== undefined && single === undefined) problems.push('JWT_JWKS_URL belongs to JWT_ISSUER (with JWT_ISSUERS, use JWT_JWKS_URLS)');
  if (manyJwks.length > 0 && manyJwks.length !== many.length) {
    problems.push(`JWT_JWKS_URLS needs one URL per JWT_ISSUERS entry, in order (${many.length} issuers, ${manyJwks.length} URLs)`);
  }
  if (new Set(many).size !== many.length) problems.push('JWT_ISSUERS lists an issuer twice');
  if (config.JWT_AUDIENCE.length === 0 && config.JWT_CLIENT_IDS.length === 0) {
    problems.push('JWT_AUDIENCE (for ID tokens) or JWT_CLIENT_IDS (for access tokens) is required');
  }
  const issuers = single !== undefined ? [{ issuer: single, jwksUrl: singleJwks }] : many.map((issuer, i) => ({ issuer, jwksUrl: manyJwks[i] }));
  if (issuers.some(({ issuer, jwksUrl }) => jwksUrl === undefined && !isHttpUrl(issuer))) {
    problems.push(`${single !== undefined ? 'JWT_ISSUER' : 'JWT_ISSUERS'}: an issuer without a JWKS URL must be an http(s) URL (its keys are read at <issuer>/.well-known/jwks.json)`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  return {
    issuers: issuers.map(({ issuer, jwksUrl }) => ({ issuer, jwksUrl: jwksUrl ?? wellKnownJwksUrl(issuer) })),
    audiences: config.JWT_AUDIENCE,
    clientIds: config.JWT_CLIENT_IDS,
    algorithms: config.JWT_ALGORITHMS,
    playerClaim: config.JWT_PLAYER_CLAIM,
    accessPlayerClaim: config.JWT_ACCESS_PLAYER_CLAIM ?? config.JWT_PLAYER_CLAIM,
  };
}
