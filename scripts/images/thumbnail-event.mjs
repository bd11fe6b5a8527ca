// One real event through the thumbnail image: a photo at its upload key in the stand-in S3, an
// `avatarpipeline.avatar.approved` CloudEvent delivered in binary mode as the Knative broker does,
// with the OIDC token Knative signs for thumbnail's audience, then the reply and the WebP
// renditions it names are checked. Before that, the same event without a valid token must be
// refused (401) and leave the upload untouched, and with the right token but before moderate's
// approval is on the upload record it must be ignored (a forged approval renders nothing).
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import sharp from 'sharp';

const APPROVED = 'avatarpipeline.avatar.approved';
const THUMBNAILED = 'avatarpipeline.avatar.thumbnailed';

/** Upload ids are UUIDv7 (RFC 9562): a millisecond timestamp, the version and variant, random bits. */
function uuidv7() {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function check(condition, message) {
  if (!condition) throw new Error(`thumbnail event: ${message}`);
}

/** The upload: present, deleted, or the error HeadObject gave. */
const uploadState = (s3, bucket, key) =>
  s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
    () => 'present',
    (err) => (err.$metadata?.httpStatusCode === 404 ? 'deleted' : err.message),
  );

/**
 * Returns the renditions written, each with its size in bytes and pixels, and the refusals.
 * `token`: the delivery token for thumbnail; `refusals`: `{ problem, headers }` to send first, each
 * of which must get 401 JSON (`unauthorized`) with nothing handled. `approve(playerId, uploadId,
 * sha256)` records moderate's approval on the upload, as moderate's `UploadStore.approve` does.
 */
export async function deliverApprovedEvent({ url, s3, bucket, photo, token, approve, refusals = [], fullMax = 1024 }) {
  const playerId = 'image-test';
  const uploadId = uuidv7();
  const key = `uploads/${playerId}/${uploadId}`;
  const body = await readFile(photo);
  const { ETag } = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'image/jpeg' }));
  const { width, height } = await sharp(body).metadata();
  const uploadedAt = new Date().toISOString();
  // As moderate sends it: the ETag and the SHA-256 of the bytes it checked.
  const sha256 = createHash('sha256').update(body).digest('hex');
  const data = { playerId, uploadId, uploadedAt, bucket, key, eTag: ETag.replaceAll('"', ''), sha256, contentType: 'image/jpeg', width, height, provider: 'nsfwjs', labels: [] };
  const deliver = (headers) =>
    fetch(`${url}/events`, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-id': `${uploadId}.approved`,
        'ce-source': '/avatar-pipeline/moderate',
        'ce-type': APPROVED,
        'ce-subject': key,
        'ce-time': uploadedAt,
        'content-type': 'application/json',
        prefer: 'reply',
        ...headers,
      },
      body: JSON.stringify(data),
      signal: AbortSignal.timeout(60_000),
    });

  const refused = [];
  for (const { problem, headers } of refusals) {
    const response = await deliver(headers);
    const text = await response.text();
    check(response.status === 401, `the event with ${problem} answered ${response.status} (expected 401): ${text}`);
    let code;
    try {
      code = JSON.parse(text).error?.code;
    } catch {
      code = undefined;
    }
    check(code === 'unauthorized', `the event with ${problem} answered 401 with ${text}`);
    check(response.headers.get('www-authenticate')?.startsWith('Bearer'), `the 401 for ${problem} has WWW-Authenticate ${response.headers.get('www-authenticate')}`);
    const state = await uploadState(s3, bucket, key);
    check(state === 'present', `after the event with ${problem} the upload is ${state} (expected present: nothing handled)`);
    refused.push({ problem, status: response.status });
  }

  const forged = await deliver({ authorization: `Bearer ${token}` });
  check(forged.status === 202, `the event before moderate's approval answered ${forged.status} (expected 202, ignored): ${await forged.text()}`);
  const untouched = await uploadState(s3, bucket, key);
  check(untouched === 'present', `after the unapproved event the upload is ${untouched} (expected present: nothing rendered)`);
  await approve(playerId, uploadId, sha256);

  const started = performance.now();
  const response = await deliver({ authorization: `Bearer ${token}` });
  const text = await response.text();
  const ms = performance.now() - started;
  check(response.status === 200, `answered ${response.status}: ${text}`);
  check(response.headers.get('ce-type') === THUMBNAILED, `replied with type ${response.headers.get('ce-type')}`);
  check(response.headers.get('ce-id') === `${uploadId}.thumbnailed`, `replied with id ${response.headers.get('ce-id')}`);
  const reply = JSON.parse(text);
  check(reply.uploadId === uploadId && reply.bucket === bucket, `reply data ${text}`);

  const renditions = [];
  for (const [name, objectKey] of Object.entries(reply.objects)) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey }));
    check(object.ContentType === 'image/webp', `${objectKey} has Content-Type ${object.ContentType}`);
    const bytes = Buffer.from(await object.Body.transformToByteArray());
    const meta = await sharp(bytes).metadata();
    check(meta.format === 'webp', `${objectKey} is ${meta.format}, not WebP`);
    if (name === 'full') check(Math.max(meta.width, meta.height) <= fullMax, `${objectKey} is ${meta.width}x${meta.height}`);
    else check(meta.width === Number(name) && meta.height === Number(name), `${objectKey} is ${meta.width}x${meta.height}, not ${name}x${name}`);
    renditions.push({ name, key: objectKey, bytes: bytes.length, width: meta.width, height: meta.height });
  }
  check(['64', '128', '256', 'full'].every((name) => renditions.some((r) => r.name === name)), `renditions ${renditions.map((r) => r.name)}`);
  const original = await uploadState(s3, bucket, key);
  check(original === 'deleted', `the original upload is ${original} (expected deleted)`);
  return { ms, photo: `${width}x${height}`, renditions, refused };
}
