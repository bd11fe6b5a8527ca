/**
 * The moderator page in headless Chromium against the real local stack, beside the player's page:
 * a player's uploads end in review (the stack's MODERATION_POLICY puts every picture in the review
 * band), a moderator signs in with a token carrying the moderator role, sees each picture with
 * the model's scores, approves one (it becomes the player's avatar, on the player's page) and
 * rejects another (its fingerprint joins the ban list), then lifts that ban. Same set-up as
 * browser.test.ts: the stack on temporary data, the front as the browser's proxy.
 *
 * Needs moderate's review band (MODERATION_POLICY entries `{"block", "review"}`, issue 15) and
 * profile's /v1/moderation API: until both are built, this fails at start-up or at the first review.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createECDH } from 'node:crypto';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { repoRoot, startStack, type Stack } from '@avatar-pipeline/local';
import { artifacts, assertBuilt, chromiumMissing, dist, launchChromium, uploadStatus, uploadThroughApi, waitForStatus } from './support/browser.js';
import { startFront, type Front } from './support/front.js';

const services = ['presign', 's3-source', 'moderate', 'thumbnail', 'profile'] as const;
/**
 * Every picture lands in the review band: the embedded model always reports Explicit, and from 0
 * it is reviewed (from 60 it would still be blocked). Moderate lowers its reporting floor to the
 * policy's lowest threshold, so even a score of 0.00 is reported.
 */
const REVIEW_EVERYTHING = JSON.stringify({ Explicit: { block: 60, review: 0 }, 'Non-Explicit Nudity of Intimate parts and Kissing': 70 });
const player = 'mod-test-player';
const moderator = 'mod-1';

interface Review {
  uploadId: string;
  status: string;
  decision?: { by: string; decision: string; note?: string };
}

describe.skipIf(chromiumMissing)(`moderator page in headless Chromium${chromiumMissing ? ` (skipped: ${chromiumMissing})` : ''}`, () => {
  let dataDir: string;
  let stack: Stack;
  let front: Front;
  let context: BrowserContext;
  let playerPage: Page;
  let modPage: Page;
  let origin: string;
  const logs: string[] = [];
  const pageErrors: string[] = [];
  /** The upload made in the player's page, and one from the player's other device. */
  let approvedId: string;
  let rejectedId: string;

  const watchErrors = (page: Page) => {
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) pageErrors.push(message.text());
    });
  };

  /** A moderator token, as the page gets one: the dev issuer with the role asked for. */
  async function moderatorToken(): Promise<string> {
    const res = await fetch(`${origin}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ playerId: moderator, roles: ['moderator'] }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { token: string }).token;
  }

  async function moderationApi(path: string): Promise<Response> {
    return fetch(`${origin}/v1/moderation${path}`, { headers: { authorization: `Bearer ${await moderatorToken()}` } });
  }

  beforeAll(async () => {
    assertBuilt(['index.html', 'moderator.html', 'sw.js'], services);
    dataDir = await mkdtemp(join(tmpdir(), 'ap-moderator-'));
    stack = await startStack({
      dataDir,
      services,
      logLevel: 'warn',
      sink: (line) => logs.push(line),
      stopGraceMs: 5000,
      env: { ...process.env, MODERATION_POLICY: REVIEW_EVERYTHING },
    });
    origin = stack.gatewayUrl;
    // No subscribe service: a key of our own, so the player's page gets its answer.
    front = await startFront({ gatewayUrl: origin, dist, vapidPublicKey: createECDH('prime256v1').generateKeys().toString('base64url') });
    context = await launchChromium({ profileDir: join(dataDir, 'chromium-profile'), proxyUrl: front.proxyUrl, viewport: { width: 1100, height: 900 } });
    // Two tabs: sessionStorage (where each page keeps its token) is per tab.
    playerPage = context.pages()[0] ?? (await context.newPage());
    modPage = await context.newPage();
    watchErrors(playerPage);
    watchErrors(modPage);
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    await front?.close();
    await stack?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  const showLogs = () =>
    onTestFailed(() => {
      console.error(`page errors: ${pageErrors.join('\n') || 'none'}\nstack warnings:\n${logs.join('')}`);
    });

  const reviewItem = (uploadId: string) => modPage.locator(`#review-${uploadId}`);
  const banRow = (uploadId: string) => modPage.locator('#ban-rows tr', { hasText: uploadId });

  it('tells the player that an upload is under review, and another of theirs ends in review too', async () => {
    showLogs();
    await playerPage.goto(`${origin}/`);
    await playerPage.waitForSelector('body[data-ready="true"]');
    await playerPage.getByLabel('Player id').fill(player);
    await playerPage.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => playerPage.textContent('#player-name')).toBe(player);

    const ticket = playerPage.waitForResponse((res) => res.request().method() === 'POST' && res.url() === `${origin}/v1/uploads`);
    await playerPage.setInputFiles('#file', join(repoRoot, 'fixtures', 'photos', 'leaf.jpg'));
    await playerPage.getByRole('button', { name: 'Upload' }).click();
    approvedId = ((await (await ticket).json()) as { uploadId: string }).uploadId;
    await expect.poll(() => playerPage.getAttribute('#status', 'data-status'), { timeout: 30_000 }).toBe('in_review');
    expect(await playerPage.textContent('#status')).toBe('Your image is waiting for a moderator to look at it. Your avatar will change once it is approved.');
    expect(await playerPage.getAttribute('#avatar', 'alt')).toBe('No avatar yet');
    await mkdir(artifacts, { recursive: true });
    await playerPage.screenshot({ path: join(artifacts, 'web-client-in-review.png'), fullPage: true });

    // The same player's other device.
    const token = await stack.mint(player);
    rejectedId = await uploadThroughApi(origin, token, 'autumn.webp', 'image/webp');
    await waitForStatus(origin, token, rejectedId, 'in_review');
  }, 60_000);

  it('refuses a token without the moderator role, back at signing in', async () => {
    showLogs();
    const playerToken = await stack.mint(player);
    expect((await fetch(`${origin}/v1/moderation/reviews?status=open`, { headers: { authorization: `Bearer ${playerToken}` } })).status).toBe(403);
    // A session the page did not get from signing in as a moderator: a player's token under its key.
    await modPage.goto(`${origin}/moderator.html`);
    await modPage.evaluate((token) => sessionStorage.setItem('avatar-pipeline.moderator-session', JSON.stringify({ playerId: 'not-a-moderator', token, expiresAt: Date.now() + 3_600_000 })), playerToken);
    await modPage.reload();
    await modPage.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => modPage.textContent('#sign-in-error')).toBe('This account is not a moderator. Sign in with one that is.');
    expect(await modPage.isHidden('#desk')).toBe(true);
    expect(await modPage.evaluate(() => sessionStorage.getItem('avatar-pipeline.moderator-session'))).toBeNull();
  });

  it('signs a moderator in and lists the open reviews, oldest first, each with its picture and scores', async () => {
    showLogs();
    await modPage.getByLabel('Moderator id').fill(moderator);
    await modPage.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => modPage.textContent('#moderator-name')).toBe(moderator);
    await expect.poll(() => modPage.locator('#reviews li.review').evaluateAll((items) => items.map((li) => (li as HTMLElement).dataset['uploadId']))).toEqual([approvedId, rejectedId]);
    expect(await modPage.textContent('#reviews-status')).toBe('2 pictures waiting for review, oldest first.');

    for (const uploadId of [approvedId, rejectedId]) {
      const item = reviewItem(uploadId);
      await expect.poll(() => item.getByRole('heading', { level: 3 }).textContent()).toBe(`Picture by ${player}`);
      // The original, through its short-lived link: loaded, not just named.
      const picture = item.getByRole('img', { name: `The picture ${player} uploaded` });
      await expect.poll(() => picture.evaluate((img) => (img as HTMLImageElement).naturalWidth), { timeout: 10_000 }).toBeGreaterThan(0);
      // The model's scores: Explicit under the blocking 60, as a meter and as a number.
      const score = item.getByRole('meter', { name: 'Explicit', exact: true });
      const value = Number(await score.getAttribute('value'));
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(60);
      expect(await item.locator('.scores').textContent()).toContain(`${value.toFixed(1)}%`);
      expect(await item.locator('.facts').textContent()).toContain(uploadId);
    }
    await expect.poll(() => modPage.textContent('#bans-status')).toBe('No picture is banned.');
  }, 30_000);

  it('rejects a picture from the page: it is deleted, the player told, and its fingerprint banned', async () => {
    showLogs();
    const item = reviewItem(rejectedId);
    await item.getByLabel(/^Note/).fill('not a picture of the player');
    await item.getByRole('button', { name: 'Reject' }).click();
    await expect.poll(() => item.count()).toBe(0);
    expect(await modPage.textContent('#reviews-status')).toBe(`Rejected the picture of ${player}: it is deleted and its fingerprint banned. 1 picture waiting for review, oldest first.`);

    const row = banRow(rejectedId);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toMatch(/^[0-9a-f]{16}$/);
    expect(cells.slice(1, 3)).toEqual(['Rejected by a moderator', moderator]);
    expect(cells[4]).toBe(rejectedId);

    const done = await uploadStatus(origin, await stack.mint(player), rejectedId);
    expect(done).toMatchObject({ status: 'rejected', reason: { code: 'moderator' } });
    const review = (await (await moderationApi(`/reviews/${rejectedId}`)).json()) as Review;
    expect(review).toMatchObject({ status: 'rejected', decision: { by: moderator, decision: 'reject', note: 'not a picture of the player' } });

    // The page as a moderator sees it: one review open, one ban.
    await mkdir(artifacts, { recursive: true });
    await modPage.screenshot({ path: join(artifacts, 'moderator-page.png'), fullPage: true });
  }, 30_000);

  it("approves a picture from the page: it becomes the player's avatar, on the player's page", async () => {
    showLogs();
    const item = reviewItem(approvedId);
    await item.getByLabel(/^Note/).fill('fine');
    await item.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => item.count()).toBe(0);
    expect(await modPage.textContent('#reviews-status')).toBe(`Approved the picture of ${player}: it becomes their avatar. No pictures are waiting for review.`);
    // The keyboard stays on the list: the decided item is gone, its heading takes focus.
    expect(await modPage.evaluate(() => document.activeElement?.id)).toBe('reviews-heading');

    // The player's page still follows its upload (slowly, while in review) and shows the outcome.
    await expect.poll(() => playerPage.getAttribute('#status', 'data-status'), { timeout: 90_000, interval: 500 }).toBe('ready');
    expect(await playerPage.getAttribute('#avatar', 'src')).toBe(`${origin}/media/avatars/${player}/${approvedId}/128.webp`);
    await expect.poll(() => playerPage.evaluate(() => (document.getElementById('avatar') as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);

    const review = (await (await moderationApi(`/reviews/${approvedId}`)).json()) as Review;
    expect(review).toMatchObject({ status: 'approved', decision: { by: moderator, decision: 'approve', note: 'fine' } });
    // An approval bans nothing.
    expect(await banRow(approvedId).count()).toBe(0);
  }, 120_000);

  it('lifts a ban from the page', async () => {
    showLogs();
    const row = banRow(rejectedId);
    const fingerprint = (await row.locator('td').first().textContent())!;
    await row.getByRole('button', { name: 'Lift ban' }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect(await modPage.textContent('#bans-status')).toBe(`Lifted the ban on ${fingerprint}. No picture is banned.`);
    expect(await modPage.isHidden('#bans')).toBe(true);
    const bans = (await (await moderationApi('/bans')).json()) as { items: { id: string }[] };
    expect(bans.items.map((b) => b.id)).not.toContain(fingerprint);
  });

  it('ran without script errors or policy violations', () => {
    expect(pageErrors).toEqual([]);
  });
});
