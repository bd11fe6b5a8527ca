/** The client's logic without a browser: status following, wording, checks, payloads, API errors. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, AvatarApi, type Upload } from '../src/api.js';
import { DevTokenSource } from '../src/auth.js';
import { banReasonText, confidenceText, decidedByOtherText, errorText, labelText, notificationText, reasonText, reviewCountText, statusText, stillWaitingText } from '../src/messages.js';
import { ModerationApi } from '../src/moderation.js';
import { notificationIcon, parsePushPayload, type ChannelMessage } from '../src/payload.js';
import { renewSubscription, type RenewDeps } from '../src/sw-renew.js';
import { checkFile } from '../src/upload.js';
import { backoffDelay, pollingBackoff, pushBackoff, REVIEW_WATCH_MS, reviewBackoff, watchUpload, type WatchOptions } from '../src/watch.js';

const UPLOAD = '01900000-0000-7000-8000-00000000abcd';
const avatar = {
  thumbnails: { '64': 'https://cdn.example/a/64.webp', '128': 'https://cdn.example/a/128.webp', '256': 'https://cdn.example/a/256.webp' },
  full: 'https://cdn.example/a/full.webp',
};

/** A clock that only moves when the watch sleeps: every wait is recorded, none is real. */
function fakeTime() {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
  };
}

function watchWith(statuses: (Upload | Error)[], extra: Partial<WatchOptions> = {}) {
  const time = fakeTime();
  const seen: string[] = [];
  let calls = 0;
  const watch = watchUpload({
    uploadId: UPLOAD,
    fetchStatus: async () => {
      const next = statuses[Math.min(calls++, statuses.length - 1)]!;
      if (next instanceof Error) throw next;
      return next;
    },
    onUpdate: (u) => seen.push(u.status),
    pushActive: () => false,
    sleep: time.sleep,
    now: time.now,
    ...extra,
  });
  return { watch, seen, time, calls: () => calls };
}

describe('watchUpload', () => {
  it('polls with a growing delay until a terminal status, reporting each change once', async () => {
    const { watch, seen, time } = watchWith([
      { uploadId: UPLOAD, status: 'pending' },
      { uploadId: UPLOAD, status: 'pending' },
      { uploadId: UPLOAD, status: 'processing' },
      { uploadId: UPLOAD, status: 'ready', avatar },
    ]);
    expect(await watch.result).toMatchObject({ status: 'ready', avatar });
    expect(seen).toEqual(['pending', 'processing', 'ready']);
    expect(time.waits).toEqual([500, 750, 1125]);
  });

  it('caps the delay, and polls gently while a push is expected', () => {
    expect(backoffDelay(pollingBackoff, 20)).toBe(5_000);
    expect(backoffDelay(pushBackoff, 0)).toBe(3_000);
    expect(backoffDelay(pushBackoff, 20)).toBe(30_000);
  });

  it('ends at once when a push brings the outcome', async () => {
    let release!: () => void;
    const { watch, seen, calls } = watchWith([{ uploadId: UPLOAD, status: 'processing' }], {
      pushActive: () => true,
      sleep: () => new Promise<void>((resolve) => (release = resolve)),
    });
    await expect.poll(() => seen).toEqual(['processing']);
    watch.offer({ uploadId: 'another-upload', status: 'ready', avatar });
    watch.offer({ uploadId: UPLOAD, status: 'rejected', reason: { code: 'moderation', message: 'no' } });
    release();
    expect(await watch.result).toMatchObject({ status: 'rejected' });
    expect(seen).toEqual(['processing', 'rejected']);
    expect(calls()).toBe(1);
  });

  it('keeps polling through network errors and honours Retry-After', async () => {
    const { watch, time } = watchWith([
      new ApiError(0, 'network', 'down'),
      new ApiError(429, 'rate_limited', 'slow down', 7),
      { uploadId: UPLOAD, status: 'failed', reason: { code: 'processing_failed', message: 'x' } },
    ]);
    expect(await watch.result).toMatchObject({ status: 'failed' });
    expect(time.waits).toEqual([500, 7000]);
  });

  it('gives up on an upload the server does not know', async () => {
    const { watch } = watchWith([new ApiError(404, 'upload_not_found', 'no such upload')]);
    await expect(watch.result).rejects.toMatchObject({ code: 'upload_not_found' });
  });

  it('follows an upload in review slowly, for as long as a review lasts, then briskly again once decided', async () => {
    const inReview = { uploadId: UPLOAD, status: 'in_review' } as const;
    const { watch, seen, time } = watchWith(
      [{ uploadId: UPLOAD, status: 'processing' }, inReview, inReview, inReview, inReview, inReview, inReview, inReview, inReview, { uploadId: UPLOAD, status: 'processing' }, { uploadId: UPLOAD, status: 'ready', avatar }],
      { timeoutMs: 20_000 },
    );
    expect(await watch.result).toMatchObject({ status: 'ready' });
    expect(seen).toEqual(['processing', 'in_review', 'processing', 'ready']);
    // Past the 20 s limit (the review extends it), on the review backoff from its first step, then
    // the polling one from its first step again.
    expect(time.waits).toEqual([500, 2_000, 3_000, 4_500, 6_750, 10_125, 15_187.5, 22_781.25, 34_171.875, 500]);
    expect(backoffDelay(reviewBackoff, 30)).toBe(60_000);
  });

  it('follows a review until the review time is up, not the usual limit', async () => {
    const { watch, time } = watchWith([{ uploadId: UPLOAD, status: 'in_review' }], { timeoutMs: 10_000, reviewTimeoutMs: 500_000 });
    expect(await watch.result).toBeUndefined();
    expect(time.waits.reduce((a, b) => a + b, 0)).toBe(500_000);
    expect(time.waits[0]).toBe(reviewBackoff.firstMs);
    expect(Math.max(...time.waits)).toBe(reviewBackoff.maxMs);
    expect(REVIEW_WATCH_MS).toBe(86_400_000);
  });

  it('takes the review backoff from a pushed in_review, from its first step', async () => {
    const time = fakeTime();
    let polls = 0;
    const watch = watchUpload({
      uploadId: UPLOAD,
      fetchStatus: async () => (polls++ === 0 ? { uploadId: UPLOAD, status: 'processing' } : { uploadId: UPLOAD, status: 'in_review' }),
      onUpdate: () => undefined,
      pushActive: () => true,
      now: time.now,
      sleep: async (ms) => {
        if (time.waits.length === 0) watch.offer({ uploadId: UPLOAD, status: 'in_review' });
        if (time.waits.length === 2) watch.offer({ uploadId: UPLOAD, status: 'rejected', reason: { code: 'moderator', message: 'no' } });
        await time.sleep(ms);
      },
    });
    expect(await watch.result).toMatchObject({ status: 'rejected' });
    expect(time.waits).toEqual([3_000, 2_000, 3_000]);
  });

  it('stops after its time limit without an outcome', async () => {
    const { watch, time } = watchWith([{ uploadId: UPLOAD, status: 'pending' }], { timeoutMs: 20_000 });
    expect(await watch.result).toBeUndefined();
    expect(time.waits.reduce((a, b) => a + b, 0)).toBe(20_000);
  });
});

describe('wording', () => {
  it('turns every reason code the pipeline sends into a sentence', () => {
    for (const code of ['too_large', 'unsupported_format', 'corrupt', 'too_many_pixels', 'format_mismatch', 'moderation', 'processing_failed', 'object_replaced', 'empty', 'too_wide', 'too_small', 'aspect_ratio', 'timeout', 'expired']) {
      const text = reasonText({ code, message: 'technical detail' });
      expect(text, code).toMatch(/^[A-Z].*\.$/);
      expect(text.toLowerCase(), code).not.toContain('technical detail');
    }
  });

  it('falls back to the server message, as a sentence, for codes it does not know', () => {
    expect(reasonText({ code: 'new_rule', message: 'the image breaks a new rule' })).toBe('The image breaks a new rule.');
    expect(errorText({ code: 'teapot', message: "I'm a teapot" })).toBe("I'm a teapot.");
  });

  it('says why an upload was refused', () => {
    expect(statusText('rejected', { code: 'corrupt', message: '' })).toBe('Your image was not accepted. The image file is damaged or incomplete.');
    expect(statusText('processing')).toBe('Checking your image and making your avatar…');
  });

  it('tells the player an upload is under review, in the status line, a notification and when it stops following', () => {
    expect(statusText('in_review')).toBe('Your image is waiting for a moderator to look at it. Your avatar will change once it is approved.');
    expect(notificationText('in_review')).toEqual({ title: 'Your avatar is being reviewed', body: 'A moderator will look at your picture. You will be told when it is decided.' });
    expect(stillWaitingText('in_review')).toBe('A moderator has not decided yet. Come back later to see your avatar.');
    expect(stillWaitingText('processing')).toContain('taking longer than usual');
    for (const code of ['banned', 'moderator', 'review_timeout']) expect(reasonText({ code, message: 'technical detail' }), code).toMatch(/^[A-Z][^]*\.$/);
    expect(statusText('rejected', { code: 'banned', message: 'this picture is not allowed' })).toBe('Your image was not accepted. This picture is not allowed.');
  });

  it('words the moderator page: scores, counts, ban reasons and a review decided by someone else', () => {
    expect(confidenceText(42.456)).toBe('42.5%');
    expect(labelText({ name: 'Explicit' })).toBe('Explicit');
    expect(labelText({ name: 'Swimwear or Underwear', parent: 'Non-Explicit Nudity' })).toBe('Swimwear or Underwear (Non-Explicit Nudity)');
    expect(reviewCountText(0, false)).toBe('No pictures are waiting for review.');
    expect(reviewCountText(1, false)).toBe('1 picture waiting for review, oldest first.');
    expect(reviewCountText(20, true)).toBe('20 pictures (and more) waiting for review, oldest first.');
    expect(banReasonText('moderator')).toBe('Rejected by a moderator');
    expect(banReasonText('something-new')).toBe('something-new');
    expect(decidedByOtherText({ status: 'rejected', decision: { by: 'mod-2', decision: 'reject' } })).toBe('mod-2 has already rejected this picture.');
    expect(decidedByOtherText({ status: 'expired' })).toBe('This review ran out of time before anyone decided.');
    expect(errorText({ code: 'already_decided', message: 'x' })).toBe('Another moderator has already decided this one.');
  });

  it('says that an upload that never arrived expired, and why', () => {
    expect(statusText('expired', { code: 'expired', message: '' })).toBe('Your upload did not arrive. The upload was not finished in time. Please choose your picture again.');
    expect(statusText('failed', { code: 'timeout', message: '' })).toBe('Something went wrong with your image. Processing the image took too long. Please try again.');
  });
});

describe('checkFile', () => {
  const max = 5 * 1024 * 1024;

  it('accepts the three image types up to the limit', () => {
    expect(checkFile({ type: 'image/jpeg', size: max }, max)).toBeUndefined();
    expect(checkFile({ type: 'image/png', size: 1 }, max)).toBeUndefined();
    expect(checkFile({ type: 'image/webp', size: 1 }, max)).toBeUndefined();
  });

  it('refuses other types, empty files and files over the limit, in plain words', () => {
    expect(checkFile({ type: 'image/gif', size: 10 }, max)?.code).toBe('unsupported_type');
    expect(checkFile({ type: 'image/bmp', size: 10 }, max)?.code).toBe('unsupported_type');
    expect(checkFile({ type: 'image/jpeg', size: 0 }, max)?.code).toBe('empty');
    expect(checkFile({ type: 'image/jpeg', size: max + 1 }, max)).toEqual({ code: 'too_large', message: 'The file is 5 MB; the largest allowed is 5 MB.' });
    expect(checkFile({ type: 'image/png', size: 8 * 1024 * 1024 }, max)?.message).toBe('The file is 8 MB; the largest allowed is 5 MB.');
  });
});

describe('push payloads', () => {
  it('reads the push service payload and picks the 128 px icon', () => {
    const payload = parsePushPayload(JSON.stringify({ type: 'avatar.ready', uploadId: UPLOAD, status: 'ready', avatar, title: 'T', body: 'B' }));
    expect(payload).toMatchObject({ status: 'ready', title: 'T' });
    expect(notificationIcon(payload!)).toBe(avatar.thumbnails['128']);
    expect(notificationIcon({ ...payload!, icon: 'https://cdn.example/icon.png' })).toBe('https://cdn.example/icon.png');
    expect(notificationIcon({ ...payload!, avatar: { thumbnails: { '64': avatar.thumbnails['64'] }, full: avatar.full } })).toBe(avatar.thumbnails['64']);
  });

  it('reads a push that an upload went to review', () => {
    expect(parsePushPayload(JSON.stringify({ type: 'avatar.in_review', uploadId: UPLOAD, status: 'in_review', title: 'T', body: 'B' }))).toMatchObject({ status: 'in_review' });
  });

  it('refuses anything else', () => {
    expect(parsePushPayload(undefined)).toBeUndefined();
    expect(parsePushPayload('not json')).toBeUndefined();
    expect(parsePushPayload(JSON.stringify({ uploadId: UPLOAD, status: 'exploded' }))).toBeUndefined();
    expect(parsePushPayload(JSON.stringify({ type: 'avatar.ready', uploadId: UPLOAD, status: 'ready', avatar: { thumbnails: {}, full: 'javascript-ish' } }))).toBeUndefined();
  });
});

describe('AvatarApi', () => {
  const respond = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new AvatarApi({ baseUrl: 'http://api.test', token: async () => 't0ken', fetch: async () => Response.json(body, { status, headers }) });

  it('sends the bearer token and reads a profile; a 404 means no avatar yet', async () => {
    const calls: Request[] = [];
    const api = new AvatarApi({
      baseUrl: 'http://api.test',
      token: async () => 't0ken',
      fetch: async (input, init) => {
        calls.push(new Request(input, init));
        return Response.json({ error: { code: 'profile_not_found', message: 'none' } }, { status: 404 });
      },
    });
    expect(await api.profile('p 1')).toBeUndefined();
    expect(calls[0]!.url).toBe('http://api.test/v1/players/p%201/profile');
    expect(calls[0]!.headers.get('authorization')).toBe('Bearer t0ken');
  });

  it("turns the server's JSON errors into ApiErrors with Retry-After", async () => {
    await expect(respond(429, { error: { code: 'rate_limited', message: 'later' } }, { 'retry-after': '12' }).requestUpload('image/png', 10)).rejects.toMatchObject({
      status: 429,
      code: 'rate_limited',
      retryAfterSeconds: 12,
    });
    await expect(respond(502, 'oops').upload(UPLOAD)).rejects.toMatchObject({ status: 502, code: 'http_502' });
    await expect(respond(200, { uploadId: UPLOAD, status: 'weird' }).upload(UPLOAD)).rejects.toMatchObject({ code: 'unexpected_response' });
  });

  it('reports an unreachable server as a network error', async () => {
    const api = new AvatarApi({ baseUrl: 'http://api.test', token: async () => 't', fetch: async () => Promise.reject(new TypeError('failed to fetch')) });
    await expect(api.vapidPublicKey()).rejects.toMatchObject({ status: 0, code: 'network' });
  });
});

describe('renewSubscription (pushsubscriptionchange)', () => {
  const subscription = (endpoint: string) =>
    ({ endpoint, options: { applicationServerKey: new Uint8Array([4, 1, 2]).buffer }, toJSON: () => ({ endpoint, keys: { p256dh: 'k', auth: 'a' } }) }) as unknown as PushSubscription;

  function deps(options: { session?: boolean; save?: () => Promise<void> } = {}) {
    const saved: unknown[] = [];
    const deleted: string[] = [];
    const announced: ChannelMessage[] = [];
    const subscribeKeys: unknown[] = [];
    const d: RenewDeps = {
      pushManager: {
        subscribe: async (o) => {
          subscribeKeys.push(o?.applicationServerKey);
          return subscription('https://push.example/new');
        },
      },
      api: (session) => ({
        vapidPublicKey: async () => 'BKEY',
        saveSubscription: async (s) => {
          expect(session).toMatchObject({ token: 'worker-token', apiBase: 'https://api.example' });
          await options.save?.();
          saved.push(s);
        },
        deleteSubscription: async (endpoint) => {
          deleted.push(endpoint);
        },
      }),
      session: async () => (options.session === false ? undefined : { token: 'worker-token', expiresAt: Date.now() + 60_000, apiBase: 'https://api.example' }),
      announce: (m) => announced.push(m),
    };
    return { d, saved, deleted, announced, subscribeKeys };
  }

  it('posts the new subscription with the stored token and forgets the old endpoint', async () => {
    const { d, saved, deleted, announced } = deps();
    expect(await renewSubscription(subscription('https://push.example/old'), subscription('https://push.example/new'), d)).toBe('saved');
    expect(saved).toEqual([{ endpoint: 'https://push.example/new', keys: { p256dh: 'k', auth: 'a' } }]);
    expect(deleted).toEqual(['https://push.example/old']);
    expect(announced).toEqual([]);
  });

  it('subscribes again with the old key when the browser hands over no new subscription', async () => {
    const { d, saved, subscribeKeys } = deps();
    const old = subscription('https://push.example/old');
    expect(await renewSubscription(old, null, d)).toBe('saved');
    expect(subscribeKeys).toEqual([old.options.applicationServerKey]);
    expect(saved).toHaveLength(1);
  });

  it('leaves it to open pages without a session or when the server refuses', async () => {
    const none = deps({ session: false });
    expect(await renewSubscription(null, subscription('https://push.example/new'), none.d)).toBe('left-to-pages');
    expect(none.announced).toEqual([{ kind: 'resubscribe' }]);

    const refused = deps({ save: () => Promise.reject(new ApiError(401, 'unauthorized', 'expired')) });
    expect(await renewSubscription(null, subscription('https://push.example/new'), refused.d)).toBe('left-to-pages');
    expect(refused.announced).toEqual([{ kind: 'resubscribe' }]);
  });
});

describe('ModerationApi', () => {
  const review = {
    uploadId: UPLOAD,
    playerId: 'p1',
    status: 'open',
    labels: [{ name: 'Explicit', confidence: 41.2 }],
    fingerprint: '0123456789abcdef',
    requestedAt: '2025-01-01T00:00:01.000Z',
    uploadedAt: '2025-01-01T00:00:00.000Z',
    imageUrl: 'http://api.test/s3/avatars/uploads/p1/x?X-Amz-Signature=abc',
  };
  const ban = { id: '0123456789abcdef', fingerprint: '0123456789abcdef', uploadId: UPLOAD, reason: 'moderator', by: 'mod-1', createdAt: '2025-01-01T00:00:02.000Z' };

  function recording(answer: (request: Request) => Response) {
    const calls: Request[] = [];
    const api = new ModerationApi({
      baseUrl: 'http://api.test',
      token: async () => 'm0d',
      fetch: async (input, init) => {
        const request = new Request(input, init);
        calls.push(request.clone());
        return answer(request);
      },
    });
    return { api, calls };
  }

  it('lists open reviews page by page, with the token', async () => {
    const { api, calls } = recording(() => Response.json({ items: [review], cursor: 'next-page' }));
    expect(await api.openReviews({ limit: 20 })).toEqual({ items: [review], cursor: 'next-page' });
    await api.openReviews({ limit: 20, cursor: 'next-page' });
    expect(calls.map((c) => c.url)).toEqual(['http://api.test/v1/moderation/reviews?status=open&limit=20', 'http://api.test/v1/moderation/reviews?status=open&limit=20&cursor=next-page']);
    expect(calls[0]!.headers.get('authorization')).toBe('Bearer m0d');
  });

  it('posts a decision with its note, and without an empty one', async () => {
    const { api, calls } = recording(() => Response.json({ ...review, status: 'approved', decision: { by: 'mod-1', at: review.requestedAt, decision: 'approve', note: 'fine' } }));
    expect((await api.decide(UPLOAD, 'approve', '  fine ')).decision).toMatchObject({ by: 'mod-1', note: 'fine' });
    await api.decide(UPLOAD, 'reject', '   ');
    expect(calls.map((c) => c.method)).toEqual(['POST', 'POST']);
    expect(calls[0]!.url).toBe(`http://api.test/v1/moderation/reviews/${UPLOAD}`);
    expect(await calls[0]!.json()).toEqual({ decision: 'approve', note: 'fine' });
    expect(await calls[1]!.json()).toEqual({ decision: 'reject' });
  });

  it("passes on the server's refusals: a decided review (409), a player's token (403)", async () => {
    await expect(recording(() => Response.json({ error: { code: 'already_decided', message: 'decided' } }, { status: 409 })).api.decide(UPLOAD, 'reject')).rejects.toMatchObject({
      status: 409,
      code: 'already_decided',
    });
    await expect(recording(() => Response.json({ error: { code: 'forbidden', message: 'moderators only' } }, { status: 403 })).api.bans()).rejects.toMatchObject({ status: 403, code: 'forbidden' });
    await expect(recording(() => Response.json({ items: [{ ...review, status: 'weird' }] })).api.openReviews()).rejects.toMatchObject({ code: 'unexpected_response' });
  });

  it('lists, adds and lifts bans; lifting one that is gone answers false', async () => {
    const { api, calls } = recording((request) => {
      if (request.method === 'DELETE') return request.url.endsWith('/gone') ? Response.json({ error: { code: 'not_found', message: 'no such ban' } }, { status: 404 }) : new Response(null, { status: 204 });
      return request.method === 'POST' ? Response.json(ban, { status: 201 }) : Response.json({ items: [ban] });
    });
    expect(await api.bans({ limit: 5 })).toEqual({ items: [ban] });
    expect(await api.ban(UPLOAD)).toEqual(ban);
    expect(await api.liftBan(ban.id)).toBe(true);
    expect(await api.liftBan('gone')).toBe(false);
    expect(calls.map((c) => `${c.method} ${new URL(c.url).pathname}${new URL(c.url).search}`)).toEqual([
      'GET /v1/moderation/bans?limit=5',
      'POST /v1/moderation/bans',
      `DELETE /v1/moderation/bans/${ban.id}`,
      'DELETE /v1/moderation/bans/gone',
    ]);
    expect(await calls[1]!.json()).toEqual({ uploadId: UPLOAD });
  });
});

describe('DevTokenSource', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  function memoryStorage(): Storage {
    const items = new Map<string, string>();
    return {
      get length() {
        return items.size;
      },
      clear: () => items.clear(),
      getItem: (key) => items.get(key) ?? null,
      key: (index) => [...items.keys()][index] ?? null,
      removeItem: (key) => void items.delete(key),
      setItem: (key, value) => void items.set(key, value),
    };
  }

  it("asks the dev issuer for the moderator's roles and keeps that session under its own key", async () => {
    const bodies: unknown[] = [];
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      bodies.push(JSON.parse(String(init.body)));
      return Response.json({ token: 'tok', tokenType: 'Bearer', expiresIn: 3600 });
    });
    const storage = memoryStorage();
    const player = new DevTokenSource('', storage);
    const moderator = new DevTokenSource('', storage, { key: 'avatar-pipeline.moderator-session', roles: ['moderator'] });
    await player.signIn('p1');
    await moderator.signIn('mod-1');
    expect(bodies).toEqual([{ playerId: 'p1' }, { playerId: 'mod-1', roles: ['moderator'] }]);
    expect(player.current()?.playerId).toBe('p1');
    expect(moderator.current()?.playerId).toBe('mod-1');
    moderator.signOut();
    expect(player.current()?.playerId).toBe('p1');
  });
});
