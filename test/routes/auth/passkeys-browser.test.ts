/**
 * Passkeys as users meet them: Debian's chromium (driven by playwright-core) with a CDP virtual
 * authenticator (CTAP2, internal transport, resident keys, user verification), a page calling
 * navigator.credentials.create/get with Gatehouse's options. The page and the API share one
 * origin, http://localhost:<port> (the page server forwards /api/* to Gatehouse), so the RP ID is
 * `localhost`, as in development. `.ci/run` installs chromium when it is missing.
 */
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, request as forward } from 'node:http';
import { eq } from 'drizzle-orm';
import { chromium, type Page } from 'playwright-core';
import tap from 'tap';
import { passkeys } from '../../../src/db/schema.js';
import type { Test } from '../../helpers/app.js';
import { DATABASE_KINDS } from '../../helpers/databases.js';
import { claimsOf } from '../../helpers/jwt.js';
import { listenTestApp } from '../../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../../helpers/users.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * The page's code: base64url <-> ArrayBuffer by hand, so that it does not depend on the newest
 * PublicKeyCredential.parse*FromJSON helpers, and each ceremony as an app would write it.
 */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Passkeys</title></head><body>
<script>
const toBytes = (b64u) => Uint8Array.from(atob(b64u.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const toB64u = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
const descriptors = (list) => (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));

async function api(path, body, accessToken) {
  const response = await fetch('/api' + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(accessToken ? { authorization: 'Bearer ' + accessToken } : {}) },
    body: JSON.stringify(body ?? {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

window.passkeys = {
  api,
  async register(accessToken, name) {
    const { body: ceremony } = await api('/auth/passkeys/registration/options', undefined, accessToken);
    const o = ceremony.options;
    const credential = await navigator.credentials.create({
      publicKey: { ...o, challenge: toBytes(o.challenge), user: { ...o.user, id: toBytes(o.user.id) }, excludeCredentials: descriptors(o.excludeCredentials) },
    });
    const response = {
      id: credential.id,
      rawId: toB64u(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64u(credential.response.clientDataJSON),
        attestationObject: toB64u(credential.response.attestationObject),
        transports: credential.response.getTransports(),
      },
    };
    return api('/auth/passkeys/registration/verify', { challengeId: ceremony.challengeId, response, name }, accessToken);
  },
  async signIn(mfaToken) {
    const { body: ceremony } = await api('/auth/passkeys/authentication/options', mfaToken ? { mfaToken } : {});
    const o = ceremony.options;
    const credential = await navigator.credentials.get({ publicKey: { ...o, challenge: toBytes(o.challenge), allowCredentials: descriptors(o.allowCredentials) } });
    const response = {
      id: credential.id,
      rawId: toB64u(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64u(credential.response.clientDataJSON),
        authenticatorData: toB64u(credential.response.authenticatorData),
        signature: toB64u(credential.response.signature),
        userHandle: credential.response.userHandle ? toB64u(credential.response.userHandle) : undefined,
      },
    };
    const verified = await api('/auth/passkeys/authentication/verify', { challengeId: ceremony.challengeId, response, ...(mfaToken ? { mfaToken } : {}) });
    return { ...verified, allowCredentials: (o.allowCredentials || []).length };
  },
};
document.title = 'ready';
</script></body></html>`;

/**
 * Serves the page at http://localhost:<port>/ and forwards /api/* to Gatehouse, so both are one
 * origin. Started first, so Gatehouse's WEBAUTHN_ORIGINS can name it; `gatehouseUrl` is set after.
 */
async function servePage(t: Test): Promise<{ origin: string; port: number; gatehouseUrl: string }> {
  const page = { origin: '', port: 0, gatehouseUrl: '' };
  const server = createServer((incoming, outgoing) => {
    if (!incoming.url?.startsWith('/api/')) {
      outgoing.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    const upstream = forward(
      `${page.gatehouseUrl}${incoming.url.slice('/api'.length)}`,
      { method: incoming.method, headers: { ...incoming.headers, host: new URL(page.gatehouseUrl).host } },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    upstream.on('error', () => outgoing.writeHead(502).end());
    incoming.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  page.port = (server.address() as { port: number }).port;
  page.origin = `http://localhost:${page.port}`;
  return page;
}

const inPage = <T>(page: Page, script: string): Promise<T> => page.evaluate(script) as Promise<T>;

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
}
interface Tokens {
  accessToken: string;
  refreshToken: string;
  user: { id: string; aal: string };
}

tap.test('passkeys in Chromium with a virtual authenticator: register, log out, sign in usernameless, then as the second step after a password', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`no chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or set CHROMIUM_PATH`);
    return;
  }
  const site = await servePage(t);
  const gatehouse = await listenTestApp(t, DATABASE_KINDS.at(-1)!, {
    env: { APP_URL: site.origin, WEBAUTHN_RP_NAME: 'Gatehouse test' },
  });
  t.equal(gatehouse.config.webauthn.rpId, 'localhost', "the RP ID is APP_URL's host");
  site.gatehouseUrl = gatehouse.baseUrl;

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--host-resolver-rules=MAP localhost 127.0.0.1'],
  });
  t.teardown(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`${site.origin}/`);
  await page.waitForFunction('document.title === "ready"');

  const email = uniqueEmail('passkey');
  const registered = await inPage<Answer<Tokens>>(page, `passkeys.api('/auth/register', ${JSON.stringify({ email, password: PASSWORD })})`);
  t.equal(registered.status, 201, 'signed up from the page');

  const created = await inPage<Answer<{ id: string; name: string; lastUsedAt: null }>>(page, `passkeys.register(${JSON.stringify(registered.body.accessToken)}, 'Chromium')`);
  t.equal(created.status, 201, `the browser's passkey is registered: ${JSON.stringify(created.body)}`);
  t.match(created.body, { name: 'Chromium', lastUsedAt: null });
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  t.equal(credentials.length, 1, 'the authenticator holds one credential');
  t.match(credentials[0], { isResidentCredential: true, rpId: 'localhost' }, 'discoverable, for RP localhost');
  const [stored] = await gatehouse.database.db.select().from(passkeys).where(eq(passkeys.userId, registered.body.user.id));
  t.equal(Buffer.from(credentials[0]!.credentialId, 'base64').toString('base64url'), stored!.credentialId, 'the credential Gatehouse stored');
  t.equal(Buffer.from(credentials[0]!.userHandle!, 'base64').toString('base64url'), stored!.userHandle, 'with its opaque user handle');

  const again = await inPage<Answer>(page, `passkeys.register(${JSON.stringify(registered.body.accessToken)}, 'Twice').catch((e) => ({ status: 0, body: e.name }))`);
  t.same(again, { status: 0, body: 'InvalidStateError' }, 'excludeCredentials: the browser refuses to register the same authenticator twice');

  const loggedOut = await inPage<Answer>(page, `passkeys.api('/auth/logout', { refreshToken: ${JSON.stringify(registered.body.refreshToken)} })`);
  t.equal(loggedOut.status, 204, 'logged out');

  const usernameless = await inPage<Answer<Tokens> & { allowCredentials: number }>(page, 'passkeys.signIn()');
  t.equal(usernameless.status, 200, `signed in with the passkey alone: ${JSON.stringify(usernameless.body)}`);
  t.equal(usernameless.allowCredentials, 0, 'no email asked, no credentials listed');
  t.match(claimsOf(usernameless.body.accessToken), { sub: registered.body.user.id, aal: 'aal2', amr: ['hwk', 'user'] });
  const me = await fetch(`${gatehouse.baseUrl}/auth/me`, { headers: { authorization: `Bearer ${usernameless.body.accessToken}` } });
  t.equal(((await me.json()) as { email: string }).email, email, 'the token is good for /auth/me');

  const login = await inPage<Answer<{ mfaRequired: boolean; methods: string[]; mfaToken: string }>>(page, `passkeys.api('/auth/login', ${JSON.stringify({ email, password: PASSWORD })})`);
  t.match(login.body, { mfaRequired: true, methods: ['passkey'] }, 'a password login now asks for the passkey');
  const second = await inPage<Answer<Tokens> & { allowCredentials: number }>(page, `passkeys.signIn(${JSON.stringify(login.body.mfaToken)})`);
  t.equal(second.status, 200, `the passkey as the second step: ${JSON.stringify(second.body)}`);
  t.equal(second.allowCredentials, 1, "the user's passkey listed");
  t.match(claimsOf(second.body.accessToken), { sub: registered.body.user.id, aal: 'aal2', amr: ['pwd', 'hwk', 'mfa'] });

  const [used] = await gatehouse.database.db.select().from(passkeys).where(eq(passkeys.id, stored!.id));
  const { credentials: after } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  t.equal(used!.counter, after[0]!.signCount, "Gatehouse keeps the authenticator's counter");
  t.ok(used!.lastUsedAt, 'lastUsedAt set');
});
