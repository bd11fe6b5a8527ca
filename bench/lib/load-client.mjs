// The load generator of bench/pipeline.mjs, run in a worker thread so that its CPU (building and
// sending multi-megabyte forms) is counted apart from the stack's (the main thread: s3rver,
// dynalite, the broker, the gateway) and it never holds up the stack's event loop.
//
// It is also where `ready` is detected: every player's one device is a web-push-testing
// subscription whose endpoint points at a recording proxy in this thread. The proxy notes the time
// each notification arrives from push and passes it on to the emulator; once the emulator has
// taken it, one /get-notifications call for that device tells which upload it was about. So
// completion costs nothing while an upload is in flight (no status polling: a poll every N ms adds
// up to N ms of error and N requests/s of load to the gateway, profile and dynalite), and the exact
// moment the upload became ready is read afterwards, once, from its record (`updatedAt` of a
// terminal upload is when it ended; the same machine clock).
import { readFileSync, readlinkSync } from 'node:fs';
import { createServer, request, Agent } from 'node:http';
import { basename, extname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ApiClient, postUpload } from '@avatar-pipeline/local';

const now = () => performance.timeOrigin + performance.now();
const contentTypes = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
const photos = workerData.photos.map((file) => ({ name: workerData.names?.[file] ?? basename(file), bytes: readFileSync(file), contentType: contentTypes[extname(file).toLowerCase()] }));
const emulator = new URL(workerData.emulatorUrl);
const agent = new Agent({ keepAlive: true, maxSockets: 32 });

/** uploadId -> resolve({ status, at }) for uploads waiting for their notification. */
const waiting = new Map();
/** Notifications for uploads nobody waits for (yet): a duplicate, or one faster than the POST's answer. */
const early = new Map();
const seen = new Map();
let duplicates = 0;
let lookups = Promise.resolve();

function deliverNotification(uploadId, outcome) {
  const wake = waiting.get(uploadId);
  if (wake) {
    waiting.delete(uploadId);
    wake(outcome);
  } else if (early.has(uploadId)) {
    duplicates += 1;
  } else {
    early.set(uploadId, outcome);
  }
}

async function emulatorCall(path, body) {
  const res = await fetch(new URL(path, emulator), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`web-push-testing ${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** Which uploads a device's new notifications are about (one call per notification that arrived). */
function lookUp(clientHash, at) {
  lookups = lookups.then(async () => {
    const { data } = await emulatorCall('/get-notifications', { clientHash });
    const from = seen.get(clientHash) ?? 0;
    seen.set(clientHash, data.messages.length);
    for (const text of data.messages.slice(from)) {
      const n = JSON.parse(text);
      deliverNotification(n.uploadId, { status: n.status, at });
    }
  }).catch((err) => console.error(`notification lookup failed: ${err.message}`));
}

// The recording proxy: push sends here, the emulator answers.
const proxy = createServer((req, res) => {
  const at = now();
  const upstream = request(
    { host: emulator.hostname, port: emulator.port, method: req.method, path: req.url, headers: { ...req.headers, host: emulator.host }, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('end', () => {
        const hash = /^\/notify\/([^/?]+)/.exec(req.url ?? '')?.[1];
        if (hash && answer.statusCode >= 200 && answer.statusCode < 300) lookUp(decodeURIComponent(hash), at);
      });
    },
  );
  upstream.on('error', (err) => {
    res.writeHead(502).end(err.message);
  });
  req.pipe(upstream);
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxyPort = proxy.address().port;

let api;
let players = [];

async function setup({ gatewayUrl, players: given }) {
  api = new ApiClient(gatewayUrl);
  const { body: key } = await api.json('/v1/push/vapid-public-key');
  players = [];
  for (const player of given) {
    const { data } = await emulatorCall('/subscribe', { userVisibleOnly: 'true', applicationServerKey: key.publicKey });
    // The same subscription, reached through the recording proxy.
    const endpoint = data.endpoint.replace(`//localhost:${emulator.port}/`, `//localhost:${proxyPort}/`);
    const subscription = { endpoint, expirationTime: null, keys: data.keys };
    const res = await api.json('/v1/push/subscriptions', { method: 'POST', token: player.token, body: JSON.stringify(subscription) });
    if (res.status !== 201) throw new Error(`subscribing a device answered ${res.status}: ${JSON.stringify(res.body)}`);
    players.push({ ...player, device: data.clientHash });
  }
  return { devices: players.length };
}

/** A client's retries: a few, for what a client would retry (5xx, 429, no answer). */
async function withRetries(what, attempt, record) {
  for (let n = 0; ; n++) {
    try {
      const result = await attempt();
      if (result.retry && n < 3) {
        record.retries += 1;
        await new Promise((r) => setTimeout(r, 200 * 2 ** n));
        continue;
      }
      return result;
    } catch (err) {
      if (n >= 3) throw new Error(`${what}: ${err.message}`);
      record.retries += 1;
      await new Promise((r) => setTimeout(r, 200 * 2 ** n));
    }
  }
}

async function upload(index, timeoutMs) {
  const player = players[index % players.length];
  const photo = photos[index % photos.length];
  const r = { index, playerId: player.id, photo: photo.name, bytes: photo.bytes.length, retries: 0, start: now() };
  try {
    const ticket = await withRetries('presign', async () => {
      const res = await api.json('/v1/uploads', {
        method: 'POST',
        token: player.token,
        body: JSON.stringify({ contentType: photo.contentType, contentLength: photo.bytes.length }),
      });
      if (res.status === 201) return { ticket: res.body };
      if (res.status >= 500 || res.status === 429) return { retry: true, problem: `presign answered ${res.status}` };
      throw new Error(`presign answered ${res.status}: ${JSON.stringify(res.body)}`);
    }, r);
    if (!ticket.ticket) throw new Error(ticket.problem);
    r.presigned = now();
    r.uploadId = ticket.ticket.uploadId;
    const outcome = new Promise((resolve) => {
      if (early.has(r.uploadId)) {
        resolve(early.get(r.uploadId));
        early.delete(r.uploadId);
      } else waiting.set(r.uploadId, resolve);
    });
    const posted = await withRetries('POST', async () => {
      const res = await postUpload(ticket.ticket, photo.bytes, photo.contentType);
      await res.arrayBuffer();
      if (res.status === 204) return { ok: true };
      if (res.status >= 500) return { retry: true, problem: `POST answered ${res.status}` };
      throw new Error(`POST answered ${res.status}`);
    }, r);
    if (!posted.ok) throw new Error(posted.problem);
    r.posted = now();
    let timer;
    const result = await Promise.race([outcome, new Promise((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)))]);
    clearTimeout(timer);
    if (!result) {
      waiting.delete(r.uploadId);
      r.problem = `no notification within ${timeoutMs / 1000} s`;
    } else {
      r.status = result.status;
      r.notified = result.at;
    }
  } catch (err) {
    r.problem = err.message;
  }
  return r;
}

/**
 * Open loop: upload i starts at t0 + i / rate, whatever became of the ones before (`rate` 0: one
 * after the other, each once the one before was notified).
 */
async function run({ rate, count, first, timeoutMs }) {
  const t0 = now();
  const started = [];
  if (rate > 0) {
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      started.push(upload(first + i, timeoutMs));
    }
  } else {
    for (let i = 0; i < count; i++) started.push(await upload(first + i, timeoutMs));
  }
  const records = await Promise.all(started);
  await lookups;
  // When each upload ended, from its record (one status read per upload, after the load).
  const byId = new Map(players.map((p) => [p.id, p]));
  for (const r of records) {
    if (!r.uploadId || r.status === undefined) continue;
    try {
      const status = await api.status(byId.get(r.playerId).token, r.uploadId);
      r.finalStatus = status.status;
      r.ended = Date.parse(status.updatedAt);
    } catch (err) {
      r.problem = `status: ${err.message}`;
    }
  }
  return { records, duplicates };
}

const commands = { setup, run };
parentPort.on('message', async ({ id, command, args }) => {
  try {
    parentPort.postMessage({ id, result: await commands[command](args) });
  } catch (err) {
    parentPort.postMessage({ id, error: err.stack ?? String(err) });
  }
});
// This thread's id, for its CPU time in /proc/self/task/<tid>/stat.
parentPort.postMessage({ ready: true, proxyHost: `localhost:${proxyPort}`, tid: Number(readlinkSync('/proc/thread-self').split('/').pop()) });
