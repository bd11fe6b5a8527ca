// bench/RESULTS.md from the benchmarks' JSON: the goals of issue 13 with their figures and anchors,
// then each benchmark's own figures. A benchmark that was not run leaves its rows out.

const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const x = (v) => `${v.toFixed(2)}x`;
const met = (ok) => (ok ? 'yes' : '**no**');
const perSecond = (v) => v.toFixed(v >= 100 ? 0 : 1);

/** Footprint's services as [name, figures] pairs, whether it gave an object or a list. */
const footprintServices = (services) =>
  Array.isArray(services) ? services.map((s) => [s.name ?? s.service, s]) : Object.entries(services ?? {});

export function goalsTable(r) {
  const rows = [];
  const row = (goal, figure, anchor, ratio, target, ok) => rows.push(`| ${goal} | ${figure} | ${anchor} | ${ratio} | ${target} | ${met(ok)} |`);
  if (r.images) {
    const s = r.images.summary;
    row('1 moderate CPU per photo, in process', `${ms(s.moderate)} ms`, `floor ${ms(s.floor)} ms (one strict decode + a model run per view)`, x(s.moderateOverFloor), '≤ 1.3x', s.moderateOverFloor <= 1.3);
    row('1 thumbnail CPU per photo', `${ms(s.thumbnail)} ms`, `naive sharp loop ${ms(s.naive)} ms`, x(s.naiveOverThumbnail), '≥ 2.4x', s.naiveOverThumbnail >= 2.4);
  }
  if (r.stages) {
    const s = r.stages;
    row('1 moderate process CPU per upload, through S3/DynamoDB', `${ms(s.moderate)} ms`, `floor ${ms(s.floor)} ms`, x(s.moderateOverFloor), '≤ 1.3x', s.moderateOverFloor <= 1.3);
  }
  if (r.pipeline) {
    const p = r.pipeline;
    row('2 local-stack capacity', `${perSecond(p.capacity)} uploads/s`, `image-CPU limit ${perSecond(p.limit)} uploads/s`, x(p.capacity / p.limit), '≥ 0.8x', p.capacity / p.limit >= 0.8);
    const one = p.rates.find((rate) => rate.offered === 1);
    if (one) {
      row('2 presign start → ready at 1 upload/s, p50', `${ms(one.p50)} ms`, '', '', '≤ 500 ms', one.p50 <= 500);
      row('2 presign start → ready at 1 upload/s, p99', `${ms(one.p99)} ms`, '', '', '≤ 1500 ms', one.p99 <= 1500);
    }
  }
  if (r.presign) {
    const t = Object.fromEntries(r.presign.targets.map((target) => [target.target, target]));
    if (t.direct && t.bare) {
      row('3 presign CPU per request (its process)', `${ms(t.direct.cpuMsPerRequest)} ms`, `bare Hono route ${ms(t.bare.cpuMsPerRequest)} ms`, x(t.direct.cpuMsPerRequest / t.bare.cpuMsPerRequest), '≤ 1 ms', t.direct.cpuMsPerRequest <= 1);
      if (t.writes) {
        rows.push(
          `| 3 presign CPU per request above its two DynamoDB writes | ${ms(t.direct.cpuMsPerRequest - t.writes.cpuMsPerRequest)} ms | the writes alone through the AWS SDK ${ms(t.writes.cpuMsPerRequest)} ms | | (reported) | |`,
        );
      }
      const gateway = t.gateway ? `, through the gateway ${perSecond(t.gateway.requestsPerSecond)}` : '';
      rows.push(`| 3 presign requests/s | direct ${perSecond(t.direct.requestsPerSecond)}${gateway} | bare Hono route ${perSecond(t.bare.requestsPerSecond)} | | (reported) | |`);
    }
  }
  if (r.push) {
    const s = r.push.senders;
    row('4 push CPU per message', `${ms(s.sender.cpuMsPerMessage)} ms (${s.sender.msgPerCoreSecond} msg/s per core)`, `plain web-push loop ${ms(s['web-push'].cpuMsPerMessage)} ms (${s['web-push'].msgPerCoreSecond})`, x(r.push.ratio), '≥ 2.5x', r.push.ratio >= 2.5);
  }
  if (r.footprint) {
    for (const [label, part] of [['node', r.footprint.node], ['image', r.footprint.images]]) {
      if (!part?.services) continue;
      for (const [name, f] of footprintServices(part.services)) {
        row(`5 ${name} (${label}) idle RSS`, `${f.rssMB.toFixed(0)} MB`, '', '', `≤ ${f.target.rssMB} MB`, f.rssMB <= f.target.rssMB);
        row(`5 ${name} (${label}) start → /readyz`, `${f.readyMs.toFixed(0)} ms`, '', '', `≤ ${f.target.readyMs} ms`, f.readyMs <= f.target.readyMs);
      }
    }
  }
  if (r.bans) {
    for (const d of r.bans.distances) {
      rows.push(
        `| 15 ban lookup among ${r.bans.bans} bans, distance ≤ ${d.maxDistance}, p50 / p99 | ${ms(d.miss.p50)} / ${ms(d.miss.p99)} ms (${d.miss.keys} items) | ` +
          `reading every ban from the table ${ms(r.bans.tableScan.ms)} ms; in-memory scan ${ms(d.scan.p50)} ms | ${x(r.bans.tableScan.ms / d.miss.p50)} | (reported) | |`,
      );
    }
  }
  return ['| goal | figure | anchor (same run) | ratio | target | met |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

export function sections(r) {
  const out = [];
  const section = (title, command, lines) => out.push(`## ${title}`, '', `\`${command}\`, ${secondsOf(r, title)}`, '', ...lines, '');
  if (r.images) {
    section('images', 'node bench/images.mjs', [
      'CPU ms per photo (wall ms in brackets), the wallpaper photographs:',
      '',
      '| image | size | KiB | views | moderate | decode | classify | floor | moderate / floor | thumbnail | naive loop | naive / thumbnail |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...r.images.rows.map(
        (row) =>
          `| ${row.name} | ${row.size} | ${row.kb} | ${row.views} | ${cpuWall(row.mod)} | ${cpuWall(row.decode)} | ${cpuWall(row.classify)} | ${cpuWall(row.floor)} | ` +
          `${(row.mod.cpu / row.floor.cpu).toFixed(2)} | ${cpuWall(row.thumb)} | ${cpuWall(row.naive)} | ${(row.naive.cpu / row.thumb.cpu).toFixed(2)} |`,
      ),
    ]);
  }
  if (r.stages) {
    const s = r.stages;
    section('stages', 'node bench/stages.mjs', [
      `${s.uploads} uploads of the ${s.photos} photographs through the built moderate and thumbnail services against s3rver and dynalite; CPU ms per upload of each process:`,
      '',
      '| moderate | thumbnail | floor (decode + views × classify) | moderate / floor |',
      '| --- | --- | --- | --- |',
      `| ${ms(s.moderate)} | ${ms(s.thumbnail)} | ${ms(s.floor)} (${ms(s.decode)} + ${s.views.toFixed(1)} × ${ms(s.classify)}) | ${x(s.moderateOverFloor)} |`,
    ]);
  }
  if (r.pipeline) {
    const p = r.pipeline;
    section('pipeline', 'node bench/pipeline.mjs', [
      p.description ?? '',
      '',
      '| offered (uploads/s) | uploads | completed/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...p.rates.map((rate) => `| ${rate.offered} | ${rate.uploads ?? rate.completed} | ${perSecond(rate.throughput)} | ${ms(rate.p50)} | ${ms(rate.p90)} | ${ms(rate.p99)} | ${ms(rate.max)} |`),
      '',
      `Capacity ${perSecond(p.capacity)} uploads/s against an image-CPU limit of ${perSecond(p.limit)} (${x(p.capacity / p.limit)}).`,
      '',
      ...(p.stagesTable ? [p.stagesTable, ''] : []),
      '![presign start to ready, percentiles against offered rate](latency.svg)',
    ]);
  }
  if (r.presign) {
    section('presign', 'node bench/presign.mjs', [
      '| target | serving process | requests/s | CPU ms per request (serving process) | presign CPU ms per request | p50 (ms) | p99 (ms) | non-2xx | errors |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...r.presign.targets.map(
        (t) =>
          `| ${t.target} | ${t.serving} | ${perSecond(t.requestsPerSecond)} | ${ms(t.cpuMsPerRequest)} | ${t.presignCpuMsPerRequest === null ? '–' : ms(t.presignCpuMsPerRequest)} | ` +
          `${t.latencyP50Ms} | ${t.latencyP99Ms} | ${t.non2xx} | ${t.errors} |`,
      ),
    ]);
  }
  if (r.push) {
    const s = r.push.senders;
    section('push', 'node bench/push.mjs', [
      `${r.push.messages} messages × ${r.push.rounds} rounds to ${r.push.subscriptions} web-push-testing subscriptions, concurrency ${r.push.concurrency}; the median round:`,
      '',
      '| sender | msg/s per core | CPU ms per message |',
      '| --- | --- | --- |',
      ...Object.entries(s).map(([name, f]) => `| ${name} | ${f.msgPerCoreSecond} | ${ms(f.cpuMsPerMessage)} |`),
      '',
      `Ratio ${x(r.push.ratio)}.`,
    ]);
  }
  if (r.footprint) {
    const lines = [];
    for (const [label, part] of [['built services on node', r.footprint.node], ['container images', r.footprint.images]]) {
      if (!part) continue;
      if (!part.services) {
        lines.push(`${label}: skipped (${part.skipped ?? 'not run'})`, '');
        continue;
      }
      lines.push(`${label}:`, '', '| service | start → /readyz 200 (ms) | target | idle RSS (MB) | target |', '| --- | --- | --- | --- | --- |');
      for (const [name, f] of footprintServices(part.services)) lines.push(`| ${name} | ${f.readyMs.toFixed(0)} | ${f.target.readyMs} | ${f.rssMB.toFixed(0)} | ${f.target.rssMB} |`);
      lines.push('');
    }
    section('footprint', 'node bench/footprint.mjs', lines);
  }
  if (r.bans) {
    const b = r.bans;
    const f = (m) => `${ms(m.p50)} / ${ms(m.p99)}`;
    section('bans', 'node bench/bans.mjs', [
      `BanList.match against dynalite holding ${b.bans} bans (random fingerprints shaped like real ones, plus near-duplicates); ` +
        `${b.distances[0]?.lookups ?? 0} lookups per distance, half misses (fresh pictures), half hits (copies of banned ones); ms p50 / p99:`,
      '',
      '| max distance | items read (miss / hit) | miss | hit | candidates per miss | one GetItem (floor) | in-memory scan of every fingerprint |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...b.distances.map((d) => `| ${d.maxDistance} | ${d.miss.keys} / ${d.hit.keys} | ${f(d.miss)} | ${f(d.hit)} | ${d.miss.candidates.toFixed(1)} | ${f(d.getItem)} | ${f(d.scan)} |`),
      '',
      `Without the band index, reading every ban from the table takes ${ms(b.tableScan.ms)} ms (${b.tableScan.pages} pages) per lookup. ` +
        `Answers checked against the scan: ${b.mismatches} disagreed.`,
    ]);
  }
  return out;
}

const cpuWall = (m) => `${m.cpu.toFixed(0)} (${m.wall.toFixed(0)})`;
const secondsOf = (r, name) => `${(r[name]?.seconds ?? 0).toFixed(0)} s`;
