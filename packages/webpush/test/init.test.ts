import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The built command, as the cluster Job runs it (npm test builds before testing). */
const INIT = fileURLToPath(new URL('../dist/init.js', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vapid-init-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const { PATH, SYSTEMROOT } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [INIT], { cwd: dir, env: { ...(PATH ? { PATH } : {}), ...(SYSTEMROOT ? { SYSTEMROOT } : {}), ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the init command', () => {
  it('is built', () => {
    expect(existsSync(INIT), `${INIT} is missing: run npx tsc -b packages/webpush`).toBe(true);
  });

  it('creates the pair once and prints the same public key every time, never the private key', async () => {
    const env = { VAPID_STORE: 'file', LOCAL_DATA_DIR: join(dir, 'data') };
    const first = await run(env);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toMatch(/^created VAPID key pair in file .*data\/vapid\.json\npublic key: [A-Za-z0-9_-]{87}\n$/);
    const stored = JSON.parse(await readFile(join(dir, 'data', 'vapid.json'), 'utf8')) as { publicKey: string; privateKey: string };
    expect((await stat(join(dir, 'data', 'vapid.json'))).mode & 0o777).toBe(0o600);

    const second = await run(env);
    expect(second).toMatchObject({ code: 0, stderr: '' });
    expect(second.stdout).toMatch(/^kept existing VAPID key pair in file /);
    const publicKey = (out: string) => /public key: (\S+)/.exec(out)?.[1];
    expect(publicKey(first.stdout)).toBe(stored.publicKey);
    expect(publicKey(second.stdout)).toBe(stored.publicKey);
    expect(first.stdout + second.stdout).not.toContain(stored.privateKey);
  });

  it('exits 1 with one line on a bad configuration or a broken store', async () => {
    const badConfig = await run({ VAPID_STORE: 'vault' });
    expect(badConfig.code).toBe(1);
    expect(badConfig.stdout).toBe('');
    expect(badConfig.stderr).toMatch(/^vapid init failed: invalid configuration: VAPID_STORE: [^\n]+\n$/);

    const file = join(dir, 'broken.json');
    await writeFile(file, JSON.stringify({ publicKey: 'BAAA', privateKey: 'AAAA' }));
    const broken = await run({ VAPID_FILE: file });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^vapid init failed: file .*broken\.json: the VAPID public key must be 65 bytes of base64url\n$/);
  });
});
