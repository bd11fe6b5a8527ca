/**
 * A presigned-POST guard in front of s3rver, so the local stack refuses what S3 would refuse.
 *
 * s3rver stores whatever a browser form POSTs: its postObject marks the `policy` field as
 * unimplemented, and since a form POST carries no Authorization header or signed query, its
 * authentication middleware lets the request through as anonymous. So this guard checks both
 * halves itself, as S3 does: the SigV4 signature over the policy (without it a client could
 * write its own policy), then the expiration and every condition. A request that passes is
 * forwarded byte for byte. Anything else is refused as S3 refuses an anonymous request to a
 * private bucket (s3rver would serve it): the guard cannot check other signatures, and browsers
 * send nothing else but presigned GETs of uploads (moderators' image links), which s3rver checks.
 *
 * Serve it under a public prefix with the prefix stripped (the gateway's `/s3`): a POST policy
 * signature covers the policy, not the host or path, so that URL may differ from the signed one.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { proxy } from 'hono/proxy';
import { z } from 'zod';
import type { Logger } from '@avatar-pipeline/kit/logger';
import { systemClock, type Clock } from '@avatar-pipeline/kit/table';

export interface PostPolicyGuardOptions {
  /** The s3rver endpoint, e.g. http://127.0.0.1:4569. */
  upstream: string;
  logger: Logger;
  /** Largest multipart body read (default 16 MiB); larger ones are refused unread. */
  maxBodyBytes?: number;
  /** Access key id -> secret used to check policy signatures (default: s3rver's dummy account). */
  credentials?: Readonly<Record<string, string>>;
  clock?: Clock;
  /**
   * Origins the bucket's CORS rule allows (s3rver answers preflights and uploads by that rule):
   * the guard's own refusals carry Access-Control-Allow-Origin for them too, as S3's errors do,
   * so a page on such an origin can read why its upload was refused.
   */
  corsOrigins?: readonly string[];
}

/** s3rver's built-in account: public, dummy values every s3rver accepts. */
const S3RVER_CREDENTIALS: Readonly<Record<string, string>> = { S3RVER: 'S3RVER' };
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Form fields S3 does not require a policy condition for. */
const exemptFields = new Set(['policy', 'x-amz-signature', 'file']);

class S3Refusal extends Error {
  constructor(
    readonly status: 400 | 403 | 500,
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, string | number>> = {},
  ) {
    super(message);
  }
}

const denied = (reason: string) => new S3Refusal(403, 'AccessDenied', `Invalid according to Policy: ${reason}`);
const anonymous = new S3Refusal(403, 'AccessDenied', 'Access Denied');
const badPolicy = (reason: string) => new S3Refusal(400, 'InvalidPolicyDocument', `Invalid Policy: ${reason}`);

function escapeXml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function errorXml(refusal: S3Refusal, resource: string): string {
  const extra = Object.entries({ ...refusal.details, Resource: resource, RequestId: randomUUID() })
    .map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`)
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${refusal.code}</Code><Message>${escapeXml(refusal.message)}</Message>${extra}</Error>`;
}

type Condition =
  | { op: 'eq' | 'starts-with'; field: string; value: string; text: string }
  | { op: 'content-length-range'; min: number; max: number; text: string };

const policySchema = z.object({
  expiration: z.iso.datetime(),
  conditions: z.array(z.unknown()),
});

const byteCount = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)]);

function parseCondition(raw: unknown): Condition[] {
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    // {"field": "value"} is an exact match, like ["eq", "$field", "value"].
    return Object.entries(raw).map(([name, value]) => {
      if (typeof value !== 'string') throw badPolicy(`condition value for ${name} must be a string`);
      return { op: 'eq', field: name.toLowerCase(), value, text: JSON.stringify({ [name]: value }) };
    });
  }
  if (!Array.isArray(raw) || raw.length !== 3 || typeof raw[0] !== 'string') throw badPolicy(`unsupported condition ${JSON.stringify(raw)}`);
  const [name, a, b] = raw as [string, unknown, unknown];
  const op = name.toLowerCase();
  const text = `[${raw.map((part) => JSON.stringify(part)).join(', ')}]`;
  if (op === 'eq' || op === 'starts-with') {
    if (typeof a !== 'string' || !a.startsWith('$') || typeof b !== 'string') throw badPolicy(`malformed condition ${text}`);
    return [{ op, field: a.slice(1).toLowerCase(), value: b, text }];
  }
  if (op === 'content-length-range') {
    const min = byteCount.safeParse(a);
    const max = byteCount.safeParse(b);
    if (!min.success || !max.success || min.data > max.data) throw badPolicy(`malformed condition ${text}`);
    return [{ op, min: min.data, max: max.data, text }];
  }
  throw badPolicy(`unknown condition type ${JSON.stringify(name)}`);
}

interface PostForm {
  /** Fields before the file, by lower-cased name (S3 ignores everything after the file). */
  fields: Map<string, string>;
  file: Blob;
}

async function readForm(bytes: ArrayBuffer, contentType: string): Promise<PostForm> {
  let form: FormData;
  try {
    form = await new Request('http://guard.invalid/', { method: 'POST', headers: { 'content-type': contentType }, body: bytes }).formData();
  } catch {
    throw new S3Refusal(400, 'MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.');
  }
  const fields = new Map<string, string>();
  for (const [name, value] of form) {
    // s3rver stores the first part named exactly `file` and ignores the rest, as S3 does.
    if (name === 'file') {
      if (typeof value === 'string') throw new S3Refusal(400, 'InvalidArgument', 'the file field must be a file part (with a filename)');
      return { fields, file: value };
    }
    if (typeof value !== 'string') throw new S3Refusal(400, 'InvalidArgument', `unexpected file part ${name}`, { ArgumentName: name });
    const lower = name.toLowerCase();
    // A repeated field could pass the check with one value and be stored with another.
    if (fields.has(lower)) throw new S3Refusal(400, 'InvalidArgument', `form field ${name} appears more than once`, { ArgumentName: name });
    fields.set(lower, value);
  }
  throw new S3Refusal(400, 'InvalidArgument', 'POST requires exactly one file upload per request.', { ArgumentName: 'file' });
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** SigV4 for browser POSTs: the signature is an HMAC of the base64 policy with the scoped key. */
function checkSignature(fields: Map<string, string>, policy: string, credentials: Readonly<Record<string, string>>): void {
  if (fields.get('x-amz-algorithm') !== 'AWS4-HMAC-SHA256') {
    throw new S3Refusal(403, 'AccessDenied', 'only AWS4-HMAC-SHA256 (Signature Version 4) POST policies are accepted');
  }
  const credential = /^([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request$/.exec(fields.get('x-amz-credential') ?? '');
  if (!credential) throw new S3Refusal(403, 'AccessDenied', 'x-amz-credential is missing or malformed');
  const [, accessKeyId = '', date = '', region = ''] = credential;
  const secret = Object.hasOwn(credentials, accessKeyId) ? credentials[accessKeyId] : undefined;
  if (secret === undefined) {
    throw new S3Refusal(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: accessKeyId });
  }
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), 's3'), 'aws4_request');
  const expected = Buffer.from(hmac(signingKey, policy).toString('hex'));
  const provided = Buffer.from((fields.get('x-amz-signature') ?? '').toLowerCase());
  if (provided.length !== expected.length || !timingSafeEqual(provided, expected)) {
    throw new S3Refusal(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
}

function decodePolicy(policy: string): { expiration: Date; conditions: Condition[] } {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(policy, 'base64').toString('utf8'));
  } catch {
    throw badPolicy('Invalid JSON.');
  }
  const parsed = policySchema.safeParse(document);
  if (!parsed.success) throw badPolicy('the policy needs an ISO 8601 expiration and a conditions list');
  return { expiration: new Date(parsed.data.expiration), conditions: parsed.data.conditions.flatMap(parseCondition) };
}

/** Evaluates a POST against its policy the way S3 does; throws the refusal S3 would send. */
function checkPolicy(form: PostForm, bucket: string, now: Date, credentials: Readonly<Record<string, string>>): void {
  const { fields, file } = form;
  const policy = fields.get('policy');
  // Without a policy the POST is anonymous, and the bucket is not publicly writable.
  if (policy === undefined) throw anonymous;
  checkSignature(fields, policy, credentials);
  const { expiration, conditions } = decodePolicy(policy);
  if (now.getTime() > expiration.getTime()) throw denied('Policy expired.');
  if (!fields.get('key')) {
    throw new S3Refusal(400, 'InvalidArgument', "Bucket POST must contain a field named 'key'.", { ArgumentName: 'key' });
  }

  const valueOf = (field: string) => (field === 'bucket' ? bucket : (fields.get(field) ?? ''));
  const covered = new Set<string>();
  let range: Extract<Condition, { op: 'content-length-range' }> | undefined;
  for (const condition of conditions) {
    if (condition.op === 'content-length-range') {
      range = condition;
      continue;
    }
    covered.add(condition.field);
    const actual = valueOf(condition.field);
    const ok = condition.op === 'eq' ? actual === condition.value : actual.startsWith(condition.value);
    if (!ok) throw denied(`Policy Condition failed: ${condition.text}`);
  }
  const extra = [...fields.keys()].filter((name) => !exemptFields.has(name) && !name.startsWith('x-ignore-') && !covered.has(name));
  if (extra.length > 0) throw denied(`Extra input fields: ${extra.join(', ')}`);
  if (range && file.size > range.max) {
    throw new S3Refusal(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { ProposedSize: file.size, MaxSizeAllowed: range.max });
  }
  if (range && file.size < range.min) {
    throw new S3Refusal(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', { ProposedSize: file.size, MinSizeAllowed: range.min });
  }
}

export function createPostPolicyGuard(options: PostPolicyGuardOptions): Hono {
  const { logger } = options;
  const upstream = options.upstream.replace(/\/+$/, '');
  const credentials = options.credentials ?? S3RVER_CREDENTIALS;
  const clock = options.clock ?? systemClock;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const app = new Hono();

  // The path only: a browser form upload has no query, and s3rver would pick its operation from
  // one (`?delete`, `?uploads`), not from the policy that was checked.
  const target = (c: Context) => `${upstream}${new URL(c.req.url).pathname}`;
  const corsOrigins = new Set(options.corsOrigins ?? []);
  const corsHeaders = (c: Context): Record<string, string> => {
    const origin = c.req.header('origin');
    return origin && corsOrigins.has(origin) ? { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' } : {};
  };
  const refuse = (c: Context, refusal: S3Refusal, headers: Record<string, string> = {}) =>
    c.body(errorXml(refusal, c.req.path), refusal.status, { ...corsHeaders(c), ...headers, 'Content-Type': 'application/xml' });

  app.on(
    'POST',
    ['/:bucket', '/:bucket/'],
    bodyLimit({
      maxSize: maxBodyBytes,
      // The unread body is still on the wire: close the connection rather than reuse it.
      onError: (c) =>
        refuse(c, new S3Refusal(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { MaxSizeAllowed: maxBodyBytes }), {
          Connection: 'close',
        }),
    }),
    async (c) => {
      const contentType = c.req.header('content-type') ?? '';
      // Only browser form uploads carry a policy; a DeleteObjects (`?delete`) or the like does not.
      if (!/^multipart\/form-data\b/i.test(contentType)) return refuse(c, anonymous);
      const bucket = c.req.param('bucket');
      const bytes = await c.req.arrayBuffer();
      try {
        const form = await readForm(bytes, contentType);
        checkPolicy(form, bucket, clock(), credentials);
        logger.debug({ bucket, key: form.fields.get('key'), size: form.file.size }, 'POST policy satisfied');
      } catch (err) {
        if (!(err instanceof S3Refusal)) throw err;
        logger.info({ bucket, code: err.code, reason: err.message }, 'POST refused by policy guard');
        return refuse(c, err);
      }
      // The original bytes and headers, untouched: s3rver parses exactly what was checked.
      return proxy(target(c), { raw: c.req.raw, body: bytes });
    },
  );
  // A CORS preflight for an upload: s3rver answers it from the bucket's CORS rule, as S3 does.
  app.on('OPTIONS', ['/:bucket', '/:bucket/'], (c) => proxy(target(c), { raw: c.req.raw }));
  // A presigned GET of an upload (a moderator's image link): s3rver checks a query signature when
  // there is one (for the host and path it was signed for: the upstream's, which the proxy keeps),
  // and would serve an unsigned GET to anyone, so one without a signature is refused here.
  app.on(['GET', 'HEAD'], '/:bucket/uploads/*', (c) => {
    const url = new URL(c.req.url);
    if (!url.searchParams.has('X-Amz-Signature') || url.searchParams.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return refuse(c, anonymous);
    return proxy(`${target(c)}${url.search}`, { raw: c.req.raw });
  });
  app.all('*', (c) => refuse(c, anonymous));
  app.onError((err, c) => {
    logger.error({ err, path: c.req.path }, 'policy guard failed');
    return refuse(c, new S3Refusal(500, 'InternalError', 'We encountered an internal error. Please try again.'));
  });
  return app;
}
