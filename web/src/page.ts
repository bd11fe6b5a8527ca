/** What every page of the client needs: its elements by id, where the API is, and signing in. */
import type { Session } from './auth.js';

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

export interface SignInForm {
  form: HTMLFormElement;
  /** The id field; its `pattern` says which ids the dev issuer accepts. */
  id: HTMLInputElement;
  error: HTMLElement;
  /** What the error line says when the id is empty or does not match the pattern. */
  invalid: string;
  signIn: (id: string) => Promise<Session>;
  enter: (session: Session) => unknown;
  describe: (err: unknown) => string;
}

/** Both pages' sign-in form: checks the id, signs in, then enters or says why not. */
export function onSignIn(options: SignInForm): void {
  options.form.addEventListener('submit', (event) => {
    event.preventDefault();
    options.error.textContent = '';
    const id = options.id.value.trim();
    if (!options.id.checkValidity() || !id) {
      options.error.textContent = options.invalid;
      return;
    }
    options.signIn(id).then(options.enter, (err: unknown) => {
      options.error.textContent = options.describe(err);
    });
  });
}
