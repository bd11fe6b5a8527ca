// `npm run bench`: every benchmark beside its anchor, one after another on the same machine, then
// bench/RESULTS.md (a table of the goals with their figures, then each benchmark's own figures),
// bench/latency.svg (latency percentiles against offered rate) and the figures block of
// docs/performance.md (between its bench:begin and bench:end markers).
//
// Usage (after `npx tsc -b`; `npm run bench` does both):
//   node bench/run.mjs [--only images,stages,pipeline,presign,push,footprint,bans] [--quick]
//   --quick   fewer runs and rounds everywhere: a smoke test of the whole run, not figures to keep
//             (it writes bench/RESULTS.quick.md and leaves docs/performance.md alone)
//
// The benchmarks run one at a time (each child's stderr passes through as progress), so none of
// them competes with another for the 2 cores; each prints one JSON object with --json.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { goalsTable, sections } from './lib/results.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean', default: false } } });
const quick = values.quick;

/** Each benchmark and its arguments: the settings the figures in RESULTS.md are taken with. */
const benches = {
  images: quick ? ['--runs', '1'] : ['--runs', '3'],
  stages: quick ? ['--rounds', '1'] : ['--rounds', '3'],
  pipeline: [...(quick ? ['--rates', '1,4', '--uploads', '12'] : ['--rates', '0.5,1,2,4,6']), '--svg', join(root, 'bench/latency.svg')],
  presign: quick ? ['--duration', '3', '--warmup', '1'] : ['--rounds', '3'],
  push: quick ? ['--messages', '500', '--rounds', '1', '--warmup', '200'] : ['--rounds', '5'],
  footprint: quick ? ['--runs', '1', '--idle', '2'] : ['--runs', '3'],
  // 100,000 bans; the table is built once (~30 s) and cached under node_modules/.cache.
  bans: quick ? ['--lookups', '100'] : ['--lookups', '1000'],
};
const selected = values.only ? values.only.split(',') : Object.keys(benches);
for (const name of selected) if (!(name in benches)) throw new Error(`no benchmark "${name}"; there are ${Object.keys(benches).join(', ')}`);

function run(name) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(root, 'bench', `${name}.mjs`), ...benches[name], '--json'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/${name}.mjs exited with ${code}`));
      // A library may print a line of its own before the JSON (nsfwjs does).
      const at = out.search(/^\{/m);
      if (at < 0) return reject(new Error(`bench/${name}.mjs printed no JSON: ${out.slice(0, 500)}`));
      resolve({ ...JSON.parse(out.slice(at)), seconds: (Date.now() - started) / 1000 });
    });
  });
}

const began = Date.now();
const results = {};
for (const name of selected) {
  console.error(`\n== bench/${name}.mjs ${benches[name].join(' ')}`);
  results[name] = await run(name);
}

const commit = await new Promise((resolve) => {
  const git = spawn('git', ['rev-parse', '--short', 'HEAD'], { cwd: root });
  let out = '';
  git.stdout.on('data', (c) => (out += c));
  git.on('exit', () => resolve(out.trim() || 'unknown'));
  git.on('error', () => resolve('unknown'));
});
const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), Node ${process.version}, commit ${commit}, ${new Date().toISOString().slice(0, 10)}`;
const minutes = ((Date.now() - began) / 60_000).toFixed(1);
const summary = goalsTable(results);
const command = quick ? 'npm run bench -- --quick' : 'npm run bench';

const doc = [
  '# Benchmark results',
  '',
  `Written by \`${command}\`${values.only ? ` (only ${values.only})` : ''} in ${minutes} min on ${machine}.`,
  'Every figure sits beside its anchor from the same run; CPU figures are process CPU time (every thread), which does not',
  'depend on what else the machine is doing, while latencies and rates do.',
  '',
  summary,
  '',
  ...sections(results),
].join('\n');
writeFileSync(join(root, quick ? 'bench/RESULTS.quick.md' : 'bench/RESULTS.md'), `${doc}\n`);

if (!quick && !values.only) {
  const page = join(root, 'docs/performance.md');
  const text = readFileSync(page, 'utf8');
  const block = `<!-- bench:begin -->\n${machine}; \`npm run bench\` (${minutes} min), details in [bench/RESULTS.md](../bench/RESULTS.md):\n\n${summary}\n<!-- bench:end -->`;
  const updated = text.replace(/<!-- bench:begin -->[\s\S]*?<!-- bench:end -->/, block);
  if (updated === text && !text.includes(block)) console.error('docs/performance.md has no bench:begin/bench:end markers; left alone');
  else writeFileSync(page, updated);
}
console.log(summary);
