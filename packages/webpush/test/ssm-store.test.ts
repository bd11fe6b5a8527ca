/**
 * The SSM store against a real Parameter Store (moto's server, local/src/stand-ins/moto.ts): SecureString
 * and String parameters as the store writes them, never overwritten, and inits racing to create
 * the pair. moto encrypts a SecureString only in form (the value prefixed with its key), and its
 * IAM checks are off, so the error path uses a name SSM itself refuses (under /aws).
 */
import { DescribeParametersCommand, GetParameterCommand, PutParameterCommand, SSMClient, type ParameterMetadata } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clientOptions } from '@avatar-pipeline/kit/aws';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { motoSkipReason, startMoto, type MotoServer } from '@avatar-pipeline/local';
import { createVapidStore, generateVapidKeys, initVapidKeys, loadVapidKeys, vapidEnv, type VapidKeys } from '../src/index.js';
import { SsmVapidStore } from '../src/ssm-store.js';

const PREFIX = '/avatar-pipeline/vapid';
const PRIVATE = `${PREFIX}/private-key`;
const PUBLIC = `${PREFIX}/public-key`;
const REGION = 'us-east-1';
const skipped = motoSkipReason();

describe.skipIf(skipped)(`SSM VAPID key store against moto${skipped ? ` (skipped: ${skipped})` : ''}`, () => {
  let moto: MotoServer;
  /** The stores' clients (as createVapidStore builds them), and the test's own, which an operator would use. */
  const clients: SSMClient[] = [];
  let ssm: SSMClient;
  /** PutParameter names, in the order the store's clients sent them. */
  let puts: string[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    ssm = new SSMClient(clientOptions(REGION, moto.endpoint));
  });
  afterAll(async () => {
    ssm?.destroy();
    for (const c of clients) c.destroy();
    await moto?.close();
  });
  beforeEach(async () => {
    await moto.reset();
    puts = [];
  });

  /** A client to moto, recording the PutParameter calls it sends; `beforePut` runs before each. */
  function client(beforePut?: () => Promise<void>): SSMClient {
    const c = new SSMClient(clientOptions(REGION, moto.endpoint));
    c.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutParameterCommand') {
          await beforePut?.();
          puts.push((args.input as { Name: string }).Name);
        }
        return next(args);
      },
      { step: 'initialize', name: 'recordPuts' },
    );
    clients.push(c);
    return c;
  }

  const store = (options: { kmsKeyId?: string; beforePut?: () => Promise<void>; prefix?: string } = {}) =>
    new SsmVapidStore(client(options.beforePut), { prefix: options.prefix ?? PREFIX, kmsKeyId: options.kmsKeyId });

  /** What an operator writes by hand, as the store would. */
  const put = (name: string, value: string) =>
    ssm.send(new PutParameterCommand({ Name: name, Value: value, Type: name.endsWith('private-key') ? 'SecureString' : 'String' }));

  async function metadata(): Promise<Record<string, ParameterMetadata>> {
    const { Parameters = [] } = await ssm.send(new DescribeParametersCommand({}));
    return Object.fromEntries(Parameters.map((p) => [p.Name!, p]));
  }

  const stored = async (name: string, decrypt = true) => (await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: decrypt }))).Parameter;

  it('reads nothing when neither parameter exists', async () => {
    expect(await store().read()).toBeUndefined();
    expect(store().describe()).toBe('SSM parameters /avatar-pipeline/vapid/{public-key,private-key}');
  });

  it('reads the pair, decrypting the private key', async () => {
    const keys = generateVapidKeys();
    await put(PRIVATE, keys.privateKey);
    await put(PUBLIC, keys.publicKey);
    expect(await loadVapidKeys(store())).toEqual(keys);
  });

  it('creates an absent pair without overwriting: private key first as a SecureString under the KMS key, public key as a String', async () => {
    const keys = generateVapidKeys();
    expect(await store({ kmsKeyId: 'alias/avatar-pipeline' }).createIfAbsent(keys)).toEqual({ created: true, keys });
    expect(puts).toEqual([PRIVATE, PUBLIC]);

    const described = await metadata();
    expect(described[PRIVATE]).toMatchObject({ Type: 'SecureString', KeyId: 'alias/avatar-pipeline', Version: 1 });
    expect(described[PUBLIC]).toMatchObject({ Type: 'String', Version: 1 });
    expect(described[PUBLIC]?.KeyId).toBeUndefined();
    // Encrypted at rest: only a decrypting read gives the key back.
    expect((await stored(PRIVATE, false))?.Value).not.toBe(keys.privateKey);
    expect((await stored(PRIVATE))?.Value).toBe(keys.privateKey);
    expect((await stored(PUBLIC, false))?.Value).toBe(keys.publicKey);
    expect(await loadVapidKeys(store())).toEqual(keys);
  });

  it('leaves an existing pair unchanged', async () => {
    const existing = generateVapidKeys();
    await put(PRIVATE, existing.privateKey);
    await put(PUBLIC, existing.publicKey);
    expect(await store().createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys: existing });
    expect(await initVapidKeys(store())).toEqual({ created: false, keys: existing });
    expect(puts).toEqual([]);
    expect(Object.values(await metadata()).map((p) => p.Version)).toEqual([1, 1]);
  });

  it('returns the stored pair when another init wins the race between its read and its write', async () => {
    let winner: VapidKeys | undefined;
    // Both parameters looked absent to us; the other init writes the pair before our first PutParameter.
    const loser = store({ beforePut: async () => void (winner ??= (await initVapidKeys(store())).keys) });
    const result = await loser.createIfAbsent(generateVapidKeys());
    expect(result).toEqual({ created: false, keys: winner });
    // SSM refused our private key (ParameterAlreadyExists), and our public key after reading the winner's.
    expect(puts).toEqual([PRIVATE, PUBLIC, PRIVATE, PUBLIC]);
    expect(await loadVapidKeys(store())).toEqual(winner);
    expect(Object.values(await metadata()).map((p) => p.Version)).toEqual([1, 1]);
  });

  it('concurrent inits converge on one pair: exactly one creates it, every one returns it', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => initVapidKeys(store())));
    // They did race: several found nothing and tried to write the private key.
    expect(puts.filter((name) => name === PRIVATE).length).toBeGreaterThan(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const [first] = results;
    for (const r of results) expect(r.keys).toEqual(first?.keys);
    expect(await loadVapidKeys(store())).toEqual(first?.keys);
    expect(Object.values(await metadata()).map((p) => p.Version)).toEqual([1, 1]);
  });

  it('completes a pair whose public key was never written, from the private key', async () => {
    const keys = generateVapidKeys();
    await put(PRIVATE, keys.privateKey);
    expect(await store().read()).toEqual(keys);
    expect(await store().createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys });
    expect(puts).toEqual([PUBLIC]);
    expect(await stored(PUBLIC)).toMatchObject({ Type: 'String', Value: keys.publicKey });
  });

  it('refuses to replace a public key whose private key is missing', async () => {
    await put(PUBLIC, generateVapidKeys().publicKey);
    await expect(store().read()).rejects.toThrow(/public key without its private key/);
    await expect(store().createIfAbsent(generateVapidKeys())).rejects.toThrow(/public key without its private key/);
    expect(puts).toEqual([]);
  });

  it('refuses a stored pair that does not match', async () => {
    await put(PRIVATE, generateVapidKeys().privateKey);
    await put(PUBLIC, generateVapidKeys().publicKey);
    await expect(loadVapidKeys(store())).rejects.toThrow(/SSM parameters .*: the VAPID public key does not belong to the private key/);
  });

  it('passes other SSM errors on', async () => {
    await expect(store({ prefix: '/aws/avatar-pipeline' }).createIfAbsent(generateVapidKeys())).rejects.toMatchObject({
      name: 'AccessDeniedException',
      message: expect.stringMatching(/reserved parameter name/) as unknown,
    });
  });

  it('is chosen by VAPID_STORE=ssm, with the prefix, KMS key and endpoint from the environment', async () => {
    const config = loadConfig(vapidEnv, {
      VAPID_STORE: 'ssm',
      VAPID_SSM_PREFIX: '/game/push',
      VAPID_SSM_KMS_KEY_ID: 'alias/game',
      AWS_REGION: REGION,
      AWS_ENDPOINT_URL_SSM: moto.endpoint,
    });
    const { keys } = await initVapidKeys(createVapidStore(config));
    expect(await stored('/game/push/private-key')).toMatchObject({ Type: 'SecureString', Value: keys.privateKey });
    expect(await stored('/game/push/public-key')).toMatchObject({ Type: 'String', Value: keys.publicKey });
    expect((await metadata())['/game/push/private-key']?.KeyId).toBe('alias/game');
  });
});
