/**
 * Which players' tokens the APIs accept, from the JWT_* variables: the issuers and where their
 * keys are, the audiences of ID tokens, the app clients of access tokens (see player-auth.ts).
 */
import { z } from 'zod';
import { ConfigError, env } from './config.js';

export const authEnv = {
  JWT_ISSUER: z
    .string()
    .min(1)
    .optional()
    .describe('The one token issuer (`iss`). JWT_ISSUER or JWT_ISSUERS is required, not both.'),
  JWT_JWKS_URL: env.url().optional().describe('JWT_ISSUER\'s keys (default `<issuer>/.well-known/jwks.json`).'),
  JWT_ISSUERS: env.list().describe('Several issuers instead (e.g. Cognito user pools), comma-separated: the token\'s `iss` picks one.'),
  JWT_JWKS_URLS: env
    .list()
    .pipe(z.array(env.url()))
    .describe('Their JWKS URLs, one per JWT_ISSUERS entry in order (default each `<issuer>/.well-known/jwks.json`, Cognito\'s).'),
  JWT_AUDIENCE: env.list().describe('Accepted `aud` of ID tokens (`token_use: id`, or none), comma-separated; unset: ID tokens are refused.'),
  JWT_CLIENT_IDS: env
    .list()
    .describe('Accepted `client_id` of access tokens (`token_use: access`: Cognito\'s, no `aud`); unset: access tokens are refused. JWT_AUDIENCE or JWT_CLIENT_IDS is required.'),
  JWT_ALGORITHMS: env.list(['RS256', 'ES256']).describe('Allowed signature algorithms.'),
  JWT_PLAYER_CLAIM: z.string().min(1).default('sub').describe('The claim holding the player id (`[A-Za-z0-9._-]`, 1-128 characters).'),
  JWT_ACCESS_PLAYER_CLAIM: z
    .string()
    .min(1)
    .optional()
    .describe('That claim in access tokens (default JWT_PLAYER_CLAIM): Cognito names the username `username` there, `cognito:username` in ID tokens.'),
  JWT_ROLES_CLAIM: z
    .string()
    .min(1)
    .default('roles')
    .describe('The claim holding the player\'s roles, an array of strings (Cognito groups: `cognito:groups`); a token without it, or with anything but an array there, has no roles.'),
  MODERATOR_ROLE: z.string().min(1).default('moderator').describe('The role (in JWT_ROLES_CLAIM) that opens the moderation API and lets its holder remove or erase any player.'),
};

export type AuthConfig = z.output<z.ZodObject<typeof authEnv>>;

export interface PlayerAuthSettings {
  issuers: { issuer: string; jwksUrl: string }[];
  audiences: string[];
  clientIds: string[];
  algorithms: string[];
  playerClaim: string;
  accessPlayerClaim: string;
  rolesClaim: string;
  moderatorRole: string;
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
    rolesClaim: config.JWT_ROLES_CLAIM,
    moderatorRole: config.MODERATOR_ROLE,
  };
}
