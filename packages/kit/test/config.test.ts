import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, awsEnv, bucketEnv, commonEnv, env, loadConfig, tableEnv } from '../src/config.js';
import { authEnv } from '../src/player-auth-config.js';

const auth = {
  JWT_JWKS_URL: 'http://issuer.local/.well-known/jwks.json',
  JWT_ISSUER: 'http://issuer.local',
  JWT_AUDIENCE: 'avatar-pipeline',
};
const shape = { ...commonEnv, ...awsEnv, ...tableEnv, ...bucketEnv, ...authEnv };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns typed values with defaults filled in', () => {
    const config = loadConfig(shape, { ...auth, PORT: '9090', SHUTDOWN_GRACE_SECONDS: '3', UNRELATED: 'x' });
    expect(config).toEqual({
      PORT: 9090,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_SECONDS: 3,
      AWS_REGION: 'us-east-1',
      TABLE_NAME: 'avatar-pipeline',
      BUCKET: 'avatars',
      ...auth,
      JWT_AUDIENCE: ['avatar-pipeline'],
      JWT_ISSUERS: [],
      JWT_JWKS_URLS: [],
      JWT_CLIENT_IDS: [],
      JWT_ALGORITHMS: ['RS256', 'ES256'],
      JWT_PLAYER_CLAIM: 'sub',
      JWT_ROLES_CLAIM: 'roles',
      MODERATOR_ROLE: 'moderator',
    });
    expect(config).not.toHaveProperty('UNRELATED');
    expect(config).not.toHaveProperty('AWS_ENDPOINT_URL_S3');
  });

  it('reads optional endpoint overrides', () => {
    const config = loadConfig(awsEnv, { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4569' });
    expect(config).toEqual({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4569' });
  });

  it('names a missing required variable in one line', () => {
    const err = configError(() => loadConfig({ ...shape, K_SINK: env.url() }, auth));
    expect(err.message).toBe('invalid configuration: K_SINK is required');
  });

  it('names every bad or missing variable in one line', () => {
    const err = configError(() => loadConfig({ ...shape, K_SINK: env.url() }, { PORT: 'abc', JWT_JWKS_URL: 'notaurl', JWT_ISSUER: 'x' }));
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/^invalid configuration: /);
    expect(err.message).toContain('PORT: ');
    expect(err.message).toContain('JWT_JWKS_URL: expected an http(s) URL');
    expect(err.message).toContain('K_SINK is required');
    expect(err.message).not.toContain('JWT_ISSUER');
  });

  it('rejects out-of-range and non-http values', () => {
    expect(configError(() => loadConfig(commonEnv, { PORT: '70000' })).message).toContain('PORT: ');
    expect(configError(() => loadConfig(commonEnv, { PORT: '80.5' })).message).toContain('PORT: ');
    expect(configError(() => loadConfig(commonEnv, { LOG_LEVEL: 'loud' })).message).toContain('LOG_LEVEL: ');
    expect(configError(() => loadConfig(awsEnv, { AWS_ENDPOINT_URL_DYNAMODB: 'ftp://x' })).message).toContain(
      'AWS_ENDPOINT_URL_DYNAMODB: expected an http(s) URL',
    );
    expect(configError(() => loadConfig(tableEnv, { TABLE_NAME: 'ab' })).message).toContain('TABLE_NAME: ');
  });

  it('counts empty strings as unset', () => {
    expect(loadConfig(commonEnv, { PORT: '', LOG_LEVEL: '' })).toMatchObject({ PORT: 8080, LOG_LEVEL: 'info' });
    expect(loadConfig(authEnv, { ...auth, JWT_ISSUER: '' }).JWT_ISSUER).toBeUndefined();
    const err = configError(() => loadConfig({ ...commonEnv, K_SINK: env.url() }, { K_SINK: '' }));
    expect(err.message).toBe('invalid configuration: K_SINK is required');
  });

  it('does not leak values of bad variables into the message', () => {
    const err = configError(() => loadConfig({ SECRET: z.string().regex(/^k-/) }, { SECRET: 'hunter2' }));
    expect(err.message).toMatch(/^invalid configuration: SECRET: /);
    expect(err.message).not.toContain('hunter2');
  });
});

describe('env helpers', () => {
  const flags = { FLAG: env.bool(false), ON: env.bool(true) };

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('bool reads %s as %s', (raw, expected) => {
    expect(loadConfig(flags, { FLAG: raw }).FLAG).toBe(expected);
  });

  it('bool falls back to its default and rejects other words', () => {
    expect(loadConfig(flags, {})).toEqual({ FLAG: false, ON: true });
    expect(configError(() => loadConfig(flags, { FLAG: 'maybe' })).message).toBe('invalid configuration: FLAG: expected true or false');
  });

  it('list splits on commas, trims and drops empty items', () => {
    const shape = { ITEMS: env.list(['a', 'b']) };
    expect(loadConfig(shape, { ITEMS: ' x, y ,,z ' }).ITEMS).toEqual(['x', 'y', 'z']);
    expect(loadConfig(shape, {}).ITEMS).toEqual(['a', 'b']);
    expect(loadConfig(shape, { ITEMS: '' }).ITEMS).toEqual(['a', 'b']);
    expect(loadConfig({ ITEMS: env.list() }, {}).ITEMS).toEqual([]);
  });

  it('list defaults are not shared between loads', () => {
    const shape = { ITEMS: env.list(['a']) };
    loadConfig(shape, {}).ITEMS.push('mutated');
    expect(loadConfig(shape, {}).ITEMS).toEqual(['a']);
  });

  it('int enforces its minimum', () => {
    expect(loadConfig({ N: env.int(3, 1) }, {}).N).toBe(3);
    expect(configError(() => loadConfig({ N: env.int(3, 1) }, { N: '0' })).message).toContain('N: ');
  });
});

describe('main()', () => {
  const dist = (name: string) => resolve(import.meta.dirname, `../dist/${name}.js`);
  let dir: string;

  beforeAll(async () => {
    // The spawned script runs plain node against the compiled kit: build it first (`npx tsc -b packages/kit`).
    if (!existsSync(dist('server'))) throw new Error(`build the kit first: ${dist('server')} is missing`);
    dir = await mkdtemp(join(tmpdir(), 'kit-main-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function run(body: string, envVars: Record<string, string>) {
    const script = join(dir, `main-${Math.random().toString(36).slice(2)}.mjs`);
    const imports = ['server', 'config', 'player-auth-config'].map((name) => `await import(${JSON.stringify(pathToFileURL(dist(name)).href)})`);
    await writeFile(script, `const kit = Object.assign({}, ${imports.join(', ')});\n${body}\n`);
    const { PATH, HOME } = process.env;
    return spawnSync(process.execPath, [script], {
      env: { ...(PATH ? { PATH } : {}), ...(HOME ? { HOME } : {}), ...envVars },
      encoding: 'utf8',
      timeout: 10_000,
    });
  }

  it('prints exactly the one config line to stderr and exits 1', async () => {
    const result = await run(
      `kit.main(async () => { kit.loadConfig({ ...kit.commonEnv, ...kit.authEnv }); console.log('started'); });`,
      { PORT: 'abc', JWT_JWKS_URL: 'notaurl', JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' },
    );
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('');
    expect(lines[0]).toMatch(/^invalid configuration: PORT: .*; JWT_JWKS_URL: expected an http\(s\) URL$/);
  });

  it('reports other start-up failures as fatal and exits 1', async () => {
    const result = await run(`kit.main(async () => { throw new Error('boom'); });`, {});
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^fatal: Error: boom\n/);
  });

  it('leaves the process running when start succeeds', async () => {
    const result = await run(`kit.main(async () => { console.log(kit.loadConfig(kit.commonEnv).PORT); });`, { PORT: '1234' });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('1234\n');
    expect(result.stderr).toBe('');
  });
});
