// CPU per upload of the moderate and thumbnail processes as they run in the stack: each built
// service (services/<name>/dist/main.js) is a child process, as the local stack runs it, against
// s3rver and dynalite in this process; every wallpaper photo is uploaded (a pending record, the
// object), its S3 event delivered to moderate and the approved reply to thumbnail. The CPU of each
// child (utime + stime from /proc, every thread) over the uploads, divided by their number, is set
// against the floor of the issue: one strict decode at the model's reduced scale plus the model
// runs moderate makes (one per view), measured here in-process with the same functions.
//
// Usage (after `npx tsc -b`; Linux):  node bench/stages.mjs [--rounds 3] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { decodeScaled, defaultLimits, inspectImage, strictScale, tuneLibvips } from '@avatar-pipeline/imaging';
import { dynamoDocumentClient, s3Client } from '@avatar-pipeline/kit/aws';
import { toBinary, toCloudEvent } from '@avatar-pipeline/kit/cloudevents';
import { uploadKey } from '@avatar-pipeline/kit/events';
import { UploadStore } from '@avatar-pipeline/kit/table';
import { startDynamoServer, startS3Server } from '@avatar-pipeline/local';
import * as moderate from '@avatar-pipeline/moderate';
import { createRequire } from 'node:module';
import { wallpaperPhotos } from './lib/corpus.mjs';

const root = new URL('..', import.meta.url).pathname;
// uuid 11 (v7) as the services use it (the root node_modules holds an older one).
const { v7: uuidv7 } = createRequire(join(root, 'services/moderate/package.json'))('uuid');
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
const rounds = Number(values.rounds);
const files = wallpaperPhotos();

// The local stand-ins' fixed credentials (LOCAL_CREDENTIALS), for this process's own clients.
process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

const BUCKET = 'avatars';
const TABLE = 'avatar-pipeline';
const dir = mkdtempSync(join(tmpdir(), 'ap-bench-'));
const s3Server = await startS3Server({ directory: join(dir, 's3'), buckets: [BUCKET] });
const ddbServer = await startDynamoServer({ table: TABLE });
const s3 = s3Client({ region: 'us-east-1', s3Endpoint: s3Server.endpoint });
const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: ddbServer.endpoint });
const uploads = new UploadStore(doc, TABLE);

const ticks = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, 100 Hz ticks -> ms
};

async function start(name) {
  const child = spawn(process.execPath, [join(root, 'services', name, 'dist/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_ENDPOINT_URL_S3: s3Server.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: ddbServer.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      TABLE_NAME: TABLE,
      BUCKET,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const port = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line);
      if (entry.msg === `${name} listening` && entry.port) resolve(entry.port);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/events` };
}

async function deliver(service, event) {
  const { headers, body } = toBinary(event);
  const res = await fetch(service.url, { method: 'POST', headers, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${service.url} answered ${res.status}: ${text}`);
  const replyHeaders = {};
  res.headers.forEach((value, name) => (replyHeaders[name] = value));
  const reply = toCloudEvent(replyHeaders, text);
  return { id: reply.id, source: reply.source, type: reply.type, subject: reply.subject ?? '', data: reply.data };
}

async function upload(body) {
  const playerId = 'bench';
  const uploadId = uuidv7();
  const key = uploadKey(playerId, uploadId);
  await uploads.createPending({ playerId, uploadId, contentType: 'image/jpeg', maxBytes: 5 * 1024 * 1024 });
  const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'image/jpeg' }));
  return {
    id: `bench-${uploadId}`,
    source: `aws:s3.us-east-1.${BUCKET}`,
    type: 'com.amazonaws.s3.ObjectCreated:Post',
    subject: key,
    time: new Date().toISOString(),
    data: { s3SchemaVersion: '1.0', configurationId: 'uploads', bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` }, object: { key, size: body.length, eTag: (put.ETag ?? '').replace(/"/g, '') } },
  };
}

const bodies = files.map((f) => readFileSync(f));
const mod = await start('moderate');
const thumb = await start('thumbnail');
// Warm-up: one upload of each photo through both (JIT, first model runs, connection pools).
for (const body of bodies) await deliver(thumb, await deliver(mod, await upload(body)));

let moderateMs = 0;
let thumbnailMs = 0;
for (let round = 0; round < rounds; round++) {
  for (const body of bodies) {
    const event = await upload(body);
    let before = ticks(mod.child.pid);
    const approved = await deliver(mod, event);
    moderateMs += ticks(mod.child.pid) - before;
    if (approved.type !== 'avatarpipeline.avatar.approved') throw new Error(`not approved: ${JSON.stringify(approved.data)}`);
    before = ticks(thumb.child.pid);
    await deliver(thumb, approved);
    thumbnailMs += ticks(thumb.child.pid) - before;
  }
}
const n = rounds * bodies.length;
mod.child.kill('SIGTERM');
thumb.child.kill('SIGTERM');

// The floor, in this process with the services' settings: one strict decode at the model's scale + views x one model run.
tuneLibvips();
const provider = await moderate.loadNsfwjsProvider({ model: 'MobileNetV2', minConfidence: 60 });
const cpu = async (fn, times = 5) => {
  await fn();
  const start = process.cpuUsage();
  for (let i = 0; i < times; i++) await fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / times;
};
let floor = 0;
let decodeMs = 0;
let classifyMs = 0;
let viewCount = 0;
for (const body of bodies) {
  const info = await inspectImage(body, defaultLimits, { fullDecode: false });
  const { views } = await moderate.decodeForModeration(body, info, { crop: 'attention', shape: provider.viewShape, limits: defaultLimits });
  const decode = await cpu(() => decodeScaled(body, info, defaultLimits, strictScale(info.format, provider.inputSize / Math.min(info.width, info.height))));
  const classify = await cpu(() => provider.classify(views[0].pixels));
  decodeMs += decode;
  classifyMs += classify;
  viewCount += views.length;
  floor += decode + views.length * classify;
}
await provider.close?.();
const per = (ms) => ms / bodies.length;
const result = {
  uploads: n,
  photos: bodies.length,
  moderate: moderateMs / n,
  thumbnail: thumbnailMs / n,
  floor: per(floor),
  decode: per(decodeMs),
  classify: per(classifyMs),
  views: viewCount / bodies.length,
};
result.moderateOverFloor = result.moderate / result.floor;
s3.destroy();
doc.destroy();
await s3Server.close();
await ddbServer.close();
rmSync(dir, { recursive: true, force: true });
if (values.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`${n} uploads (${rounds} rounds of ${bodies.length} wallpaper photos), CPU ms per upload of each process`);
  console.log(`moderate process  ${result.moderate.toFixed(0)}`);
  console.log(`thumbnail process ${result.thumbnail.toFixed(0)}`);
  console.log(`floor ${result.floor.toFixed(0)} = decode ${result.decode.toFixed(0)} + ${result.views.toFixed(1)} views x classify ${result.classify.toFixed(0)}`);
  console.log(`moderate / floor ${result.moderateOverFloor.toFixed(2)}`);
}
