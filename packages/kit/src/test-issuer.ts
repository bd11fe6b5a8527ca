/**
 * A stand-in Cognito user pool for tests: an HTTP server publishing the pool's JWKS at
 * `<issuer>/.well-known/jwks.json`, as Cognito does, and RS256 tokens shaped like the pool's ID
 * and access tokens.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

/** Any claims, of any type: tests forge tokens too. */
type Claims = Record<string, unknown>;

export interface TestIssuerToken {
  /** Default `player-1`. */
  sub?: string;
  /** Claims added or replaced (`undefined` removes one). */
  claims?: Claims;
  /** Seconds since the epoch; default an hour from now, as Cognito's. */
  exp?: number;
  /** Another key to sign with (the header keeps this pool's `kid` unless `kid` says otherwise). */
  key?: CryptoKey;
  kid?: string;
}

export interface TestIssuer {
  /** `http://127.0.0.1:<port>/<pool id>`, as `https://cognito-idp.<region>.amazonaws.com/<pool id>`. */
  issuer: string;
  kid: string;
  privateKey: CryptoKey;
  /** JWKS fetches so far. */
  fetches(): number;
  /** An ID token: `token_use: id`, `aud` the app client. */
  idToken(clientId: string, token?: TestIssuerToken): Promise<string>;
  /** An access token: `token_use: access`, `client_id` the app client, no `aud`. */
  accessToken(clientId: string, token?: TestIssuerToken): Promise<string>;
  /** Exactly `claims` (plus `iss`, `iat`, `exp` unless given), signed by this pool. */
  sign(claims: Claims, token?: Omit<TestIssuerToken, 'claims'>): Promise<string>;
  close(): Promise<void>;
}

export async function startTestIssuer(poolId = 'us-east-1_TestPool'): Promise<TestIssuer> {
  const kid = `${poolId}-key`;
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });
  let fetches = 0;
  const server = createServer((req, res) => {
    if (req.url !== `/${poolId}/.well-known/jwks.json`) return void res.writeHead(404).end();
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${poolId}`;
  const now = () => Math.floor(Date.now() / 1000);

  const sign = (claims: Claims, token: Omit<TestIssuerToken, 'claims'> = {}) =>
    new SignJWT({ iss: issuer, iat: now(), exp: token.exp ?? now() + 3600, ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: token.kid ?? kid })
      .sign(token.key ?? privateKey);
  // What every Cognito token carries, then the kind's own claims.
  const common = (token: TestIssuerToken) => ({
    sub: token.sub ?? 'player-1',
    origin_jti: randomUUID(),
    event_id: randomUUID(),
    auth_time: now(),
    jti: randomUUID(),
  });
  const username = (token: TestIssuerToken) => `user-${token.sub ?? 'player-1'}`;

  return {
    issuer,
    kid,
    privateKey,
    fetches: () => fetches,
    idToken: (clientId, token = {}) =>
      sign({ ...common(token), aud: clientId, token_use: 'id', 'cognito:username': username(token), email_verified: true, ...token.claims }, token),
    accessToken: (clientId, token = {}) =>
      sign({ ...common(token), client_id: clientId, token_use: 'access', scope: 'aws.cognito.signin.user.admin', username: username(token), ...token.claims }, token),
    sign,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
