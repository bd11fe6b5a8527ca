/**
 * The dev identity issuer: a JWKS and `POST /dev/token` minting player tokens (with `roles`, e.g. a
 * moderator's). Local stack and tests only; nothing in the services knows it exists beyond the
 * JWKS URL they are given.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { z } from 'zod';
import { playerIdSchema } from '@avatar-pipeline/kit/events';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { createMetrics } from '@avatar-pipeline/kit/metrics';
import { createService, type Service } from '@avatar-pipeline/kit/service';
import { jsonBody } from '@avatar-pipeline/kit/validation';

export const DEV_ALGORITHM = 'ES256';

/** Roles as the services read them from the `roles` claim (kit JWT_ROLES_CLAIM's default): a few short names. */
export const devRolesSchema = z.array(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a role is 1-32 characters of a-z 0-9 - starting with a letter')).max(10);

const tokenRequestSchema = z.object({ playerId: playerIdSchema, roles: devRolesSchema.optional() });

export interface IssuerOptions {
  issuer: string;
  audience: string;
  logger: Logger;
  /** Keeps the signing key here so tokens survive restarts; omitted means a fresh key. */
  directory?: string;
  tokenTtlSeconds?: number;
}

export interface DevIssuer {
  service: Service;
  /** Mints a token directly (tests). */
  mint(playerId: string, claims?: Record<string, unknown>): Promise<string>;
  /** A token for another audience: the broker's deliveries, as Knative's OIDC token provider mints them. */
  mintFor(audience: string, subject: string): Promise<string>;
  publicJwk: JWK;
}

async function signingKey(directory: string | undefined): Promise<JWK> {
  const file = directory ? join(directory, 'dev-issuer-key.json') : undefined;
  if (file) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as JWK;
    } catch {
      // No key yet: make one below.
    }
  }
  const { privateKey } = await generateKeyPair(DEV_ALGORITHM, { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: `dev-${Date.now().toString(36)}`, alg: DEV_ALGORITHM, use: 'sig' };
  if (file && directory) {
    await mkdir(directory, { recursive: true });
    await writeFile(file, JSON.stringify(jwk), { mode: 0o600 });
  }
  return jwk;
}

export async function createDevIssuer(options: IssuerOptions): Promise<DevIssuer> {
  const privateJwk = await signingKey(options.directory);
  const { d: _d, ...publicJwk } = privateJwk;
  const key = await importJWK(privateJwk, DEV_ALGORITHM);
  const ttl = options.tokenTtlSeconds ?? 3600;

  const sign = (subject: string, audience: string, claims: Record<string, unknown> = {}) =>
    new SignJWT({ ...claims })
      .setProtectedHeader({ alg: DEV_ALGORITHM, kid: privateJwk.kid ?? 'dev', typ: 'JWT' })
      .setIssuer(options.issuer)
      .setAudience(audience)
      .setSubject(subject)
      .setIssuedAt()
      .setExpirationTime(`${ttl}s`)
      .sign(key);
  const mint = (playerId: string, claims: Record<string, unknown> = {}) => sign(playerId, options.audience, claims);

  // No runtime metrics of its own: it runs inside the stack's process, whose broker exports them.
  const service = createService({ name: 'dev-issuer', logger: options.logger, metrics: createMetrics('dev-issuer', { defaults: false }) });
  const { app } = service;
  app.get('/.well-known/jwks.json', (c) => c.json({ keys: [publicJwk] }));
  app.get('/.well-known/openid-configuration', (c) =>
    c.json({ issuer: options.issuer, jwks_uri: new URL('/.well-known/jwks.json', options.issuer).href, id_token_signing_alg_values_supported: [DEV_ALGORITHM] }),
  );
  app.post('/dev/token', jsonBody(tokenRequestSchema), async (c) => {
    const { playerId, roles } = c.get('body');
    // No roles, no claim: a player's token, exactly as before roles existed.
    const token = await mint(playerId, roles && roles.length > 0 ? { roles: [...new Set(roles)] } : {});
    return c.json({ token, tokenType: 'Bearer', expiresIn: ttl });
  });
  return { service, mint, mintFor: (audience, subject) => sign(subject, audience), publicJwk };
}
