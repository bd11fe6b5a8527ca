/**
 * Test support shared by the services' suites (imported as `@avatar-pipeline/kit/testing`; never
 * loaded by a service at run time).
 */
import type { Hono } from 'hono';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey } from 'jose';
import type { Registry } from 'prom-client';
import type { TokenPolicy } from './auth.js';
import { toBinary, toCloudEvent, type OutgoingEvent } from './cloudevents.js';
import type { AppEnv } from './service.js';

export * from './memory-objects.js';
export * from './otlp-receiver.js';
export * from './test-issuer.js';

export interface Delivery {
  status: number;
  body: string;
  /** The reply event, when the service answered 200 with one. */
  reply: ReturnType<typeof toCloudEvent> | undefined;
  /** The JSON error, when the service answered 4xx/5xx. */
  error: { code: string; message: string } | undefined;
}

/** Delivers an event to an app in binary mode, as the broker does (`extra`: e.g. its Authorization), and parses the answer. */
export async function deliverEvent(app: Hono<AppEnv>, event: OutgoingEvent, path = '/events', extra: Record<string, string> = {}): Promise<Delivery> {
  const { headers, body } = toBinary(event);
  const res = await app.request(path, { method: 'POST', headers: { ...headers, ...extra }, body });
  const text = await res.text();
  const replyHeaders: Record<string, string> = {};
  res.headers.forEach((value, name) => (replyHeaders[name] = value));
  return {
    status: res.status,
    body: text,
    reply: res.status === 200 ? toCloudEvent(replyHeaders, text) : undefined,
    error: res.status >= 400 ? (JSON.parse(text) as { error: { code: string; message: string } }).error : undefined,
  };
}

/** Sum of a metric's series (`series` picks e.g. a histogram's `_count`) whose labels include `labels`. */
export async function metricValue(registry: Registry, metric: string, labels: Record<string, string> = {}, series = metric): Promise<number> {
  const found = registry.getSingleMetric(metric);
  if (!found) return 0;
  const { values } = await found.get();
  return values
    .filter((v) => ((v as { metricName?: string }).metricName ?? metric) === series && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l))
    .reduce((sum, v) => sum + v.value, 0);
}

/** The issuer of Knative's delivery tokens in tests: a cluster's service account issuer. */
export const TEST_EVENTS_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface EventTokens {
  /** What the service under test verifies deliveries with: this signer's key, issuer and audience. */
  policy: TokenPolicy;
  /** A token as Knative attaches it to a delivery for `audience` (default: the policy's). */
  sign(audience?: string): Promise<string>;
  /** Authorization headers an event endpoint must refuse, by what is wrong with them. */
  forged(): Promise<Record<string, Record<string, string>>>;
}

/** Signs delivery tokens as Knative's OIDC token provider does (a service account token, RS256), and forges bad ones. */
export async function eventTokens(audience: string): Promise<EventTokens> {
  const kid = 'service-account-key';
  const own = await generateKeyPair('RS256');
  const stranger = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(own.publicKey)), kid, alg: 'RS256', use: 'sig' };
  const now = () => Math.floor(Date.now() / 1000);
  const mint = (o: { audience?: string; issuer?: string; exp?: number; key?: CryptoKey } = {}) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(o.issuer ?? TEST_EVENTS_ISSUER)
      .setAudience(o.audience ?? audience)
      .setSubject('system:serviceaccount:avatar-pipeline:trigger-oidc-eventing.knative.dev-trigger')
      .setIssuedAt()
      .setExpirationTime(o.exp ?? now() + 3600)
      .sign(o.key ?? own.privateKey);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  return {
    policy: { keys: createLocalJWKSet({ keys: [jwk] }), issuer: TEST_EVENTS_ISSUER, audience: [audience], algorithms: ['RS256'] },
    sign: (other) => mint(other === undefined ? {} : { audience: other }),
    forged: async () => ({
      'no token': {},
      'another scheme': { authorization: 'Basic YWRtaW46YWRtaW4=' },
      'a token for another audience': bearer(await mint({ audience: 'serving.knative.dev/service/avatar-pipeline/someone-else' })),
      'a token from another issuer': bearer(await mint({ issuer: 'https://issuer.example' })),
      'an expired token': bearer(await mint({ exp: now() - 60 })),
      'a token signed by another key': bearer(await mint({ key: stranger.privateKey })),
      'an unsigned token': bearer(new UnsecuredJWT({}).setIssuer(TEST_EVENTS_ISSUER).setAudience(audience).setExpirationTime('1h').encode()),
    }),
  };
}
