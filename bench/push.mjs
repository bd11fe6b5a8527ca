// Web Push throughput against web-push-testing (a push service emulator that verifies the VAPID
// signature and decrypts every message), in one run:
//   sender    push's PushSender: its own aes128gcm encryption (node:crypto), a cached VAPID header,
//             undici keep-alive pool
//   web-push  a plain webpush.sendNotification loop (a new VAPID JWT signed per message)
// Both send the same ready notification round-robin to the same subscriptions, `--concurrency`
// requests at a time, after a warm-up of each, alternating for `--rounds` rounds; the summary is
// the median round.
//
// Usage (after `npx tsc -b`):
//   node bench/push.mjs [--subscriptions 200] [--messages 2000] [--concurrency 16] [--rounds 3] [--warmup 1000] [--json]
//
// msg/s per core = messages / CPU seconds of this process (process.cpuUsage: user + system), which
// does not depend on what else uses the cores. The emulator runs in a child process; its CPU time
// (from /proc) is printed beside it, as is the wall-clock rate, which the emulator bounds here.
// Requests go to localhost only. web-push speaks https only, so its loop gets an https.Agent whose
// sockets are plain TCP (the emulator serves http), keep-alive like Node's global agent.
//
// Prints a Markdown table (a row per round and sender, then the medians); with --json, only one
// JSON object instead: { ..., senders: { sender: {...}, "web-push": {...} }, ratio }, where each
// sender has msgPerCoreSecond and cpuMsPerMessage of the median round, and its rounds.
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { connect } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import webpush from 'web-push';
import { startWebPushTesting } from '@avatar-pipeline/local';
import { PushSender, VapidSigner, createPushAgent, encodeNotification, notificationFor } from '@avatar-pipeline/push';

const { values } = parseArgs({
  options: {
    subscriptions: { type: 'string', default: '200' },
    messages: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
  },
});
const subscriptionCount = Number(values.subscriptions);
const messages = Number(values.messages);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);
const json = values.json;

const subject = 'mailto:bench@example.com';
const keys = webpush.generateVAPIDKeys();
const uploadId = '019a0000-0000-7000-8000-000000000001';
const media = `https://media.example.com/avatars/bench-player/${uploadId}`;
const payload = encodeNotification(
  notificationFor({
    type: 'avatarpipeline.avatar.ready',
    data: {
      playerId: 'bench-player',
      uploadId,
      uploadedAt: new Date().toISOString(),
      avatar: { thumbnails: { 64: `${media}/64.webp`, 128: `${media}/128.webp`, 256: `${media}/256.webp` }, full: `${media}/full.webp` },
    },
  }),
);

/** CPU seconds (user + system) of a process, from /proc; undefined where /proc is not Linux's. */
function procCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

function childPids() {
  try {
    return readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const emulator = await startWebPushTesting();
const emulatorPid = childPids().at(-1);
const subscriptions = [];
for (let i = 0; i < subscriptionCount; i++) subscriptions.push((await emulator.subscribe(keys.publicKey)).subscription);

// (a) push's sender.
const attemptTimeoutMs = 10_000;
const dispatcher = createPushAgent({ allowHttp: true, connections: concurrency, attemptTimeoutMs });
const sender = new PushSender({
  dispatcher,
  vapid: new VapidSigner({ keys, subject }),
  hostConcurrency: concurrency,
  maxAttempts: 1,
  attemptTimeoutMs,
});
async function viaSender(subscription) {
  const result = await sender.send(subscription, { payload, ttlSeconds: 86_400, urgency: 'high', topic: 'bench', deadline: Date.now() + 60_000 });
  if (result.outcome !== 'sent') throw new Error(`sender: ${JSON.stringify(result)}`);
}

// (b) web-push as documented, with TLS taken out of its sockets for the http-only emulator.
class PlainTcpAgent extends HttpsAgent {
  createConnection(options, callback) {
    const socket = connect({ host: options.host, port: options.port });
    socket.once('connect', () => callback?.(null, socket));
    return socket;
  }
}
const plainAgent = new PlainTcpAgent({ keepAlive: true, maxSockets: concurrency });
async function viaWebPush(subscription) {
  const result = await webpush.sendNotification(subscription, payload, {
    TTL: 86_400,
    urgency: 'high',
    topic: 'bench',
    contentEncoding: 'aes128gcm',
    vapidDetails: { subject, publicKey: keys.publicKey, privateKey: keys.privateKey },
    agent: plainAgent,
  });
  if (result.statusCode !== 201) throw new Error(`web-push: ${result.statusCode}`);
}

async function run(send, count) {
  const limit = pLimit(concurrency);
  const emulatorBefore = procCpuSeconds(emulatorPid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, (_, i) => limit(() => send(subscriptions[i % subscriptions.length]))));
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const emulatorAfter = procCpuSeconds(emulatorPid);
  return {
    perCore: count / cpuSeconds,
    cpuMsPerMessage: (cpuSeconds * 1000) / count,
    userMsPerMessage: cpu.user / 1000 / count,
    systemMsPerMessage: cpu.system / 1000 / count,
    wallRate: count / wall,
    emulatorCpu: emulatorBefore === undefined || emulatorAfter === undefined ? undefined : emulatorAfter - emulatorBefore,
  };
}

const variants = [
  ['sender', viaSender],
  ['web-push', viaWebPush],
];
const fixed = (value, digits) => (value === undefined ? '' : value.toFixed(digits));
/** The median round by msg/s per core (the upper middle one for an even count). */
const medianRound = (list) => [...list].sort((a, b) => a.perCore - b.perCore)[Math.floor(list.length / 2)];

try {
  for (const [, send] of variants) await run(send, warmup);
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model.trim(), node: process.version };
  if (!json) {
    console.log(
      `Web Push: ${messages} messages x ${rounds} rounds to ${subscriptionCount} subscriptions, concurrency ${concurrency}, ` +
        `payload ${Buffer.byteLength(payload)} B; ${machine.cores} x ${machine.cpu}, Node ${machine.node}\n`,
    );
    console.log('| round | sender | msg/s per core | CPU ms/msg | user | system | wall msg/s | emulator CPU s |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  }
  const results = new Map(variants.map(([name]) => [name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const [name, send] of variants) {
      const r = await run(send, messages);
      results.get(name).push(r);
      if (!json) {
        console.log(
          `| ${round} | ${name} | ${r.perCore.toFixed(0)} | ${r.cpuMsPerMessage.toFixed(3)} | ${r.userMsPerMessage.toFixed(3)} | ` +
            `${r.systemMsPerMessage.toFixed(3)} | ${r.wallRate.toFixed(0)} | ${fixed(r.emulatorCpu, 2)} |`,
        );
      }
    }
  }
  const medians = Object.fromEntries(variants.map(([name]) => [name, medianRound(results.get(name))]));
  const ratio = medians.sender.perCore / medians['web-push'].perCore;
  if (json) {
    const round3 = (value) => (value === undefined ? null : Math.round(value * 1000) / 1000);
    const summary = (name) => ({
      msgPerCoreSecond: Math.round(medians[name].perCore),
      cpuMsPerMessage: round3(medians[name].cpuMsPerMessage),
      rounds: results.get(name).map((r) => ({
        msgPerCoreSecond: Math.round(r.perCore),
        cpuMsPerMessage: round3(r.cpuMsPerMessage),
        userMsPerMessage: round3(r.userMsPerMessage),
        systemMsPerMessage: round3(r.systemMsPerMessage),
        wallMsgPerSecond: Math.round(r.wallRate),
        emulatorCpuSeconds: round3(r.emulatorCpu),
      })),
    });
    const report = {
      bench: 'push',
      messages,
      rounds,
      warmup,
      subscriptions: subscriptionCount,
      concurrency,
      payloadBytes: Buffer.byteLength(payload),
      ...machine,
      senders: Object.fromEntries(variants.map(([name]) => [name, summary(name)])),
      ratio: Math.round(ratio * 100) / 100,
    };
    console.log(JSON.stringify(report, null, 2));
  } else {
    for (const [name] of variants) {
      const m = medians[name];
      console.log(`| **median** | ${name} | **${m.perCore.toFixed(0)}** | **${m.cpuMsPerMessage.toFixed(3)}** | | | | |`);
    }
    console.log(`\nsender / web-push in msg/s per core (median rounds): x${ratio.toFixed(2)}`);
  }
} finally {
  await dispatcher.close();
  plainAgent.destroy();
  await emulator.close();
}
