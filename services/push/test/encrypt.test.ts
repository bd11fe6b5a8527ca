/**
 * Our aes128gcm encryption (src/encrypt.ts) against implementations we did not write: the RFC 8291
 * worked example byte for byte, http_ece's decrypt (the library web-push and web-push-testing use)
 * across plaintext sizes and trailing bytes that padding removal could mistake, and
 * web-push-testing as the real peer, which verifies the VAPID header and decrypts each message.
 */
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebPushTesting, type WebPushTesting } from '@avatar-pipeline/local';
import { generateVapidKeys } from '@avatar-pipeline/webpush';
import { MAX_PLAINTEXT_BYTES, PushEncryptor, RECORD_SIZE, encryptWith } from '../src/encrypt.js';
import { MAX_PAYLOAD_BYTES, PushSender, VapidSigner, createPushAgent } from '../src/index.js';

interface Ece {
  decrypt(body: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: Buffer }): Buffer;
}
// http_ece as web-push itself resolves it (a dependency of web-push, not of ours).
const require = createRequire(import.meta.url);
const ece = createRequire(require.resolve('web-push'))('http_ece') as Ece;

const b64 = (text: string) => Buffer.from(text, 'base64url');

/** A browser's subscription keys, with the private half kept to decrypt. */
function userAgent() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16);
  return { ecdh, auth, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } };
}

describe('aes128gcm encryption', () => {
  it('reproduces the RFC 8291 Appendix A example byte for byte', () => {
    const sender = createECDH('prime256v1');
    sender.setPrivateKey(b64('yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw'));
    const publicKey = sender.getPublicKey();
    expect(publicKey.toString('base64url')).toBe('BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8');
    const body = encryptWith(
      { ecdh: sender, publicKey, salt: b64('DGv6ra1nlYgDCS1FRnbzlw') },
      { p256dh: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4', auth: 'BTBZMqHH6r4Tts7J_aSIgg' },
      'When I grow up, I want to be a watermelon',
    );
    expect(body.toString('base64url')).toBe(
      'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
    );
    // ...and the user agent's private key from the example opens it with http_ece.
    const ua = createECDH('prime256v1');
    ua.setPrivateKey(b64('q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94'));
    expect(ece.decrypt(body, { version: 'aes128gcm', privateKey: ua, authSecret: b64('BTBZMqHH6r4Tts7J_aSIgg') }).toString()).toBe(
      'When I grow up, I want to be a watermelon',
    );
  });

  const sizes = [0, 1, 15, 16, 17, 732, MAX_PAYLOAD_BYTES, MAX_PLAINTEXT_BYTES - 1, MAX_PLAINTEXT_BYTES];
  it.each(sizes)('writes one record http_ece decrypts: %i bytes', (size) => {
    const ua = userAgent();
    const plaintext = randomBytes(size);
    const body = new PushEncryptor().encrypt(ua.keys, plaintext);
    // Header: salt, record size 4096, key id length 65, an uncompressed point; then plaintext + delimiter + tag.
    expect(body.length).toBe(86 + size + 1 + 16);
    expect(body.readUInt32BE(16)).toBe(RECORD_SIZE);
    expect(body[20]).toBe(65);
    expect(body[21]).toBe(0x04);
    // The single record fits the declared record size (a decoder splits the body by it).
    expect(body.length - 86).toBeLessThanOrEqual(RECORD_SIZE);
    expect(ece.decrypt(body, { version: 'aes128gcm', privateKey: ua.ecdh, authSecret: ua.auth })).toEqual(plaintext);
  });

  it('fills a 4096-byte message exactly with the longest plaintext, and refuses one byte more', () => {
    const ua = userAgent();
    expect(MAX_PLAINTEXT_BYTES).toBe(3993);
    expect(MAX_PAYLOAD_BYTES).toBeLessThanOrEqual(MAX_PLAINTEXT_BYTES);
    expect(new PushEncryptor().encrypt(ua.keys, Buffer.alloc(MAX_PLAINTEXT_BYTES, 0x61)).length).toBe(4096);
    expect(() => new PushEncryptor().encrypt(ua.keys, Buffer.alloc(MAX_PLAINTEXT_BYTES + 1))).toThrow(RangeError);
  });

  it.each([
    ['trailing zeros', Buffer.from([0x7b, 0x7d, 0x00, 0x00])],
    ['a trailing 0x02', Buffer.from([0x7b, 0x7d, 0x02])],
    ['a trailing 0x01', Buffer.from([0x7b, 0x7d, 0x01])],
    ['only zeros', Buffer.alloc(40)],
  ])('keeps a plaintext with %s intact (the delimiter, not padding, ends it)', (_, plaintext) => {
    const ua = userAgent();
    const body = new PushEncryptor().encrypt(ua.keys, plaintext);
    expect(ece.decrypt(body, { version: 'aes128gcm', privateKey: ua.ecdh, authSecret: ua.auth })).toEqual(plaintext);
  });

  it('sends a string as UTF-8, multi-byte characters included', () => {
    const ua = userAgent();
    const text = JSON.stringify({ title: 'Ton avatar est prêt ✅', body: '頭像已就緒 🎉'.repeat(20) });
    const body = new PushEncryptor().encrypt(ua.keys, text);
    expect(body.length).toBe(86 + Buffer.byteLength(text) + 17);
    expect(ece.decrypt(body, { version: 'aes128gcm', privateKey: ua.ecdh, authSecret: ua.auth }).toString('utf8')).toBe(text);
  });

  it('uses a new key pair and salt for every message', () => {
    const ua = userAgent();
    const encryptor = new PushEncryptor();
    const bodies = Array.from({ length: 3 }, () => encryptor.encrypt(ua.keys, 'same payload'));
    expect(new Set(bodies.map((b) => b.subarray(0, 16).toString('hex'))).size).toBe(3);
    expect(new Set(bodies.map((b) => b.subarray(21, 86).toString('hex'))).size).toBe(3);
    for (const body of bodies) expect(ece.decrypt(body, { version: 'aes128gcm', privateKey: ua.ecdh, authSecret: ua.auth }).toString()).toBe('same payload');
  });

  it('refuses keys nothing can be encrypted for', () => {
    const { keys } = userAgent();
    const encryptor = new PushEncryptor();
    const notOnCurve = Buffer.concat([Buffer.from([0x04]), Buffer.alloc(64, 1)]).toString('base64url');
    expect(() => encryptor.encrypt(undefined, 'x')).toThrow(/no p256dh and auth/);
    expect(() => encryptor.encrypt({ ...keys, p256dh: keys.p256dh.slice(0, 80) }, 'x')).toThrow(/not an uncompressed P-256 point/);
    expect(() => encryptor.encrypt({ ...keys, p256dh: notOnCurve }, 'x')).toThrow();
    expect(() => encryptor.encrypt({ ...keys, auth: randomBytes(15).toString('base64url') }, 'x')).toThrow(/shorter than 16 bytes/);
    // The encryptor still works after a refusal.
    expect(encryptor.encrypt(keys, 'x').length).toBe(86 + 1 + 17);
  });
});

describe('PushSender through web-push-testing (VAPID verified, every message decrypted)', () => {
  let emulator: WebPushTesting;
  const keys = generateVapidKeys();
  const dispatcher = createPushAgent({ allowHttp: true, connections: 4, attemptTimeoutMs: 10_000 });
  const sender = new PushSender({ dispatcher, vapid: new VapidSigner({ keys, subject: 'mailto:ops@example.com' }), hostConcurrency: 4, maxAttempts: 1, attemptTimeoutMs: 10_000 });

  beforeAll(async () => {
    emulator = await startWebPushTesting();
  });
  afterAll(async () => {
    await dispatcher.close();
    await emulator?.close();
  });

  it('delivers payloads from one byte to the longest that fits, ASCII and multi-byte', async () => {
    const payloads = ['x', JSON.stringify({ title: 'Ton avatar est prêt ✅', body: '頭像已就緒 🎉' }), 'a'.repeat(MAX_PAYLOAD_BYTES), 'é'.repeat((MAX_PLAINTEXT_BYTES - 1) / 2) + 'z'];
    expect(Buffer.byteLength(payloads[3]!)).toBe(MAX_PLAINTEXT_BYTES);
    const { subscription, clientHash } = await emulator.subscribe(keys.publicKey);
    for (const payload of payloads) {
      const result = await sender.send(subscription, { payload, ttlSeconds: 60, urgency: 'normal', topic: 'sizes', deadline: Date.now() + 30_000 });
      expect(result, emulator.output().slice(-500)).toEqual({ outcome: 'sent', status: 201, attempts: 1 });
    }
    expect(await emulator.notifications(clientHash)).toEqual(payloads);
  });

  it('sends many messages concurrently to many subscriptions, each readable by its own device only', async () => {
    const devices = await Promise.all(Array.from({ length: 8 }, () => emulator.subscribe(keys.publicKey)));
    const sends = devices.flatMap((device, d) =>
      [0, 1, 2].map((n) => sender.send(device.subscription, { payload: `device ${d} message ${n}`, ttlSeconds: 60, urgency: 'high', deadline: Date.now() + 30_000 })),
    );
    for (const result of await Promise.all(sends)) expect(result.outcome).toBe('sent');
    for (const [d, device] of devices.entries()) {
      expect((await emulator.notifications(device.clientHash)).sort()).toEqual([0, 1, 2].map((n) => `device ${d} message ${n}`));
    }
  });

  it('rejects a subscription whose keys cannot be encrypted for, without sending', async () => {
    const { subscription } = await emulator.subscribe(keys.publicKey);
    const result = await sender.send({ ...subscription, keys: { ...subscription.keys, auth: 'c2hvcnQ' } }, { payload: 'x', ttlSeconds: 60, urgency: 'normal', deadline: Date.now() + 30_000 });
    expect(result).toMatchObject({ outcome: 'rejected', attempts: 0, detail: expect.stringMatching(/^cannot encrypt for this subscription: /) });
  });
});
