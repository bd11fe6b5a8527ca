/**
 * The page: sign in, show the avatar, upload a new one and follow it to its outcome, by push
 * when this device is subscribed and by polling always. A game keeps the flow and replaces the
 * token source (auth.ts), the wording (messages.ts) and the look (style.css).
 */
import './style.css';
import { AvatarApi, type Avatar, type Upload } from './api.js';
import { DevTokenSource, type Session } from './auth.js';
import { describeError, formatBytes, statusText, stillWaitingText } from './messages.js';
import { apiBaseOfPage, byId, onSignIn } from './page.js';
import { CHANNEL_NAME, type ChannelMessage } from './payload.js';
import { initialPushState, registerWorker, subscribe, tellWorker, unsubscribe, type PushState } from './push.js';
import { checkFile, postFile, StorageError } from './upload.js';
import { watchUpload, type Watch } from './watch.js';

const config = {
  /** The API's origin ('' = this page's own; see page.ts). */
  apiBase: apiBaseOfPage(),
  /** Mirrors the server's AVATAR_MAX_BYTES, to refuse early; the server still decides. */
  maxUploadBytes: 5 * 1024 * 1024,
};

const tokens = new DevTokenSource(config.apiBase);
const api = new AvatarApi({ baseUrl: config.apiBase, token: () => tokens.token() });

const ui = {
  signIn: byId<HTMLFormElement>('sign-in'),
  playerId: byId<HTMLInputElement>('player-id'),
  signInError: byId('sign-in-error'),
  account: byId('account'),
  playerName: byId('player-name'),
  signOut: byId<HTMLButtonElement>('sign-out'),
  avatar: byId<HTMLImageElement>('avatar'),
  avatarCaption: byId('avatar-caption'),
  upload: byId<HTMLFormElement>('upload'),
  file: byId<HTMLInputElement>('file'),
  uploadButton: byId<HTMLButtonElement>('upload-button'),
  maxSize: byId('max-size'),
  progress: byId<HTMLProgressElement>('progress'),
  status: byId('status'),
  uploadError: byId('upload-error'),
  push: byId('push'),
  pushHint: byId('push-hint'),
  enablePush: byId<HTMLButtonElement>('enable-push'),
};

let registration: ServiceWorkerRegistration | undefined;
let pushState: PushState = { kind: 'unsupported' };
let watch: Watch | undefined;
let watchedUpload: string | undefined;

function messageOf(err: unknown): string {
  return err instanceof StorageError ? err.message : describeError(err);
}

function showAvatar(avatar: Avatar | undefined): void {
  const { avatar: img } = ui;
  if (!avatar) {
    img.removeAttribute('srcset');
    img.src = '/placeholder.svg';
    img.alt = 'No avatar yet';
    ui.avatarCaption.textContent = 'No avatar yet';
    return;
  }
  const { thumbnails } = avatar;
  img.src = thumbnails['128'] ?? avatar.full;
  const candidates = Object.entries(thumbnails).map(([size, url]) => `${url} ${size}w`);
  if (candidates.length > 0) img.srcset = candidates.join(', ');
  img.sizes = '128px';
  img.alt = 'Your avatar';
  ui.avatarCaption.textContent = 'Your current avatar';
}

function showStatus(upload: Pick<Upload, 'status' | 'reason'>): void {
  ui.status.textContent = statusText(upload.status, upload.reason);
  ui.status.dataset['status'] = upload.status;
  if (upload.status !== 'pending' && upload.status !== 'processing') ui.progress.hidden = true;
}

const pushHints: Record<PushState['kind'], string> = {
  active: 'Notifications are on: you will hear when your avatar is ready, even with this tab in the background.',
  checking: 'Checking whether this device can receive notifications…',
  ask: 'Get a notification when your avatar is ready, even with this tab in the background.',
  denied: 'Notifications are blocked for this site, so this page checks for updates itself while it is open. Allow notifications in the site settings to be told in the background.',
  unsupported: 'This browser cannot receive notifications here, so this page checks for updates itself while it is open.',
  unavailable: 'Notifications are not available right now, so this page checks for updates itself while it is open.',
};

function showPushState(state: PushState): void {
  pushState = state;
  ui.push.dataset['state'] = state.kind;
  ui.pushHint.textContent = pushHints[state.kind];
  // The reason is for whoever debugs this device; players get the sentence above.
  ui.pushHint.title = state.kind === 'unavailable' ? state.detail : '';
  ui.enablePush.hidden = state.kind !== 'ask';
}

async function setUpPush(askPermission: boolean): Promise<void> {
  if (!registration) return;
  showPushState(await subscribe(registration, api, askPermission));
  // The API calls above renew an expiring token: pass on the current one.
  tellWorker(registration, tokens.current(), config.apiBase);
}

async function enter(session: Session): Promise<void> {
  ui.signIn.hidden = true;
  ui.account.hidden = false;
  ui.playerName.textContent = session.playerId;
  tellWorker(registration, session, config.apiBase);
  // Subscribing may take seconds (or never finish): the page does not wait for it.
  void setUpPush(false);
  try {
    showAvatar((await api.profile(session.playerId))?.avatar);
  } catch (err) {
    ui.uploadError.textContent = messageOf(err);
  }
}

function leave(): void {
  watch?.cancel();
  tokens.signOut();
  tellWorker(registration, undefined, config.apiBase);
  ui.account.hidden = true;
  ui.signIn.hidden = false;
  ui.status.textContent = '';
  ui.uploadError.textContent = '';
  showAvatar(undefined);
  ui.playerId.focus();
}

async function follow(uploadId: string): Promise<void> {
  watch?.cancel();
  watchedUpload = uploadId;
  watch = watchUpload({
    uploadId,
    fetchStatus: (id) => api.upload(id),
    onUpdate: showStatus,
    pushActive: () => pushState.kind === 'active',
  });
  try {
    const outcome = await watch.result;
    if (watchedUpload !== uploadId) return; // A newer upload took over.
    if (outcome?.status === 'ready') showAvatar(outcome.avatar);
    if (!outcome) ui.status.textContent = stillWaitingText(ui.status.dataset['status']);
  } catch (err) {
    ui.uploadError.textContent = messageOf(err);
  }
}

async function upload(file: File): Promise<void> {
  ui.uploadError.textContent = '';
  const problem = checkFile(file, config.maxUploadBytes);
  if (problem) {
    ui.uploadError.textContent = problem.message;
    return;
  }
  ui.uploadButton.disabled = true;
  ui.progress.value = 0;
  ui.progress.hidden = false;
  ui.status.textContent = 'Uploading…';
  ui.status.dataset['status'] = 'uploading';
  try {
    const ticket = await api.requestUpload(file.type, file.size);
    await postFile(ticket, file, (fraction) => {
      ui.progress.value = fraction;
    });
    ui.upload.reset();
    void follow(ticket.uploadId);
  } catch (err) {
    ui.progress.hidden = true;
    ui.status.textContent = '';
    delete ui.status.dataset['status'];
    ui.uploadError.textContent = messageOf(err);
  } finally {
    ui.uploadButton.disabled = false;
  }
}

function onChannelMessage(message: ChannelMessage): void {
  if (!tokens.current()) return;
  if (message.kind === 'resubscribe') {
    void setUpPush(false);
    return;
  }
  const { payload } = message;
  if (payload.status === 'ready') showAvatar(payload.avatar);
  if (payload.uploadId === watchedUpload && watch) watch.offer(payload);
  else showStatus(payload); // An upload from another device or an earlier visit.
}

onSignIn({
  form: ui.signIn,
  id: ui.playerId,
  error: ui.signInError,
  invalid: 'Enter a player id: letters, digits, dots, dashes and underscores.',
  signIn: (id) => tokens.signIn(id),
  enter,
  describe: messageOf,
});

ui.signOut.addEventListener('click', () => {
  void unsubscribe(registration, api).finally(leave);
});

ui.upload.addEventListener('submit', (event) => {
  event.preventDefault();
  const file = ui.file.files?.[0];
  if (!file) {
    ui.uploadError.textContent = 'Choose a picture first.';
    return;
  }
  void upload(file);
});

ui.enablePush.addEventListener('click', () => void setUpPush(true));

async function start(): Promise<void> {
  ui.maxSize.textContent = formatBytes(config.maxUploadBytes);
  if ('BroadcastChannel' in window) {
    new BroadcastChannel(CHANNEL_NAME).addEventListener('message', (event: MessageEvent<ChannelMessage>) => onChannelMessage(event.data));
  }
  registration = await registerWorker();
  showPushState(initialPushState(registration));
  const session = tokens.current();
  if (session) await enter(session);
  else ui.playerId.focus();
  document.body.dataset['ready'] = 'true';
}

void start();
