/** What bench/run.ts and bench/server.ts agree on: the password, the emails and the IPC messages. */

export const PASSWORD = 'correct horse battery staple';
export const USER_AGENT = 'gatehouse-bench';

export const bulkEmail = (i: number) => `user${i}@bench.gatehouse.test`;
/** The users of the many-users scenario, each with a session and a token of their own. */
export const manyEmail = (i: number) => `many${i}@bench.gatehouse.test`;
export const READER_EMAIL = 'reader@bench.gatehouse.test';
export const ADMIN_EMAIL = 'admin@bench.gatehouse.test';

/** Environment knobs the driver passes to the preparing process (besides Gatehouse's own variables). */
export interface ServerKnobs {
  BENCH_USERS: string;
  BENCH_REFRESH_TOKENS: string;
  /** Distinct users with a token each (many-users); 0: none made. */
  BENCH_MANY_USERS: string;
  /** Users with a token each, one per revocation of two-instances; 0: none made. */
  BENCH_REVOCATIONS: string;
}

/**
 * The data the scenarios need, made by a process of its own (`server.js --prepare`) that exits
 * before the measured server starts: the server's memory is then its own, not the bench's.
 */
export interface PreparedMessage {
  type: 'prepared';
  users: number;
  /** Emails of the bulk users: the login scenarios cycle through them, all with PASSWORD. */
  loginEmails: string[];
  /** One unused refresh token per refresh request, each of its own session. */
  refreshTokens: string[];
  /** Access token of a plain user (role `user`, permission `read`). */
  userToken: string;
  /** An API key of the same user, listing the permission `read`. */
  userApiKey: string;
  /** Access token of an admin (ensureAdmin). */
  adminToken: string;
  /** Access tokens of BENCH_MANY_USERS distinct users (role `user`), one session each. */
  manyTokens: string[];
  /** Users whose sessions two-instances revokes, one per revocation, with an access token each. */
  revocationVictims: { userId: string; token: string }[];
  prepareMs: number;
}

/** The measured server is listening. */
export interface ReadyMessage {
  type: 'ready';
  port: number;
  driver: 'pglite' | 'postgres';
  startMs: number;
}

/** Answers a ProfileMessage once the profiler has started, or written its profile to `file`. */
export interface ProfiledMessage {
  type: 'profiled';
  file?: string;
}

export interface FailedMessage {
  type: 'failed';
  message: string;
}

export type ServerMessage = PreparedMessage | ReadyMessage | ProfiledMessage | FailedMessage;

export interface StopMessage {
  type: 'stop';
}

/** With BENCH_CPU_PROF set: profile the server around one scenario, so each gets its own profile. */
export interface ProfileMessage {
  type: 'profile';
  action: 'start' | 'stop';
  /** With 'stop': the profile is written to BENCH_CPU_PROF/<name>.cpuprofile. */
  name?: string;
}

export type DriverMessage = StopMessage | ProfileMessage;
