/** Builds the configured provider; the nsfwjs model is loaded here, once, before serving. */
import { RekognitionClient } from '@aws-sdk/client-rekognition';
import { clientOptions } from '@avatar-pipeline/kit';
import type { ModerateConfig } from '../config.js';
import { loadNsfwjsProvider } from './nsfwjs.js';
import type { ModerationProvider } from './provider.js';
import { rekognitionProvider } from './rekognition.js';

export async function createProvider(config: ModerateConfig): Promise<ModerationProvider> {
  if (config.MODERATION_PROVIDER === 'rekognition') {
    const client = new RekognitionClient(clientOptions(config.AWS_REGION));
    return { ...rekognitionProvider({ client, minConfidence: config.MODERATION_MIN_CONFIDENCE }), close: () => client.destroy() };
  }
  return loadNsfwjsProvider({ model: config.NSFWJS_MODEL, minConfidence: config.MODERATION_MIN_CONFIDENCE });
}

export type { ModerationInput, ModerationProvider } from './provider.js';
export { loadNsfwjsProvider, labelsFromScores, nsfwClasses, nsfwjsLabelMap, type ClassScores, type NsfwjsModelName, type NsfwjsProvider } from './nsfwjs.js';
export { rekognitionLimits, rekognitionProvider } from './rekognition.js';
