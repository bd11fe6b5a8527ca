import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derivePublicKey, generateVapidKeys, validateVapidKeys, VapidKeyError } from '../src/index.js';

// The application server key pair from RFC 8291, appendix A.
const rfc8291 = {
  privateKey: 'yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw',
  publicKey: 'BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8',
};

describe('VAPID keys', () => {
  it('generates a P-256 pair in the web-push encoding', () => {
    const keys = generateVapidKeys();
    const publicKey = Buffer.from(keys.publicKey, 'base64url');
    expect(publicKey).toHaveLength(65);
    expect(publicKey[0]).toBe(0x04);
    expect(Buffer.from(keys.privateKey, 'base64url')).toHaveLength(32);
    expect(keys.publicKey).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(validateVapidKeys(keys)).toEqual(keys);
    expect(generateVapidKeys().privateKey).not.toBe(keys.privateKey);
  });

  it('derives the public key from the private key', () => {
    expect(derivePublicKey(rfc8291.privateKey)).toBe(rfc8291.publicKey);
    const keys = generateVapidKeys();
    expect(derivePublicKey(keys.privateKey)).toBe(keys.publicKey);
    // Cross-checked against a JWK import of the same key.
    const point = Buffer.from(keys.publicKey, 'base64url');
    const jwk = { kty: 'EC', crv: 'P-256', d: keys.privateKey, x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
    const exported = createPublicKey(createPrivateKey({ key: jwk, format: 'jwk' })).export({ format: 'jwk' });
    expect(exported).toMatchObject({ x: jwk.x, y: jwk.y });
  });

  it('detects a public key that belongs to another private key', () => {
    const a = generateVapidKeys();
    const b = generateVapidKeys();
    expect(() => validateVapidKeys({ publicKey: a.publicKey, privateKey: b.privateKey })).toThrow(/does not belong to the private key/);
    expect(() => validateVapidKeys({ publicKey: a.publicKey, privateKey: b.privateKey })).toThrow(VapidKeyError);
  });

  it.each([
    [{ publicKey: rfc8291.publicKey.slice(0, -4), privateKey: rfc8291.privateKey }, /public key must be 65 bytes/],
    [{ publicKey: rfc8291.publicKey, privateKey: rfc8291.privateKey.slice(0, -2) }, /private key must be 32 bytes/],
    [{ publicKey: rfc8291.publicKey.replace(/_/g, '/'), privateKey: rfc8291.privateKey }, /public key must be 65 bytes of base64url/],
    [{ publicKey: rfc8291.publicKey, privateKey: `${rfc8291.privateKey}=` }, /private key must be 32 bytes of base64url/],
    [{ publicKey: `Aw${rfc8291.publicKey.slice(2)}`, privateKey: rfc8291.privateKey }, /uncompressed P-256 point/],
    [{ publicKey: rfc8291.publicKey, privateKey: Buffer.alloc(32).toString('base64url') }, /not a valid P-256 private key/],
    [{ publicKey: rfc8291.publicKey, privateKey: Buffer.alloc(32, 0xff).toString('base64url') }, /not a valid P-256 private key/],
  ])('refuses malformed keys (%#)', (keys, message) => {
    expect(() => validateVapidKeys(keys)).toThrow(message);
  });
});
