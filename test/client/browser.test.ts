/**
 * The client in a real browser (Debian's chromium, driven by playwright-core), in cookie mode, from a
 * page on one origin against Gatehouse on another: what an SPA does, with CORS, SameSite=Strict
 * cookies and the CSRF header for real. `.ci/run` installs chromium when it is missing.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import tap from 'tap';
import type { GatehouseClient, WebStorage } from '../../src/client/index.js';
import type { Test } from '../helpers/app.js';
import { DATABASE_KINDS } from '../helpers/databases.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** What the page puts on `window` for the test to drive. */
interface PageGlobals {
  gatehouse: GatehouseClient;
  /** Sets the client's clock (ms since the epoch); the page starts with it frozen at `?now=`. */
  setClock(ms: number): void;
  sessionEnds: string[];
  localStorage: WebStorage;
}

/** The client bundled for the browser, as an app's bundler would: one ESM file, no Node built-ins. */
async function clientBundle(): Promise<string> {
  const result = await build({
    entryPoints: [join(import.meta.dirname, '../../src/client/index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

function pageHtml(gatehouseUrl: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>SPA</title></head><body>
<script type="module">
import { createGatehouseClient } from '/client.js';
let frozen = Number(new URL(location.href).searchParams.get('now')) || undefined;
window.setClock = (ms) => { frozen = ms; };
window.sessionEnds = [];
window.gatehouse = createGatehouseClient({
  baseUrl: ${JSON.stringify(gatehouseUrl)},
  mode: 'cookie',
  now: () => frozen ?? Date.now(),
  onSessionEnd: (end) => window.sessionEnds.push(end.code),
});
document.title = 'ready';
</script></body></html>`;
}

/**
 * Serves the page and the bundle from http://localhost:<port>, a different origin from Gatehouse.
 * Started first, so Gatehouse's CORS_ORIGINS can name its origin; `gatehouseUrl` is set after.
 */
async function servePage(t: Test): Promise<{ origin: string; gatehouseUrl: string }> {
  const bundle = await clientBundle();
  const page = { origin: '', gatehouseUrl: '' };
  const server = createServer((request, response) => {
    if (request.url === '/client.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else {
      response.writeHead(200, { 'content-type': 'text/html' }).end(pageHtml(page.gatehouseUrl));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  page.origin = `http://localhost:${(server.address() as { port: number }).port}`;
  return page;
}

async function launch(t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // localhost is one name for both servers (SameSite=Strict is about names, not ports): pin it to
    // the IPv4 loopback they listen on.
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--host-resolver-rules=MAP localhost 127.0.0.1'],
  });
  t.teardown(() => browser.close());
  return browser;
}

const inPage = <T>(page: Page, fn: (globals: PageGlobals) => Promise<T> | T): Promise<T> =>
  page.evaluate(`(${fn.toString()})(window)`) as Promise<T>;

/** Opens (or with no url, reloads) the page and waits for its client. */
async function load(page: Page, url?: string): Promise<void> {
  await (url === undefined ? page.reload() : page.goto(url));
  await page.waitForFunction('document.title === "ready"');
}

interface Outcome<T> {
  value?: T;
  code?: string;
}

/** Runs a client call in the page; a refusal comes back as its code (errors do not cross over whole). */
function attempt<T>(page: Page, call: string): Promise<Outcome<T>> {
  return page.evaluate(
    `window.gatehouse.${call}.then((value) => ({ value }), (error) => ({ code: error.code ?? String(error) }))`,
  ) as Promise<Outcome<T>>;
}

tap.test('a browser app in cookie mode: register, reload, me, expiry and refresh, logout; the docs page', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`no chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or set CHROMIUM_PATH`);
    return;
  }
  const started = Date.now();
  const spa = await servePage(t);
  // A 4 s access token, checked to the second (a refreshed one lives 3 s at least, ample for the
  // retry), and the page's clock frozen: only the server decides when the token has expired.
  const gatehouse = await listenTestApp(t, DATABASE_KINDS.at(-1)!, {
    host: '127.0.0.1',
    env: { CORS_ORIGINS: spa.origin, COOKIE_SECURE: 'false', ACCESS_TOKEN_TTL: '4s', JWT_CLOCK_SKEW: '0s' },
  });
  spa.gatehouseUrl = gatehouse.baseUrl.replace('127.0.0.1', 'localhost');
  const browser = await launch(t);
  const context = await browser.newContext();
  const page = await context.newPage();
  const sent: string[] = [];
  page.on('request', (request) => {
    if (request.method() !== 'OPTIONS' && request.url().startsWith(spa.gatehouseUrl)) sent.push(new URL(request.url()).pathname);
  });
  const frozen = Date.now();
  await load(page, `${spa.origin}/?now=${frozen}`);
  t.comment(`browser and servers up in ${Date.now() - started} ms`);

  const email = uniqueEmail('spa');
  const registered = await attempt<{ user: { email: string }; refreshToken?: string; csrfToken?: string }>(
    page,
    `register({ email: ${JSON.stringify(email)}, password: ${JSON.stringify(PASSWORD)} })`,
  );
  t.equal(registered.value?.user.email, email, 'registered from the page, across origins');
  t.notOk(registered.value?.refreshToken, 'no refresh token reaches the page');
  const [cookie] = (await context.cookies(`${spa.gatehouseUrl}/auth/refresh`)).filter((c) => c.name === 'gatehouse_refresh');
  t.match(cookie, { httpOnly: true, sameSite: 'Strict', path: '/auth' }, 'it is in an httpOnly SameSite=Strict cookie');
  t.equal(
    await inPage(page, (w) => w.localStorage.getItem('gatehouse.session')),
    registered.value?.csrfToken,
    'localStorage keeps only the CSRF token',
  );

  await load(page);
  sent.length = 0;
  const me = await attempt<{ email: string }>(page, 'me()');
  t.equal(me.value?.email, email, 'after a reload the session goes on, through the cookie');
  t.same(sent, ['/auth/refresh', '/auth/me'], 'by one refresh first (no access token survives a reload)');

  // The server's clock moves on; the page's does not, so it learns of the expiry from a 401.
  await gatehouse.untilExpired((await attempt<string>(page, 'accessToken()')).value!);
  sent.length = 0;
  t.equal((await attempt<{ email: string }>(page, 'me()')).value?.email, email, 'an expired token...');
  t.same(sent, ['/auth/me', '/auth/refresh', '/auth/me'], '...is refused, refreshed and the call retried');

  sent.length = 0;
  await inPage(page, (w) => w.setClock(Date.now() + 3_600_000));
  t.equal((await attempt<{ email: string }>(page, 'me()')).value?.email, email, 'a token the page knows has expired...');
  t.same(sent, ['/auth/refresh', '/auth/me'], '...is refreshed before the call');
  t.equal(gatehouse.requestsTo('/auth/refresh', 'POST'), 3, 'three refreshes reached the server, each once');

  sent.length = 0;
  t.equal((await attempt(page, 'logout()')).code, undefined, 'logout');
  t.same(sent, ['/auth/logout'], 'by the cookie, in one request');
  t.same((await context.cookies(`${spa.gatehouseUrl}/auth/refresh`)).filter((c) => c.name === 'gatehouse_refresh'), [], 'the cookie is gone');
  t.equal(await inPage(page, (w) => w.localStorage.getItem('gatehouse.session')), null, 'and the CSRF token');
  await load(page);
  t.same(await attempt(page, 'me()'), { code: 'token_missing' }, 'after a reload, signed out');
  t.same(await inPage(page, (w) => w.sessionEnds), [], 'nothing ended the session but the user');

  // The docs page: its own CSP must let Swagger UI run, with nothing refused.
  const docs = await context.newPage();
  const violations: string[] = [];
  docs.on('console', (message) => {
    if (/content security policy/i.test(message.text())) violations.push(message.text());
  });
  await docs.addInitScript(`
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
  `);
  await docs.goto(`${spa.gatehouseUrl}/docs`);
  await docs.waitForSelector('.swagger-ui .info .title', { timeout: 10_000 });
  t.match(await docs.textContent('.swagger-ui .info .title'), /Gatehouse/, 'Swagger UI rendered the document');
  t.same([...violations, ...((await docs.evaluate('window.cspViolations')) as string[])], [], 'with no CSP violation');

  t.comment(`browser test took ${Date.now() - started} ms`);
});
