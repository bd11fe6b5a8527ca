/**
 * What the browser tests share: Debian's Chromium launched headless through playwright-core with
 * the front (front.ts) as its proxy, the checks that everything they run is built, and uploads
 * made straight through the API (another device of a player).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { expect } from 'vitest';
import { repoRoot, requireBuilt } from '@avatar-pipeline/local';

export const CHROMIUM = '/usr/bin/chromium';
/** Why the browser tests cannot run here, if they cannot. */
export const chromiumMissing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install chromium)`;
/** Headless, and no connections to Google's services: this machine's network is closed. */
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const dist = fileURLToPath(new URL('../../dist', import.meta.url));
/** Screenshots the tests leave behind. */
export const artifacts = join(repoRoot, 'test-artifacts');

/** Throws, naming the build step, when the client's pages or the services are not built. */
export function assertBuilt(pages: readonly string[], services: Parameters<typeof requireBuilt>[0]): void {
  const missingPages = pages.filter((page) => !existsSync(join(dist, page)));
  if (missingPages.length > 0) throw new Error(`web/dist is not built (${missingPages.join(', ')}): run npm run build -w web`);
  requireBuilt(services);
}

export interface LaunchOptions {
  /** The browser profile's directory. */
  profileDir: string;
  /** The front's proxy URL: every request of the browser goes through it. */
  proxyUrl: string;
  /** http origins to treat as secure contexts (the game's sites standing in for https ones). */
  secureOrigins?: readonly string[];
  viewport?: { width: number; height: number };
}

/**
 * A normal (persistent) profile, as a player's would be: not launch() + newContext(), whose
 * contexts are incognito, where Chromium refuses every push subscription.
 */
export function launchChromium(options: LaunchOptions): Promise<BrowserContext> {
  return chromium.launchPersistentContext(options.profileDir, {
    executablePath: CHROMIUM,
    args: [
      ...CHROMIUM_FLAGS,
      `--proxy-server=${options.proxyUrl}`,
      '--proxy-bypass-list=<-loopback>',
      ...(options.secureOrigins?.length ? [`--unsafely-treat-insecure-origin-as-secure=${options.secureOrigins.join(',')}`] : []),
    ],
    viewport: options.viewport ?? { width: 640, height: 760 },
  });
}

export interface UploadStatus {
  uploadId: string;
  status: string;
  reason?: { code: string; message: string };
  avatar?: { thumbnails: Record<string, string>; full: string };
}

export async function uploadStatus(origin: string, token: string, uploadId: string): Promise<UploadStatus> {
  const res = await fetch(`${origin}/v1/uploads/${uploadId}`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as UploadStatus;
}

/** Uploads a fixture photo the way the page does (ticket, then the presigned POST); its upload id. */
export async function uploadThroughApi(origin: string, token: string, file: string, contentType: string): Promise<string> {
  const bytes = await readFile(join(repoRoot, 'fixtures', 'photos', file));
  const asked = await fetch(`${origin}/v1/uploads`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ contentType, contentLength: bytes.length }),
  });
  expect(asked.status).toBe(201);
  const ticket = (await asked.json()) as { uploadId: string; url: string; fields: Record<string, string> };
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
  form.append('file', new Blob([bytes], { type: contentType }));
  expect((await fetch(ticket.url, { method: 'POST', body: form })).status).toBe(204);
  return ticket.uploadId;
}

/** Waits until the upload has `status` (by polling the status API) and returns its last answer. */
export async function waitForStatus(origin: string, token: string, uploadId: string, status: string, timeout = 30_000): Promise<UploadStatus> {
  await expect.poll(async () => (await uploadStatus(origin, token, uploadId)).status, { timeout, interval: 200 }).toBe(status);
  return uploadStatus(origin, token, uploadId);
}
