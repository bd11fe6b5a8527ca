/**
 * Which moderation labels block an avatar, and which send it to a moderator. Labels use
 * Rekognition's content moderation taxonomy (model version 7, three levels); a policy lists label
 * names at any level with the confidence (0-100) from which they block, and optionally a lower one
 * from which a person decides (the review band). A label falls under the entry of itself, else its
 * parent, else its grandparent, so listing a top-level category covers all of its children.
 */
import { z } from 'zod';
import type { ModerationLabel, Reason } from '@avatar-pipeline/kit/events';

/** From `block` a label blocks; from `review` (below `block`) the upload waits for a moderator. */
export interface Thresholds {
  block?: number | undefined;
  review?: number | undefined;
}

/** Label name → its blocking confidence, or its thresholds. */
export type Policy = Readonly<Record<string, number | Thresholds>>;

const thresholdsOf = (entry: number | Thresholds): Thresholds => (typeof entry === 'number' ? { block: entry } : entry);

/**
 * Avatars are public to every player: block sexual content, graphic violence, disturbing imagery
 * and hate symbols; allow what games and profile photos commonly show (weapons, swimwear,
 * alcohol, tobacco, gambling, rude gestures). Suggestive nudity needs more certainty than
 * explicit content, which blocks early.
 */
export const defaultPolicy: Policy = {
  Explicit: 60,
  'Non-Explicit Nudity of Intimate parts and Kissing': 70,
  'Graphic Violence': 80,
  'Visually Disturbing': 80,
  'Hate Symbols': 60,
};

/**
 * Second-level (L2) labels of taxonomy v7 and their top-level (L1) parent. A response names only
 * the immediate parent of each label, so this fills in the grandparent of third-level labels.
 */
const v7TopLevelOf: Readonly<Record<string, string>> = {
  'Explicit Nudity': 'Explicit',
  'Explicit Sexual Activity': 'Explicit',
  'Sex Toys': 'Explicit',
  'Non-Explicit Nudity': 'Non-Explicit Nudity of Intimate parts and Kissing',
  'Obstructed Intimate Parts': 'Non-Explicit Nudity of Intimate parts and Kissing',
  'Kissing on the Lips': 'Non-Explicit Nudity of Intimate parts and Kissing',
  'Female Swimwear or Underwear': 'Swimwear or Underwear',
  'Male Swimwear or Underwear': 'Swimwear or Underwear',
  Weapons: 'Violence',
  'Graphic Violence': 'Violence',
  'Death and Emaciation': 'Visually Disturbing',
  Crashes: 'Visually Disturbing',
  Products: 'Drugs & Tobacco',
  'Drug & Tobacco Paraphernalia & Use': 'Drugs & Tobacco',
  'Alcohol Use': 'Alcohol',
  'Alcoholic Beverages': 'Alcohol',
  'Middle Finger': 'Rude Gestures',
  Gambling: 'Gambling',
  'Nazi Party': 'Hate Symbols',
  'White Supremacy': 'Hate Symbols',
  Extremist: 'Hate Symbols',
};

const confidence = z.number().min(0).max(100);
const thresholdsSchema = z
  .strictObject({ block: confidence.optional(), review: confidence.optional() })
  .refine((t) => t.block !== undefined || t.review !== undefined, 'set block, review or both')
  .refine((t) => t.block === undefined || t.review === undefined || t.review < t.block, 'review must be below block');

/**
 * `MODERATION_POLICY`: a JSON object of label name to its blocking confidence, or to
 * `{"block": n, "review": m}` (m < n; either may be left out); it replaces the default.
 */
export const policySchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON object such as {"Explicit":60} or {"Explicit":{"block":80,"review":40}}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().min(1), z.union([confidence, thresholdsSchema])));

export type Decision =
  | { outcome: 'approved' }
  /** A label reached its review threshold and none its blocking one: a moderator decides. */
  | { outcome: 'review'; flagged: ModerationLabel[] }
  | { outcome: 'rejected'; reason: Reason & { code: 'moderation' }; deciding: ModerationLabel[] };

/** The policy entry a label falls under (itself first, then its ancestors), if any. */
function governingThresholds(label: ModerationLabel, policy: Policy): Thresholds | undefined {
  const grandparent = label.parent ? v7TopLevelOf[label.parent] : undefined;
  for (const name of [label.name, label.parent, grandparent]) {
    const entry = name !== undefined && name !== '' && Object.hasOwn(policy, name) ? policy[name] : undefined;
    if (entry !== undefined) return thresholdsOf(entry);
  }
  return undefined;
}

/** The lowest confidence the policy acts on: providers must report labels from there. */
export function policyFloor(policy: Policy): number {
  const values = Object.values(policy).flatMap((entry) => {
    const { block, review } = thresholdsOf(entry);
    return [block, review].filter((v) => v !== undefined);
  });
  return Math.min(100, ...values);
}

const byConfidence = (labels: readonly ModerationLabel[]) => [...labels].sort((a, b) => b.confidence - a.confidence);

export function decide(labels: readonly ModerationLabel[], policy: Policy): Decision {
  const reaching = (level: keyof Thresholds) =>
    labels.filter((label) => {
      const threshold = governingThresholds(label, policy)?.[level];
      return threshold !== undefined && label.confidence >= threshold;
    });
  const deciding = reaching('block');
  if (deciding.length === 0) {
    const flagged = reaching('review');
    return flagged.length === 0 ? { outcome: 'approved' } : { outcome: 'review', flagged: byConfidence(flagged) };
  }
  const named = byConfidence(deciding)
    .map((label) => `${label.name} (${label.confidence.toFixed(1)}%)`)
    .join(', ');
  return { outcome: 'rejected', reason: { code: 'moderation', message: `the image was refused by content moderation: ${named}` }, deciding };
}
