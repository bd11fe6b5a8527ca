// Ban-list lookups with 100,000 bans: what moderate pays per upload to refuse banned pictures.
// The kit's BanList (band index: one BatchGetItem of 4 band items for distance ≤ 3, 68 for ≤ 7)
// against dynalite holding 100,000 bans, beside the anchor: a linear scan of the same 100,000
// fingerprints held in memory (typed arrays, popcount of XOR), the fastest scan there is and one
// every moderate pod would have to keep in sync; and, to show what the index saves, reading every
// ban from the table (a paged Query of the BANS partition, what a lookup without it costs). The
// floor of any lookup, one consistent GetItem round trip, is measured beside each.
// dynalite runs in a child process (LevelDB on disk), as in the local stack.
// The fingerprints are random but shaped like real ones (the DC bit 0, 31 of the 63 others set),
// plus near-duplicates (bans within distance 2-6 of another ban, as a picture banned twice in
// slightly different copies is). Each distance gets `--lookups` lookups, half of fresh pictures
// (misses: the common case) and half of copies of banned ones at distance 1..d (hits, which also
// read the ban itself); every BanList answer is checked against the scan's.
// Loading 100,000 bans (about 290,000 items with their band items) into dynalite takes a minute, so
// the table is built once into a LevelDB directory under node_modules/.cache and copied for each
// run (--rebuild builds it again).
//
// Usage (after `npx tsc -b`):  node bench/bans.mjs [--bans 100000] [--lookups 400] [--rebuild] [--json]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BatchWriteCommand, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { BanList, bandKeysWithin, hammingDistance } from '@avatar-pipeline/kit/bans';
import { LOCAL_TABLE, startDynamoServer } from '@avatar-pipeline/local';

const root = new URL('..', import.meta.url).pathname;

// dynalite runs in a process of its own (this file again, by role), as in the local stack.
if (process.env['BENCH_BANS_DYNAMO_DIR']) {
  const server = await startDynamoServer({ table: LOCAL_TABLE, directory: process.env['BENCH_BANS_DYNAMO_DIR'] });
  process.stdout.write(`${server.endpoint}\n`);
  process.once('SIGTERM', () => server.close().then(() => process.exit(0)));
  await new Promise(() => {});
}
/** Starts dynalite on a LevelDB directory; resolves to its endpoint and a stop function. */
async function dynamo(directory) {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname], { env: { ...process.env, BENCH_BANS_DYNAMO_DIR: directory }, stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => child.kill('SIGKILL'));
  const [line] = await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => Promise.reject(new Error('dynalite exited')))]);
  return {
    endpoint: String(line).trim(),
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
const { values } = parseArgs({
  options: {
    bans: { type: 'string', default: '100000' },
    lookups: { type: 'string', default: '400' },
    rebuild: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const count = Number(values.bans);
const lookups = Number(values.lookups);
const say = (line) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);
process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// --- Fingerprints --------------------------------------------------------------------------------

/** mulberry32: the same bans and lookups every run (the cached table depends on it). */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const hex = (bits) => bits.toString(16).padStart(16, '0');
/** Like `fingerprint`'s output: bit 63 (DC) clear, 31 of the other 63 set. */
function realistic(rand) {
  const positions = Array.from({ length: 63 }, (_, i) => i);
  let bits = 0n;
  for (let i = 0; i < 31; i++) {
    const j = i + Math.floor(rand() * (63 - i));
    [positions[i], positions[j]] = [positions[j], positions[i]];
    bits |= 1n << BigInt(positions[i]);
  }
  return hex(bits);
}
function flipped(fp, k, rand) {
  let bits = BigInt(`0x${fp}`);
  const seen = new Set();
  while (seen.size < k) seen.add(Math.floor(rand() * 64));
  for (const bit of seen) bits ^= 1n << BigInt(bit);
  return hex(bits);
}

const rand = random(15);
const prints = new Set();
while (prints.size < count - Math.floor(count / 1000)) prints.add(realistic(rand));
const originals = [...prints];
// A few near-duplicates: 1 in 1000 bans is a copy of another at distance 2-6.
while (prints.size < count) prints.add(flipped(originals[Math.floor(rand() * originals.length)], 2 + Math.floor(rand() * 5), rand));
const banned = [...prints];

// --- The table: built once, cached --------------------------------------------------------------

const CACHE_VERSION = 1;
const cache = join(root, 'node_modules/.cache/avatar-pipeline-bench', `bans-${count}-v${CACHE_VERSION}`);
const complete = join(cache, 'complete');
let loadSeconds = 0;
let items = 0;
if (values.rebuild || !existsSync(complete)) {
  rmSync(cache, { recursive: true, force: true });
  const building = `${cache}.building`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  say(`building the table of ${count} bans in ${cache} (once)`);
  const started = performance.now();
  const server = await dynamo(join(building, 'dynamo'));
  const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: server.endpoint });
  // What BanList.add writes, precomputed: each ban's item, and each band item with its whole set.
  const createdAt = '2030-01-01T00:00:00.000Z';
  const all = banned.map((fp) => ({ pk: 'BANS', sk: `BAN#${fp}`, id: fp, fingerprint: fp, uploadId: `bench-${fp}`, reason: 'moderation', by: 'moderate', createdAt }));
  const bands = new Map();
  for (const fp of banned) {
    for (const { pk } of bandKeysWithin(fp, 0)) {
      if (!bands.has(pk)) bands.set(pk, new Set());
      bands.get(pk).add(fp);
    }
  }
  for (const [pk, fingerprints] of bands) all.push({ pk, sk: 'BANBAND', fingerprints });
  items = all.length;
  let next = 0;
  let written = 0;
  async function writer() {
    while (next < all.length) {
      let batch = all.slice(next, next + 25).map((Item) => ({ PutRequest: { Item } }));
      next += 25;
      while (batch.length > 0) {
        const { UnprocessedItems } = await doc.send(new BatchWriteCommand({ RequestItems: { [LOCAL_TABLE]: batch } }));
        batch = UnprocessedItems?.[LOCAL_TABLE] ?? [];
      }
      written += 25;
      if (written % 50_000 < 25) say(`  ${Math.min(written, items)} / ${items} items`);
    }
  }
  await Promise.all(Array.from({ length: 8 }, writer));
  doc.destroy();
  await server.stop();
  renameSync(building, cache);
  writeFileSync(complete, `${items}\n`);
  loadSeconds = (performance.now() - started) / 1000;
  say(`  built in ${loadSeconds.toFixed(1)} s`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'ap-bench-bans-'));
cpSync(join(cache, 'dynamo'), join(dataDir, 'dynamo'), { recursive: true });
const server = await dynamo(join(dataDir, 'dynamo'));
const doc = dynamoDocumentClient({ region: 'us-east-1', dynamodbEndpoint: server.endpoint });

// Counts what each lookup reads: items requested, and fingerprints in the band sets returned.
const reads = { keys: 0, candidates: 0 };
const counting = {
  send(command, options) {
    const request = command.input.RequestItems?.[LOCAL_TABLE];
    if (request) reads.keys += request.Keys.length;
    else if (command.input.Key) reads.keys += 1;
    return doc.send(command, options).then((out) => {
      for (const item of out.Responses?.[LOCAL_TABLE] ?? []) reads.candidates += item.fingerprints?.size ?? 0;
      return out;
    });
  },
};
const bans = new BanList(counting, LOCAL_TABLE);

// --- The anchor: a scan of the fingerprints in memory -------------------------------------------

const high = new Uint32Array(banned.length);
const low = new Uint32Array(banned.length);
banned.forEach((fp, i) => {
  high[i] = parseInt(fp.slice(0, 8), 16);
  low[i] = parseInt(fp.slice(8), 16);
});
const popcount = (n) => {
  n -= (n >>> 1) & 0x55555555;
  n = (n & 0x33333333) + ((n >>> 2) & 0x33333333);
  return (((n + (n >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};
/** The nearest within maxDistance, as [index, distance], or undefined. */
function scan(fp, maxDistance) {
  const h = parseInt(fp.slice(0, 8), 16);
  const l = parseInt(fp.slice(8), 16);
  let best;
  let bestDistance = maxDistance + 1;
  for (let i = 0; i < high.length; i++) {
    const d = popcount(high[i] ^ h) + popcount(low[i] ^ l);
    if (d < bestDistance) {
      best = i;
      bestDistance = d;
    }
  }
  return best === undefined ? undefined : [best, bestDistance];
}

// --- Lookups --------------------------------------------------------------------------------------

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const summary = (ms) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean: ms.reduce((a, b) => a + b, 0) / ms.length };
};

const lookupRand = random(7);
const distances = [];
let mismatches = 0;
for (const maxDistance of [3, 7]) {
  const queries = Array.from({ length: lookups }, (_, i) =>
    i % 2 === 0 ? { hit: false, fp: realistic(lookupRand) } : { hit: true, fp: flipped(banned[Math.floor(lookupRand() * banned.length)], 1 + Math.floor(lookupRand() * maxDistance), lookupRand) },
  );
  // Warm up (V8, the SDK's connection) on lookups not measured.
  for (let i = 0; i < 30; i++) await bans.match(realistic(lookupRand), maxDistance);
  const timings = { hit: [], miss: [], scan: [], get: [] };
  const perLookup = { hit: { keys: 0, candidates: 0 }, miss: { keys: 0, candidates: 0 } };
  for (const query of queries) {
    reads.keys = reads.candidates = 0;
    const started = performance.now();
    const found = await bans.match(query.fp, maxDistance);
    const elapsed = performance.now() - started;
    // The floor of any lookup in the table: one consistent GetItem round trip.
    const getStarted = performance.now();
    await doc.send(new GetCommand({ TableName: LOCAL_TABLE, Key: { pk: 'BANS', sk: `BAN#${query.fp}` }, ConsistentRead: true }));
    timings.get.push(performance.now() - getStarted);
    const scanStarted = performance.now();
    const expected = scan(query.fp, maxDistance);
    timings.scan.push(performance.now() - scanStarted);
    // Nearest ties may differ in which ban; the distance may not.
    const kind = found ? 'hit' : 'miss';
    if ((found === undefined) !== (expected === undefined) || (found && hammingDistance(found.fingerprint, query.fp) !== expected[1])) mismatches++;
    timings[kind].push(elapsed);
    perLookup[kind].keys += reads.keys;
    perLookup[kind].candidates += reads.candidates;
  }
  const row = {
    maxDistance,
    bandKeys: bandKeysWithin(banned[0], maxDistance).length,
    lookups: queries.length,
    hits: timings.hit.length,
    hit: { ...summary(timings.hit), keys: perLookup.hit.keys / timings.hit.length, candidates: perLookup.hit.candidates / timings.hit.length },
    miss: { ...summary(timings.miss), keys: perLookup.miss.keys / timings.miss.length, candidates: perLookup.miss.candidates / timings.miss.length },
    all: summary([...timings.hit, ...timings.miss]),
    scan: summary(timings.scan),
    getItem: summary(timings.get),
  };
  distances.push(row);
  say(
    `d ≤ ${maxDistance}: ${row.bandKeys} band keys; miss p50 ${row.miss.p50.toFixed(2)} ms p99 ${row.miss.p99.toFixed(2)} ms (${row.miss.candidates.toFixed(1)} candidates); ` +
      `hit p50 ${row.hit.p50.toFixed(2)} ms p99 ${row.hit.p99.toFixed(2)} ms; one GetItem p50 ${row.getItem.p50.toFixed(2)} ms; scan p50 ${row.scan.p50.toFixed(2)} ms p99 ${row.scan.p99.toFixed(2)} ms`,
  );
}

// Without the index: reading every ban from the table (one Query of the BANS partition, paged), per lookup.
const passes = [];
let pages = 0;
for (let pass = 0; pass < 3; pass++) {
  const started = performance.now();
  let start;
  pages = 0;
  do {
    const page = await doc.send(
      new QueryCommand({ TableName: LOCAL_TABLE, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'BANS' }, ProjectionExpression: 'fingerprint', ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    pages++;
    start = page.LastEvaluatedKey;
  } while (start);
  passes.push(performance.now() - started);
}
const tableScan = { ms: passes.sort((a, b) => a - b)[1], pages, items: count };
say(`reading all ${count} bans from the table: ${tableScan.ms.toFixed(0)} ms (${pages} pages), the median of 3`);

doc.destroy();
await server.stop();
rmSync(dataDir, { recursive: true, force: true });

const report = {
  bans: count,
  items: items || undefined,
  built: loadSeconds > 0 ? { seconds: loadSeconds } : undefined,
  distances,
  tableScan,
  mismatches,
};
if (mismatches > 0) say(`${mismatches} lookups disagreed with the scan`);
if (values.json) console.log(JSON.stringify(report, null, 2));
else {
  say(`\n| max distance | items read (miss / hit) | miss p50 / p99 (ms) | hit p50 / p99 (ms) | candidates per miss | one GetItem p50 / p99 (ms) | scan of ${count} p50 / p99 (ms) |`);
  say('| --- | --- | --- | --- | --- | --- | --- |');
  const f = (m) => `${m.p50.toFixed(2)} / ${m.p99.toFixed(2)}`;
  for (const r of distances) {
    say(`| ${r.maxDistance} | ${r.miss.keys} / ${r.hit.keys} | ${f(r.miss)} | ${f(r.hit)} | ${r.miss.candidates.toFixed(1)} | ${f(r.getItem)} | ${f(r.scan)} |`);
  }
  say(`\nWithout the index, reading the ${count} bans from the table: ${tableScan.ms.toFixed(0)} ms and ${tableScan.pages} pages per lookup.`);
}
process.exitCode = mismatches > 0 ? 1 : 0;
