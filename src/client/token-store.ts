/**
 * Where the client keeps the one credential that outlives the page or the app process: the refresh
 * token, or in cookie mode the session's CSRF token (the refresh token itself is then in an httpOnly
 * cookie no script can read). The access token is never stored: it lives in memory only.
 *
 * Each method may answer at once or with a promise, so React Native's AsyncStorage or Expo's
 * SecureStore fit as they are.
 */
export interface TokenStore {
  get(): string | null | undefined | Promise<string | null | undefined>;
  set(value: string): void | Promise<void>;
  remove(): void | Promise<void>;
}

/** Forgets everything when the page or process goes: a reload means logging in again. */
export function memoryStore(): TokenStore {
  let value: string | undefined;
  return {
    get: () => value,
    set: (next) => {
      value = next;
    },
    remove: () => {
      value = undefined;
    },
  };
}

/** The part of the Web Storage API the store uses: localStorage, sessionStorage or a look-alike. */
export interface WebStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const DEFAULT_STORAGE_KEY = 'gatehouse.session';

/**
 * Keeps the credential in `localStorage` (or the Web Storage given), so the session survives a
 * reload and is shared by the tabs of one origin. Any script on the page can read it: in a browser,
 * prefer cookie mode, where what is stored here is only the CSRF token.
 */
export function localStorageStore(key: string = DEFAULT_STORAGE_KEY, storage?: WebStorage): TokenStore {
  const web = storage ?? (globalThis as { localStorage?: WebStorage }).localStorage;
  if (!web) {
    throw new TypeError('localStorage is not available here: pass a Web Storage, or use memoryStore() or a store of your own.');
  }
  return {
    get: () => web.getItem(key),
    set: (value) => web.setItem(key, value),
    remove: () => web.removeItem(key),
  };
}

/** Whether Web Storage is there to use: browsers, not Node 20 or React Native. */
export function hasLocalStorage(): boolean {
  return (globalThis as { localStorage?: WebStorage }).localStorage !== undefined;
}
