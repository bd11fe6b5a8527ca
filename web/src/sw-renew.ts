/**
 * `pushsubscriptionchange`: the push service replaced or dropped this device's subscription,
 * possibly with no page open. The worker re-posts it with the token a page left it; without a
 * usable token it asks open pages to do it, and failing that the next page load does (pages
 * post their subscription on every load).
 */
import type { AvatarApi } from './api.js';
import type { ChannelMessage } from './payload.js';
import type { WorkerSession } from './sw-session.js';

export interface RenewDeps {
  pushManager: Pick<PushManager, 'subscribe'>;
  /** The API at the session's base URL, authorised with its token. */
  api: (session: WorkerSession) => Pick<AvatarApi, 'vapidPublicKey' | 'saveSubscription' | 'deleteSubscription'>;
  session: () => Promise<WorkerSession | undefined>;
  announce: (message: ChannelMessage) => void;
}

export type RenewOutcome = 'saved' | 'left-to-pages';

export async function renewSubscription(
  previous: PushSubscription | null,
  next: PushSubscription | null,
  deps: RenewDeps,
): Promise<RenewOutcome> {
  const session = await deps.session();
  if (!session) {
    deps.announce({ kind: 'resubscribe' });
    return 'left-to-pages';
  }
  const api = deps.api(session);
  try {
    // Some browsers hand over the new subscription; others leave it to us.
    const subscription =
      next ??
      (await deps.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: previous?.options.applicationServerKey ?? (await api.vapidPublicKey()),
      }));
    await api.saveSubscription(subscription.toJSON());
    if (previous && previous.endpoint !== subscription.endpoint) await api.deleteSubscription(previous.endpoint).catch(() => undefined);
    return 'saved';
  } catch {
    // An expired token (401), a server or push service out of reach: a page will try again.
    deps.announce({ kind: 'resubscribe' });
    return 'left-to-pages';
  }
}
