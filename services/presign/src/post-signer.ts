/**
 * Presigned S3 POSTs, the same as @aws-sdk/s3-presigned-post's `createPresignedPost` makes them
 * (same fields in the same order, same policy document, same SigV4 signature: see the test), at a
 * fraction of its CPU. Per call it re-derives the signing key (four chained HMACs of the secret)
 * and resolves the bucket's URL through the client's S3 endpoint rules (a copy of the whole client
 * configuration each time); neither changes between uploads. Here the key is derived once per
 * day, region and credentials, and the URL is asked of `createPresignedPost` once per bucket, so
 * an upload costs the policy document and one HMAC. Credentials and the clock skew correction are
 * read from the client on every call, as the library does, so rotated credentials are used at once.
 */
import { createHmac } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { createPresignedPost, type PresignedPost, type PresignedPostOptions } from '@aws-sdk/s3-presigned-post';

export interface SignedPost extends PresignedPost {
  /** When the policy stops being accepted (ISO 8601, whole seconds): its `expiration`. */
  expiresAt: string;
}

/** What the app signs its POST policies with: a PostSigner over the S3 client (start.ts), or a fake. */
export interface PostPolicySigner {
  sign(options: PresignedPostOptions): Promise<SignedPost>;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';

/** ISO 8601 without milliseconds, as S3 policies (and the library) write it. */
const iso8601 = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

export class PostSigner implements PostPolicySigner {
  private signingKey: { scope: string; accessKeyId: string; secretAccessKey: string; key: Buffer } | undefined;
  private readonly urls = new Map<string, Promise<string>>();

  constructor(private readonly s3: S3Client) {}

  /** `Key` is taken literally (no `${filename}` prefix policy, which presign never issues). */
  async sign({ Bucket, Key, Conditions = [], Fields = {}, Expires = 3600 }: PresignedPostOptions): Promise<SignedPost> {
    const { config } = this.s3;
    const now = new Date(Date.now() + config.systemClockOffset);
    const amzDate = iso8601(now).replace(/[-:]/g, '');
    const region = await config.region();
    const credentials = await config.credentials();
    const scope = `${amzDate.slice(0, 8)}/${region}/s3/aws4_request`;
    const fields: Record<string, string> = {
      ...Fields,
      bucket: Bucket,
      'X-Amz-Algorithm': ALGORITHM,
      'X-Amz-Credential': `${credentials.accessKeyId}/${scope}`,
      'X-Amz-Date': amzDate,
      ...(credentials.sessionToken ? { 'X-Amz-Security-Token': credentials.sessionToken } : {}),
    };
    const expiresAt = iso8601(new Date(now.valueOf() + Expires * 1000));
    // Every condition once, in the library's order: the caller's, each field, then the key.
    const conditions = new Set(Conditions.map((condition) => JSON.stringify(condition)));
    for (const [name, value] of Object.entries(fields)) conditions.add(JSON.stringify({ [name]: value }));
    conditions.add(JSON.stringify({ key: Key }));
    const policy = Buffer.from(`{"expiration":${JSON.stringify(expiresAt)},"conditions":[${[...conditions].join(',')}]}`, 'utf8').toString('base64');
    const signature = hmac(this.key(scope, credentials), policy).toString('hex');
    return {
      url: await this.url(Bucket),
      fields: { ...fields, key: Key, Policy: policy, 'X-Amz-Signature': signature },
      expiresAt,
    };
  }

  /** The SigV4 signing key for `scope` (day/region/s3/aws4_request), derived again when the day or the credentials change. */
  private key(scope: string, { accessKeyId, secretAccessKey }: { accessKeyId: string; secretAccessKey: string }): Buffer {
    const cached = this.signingKey;
    if (cached?.scope === scope && cached.accessKeyId === accessKeyId && cached.secretAccessKey === secretAccessKey) return cached.key;
    const key = scope.split('/').reduce<string | Buffer>((secret, part) => hmac(secret, part), `AWS4${secretAccessKey}`) as Buffer;
    this.signingKey = { scope, accessKeyId, secretAccessKey, key };
    return key;
  }

  /** The bucket's POST URL as the SDK resolves it (endpoint override, path style, region), once. */
  private url(bucket: string): Promise<string> {
    let url = this.urls.get(bucket);
    if (!url) {
      url = createPresignedPost(this.s3, { Bucket: bucket, Key: 'url' }).then((post) => post.url);
      // A failure (credentials not there yet) is not kept: the next upload asks again.
      url.catch(() => this.urls.delete(bucket));
      this.urls.set(bucket, url);
    }
    return url;
  }
}
