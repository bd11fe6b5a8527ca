import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heavyPng } from '@avatar-pipeline/imaging/hostile';

describe('inspectImage on a heavy valid image', () => {
  const dist = resolve(import.meta.dirname, '../dist/index.js');
  let dir: string;

  beforeAll(async () => {
    // The child runs plain node against the compiled package: build it first (`npx tsc -b packages/imaging`).
    if (!existsSync(dist)) throw new Error(`build imaging first: ${dist} is missing`);
    dir = await mkdtemp(join(tmpdir(), 'imaging-heavy-'));
    await writeFile(join(dir, 'heavy.png'), await heavyPng());
    await writeFile(join(dir, 'not-a-directory'), '');
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('decodes every pixel in one bounded pass, writing no temporary file (a pod has 64 MiB of /tmp)', async () => {
    const script = join(dir, 'inspect.mjs');
    await writeFile(
      script,
      `import { readFileSync } from 'node:fs';
import { inspectImage } from ${JSON.stringify(pathToFileURL(dist).href)};
const result = await inspectImage(readFileSync(${JSON.stringify(join(dir, 'heavy.png'))}));
const peak = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
console.log(JSON.stringify({ result, peak }));
`,
    );
    // Any temporary file fails: TMPDIR is below a file. (libvips spills images it must read twice.)
    const run = spawnSync(process.execPath, [script], {
      env: { PATH: process.env['PATH'] ?? '', MALLOC_ARENA_MAX: '2', TMPDIR: join(dir, 'not-a-directory', 'tmp') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.stderr).toBe('');
    const { result, peak } = JSON.parse(run.stdout) as { result: unknown; peak: number };
    expect(result).toEqual({ ok: true, format: 'png', contentType: 'image/png', width: 6000, height: 6000, orientation: 6 });
    // 288 MB decoded: the pass holds a few rows at a time.
    if (process.platform === 'linux') expect(peak).toBeLessThan(200 * 1024 * 1024);
  }, 90_000);
});
