// Per-image CPU time of the two image stages, on real photographs:
//   inspect   hostile-image checks (magic bytes, header dimensions and aspect)    [moderate]
//   classify  the views (one decode: whole image and avatar square) and the nsfwjs model
//             on each, on the WASM backend                                           [moderate]
//   render    auto-orient, strip, 64/128/256 squares + 1024 px full, WebP           [thumbnail]
//
// Usage (after `npx tsc -b`):  node bench/images.mjs [--runs 5] [--model MobileNetV2] [--corpus DIR]
// The corpus defaults to Debian's plasma-workspace-wallpapers photographs, fetched once into
// bench/corpus with `apt-get download` (falls back to fixtures/photos when apt is unavailable).
// CPU time is process.cpuUsage() (every thread: libvips and the WASM backend included), so it does
// not depend on what else the machine is doing; wall time is printed beside it for reference.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultLimits, inspectImage } from '@avatar-pipeline/imaging';
import { loadNsfwjsProvider, moderationViews } from '@avatar-pipeline/moderate';
import { renderAvatar } from '@avatar-pipeline/thumbnail';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    model: { type: 'string', default: 'MobileNetV2' },
    corpus: { type: 'string' },
  },
});
const runs = Number(values.runs);

/** Photographs (not renders or drawings) in the plasma wallpaper set, at their largest JPEG size. */
const photos = ['Autumn', 'BytheWater', 'ColdRipple', 'ColorfulCups', 'FallenLeaf', 'Grey', 'OneStandsOut', 'Path'];

function corpus() {
  if (values.corpus) return readdirSync(values.corpus).map((f) => join(values.corpus, f));
  const dir = join(root, 'bench/corpus');
  const wallpapers = join(dir, 'usr/share/wallpapers');
  if (!existsSync(wallpapers)) {
    try {
      mkdirSync(dir, { recursive: true });
      execFileSync('apt-get', ['download', 'plasma-workspace-wallpapers'], { cwd: dir, stdio: 'ignore' });
      const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
      execFileSync('dpkg', ['-x', join(dir, deb), dir]);
    } catch {
      console.error('apt-get download failed; using fixtures/photos instead');
      const fixtures = join(root, 'fixtures/photos');
      return readdirSync(fixtures).filter((f) => /\.(jpe?g|png|webp)$/.test(f)).map((f) => join(fixtures, f));
    }
  }
  return photos.map((name) => {
    const images = join(wallpapers, name, 'contents/images');
    const largest = readdirSync(images)
      .filter((f) => /^\d+x\d+\.jpg$/.test(f))
      .sort((a, b) => pixels(b) - pixels(a))[0];
    return join(images, largest);
  });
}

function pixels(file) {
  const [w, h] = file.split('.')[0].split('x').map(Number);
  return w * h;
}

async function measure(fn) {
  await fn(); // warm-up
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  const used = process.cpuUsage(cpu);
  return { cpu: (used.user + used.system) / 1000 / runs, wall: (performance.now() - start) / runs };
}

const provider = await loadNsfwjsProvider({ model: values.model, minConfidence: 60 });
const renderOptions = { sizes: [64, 128, 256], fullMax: 1024, crop: 'attention', quality: 80, limits: defaultLimits };
const rows = [];
for (const file of corpus()) {
  const image = readFileSync(file);
  const info = await inspectImage(image, defaultLimits);
  if (!info.ok) throw new Error(`${file}: ${info.problem.message}`);
  const input = { bucket: 'bench', key: file, image, format: info.format, width: info.width, height: info.height };
  const inspect = await measure(() => inspectImage(image, defaultLimits, { fullDecode: false }));
  const viewOptions = { crop: 'attention', shape: provider.viewShape, limits: defaultLimits };
  const classify = await measure(async () => provider.moderate({ ...input, views: await moderationViews(image, info, viewOptions) }));
  const render = await measure(() => renderAvatar(image, info, renderOptions));
  rows.push({ name: file.includes('/wallpapers/') ? file.split('/').slice(-4, -3)[0] : file.split('/').pop(), size: `${info.width}x${info.height}`, kb: Math.round(image.length / 1024), inspect, classify, render });
}

const fmt = (m) => `${m.cpu.toFixed(0)} (${m.wall.toFixed(0)})`;
console.log(`\n${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${runs} runs each, model ${values.model}`);
console.log('CPU ms per image (wall ms in brackets)\n');
console.log('| image | size | KiB | inspect | classify | moderate total | render (thumbnail) |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  const total = { cpu: r.inspect.cpu + r.classify.cpu, wall: r.inspect.wall + r.classify.wall };
  console.log(`| ${r.name} | ${r.size} | ${r.kb} | ${fmt(r.inspect)} | ${fmt(r.classify)} | ${fmt(total)} | ${fmt(r.render)} |`);
}
const mean = (pick) => rows.reduce((s, r) => s + pick(r), 0) / rows.length;
console.log(
  `| **mean** | | | ${mean((r) => r.inspect.cpu).toFixed(0)} | ${mean((r) => r.classify.cpu).toFixed(0)} | ` +
    `${mean((r) => r.inspect.cpu + r.classify.cpu).toFixed(0)} | ${mean((r) => r.render.cpu).toFixed(0)} |`,
);
await provider.close?.();
