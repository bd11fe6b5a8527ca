/**
 * The moderator page (moderator.html): sign in with a token carrying the moderator role, decide
 * the open reviews (each with its picture and the model's scores: approve or reject, with an
 * optional note) and keep the ban list (ban an upload, lift a ban). Plain DOM like the player's
 * page; every text from the server goes in as text, never as markup.
 */
import './style.css';
import { ApiError } from './api.js';
import { DevTokenSource, type Session } from './auth.js';
import {
  banCountText,
  banReasonText,
  confidenceText,
  decidedByOtherText,
  decidedText,
  describeError,
  errorText,
  labelText,
  reviewCountText,
} from './messages.js';
import { MAX_NOTE_LENGTH, ModerationApi, type Ban, type Decision, type Page, type Review } from './moderation.js';
import { apiBaseOfPage, byId, onSignIn } from './page.js';

const apiBase = apiBaseOfPage();
const PAGE_SIZE = 20;
/** Its own key: the player page in the same tab keeps its session apart. */
const tokens = new DevTokenSource(apiBase, sessionStorage, { key: 'avatar-pipeline.moderator-session', roles: ['moderator'] });
const api = new ModerationApi({ baseUrl: apiBase, token: () => tokens.token() });

const ui = {
  signIn: byId<HTMLFormElement>('sign-in'),
  moderatorId: byId<HTMLInputElement>('moderator-id'),
  signInError: byId('sign-in-error'),
  desk: byId('desk'),
  moderatorName: byId('moderator-name'),
  signOut: byId<HTMLButtonElement>('sign-out'),
  reviewsHeading: byId('reviews-heading'),
  refreshReviews: byId<HTMLButtonElement>('refresh-reviews'),
  reviewsStatus: byId('reviews-status'),
  reviewsError: byId('reviews-error'),
  reviews: byId<HTMLOListElement>('reviews'),
  moreReviews: byId<HTMLButtonElement>('more-reviews'),
  bansHeading: byId('bans-heading'),
  banForm: byId<HTMLFormElement>('ban-form'),
  banUploadId: byId<HTMLInputElement>('ban-upload-id'),
  banError: byId('ban-error'),
  bansStatus: byId('bans-status'),
  bansError: byId('bans-error'),
  bans: byId<HTMLTableElement>('bans'),
  banRows: byId<HTMLTableSectionElement>('ban-rows'),
  moreBans: byId<HTMLButtonElement>('more-bans'),
};

let reviewCursor: string | undefined;
let banCursor: string | undefined;

type Child = Node | string;

/** An element with attributes and children (strings become text nodes). */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function time(iso: string): HTMLTimeElement {
  const date = new Date(iso);
  return el('time', { datetime: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}

/** A token without the role (403) or no longer valid (401): back to signing in, saying why. */
function isSignedOutBy(err: unknown): err is ApiError {
  return err instanceof ApiError && (err.status === 401 || err.status === 403);
}

function signedOutText(err: ApiError): string {
  return err.status === 403 ? 'This account is not a moderator. Sign in with one that is.' : errorText(err);
}

/**
 * A page with something on it: the server may answer a page with fewer items than asked, even
 * none, while more follow (its index holds items it then leaves out), so look a few pages on.
 */
async function fillPage<T>(load: (cursor: string | undefined) => Promise<Page<T>>, cursor: string | undefined): Promise<Page<T>> {
  let page = await load(cursor);
  for (let more = 1; page.items.length === 0 && page.cursor !== undefined && more < 5; more++) page = await load(page.cursor);
  return page;
}

// Reviews

function scoresOf(review: Review): HTMLElement {
  if (review.labels.length === 0) return el('p', { class: 'hint' }, 'The model reported no scores.');
  const list = el('ul', { class: 'scores', 'aria-label': 'Model scores' });
  const labels = [...review.labels].sort((a, b) => b.confidence - a.confidence);
  labels.forEach((label, index) => {
    const nameId = `score-${review.uploadId}-${index}`;
    list.append(
      el(
        'li',
        {},
        el('span', { id: nameId, class: 'score-name' }, labelText(label)),
        el('meter', { min: '0', max: '100', value: String(label.confidence), 'aria-labelledby': nameId }),
        el('span', { class: 'score-value' }, confidenceText(label.confidence)),
      ),
    );
  });
  return list;
}

function pictureOf(review: Review): HTMLElement {
  if (!review.imageUrl) return el('p', { class: 'picture missing' }, 'The picture is no longer available.');
  const img = el('img', {
    src: review.imageUrl,
    alt: `The picture ${review.playerId} uploaded`,
    width: '192',
    height: '192',
    decoding: 'async',
    referrerpolicy: 'no-referrer',
  });
  // The link is valid for 5 minutes: one shown later than that needs a fresh list.
  img.addEventListener('error', () => img.replaceWith(el('p', { class: 'picture missing' }, 'The picture could not be loaded. Refresh the list for a new link.')), { once: true });
  return el('div', { class: 'picture' }, img);
}

function reviewItem(review: Review): HTMLLIElement {
  const id = `review-${review.uploadId}`;
  const titleId = `${id}-title`;
  const noteId = `${id}-note`;
  const errorId = `${id}-error`;
  const heading = el('h3', { id: titleId, tabindex: '-1' }, 'Picture by ', el('strong', {}, review.playerId));
  const note = el('textarea', { id: noteId, name: 'note', rows: '2', maxlength: String(MAX_NOTE_LENGTH) });
  const error = el('p', { id: errorId, class: 'error', role: 'alert' });
  const button = (decision: Decision, text: string, className: string) =>
    el('button', { type: 'submit', name: 'decision', value: decision, class: className, 'aria-describedby': titleId }, text);
  const form = el(
    'form',
    { class: 'decide', novalidate: '' },
    el('label', { for: noteId }, 'Note ', el('span', { class: 'hint' }, '(optional, kept with the decision)')),
    note,
    el('div', { class: 'row' }, button('approve', 'Approve', 'approve'), button('reject', 'Reject', 'danger')),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const decision = (event.submitter as HTMLButtonElement | null)?.value;
    if (decision === 'approve' || decision === 'reject') void decide(review, decision, note.value, item);
  });
  const article = el(
    'article',
    { 'aria-labelledby': titleId },
    heading,
    pictureOf(review),
    el(
      'div',
      { class: 'details' },
      el(
        'dl',
        { class: 'facts' },
        el('dt', {}, 'Uploaded'),
        el('dd', {}, time(review.uploadedAt)),
        el('dt', {}, 'Waiting since'),
        el('dd', {}, time(review.requestedAt)),
        el('dt', {}, 'Upload id'),
        el('dd', {}, el('code', {}, review.uploadId)),
        el('dt', {}, 'Fingerprint'),
        el('dd', {}, el('code', {}, review.fingerprint)),
      ),
      el('h4', {}, 'Scores'),
      scoresOf(review),
      form,
    ),
  );
  const item = el('li', { id, class: 'review', 'data-upload-id': review.uploadId }, article);
  return item;
}

function showReviewCount(lead = ''): void {
  const text = reviewCountText(ui.reviews.children.length, reviewCursor !== undefined);
  ui.reviewsStatus.textContent = lead ? `${lead} ${text}` : text;
}

/**
 * The first page again (reset), or the next one. Items already shown are kept as they are, so a
 * note being typed survives a refresh.
 */
async function loadReviews(reset: boolean): Promise<void> {
  ui.reviewsError.textContent = '';
  const button = reset ? ui.refreshReviews : ui.moreReviews;
  button.disabled = true;
  ui.reviews.setAttribute('aria-busy', 'true');
  try {
    const page = await fillPage((cursor) => api.openReviews({ limit: PAGE_SIZE, cursor }), reset ? undefined : reviewCursor);
    const shown = new Map([...ui.reviews.querySelectorAll<HTMLLIElement>('li.review')].map((li) => [li.dataset['uploadId'], li]));
    const items = page.items.map((review) => shown.get(review.uploadId) ?? reviewItem(review));
    if (reset) ui.reviews.replaceChildren(...items);
    else ui.reviews.append(...items.filter((li) => !li.isConnected));
    reviewCursor = page.cursor;
    ui.moreReviews.hidden = reviewCursor === undefined;
    showReviewCount();
  } catch (err) {
    if (isSignedOutBy(err)) return leave(signedOutText(err));
    ui.reviewsError.textContent = describeError(err);
  } finally {
    button.disabled = false;
    ui.reviews.removeAttribute('aria-busy');
  }
}

/** Takes a decided review off the list, keeping the keyboard where the moderator was. */
function removeReview(item: HTMLLIElement, said: string): void {
  const next = (item.nextElementSibling ?? item.previousElementSibling)?.querySelector<HTMLElement>('h3');
  item.remove();
  showReviewCount(said);
  (next ?? ui.reviewsHeading).focus();
}

async function decide(review: Review, decision: Decision, note: string, item: HTMLLIElement): Promise<void> {
  const buttons = [...item.querySelectorAll<HTMLButtonElement>('button')];
  const error = item.querySelector<HTMLElement>('.error')!;
  error.textContent = '';
  buttons.forEach((b) => (b.disabled = true));
  item.setAttribute('aria-busy', 'true');
  try {
    await api.decide(review.uploadId, decision, note);
    removeReview(item, decidedText(decision, review.playerId));
    // A rejected picture's fingerprint joins the ban list.
    if (decision === 'reject') void loadBans(true);
    return;
  } catch (err) {
    if (isSignedOutBy(err)) return leave(signedOutText(err));
    if (err instanceof ApiError && err.code === 'already_decided') {
      // Say who was first; the buttons stay off (the next refresh drops the item).
      const current = await api.review(review.uploadId).catch(() => undefined);
      error.textContent = current ? decidedByOtherText(current) : describeError(err);
      return;
    }
    error.textContent = describeError(err);
    buttons.forEach((b) => (b.disabled = false));
  } finally {
    item.removeAttribute('aria-busy');
  }
}

// Bans

function banRow(ban: Ban): HTMLTableRowElement {
  const fingerprintId = `ban-${ban.id}-fingerprint`;
  const lift = el('button', { type: 'button', class: 'secondary', 'aria-describedby': fingerprintId }, 'Lift ban');
  const row = el(
    'tr',
    { 'data-ban-id': ban.id },
    el('td', {}, el('code', { id: fingerprintId }, ban.fingerprint)),
    el('td', {}, banReasonText(ban.reason)),
    el('td', {}, ban.by),
    el('td', {}, time(ban.createdAt)),
    el('td', {}, el('code', {}, ban.uploadId)),
    el('td', {}, lift),
  );
  lift.addEventListener('click', () => void liftBan(ban, row, lift));
  return row;
}

function showBanCount(lead = ''): void {
  const count = ui.banRows.children.length;
  ui.bans.hidden = count === 0;
  const text = banCountText(count, banCursor !== undefined);
  ui.bansStatus.textContent = lead ? `${lead} ${text}` : text;
}

async function loadBans(reset: boolean): Promise<void> {
  ui.bansError.textContent = '';
  ui.moreBans.disabled = true;
  try {
    const page = await fillPage((cursor) => api.bans({ limit: PAGE_SIZE, cursor }), reset ? undefined : banCursor);
    const rows = page.items.map(banRow);
    if (reset) ui.banRows.replaceChildren(...rows);
    else {
      const shown = new Set([...ui.banRows.rows].map((row) => row.dataset['banId']));
      ui.banRows.append(...rows.filter((row) => !shown.has(row.dataset['banId'])));
    }
    banCursor = page.cursor;
    ui.moreBans.hidden = banCursor === undefined;
    showBanCount();
  } catch (err) {
    if (isSignedOutBy(err)) return leave(signedOutText(err));
    ui.bansError.textContent = describeError(err);
  } finally {
    ui.moreBans.disabled = false;
  }
}

async function liftBan(ban: Ban, row: HTMLTableRowElement, button: HTMLButtonElement): Promise<void> {
  ui.bansError.textContent = '';
  button.disabled = true;
  try {
    const lifted = await api.liftBan(ban.id);
    const next = (row.nextElementSibling ?? row.previousElementSibling)?.querySelector<HTMLElement>('button');
    row.remove();
    showBanCount(lifted ? `Lifted the ban on ${ban.fingerprint}.` : `The ban on ${ban.fingerprint} was already lifted.`);
    (next ?? ui.bansHeading).focus();
  } catch (err) {
    if (isSignedOutBy(err)) return leave(signedOutText(err));
    ui.bansError.textContent = describeError(err);
    button.disabled = false;
  }
}

async function banUpload(uploadId: string): Promise<void> {
  const submit = ui.banForm.querySelector<HTMLButtonElement>('button[type="submit"]')!;
  submit.disabled = true;
  try {
    const ban = await api.ban(uploadId);
    ui.banForm.reset();
    await loadBans(true);
    showBanCount(`Banned the picture of upload ${ban.uploadId} (fingerprint ${ban.fingerprint}).`);
  } catch (err) {
    if (isSignedOutBy(err)) return leave(signedOutText(err));
    ui.banError.textContent = describeError(err);
  } finally {
    submit.disabled = false;
  }
}

// Signing in and out

async function enter(session: Session): Promise<void> {
  ui.signIn.hidden = true;
  ui.desk.hidden = false;
  ui.moderatorName.textContent = session.playerId;
  await Promise.all([loadReviews(true), loadBans(true)]);
}

function leave(reason = ''): void {
  tokens.signOut();
  ui.desk.hidden = true;
  ui.signIn.hidden = false;
  ui.reviews.replaceChildren();
  ui.banRows.replaceChildren();
  reviewCursor = undefined;
  banCursor = undefined;
  for (const line of [ui.reviewsStatus, ui.reviewsError, ui.bansStatus, ui.bansError, ui.banError]) line.textContent = '';
  ui.signInError.textContent = reason;
  ui.moderatorId.focus();
}

onSignIn({
  form: ui.signIn,
  id: ui.moderatorId,
  error: ui.signInError,
  invalid: 'Enter an id: letters, digits, dots, dashes and underscores.',
  signIn: (id) => tokens.signIn(id),
  enter,
  describe: describeError,
});

ui.signOut.addEventListener('click', () => leave());
// Both lists: a rejection elsewhere adds a ban, a ban elsewhere may end a review.
ui.refreshReviews.addEventListener('click', () => void Promise.all([loadReviews(true), loadBans(true)]));
ui.moreReviews.addEventListener('click', () => void loadReviews(false));
ui.moreBans.addEventListener('click', () => void loadBans(false));

ui.banForm.addEventListener('submit', (event) => {
  event.preventDefault();
  ui.banError.textContent = '';
  const uploadId = ui.banUploadId.value.trim();
  if (!ui.banUploadId.checkValidity() || !uploadId) {
    ui.banError.textContent = 'Enter an upload id (a UUID such as 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b).';
    return;
  }
  void banUpload(uploadId);
});

async function start(): Promise<void> {
  const session = tokens.current();
  if (session) await enter(session);
  else ui.moderatorId.focus();
  document.body.dataset['ready'] = 'true';
}

void start();
