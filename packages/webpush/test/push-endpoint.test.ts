import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@avatar-pipeline/kit/config';
import {
  DEFAULT_PUSH_ALLOWED_HOSTS,
  checkPushEndpoint,
  guardedLookup,
  isPublicAddress,
  parsePushAllowedHosts,
  parsePushHostPattern,
  pushEndpointEnv,
  pushEndpointPolicy,
  type AddressResolver,
  type PushEndpointPolicy,
} from '../src/index.js';

const defaults: PushEndpointPolicy = { allowedHosts: parsePushAllowedHosts(undefined), allowHttp: false };
const policy = (hosts: string, allowHttp = false): PushEndpointPolicy => ({ allowedHosts: parsePushAllowedHosts(hosts), allowHttp });

describe('checkPushEndpoint, default policy', () => {
  it.each([
    'https://fcm.googleapis.com/fcm/send/dGVzdA:APA91bH',
    'https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk',
    'https://wns2-by3p.notify.windows.com/w/?token=BQYAAAB',
    'https://web.push.apple.com/QGx0c2l0ZQ',
    'https://a.b.push.apple.com/x',
    'https://FCM.GoogleAPIs.com:443/fcm/send/x',
  ])('accepts the push service endpoint %s', (endpoint) => {
    const result = checkPushEndpoint(endpoint, defaults);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.url.protocol).toBe('https:');
  });

  it('uses the four browser push services as its default list', () => {
    expect(DEFAULT_PUSH_ALLOWED_HOSTS).toEqual(['fcm.googleapis.com', 'updates.push.services.mozilla.com', '*.notify.windows.com', '*.push.apple.com']);
  });

  it.each([
    // private ranges
    ['https://10.0.0.1/x', /non-public address/],
    ['https://10.255.255.255/x', /non-public address/],
    ['https://172.16.0.1/x', /non-public address/],
    ['https://172.31.255.254/x', /non-public address/],
    ['https://192.168.1.1/x', /non-public address/],
    // loopback, in every spelling the URL parser normalises
    ['https://127.0.0.1/x', /non-public address/],
    ['https://127.1/x', /non-public address/],
    ['https://[::1]/x', /non-public address/],
    ['https://[0:0:0:0:0:0:0:1]/x', /non-public address/],
    ['https://2130706433/x', /non-public address/],
    ['https://0x7f.1/x', /non-public address/],
    ['https://0x7f000001/x', /non-public address/],
    ['https://017700000001/x', /non-public address/],
    ['https://[::ffff:127.0.0.1]/x', /non-public address/],
    ['https://[::ffff:7f00:1]/x', /non-public address/],
    // link-local (cloud metadata), unique-local, CGNAT, unspecified, multicast
    ['https://169.254.169.254/latest/meta-data/', /non-public address/],
    ['https://[fe80::1]/x', /non-public address/],
    ['https://[fd00:ec2::254]/x', /non-public address/],
    ['https://100.64.0.1/x', /non-public address/],
    ['https://0.0.0.0/x', /non-public address/],
    ['https://[::]/x', /non-public address/],
    ['https://224.0.0.1/x', /non-public address/],
    ['https://[ff02::1]/x', /non-public address/],
    // IPv4-mapped (::ffff:0:0/96) and IPv4-translated (::ffff:0:0:0/96, RFC 2765): never a push
    // service's address, whatever IPv4 address they embed
    ['https://[::ffff:8.8.8.8]/x', /non-public address/],
    ['https://[::ffff:808:808]/x', /non-public address/],
    ['https://[0:0:0:0:0:ffff:808:808]/x', /non-public address/],
    ['https://[::ffff:0:127.0.0.1]/x', /non-public address/],
    ['https://[::ffff:0:7f00:1]/x', /non-public address/],
    ['https://[0:0:0:0:ffff:0:7f00:1]/x', /non-public address/],
    ['https://[::ffff:0:8.8.8.8]/x', /non-public address/],
    // local-use NAT64 (64:ff9b:1::/48, RFC 8215): a site's own translator, any embedding
    ['https://[64:ff9b:1::10.0.0.1]/x', /non-public address/],
    ['https://[64:ff9b:1::a00:1]/x', /non-public address/],
    ['https://[0064:ff9b:0001::8.8.8.8]/x', /non-public address/],
    ['https://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/x', /non-public address/],
    // scheme, port, userinfo
    ['http://fcm.googleapis.com/fcm/send/x', /must use https, not http/],
    ['ftp://fcm.googleapis.com/x', /must be an https URL/],
    ['https://fcm.googleapis.com:8443/fcm/send/x', /port 443/],
    ['https://fcm.googleapis.com:80/fcm/send/x', /port 443/],
    ['https://user@fcm.googleapis.com/fcm/send/x', /user name or password/],
    ['https://user:secret@fcm.googleapis.com/fcm/send/x', /user name or password/],
    ['https://:secret@fcm.googleapis.com/fcm/send/x', /user name or password/],
    // hosts not on the list, and look-alikes
    ['https://example.com/push', /not an allowed push service/],
    ['https://8.8.8.8/push', /not an allowed push service/],
    ['https://fcm.googleapis.com.evil.com/fcm/send/x', /not an allowed push service/],
    ['https://evilfcm.googleapis.com/fcm/send/x', /not an allowed push service/],
    ['https://fcm.googleapis.com./fcm/send/x', /not an allowed push service/],
    ['https://fcm.googleapis.com%2e/fcm/send/x', /not an allowed push service/],
    ['https://push.apple.com/x', /not an allowed push service/],
    ['https://evilpush.apple.com/x', /not an allowed push service/],
    ['https://notify.windows.com/x', /not an allowed push service/],
    ['https://.push.apple.com/x', /not an allowed push service/],
    ['https://a..push.apple.com/x', /not an allowed push service/],
  ])('refuses %s', (endpoint, message) => {
    const result = checkPushEndpoint(endpoint, defaults);
    expect(result).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    if (!result.ok) expect(result.message).toMatch(message);
  });

  it.each(['not a url', '/relative/path', '', 'https://', 'https://fcm.googleapis.com:99999/x'])('calls %j not a URL', (endpoint) => {
    expect(checkPushEndpoint(endpoint, defaults)).toMatchObject({ ok: false, code: 'invalid_endpoint' });
  });

  it('refuses endpoints over 2048 characters, accepts 2048', () => {
    const base = 'https://fcm.googleapis.com/fcm/send/';
    expect(checkPushEndpoint(base + 'a'.repeat(2048 - base.length), defaults).ok).toBe(true);
    expect(checkPushEndpoint(base + 'a'.repeat(2049 - base.length), defaults)).toMatchObject({ ok: false, code: 'invalid_endpoint' });
  });

  it('refuses a private address even when it is on the allowlist, unless http is allowed (local testing)', () => {
    expect(checkPushEndpoint('https://10.0.0.1/x', policy('10.0.0.1'))).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    expect(checkPushEndpoint('https://[::1]/x', policy('[::1]'))).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    expect(checkPushEndpoint('https://10.0.0.1/x', policy('10.0.0.1', true)).ok).toBe(true);
    expect(checkPushEndpoint('https://93.184.215.14/x', policy('93.184.215.14')).ok).toBe(true);
  });
});

describe('checkPushEndpoint with PUSH_ALLOW_HTTP (local testing)', () => {
  it('allows http and other ports, but only for hosts and ports on the list', () => {
    const local = policy('localhost:4321', true);
    expect(checkPushEndpoint('http://localhost:4321/notify/abc', local).ok).toBe(true);
    expect(checkPushEndpoint('https://localhost:4321/notify/abc', local).ok).toBe(true);
    expect(checkPushEndpoint('http://LOCALHOST:4321/notify/abc', local).ok).toBe(true);
    expect(checkPushEndpoint('http://localhost:4322/notify/abc', local)).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    expect(checkPushEndpoint('http://localhost/notify/abc', local)).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    expect(checkPushEndpoint('http://127.0.0.1:4321/notify/abc', local)).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
    expect(checkPushEndpoint('http://u:p@localhost:4321/notify/abc', local)).toMatchObject({ ok: false, code: 'endpoint_not_allowed' });
  });

  it('matches a pattern without a port on the scheme default port only', () => {
    const p = policy('push.example,*.push.example', true);
    expect(checkPushEndpoint('http://push.example/x', p).ok).toBe(true);
    expect(checkPushEndpoint('https://push.example/x', p).ok).toBe(true);
    expect(checkPushEndpoint('https://a.push.example/x', p).ok).toBe(true);
    expect(checkPushEndpoint('https://push.example:8443/x', p).ok).toBe(false);
    expect(checkPushEndpoint('http://a.push.example:8080/x', p).ok).toBe(false);
  });

  it('with a port pattern and without PUSH_ALLOW_HTTP, still only port 443', () => {
    expect(checkPushEndpoint('https://push.example:8443/x', policy('push.example:8443')).ok).toBe(false);
    expect(checkPushEndpoint('https://push.example/x', policy('push.example:443')).ok).toBe(true);
    expect(checkPushEndpoint('https://a.push.example/x', policy('*.push.example:443')).ok).toBe(true);
  });
});

describe('PUSH_ALLOWED_HOSTS patterns', () => {
  it('parses host, host:port, *.suffix and *.suffix:port, normalised like URLs', () => {
    expect(parsePushAllowedHosts(' FCM.googleapis.com , localhost:8080,*.Push.Example:8443, [::1]:9000 ')).toEqual([
      { host: 'fcm.googleapis.com', subdomains: false, port: undefined },
      { host: 'localhost', subdomains: false, port: 8080 },
      { host: 'push.example', subdomains: true, port: 8443 },
      { host: '[::1]', subdomains: false, port: 9000 },
    ]);
    expect(parsePushHostPattern('*.notify.windows.com')).toEqual({ host: 'notify.windows.com', subdomains: true, port: undefined });
  });

  it('falls back to the default list when empty', () => {
    expect(parsePushAllowedHosts('')).toEqual(parsePushAllowedHosts(undefined));
    expect(parsePushAllowedHosts(' , ')).toHaveLength(4);
  });

  it.each(['*.', '*', 'a b', 'https://fcm.googleapis.com', 'fcm.googleapis.com/path', 'user@host', 'host:0', 'host:99999', '*.10.0.0.1', '**.x.com', 'x.*.com'])(
    'refuses the pattern %j',
    (pattern) => {
      expect(() => parsePushHostPattern(pattern)).toThrow(/pattern|host|port|wildcard/);
    },
  );

  it('is read from the environment, with the pattern named on errors', () => {
    const config = loadConfig(pushEndpointEnv, { PUSH_ALLOWED_HOSTS: 'localhost:9999', PUSH_ALLOW_HTTP: 'true' });
    expect(pushEndpointPolicy(config)).toEqual({ allowedHosts: [{ host: 'localhost', subdomains: false, port: 9999 }], allowHttp: true });
    expect(pushEndpointPolicy(loadConfig(pushEndpointEnv, {}))).toEqual(defaults);
    expect(() => loadConfig(pushEndpointEnv, { PUSH_ALLOWED_HOSTS: 'ok.example,bad host' })).toThrow(ConfigError);
    expect(() => loadConfig(pushEndpointEnv, { PUSH_ALLOWED_HOSTS: 'ok.example,bad host' })).toThrow(/PUSH_ALLOWED_HOSTS: "bad host"/);
  });
});

describe('isPublicAddress', () => {
  it.each(['8.8.8.8', '1.1.1.1', '142.250.74.78', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001:80e::200a', '64:ff9b::8.8.8.8', '[2606:4700:4700::1111]'])(
    '%s is public',
    (ip) => expect(isPublicAddress(ip)).toBe(true),
  );

  it.each([
    '10.1.2.3', '172.16.5.4', '192.168.0.1', '127.0.0.1', '127.255.255.255', '169.254.169.254', '100.64.0.1', '100.127.255.255',
    '0.0.0.0', '224.0.0.251', '255.255.255.255', '192.0.2.1', '198.18.0.1',
    '::', '::1', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '2001:db8::1', '::ffff:10.0.0.1', '::ffff:169.254.169.254',
    '64:ff9b::10.0.0.1', '64:ff9b::a9fe:a9fe', '2002:a00:1::1', '::127.0.0.1', '[::1]',
    // IPv4-mapped and IPv4-translated, in every spelling, whatever they embed
    '::ffff:8.8.8.8', '::ffff:808:808', '0:0:0:0:0:ffff:808:808', '[::ffff:8.8.8.8]',
    '::ffff:0:8.8.8.8', '::ffff:0:808:808', '0:0:0:0:ffff:0:808:808', '::ffff:0:7f00:1', '::ffff:0:10.0.0.1', '[::ffff:0:8.8.8.8]',
    // local-use NAT64
    '64:ff9b:1::8.8.8.8', '64:ff9b:1::808:808', '0064:ff9b:0001:0000:0000:0000:0808:0808', '64:ff9b:1:abcd::1', '[64:ff9b:1::8.8.8.8]',
    'localhost', 'not an address', '',
  ])('%s is not public', (ip) => expect(isPublicAddress(ip)).toBe(false));
});

describe('guardedLookup', () => {
  const resolver =
    (answers: LookupAddress[]): AddressResolver =>
    (_hostname, _options, callback) =>
      callback(null, answers);

  const run = (lookup: ReturnType<typeof guardedLookup>, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family: unknown }>((resolve) =>
      lookup('push.example', { all }, (err, address, family) => resolve({ err, address, family })),
    );

  it('passes public answers through, in both callback forms', async () => {
    const lookup = guardedLookup({ allowHttp: false }, resolver([{ address: '8.8.8.8', family: 4 }, { address: '2606:4700::1', family: 6 }]));
    expect(await run(lookup, false)).toEqual({ err: null, address: '8.8.8.8', family: 4 });
    expect(await run(lookup, true)).toMatchObject({ err: null, address: [{ address: '8.8.8.8', family: 4 }, { address: '2606:4700::1', family: 6 }] });
  });

  it('refuses a name when any answer is non-public (DNS rebinding)', async () => {
    for (const answers of [[{ address: '127.0.0.1', family: 4 }], [{ address: '8.8.8.8', family: 4 }, { address: '169.254.169.254', family: 4 }], [{ address: '::ffff:10.0.0.1', family: 6 }], [{ address: '::ffff:0:808:808', family: 6 }], [{ address: '64:ff9b:1::808:808', family: 6 }]]) {
      const { err } = await run(guardedLookup({ allowHttp: false }, resolver(answers)), true);
      expect(err).toMatchObject({ code: 'ERR_PUSH_NON_PUBLIC_ADDRESS', hostname: 'push.example' });
    }
  });

  it('allows private answers when http is allowed (local testing)', async () => {
    expect(await run(guardedLookup({ allowHttp: true }, resolver([{ address: '127.0.0.1', family: 4 }])), false)).toEqual({ err: null, address: '127.0.0.1', family: 4 });
  });

  it('passes resolver errors on', async () => {
    const failing: AddressResolver = (_h, _o, callback) => callback(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }), []);
    expect((await run(guardedLookup({ allowHttp: false }, failing), true)).err).toMatchObject({ code: 'ENOTFOUND' });
  });

  describe('on a real connection', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((_req, res) => res.end('reached'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const fetchVia = (allowHttp: boolean) =>
      new Promise<string>((resolve, reject) => {
        // localhost resolves through the system resolver to a loopback address.
        get({ host: 'localhost', port, path: '/', family: 4, lookup: guardedLookup({ allowHttp }) }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve(body));
        }).on('error', reject);
      });

    it('never connects to a name that resolves to loopback', async () => {
      await expect(fetchVia(false)).rejects.toMatchObject({ code: 'ERR_PUSH_NON_PUBLIC_ADDRESS' });
    });

    it('connects when http is allowed', async () => {
      expect(await fetchVia(true)).toBe('reached');
    });
  });
});
