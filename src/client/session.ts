import { GatehouseError, type ProblemCode } from './errors.js';
import type { components } from './schema.js';
import { singleFlight } from './single-flight.js';
import type { TokenStore } from './token-store.js';

export type TokenResponse = components['schemas']['TokenResponse'];
export type User = components['schemas']['User'];

/**
 * `token`: the refresh token comes in the answer body and is kept in the store (apps, servers).
 * `cookie`: for browser apps; the refresh token stays in an httpOnly cookie and the store keeps the
 * session's CSRF token, which every cookie-mode refresh and logout must send back.
 */
export type Mode = 'token' | 'cookie';

/** Why a session ended without the user asking: the refresh was refused, or the session revoked. */
export interface SessionEnd {
  code: ProblemCode;
  error: GatehouseError;
}

export interface SessionOptions {
  mode: Mode;
  store: TokenStore;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Seconds before expiry at which the access token is renewed, at most half its lifetime. */
  refreshMargin: number;
  onSessionEnd?: (end: SessionEnd) => void;
  /** Sends a refresh with the stored credential; rejects with a GatehouseError when refused. */
  sendRefresh: (credential: string | undefined) => Promise<TokenResponse>;
}

interface AccessToken {
  token: string;
  /** Client clock, in ms: renew from here on... */
  renewAt: number;
  /** ...and do not send it at all from here on. */
  expiresAt: number;
}

/**
 * A refusal of the refresh itself (invalid, expired, reused or revoked token, wrong CSRF token,
 * disabled account) means logging in again. A 429, a 5xx or a network error passes.
 */
function endsSession(error: unknown): error is GatehouseError {
  return error instanceof GatehouseError && error.status >= 400 && error.status < 500 && error.status !== 429;
}

/**
 * The client's hold on one login: the access token in memory, the stored credential, and the
 * rule that decides when to refresh. Every way of starting, renewing and ending a session goes
 * through here, so there is one place that knows whether a session is open.
 */
export class TokenSession {
  #access: AccessToken | undefined;
  #user: User | undefined;
  /** Bumped by every start and end, so a refresh that lost a race with them changes nothing. */
  #epoch = 0;
  readonly #options: SessionOptions;
  readonly #refreshOnce: () => Promise<TokenResponse>;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.#refreshOnce = singleFlight(() => this.#refresh());
  }

  /** The user of the last token answer or /auth/me, while the session lasts. */
  get user(): User | undefined {
    return this.#user;
  }

  set user(user: User) {
    if (this.#access) this.#user = user;
  }

  /** Takes the tokens a login, register or refresh answered with. */
  async start(tokens: TokenResponse): Promise<void> {
    this.#epoch += 1;
    await this.#apply(tokens);
  }

  /**
   * An access token good for the next request: the one in memory, or a new one when it is about to
   * expire (or after a reload, from the stored credential). Undefined when there is no session.
   */
  async accessToken(): Promise<string | undefined> {
    const current = this.#access;
    if (current && this.#options.now() < current.renewAt) return current.token;
    if (!current && !(await this.#options.store.get())) return undefined;
    try {
      return (await this.#refreshOnce()).accessToken;
    } catch (error) {
      // A passing failure (rate limit, server error, network) leaves a token not yet expired in use.
      if (!endsSession(error) && current && this.#access === current && this.#options.now() < current.expiresAt) {
        return current.token;
      }
      throw error;
    }
  }

  /** Renews the tokens now; concurrent callers share one refresh. */
  refresh(): Promise<TokenResponse> {
    return this.#refreshOnce();
  }

  /** The server said this token has expired (the clocks disagree): the next request refreshes. */
  expired(token: string): void {
    if (this.#access?.token === token) this.#access = { token, renewAt: -Infinity, expiresAt: -Infinity };
  }

  /** The server said this token's session is revoked: the session is over. */
  async revoked(token: string, error: GatehouseError): Promise<void> {
    if (this.#access?.token === token) await this.#end(error, true);
  }

  /** The access token in memory, expired or not: logout accepts an expired one. */
  get currentToken(): string | undefined {
    return this.#access?.token;
  }

  /** Forgets the session here, as logout does (no onSessionEnd: the user asked for it). */
  async clear(): Promise<void> {
    this.#epoch += 1;
    this.#access = undefined;
    this.#user = undefined;
    await this.#options.store.remove();
  }

  async #refresh(): Promise<TokenResponse> {
    const epoch = this.#epoch;
    const credential = (await this.#options.store.get()) ?? undefined;
    let tokens: TokenResponse;
    try {
      tokens = await this.#options.sendRefresh(credential);
    } catch (error) {
      if (endsSession(error) && epoch === this.#epoch) await this.#end(error, this.#access !== undefined || credential !== undefined);
      throw error;
    }
    if (epoch === this.#epoch) await this.#apply(tokens);
    return tokens;
  }

  async #apply(tokens: TokenResponse): Promise<void> {
    const now = this.#options.now();
    const lifetime = tokens.expiresIn * 1000;
    const margin = Math.min(this.#options.refreshMargin * 1000, lifetime / 2);
    this.#access = { token: tokens.accessToken, renewAt: now + lifetime - margin, expiresAt: now + lifetime };
    this.#user = tokens.user;
    const credential = this.#options.mode === 'cookie' ? tokens.csrfToken : tokens.refreshToken;
    if (credential) await this.#options.store.set(credential);
  }

  /** `open`: there was a session to end (a refresh tried with nothing stored ends none). */
  async #end(error: GatehouseError, open: boolean): Promise<void> {
    await this.clear();
    if (open) this.#options.onSessionEnd?.({ code: error.code, error });
  }
}
