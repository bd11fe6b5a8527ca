/** Builds the configured provider; the nsfwjs model is loaded here, once, before serving. */
import { RekognitionClient } from '@aws-sdk/client-rekognition';
import { clientOptions } from '@avatar-pipeline/kit/aws';
import { moderationPolicy, type ModerateConfig } from '../config.js';
import { policyFloor } from '../policy.js';
import { loadNsfwjsProvider } from './nsfwjs.js';
import type { ModerationProvider } from './provider.js';
import { rekognitionProvider } from './rekognition.js';

export async function createProvider(config: ModerateConfig): Promise<ModerationProvider> {
  // A review threshold under MODERATION_MIN_CONFIDENCE would never see its labels: report from the lower.
  const minConfidence = Math.min(config.MODERATION_MIN_CONFIDENCE, policyFloor(moderationPolicy(config)));
  if (config.MODERATION_PROVIDER === 'rekognition') {
    const client = new RekognitionClient(clientOptions(config.AWS_REGION));
    return { ...rekognitionProvider({ client, minConfidence }), close: () => client.destroy() };
  }
  return loadNsfwjsProvider({ model: config.NSFWJS_MODEL, minConfidence });
}

export type { ModerationInput, ModerationProvider } from './provider.js';
export { loadNsfwjsProvider, labelsFromScores, nsfwClasses, nsfwjsLabelMap, type ClassScores, type NsfwjsModelName, type NsfwjsProvider } from './nsfwjs.js';
export { rekognitionLimits, rekognitionProvider } from './rekognition.js';
