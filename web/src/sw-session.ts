/**
 * The service worker's memory of who is signed in: one record in IndexedDB (a worker may be
 * stopped between any two events and has no sessionStorage). The token is the same bearer token
 * the page holds in sessionStorage, on the same origin; sign-out deletes it.
 */

export interface WorkerSession {
  token: string;
  expiresAt: number;
  /** The API's origin ('' for the worker's own), as the page has it. */
  apiBase: string;
}

const DB = 'avatar-pipeline';
const STORE = 'session';
const KEY = 'current';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function open(): Promise<IDBDatabase> {
  const req = indexedDB.open(DB, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

async function withStore<T>(mode: IDBTransactionMode, use: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    return await request(use(db.transaction(STORE, mode).objectStore(STORE)));
  } finally {
    db.close();
  }
}

export async function loadSession(): Promise<WorkerSession | undefined> {
  const saved = (await withStore('readonly', (store) => store.get(KEY))) as Partial<WorkerSession> | undefined;
  // A record from before apiBase was kept meant the page's own origin.
  return saved?.token && saved.expiresAt !== undefined && saved.expiresAt > Date.now()
    ? { token: saved.token, expiresAt: saved.expiresAt, apiBase: saved.apiBase ?? '' }
    : undefined;
}

export async function saveSession(session: WorkerSession): Promise<void> {
  await withStore('readwrite', (store) => store.put(session, KEY));
}

export async function clearSession(): Promise<void> {
  await withStore('readwrite', (store) => store.delete(KEY));
}
