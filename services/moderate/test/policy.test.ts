import { describe, expect, it } from 'vitest';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { moderateEnv, moderationPolicy } from '../src/config.js';
import { decide, defaultPolicy, policyFloor, type Policy } from '../src/policy.js';

const label = (name: string, confidence: number, parent?: string) => ({ name, confidence, ...(parent ? { parent } : {}) });

describe('moderation policy', () => {
  it('approves when no label is listed, whatever its confidence', () => {
    expect(decide([], defaultPolicy)).toEqual({ outcome: 'approved' });
    const swimwear = [label('Swimwear or Underwear', 99), label('Female Swimwear or Underwear', 99, 'Swimwear or Underwear')];
    expect(decide(swimwear, defaultPolicy)).toEqual({ outcome: 'approved' });
    const gaming = [label('Violence', 97), label('Weapons', 97, 'Violence'), label('Alcohol', 90), label('Alcoholic Beverages', 90, 'Alcohol')];
    expect(decide(gaming, defaultPolicy)).toEqual({ outcome: 'approved' });
  });

  it('blocks a listed label at exactly its threshold, not below', () => {
    const policy: Policy = { Explicit: 60 };
    expect(decide([label('Explicit', 59.99)], policy).outcome).toBe('approved');
    const at = decide([label('Explicit', 60)], policy);
    expect(at).toMatchObject({ outcome: 'rejected', reason: { code: 'moderation' }, deciding: [label('Explicit', 60)] });
  });

  it('blocks a child of a listed label (parent matching) with the child confidence', () => {
    const policy: Policy = { Explicit: 80 };
    const child = label('Explicit Nudity', 85, 'Explicit');
    expect(decide([child], policy)).toMatchObject({ outcome: 'rejected', deciding: [child] });
    expect(decide([label('Explicit Nudity', 79, 'Explicit')], policy).outcome).toBe('approved');
  });

  it('blocks a third-level label through its top-level category', () => {
    const l3 = label('Exposed Male Genitalia', 91, 'Explicit Nudity');
    expect(decide([l3], { Explicit: 60 })).toMatchObject({ outcome: 'rejected', deciding: [l3] });
    const gore = label('Blood & Gore', 88, 'Graphic Violence');
    expect(decide([gore], defaultPolicy)).toMatchObject({ outcome: 'rejected', deciding: [gore] });
  });

  it("applies a label's own entry before its parent's", () => {
    const policy: Policy = { 'Non-Explicit Nudity of Intimate parts and Kissing': 70, 'Kissing on the Lips': 100 };
    expect(decide([label('Kissing on the Lips', 95, 'Non-Explicit Nudity of Intimate parts and Kissing')], policy).outcome).toBe('approved');
    expect(decide([label('Implied Nudity', 95, 'Non-Explicit Nudity')], policy).outcome).toBe('rejected');
  });

  it('names every deciding label, most confident first', () => {
    const labels = [
      label('Explicit', 97.3),
      label('Explicit Nudity', 95.12, 'Explicit'),
      label('Hate Symbols', 61),
      label('Alcohol', 99),
    ];
    const decision = decide(labels, defaultPolicy);
    if (decision.outcome !== 'rejected') throw new Error('expected a rejection');
    expect(decision.deciding.map((l) => l.name)).toEqual(['Explicit', 'Explicit Nudity', 'Hate Symbols']);
    expect(decision.reason.message).toBe('the image was refused by content moderation: Explicit (97.3%), Explicit Nudity (95.1%), Hate Symbols (61.0%)');
  });

  it('reads MODERATION_POLICY as JSON, replacing the default', () => {
    const config = loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":50,"Alcohol":90}' });
    expect(moderationPolicy(config)).toEqual({ Explicit: 50, Alcohol: 90 });
    expect(moderationPolicy(loadConfig(moderateEnv, {}))).toBe(defaultPolicy);
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":150}' })).toThrow(/MODERATION_POLICY/);
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: 'Explicit=60' })).toThrow(/MODERATION_POLICY.*JSON/);
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: '["Explicit"]' })).toThrow(/MODERATION_POLICY/);
  });

  it('sends an upload to review between a label\'s review and blocking thresholds, and blocks from the blocking one', () => {
    const policy: Policy = { Explicit: { block: 80, review: 40 }, 'Hate Symbols': 60 };
    expect(decide([label('Explicit', 39.9)], policy)).toEqual({ outcome: 'approved' });
    const flagged = label('Explicit Nudity', 40, 'Explicit');
    expect(decide([flagged, label('Alcohol', 99)], policy)).toEqual({ outcome: 'review', flagged: [flagged] });
    expect(decide([label('Explicit', 80)], policy).outcome).toBe('rejected');
    // Any blocking label wins over a flagged one.
    expect(decide([label('Explicit', 50), label('Hate Symbols', 61)], policy)).toMatchObject({ outcome: 'rejected', deciding: [label('Hate Symbols', 61)] });
    // A review-only entry never blocks; flagged labels come most confident first.
    const reviewOnly: Policy = { Violence: { review: 70 }, Explicit: { review: 30 } };
    expect(decide([label('Explicit', 35), label('Weapons', 99, 'Violence')], reviewOnly)).toEqual({
      outcome: 'review',
      flagged: [label('Weapons', 99, 'Violence'), label('Explicit', 35)],
    });
  });

  it('reports labels from the lowest threshold the policy acts on', () => {
    expect(policyFloor(defaultPolicy)).toBe(60);
    expect(policyFloor({ Explicit: { block: 80, review: 25 }, 'Hate Symbols': 60 })).toBe(25);
    expect(policyFloor({})).toBe(100);
  });

  it('reads thresholds objects in MODERATION_POLICY and refuses a review band at or above its block', () => {
    const config = loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":{"block":80,"review":40},"Violence":{"review":90},"Alcohol":95}' });
    expect(moderationPolicy(config)).toEqual({ Explicit: { block: 80, review: 40 }, Violence: { review: 90 }, Alcohol: 95 });
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":{"block":40,"review":40}}' })).toThrow(/review must be below block/);
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":{}}' })).toThrow(/block, review or both/);
    expect(() => loadConfig(moderateEnv, { MODERATION_POLICY: '{"Explicit":{"block":80,"warn":10}}' })).toThrow(/MODERATION_POLICY/);
  });
});
