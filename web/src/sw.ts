/**
 * The service worker (/sw.js, scope /). On every push it shows a notification (a subscription
 * made with `userVisibleOnly: true` promises that, and browsers revoke push for workers that
 * break it) and tells open pages through the BroadcastChannel, so they swap the avatar without
 * a reload. A click on the notification focuses an open page or opens one.
 */
import { AvatarApi } from './api.js';
import { notificationText } from './messages.js';
import { CHANNEL_NAME, notificationIcon, parsePushPayload, workerMessageSchema, type ChannelMessage } from './payload.js';
import { renewSubscription } from './sw-renew.js';
import { clearSession, loadSession, saveSession } from './sw-session.js';

declare const self: ServiceWorkerGlobalScope;

const channel = new BroadcastChannel(CHANNEL_NAME);
const announce = (message: ChannelMessage) => channel.postMessage(message);

self.addEventListener('install', () => {
  // Nothing to cache: take over at once so pushes reach the newest code.
  void self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('message', (event) => {
  const message = workerMessageSchema.safeParse(event.data);
  if (!message.success) return;
  const { data } = message;
  event.waitUntil(data.kind === 'session' ? saveSession({ token: data.token, expiresAt: data.expiresAt, apiBase: data.apiBase }) : clearSession());
});

async function onPush(text: string | undefined): Promise<void> {
  const scope = self.registration.scope;
  const payload = parsePushPayload(text);
  if (!payload) {
    // Not ours or malformed: still show something, as the subscription promises.
    await self.registration.showNotification('Avatar update', { body: 'Open the game to see what changed.', tag: 'avatar-pipeline', data: { url: scope } });
    return;
  }
  announce({ kind: 'push', payload });
  const fallback = notificationText(payload.status, payload.reason);
  const icon = notificationIcon(payload);
  await self.registration.showNotification(payload.title ?? fallback.title, {
    body: payload.body ?? fallback.body,
    // One notification per upload: a redelivered push replaces it instead of stacking a twin.
    tag: `avatar-upload-${payload.uploadId}`,
    data: { url: scope, uploadId: payload.uploadId },
    ...(icon ? { icon } : {}),
  });
}

self.addEventListener('push', (event) => {
  event.waitUntil(onPush(event.data?.text()));
});

async function focusOrOpen(url: string): Promise<void> {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const page = windows.find((client) => client.url.startsWith(self.registration.scope));
  if (page) {
    await page.focus();
    return;
  }
  await self.clients.openWindow(url);
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const { url } = (event.notification.data ?? {}) as { url?: unknown };
  const scope = self.registration.scope;
  event.waitUntil(focusOrOpen(typeof url === 'string' && url.startsWith(scope) ? url : scope));
});

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    renewSubscription(event.oldSubscription, event.newSubscription, {
      pushManager: self.registration.pushManager,
      api: ({ token, apiBase }) => new AvatarApi({ baseUrl: apiBase, token: () => Promise.resolve(token) }),
      session: loadSession,
      announce,
    }),
  );
});
