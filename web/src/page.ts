/** What every page of the client needs: its elements by id, and where the API is. */

/**
 * The API's origin: the page's own ('', the gateway serves both) unless the page names another
 * in `<meta name="avatar-api" content="https://api.example.com">` (the gateway must then list
 * the page's origin in CORS_ORIGINS / corsOrigins).
 */
export function apiBaseOfPage(): string {
  return document.querySelector<HTMLMetaElement>('meta[name="avatar-api"]')?.content.trim().replace(/\/+$/, '') ?? '';
}

export function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}
