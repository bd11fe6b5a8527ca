import { readFile } from 'node:fs/promises';
import { loadConfig } from '@avatar-pipeline/kit/config';
import type { ApprovedData } from '@avatar-pipeline/kit/events';
import { EventType } from '@avatar-pipeline/kit/topology';
import { deliverEvent } from '@avatar-pipeline/kit/testing';
import type { Service } from '@avatar-pipeline/kit/service';
import { BUCKET } from '@avatar-pipeline/local';
import { v7 as uuidv7 } from 'uuid';
import { thumbnailEnv, type ThumbnailConfig, type ThumbnailStores } from '../src/index.js';

export const photo = (name: string) => readFile(new URL(`../../../fixtures/photos/${name}`, import.meta.url));

export function testConfig(env: Record<string, string> = {}): ThumbnailConfig {
  return loadConfig(thumbnailEnv, { AWS_REGION: 'us-east-1', LOG_LEVEL: 'silent', ...env });
}

export function approvedData(playerId: string, eTag: string, overrides: Partial<ApprovedData> = {}): ApprovedData {
  const uploadId = overrides.uploadId ?? uuidv7();
  return {
    playerId,
    uploadId,
    uploadedAt: '2026-01-02T03:04:05.000Z',
    bucket: BUCKET,
    key: `uploads/${playerId}/${uploadId}`,
    eTag,
    // The SHA-256 of no bytes: tests that render pass the hash of what they stored.
    sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    contentType: 'image/jpeg',
    width: 1200,
    height: 750,
    provider: 'test',
    labels: [],
    ...overrides,
  };
}

/**
 * What moderate approved, as the upload records would say (an in-memory stand-in for
 * `UploadStore.approvedSha256`, which the kit tests against dynalite).
 */
export const approvals = {
  hashes: new Map<string, string>(),
  approvedSha256: (_playerId: string, uploadId: string) => Promise.resolve(approvals.hashes.get(uploadId)),
};

/** The table as thumbnail reads it: those approvals, always ready. */
export const stores: ThumbnailStores = { approvals, ready: () => Promise.resolve() };

/**
 * Delivers an approved event to the service as the broker would (binary mode). Moderate approved
 * those bytes first unless `approved` is false (a forged event).
 */
export function deliver(service: Service, data: ApprovedData, { approved = true } = {}) {
  if (approved) approvals.hashes.set(data.uploadId, data.sha256);
  return deliverEvent(service.app, {
    id: `${data.uploadId}.approved`,
    source: '/avatar-pipeline/moderate',
    type: EventType.approved,
    subject: data.key,
    data,
  });
}

/** The chunk ids of a WebP (RIFF) file: image data is VP8/VP8L/VP8X/ALPH; metadata would be EXIF, XMP or ICCP. */
export function webpChunks(file: Buffer): string[] {
  if (file.toString('latin1', 0, 4) !== 'RIFF' || file.toString('latin1', 8, 12) !== 'WEBP') throw new Error('not a WebP file');
  const ids: string[] = [];
  for (let at = 12; at + 8 <= file.length; ) {
    const size = file.readUInt32LE(at + 4);
    ids.push(file.toString('latin1', at, at + 4));
    at += 8 + size + (size % 2);
  }
  return ids;
}
