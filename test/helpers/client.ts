import { isMfaRequired, type MfaRequired, type TokenResponse, type TokenStore, type WebStorage } from '../../src/client/index.js';

/** A clock a test moves by hand, for the client's `now` option: expiry without waiting. */
export function manualClock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
  };
}

export interface SentRequest {
  method: string;
  path: string;
  credentials: Request['credentials'];
  authorization: string | null;
  csrf: string | null;
  cookie: string | null;
}

type Fetch = (request: Request) => Promise<Response>;

/**
 * The global fetch with what a browser adds to it: a cookie jar that honours Path and expiry (Node's
 * fetch keeps no cookies), and a record of what was sent. Real HTTP all the way.
 */
export function browserLikeFetch(): { fetch: Fetch; sent: SentRequest[]; cookies: Map<string, string> } {
  const jar = new Map<string, { value: string; path: string }>();
  const sent: SentRequest[] = [];
  const fetchWithJar: Fetch = async (request) => {
    const url = new URL(request.url);
    const cookies = [...jar].filter(([, c]) => url.pathname.startsWith(c.path)).map(([name, c]) => `${name}=${c.value}`);
    if (cookies.length > 0 && request.credentials === 'include') request.headers.set('cookie', cookies.join('; '));
    sent.push({
      method: request.method,
      path: url.pathname,
      credentials: request.credentials,
      authorization: request.headers.get('authorization'),
      csrf: request.headers.get('x-csrf-token'),
      cookie: request.headers.get('cookie'),
    });
    const response = await fetch(request);
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim());
      const [name, value] = [pair!.slice(0, pair!.indexOf('=')), pair!.slice(pair!.indexOf('=') + 1)];
      const path = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const expires = attributes.find((a) => /^expires=/i.test(a))?.slice(8);
      if (value === '' || (expires && new Date(expires).getTime() <= Date.now())) jar.delete(name);
      else jar.set(name, { value, path });
    }
    return response;
  };
  return { fetch: fetchWithJar, sent, get cookies() { return new Map([...jar].map(([name, c]) => [name, c.value])); } };
}

/** The global fetch, holding back answers from `path` until the test lets them go. */
export function gatedFetch(path: string): { fetch: Fetch; arrived: Promise<void>; release: () => void } {
  let arrive!: () => void;
  let release!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const fetchGated: Fetch = async (request) => {
    const response = await fetch(request);
    if (new URL(request.url).pathname === path) {
      arrive();
      await released;
    }
    return response;
  };
  return { fetch: fetchGated, arrived, release };
}

/** A Map behind the Web Storage interface: localStorage as Node 20 lacks it. */
export function webStorage(): WebStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** A store that answers only after a turn of the event loop, as AsyncStorage or SecureStore do. */
export function asyncStore(): TokenStore & { value: string | undefined; calls: string[] } {
  const later = () => new Promise((resolve) => setTimeout(resolve, 1));
  const store = {
    value: undefined as string | undefined,
    calls: [] as string[],
    async get() {
      store.calls.push('get');
      await later();
      return store.value;
    },
    async set(value: string) {
      store.calls.push('set');
      await later();
      store.value = value;
    },
    async remove() {
      store.calls.push('remove');
      await later();
      store.value = undefined;
    },
  };
  return store;
}

/** A login's answer that must have opened a session (the user has no second factor). */
export function sessionOpened(answer: TokenResponse | MfaRequired): TokenResponse {
  if (isMfaRequired(answer)) throw new Error('the login asked for a second factor');
  return answer;
}
