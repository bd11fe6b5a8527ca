// The whole pipeline under an open-loop load (issue 13, goal 2): the local stack in this process
// (`startStack`: every built service a child process, s3rver, dynalite, the broker and the gateway
// in this process), players uploading the wallpaper photos (bench/lib/corpus.mjs: the 18 JPEG
// photographs of Debian's plasma-workspace-wallpapers, 2560x1600 to 5120x2880, 0.2 to 4.6 MB, in
// turn), each rate after the other. Per upload: from the start of its presign request to the moment
// it became ready (its record's `updatedAt`; detected by its push notification, see
// bench/lib/load-client.mjs), and to the notification's arrival.
//
// Per rate: p50/p90/p99/max, completed/s (uploads completed / first presign to last ready; also
// mid-run, between the 20th and 80th percentile of completion times, without ramp-up and drain), the
// per-stage breakdown from the Prometheus metrics of the broker, the gateway and the services
// (scraped before and after the rate; histogram means are exact, percentiles interpolated in the
// buckets as histogram_quantile does), and CPU per upload of every process from /proc (utime +
// stime): the image services (moderate + thumbnail) give the image-CPU limit, cores / their CPU per
// upload, which capacity (the highest completion rate reached) is set against; the stack process
// (s3rver, dynalite, the broker, the gateway and its upload guard: the stand-ins), the other
// services and the push emulator show what else the cores went to; the machine's other load
// (/proc/stat busy time that is not ours) and the load average say how busy the machine was. Two
// more figures hold on a shared machine: the limit on the cores other work left the stack while
// capacity was reached, and the CPU-bound ceiling, cores / the stack's CPU per upload (every
// process but the load client and the push emulator): what capacity could reach with the machine
// to itself, and, over the limit, the image stages' share of that CPU.
//
// Usage (after `npx tsc -b`; Linux):
//   node bench/pipeline.mjs [--rates 0.5,1,2,4] [--uploads 40] [--players 40] [--warmup 4]
//                           [--photos wallpapers|fixtures] [--json] [--svg FILE] [--log FILE]
//   --uploads  uploads per rate (p99 of 40 is close to the maximum: use more for a steadier tail)
//   --warmup   uploads one after the other before the rates (the first is reported as `cold`:
//              JWKS fetches, connection set-up, JIT, the model's first runs)
//   --photos   fixtures: fixtures/photos (small images) instead of the wallpapers
//   --json     one JSON object on stdout (per rate: offered, completed, throughput, p50, p90, p99,
//              max, stages; capacity, limit, ratio), for the orchestrator (bench/RESULTS.md)
//   --svg      writes the latency chart (bench/lib/svg.mjs) to FILE
//   --log      keeps the stack's JSON log lines in FILE (default: discarded after the run)
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { builtServices, repoRoot, startStack, startWebPushTesting } from '@avatar-pipeline/local';
import { photoName, wallpaperPhotos } from './lib/corpus.mjs';
import { latencyChart } from './lib/svg.mjs';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '0.5,1,2,4' },
    uploads: { type: 'string', default: '40' },
    players: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '4' },
    photos: { type: 'string', default: 'wallpapers' },
    timeout: { type: 'string', default: '120' },
    json: { type: 'boolean', default: false },
    svg: { type: 'string' },
    log: { type: 'string' },
  },
});
// The services get their own; this is for the stack's clients in this process.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const rates = values.rates.split(',').map(Number);
const perRate = Number(values.uploads);
const timeoutMs = Number(values.timeout) * 1000;
const say = (line) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);
const cores = availableParallelism();
/** Issue 13, goal 2. */
const targets = { p50: 500, p99: 1500, capacityRatio: 0.8 };

const services = ['presign', 's3-source', 'moderate', 'thumbnail', 'profile', 'subscribe', 'push'];
const missing = services.filter((s) => !builtServices(repoRoot).includes(s));
if (missing.length > 0) throw new Error(`not built: ${missing.join(', ')}; run npx tsc -b first`);

let files;
if (values.photos === 'fixtures') {
  const dir = join(repoRoot, 'fixtures/photos');
  files = readdirSync(dir).filter((f) => /\.(jpe?g|png|webp)$/.test(f)).map((f) => join(dir, f));
} else {
  files = wallpaperPhotos();
}
const names = Object.fromEntries(files.map((f) => [f, photoName(f)]));

// ---------------------------------------------------------------------------------------------
// CPU from /proc: utime + stime in clock ticks (USER_HZ, 100 on Linux).
const TICK_MS = 10;
function ticksOf(path) {
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}
/** Busy and total jiffies of the whole machine. */
function machineTicks() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const n = f.map(Number);
  const idle = n[3] + n[4];
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

// ---------------------------------------------------------------------------------------------
// Prometheus text: histograms by name and labels (le removed).
function parseHistograms(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)_(bucket|sum|count)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, part, rawLabels, value] = m;
    const labels = {};
    for (const l of rawLabels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const le = labels.le;
    delete labels.le;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    let h = out.get(key);
    if (!h) out.set(key, (h = { name, labels, buckets: [], sum: 0, count: 0 }));
    if (part === 'bucket') h.buckets.push([le === '+Inf' ? Infinity : Number(le), Number(value)]);
    else h[part] = Number(value);
  }
  return out;
}

async function scrapeAll(stack) {
  const targets = { broker: stack.brokerUrl, gateway: stack.gatewayUrl, ...stack.services };
  const all = new Map();
  await Promise.all(
    Object.entries(targets).map(async ([name, url]) => {
      try {
        const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
        for (const [key, h] of parseHistograms(text)) all.set(`${name}:${key}`, h);
      } catch (err) {
        say(`could not scrape ${name}: ${err.message}`);
      }
    }),
  );
  return all;
}

/** after - before for every histogram matching `name` and `labels` (summed over the rest). */
function histogramDelta(before, after, name, labels) {
  let sum = 0;
  let count = 0;
  const buckets = new Map();
  for (const [key, h] of after) {
    if (h.name !== name || !Object.entries(labels).every(([k, v]) => h.labels[k] === v)) continue;
    const b = before.get(key);
    sum += h.sum - (b?.sum ?? 0);
    count += h.count - (b?.count ?? 0);
    for (const [le, c] of h.buckets) buckets.set(le, (buckets.get(le) ?? 0) + c - (b?.buckets.find(([l]) => l === le)?.[1] ?? 0));
  }
  return { sum, count, buckets: [...buckets].sort((a, b) => a[0] - b[0]) };
}

/** histogram_quantile: linear within the bucket; in the +Inf bucket, the largest finite bound. */
function bucketQuantile(h, q) {
  if (h.count === 0) return NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, cum] of h.buckets) {
    if (cum >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(cum - prevCount, 1e-9);
    }
    prevLe = le;
    prevCount = cum;
  }
  return prevLe;
}

// ---------------------------------------------------------------------------------------------
const quantile = (sorted, q) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]);
function summary(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || NaN);
  return { n: s.length, mean, p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s.at(-1) ?? NaN };
}

/**
 * The stages of one upload, in order. `exact`: from the client's and the records' timestamps (every
 * upload); `metric`: a histogram of the component named in `from` (s in the metrics, ms here).
 */
const stageRows = [
  { stage: 'presign request', what: 'client: request → ticket', exact: (r) => r.presigned - r.start },
  { stage: 'presign request', what: 'gateway POST /v1/uploads', from: 'gateway', metric: 'avatarpipeline_http_request_duration_seconds', labels: { method: 'POST', route: '/v1/uploads' } },
  { stage: 'presign request', what: 'presign handler', from: 'presign', metric: 'avatarpipeline_http_request_duration_seconds', labels: { method: 'POST', route: '/v1/uploads' } },
  { stage: 'POST upload', what: 'client: form POST → 204', exact: (r) => r.posted - r.presigned },
  { stage: 'POST upload', what: 'gateway POST /s3 (guard + s3rver)', from: 'gateway', metric: 'avatarpipeline_http_request_duration_seconds', labels: { method: 'POST' }, routeLike: /^\/s3/ },
  { stage: 'pipeline', what: 'POST answered → ready (records)', exact: (r) => r.ended - r.posted },
  { stage: 'pipeline', what: 'S3 event → ready (profile)', from: 'profile', metric: 'avatarpipeline_pipeline_end_to_end_seconds', labels: {} },
  { stage: 's3 event → moderate', what: 's3-source webhook (→ broker ingress)', from: 's3-source', metric: 'avatarpipeline_http_request_duration_seconds', labels: { method: 'POST', route: '/webhook' } },
  { stage: 's3 event → moderate', what: 'broker: arrival → dispatch', from: 'broker', metric: 'avatarpipeline_broker_event_processing_seconds', labels: { trigger: 'moderate-uploads' } },
  { stage: 's3 event → moderate', what: 'broker: attempt to moderate', from: 'broker', metric: 'avatarpipeline_broker_delivery_duration_seconds', labels: { trigger: 'moderate-uploads' } },
  { stage: 'moderate handling', what: 'moderate: event handler', from: 'moderate', metric: 'avatarpipeline_cloudevent_handling_duration_seconds', labels: {} },
  { stage: 'moderate handling', what: 'moderate: decode + model (incl. queue)', from: 'moderate', metric: 'avatarpipeline_moderation_duration_seconds', labels: {} },
  { stage: 'approved → thumbnail', what: 'broker: arrival → dispatch', from: 'broker', metric: 'avatarpipeline_broker_event_processing_seconds', labels: { trigger: 'thumbnail-approved' } },
  { stage: 'approved → thumbnail', what: 'broker: attempt to thumbnail', from: 'broker', metric: 'avatarpipeline_broker_delivery_duration_seconds', labels: { trigger: 'thumbnail-approved' } },
  { stage: 'approved → thumbnail', what: 'thumbnail: event handler', from: 'thumbnail', metric: 'avatarpipeline_cloudevent_handling_duration_seconds', labels: {} },
  { stage: 'approved → thumbnail', what: 'thumbnail: render (no queue)', from: 'thumbnail', metric: 'avatarpipeline_thumbnail_duration_seconds', labels: {} },
  { stage: 'thumbnailed → profile', what: 'broker: arrival → dispatch', from: 'broker', metric: 'avatarpipeline_broker_event_processing_seconds', labels: { trigger: 'profile-thumbnailed' } },
  { stage: 'thumbnailed → profile', what: 'broker: attempt to profile', from: 'broker', metric: 'avatarpipeline_broker_delivery_duration_seconds', labels: { trigger: 'profile-thumbnailed' } },
  { stage: 'thumbnailed → profile', what: 'profile: event handler', from: 'profile', metric: 'avatarpipeline_cloudevent_handling_duration_seconds', labels: { type: 'avatarpipeline.avatar.thumbnailed' } },
  { stage: 'ready → push', what: 'broker: arrival → dispatch', from: 'broker', metric: 'avatarpipeline_broker_event_processing_seconds', labels: { trigger: 'push-ready' } },
  { stage: 'ready → push', what: 'broker: attempt to push', from: 'broker', metric: 'avatarpipeline_broker_delivery_duration_seconds', labels: { trigger: 'push-ready' } },
  { stage: 'ready → push', what: 'push: web push request', from: 'push', metric: 'avatarpipeline_push_send_duration_seconds', labels: {} },
  { stage: 'ready → push', what: 'ready → notification arrives', exact: (r) => r.notified - r.ended },
];

function stageBreakdown(records, before, after) {
  return stageRows.map((row) => {
    const base = { stage: row.stage, what: row.what, source: row.exact ? 'records' : `${row.from} ${row.metric}` };
    if (row.exact) {
      const s = summary(records.map(row.exact));
      return { ...base, n: s.n, mean: s.mean, p50: s.p50, p99: s.p99 };
    }
    const scoped = new Map([...after].filter(([k]) => k.startsWith(`${row.from}:`)));
    let h;
    if (row.routeLike) {
      // Gateway prefix routes carry their pattern as the label: take every matching one.
      const routes = new Set([...scoped.values()].filter((x) => x.name === row.metric && row.routeLike.test(x.labels.route ?? '')).map((x) => x.labels.route));
      const parts = [...routes].map((route) => histogramDelta(before, scoped, row.metric, { ...row.labels, route }));
      h = { sum: 0, count: 0, buckets: [] };
      const merged = new Map();
      for (const p of parts) {
        h.sum += p.sum;
        h.count += p.count;
        for (const [le, c] of p.buckets) merged.set(le, (merged.get(le) ?? 0) + c);
      }
      h.buckets = [...merged].sort((a, b) => a[0] - b[0]);
    } else {
      h = histogramDelta(before, scoped, row.metric, row.labels);
    }
    return { ...base, n: h.count, mean: (h.sum / h.count) * 1000, p50: bucketQuantile(h, 0.5) * 1000, p99: bucketQuantile(h, 0.99) * 1000 };
  });
}

// ---------------------------------------------------------------------------------------------
const pushService = await startWebPushTesting();
const worker = new Worker(new URL('./lib/load-client.mjs', import.meta.url), { workerData: { emulatorUrl: pushService.url, photos: files, names } });
const hello = await new Promise((resolve, reject) => {
  worker.once('message', resolve);
  worker.once('error', reject);
});
let nextId = 0;
const pending = new Map();
worker.on('message', (m) => {
  if (m.id === undefined) return;
  const p = pending.get(m.id);
  pending.delete(m.id);
  if (m.error) p.reject(new Error(m.error));
  else p.resolve(m.result);
});
worker.on('error', (err) => {
  for (const p of pending.values()) p.reject(err);
});
const call = (command, args) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, command, args });
  });

const dataDir = mkdtempSync(join(tmpdir(), 'ap-bench-pipeline-'));
const logStream = values.log ? createWriteStream(values.log) : undefined;
let logLines = 0;
const stack = await startStack({
  dataDir,
  logLevel: 'info',
  sink: (line) => {
    logLines += 1;
    logStream?.write(`${line}\n`);
  },
  env: {
    ...process.env,
    LOG_LEVEL: 'info',
    // Local testing only: the emulator (behind the recording proxy) is http://localhost:<port>.
    PUSH_ALLOW_HTTP: 'true',
    PUSH_ALLOWED_HOSTS: hello.proxyHost,
    // Many uploads from each player: the per-player limits are not what is measured.
    RATE_LIMIT_UPLOADS: '1000000',
    RATE_LIMIT_SUBSCRIPTIONS: '1000000',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  },
});

let exitCode = 0;
try {
  const players = [];
  for (let i = 0; i < Number(values.players); i++) players.push({ id: `bench-${i}`, token: await stack.mint(`bench-${i}`) });
  await call('setup', { gatewayUrl: stack.gatewayUrl, players });
  say(`stack up; ${players.length} players with one push device each; ${files.length} photos (${values.photos}); ${cores} cores`);

  const pids = () => ({
    ...Object.fromEntries(services.map((s) => [s, stack.pid(s)])),
    'push emulator': pushService.pid,
  });
  function cpuSnapshot() {
    const own = ticksOf('/proc/self/stat');
    const client = ticksOf(`/proc/self/task/${hello.tid}/stat`);
    // The main thread runs the stand-ins' and the broker's JavaScript; the rest of this process's
    // threads (the libuv pool: s3rver's file I/O and hashing, LevelDB; V8's GC) are its helpers.
    const main = ticksOf(`/proc/self/task/${process.pid}/stat`);
    const processes = Object.fromEntries(Object.entries(pids()).map(([name, pid]) => [name, pid ? ticksOf(`/proc/${pid}/stat`) : NaN]));
    return { at: performance.now(), 'stack main': main, 'stack threads': own - client - main, client, ...processes, machine: machineTicks(), pids: pids() };
  }
  const cpuDelta = (a, b) => {
    const out = {};
    for (const k of Object.keys(b)) if (k !== 'machine' && k !== 'at' && k !== 'pids') out[k] = (b[k] - a[k]) * TICK_MS;
    const wall = b.at - a.at;
    const busy = ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * cores * wall;
    const ours = Object.values(out).reduce((x, y) => x + (Number.isFinite(y) ? y : 0), 0);
    const restarted = Object.keys(b.pids).filter((k) => a.pids[k] !== b.pids[k]);
    return { ms: out, wall, machineBusy: busy, others: Math.max(0, busy - ours), restarted };
  };

  // Warm-up, one after the other: the first upload pays for every cold path.
  let index = 0;
  let cold;
  let coldStages;
  if (Number(values.warmup) > 0) {
    // The very first upload on its own, with its stages: where a cold start costs (JWKS fetches,
    // connections, JIT, the model's and libvips' first runs).
    const before = await scrapeAll(stack);
    const first = await call('run', { rate: 0, count: 1, first: index, timeoutMs });
    await stack.idle();
    coldStages = stageBreakdown(first.records, before, await scrapeAll(stack));
    const rest = Number(values.warmup) > 1 ? await call('run', { rate: 0, count: Number(values.warmup) - 1, first: index + 1, timeoutMs }) : { records: [] };
    const records = [...first.records, ...rest.records];
    index += records.length;
    cold = records.map((r) => ({ photo: r.photo, toReady: r.ended - r.start, toNotified: r.notified - r.start, problem: r.problem }));
    say(`warm-up: ${cold.map((c) => `${c.photo} ${Math.round(c.toReady)} ms`).join(', ')}`);
  }

  const results = [];
  const cpuTotal = {};
  let uploadsTotal = 0;
  for (const rate of rates) {
    await stack.idle();
    const load1 = loadavg()[0];
    const before = await scrapeAll(stack);
    const cpu0 = cpuSnapshot();
    const { records, duplicates } = await call('run', { rate, count: perRate, first: index, timeoutMs });
    index += records.length;
    await stack.idle();
    const cpu1 = cpuSnapshot();
    const after = await scrapeAll(stack);
    const cpu = cpuDelta(cpu0, cpu1);

    const done = records.filter((r) => r.finalStatus === 'ready' && Number.isFinite(r.ended));
    const toReady = summary(done.map((r) => r.ended - r.start));
    const toNotified = summary(done.map((r) => r.notified - r.start));
    const firstStart = Math.min(...records.map((r) => r.start));
    const lastEnd = Math.max(...done.map((r) => r.ended));
    const throughput = done.length / ((lastEnd - firstStart) / 1000);
    // The same away from the ramp-up and the drain: completions between the 20th and 80th
    // percentile of their times (at an offered rate above capacity, the service rate itself).
    const ends = done.map((r) => r.ended).sort((a, b) => a - b);
    const [i20, i80] = [Math.floor(ends.length * 0.2), Math.ceil(ends.length * 0.8) - 1];
    const sustained = i80 > i20 ? (i80 - i20) / ((ends[i80] - ends[i20]) / 1000) : NaN;
    const perUpload = Object.fromEntries(Object.entries(cpu.ms).map(([k, v]) => [k, v / Math.max(done.length, 1)]));
    for (const [k, v] of Object.entries(cpu.ms)) cpuTotal[k] = (cpuTotal[k] ?? 0) + v;
    uploadsTotal += done.length;
    const problems = [...new Set(records.filter((r) => r.problem).map((r) => r.problem))];
    const notReady = records.filter((r) => r.finalStatus !== 'ready').map((r) => `${r.photo}: ${r.finalStatus ?? r.status ?? r.problem}`);
    const row = {
      offered: rate,
      uploads: records.length,
      completed: done.length,
      throughput,
      sustained,
      p50: toReady.p50,
      p90: toReady.p90,
      p99: toReady.p99,
      max: toReady.max,
      mean: toReady.mean,
      notified: toNotified,
      retries: records.reduce((n, r) => n + r.retries, 0),
      duplicates,
      problems,
      notReady,
      stages: stageBreakdown(done, before, after),
      cpuPerUpload: perUpload,
      cpu: { wallMs: cpu.wall, machineBusyMs: cpu.machineBusy, othersMs: cpu.others, restarted: cpu.restarted, utilisation: (cpu.machineBusy / (cpu.wall * cores)) },
      loadavg1: load1,
      loadavg1After: loadavg()[0],
    };
    results.push(row);
    say(
      `${rate}/s: ${done.length}/${records.length} ready, p50 ${Math.round(row.p50)} ms, p90 ${Math.round(row.p90)} ms, p99 ${Math.round(row.p99)} ms, max ${Math.round(row.max)} ms, ${throughput.toFixed(2)}/s; ` +
        `machine ${(row.cpu.utilisation * 100).toFixed(0)}% busy (others ${((cpu.others / cpu.wall / cores) * 100).toFixed(0)}%), load ${load1.toFixed(2)}`,
    );
    if (problems.length > 0) say(`  problems: ${problems.join('; ')}`);
  }

  const imageMs = ((cpuTotal.moderate ?? 0) + (cpuTotal.thumbnail ?? 0)) / Math.max(uploadsTotal, 1);
  const limit = cores / (imageMs / 1000);
  const capacity = Math.max(...results.map((r) => r.throughput));
  // Other work on the machine takes cores from the stack: the limit on what was left to it while
  // capacity was reached (the machine is shared; on a quiet one the two limits agree).
  const atCapacity = results.find((r) => r.throughput === capacity);
  const coresLeft = atCapacity ? cores - atCapacity.cpu.othersMs / atCapacity.cpu.wallMs : cores;
  const limitLeft = coresLeft / (imageMs / 1000);
  const cpuPerUpload = Object.fromEntries(Object.entries(cpuTotal).map(([k, v]) => [k, v / Math.max(uploadsTotal, 1)]));
  // The stack's own CPU per upload: every process but the test harness's (the players' client and
  // the push service emulator). If nothing else ran on the machine, capacity could at most reach
  // cores / that, and that over the limit is the image stages' share of the stack's CPU.
  const stackMs = Object.entries(cpuPerUpload).reduce((sum, [k, v]) => (k === 'client' || k === 'push emulator' ? sum : sum + v), 0);
  const ceiling = cores / (stackMs / 1000);
  // The same without this process (the stand-ins for S3 and DynamoDB, the broker and the gateway,
  // which in the cluster run elsewhere than the services' cores): the services' own share.
  const servicesMs = services.reduce((sum, name) => sum + (cpuPerUpload[name] ?? 0), 0);
  const summaryOut = {
    photos: values.photos === 'fixtures' ? 'fixtures/photos' : 'plasma-workspace-wallpapers (18 JPEG, 2560x1600-5120x2880)',
    cores,
    players: players.length,
    uploadsPerRate: perRate,
    cold,
    coldStages,
    rates: results,
    cpuPerUpload,
    imageCpuMsPerUpload: imageMs,
    limit,
    capacity,
    ratio: capacity / limit,
    coresLeft,
    limitLeft,
    ratioLeft: capacity / limitLeft,
    stackCpuMsPerUpload: stackMs,
    ceiling,
    ceilingRatio: ceiling / limit,
    servicesCpuMsPerUpload: servicesMs,
    servicesImageShare: imageMs / servicesMs,
    targets,
    logLines,
    loadavg: results.map((r) => r.loadavg1),
  };
  summaryOut.description = describe(summaryOut);
  summaryOut.stagesTable = detailTables(summaryOut);

  if (values.svg) {
    writeFileSync(values.svg, latencyChart(results, { targets: [{ label: 'p50 target', ms: targets.p50 }, { label: 'p99 target', ms: targets.p99 }] }));
    say(`chart written to ${values.svg}`);
  }
  if (values.json) {
    console.log(JSON.stringify(summaryOut));
  } else {
    printMarkdown(summaryOut);
  }
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stack.stop();
  await worker.terminate();
  await pushService.close();
  logStream?.end();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);

function fmtMs(v) {
  return Number.isFinite(v) ? `${Math.round(v)}` : '–';
}
function fmt2(v) {
  return Number.isFinite(v) ? v.toFixed(2) : '–';
}

/** What was measured, how, and on what (the first paragraph of the pipeline section of RESULTS.md). */
function describe(s) {
  return (
    `${s.uploadsPerRate} uploads per offered rate of ${s.photos} from ${s.players} players (open loop), the whole local stack in one process ` +
    `with every service a child process, on ${s.cores} cores. Latency: presign request start → the upload's record turns ready (detected by its push ` +
    `notification; the ready time is the record's). Capacity: uploads completed / first presign to last ready, the highest over the rates. ` +
    `Image-CPU limit: cores / (moderate + thumbnail process CPU per upload, from /proc, same run). Load average ${s.loadavg.map((l) => l.toFixed(1)).join(' / ')} ` +
    `(1 min, at the start of each rate); other processes took ${s.rates.map((r) => `${Math.round((r.cpu.othersMs / r.cpu.wallMs / s.cores) * 100)}%`).join(' / ')} of the machine.`
  );
}

/** CPU per upload of each process, then the stages at 1/s and at the rate that reached capacity. */
function detailTables(s) {
  const out = [];
  out.push('CPU ms per upload (utime + stime from /proc, over every rate):', '');
  out.push(`| ${Object.keys(s.cpuPerUpload).join(' | ')} |`);
  out.push(`|${Object.keys(s.cpuPerUpload).map(() => ' ---: ').join('|')}|`);
  out.push(`| ${Object.values(s.cpuPerUpload).map(fmtMs).join(' | ')} |`);
  out.push('', "stack main: this process's main thread (s3rver, dynalite, the broker, the gateway and its upload guard, the log sink); stack threads: its other threads but the load client's (the libuv pool: file I/O, hashing, LevelDB; V8's GC and compiler).");
  out.push(
    '',
    `CPU-bound ceiling: the stack's CPU per upload (every process but the client and the push emulator) is ${fmtMs(s.stackCpuMsPerUpload)} ms, so ${s.cores} free cores ` +
      `complete at most ${fmt2(s.ceiling)} uploads/s, ${fmt2(s.ceilingRatio)} of the image-CPU limit; capacity reached ${fmt2(s.capacity / s.ceiling)} of that ceiling ` +
      `(others left the stack ${fmt2(s.coresLeft)} cores). Without this process (the stand-ins, broker and gateway) the services take ${fmtMs(s.servicesCpuMsPerUpload)} ms per upload, ` +
      `${fmt2(s.servicesImageShare)} of it in the image stages.`,
  );
  const shown = [...new Set([s.rates.find((r) => r.offered === 1), s.rates.find((r) => r.throughput === s.capacity)])].filter(Boolean);
  for (const r of shown) {
    out.push('', `Stages at ${r.offered} uploads/s (ms; records: every upload, exact; metrics: mean exact, p50/p99 interpolated in the histogram's buckets):`, '');
    out.push('| stage | what | source | n | mean | p50 | p99 |', '| --- | --- | --- | ---: | ---: | ---: | ---: |');
    for (const st of r.stages) out.push(`| ${st.stage} | ${st.what} | ${st.source} | ${st.n} | ${fmtMs(st.mean)} | ${fmtMs(st.p50)} | ${fmtMs(st.p99)} |`);
  }
  if (s.coldStages) {
    out.push('', `The first upload after start (${s.cold[0].photo}, ${fmtMs(s.cold[0].toReady)} ms), stage by stage (ms; one upload, so the mean is its time):`, '');
    out.push('| stage | what | ms |', '| --- | --- | ---: |');
    for (const st of s.coldStages) out.push(`| ${st.stage} | ${st.what} | ${fmtMs(st.mean)} |`);
  }
  return out.join('\n');
}

function printMarkdown(s) {
  console.log(`\n### Presign start → ready (${s.photos}; ${s.players} players, ${s.uploadsPerRate} uploads per rate, ${s.cores} cores)\n`);
  console.log('| offered /s | ready | p50 ms | p90 ms | p99 ms | max ms | completed /s | mid-run /s | to notification p50 / p99 ms | machine busy | of it others | load avg |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of s.rates) {
    console.log(
      `| ${r.offered} | ${r.completed}/${r.uploads} | ${fmtMs(r.p50)} | ${fmtMs(r.p90)} | ${fmtMs(r.p99)} | ${fmtMs(r.max)} | ${fmt2(r.throughput)} | ${fmt2(r.sustained)} | ${fmtMs(r.notified.p50)} / ${fmtMs(r.notified.p99)} | ` +
        `${(r.cpu.utilisation * 100).toFixed(0)}% | ${((r.cpu.othersMs / r.cpu.wallMs / s.cores) * 100).toFixed(0)}% | ${r.loadavg1.toFixed(1)}–${r.loadavg1After.toFixed(1)} |`,
    );
  }
  if (s.cold) console.log(`\nCold (warm-up, one at a time): ${s.cold.map((c) => `${c.photo} ${fmtMs(c.toReady)} ms`).join(', ')}`);
  const top = s.rates.find((r) => r.throughput === s.capacity);
  console.log(`\nCapacity ${fmt2(s.capacity)} uploads/s (offered ${top?.offered}/s; ${fmt2(top?.sustained)}/s between the 20th and 80th percentile of completions); image CPU (moderate + thumbnail) ${fmtMs(s.imageCpuMsPerUpload)} ms per upload → limit ${fmt2(s.limit)} uploads/s on ${s.cores} cores; capacity / limit ${fmt2(s.ratio)} (target ≥ ${s.targets.capacityRatio})`);
  console.log(`Other work on the machine left the stack ${fmt2(s.coresLeft)} cores at that rate: limit ${fmt2(s.limitLeft)} uploads/s, capacity / that ${fmt2(s.ratioLeft)}`);
  console.log(`The stack's CPU per upload (every process but the client and the push emulator) ${fmtMs(s.stackCpuMsPerUpload)} ms: CPU-bound ceiling ${fmt2(s.ceiling)} uploads/s on ${s.cores} free cores, ${fmt2(s.ceilingRatio)} of the limit`);
  console.log(`The services alone (without the stack process: stand-ins, broker, gateway) ${fmtMs(s.servicesCpuMsPerUpload)} ms per upload, of which the image stages ${fmt2(s.servicesImageShare)}\n`);
  console.log(detailTables(s));
}
