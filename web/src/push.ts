/**
 * The page's side of Web Push: registers the service worker, hands it the session, subscribes
 * with the server's VAPID key and posts the subscription. Every step may be impossible (no
 * service worker or Push API, permission denied, a push service out of reach, a server without
 * push) and each ends in a PushState the page shows; uploads then rely on polling alone.
 */
import { ApiError, type AvatarApi } from './api.js';
import type { Session } from './auth.js';
import type { WorkerMessage } from './payload.js';

export type PushState =
  | { kind: 'unsupported' }
  | { kind: 'denied' }
  /** Permission not asked yet: ask from a click (browsers ignore or punish prompts on load). */
  | { kind: 'ask' }
  /** Permission granted: subscribing is under way. */
  | { kind: 'checking' }
  | { kind: 'unavailable'; detail: string }
  | { kind: 'active' };

/**
 * How long subscribing may take. With its push service out of reach (a closed network, a
 * firewall) Chromium never settles the promise; registering normally takes a second or two.
 */
const SUBSCRIBE_TIMEOUT_MS = 10_000;

export function pushSupported(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** Registers /sw.js for the whole origin. Undefined where service workers are not available. */
export async function registerWorker(): Promise<ServiceWorkerRegistration | undefined> {
  if (!('serviceWorker' in navigator)) return undefined;
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/', updateViaCache: 'none' });
    return await navigator.serviceWorker.ready;
  } catch {
    return undefined;
  }
}

/** Tells the worker who is signed in and where the API is, so it can re-post a changed subscription on its own. */
export function tellWorker(registration: ServiceWorkerRegistration | undefined, session: Session | undefined, apiBase: string): void {
  const message: WorkerMessage = session ? { kind: 'session', token: session.token, expiresAt: session.expiresAt, apiBase } : { kind: 'signed-out' };
  registration?.active?.postMessage(message);
}

export function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function sameKey(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.byteLength) return false;
  const view = new Uint8Array(a);
  return view.every((byte, i) => byte === b[i]);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Where push stands without asking anything of the user. */
export function initialPushState(registration: ServiceWorkerRegistration | undefined): PushState {
  if (!registration || !pushSupported()) return { kind: 'unsupported' };
  if (Notification.permission === 'denied') return { kind: 'denied' };
  if (Notification.permission === 'default') return { kind: 'ask' };
  return { kind: 'checking' };
}

/**
 * Subscribes this device (reusing its subscription when the server key is unchanged) and posts
 * the subscription for the signed-in player. Posting every time is deliberate: the server
 * upserts by endpoint, and it is how a changed subscription reaches the server in browsers that
 * never fire `pushsubscriptionchange`.
 */
export async function subscribe(registration: ServiceWorkerRegistration, api: AvatarApi, askPermission: boolean): Promise<PushState> {
  if (!pushSupported()) return { kind: 'unsupported' };
  if (askPermission && Notification.permission === 'default') await Notification.requestPermission();
  if (Notification.permission === 'denied') return { kind: 'denied' };
  if (Notification.permission !== 'granted') return { kind: 'ask' };
  try {
    const key = base64UrlToBytes(await api.vapidPublicKey());
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
      // Subscribed with a previous server key: pushes signed with the new one would be refused.
      await subscription.unsubscribe();
      subscription = null;
    }
    subscription ??= await withTimeout(
      registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
      SUBSCRIBE_TIMEOUT_MS,
      'subscribing',
    );
    await api.saveSubscription(subscription.toJSON());
    return { kind: 'active' };
  } catch (err) {
    const detail = err instanceof ApiError ? `${err.code}: ${err.message}` : `${(err as Error).name}: ${(err as Error).message}`;
    return { kind: 'unavailable', detail };
  }
}

/** Removes this device's subscription on sign-out, so the next player here gets no one else's news. */
export async function unsubscribe(registration: ServiceWorkerRegistration | undefined, api: AvatarApi): Promise<void> {
  const subscription = await registration?.pushManager?.getSubscription().catch(() => null);
  if (!subscription) return;
  await api.deleteSubscription(subscription.endpoint).catch(() => undefined);
  await subscription.unsubscribe().catch(() => false);
}
