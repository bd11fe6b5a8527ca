import { createHash } from 'node:crypto';
import { DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { startTestBackends, type DynamoBackend } from '@avatar-pipeline/local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '@avatar-pipeline/kit/aws';
import { epochSeconds, keys } from '@avatar-pipeline/kit/table';
import { EndpointInUseError, SubscriptionStore, endpointHash, type PushSubscriptionData } from '../src/index.js';

const TABLE = 'kit-subscriptions';
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (minutes: number) => () => new Date(T0 + minutes * 60_000);

let backends: DynamoBackend;
let doc: ReturnType<typeof dynamoDocumentClient>;
let seq = 0;
/** Fresh players and endpoints per test: tests share one table. */
const nextPlayer = () => `player-${++seq}`;
const nextEndpoint = () => `https://fcm.googleapis.com/fcm/send/device-${++seq}`;
const keysFor = (n: number) => ({ p256dh: `BP256-${n}`, auth: `auth-${n}` });
const sub = (endpoint: string, n = 1, expirationTime: number | null = null): PushSubscriptionData => ({ endpoint, expirationTime, keys: keysFor(n) });

beforeAll(async () => {
  backends = await startTestBackends({ prefix: 'kit-subscriptions-', s3: false, dynamo: { table: TABLE } });
  doc = backends.doc;
});
afterAll(async () => {
  await backends?.close();
});

const raw = async (pk: string, sk: string) => (await doc.send(new GetCommand({ TableName: TABLE, Key: { pk, sk }, ConsistentRead: true }))).Item;
const rawSub = (playerId: string, endpoint: string) => raw(keys.player(playerId), keys.subscription(endpointHash(endpoint)));
const rawOwner = (endpoint: string) => raw(`PUSHEP#${endpointHash(endpoint)}`, 'OWNER');

describe('SubscriptionStore', () => {
  it('keys subscriptions by the base64url SHA-256 of the endpoint', () => {
    const endpoint = 'https://fcm.googleapis.com/fcm/send/x';
    expect(endpointHash(endpoint)).toBe(createHash('sha256').update(endpoint).digest('base64url'));
    expect(endpointHash(endpoint)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('creates a subscription, then updates it in place keeping createdAt', async () => {
    const player = nextPlayer();
    const endpoint = nextEndpoint();
    const created = await new SubscriptionStore(doc, TABLE, at(0)).upsert(player, sub(endpoint, 1), { maxDevices: 10 });
    expect(created).toEqual({
      status: 'created',
      evicted: [],
      subscription: {
        playerId: player,
        hash: endpointHash(endpoint),
        endpoint,
        keys: keysFor(1),
        expirationTime: null,
        createdAt: at(0)().toISOString(),
        updatedAt: at(0)().toISOString(),
      },
    });
    const item = await rawSub(player, endpoint);
    expect(item).toMatchObject({ playerId: player, endpoint, keys: keysFor(1), expirationTime: null });
    expect(item?.['expiresAt']).toBeUndefined();
    expect(await rawOwner(endpoint)).toMatchObject({ playerId: player });

    const expires = T0 + 3 * 24 * 3600_000 + 1;
    const updated = await new SubscriptionStore(doc, TABLE, at(5)).upsert(player, sub(endpoint, 2, expires), { maxDevices: 10 });
    expect(updated.status).toBe('updated');
    expect(updated.subscription).toMatchObject({ keys: keysFor(2), expirationTime: expires, createdAt: at(0)().toISOString(), updatedAt: at(5)().toISOString() });
    const list = await new SubscriptionStore(doc, TABLE, at(6)).list(player);
    expect(list).toEqual([updated.subscription]);
    // Kept a day past the browser's expiry, on both items.
    const ttl = Math.ceil(expires / 1000) + 24 * 3600;
    expect((await rawSub(player, endpoint))?.['expiresAt']).toBe(ttl);
    expect((await rawOwner(endpoint))?.['expiresAt']).toBe(ttl);

    await new SubscriptionStore(doc, TABLE, at(7)).upsert(player, sub(endpoint, 2, null), { maxDevices: 10 });
    expect((await rawSub(player, endpoint))?.['expiresAt']).toBeUndefined();
    expect((await rawOwner(endpoint))?.['expiresAt']).toBeUndefined();
  });

  it('lists a player\'s subscriptions oldest first, leaving out expired ones', async () => {
    const player = nextPlayer();
    const [a, b, c] = [nextEndpoint(), nextEndpoint(), nextEndpoint()];
    await new SubscriptionStore(doc, TABLE, at(2)).upsert(player, sub(a), { maxDevices: 10 });
    await new SubscriptionStore(doc, TABLE, at(1)).upsert(player, sub(b, 1, T0 + 10 * 60_000), { maxDevices: 10 });
    await new SubscriptionStore(doc, TABLE, at(3)).upsert(player, sub(c), { maxDevices: 10 });
    await new SubscriptionStore(doc, TABLE, at(3)).upsert(nextPlayer(), sub(nextEndpoint()), { maxDevices: 10 });
    expect((await new SubscriptionStore(doc, TABLE, at(4)).list(player)).map((s) => s.endpoint)).toEqual([b, a, c]);
    expect((await new SubscriptionStore(doc, TABLE, at(11)).list(player)).map((s) => s.endpoint)).toEqual([a, c]);
    expect(await new SubscriptionStore(doc, TABLE).list(nextPlayer())).toEqual([]);
  });

  it('evicts the oldest devices beyond maxDevices', async () => {
    const player = nextPlayer();
    const endpoints = [nextEndpoint(), nextEndpoint(), nextEndpoint(), nextEndpoint()];
    const results = [];
    for (const [i, endpoint] of endpoints.entries()) {
      results.push(await new SubscriptionStore(doc, TABLE, at(i)).upsert(player, sub(endpoint), { maxDevices: 3 }));
    }
    expect(results.map((r) => r.evicted)).toEqual([[], [], [], [endpointHash(endpoints[0]!)]]);
    const store = new SubscriptionStore(doc, TABLE, at(10));
    expect((await store.list(player)).map((s) => s.endpoint)).toEqual(endpoints.slice(1));
    expect(await rawOwner(endpoints[0]!)).toBeUndefined();

    // Re-subscribing the oldest device keeps it: the next oldest goes instead.
    const again = await store.upsert(player, sub(endpoints[1]!), { maxDevices: 2 });
    expect(again).toMatchObject({ status: 'updated', evicted: [endpointHash(endpoints[2]!)] });
    expect((await store.list(player)).map((s) => s.endpoint)).toEqual([endpoints[1], endpoints[3]]);
  });

  it('removes idempotently, by endpoint or hash, and only the caller\'s own', async () => {
    const [alice, bob] = [nextPlayer(), nextPlayer()];
    const [a, b] = [nextEndpoint(), nextEndpoint()];
    const store = new SubscriptionStore(doc, TABLE, at(0));
    await store.upsert(alice, sub(a), { maxDevices: 10 });
    await store.upsert(alice, sub(b), { maxDevices: 10 });

    expect(await store.remove(bob, a)).toBe(false);
    expect(await store.removeByHash(bob, endpointHash(b))).toBe(false);
    expect(await rawSub(alice, a)).toBeDefined();
    expect(await rawOwner(a)).toMatchObject({ playerId: alice });

    expect(await store.remove(alice, a)).toBe(true);
    expect(await store.remove(alice, a)).toBe(false);
    expect(await rawOwner(a)).toBeUndefined();
    expect(await store.removeByHash(alice, endpointHash(b))).toBe(true);
    expect(await store.removeByHash(alice, endpointHash(b))).toBe(false);
    expect(await store.list(alice)).toEqual([]);
  });

  it('moves an endpoint to another player who presents the same keys (the browser changed hands)', async () => {
    const [alice, bob] = [nextPlayer(), nextPlayer()];
    const endpoint = nextEndpoint();
    await new SubscriptionStore(doc, TABLE, at(0)).upsert(alice, sub(endpoint, 7), { maxDevices: 10 });
    const moved = await new SubscriptionStore(doc, TABLE, at(1)).upsert(bob, sub(endpoint, 7), { maxDevices: 10 });
    expect(moved).toMatchObject({ status: 'created', movedFrom: alice, subscription: { playerId: bob, createdAt: at(1)().toISOString() } });
    const store = new SubscriptionStore(doc, TABLE, at(2));
    expect(await store.list(alice)).toEqual([]);
    expect((await store.list(bob)).map((s) => s.endpoint)).toEqual([endpoint]);
    expect(await rawOwner(endpoint)).toMatchObject({ playerId: bob });
    // Alice's clean-up no longer touches it.
    expect(await store.remove(alice, endpoint)).toBe(false);
    expect(await rawOwner(endpoint)).toMatchObject({ playerId: bob });
  });

  it('refuses an endpoint held by another player under different keys, changing nothing', async () => {
    const [alice, mallory] = [nextPlayer(), nextPlayer()];
    const endpoint = nextEndpoint();
    const first = await new SubscriptionStore(doc, TABLE, at(0)).upsert(alice, sub(endpoint, 1), { maxDevices: 10 });
    const store = new SubscriptionStore(doc, TABLE, at(1));
    await expect(store.upsert(mallory, sub(endpoint, 2), { maxDevices: 10 })).rejects.toBeInstanceOf(EndpointInUseError);
    expect(await store.list(alice)).toEqual([first.subscription]);
    expect(await store.list(mallory)).toEqual([]);
    expect(await rawOwner(endpoint)).toMatchObject({ playerId: alice });
  });

  it('takes over a stale claim whose holder no longer has the subscription', async () => {
    const [alice, bob] = [nextPlayer(), nextPlayer()];
    const endpoint = nextEndpoint();
    await new SubscriptionStore(doc, TABLE, at(0)).upsert(alice, sub(endpoint, 1), { maxDevices: 10 });
    // As if the item had expired (TTL) while the claim lingered.
    await doc.send(new DeleteCommand({ TableName: TABLE, Key: { pk: keys.player(alice), sk: keys.subscription(endpointHash(endpoint)) } }));
    const result = await new SubscriptionStore(doc, TABLE, at(1)).upsert(bob, sub(endpoint, 2), { maxDevices: 10 });
    expect(result.status).toBe('created');
    expect(result.movedFrom).toBeUndefined();
    expect(await rawOwner(endpoint)).toMatchObject({ playerId: bob });
  });

  it('converges when the same player subscribes the same endpoint concurrently', async () => {
    const player = nextPlayer();
    const endpoint = nextEndpoint();
    const store = new SubscriptionStore(doc, TABLE, at(0));
    const results = await Promise.all([1, 2, 3].map(() => store.upsert(player, sub(endpoint), { maxDevices: 10 })));
    expect(results.filter((r) => r.status === 'created').length).toBeGreaterThanOrEqual(1);
    expect(await store.list(player)).toHaveLength(1);
    expect(epochSeconds(new Date(results[0]!.subscription.createdAt))).toBe(epochSeconds(at(0)()));
  });
});
