/** The client's logic without a browser: status following, wording, checks, payloads, API errors. */
import { describe, expect, it } from 'vitest';
import { ApiError, AvatarApi, type Upload } from '../src/api.js';
import { errorText, reasonText, statusText } from '../src/messages.js';
import { notificationIcon, parsePushPayload, type ChannelMessage } from '../src/payload.js';
import { renewSubscription, type RenewDeps } from '../src/sw-renew.js';
import { checkFile } from '../src/upload.js';
import { backoffDelay, pollingBackoff, pushBackoff, watchUpload, type WatchOptions } from '../src/watch.js';

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
