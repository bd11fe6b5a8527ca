import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { defaultLimits, type ImageFormat } from '@avatar-pipeline/imaging';
import type { OutgoingEvent } from '@avatar-pipeline/kit/cloudevents';
import type { ModerationLabel } from '@avatar-pipeline/kit/events';
import type { Service } from '@avatar-pipeline/kit/service';
import { deliverEvent } from '@avatar-pipeline/kit/testing';
import { decodeForModeration, type ModerationInput, type ModerationProvider, type ModerationView, type ViewShape } from '../src/index.js';

export const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

/** A provider for handler tests where the model is not the point: answers what it is told, counts calls. */
export function fakeProvider(answer: (input: ModerationInput) => Promise<ModerationLabel[]> = async () => []) {
  const calls: ModerationInput[] = [];
  const provider: ModerationProvider & { calls: ModerationInput[]; answer: typeof answer } = {
    name: 'nsfwjs',
    // The embedded model's input: every view squashed to 224x224.
    viewShape: { fit: 'fill', size: 224 },
    calls,
    answer,
    moderate(input) {
      calls.push(input);
      return provider.answer(input);
    },
  };
  return provider;
}

/** What moderate hands a provider for an image: its views decoded in the provider's shape. */
export async function moderationInput(image: Buffer, shape: ViewShape, key = 'uploads/p-1/u'): Promise<ModerationInput> {
  const meta = await sharp(image).metadata();
  const displayed = { width: meta.autoOrient.width, height: meta.autoOrient.height };
  const { views } = await decodeForModeration(image, { ...displayed, format: meta.format as ImageFormat }, { crop: 'attention', shape, limits: defaultLimits });
  return { bucket: 'avatars', key, image, format: meta.format as ImageFormat, ...displayed, views };
}

/** An S3 object-created event as s3-source emits it (CloudEvents AWS S3 adapter mapping). */
export function objectCreated(key: string, eTag: string | undefined, id = `req-${Math.random().toString(36).slice(2)}.host`): OutgoingEvent {
  return {
    id,
    source: 'aws:s3.us-east-1.avatars',
    type: 'com.amazonaws.s3.ObjectCreated:Post',
    subject: key,
    time: '2026-01-02T03:04:05.000Z',
    data: {
      s3SchemaVersion: '1.0',
      configurationId: 'uploads',
      bucket: { name: 'avatars', arn: 'arn:aws:s3:::avatars' },
      object: { key, size: 1234, ...(eTag ? { eTag } : {}), sequencer: '0055AED6DCD90281E5' },
    },
  };
}

/** Delivers an event as the broker does (binary mode) and parses the reply. */
export const deliver = (service: Service, event: OutgoingEvent) => deliverEvent(service.app, event);

/** Standard deviation of a view's pixel values: 0 for a blank view. */
export function spread(view: ModerationView): number {
  const { data } = view.pixels;
  const mean = data.reduce((sum, v) => sum + v, 0) / data.length;
  return Math.sqrt(data.reduce((sum, v) => sum + (v - mean) ** 2, 0) / data.length);
}

/** Share of a view's pixels that are not the flat mid grey around `tileInStrip`'s tile. */
export function detailShare(view: ModerationView): number {
  const { data, channels } = view.pixels;
  let detailed = 0;
  for (let i = 0; i < data.length; i += channels) {
    if (Math.max(Math.abs(data[i]! - 128), Math.abs(data[i + 1]! - 128), Math.abs(data[i + 2]! - 128)) > 24) detailed += 1;
  }
  return detailed / (data.length / channels);
}
