import { BatchGetCommand, GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { startTestBackends, type DynamoBackend } from '@avatar-pipeline/local';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { dynamoDocumentClient } from '../src/aws.js';
import { BanList, bandKeysWithin, fingerprintSchema, hammingDistance, type Ban } from '../src/bans.js';
import { HttpError } from '../src/errors.js';

const TABLE = 'kit-bans';
const NOW = new Date('2030-01-01T00:00:00.000Z');
const clock = () => NOW;

let backends: DynamoBackend;
let doc: ReturnType<typeof dynamoDocumentClient>;
let bans: BanList;

beforeAll(async () => {
  backends = await startTestBackends({ prefix: 'kit-bans-', s3: false, dynamo: { table: TABLE } });
  doc = backends.doc;
  bans = new BanList(doc, TABLE, clock);
});
afterAll(async () => {
  await backends?.close();
});

/** A deterministic pseudo-random fingerprint per seed (tests share one table). */
function print(seed: number): string {
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  let out = '';
  for (let i = 0; i < 4; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out += (x & 0xffff).toString(16).padStart(4, '0');
  }
  return out;
}

/** `fp` with the given bits (0 = most significant) flipped. */
function flip(fp: string, bits: number[]): string {
  let value = BigInt(`0x${fp}`);
  for (const bit of bits) value ^= 1n << BigInt(63 - bit);
  return value.toString(16).padStart(16, '0');
}

let seed = 1000;
const fresh = () => print(++seed);
const ban = (fingerprint: string, uploadId = `upload-${fingerprint}`) => ({ fingerprint, uploadId, reason: 'moderation' as const, by: 'moderate' });
const raw = async (pk: string, sk: string) => (await doc.send(new GetCommand({ TableName: TABLE, Key: { pk, sk }, ConsistentRead: true }))).Item;
const bandKey = (fp: string, b: number) => ({ pk: `BANBAND#${b}#${fp.slice(b * 4, b * 4 + 4)}`, sk: 'BANBAND' });
const band = (fp: string, b: number) => raw(bandKey(fp, b).pk, 'BANBAND');
/** Writes (ADD) or takes out (DELETE) a fingerprint's band entries behind the BanList's back. */
async function index(action: 'ADD' | 'DELETE', fp: string): Promise<void> {
  for (let b = 0; b < 4; b++) {
    await doc.send(new UpdateCommand({ TableName: TABLE, Key: bandKey(fp, b), UpdateExpression: `${action} fingerprints :fp`, ExpressionAttributeValues: { ':fp': new Set([fp]) } }));
  }
}

async function clear(): Promise<void> {
  for (let page = await bans.list({ limit: 100 }); page.items.length > 0; page = await bans.list({ limit: 100 })) {
    for (const item of page.items) await bans.remove(item.id);
  }
}

describe('fingerprints', () => {
  it('counts differing bits', () => {
    expect(hammingDistance('0000000000000000', '0000000000000000')).toBe(0);
    expect(hammingDistance('0000000000000000', 'ffffffffffffffff')).toBe(64);
    expect(hammingDistance('8000000000000001', '0000000000000000')).toBe(2);
    expect(hammingDistance('00000000ffffffff', 'ffffffff00000000')).toBe(64);
    const fp = print(1);
    for (let k = 0; k <= 8; k++) expect(hammingDistance(fp, flip(fp, Array.from({ length: k }, (_, i) => i * 7)))).toBe(k);
  });

  it('accepts 16 lowercase hex digits only', () => {
    expect(fingerprintSchema.safeParse('0123456789abcdef').success).toBe(true);
    for (const bad of ['0123456789ABCDEF', '0123456789abcde', '0123456789abcdef0', 'g123456789abcdef', '']) expect(fingerprintSchema.safeParse(bad).success).toBe(false);
  });

  it('reads 4 band items within distance 3 and 68 within 7, all distinct', () => {
    const fp = print(2);
    expect(bandKeysWithin(fp, 3)).toEqual([0, 1, 2, 3].map((b) => ({ pk: `BANBAND#${b}#${fp.slice(b * 4, b * 4 + 4)}`, sk: 'BANBAND' })));
    const wide = bandKeysWithin(fp, 7);
    expect(wide).toHaveLength(68);
    expect(new Set(wide.map((k) => k.pk)).size).toBe(68);
  });
});

describe('BanList', () => {
  it('adds a ban as its fingerprint, indexed in its 4 bands', async () => {
    const fp = fresh();
    const labels = [{ name: 'Porn', confidence: 97.5 }];
    const added = await bans.add({ ...ban(fp), labels });
    const expected: Ban = { id: fp, fingerprint: fp, uploadId: `upload-${fp}`, reason: 'moderation', by: 'moderate', createdAt: NOW.toISOString(), labels };
    expect(added).toEqual(expected);
    expect(await bans.get(fp)).toEqual(expected);
    for (let b = 0; b < 4; b++) expect((await band(fp, b))?.['fingerprints']).toEqual(new Set([fp]));
    expect(await bans.match(fp, 0)).toEqual(expected);
  });

  it('adds once: banning the same picture again returns the first ban', async () => {
    const fp = fresh();
    const first = await bans.add(ban(fp, 'upload-first'));
    const later = new BanList(doc, TABLE, () => new Date(NOW.getTime() + 60_000));
    expect(await later.add({ fingerprint: fp, uploadId: 'upload-second', reason: 'manual', by: 'mod-1' })).toEqual(first);
    expect(await bans.get(fp)).toEqual(first);
    expect((await band(fp, 2))?.['fingerprints']).toEqual(new Set([fp]));
  });

  it('refuses a malformed ban', async () => {
    await expect(bans.add(ban('NOT-A-FINGERPRINT'))).rejects.toThrow(/16 lowercase hex/);
    await expect(bans.add({ ...ban(fresh()), reason: 'whim' as 'manual' })).rejects.toThrow();
  });

  it('matches within the distance asked, however the differing bits fall across the bands', async () => {
    // Every spread of k differing bits over the 4 bands that matters: all in one band, spread evenly, one per band...
    const spreads: Record<number, number[][]> = {
      0: [[0, 0, 0, 0]],
      1: [[1, 0, 0, 0], [0, 0, 0, 1]],
      3: [[1, 1, 1, 0], [3, 0, 0, 0], [0, 2, 0, 1]],
      4: [[1, 1, 1, 1], [4, 0, 0, 0], [2, 2, 0, 0]],
      7: [[2, 2, 2, 1], [1, 2, 2, 2], [7, 0, 0, 0], [4, 3, 0, 0]],
    };
    for (const [k, layouts] of Object.entries(spreads)) {
      for (const layout of layouts) {
        const banned = fresh();
        await bans.add(ban(banned));
        // Bits within each band at varied offsets (first, last, middle).
        const bits = layout.flatMap((count, b) => Array.from({ length: count }, (_, i) => b * 16 + ((i * 5 + b * 3) % 16)));
        const query = flip(banned, bits);
        const distance = Number(k);
        expect(hammingDistance(query, banned)).toBe(distance);
        for (const max of [0, 1, 2, 3, 4, 5, 6, 7]) {
          const found = await bans.match(query, max);
          expect([layout, max, found?.id]).toEqual([layout, max, distance <= max ? banned : undefined]);
        }
        await bans.remove(banned);
      }
    }
  });

  it('does not match beyond 7, nor anything far', async () => {
    const banned = fresh();
    await bans.add(ban(banned));
    expect(await bans.match(flip(banned, [0, 1, 16, 17, 32, 33, 48, 49]), 7)).toBeUndefined();
    expect(await bans.match(flip(banned, [0, 1, 2, 3, 4, 5, 6, 7]), 7)).toBeUndefined();
    expect(await bans.match(fresh(), 7)).toBeUndefined();
    await bans.remove(banned);
  });

  it('returns the nearest of several bans in range', async () => {
    const query = fresh();
    const far = flip(query, [0, 20, 40, 60, 63]);
    const near = flip(query, [5, 21]);
    const farther = flip(query, [1, 2, 3, 17, 33, 49]);
    for (const fp of [far, farther, near]) await bans.add(ban(fp));
    expect((await bans.match(query, 7))?.id).toBe(near);
    expect((await bans.match(query, 4))?.id).toBe(near);
    await bans.remove(near);
    expect((await bans.match(query, 7))?.id).toBe(far);
    expect(await bans.match(query, 4)).toBeUndefined();
    for (const fp of [far, farther]) await bans.remove(fp);
  });

  it('refuses a malformed query', async () => {
    await expect(bans.match('xyz', 3)).rejects.toThrow();
    await expect(bans.match(fresh(), 8)).rejects.toThrow();
    await expect(bans.match(fresh(), -1)).rejects.toThrow();
    await expect(bans.match(fresh(), 2.5)).rejects.toThrow();
  });

  it('removes a ban and its index entries, keeping the other bans of a shared band', async () => {
    const fp = fresh();
    const sibling = flip(fp, [40, 50]); // the same bands 0 and 1
    await bans.add(ban(fp));
    await bans.add(ban(sibling));
    expect((await band(fp, 0))?.['fingerprints']).toEqual(new Set([fp, sibling]));

    expect(await bans.remove(fp)).toBe(true);
    expect(await bans.get(fp)).toBeUndefined();
    expect(await bans.match(fp, 0)).toBeUndefined();
    expect((await bans.match(fp, 2))?.id).toBe(sibling);
    expect((await band(fp, 0))?.['fingerprints']).toEqual(new Set([sibling]));
    // Emptied band items are deleted, not left behind.
    expect(await band(fp, 2)).toBeUndefined();
    expect(await band(fp, 3)).toBeUndefined();

    expect(await bans.remove(fp)).toBe(false);
    expect(await bans.remove('not-a-fingerprint')).toBe(false);
    expect(await band(fp, 2)).toBeUndefined();
    await bans.remove(sibling);
    expect(await band(fp, 0)).toBeUndefined();
  });

  it('a crash between the writes of an add leaves a ban that is listed and removable, and a retry makes it match', async () => {
    const fp = fresh();
    // The BAN item written, the process gone before the bands.
    await bans.add(ban(fp));
    await index('DELETE', fp);
    expect(await bans.get(fp)).toBeDefined();
    expect(await bans.match(fp, 7)).toBeUndefined();

    await bans.add(ban(fp)); // the redelivery's retry
    expect((await bans.match(fp, 7))?.id).toBe(fp);

    // The same crash, then a removal instead of a retry.
    await index('DELETE', fp);
    expect(await bans.remove(fp)).toBe(true);
    expect(await bans.get(fp)).toBeUndefined();
  });

  it('a crash between the writes of a removal leaves a listed ban that a retried removal lifts', async () => {
    const fp = fresh();
    await bans.add(ban(fp));
    // Out of the bands, the process gone before the BAN item.
    await index('DELETE', fp);
    expect(await bans.match(fp, 7)).toBeUndefined();
    expect(await bans.get(fp)).toBeDefined();
    expect(await bans.remove(fp)).toBe(true);
    expect(await bans.get(fp)).toBeUndefined();
  });

  it('skips an index entry whose ban is gone, and a removal clears it', async () => {
    const fp = fresh();
    await index('ADD', fp);
    expect(await bans.match(fp, 3)).toBeUndefined();
    expect(await bans.remove(fp)).toBe(false);
    for (let b = 0; b < 4; b++) expect(await band(fp, b)).toBeUndefined();
  });

  it('lists the bans a page at a time', async () => {
    await clear();
    const prints = [fresh(), fresh(), fresh(), fresh(), fresh()].sort();
    for (const fp of prints) await bans.add(ban(fp));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await bans.list({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((b) => b.id));
      cursor = page.cursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(prints);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect((await bans.list({ limit: 10 })).items.map((b) => b.id)).toEqual(prints);
    expect((await bans.list({ limit: 10 })).cursor).toBeUndefined();
  });

  it('refuses a cursor it did not issue', async () => {
    const forged = [
      'not base64 json',
      Buffer.from(JSON.stringify({ pk: 'PLAYER#alice', sk: 'PROFILE' })).toString('base64url'),
      Buffer.from(JSON.stringify({ pk: 'BANS', sk: 'BAN#0000000000000000', extra: 1 })).toString('base64url'),
    ];
    for (const cursor of forged) {
      const err = await bans.list({ limit: 2, cursor }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpError);
      expect(err).toMatchObject({ status: 400, code: 'invalid_cursor' });
    }
  });
});

describe('BanList against a DynamoDB that leaves keys unprocessed', () => {
  /** A document client whose BatchGetItem answers at most `perCall` keys per call; the rest come back unprocessed. */
  function throttled(perCall: number, items: Record<string, Set<string>>) {
    const batches: number[] = [];
    const fake = {
      send: async (command: unknown) => {
        if (command instanceof BatchGetCommand) {
          const keys = command.input.RequestItems![TABLE]!.Keys!;
          batches.push(keys.length);
          const served = keys.slice(0, perCall);
          const rest = keys.slice(perCall);
          return {
            Responses: { [TABLE]: served.flatMap((k) => (items[k['pk'] as string] ? [{ fingerprints: items[k['pk'] as string] }] : [])) },
            UnprocessedKeys: rest.length > 0 ? { [TABLE]: { Keys: rest } } : {},
          };
        }
        if (command instanceof GetCommand) {
          const sk = command.input.Key!['sk'] as string;
          const fp = sk.slice(4);
          return { Item: { pk: 'BANS', sk, ...ban(fp), id: fp, createdAt: NOW.toISOString() } };
        }
        throw new Error(`unexpected ${String(command)}`);
      },
    } as unknown as DynamoDBDocumentClient;
    return { list: new BanList(fake, TABLE, clock), batches };
  }

  it('reads the unprocessed keys again until every one is read', async () => {
    const banned = print(3);
    const query = flip(banned, [62]); // found only through band 3's neighbours: the last keys of the batch
    const { list, batches } = throttled(20, { [`BANBAND#3#${banned.slice(12)}`]: new Set([banned]) });
    expect((await list.match(query, 7))?.id).toBe(banned);
    expect(batches).toEqual([68, 48, 28, 8]);
  });

  describe('with no progress', () => {
    beforeEach(() => void vi.useFakeTimers());
    afterEach(() => void vi.useRealTimers());

    it('gives up after a bounded number of attempts', async () => {
      const { list, batches } = throttled(0, {});
      const outcome = list.match(print(4), 3).catch((e: unknown) => e);
      await vi.runAllTimersAsync();
      expect(await outcome).toBeInstanceOf(Error);
      expect(batches).toEqual(Array(8).fill(4));
    });
  });
});
