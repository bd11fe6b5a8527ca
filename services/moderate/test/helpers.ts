import { readFile } from 'node:fs/promises';
import type { ModerationLabel, OutgoingEvent, Service } from '@avatar-pipeline/kit';
import { deliverEvent } from '@avatar-pipeline/kit/testing';
import type { ModerationInput, ModerationProvider } from '../src/index.js';

export const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

/** A provider for handler tests where the model is not the point: answers what it is told, counts calls. */
export function fakeProvider(answer: (input: ModerationInput) => Promise<ModerationLabel[]> = async () => []) {
  const calls: ModerationInput[] = [];
  const provider: ModerationProvider & { calls: ModerationInput[]; answer: typeof answer } = {
    name: 'nsfwjs',
    calls,
    answer,
    moderate(input) {
      calls.push(input);
      return provider.answer(input);
    },
  };
  return provider;
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
