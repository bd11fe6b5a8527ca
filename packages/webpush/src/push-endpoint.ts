/**
 * Which Web Push endpoints the backend may call. A subscription's endpoint is a URL chosen by the
 * client, and push POSTs to it: without a policy any player could make the backend call any URL
 * (SSRF). Subscribe checks it when it is stored and push checks it again before every send (the
 * policy may have tightened since), and push's connections resolve names through `guardedLookup`
 * so a public name that resolves to a private address (DNS rebinding) is refused at connect time.
 */
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import { z } from 'zod';
import { env } from '@avatar-pipeline/kit/config';

/** One allowlist entry: `host`, `host:port`, `*.suffix` or `*.suffix:port`. */
export interface PushHostPattern {
  /** Lower-case host as the URL parser writes it (punycode, IPv6 in brackets). */
  host: string;
  /** `*.host`: any subdomain of host, never host itself. */
  subdomains: boolean;
  /** Undefined: the scheme's default port (443 for https, 80 for http). */
  port: number | undefined;
}

export interface PushEndpointPolicy {
  allowedHosts: readonly PushHostPattern[];
  /**
   * Local testing only (web-push-testing serves http://localhost:<port>): allows http, ports other
   * than 443, and private or loopback addresses. The host allowlist still applies.
   */
  allowHttp: boolean;
}

/** The push services of Chrome/Edge (FCM), Firefox (Mozilla autopush), Windows (WNS) and Safari (Apple). */
export const DEFAULT_PUSH_ALLOWED_HOSTS: readonly string[] = [
  'fcm.googleapis.com',
  'updates.push.services.mozilla.com',
  '*.notify.windows.com',
  '*.push.apple.com',
];

/** Browsers' endpoints are far shorter; the bound keeps stored items and logs small. */
export const MAX_PUSH_ENDPOINT_LENGTH = 2048;

export type PushEndpointProblem = 'invalid_endpoint' | 'endpoint_not_allowed';

export type PushEndpointCheck = { ok: true; url: URL } | { ok: false; code: PushEndpointProblem; message: string };

const patternSyntax = /^(\*\.)?(\[[0-9a-fA-F:.]+\]|[^\s:/?#@[\]*]+)(?::(\d{1,5}))?$/;

/** Parses one pattern; throws a message naming the pattern when it is malformed. */
export function parsePushHostPattern(pattern: string): PushHostPattern {
  const match = patternSyntax.exec(pattern.trim());
  const [, wildcard, rawHost, rawPort] = match ?? [];
  if (!rawHost) throw new Error(`"${pattern}" is not a host, host:port, *.suffix or *.suffix:port pattern`);
  let host: string;
  try {
    // The URL parser normalises the way it will normalise endpoints: case, punycode, IPv4 forms.
    host = new URL(`https://${rawHost}`).hostname;
  } catch {
    throw new Error(`"${pattern}" does not name a valid host`);
  }
  const port = rawPort === undefined ? undefined : Number(rawPort);
  if (port !== undefined && (port < 1 || port > 65535)) throw new Error(`"${pattern}" has an invalid port`);
  if (wildcard && isIP(bare(host)) !== 0) throw new Error(`"${pattern}": a wildcard needs a domain name, not an address`);
  return { host, subdomains: Boolean(wildcard), port };
}

/** `PUSH_ALLOWED_HOSTS`: comma-separated patterns; empty or absent means the default list. */
export function parsePushAllowedHosts(csv: string | undefined): PushHostPattern[] {
  const patterns = (csv ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  return (patterns.length > 0 ? patterns : DEFAULT_PUSH_ALLOWED_HOSTS).map(parsePushHostPattern);
}

/** Config shape shared by subscribe and push (see kit `loadConfig`). */
export const pushEndpointEnv = {
  PUSH_ALLOWED_HOSTS: z
    .string()
    .default(DEFAULT_PUSH_ALLOWED_HOSTS.join(','))
    .transform((csv, ctx) => {
      try {
        return parsePushAllowedHosts(csv);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe('Push service hosts endpoints may point to, comma-separated: `host`, `host:port` or `*.suffix` (`*.x` matches subdomains of x, not x).'),
  PUSH_ALLOW_HTTP: env.bool(false).describe('Local testing only (an emulator): allows http, any port and private addresses.'),
};

export function pushEndpointPolicy(config: { PUSH_ALLOWED_HOSTS: readonly PushHostPattern[]; PUSH_ALLOW_HTTP: boolean }): PushEndpointPolicy {
  return { allowedHosts: config.PUSH_ALLOWED_HOSTS, allowHttp: config.PUSH_ALLOW_HTTP };
}

/** IPv6 hosts come out of the URL parser in brackets. */
function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function effectivePort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

function matchesPattern(url: URL, pattern: PushHostPattern): boolean {
  const port = effectivePort(url);
  const wantedPort = pattern.port ?? (url.protocol === 'https:' ? 443 : 80);
  if (port !== wantedPort) return false;
  const host = url.hostname;
  if (!pattern.subdomains) return host === pattern.host;
  // `*.push.apple.com`: one or more whole labels before the suffix; never the suffix itself.
  const label = host.slice(0, host.length - pattern.host.length - 1);
  return host.endsWith(`.${pattern.host}`) && label !== '' && !label.startsWith('.') && !label.endsWith('.') && !label.includes('..');
}

const refuse = (code: PushEndpointProblem, message: string): PushEndpointCheck => ({ ok: false, code, message });

/**
 * Checks an endpoint against the policy. Without `allowHttp`: https on port 443 only, no
 * userinfo, at most 2048 characters, a host on the allowlist, and never an address literal in a
 * non-public range (private, loopback, link-local, unique-local, CGNAT, multicast, unspecified...).
 */
export function checkPushEndpoint(endpoint: string, policy: PushEndpointPolicy): PushEndpointCheck {
  if (endpoint.length > MAX_PUSH_ENDPOINT_LENGTH) {
    return refuse('invalid_endpoint', `endpoint is longer than ${MAX_PUSH_ENDPOINT_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return refuse('invalid_endpoint', 'endpoint is not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return refuse('endpoint_not_allowed', 'endpoint must be an https URL');
  if (url.protocol === 'http:' && !policy.allowHttp) return refuse('endpoint_not_allowed', 'endpoint must use https, not http');
  if (url.username !== '' || url.password !== '') return refuse('endpoint_not_allowed', 'endpoint must not carry a user name or password');
  if (effectivePort(url) !== 443 && !policy.allowHttp) return refuse('endpoint_not_allowed', 'endpoint must use port 443');
  const address = bare(url.hostname);
  if (isIP(address) !== 0 && !policy.allowHttp && !isPublicAddress(address)) {
    return refuse('endpoint_not_allowed', 'endpoint host is a private, loopback or otherwise non-public address');
  }
  if (!policy.allowedHosts.some((pattern) => matchesPattern(url, pattern))) {
    return refuse('endpoint_not_allowed', `endpoint host ${url.host} is not an allowed push service`);
  }
  return { ok: true, url };
}

/**
 * Address ranges that are not the public internet (IANA special-purpose registries). The
 * well-known NAT64 prefix (64:ff9b::/96, what DNS64 answers on IPv6-only networks) embeds IPv4
 * and is checked against the IPv4 rules.
 */
const nonPublicV4: readonly [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services live here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

const nonPublicV6: readonly [string, number][] = [
  ['::', 96], // unspecified, loopback (::1) and deprecated IPv4-compatible addresses
  ['100::', 64], // discard
  ['2001::', 32], // Teredo: hides the real address
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: hides the real address
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215): a site's own translator
  ['::ffff:0:0:0', 96], // IPv4-translated (RFC 2765 SIIT): hides the real address
];

const nonPublic = new BlockList();
for (const [network, prefix] of nonPublicV4) {
  nonPublic.addSubnet(network, prefix, 'ipv4');
  nonPublic.addSubnet(`64:ff9b::${network}`, 96 + prefix, 'ipv6');
}
for (const [network, prefix] of nonPublicV6) nonPublic.addSubnet(network, prefix, 'ipv6');

/**
 * IPv4-mapped addresses (::ffff:0:0/96): a host's internal spelling of IPv4, never a push
 * service's address, so refused whatever they embed. Its own list: BlockList matches IPv4
 * addresses against an IPv4-mapped rule, so in `nonPublic` it would refuse every IPv4 address.
 */
const ipv4Mapped = new BlockList();
ipv4Mapped.addSubnet('::ffff:0:0', 96, 'ipv6');

/** True for a unicast address on the public internet; false for every special range and for non-addresses. */
export function isPublicAddress(ip: string): boolean {
  const address = bare(ip);
  const version = isIP(address);
  if (version === 0) return false;
  if (version === 6 && ipv4Mapped.check(address, 'ipv6')) return false;
  return !nonPublic.check(address, version === 6 ? 'ipv6' : 'ipv4');
}

/** The error a guarded lookup fails with; its code tells connection errors apart in logs and metrics. */
export class NonPublicAddressError extends Error {
  readonly code = 'ERR_PUSH_NON_PUBLIC_ADDRESS';
  constructor(
    readonly hostname: string,
    readonly address: string,
  ) {
    super(`${hostname} resolves to the non-public address ${address}`);
    this.name = 'NonPublicAddressError';
  }
}

/** `dns.lookup` with `all: true` (injectable for tests). */
export type AddressResolver = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for net/tls connect options (undici: `new Agent({ connect: { lookup } })`) that
 * resolves as usual and refuses the name when any address it resolves to is non-public (unless
 * `allowHttp`, local testing). Checking every address, not just the first, keeps a connector that
 * tries several (happy eyeballs) from reaching a private one.
 */
export function guardedLookup(policy: Pick<PushEndpointPolicy, 'allowHttp'>, resolve: AddressResolver = dnsLookup): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname, { ...options, all: true }, (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => {
      if (err) return callback(err, '');
      const refused = policy.allowHttp ? undefined : addresses.find((a) => !isPublicAddress(a.address));
      if (refused) return callback(new NonPublicAddressError(hostname, refused.address), '');
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
      callback(null, first.address, first.family);
    });
  };
}
