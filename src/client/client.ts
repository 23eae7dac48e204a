import createClient, { type Client } from 'openapi-fetch';
import { GatehouseError, errorFrom } from './errors.js';
import { accessTokenMiddleware } from './middleware.js';
import type { components, paths } from './schema.js';
import { TokenSession, type Mode, type SessionEnd, type TokenResponse, type User } from './session.js';
import { hasLocalStorage, localStorageStore, memoryStore, type TokenStore } from './token-store.js';

export type RegisterResponse = components['schemas']['RegisterResponse'];
export type SessionInfo = components['schemas']['Session'];
/** A login's answer for a user with a second factor: finish it with `verifyMfa`. */
export type MfaRequired = components['schemas']['MfaRequired'];

type JsonBody<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;

/** The client sets `useCookie` itself, from its mode. */
export type RegisterInput = Omit<JsonBody<'/auth/register', 'post'>, 'useCookie'>;
export type LoginInput = Omit<JsonBody<'/auth/login', 'post'>, 'useCookie'>;
export type VerifyMfaInput = Omit<JsonBody<'/auth/mfa/verify', 'post'>, 'useCookie'>;
export type UpdateMeInput = JsonBody<'/auth/me', 'patch'>;
export type ChangePasswordInput = JsonBody<'/auth/password/change', 'post'>;
export type ResetPasswordInput = JsonBody<'/auth/password/reset', 'post'>;
export type ChangeEmailInput = JsonBody<'/auth/email/change', 'post'>;

export interface GatehouseClientOptions {
  /** Where Gatehouse answers, with its mount prefix if it has one: `https://auth.example.com`. */
  baseUrl: string;
  /** `token` (the default) or `cookie` (browser apps): see Mode. */
  mode?: Mode;
  /**
   * Keeps the refresh token (cookie mode: the CSRF token) across reloads. Default: memory in token
   * mode; localStorage in cookie mode where there is one.
   */
  storage?: TokenStore;
  /** Called once when a session ends without the user asking: revoked, reused, expired, ... */
  onSessionEnd?: (end: SessionEnd) => void;
  /** Seconds before expiry at which the access token is renewed (at most half its lifetime). Default 30. */
  refreshMargin?: number;
  /** Default: the global fetch. */
  fetch?: (request: Request) => Promise<Response>;
  /** The clock the expiry is judged by, in milliseconds since the epoch. Default: Date.now. */
  now?: () => number;
}

export interface GatehouseClient {
  /**
   * The typed openapi-fetch client for every operation in the OpenAPI document. It sends the access
   * token and refreshes it as the methods below do; errors come back as `{ error }`.
   */
  readonly api: Client<paths>;
  /** The signed-in user, from the last login, refresh or me(); undefined without a session. */
  readonly user: User | undefined;
  /** Creates the account; opens a session unless the server requires email confirmation first. */
  register(input: RegisterInput): Promise<RegisterResponse>;
  /**
   * Opens a session with email and password, or, for a user with a second factor, answers
   * `{ mfaRequired: true, mfaToken, methods }` with no session yet: see `isMfaRequired` and `verifyMfa`.
   */
  login(input: LoginInput): Promise<TokenResponse | MfaRequired>;
  /** The second step of a login: the mfaToken with a TOTP or recovery code; opens the session. */
  verifyMfa(input: VerifyMfaInput): Promise<TokenResponse>;
  /** Ends this session on the server and here. Forgets it here even when the server cannot be reached. */
  logout(): Promise<void>;
  /** Ends every session of the user, this one included. */
  logoutAll(): Promise<void>;
  refresh(): Promise<TokenResponse>;
  /** A valid access token for your own API (renewed when about to expire), or undefined without a session. */
  accessToken(): Promise<string | undefined>;
  me(): Promise<User>;
  updateMe(input: UpdateMeInput): Promise<User>;
  changePassword(input: ChangePasswordInput): Promise<void>;
  forgotPassword(input: { email: string }): Promise<void>;
  resetPassword(input: ResetPasswordInput): Promise<void>;
  confirmEmail(input: { token: string }): Promise<User>;
  resendConfirmation(input: { email: string }): Promise<void>;
  changeEmail(input: ChangeEmailInput): Promise<void>;
  listSessions(): Promise<SessionInfo[]>;
  revokeSession(id: string): Promise<void>;
}

/** openapi-fetch's result, as the value or a thrown GatehouseError. */
async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw errorFrom(response, error);
  return data as T;
}

const CSRF_HEADER = 'x-csrf-token';

export function createGatehouseClient(options: GatehouseClientOptions): GatehouseClient {
  const mode = options.mode ?? 'token';
  const cookie = mode === 'cookie';
  const store = options.storage ?? (cookie && hasLocalStorage() ? localStorageStore() : memoryStore());
  const api = createClient<paths>({
    baseUrl: options.baseUrl,
    // Cookie mode: the refresh cookie must go with cross-origin calls to /auth/refresh and /auth/logout.
    ...(cookie ? { credentials: 'include' as const } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });

  const session = new TokenSession({
    mode,
    store,
    now: options.now ?? Date.now,
    refreshMargin: options.refreshMargin ?? 30,
    onSessionEnd: options.onSessionEnd,
    sendRefresh: (credential) =>
      unwrap(
        cookie
          ? api.POST('/auth/refresh', { headers: credential ? { [CSRF_HEADER]: credential } : {} })
          : api.POST('/auth/refresh', { body: credential ? { refreshToken: credential } : {} }),
      ),
  });
  api.use(accessTokenMiddleware(session));

  /** Logout and logout-all forget the session here whatever the server says; a 401 means it was gone already. */
  async function ending(call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
    } catch (error) {
      if (!(error instanceof GatehouseError && error.status === 401)) throw error;
    } finally {
      await session.clear();
    }
  }

  async function logoutCall(): Promise<void> {
    const credential = (await store.get()) ?? undefined;
    const token = session.currentToken;
    if (cookie && credential) {
      // By the cookie, so the answer also clears it.
      await unwrap(api.POST('/auth/logout', { headers: { [CSRF_HEADER]: credential } }));
    } else if (!cookie && credential) {
      await unwrap(api.POST('/auth/logout', { body: { refreshToken: credential } }));
    } else if (token) {
      await unwrap(api.POST('/auth/logout', { headers: { authorization: `Bearer ${token}` } }));
    }
  }

  return {
    api,
    get user() {
      return session.user;
    },
    async register(input) {
      const answer = await unwrap(api.POST('/auth/register', { body: { ...input, useCookie: cookie } }));
      if (answer.accessToken) await session.start(answer as TokenResponse);
      return answer;
    },
    async login(input) {
      const answer = await unwrap(api.POST('/auth/login', { body: { ...input, useCookie: cookie } }));
      if (isMfaRequired(answer)) return answer;
      await session.start(answer);
      return answer;
    },
    async verifyMfa(input) {
      const tokens = await unwrap(api.POST('/auth/mfa/verify', { body: { ...input, useCookie: cookie } }));
      await session.start(tokens);
      return tokens;
    },
    logout: () => ending(logoutCall),
    logoutAll: () => ending(() => unwrap(api.POST('/auth/logout-all'))),
    refresh: () => session.refresh(),
    accessToken: () => session.accessToken(),
    async me() {
      const user = await unwrap(api.GET('/auth/me'));
      session.user = user;
      return user;
    },
    async updateMe(input) {
      const user = await unwrap(api.PATCH('/auth/me', { body: input }));
      session.user = user;
      return user;
    },
    async changePassword(input) {
      await unwrap(api.POST('/auth/password/change', { body: input }));
    },
    async forgotPassword(input) {
      await unwrap(api.POST('/auth/password/forgot', { body: input }));
    },
    async resetPassword(input) {
      await unwrap(api.POST('/auth/password/reset', { body: input }));
    },
    async confirmEmail(input) {
      return (await unwrap(api.POST('/auth/email/confirm', { body: input }))).user;
    },
    async resendConfirmation(input) {
      await unwrap(api.POST('/auth/email/resend', { body: input }));
    },
    async changeEmail(input) {
      await unwrap(api.POST('/auth/email/change', { body: input }));
    },
    async listSessions() {
      return (await unwrap(api.GET('/auth/sessions'))).items;
    },
    async revokeSession(id) {
      await unwrap(api.DELETE('/auth/sessions/{id}', { params: { path: { id } } }));
    },
  };
}

/** Whether a login's answer asks for the second factor instead of opening a session. */
export function isMfaRequired(answer: TokenResponse | MfaRequired): answer is MfaRequired {
  return 'mfaRequired' in answer && answer.mfaRequired === true;
}
