// A loopback stand-in for what the kind chart's event endpoints need from the Kubernetes API: its
// service account issuer. Like kube-apiserver it signs service account tokens with an RSA key
// (RS256) and serves the public keys at /openid/v1/jwks over TLS (a certificate from a cluster CA of
// its own), only to callers presenting a valid service account token (kind has no anonymous
// discovery binding). It mints what the kubelet and Knative would put in the pods: the token of the
// pod's service account (audience: the issuer, as the API server's own), the broker token a
// SinkBinding mounts, and Knative's delivery tokens for a Trigger's subscriber audience.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { exec } from './exec.mjs';

export const JWKS_PATH = '/openid/v1/jwks';
const TOKEN_TTL_SECONDS = 3600;

/** A CA and a serving certificate for 127.0.0.1 signed by it, made with openssl (P-256, valid one day). */
async function clusterCertificates() {
  const dir = await mkdtemp(join(tmpdir(), 'avatar-pipeline-ca-'));
  try {
    const file = (name) => join(dir, name);
    await writeFile(
      file('openssl.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = avatar-pipeline test cluster CA',
        '[ca]',
        'basicConstraints = critical, CA:TRUE',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        '[server]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth',
        'subjectAltName = IP:127.0.0.1, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local',
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'),
    );
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await exec('openssl', ['req', '-x509', ...key, '-config', file('openssl.cnf'), '-extensions', 'ca', '-days', '1', '-keyout', file('ca.key'), '-out', file('ca.crt')]);
    await exec('openssl', ['req', '-new', ...key, '-config', file('openssl.cnf'), '-subj', '/CN=kube-apiserver', '-keyout', file('server.key'), '-out', file('server.csr')]);
    await exec('openssl', [
      'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-set_serial', '1', '-days', '1',
      '-extfile', file('openssl.cnf'), '-extensions', 'server', '-out', file('server.crt'),
    ]);
    const [ca, cert, serverKey] = await Promise.all(['ca.crt', 'server.crt', 'server.key'].map((name) => readFile(file(name), 'utf8')));
    return { ca, cert, key: serverKey };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Starts the stand-in on 127.0.0.1. `issuer` is its `iss`: the origin it listens on, which is what
 * the chart's in-cluster issuer and JWKS URL are pointed at.
 */
export async function startKubernetesStandIn({ namespace }) {
  const { ca, cert, key: tlsKey } = await clusterCertificates();
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const publicJwk = await exportJWK(publicKey);
  // kube-apiserver's key id is also derived from the public key.
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwks = { keys: [{ ...publicJwk, kid, alg: 'RS256', use: 'sig' }] };
  /** Every JWKS request: the service account that asked (or why it was refused). */
  const fetches = [];
  let issuer;

  const verify = (token, audience) => jwtVerify(token, publicKey, { issuer, audience, algorithms: ['RS256'], requiredClaims: ['exp'] });

  const server = createServer({ cert, key: tlsKey }, async (request, response) => {
    request.resume();
    const json = (status, body) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const path = new URL(request.url, 'https://stand-in').pathname;
    if (request.method !== 'GET' || ![JWKS_PATH, '/.well-known/openid-configuration'].includes(path)) {
      return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
    }
    // The API server authenticates the token (its audiences default to the issuer), then RBAC's
    // system:service-account-issuer-discovery lets every service account read the keys.
    const match = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '');
    const subject = match ? await verify(match[1], issuer).then(({ payload }) => payload.sub, () => undefined) : undefined;
    if (path === JWKS_PATH) fetches.push(subject ? { subject } : { refused: match ? 'invalid token' : 'no token' });
    if (!subject?.startsWith('system:serviceaccount:')) {
      return json(401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
    if (path === JWKS_PATH) return response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(jwks));
    return json(200, { issuer, jwks_uri: `${issuer}${JWKS_PATH}`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  issuer = `https://127.0.0.1:${server.address().port}`;

  /** A token as the TokenRequest API issues it for `serviceAccount` in the namespace. */
  const mint = (serviceAccount, audience = issuer, ttlSeconds = TOKEN_TTL_SECONDS) =>
    new SignJWT({ 'kubernetes.io': { namespace, serviceaccount: { name: serviceAccount, uid: randomUUID() } } })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(issuer)
      .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
      .setAudience([audience])
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(privateKey);

  return {
    issuer,
    /** The cluster CA (PEM): what the kubelet mounts as ca.crt. */
    ca,
    mint,
    /** Checks a token as a receiver with `audience` would (the stand-in broker). */
    verify,
    fetches,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
