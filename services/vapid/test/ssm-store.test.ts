import { GetParameterCommand, ParameterAlreadyExists, ParameterNotFound, PutParameterCommand, SSMClient, type GetParameterCommandOutput } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit';
import { createVapidStore, generateVapidKeys, initVapidKeys, loadVapidKeys, vapidEnv } from '../src/index.js';
import { SsmVapidStore } from '../src/ssm-store.js';

const PREFIX = '/avatar-pipeline/vapid';
const PRIVATE = `${PREFIX}/private-key`;
const PUBLIC = `${PREFIX}/public-key`;
const ssmMock = mockClient(SSMClient);
afterEach(() => ssmMock.reset());

const metadata = { httpStatusCode: 200, requestId: '5b0b3ad3-8d1c-4b5c-9a8e-1f2b3c4d5e6f', attempts: 1, totalRetryDelay: 0 };
const notFound = () => new ParameterNotFound({ message: 'ParameterNotFound', $metadata: { ...metadata, httpStatusCode: 400 } });
const alreadyExists = () => new ParameterAlreadyExists({ message: 'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.', $metadata: { ...metadata, httpStatusCode: 400 } });

/** GetParameter's answer as SSM gives it (decrypted when WithDecryption is set). */
function parameter(name: string, value: string): GetParameterCommandOutput {
  const secure = name.endsWith('private-key');
  return {
    $metadata: metadata,
    Parameter: {
      Name: name,
      Type: secure ? 'SecureString' : 'String',
      Value: value,
      Version: 1,
      LastModifiedDate: new Date('2030-01-01T00:00:00Z'),
      ARN: `arn:aws:ssm:us-east-1:123456789012:parameter${name}`,
      DataType: 'text',
    },
  };
}

/** Parameter Store in memory: GetParameter and PutParameter with SSM's errors. */
function fakeParameterStore(initial: Record<string, string> = {}) {
  const stored = new Map(Object.entries(initial));
  ssmMock.on(GetParameterCommand).callsFake(async (input: { Name: string }) => {
    const value = stored.get(input.Name);
    if (value === undefined) throw notFound();
    return parameter(input.Name, value);
  });
  ssmMock.on(PutParameterCommand).callsFake(async (input: { Name: string; Value: string; Overwrite?: boolean }) => {
    if (stored.has(input.Name) && !input.Overwrite) throw alreadyExists();
    stored.set(input.Name, input.Value);
    return { $metadata: metadata, Version: 1, Tier: 'Standard' };
  });
  return stored;
}

const store = (kmsKeyId?: string) => new SsmVapidStore(new SSMClient({ region: 'us-east-1' }), { prefix: PREFIX, kmsKeyId });

describe('SSM VAPID key store', () => {
  it('reads nothing when neither parameter exists', async () => {
    fakeParameterStore();
    expect(await store().read()).toBeUndefined();
    expect(store().describe()).toBe('SSM parameters /avatar-pipeline/vapid/{public-key,private-key}');
  });

  it('reads the pair, decrypting the private key', async () => {
    const keys = generateVapidKeys();
    fakeParameterStore({ [PRIVATE]: keys.privateKey, [PUBLIC]: keys.publicKey });
    expect(await loadVapidKeys(store())).toEqual(keys);
    const gets = ssmMock.commandCalls(GetParameterCommand).map((call) => call.args[0].input);
    expect(gets).toEqual(expect.arrayContaining([{ Name: PRIVATE, WithDecryption: true }, { Name: PUBLIC, WithDecryption: true }]));
  });

  it('creates an absent pair without overwriting: private key first, as a SecureString', async () => {
    const stored = fakeParameterStore();
    const keys = generateVapidKeys();
    expect(await store('alias/avatar-pipeline').createIfAbsent(keys)).toEqual({ created: true, keys });
    const puts = ssmMock.commandCalls(PutParameterCommand).map((call) => call.args[0].input);
    expect(puts).toEqual([
      expect.objectContaining({ Name: PRIVATE, Value: keys.privateKey, Type: 'SecureString', KeyId: 'alias/avatar-pipeline', Overwrite: false }),
      expect.objectContaining({ Name: PUBLIC, Value: keys.publicKey, Type: 'String', Overwrite: false }),
    ]);
    expect(puts[1]).not.toHaveProperty('KeyId');
    expect(Object.fromEntries(stored)).toEqual({ [PRIVATE]: keys.privateKey, [PUBLIC]: keys.publicKey });
  });

  it('leaves an existing pair unchanged', async () => {
    const existing = generateVapidKeys();
    fakeParameterStore({ [PRIVATE]: existing.privateKey, [PUBLIC]: existing.publicKey });
    expect(await store().createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys: existing });
    expect(await initVapidKeys(store())).toEqual({ created: false, keys: existing });
    expect(ssmMock.commandCalls(PutParameterCommand)).toHaveLength(0);
  });

  it('returns the stored pair when another init wins the race (ParameterAlreadyExists)', async () => {
    const winner = generateVapidKeys();
    // Both parameters looked absent, then the other init wrote them before our PutParameter.
    ssmMock.on(GetParameterCommand).rejectsOnce(notFound()).rejectsOnce(notFound()).callsFake(async (input: { Name: string }) =>
      parameter(input.Name, input.Name === PRIVATE ? winner.privateKey : winner.publicKey),
    );
    ssmMock.on(PutParameterCommand).rejects(alreadyExists());
    const result = await store().createIfAbsent(generateVapidKeys());
    expect(result).toEqual({ created: false, keys: winner });
    // Only our private key write was tried and refused; the public key followed the winner's.
    expect(ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input.Name)).toEqual([PRIVATE, PUBLIC]);
  });

  it('two concurrent inits converge on one pair', async () => {
    fakeParameterStore();
    const [a, b] = await Promise.all([initVapidKeys(store()), initVapidKeys(store())]);
    expect(a.keys).toEqual(b.keys);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    expect(await loadVapidKeys(store())).toEqual(a.keys);
  });

  it('completes a pair whose public key was never written, from the private key', async () => {
    const keys = generateVapidKeys();
    const stored = fakeParameterStore({ [PRIVATE]: keys.privateKey });
    expect(await store().read()).toEqual(keys);
    expect(await store().createIfAbsent(generateVapidKeys())).toEqual({ created: false, keys });
    expect(stored.get(PUBLIC)).toBe(keys.publicKey);
    expect(ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input.Name)).toEqual([PUBLIC]);
  });

  it('refuses to replace a public key whose private key is missing', async () => {
    fakeParameterStore({ [PUBLIC]: generateVapidKeys().publicKey });
    await expect(store().read()).rejects.toThrow(/public key without its private key/);
    await expect(store().createIfAbsent(generateVapidKeys())).rejects.toThrow(/public key without its private key/);
    expect(ssmMock.commandCalls(PutParameterCommand)).toHaveLength(0);
  });

  it('refuses a stored pair that does not match', async () => {
    fakeParameterStore({ [PRIVATE]: generateVapidKeys().privateKey, [PUBLIC]: generateVapidKeys().publicKey });
    await expect(loadVapidKeys(store())).rejects.toThrow(/SSM parameters .*: the VAPID public key does not belong to the private key/);
  });

  it('passes other SSM errors on', async () => {
    ssmMock.on(GetParameterCommand).rejects(Object.assign(new Error('User is not authorized to perform: ssm:GetParameter'), { name: 'AccessDeniedException' }));
    await expect(store().read()).rejects.toThrow(/not authorized/);
  });

  it('is chosen by VAPID_STORE=ssm, with the prefix and KMS key from the environment', async () => {
    const stored = fakeParameterStore();
    const config = loadConfig(vapidEnv, { VAPID_STORE: 'ssm', VAPID_SSM_PREFIX: '/game/push', VAPID_SSM_KMS_KEY_ID: 'alias/game' });
    const { keys } = await initVapidKeys(createVapidStore(config, { ssm: new SSMClient({ region: 'us-east-1' }) }));
    expect(Object.fromEntries(stored)).toEqual({ '/game/push/private-key': keys.privateKey, '/game/push/public-key': keys.publicKey });
    expect(ssmMock.commandCalls(PutParameterCommand, { Name: '/game/push/private-key' })[0]?.args[0].input).toMatchObject({ KeyId: 'alias/game', Type: 'SecureString' });
  });
});
