/**
 * The Rekognition provider with a mocked client: no AWS-compatible server here implements
 * DetectModerationLabels (moto 5.2.6, which the SQS, SSM and Cognito paths run against, answers it
 * with a 500: its Rekognition has DetectLabels, DetectText, DetectCustomLabels, CompareFaces and the
 * face search and text detection jobs only). The answers are Rekognition's documented shapes
 * (moderation model 7.0).
 */
import { DetectModerationLabelsCommand, RekognitionClient, type DetectModerationLabelsCommandOutput } from '@aws-sdk/client-rekognition';
import { mockClient } from 'aws-sdk-client-mock';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { hiddenInAlpha, solidImage } from '@avatar-pipeline/imaging/hostile';
import { PermanentEventError } from '@avatar-pipeline/kit/cloudevents';
import { decide, defaultPolicy } from '../src/policy.js';
import { rekognitionProvider } from '../src/providers/rekognition.js';
import { moderationInput, photo } from './helpers.js';

/** The images Rekognition was sent, decoded, in call order. */
const sentImages = (rekognition: ReturnType<typeof mockClient>) =>
  Promise.all(
    rekognition.commandCalls(DetectModerationLabelsCommand).map(async (call) => {
      const image = (call.args[0].input as { Image?: { Bytes?: Uint8Array; S3Object?: unknown } }).Image;
      if (!image?.Bytes || image.S3Object) throw new Error('expected image bytes');
      const { data, info } = await sharp(image.Bytes).raw().toBuffer({ resolveWithObject: true });
      const meta = await sharp(image.Bytes).metadata();
      return { format: meta.format, width: info.width, height: info.height, bytes: image.Bytes.length, data };
    }),
  );

const spreadOf = (data: Buffer) => {
  const mean = data.reduce((sum, v) => sum + v, 0) / data.length;
  return Math.sqrt(data.reduce((sum, v) => sum + (v - mean) ** 2, 0) / data.length);
};

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
  const provider = rekognitionProvider({ client, minConfidence: 60 });
  const input = (image: Buffer) => moderationInput(image, provider.viewShape);
  afterEach(() => rekognition.reset());

  it('sends the decoded views as JPEG bytes, the whole photo and the square the avatars show, and maps the v7 labels', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(explicitResponse);
    const labels = await provider.moderate(await input(await photo('leaf.jpg')));

    const calls = rekognition.commandCalls(DetectModerationLabelsCommand);
    expect(calls.map((call) => call.args[0].input.MinConfidence)).toEqual([60, 60]);
    expect((await sentImages(rekognition)).map(({ format, width, height }) => [format, width, height])).toEqual([
      ['jpeg', 960, 600],
      ['jpeg', 600, 600],
    ]);
    // Both answered the same labels: each appears once.
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

  it('never has Rekognition read the object itself: what it judges are the bytes moderate decoded', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    const labels = await provider.moderate(await input(await photo('path.png')));
    expect(labels).toEqual([]);
    const sent = await sentImages(rekognition);
    expect(sent.map(({ width, height }) => [width, height])).toEqual([[800, 500], [500, 500]]);
    for (const image of sent) expect(image.bytes).toBeLessThanOrEqual(5 * 1024 * 1024);
  });

  it('scales a large image to at most 1920 pixels a side', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    await provider.moderate(await input(await solidImage(6000, 3000, 'webp')));
    expect((await sentImages(rekognition)).map(({ width, height }) => [width, height])).toEqual([[1920, 960], [1920, 1920]]);
  });

  it('enlarges an image under 80 pixels a side and pads a strip that cannot be enlarged', async () => {
    rekognition.on(DetectModerationLabelsCommand).resolves(cleanResponse);
    await provider.moderate(await input(await solidImage(40, 60, 'png')));
    await provider.moderate(await input(await solidImage(4000, 40, 'jpeg')));
    expect((await sentImages(rekognition)).map(({ format, width, height }) => [format, width, height])).toEqual([
      ['jpeg', 80, 120],
      ['jpeg', 80, 80],
      // 4000x40 scaled to 1920 wide is 19 high: padded to the 80-pixel minimum.
      ['jpeg', 1920, 80],
      ['jpeg', 80, 80],
    ]);
  });

  it('judges a transparent image composited on black and on white, the worse answer deciding', async () => {
    // Rekognition finds the photograph wherever it can be seen.
    rekognition.on(DetectModerationLabelsCommand).callsFake(async (request: { Image: { Bytes: Uint8Array } }) => {
      const { data } = await sharp(request.Image.Bytes).raw().toBuffer({ resolveWithObject: true });
      return spreadOf(data) > 5 ? explicitResponse : cleanResponse;
    });
    const labels = await provider.moderate(await input(await hiddenInAlpha(await photo('leaf.jpg'))));

    const sent = await sentImages(rekognition);
    expect(sent.map(({ width, height }) => [width, height])).toEqual([[960, 600], [960, 600], [600, 600], [600, 600]]);
    // Black first: the photograph; white: a blank page (all an alpha-blind pipeline showed it).
    expect(sent.map(({ data }) => spreadOf(data) > 5)).toEqual([true, false, true, false]);
    expect(decide(labels, defaultPolicy)).toMatchObject({ outcome: 'rejected', reason: { code: 'moderation' } });
  });

  it('turns a refusal of the image into a permanent error and lets throttling be retried', async () => {
    const refusal = Object.assign(new Error('Request has invalid image format'), { name: 'InvalidImageFormatException' });
    rekognition.on(DetectModerationLabelsCommand).rejectsOnce(refusal).rejectsOnce(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    const leaf = await input(await photo('leaf.jpg'));
    await expect(provider.moderate(leaf)).rejects.toBeInstanceOf(PermanentEventError);
    await expect(provider.moderate(leaf)).rejects.toThrow('slow down');
  });
});
