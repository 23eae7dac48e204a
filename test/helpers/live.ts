import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import { sessions } from '../../src/db/schema.js';
import { buildTestApp, type Test, type TestApp } from './app.js';
import type { DatabaseKind } from './databases.js';

export interface LiveApp extends TestApp {
  /** `http://127.0.0.1:<port>`: the app listening for real, for clients that speak HTTP. */
  baseUrl: string;
  /** How many requests to `path` (by `method`, default any) the server has received so far, from its own request log. */
  requestsTo(path: string, method?: string): number;
  /** How many times the session's refresh token has been rotated, from the database. */
  rotations(sessionId: string): Promise<number>;
  /** Resolves once the server answers `token_expired` to this access token (short ACCESS_TOKEN_TTL). */
  untilExpired(accessToken: string): Promise<void>;
}

interface RequestLogLine {
  msg?: string;
  req?: { url?: string; method?: string };
}

/** A test app listening on a free port of 127.0.0.1 (or `host`), closed with the test. */
export async function listenTestApp(
  t: Test,
  kind: DatabaseKind,
  options: { env?: Record<string, string>; host?: string } = {},
): Promise<LiveApp> {
  const logLines: string[] = [];
  const built = await buildTestApp(t, kind, { env: options.env, logLines });
  const host = options.host ?? '127.0.0.1';
  await built.app.listen({ host, port: 0 });
  const { port } = built.app.server.address() as { port: number };
  return {
    ...built,
    baseUrl: `http://${host}:${port}`,
    requestsTo: (path, method) =>
      logLines.filter((line) => {
        const { msg, req } = JSON.parse(line) as RequestLogLine;
        return msg === 'incoming request' && req?.url === path && (method === undefined || req.method === method);
      }).length,
    rotations: async (sessionId) => {
      const [row] = await built.database.db.select({ generation: sessions.refreshGeneration }).from(sessions).where(eq(sessions.id, sessionId));
      return row!.generation;
    },
    untilExpired: async (accessToken) => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const response = await fetch(`http://${host}:${port}/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
        if (((await response.json()) as { code?: string }).code === 'token_expired') return;
        await sleep(200);
      }
      throw new Error('the access token did not expire within 30 s');
    },
  };
}
