/**
 * Which moderation labels block an avatar. Labels use Rekognition's content moderation taxonomy
 * (model version 7, three levels); a policy lists label names at any level with the confidence
 * (0-100) from which they block. A label blocks when it, its parent or its grandparent is listed
 * and its own confidence reaches the threshold, so listing a top-level category covers all of
 * its children.
 */
import { z } from 'zod';
import type { ModerationLabel, Reason } from '@avatar-pipeline/kit';

export type Policy = Readonly<Record<string, number>>;

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

/** `MODERATION_POLICY`: a JSON object of label name to blocking confidence; it replaces the default. */
export const policySchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON object such as {"Explicit":60}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().min(1), z.number().min(0).max(100)));

export type Decision =
  | { outcome: 'approved' }
  | { outcome: 'rejected'; reason: Reason & { code: 'moderation' }; deciding: ModerationLabel[] };

/** The policy entry a label falls under (itself first, then its ancestors), if any. */
function governingThreshold(label: ModerationLabel, policy: Policy): number | undefined {
  const grandparent = label.parent ? v7TopLevelOf[label.parent] : undefined;
  for (const name of [label.name, label.parent, grandparent]) {
    if (name !== undefined && name !== '' && Object.hasOwn(policy, name)) return policy[name];
  }
  return undefined;
}

export function decide(labels: readonly ModerationLabel[], policy: Policy): Decision {
  const deciding = labels.filter((label) => {
    const threshold = governingThreshold(label, policy);
    return threshold !== undefined && label.confidence >= threshold;
  });
  if (deciding.length === 0) return { outcome: 'approved' };
  const named = [...deciding]
    .sort((a, b) => b.confidence - a.confidence)
    .map((label) => `${label.name} (${label.confidence.toFixed(1)}%)`)
    .join(', ');
  return { outcome: 'rejected', reason: { code: 'moderation', message: `the image was refused by content moderation: ${named}` }, deciding };
}
