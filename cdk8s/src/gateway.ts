/**
 * The API gateway: the only public entry. Every Knative Service is cluster-local; the gateway
 * (nginx, unprivileged) forwards exactly the public API paths to presign, profile and subscribe,
 * so profile's /events and /dead-letter, and every service's /metrics and /readyz, are never
 * reachable from outside. A Knative Service is public or not as a whole (visibility is per host,
 * not per path), which is why the split happens here rather than with Knative visibility.
 * With the stand-ins it also plays the CDN (/media) and the S3 endpoint browsers post to (/s3), and
 * with the dev issuer it serves /dev and /.well-known, as the local stack's gateway does.
 * It answers like the API: whatever nginx itself says (no route, a method a route does not take,
 * a body too large, a service unreachable or too slow) is the API's JSON error, and CORS for the
 * allowed origins (preflights included) is answered here alone. k8s-tests/gateway.test.ts runs
 * Debian's nginx on this configuration.
 */
import { ApiObject, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { apiRoutes, apiRouteMethods, type ApiRoute } from '@avatar-pipeline/kit/api-routes';
import { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS, isOrigin } from '@avatar-pipeline/kit/cors';
import { errorBody } from '@avatar-pipeline/kit/errors';
import { AVATAR_PREFIX } from '@avatar-pipeline/kit/events';
import type { PublicService } from '@avatar-pipeline/kit/topology';
import { labels, restrictedContainerSecurity } from './common.js';
import { choose, Conditional, helmExpr, setField, valuesRef, type Condition } from './helm.js';
import { serviceUrl, settings } from './values.js';

export interface Route {
  /** nginx location: `= /path` (exact) or `^~ /prefix/` (prefix, no regex). */
  location: string;
  upstream: string;
  /** Rewrite target for the path (prefix routes that strip their prefix), else the path as is. */
  rewrite?: { from: string; to: string };
  /**
   * Methods the route takes; GET implies HEAD, as in nginx. Any other method gets 405 with an
   * `Allow` header, and OPTIONS (CORS preflight) is answered by the gateway itself.
   */
  methods: readonly string[];
  maxBodySize?: string;
  /** Only when this values condition holds (routes to the optional stand-ins and dev issuer). */
  when?: Condition;
}

export interface NginxOptions {
  /** nginx `resolver` address(es), e.g. kube-dns.kube-system.svc.cluster.local */
  resolver: string;
  /** Verbatim body lines of `map $http_origin $cors_origin { default ""; <here> }`: one `"<origin>" $http_origin;` per allowed origin. In the chart this is a Helm expression, so nginxConfig must only place it, never parse it. */
  corsOrigins: string;
  /** `listen` parameter: a port or `address:port`. Default 8080, the container's port. */
  listen?: number | string;
  /** `proxy_read_timeout`: longest wait for the next bytes from a service before a 504. Default 60s. */
  proxyReadTimeout?: string;
}

/** nginx's form of a kit API route: `^~` is a prefix match that no regex location overrides. */
const location = (route: ApiRoute) => `${route.match === 'exact' ? '=' : '^~'} ${route.path}`;

const GATEWAY_PORT = 8080;
export const GATEWAY_NAME = 'gateway';
const GATEWAY_CONFIG = 'gateway-nginx';
export const MINIO_SERVICE = 'minio';
export const DEV_ISSUER = 'dev-issuer';
const CLUSTER_DNS = 'kube-dns.kube-system.svc.cluster.local';

/** The kit's public API routes, each to `upstream(service)`. */
export function apiGatewayRoutes(upstream: (service: PublicService) => string): Route[] {
  return apiRoutes.map((r) => ({ location: location(r), upstream: upstream(r.service), methods: apiRouteMethods(r) }));
}

export function gatewayRoutes(): Route[] {
  const minio = `${serviceUrl(MINIO_SERVICE)}:9000`;
  // The upload limit in MiB, rounded up, plus room for the form's other fields.
  const uploadLimit = helmExpr(`print (add (div (int64 (${valuesRef(['uploads', 'maxBytes'])})) 1048576) 2) "m"`);
  const issuer = serviceUrl(DEV_ISSUER);
  const { standIns } = settings;
  return [
    ...apiGatewayRoutes((service) => serviceUrl(service)),
    // Browser uploads (MinIO checks the POST policy: size range, content type, key) and presigned GETs
    // (moderators' image links: MinIO checks the signature, for the host this proxy sends, MinIO's own).
    { location: '^~ /s3/', upstream: minio, rewrite: { from: '^/s3/(.*)$', to: '/$1' }, methods: ['POST', 'GET'], maxBodySize: uploadLimit, when: standIns.enabled },
    // The CDN stand-in: only the derived avatars, read-only.
    {
      location: `^~ /media/${AVATAR_PREFIX}`,
      upstream: minio,
      rewrite: { from: '^/media/(.*)$', to: `/${settings.bucket}/$1` },
      methods: ['GET'],
      when: standIns.enabled,
    },
    { location: '^~ /dev/', upstream: issuer, methods: ['POST'], when: settings.devIssuer },
    { location: '^~ /.well-known/', upstream: issuer, methods: ['GET'], when: settings.devIssuer },
  ];
}

/** The `map $http_origin $cors_origin` body lines (NginxOptions.corsOrigins) for these origins. */
export function corsOriginEntries(origins: readonly string[]): string {
  return origins
    .map((origin) => {
      // An Origin header is scheme://host[:port], nothing more: anything else would never match.
      if (!isOrigin(origin)) throw new Error(`CORS origin ${origin} is not an origin (scheme://host[:port], no path or trailing slash)`);
      return `${JSON.stringify(origin)} $http_origin;`;
    })
    .join('\n');
}

/** The errors nginx itself generates, in the API's error shape; the services' own pass through. */
const NGINX_ERRORS: readonly { status: number; code: string; message: string }[] = [
  { status: 400, code: 'bad_request', message: 'the request is malformed' },
  { status: 404, code: 'not_found', message: 'no such route' },
  { status: 405, code: 'method_not_allowed', message: 'this method is not allowed on this route (see the Allow header)' },
  { status: 413, code: 'payload_too_large', message: 'request body is too large' },
  { status: 414, code: 'uri_too_long', message: 'the request URI is too long' },
  { status: 500, code: 'internal', message: 'internal error' },
  { status: 502, code: 'bad_gateway', message: 'the service is not reachable right now' },
  { status: 503, code: 'service_unavailable', message: 'the service is unavailable right now' },
  { status: 504, code: 'upstream_timeout', message: 'the service did not answer in time' },
];

/** CORS response headers: only the gateway sets them. */
const CORS_RESPONSE_HEADERS = [
  'Access-Control-Allow-Origin',
  'Access-Control-Allow-Credentials',
  'Access-Control-Allow-Methods',
  'Access-Control-Allow-Headers',
  'Access-Control-Expose-Headers',
  'Access-Control-Max-Age',
];

/** Route methods as nginx lists them: upper case, HEAD after GET, OPTIONS left to the gateway. */
function routeMethods(route: Route): string[] {
  const methods: string[] = [];
  for (const method of route.methods.map((m) => m.toUpperCase())) {
    if (!/^[A-Z]+$/.test(method)) throw new Error(`route ${route.location}: bad method ${JSON.stringify(method)}`);
    if (method !== 'OPTIONS' && !methods.includes(method)) methods.push(method);
    if (method === 'GET' && !methods.includes('HEAD') && !route.methods.some((m) => m.toUpperCase() === 'HEAD')) methods.push('HEAD');
  }
  if (methods.length === 0) throw new Error(`route ${route.location} takes no method`);
  return methods;
}

/**
 * `host[:port]` of an upstream (`http://host[:port]`), by string only: in the chart it holds Helm
 * placeholders, which a URL parser refuses.
 */
function upstreamHost(route: Route): string {
  const host = /^http:\/\/([^/\s]+)\/?$/.exec(route.upstream)?.[1];
  if (!host) throw new Error(`route ${route.location}: upstream ${route.upstream} is not http://host[:port]`);
  return host;
}

function locationBlock(route: Route): string[] {
  const host = upstreamHost(route);
  const methods = routeMethods(route);
  const allow = [...methods, 'OPTIONS'].join(', ');
  return [
    `location ${route.location} {`,
    // A variable makes nginx resolve the name per request (through `resolver`), so the gateway
    // starts before the services exist and follows their addresses.
    `  set $upstream_host ${host};`,
    `  set $route_methods "${methods.join(', ')}";`,
    // Only `set` and `return` inside `if`: the safe use of `if` in a location.
    `  if ($request_method = OPTIONS) { set $route_allow "${allow}"; return 204; }`,
    `  if ($request_method !~ ^(?:${methods.join('|')})$ ) { set $route_allow "${allow}"; return 405; }`,
    ...(route.maxBodySize ? [`  client_max_body_size ${route.maxBodySize};`] : []),
    ...(route.rewrite ? [`  rewrite ${route.rewrite.from} ${route.rewrite.to} break;`] : []),
    '  proxy_pass http://$upstream_host;',
    '}',
  ];
}

/** Where error_page sends an error nginx generates (an internal location: clients get 404). */
const errorUri = (status: number) => `/_gateway/error/${status}`;

/** An error body as an nginx single-quoted string; `} }` keeps `}}` (Helm's delimiter) out of the config. */
function nginxErrorBody(code: string, message: string): string {
  const json = JSON.stringify(errorBody(code, message)).replaceAll('}}', '} }');
  if (json.includes("'") || json.includes('\\')) throw new Error(`error body ${json} needs nginx escaping`);
  return `'${json}'`;
}

/**
 * The gateway's nginx configuration, a file included in nginx's `http` block (conf.d/default.conf
 * of the nginx image): the routes, nothing else; every answer nginx makes itself in the API's JSON
 * shape; CORS for the allowed origins.
 */
export function nginxConfig(routes: readonly Route[], options: NginxOptions): string {
  const before = [
    '# Generated by the cdk8s app (cdk8s/src/gateway.ts): the public routes and nothing else.',
    `resolver ${options.resolver} valid=10s ipv6=off;`,
    'server_tokens off;',
    '',
    '# CORS: an allowed Origin is echoed (never *); any other origin gets no CORS header at all, as',
    '# add_header adds nothing for an empty value.',
    'map $http_origin $cors_origin {',
    '  default "";',
  ];
  const after = [
    '}',
    '# Preflight headers on a route\'s answer to OPTIONS from an allowed origin only ($route_methods',
    '# is set by each route).',
    'map $request_method $cors_preflight { default ""; OPTIONS $cors_origin; }',
    'map $cors_preflight $cors_allow_methods { "" ""; default $route_methods; }',
    `map $cors_allow_methods $cors_allow_headers { "" ""; default "${CORS_ALLOW_HEADERS.join(', ')}"; }`,
    `map $cors_allow_methods $cors_max_age { "" ""; default ${CORS_MAX_AGE_SECONDS}; }`,
    `map $cors_origin $cors_expose_headers { "" ""; default "${CORS_EXPOSE_HEADERS.join(', ')}"; }`,
    '',
    'server {',
    `  listen ${options.listen ?? GATEWAY_PORT};`,
    '  client_max_body_size 64k;',
    '  proxy_http_version 1.1;',
    '  proxy_set_header Connection "";',
    '  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '  proxy_set_header X-Forwarded-Proto $scheme;',
    '  proxy_set_header X-Forwarded-Host $host;',
    '  proxy_set_header X-Request-Id $request_id;',
    `  proxy_read_timeout ${options.proxyReadTimeout ?? '60s'};`,
    '',
    "  # Errors nginx generates itself (no route, method, body size, service unreachable or slow) are",
    "  # JSON in the API's shape. A service's own error responses pass through untouched:",
    '  # proxy_intercept_errors stays off. URIs, not named locations: a request line too long or',
    '  # malformed has no URI, and a named location then fails (500, in HTML).',
    ...NGINX_ERRORS.map((e) => `  error_page ${e.status} ${errorUri(e.status)};`),
    '',
    '  # The gateway alone sets CORS headers, so no response ever carries two Access-Control-Allow-Origin:',
    "  # the services add none today, and MinIO (/s3, /media) adds its own; these hide any upstream's.",
    ...CORS_RESPONSE_HEADERS.map((h) => `  proxy_hide_header ${h};`),
    '  # `always`: on the errors nginx generates too. Locations add no header of their own, so they',
    '  # inherit all of these.',
    '  add_header Access-Control-Allow-Origin $cors_origin always;',
    '  add_header Access-Control-Allow-Methods $cors_allow_methods always;',
    '  add_header Access-Control-Allow-Headers $cors_allow_headers always;',
    '  add_header Access-Control-Max-Age $cors_max_age always;',
    '  add_header Access-Control-Expose-Headers $cors_expose_headers always;',
    '  # On every response, as the CORS headers depend on Origin (caches must not mix them up).',
    '  add_header Vary Origin always;',
    '  # Set by a route on its 405 and OPTIONS answers only (and kept through the error URI).',
    '  add_header Allow $route_allow always;',
    '  # $route_allow and $route_methods are set by the routes alone: elsewhere they are empty, which',
    '  # add_header and the maps above take as "no header". Not reset here, as server-level `set`',
    '  # would run again on the redirect to an error URI.',
    '  uninitialized_variable_warn off;',
    '',
    '  location = /healthz { access_log off; default_type application/json; return 200 \'{"status":"ok"}\'; }',
    ...routes.map((r) => {
      const block = locationBlock(r).map((l) => `  ${l}`).join('\n');
      return r.when ? choose(r.when, block) : block;
    }),
    '  location / { return 404; }',
    ...NGINX_ERRORS.map((e) => `  location = ${errorUri(e.status)} { internal; default_type application/json; return ${e.status} ${nginxErrorBody(e.code, e.message)}; }`),
    '}',
    '',
  ];
  // Helm templates this file: only the origins (a Helm expression in the chart) may hold its delimiters.
  for (const line of [...before, ...after]) if (line.includes('{{') || line.includes('}}')) throw new Error(`nginx config line holds a Helm delimiter: ${line}`);
  return [...before, options.corsOrigins, ...after].join('\n');
}

/** What the gateway serves. */
export interface GatewayProps {
  /** The routes nginx forwards, in order (`gatewayRoutes()`: the public API, and the stand-ins' and dev issuer's own while they run). */
  readonly routes: readonly Route[];
  /** The cluster DNS nginx resolves the upstreams' names with, per request. Default kube-dns.kube-system.svc.cluster.local. */
  readonly resolver?: string;
}

/**
 * The gateway: its nginx configuration (a ConfigMap), the nginx Deployment and its Service, and the
 * optional Ingress (gateway.ingress.enabled). Image, replicas, Service type, Ingress and allowed
 * origins are values (gateway.*, corsOrigins).
 */
export class Gateway extends Construct {
  constructor(scope: Construct, id: string, props: GatewayProps) {
    super(scope, id);
    new kplus.ConfigMap(this, 'gateway-config', {
      metadata: { name: GATEWAY_CONFIG, labels: labels(GATEWAY_NAME, 'gateway') },
      // The allowed origins come from values (corsOrigins).
      data: { 'default.conf': nginxConfig(props.routes, { resolver: props.resolver ?? CLUSTER_DNS, corsOrigins: settings.gateway.corsOrigins }) },
    });
    // cdk8s-plus classes declare optional members its interfaces require (exactOptionalPropertyTypes):
    // objects are referred to by name.
    const conf = kplus.ConfigMap.fromConfigMapName(this, 'gateway-config-ref', GATEWAY_CONFIG);
    // `Default`, the construct's main resource: constructs leave that id out of a path's address, so
    // the Deployment's selector (cdk8s-plus's address label) stays what it was before this construct
    // existed; a Deployment's selector cannot change in place.
    const deployment = new kplus.Deployment(this, 'Default', {
      metadata: { name: GATEWAY_NAME, labels: labels(GATEWAY_NAME, 'gateway') },
      podMetadata: { labels: labels(GATEWAY_NAME, 'gateway') },
      automountServiceAccountToken: false,
      securityContext: { ensureNonRoot: true, user: 101, group: 101 },
      containers: [
        {
          name: 'nginx',
          image: settings.gateway.image,
          ports: [{ number: GATEWAY_PORT, name: 'http' }],
          securityContext: restrictedContainerSecurity(101),
          resources: {
            cpu: { request: kplus.Cpu.millis(50), limit: kplus.Cpu.millis(500) },
            memory: { request: Size.mebibytes(32), limit: Size.mebibytes(128) },
          },
          readiness: kplus.Probe.fromHttpGet('/healthz', { port: GATEWAY_PORT, periodSeconds: Duration.seconds(10) }),
          liveness: kplus.Probe.fromHttpGet('/healthz', { port: GATEWAY_PORT, periodSeconds: Duration.seconds(20) }),
          volumeMounts: [
            { path: '/etc/nginx/conf.d', volume: kplus.Volume.fromConfigMap(this, 'gateway-conf-volume', conf, { name: 'conf' }), readOnly: true },
            { path: '/tmp', volume: kplus.Volume.fromEmptyDir(this, 'gateway-tmp', 'tmp', { sizeLimit: Size.mebibytes(64) }) },
          ],
        },
      ],
    });
    setField(ApiObject.of(deployment), '/spec/replicas', settings.gateway.replicas);
    const service = deployment.exposeViaService({
      name: GATEWAY_NAME,
      ports: [{ port: GATEWAY_PORT, targetPort: GATEWAY_PORT, name: 'http' }],
    });
    setField(ApiObject.of(service), '/spec/type', settings.gateway.serviceType);
    const ingress = new Conditional(this, 'gateway-ingress-enabled', settings.gateway.ingress);
    const object = new ApiObject(ingress, 'gateway-ingress', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: GATEWAY_NAME, labels: labels(GATEWAY_NAME, 'gateway') },
      spec: {
        ingressClassName: settings.gateway.ingressClassName,
        rules: [
          {
            host: settings.gateway.host,
            http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: GATEWAY_NAME, port: { number: GATEWAY_PORT } } } }] },
          },
        ],
      },
    });
    setField(object, '/metadata/annotations', settings.gateway.ingressAnnotations);
  }
}
