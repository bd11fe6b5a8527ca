import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { createVapidStore, FileVapidStore, generateVapidKeys, initVapidKeys, loadVapidKeys, vapidEnv } from '../src/index.js';

let dir: string;
let seq = 0;
const nextFile = () => join(dir, `case-${++seq}`, 'vapid.json');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vapid-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('file VAPID key store', () => {
  it('reads nothing when the file does not exist', async () => {
    const file = nextFile();
    expect(await new FileVapidStore(file).read()).toBeUndefined();
    expect(new FileVapidStore(file).describe()).toBe(`file ${file}`);
  });

  it('creates the file once, readable by its owner only, and keeps it', async () => {
    const file = nextFile();
    const keys = generateVapidKeys();
    expect(await new FileVapidStore(file).createIfAbsent(keys)).toEqual({ created: true, keys });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(keys);
    expect(await new FileVapidStore(file).createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys });
    expect(await loadVapidKeys(new FileVapidStore(file))).toEqual(keys);
    expect(await readdir(join(file, '..'))).toEqual(['vapid.json']);
  });

  it('concurrent inits converge on one pair and leave no temporary files', async () => {
    const file = nextFile();
    const results = await Promise.all(Array.from({ length: 12 }, () => initVapidKeys(new FileVapidStore(file))));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.keys.privateKey)).size).toBe(1);
    expect(await loadVapidKeys(new FileVapidStore(file))).toEqual(results[0]!.keys);
    expect(await readdir(join(file, '..'))).toEqual(['vapid.json']);
  });

  it('derives a missing public key; refuses a lone public key, a mismatch and a malformed file', async () => {
    const keys = generateVapidKeys();
    const privateOnly = nextFile();
    await new FileVapidStore(privateOnly).createIfAbsent(keys);
    await writeFile(privateOnly, JSON.stringify({ privateKey: keys.privateKey }));
    expect(await new FileVapidStore(privateOnly).read()).toEqual(keys);

    await writeFile(privateOnly, JSON.stringify({ publicKey: keys.publicKey }));
    await expect(new FileVapidStore(privateOnly).read()).rejects.toThrow(/public key without its private key/);

    await writeFile(privateOnly, JSON.stringify({ publicKey: generateVapidKeys().publicKey, privateKey: keys.privateKey }));
    await expect(loadVapidKeys(new FileVapidStore(privateOnly))).rejects.toThrow(/does not belong to the private key/);

    await writeFile(privateOnly, 'not json');
    await expect(new FileVapidStore(privateOnly).read()).rejects.toThrow(/is not a VAPID key file/);
    await writeFile(privateOnly, '{}');
    await expect(new FileVapidStore(privateOnly).createIfAbsent(keys)).rejects.toThrow(/holds no key pair/);
  });

  it('names the init command when there is no pair', async () => {
    await expect(loadVapidKeys(new FileVapidStore(nextFile()))).rejects.toThrow(/no VAPID key pair in file .*: create it with the VAPID init command/);
  });

  it('is the default store, under LOCAL_DATA_DIR unless VAPID_FILE is set', () => {
    expect(createVapidStore(loadConfig(vapidEnv, {})).describe()).toBe(`file ${resolve('.data/vapid.json')}`);
    expect(createVapidStore(loadConfig(vapidEnv, { LOCAL_DATA_DIR: dir })).describe()).toBe(`file ${join(dir, 'vapid.json')}`);
    expect(createVapidStore(loadConfig(vapidEnv, { LOCAL_DATA_DIR: dir, VAPID_FILE: join(dir, 'x.json') })).describe()).toBe(`file ${join(dir, 'x.json')}`);
    expect(createVapidStore(loadConfig(vapidEnv, { VAPID_STORE: 'ssm', VAPID_SSM_PREFIX: '/game/push' })).describe()).toBe('SSM parameters /game/push/{public-key,private-key}');
    expect(() => loadConfig(vapidEnv, { VAPID_STORE: 'vault' })).toThrow(/VAPID_STORE/);
    expect(() => loadConfig(vapidEnv, { VAPID_SSM_PREFIX: '/game/push/' })).toThrow(/VAPID_SSM_PREFIX/);
    expect(() => loadConfig(vapidEnv, { VAPID_SECRET_NAME: 'Not_A_Name' })).toThrow(/VAPID_SECRET_NAME/);
  });
});
