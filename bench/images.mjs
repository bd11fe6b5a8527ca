// Per-photo CPU time of the two image stages against their reference points, on real photographs:
//   moderate  what moderate does per upload: the header checks (size, magic bytes, dimensions,
//             aspect), its one strict decode, the square, the views and the nsfwjs model on
//             every view (WASM backend)
//   floor     what moderate cannot avoid: one strict decode at the reduced scale the model needs
//             (strictScale) plus one model run per view moderate must show
//   thumbnail what thumbnail does per upload: the header checks, then auto-orient, strip,
//             64/128/256 squares + 1024 px full, WebP (the square from the approved event)
//   naive     the plain loop: one sharp pipeline per rendition from the file (auto-orient,
//             resize with libvips' own attention crop, default WebP settings)
//
// Usage (after `npx tsc -b`):  node bench/images.mjs [--runs 5] [--model MobileNetV2] [--corpus DIR]
// The corpus defaults to Debian's plasma-workspace-wallpapers photographs, fetched once into
// bench/corpus with `apt-get download` (falls back to fixtures/photos when apt is unavailable).
// CPU time is process.cpuUsage() (every thread: libvips and the WASM backend included), so it does
// not depend on what else the machine is doing; wall time is printed beside it for reference.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { decodeScaled, defaultLimits, inspectImage, openImage, strictScale, tuneLibvips } from '@avatar-pipeline/imaging';
import * as moderate from '@avatar-pipeline/moderate';
import { renderAvatar } from '@avatar-pipeline/thumbnail';
import { photoName, wallpaperPhotos } from './lib/corpus.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    model: { type: 'string', default: 'MobileNetV2' },
    corpus: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);

const corpus = () => (values.corpus ? readdirSync(values.corpus).map((f) => join(values.corpus, f)) : wallpaperPhotos());

async function measure(fn) {
  await fn(); // warm-up
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  const used = process.cpuUsage(cpu);
  return { cpu: (used.user + used.system) / 1000 / runs, wall: (performance.now() - start) / runs };
}

// As the services run (moderate and thumbnail both call it at start).
tuneLibvips();
const provider = await moderate.loadNsfwjsProvider({ model: values.model, minConfidence: 60 });
const crop = 'attention';
const limits = defaultLimits;
const renderOptions = { sizes: [64, 128, 256], fullMax: 1024, crop, quality: 80, limits };
const viewOptions = { crop, shape: provider.viewShape, limits };

/** The plain thumbnail loop: one pipeline (one decode) per rendition, libvips' attention crop, default WebP. */
async function naiveThumbnails(image) {
  const out = [];
  for (const size of renderOptions.sizes) {
    out.push(await openImage(image, limits).autoOrient().resize(size, size, { fit: 'cover', position: sharp.strategy.attention }).webp({ quality: 80 }).toBuffer());
  }
  out.push(await openImage(image, limits).autoOrient().resize(1024, 1024, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer());
  return out;
}

const rows = [];
for (const file of corpus()) {
  const image = readFileSync(file);
  const info = await inspectImage(image, limits);
  if (!info.ok) throw new Error(`${file}: ${info.problem.message}`);
  const input = { bucket: 'bench', key: file, image, format: info.format, width: info.width, height: info.height };

  // moderate, as the service runs it per upload (checkImage's header-only inspection, then the decode).
  let decoded;
  const mod = await measure(async () => {
    const header = await inspectImage(image, limits, { fullDecode: false });
    decoded = await moderate.decodeForModeration(image, header, viewOptions);
    await provider.moderate({ ...input, views: decoded.views });
  });
  const views = decoded.views.length;
  // The floor: one strict decode at the model's scale, and one model run per view.
  const scale = strictScale(info.format, provider.inputSize / Math.min(info.width, info.height));
  const decode = await measure(() => decodeScaled(image, info, limits, scale));
  const classify = await measure(() => provider.classify(decoded.views[0].pixels));
  const floor = { cpu: decode.cpu + views * classify.cpu, wall: decode.wall + views * classify.wall };

  // thumbnail, as the service runs it per upload (header-only inspection, then the render).
  const thumb = await measure(async () => {
    const header = await inspectImage(image, limits, { fullDecode: false });
    await renderAvatar(image, header, renderOptions, decoded.square);
  });
  const naive = await measure(() => naiveThumbnails(image));
  rows.push({
    name: photoName(file),
    size: `${info.width}x${info.height}`,
    kb: Math.round(image.length / 1024),
    views,
    mod,
    decode,
    classify,
    floor,
    thumb,
    naive,
  });
}

const mean = (pick) => rows.reduce((s, r) => s + pick(r), 0) / rows.length;
const summary = {
  photos: rows.length,
  runs,
  model: values.model,
  moderate: mean((r) => r.mod.cpu),
  decode: mean((r) => r.decode.cpu),
  classify: mean((r) => r.classify.cpu),
  floor: mean((r) => r.floor.cpu),
  thumbnail: mean((r) => r.thumb.cpu),
  naive: mean((r) => r.naive.cpu),
};
summary.moderateOverFloor = summary.moderate / summary.floor;
summary.naiveOverThumbnail = summary.naive / summary.thumbnail;
await provider.close?.();
if (values.json) {
  console.log(JSON.stringify({ summary, rows }));
  process.exit(0);
}

const fmt = (m) => `${m.cpu.toFixed(0)} (${m.wall.toFixed(0)})`;
console.log(`\n${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${runs} runs each, model ${values.model}`);
console.log('CPU ms per photo (wall ms in brackets)\n');
console.log('| image | size | KiB | views | moderate | decode | classify | floor | moderate / floor | thumbnail | naive loop | naive / thumbnail |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.size} | ${r.kb} | ${r.views} | ${fmt(r.mod)} | ${fmt(r.decode)} | ${fmt(r.classify)} | ${fmt(r.floor)} | ` +
      `${(r.mod.cpu / r.floor.cpu).toFixed(2)} | ${fmt(r.thumb)} | ${fmt(r.naive)} | ${(r.naive.cpu / r.thumb.cpu).toFixed(2)} |`,
  );
}
const f0 = (x) => x.toFixed(0);
console.log(
  `| **mean** | | | | ${f0(summary.moderate)} | ${f0(summary.decode)} | ${f0(summary.classify)} | ${f0(summary.floor)} | ` +
    `**${summary.moderateOverFloor.toFixed(2)}** | ${f0(summary.thumbnail)} | ${f0(summary.naive)} | **${summary.naiveOverThumbnail.toFixed(2)}** |`,
);
