import { readFile } from 'node:fs/promises';
import { DetectModerationLabelsCommand, RekognitionClient, type DetectModerationLabelsCommandOutput } from '@aws-sdk/client-rekognition';
import { mockClient } from 'aws-sdk-client-mock';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultLimits } from '@avatar-pipeline/imaging';
import { solidImage } from '@avatar-pipeline/imaging/hostile';
import { PermanentEventError } from '@avatar-pipeline/kit';
import { decide, defaultPolicy } from '../src/policy.js';
import { rekognitionProvider } from '../src/providers/rekognition.js';

const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

/** The shape DetectModerationLabels answers with under model 7.0: every level of a finding, each naming its parent. */
const explicitResponse: DetectModerationLabelsCommandOutput = {
  $metadata: { httpStatusCode: 200, requestId: '7f3c1c8e-1a7b-4c39-9d0e-5b1f0f1e2a61', attempts: 1, totalRetryDelay: 0 },
  ModerationModelVersion: '7.0',
  ModerationLabels: [
    { Confidence: 98.7, Name: 'Explicit', ParentName: '', TaxonomyLevel: 1 },
    { Confidence: 98.7, Name: 'Explicit Nudity', ParentName: 'Explicit', TaxonomyLevel: 2 },
    { Confidence: 97.2, Name: 'Exposed Female Nipple', ParentName: 'Explicit Nudity', TaxonomyLevel: 3 },
    { Confidence: 71.4, Name: 'Swimwear or Underwear', ParentName: '', TaxonomyLevel: 1 },
    { Confidence: 71.4, Name: 'Female Swimwear or Underwear', ParentName: 'Swimwear or Underwear', TaxonomyLevel: 2 },
  ],
  ContentTypes: [],
};

const cleanResponse: DetectModerationLabelsCommandOutput = {
  $metadata: { httpStatusCode: 200 },
  ModerationModelVersion: '7.0',
  ModerationLabels: [],
  ContentTypes: [{ Confidence: 88.1, Name: 'Illustrated' }],
};

describe('rekognition provider', () => {
  const rekognition = mockClient(RekognitionClient);
  const client = new RekognitionClient({ region: 'us-east-1' });
  const provider = rekognitionProvider({ client, minConfidence: 60, limits: defaultLimits });
  afterEach(() => rekognition.reset());

  it('asks Rekognition to read a JPEG from S3 and maps the v7 labels', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(explicitResponse);
    const image = await photo('leaf.jpg');
    const labels = await provider.moderate({ bucket: 'avatars', key: 'uploads/p-1/u', versionId: 'v42', image, format: 'jpeg', width: 960, height: 600 });

    const calls = rekognition.commandCalls(DetectModerationLabelsCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({ Image: { S3Object: { Bucket: 'avatars', Name: 'uploads/p-1/u', Version: 'v42' } }, MinConfidence: 60 });
    expect(labels).toEqual([
      { name: 'Explicit', confidence: 98.7 },
      { name: 'Explicit Nudity', parent: 'Explicit', confidence: 98.7 },
      { name: 'Exposed Female Nipple', parent: 'Explicit Nudity', confidence: 97.2 },
      { name: 'Swimwear or Underwear', confidence: 71.4 },
      { name: 'Female Swimwear or Underwear', parent: 'Swimwear or Underwear', confidence: 71.4 },
    ]);
    const decision = decide(labels, defaultPolicy);
    expect(decision).toMatchObject({ outcome: 'rejected', reason: { code: 'moderation' } });
    if (decision.outcome === 'rejected') expect(decision.deciding.map((l) => l.name)).toEqual(['Explicit', 'Explicit Nudity', 'Exposed Female Nipple']);
  });

  it('reads a PNG from S3 without a version when the bucket has none', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    const labels = await provider.moderate({ bucket: 'avatars', key: 'uploads/p-1/u', image: await photo('path.png'), format: 'png', width: 800, height: 500 });
    expect(labels).toEqual([]);
    expect(rekognition.commandCalls(DetectModerationLabelsCommand)[0]!.args[0].input.Image).toEqual({ S3Object: { Bucket: 'avatars', Name: 'uploads/p-1/u' } });
  });

  it('sends a WebP as JPEG bytes, since Rekognition reads only JPEG and PNG', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    await provider.moderate({ bucket: 'avatars', key: 'uploads/p-1/u', image: await photo('autumn.webp'), format: 'webp', width: 900, height: 563 });
    const input = rekognition.commandCalls(DetectModerationLabelsCommand)[0]!.args[0].input;
    expect(input.MinConfidence).toBe(60);
    expect(input.Image?.S3Object).toBeUndefined();
    const bytes = input.Image?.Bytes;
    if (!bytes) throw new Error('expected image bytes');
    expect(bytes.length).toBeLessThanOrEqual(5 * 1024 * 1024);
    const meta = await sharp(bytes).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 900, height: 563 });
  });

  it('enlarges an image under 80 pixels a side and pads a strip that cannot be enlarged', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    await provider.moderate({ bucket: 'avatars', key: 'k', image: await solidImage(40, 60, 'png'), format: 'png', width: 40, height: 60 });
    await provider.moderate({ bucket: 'avatars', key: 'k', image: await solidImage(4000, 40, 'jpeg'), format: 'jpeg', width: 4000, height: 40 });
    const sizes = await Promise.all(
      rekognition.commandCalls(DetectModerationLabelsCommand).map(async (call) => {
        const meta = await sharp(call.args[0].input.Image!.Bytes!).metadata();
        return [meta.format, meta.width, meta.height];
      }),
    );
    expect(sizes).toEqual([
      ['jpeg', 80, 120],
      // 4000x40 scaled to 1920 wide is 19 high: padded to the 80-pixel minimum.
      ['jpeg', 1920, 80],
    ]);
  });

  it('turns a refusal of the image into a permanent error and lets throttling be retried', async () => {
    const refusal = Object.assign(new Error('Request has invalid image format'), { name: 'InvalidImageFormatException' });
    rekognition.on(DetectModerationLabelsCommand).rejectsOnce(refusal).rejectsOnce(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    const input = { bucket: 'avatars', key: 'k', image: await photo('leaf.jpg'), format: 'jpeg' as const, width: 960, height: 600 };
    await expect(provider.moderate(input)).rejects.toBeInstanceOf(PermanentEventError);
    await expect(provider.moderate(input)).rejects.toThrow('slow down');
  });
});
