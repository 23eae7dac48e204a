import { createHash, createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCallback, randomUUID, type JsonWebKey } from 'node:crypto';
import { promisify } from 'node:util';
import { and, eq, ne, sql } from 'drizzle-orm';
import { createSigner, createVerifier } from 'fast-jwt';
import type { Config, JwtAlg } from '../config.js';
import type { Database } from '../db/client.js';
import { signingKeys, type SigningKeyRow } from '../db/schema.js';
import { problem } from '../errors.js';
import type { KeyRing } from '../lib/encryption.js';
import { ACCESS_CHANNEL } from './access-cache.js';
import type { Tx } from './users.js';

// Activations and revocations one at a time: two keys activated at once would each retire the
// current key as their snapshot saw it and both become current (the unique index then answers a 500).
const KEY_CHANGE_LOCK = 4_718_201_341;

async function lockKeyChanges(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${KEY_CHANGE_LOCK})`);
}
import { deriveKey } from './tokens.js';

export type SigningAlg = Exclude<JwtAlg, 'HS256'>;
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA', 'RS256'];
export type SigningKeyStatus = SigningKeyRow['status'];
/** A public JWK as published: the key's public members, kid, alg and use. */
export type PublicJwk = Record<string, string>;

/** A signing key as the admin API shows it: never a private part. */
export interface SigningKeyView {
  kid: string;
  alg: SigningAlg;
  status: SigningKeyStatus;
  publicJwk: PublicJwk;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  revokedAt: Date | null;
}

/** Where key changes are said (pino's logger fits). */
export interface SigningKeysLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * Header parameters by which a token would name or carry its own key. Gatehouse picks keys by kid
 * from its own set only; a token that asks for another source is refused rather than half-honoured.
 */
const KEY_BEARING_HEADERS = ['jku', 'jwk', 'x5u', 'x5c'];
/** The NOTIFY payload on the access channel saying "signing keys changed": no user id looks like it. */
export const KEYS_NOTICE = 'signing-keys';

/** The public members of a JWK, in RFC 7638's order (the ones its thumbprint hashes). */
const PUBLIC_MEMBERS = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] } as const;

function publicMembers(jwk: JsonWebKey): Record<string, string> {
  const names = PUBLIC_MEMBERS[jwk.kty as keyof typeof PUBLIC_MEMBERS];
  if (!names) throw new Error(`unsupported key type ${String(jwk.kty)}`);
  const members: Record<string, string> = {};
  for (const name of names) {
    const value = jwk[name];
    if (typeof value !== 'string') throw new Error(`the JWK has no "${name}"`);
    members[name] = value;
  }
  return members;
}

/** RFC 7638: the SHA-256 of the required public members, in lexicographic order, without spaces. */
export function jwkThumbprint(jwk: JsonWebKey): string {
  return createHash('sha256').update(JSON.stringify(publicMembers(jwk))).digest('base64url');
}

/** The JWS algorithm a key is for: P-256 is ES256, Ed25519 EdDSA, RSA RS256 (2048 bits or more). */
export function algOf(jwk: JsonWebKey): SigningAlg {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'RSA' && Buffer.from(String(jwk.n), 'base64url').length >= 256) return 'RS256';
  throw new Error('a signing key must be EC P-256, OKP Ed25519 or RSA of 2048 bits or more');
}

/** The JWK as /.well-known/jwks.json shows it. */
export function publishedJwk(jwk: JsonWebKey): PublicJwk {
  return { ...publicMembers(jwk), kid: jwkThumbprint(jwk), alg: algOf(jwk), use: 'sig' };
}

const generateKeyPair = promisify(generateKeyPairCallback);

/**
 * A new private key for `alg`, as a JWK. Generated on libuv's thread pool: an RSA key takes tens to
 * hundreds of milliseconds, which on the event loop every request in flight would wait for.
 */
export async function generatePrivateJwk(alg: SigningAlg): Promise<JsonWebKey> {
  const { privateKey } =
    alg === 'ES256'
      ? await generateKeyPair('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? await generateKeyPair('ed25519')
        : await generateKeyPair('rsa', { modulusLength: 2048 });
  return privateKey.export({ format: 'jwk' });
}

type Verify = (token: string) => unknown;
type Sign = (payload: Record<string, unknown>) => string;

interface LoadedKey {
  view: SigningKeyView;
  /** The key as fast-jwt takes it (PEM, or the HMAC secret). */
  key: string;
  verify: Verify;
  verifyIgnoringExpiry: Verify;
}

/** The JOSE header of a compact JWS, read without checking anything; throws when there is none. */
function headerOf(token: string): Record<string, unknown> {
  const dot = token.indexOf('.');
  if (dot < 1) throw new Error('not a JWS');
  const header: unknown = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'));
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('not a JWS');
  return header as Record<string, unknown>;
}

/**
 * The keys that sign and verify access tokens, held in memory: verifying never reads the database.
 * With JWT_ALG=HS256 tokens are signed with JWT_SECRET, as before, and nothing is published. With an
 * asymmetric JWT_ALG the keys come from the signing_keys table (one generated at the first start) or
 * from JWT_PRIVATE_KEYS; changes made through the admin API reach every instance by a NOTIFY on the
 * access channel, and are read again whenever LISTEN comes back after a loss.
 *
 * Tokens signed with JWT_SECRET (HS256, no kid or the secret's kid) stay valid after a switch to an
 * asymmetric JWT_ALG, but only those that expire within ACCESS_TOKEN_TTL of the switch (the first
 * key's creation): a token issued before it cannot live longer, and a forged one gains nothing later.
 */
export class SigningKeys {
  private keys = new Map<string, LoadedKey>();
  private signer?: { kid: string; sign: Sign };
  private readonly hmac: { kid: string; key: string; sign: Sign; verify: Verify; verifyIgnoringExpiry: Verify };
  /** Seconds since the epoch: HS256 tokens expiring later are refused (Infinity under JWT_ALG=HS256). */
  private hmacUntil = Number.POSITIVE_INFINITY;
  private readonly changeListeners = new Set<() => void>();
  private stopListening?: () => Promise<void>;
  private loading: Promise<void> = Promise.resolve();
  private readonly origin = randomUUID();

  constructor(
    private readonly database: Database,
    private readonly config: Config,
    private readonly keyRing: KeyRing,
    private readonly log?: SigningKeysLog,
  ) {
    const secret = config.jwtSecret;
    // Not published; only tells a token signed with the secret from one naming an unknown key.
    const kid = deriveKey(secret, 'jwt-kid').subarray(0, 16).toString('base64url');
    this.hmac = { kid, key: secret, sign: this.signerFor(secret, 'HS256', kid), ...this.verifiersFor(secret, 'HS256') };
  }

  /** Whether keys are kept in signing_keys (and so may be rotated through the admin API). */
  get managed(): boolean {
    return this.config.jwtAlg !== 'HS256' && !this.config.jwtPrivateKeys;
  }

  async start(): Promise<void> {
    if (this.config.jwtAlg === 'HS256') return;
    if (this.config.jwtPrivateKeys) {
      this.useImported(this.config.jwtPrivateKeys);
      return;
    }
    this.stopListening = await this.database.listen(
      ACCESS_CHANNEL,
      (payload) => {
        const [what, origin] = payload.split(' ');
        if (what === KEYS_NOTICE && origin !== this.origin) void this.reload().catch((err: unknown) => this.log?.warn(`signing keys not reloaded: ${String(err)}`));
      },
      // Changes announced while LISTEN was down are lost: read the keys again once it is back.
      { onUp: () => void this.reload().catch((err: unknown) => this.log?.warn(`signing keys not reloaded: ${String(err)}`)) },
    );
    await this.reload();
    if (!this.signer) {
      // Several instances may start at once: the unique index keeps one current, the others read it.
      await this.insert(this.config.jwtAlg as SigningAlg, 'current');
      await this.reload();
      this.log?.info(`generated the first ${this.config.jwtAlg} signing key`);
    }
  }

  async stop(): Promise<void> {
    await this.stopListening?.();
    this.stopListening = undefined;
  }

  /** Called after every change of the key set, so caches of verified tokens can forget them. */
  onChange(listener: () => void): void {
    this.changeListeners.add(listener);
  }

  /**
   * Signs an access token with the current key (adds iss, aud and the kid header), valid for
   * ACCESS_TOKEN_TTL from now unless the payload says when it was issued and expires (an
   * impersonation token lives exactly as long as its session).
   */
  sign(payload: Record<string, unknown> & { iat?: number; exp?: number }): string {
    const iat = payload.iat ?? Math.floor(Date.now() / 1000);
    return (this.signer ?? this.hmac).sign({ ...payload, iat, exp: payload.exp ?? iat + this.config.accessTokenTtl });
  }

  /**
   * The claims of a token signed by a key in the set, with that key's algorithm only (no alg
   * confusion, no `none`); throws otherwise, fast-jwt's FAST_JWT_EXPIRED for an expired token.
   */
  verify(token: string, { ignoreExpiration = false }: { ignoreExpiration?: boolean } = {}): unknown {
    const header = headerOf(token);
    if (KEY_BEARING_HEADERS.some((name) => name in header)) throw new Error('the token names its own key');
    const { kid } = header;
    if (header.alg === 'HS256' && (kid === undefined || kid === this.hmac.kid)) {
      const claims = (ignoreExpiration ? this.hmac.verifyIgnoringExpiry : this.hmac.verify)(token) as { exp: number };
      if (claims.exp > this.hmacUntil) throw new Error('tokens signed with JWT_SECRET are no longer accepted');
      return claims;
    }
    const key = typeof kid === 'string' ? this.keys.get(kid) : undefined;
    if (!key) throw new Error('unknown kid');
    return (ignoreExpiration ? key.verifyIgnoringExpiry : key.verify)(token);
  }

  /**
   * The key that verifies a token with this header and payload, for verifiers other than verify()
   * (@fastify/jwt's request.jwtVerify() in host routes): the same choice by kid, with the same pins
   * (the header's alg must be the key's own; no key-bearing header; JWT_SECRET tokens only within
   * their window). Throws otherwise.
   */
  verificationKey({ header, payload }: { header: Record<string, unknown>; payload: unknown }): string {
    if (KEY_BEARING_HEADERS.some((name) => name in header)) throw new Error('the token names its own key');
    const { kid, alg } = header;
    if (alg === 'HS256' && (kid === undefined || kid === this.hmac.kid)) {
      const { exp } = (payload ?? {}) as { exp?: unknown };
      if (typeof exp !== 'number' || exp > this.hmacUntil) throw new Error('tokens signed with JWT_SECRET are no longer accepted');
      return this.hmac.key;
    }
    const key = typeof kid === 'string' ? this.keys.get(kid) : undefined;
    if (!key || key.view.alg !== alg) throw new Error('unknown kid');
    return key.key;
  }

  /** The published key set: next, current and retired keys (nothing under HS256). */
  jwks(): { keys: PublicJwk[] } {
    return { keys: [...this.keys.values()].map((key) => key.view.publicJwk) };
  }

  /** Every key in the set, revoked ones included (imported keys: the set as configured). */
  async list(): Promise<SigningKeyView[]> {
    if (!this.managed) return [...this.keys.values()].map((key) => key.view);
    const rows = await this.database.db.select().from(signingKeys).orderBy(signingKeys.createdAt);
    return rows.map(viewOf);
  }

  /** A new key in `next` state: published at once, not signing yet. */
  async create(alg: SigningAlg = this.config.jwtAlg === 'HS256' ? 'ES256' : this.config.jwtAlg): Promise<SigningKeyView> {
    this.assertManaged();
    const row = await this.insert(alg, 'next');
    await this.changed();
    return viewOf(row!);
  }

  /**
   * Makes the key current and the current one retired. A `next` key must have been published for
   * JWKS_MAX_AGE first, or verifiers holding a cached key set would refuse its tokens (`force` skips this).
   */
  async activate(kid: string, { force = false }: { force?: boolean } = {}): Promise<SigningKeyView> {
    this.assertManaged();
    const activated = await this.database.db.transaction(async (tx) => {
      await lockKeyChanges(tx);
      const [key] = await tx.select().from(signingKeys).where(eq(signingKeys.kid, kid)).for('update');
      if (!key) throw problem('not_found', `No signing key ${kid}.`);
      if (key.status === 'revoked') throw problem('signing_key_revoked', 'A revoked key cannot sign again: create a new one.');
      if (key.status === 'current') return key;
      const publishedFor = (Date.now() - key.createdAt.getTime()) / 1000;
      if (key.status === 'next' && !force && publishedFor < this.config.jwksMaxAge) {
        const wait = Math.ceil(this.config.jwksMaxAge - publishedFor);
        throw problem('key_not_published_long_enough', `Verifiers may not have this key yet: activate it in ${wait} s (JWKS_MAX_AGE), or with force: true.`, { retryAfter: wait });
      }
      const now = new Date();
      await tx.update(signingKeys).set({ status: 'retired', retiredAt: now }).where(eq(signingKeys.status, 'current'));
      const [row] = await tx.update(signingKeys).set({ status: 'current', activatedAt: now, retiredAt: null }).where(eq(signingKeys.kid, kid)).returning();
      return row!;
    });
    await this.changed();
    return viewOf(activated);
  }

  /** No longer published nor accepted, on every instance at once; the current key cannot be revoked. */
  async revoke(kid: string): Promise<SigningKeyView> {
    this.assertManaged();
    // Locked like activate(), so a key cannot be made current and revoked at once.
    const revoked = await this.database.db.transaction(async (tx) => {
      await lockKeyChanges(tx);
      const [key] = await tx.select().from(signingKeys).where(eq(signingKeys.kid, kid)).for('update');
      if (!key) throw problem('not_found', `No signing key ${kid}.`);
      if (key.status === 'current') throw problem('signing_key_current', 'The current key cannot be revoked: activate another key first.');
      if (key.status === 'revoked') return key;
      const [row] = await tx.update(signingKeys).set({ status: 'revoked', revokedAt: new Date() }).where(eq(signingKeys.kid, kid)).returning();
      return row!;
    });
    await this.changed();
    return viewOf(revoked);
  }

  /** Reads the key set again (serialized, so an older read never overwrites a newer one). */
  reload(): Promise<void> {
    this.loading = this.loading.catch(() => undefined).then(() => this.load());
    return this.loading;
  }

  private async load(): Promise<void> {
    const rows = await this.database.db.select().from(signingKeys).where(ne(signingKeys.status, 'revoked'));
    const keys = new Map<string, LoadedKey>();
    let signer: SigningKeys['signer'];
    for (const row of rows) {
      const key = pemOf(row.publicJwk, 'public');
      keys.set(row.kid, { view: viewOf(row), key, ...this.verifiersFor(key, row.alg) });
      if (row.status === 'current') {
        const plaintext = await this.openPrivateKey(row);
        signer = { kid: row.kid, sign: this.signerFor(pemOf(JSON.parse(plaintext) as JsonWebKey, 'private'), row.alg, row.kid) };
      } else {
        // A key that may sign later is kept readable too; one that cannot be opened is only said.
        await this.openPrivateKey(row).catch((err: unknown) => this.log?.warn(`signing key ${row.kid}: ${(err as Error).message}`));
      }
    }
    const first = Math.min(...rows.map((row) => row.createdAt.getTime()));
    this.apply(keys, signer, Number.isFinite(first) ? first : Date.now());
  }

  /**
   * The private JWK of a stored key. One sealed under an older ENCRYPTION_KEYS entry is sealed again
   * under the first, so the old entry can be dropped once every instance has started with the new
   * ring (compare-and-set: instances loading at once write one of their equivalent seals).
   */
  private async openPrivateKey(row: SigningKeyRow): Promise<string> {
    const context = `signing-key:${row.kid}`;
    const { plaintext, stale } = this.keyRing.open(row.privateKey, context);
    if (stale) {
      await this.database.db
        .update(signingKeys)
        .set({ privateKey: this.keyRing.seal(plaintext, context) })
        .where(and(eq(signingKeys.kid, row.kid), eq(signingKeys.privateKey, row.privateKey)));
      this.log?.info(`signing key ${row.kid} sealed again under the first ENCRYPTION_KEYS entry`);
    }
    return plaintext;
  }

  /** JWT_PRIVATE_KEYS: the first key signs, the others verify; all are published. */
  private useImported(jwks: JsonWebKey[]): void {
    const keys = new Map<string, LoadedKey>();
    const now = new Date();
    let signer: SigningKeys['signer'];
    for (const [index, jwk] of jwks.entries()) {
      const publicJwk = publishedJwk(jwk);
      const { kid } = publicJwk;
      const alg = publicJwk.alg as SigningAlg;
      const status = index === 0 ? 'current' : 'retired';
      const view: SigningKeyView = { kid: kid!, alg, status, publicJwk, createdAt: now, activatedAt: index === 0 ? now : null, retiredAt: null, revokedAt: null };
      const key = pemOf(jwk, 'public');
      keys.set(kid!, { view, key, ...this.verifiersFor(key, alg) });
      if (index === 0) signer = { kid: kid!, sign: this.signerFor(pemOf(jwk, 'private'), alg, kid!) };
    }
    this.apply(keys, signer, now.getTime());
  }

  private apply(keys: Map<string, LoadedKey>, signer: SigningKeys['signer'], switchedAt: number): void {
    this.keys = keys;
    this.signer = signer;
    const longestTtl = Math.max(this.config.accessTokenTtl, this.config.impersonationTtl);
    this.hmacUntil = Math.ceil(switchedAt / 1000) + longestTtl + this.config.jwtClockSkew;
    for (const listener of this.changeListeners) listener();
  }

  private async insert(alg: SigningAlg, status: 'next' | 'current'): Promise<SigningKeyRow | undefined> {
    const privateJwk = await generatePrivateJwk(alg);
    const publicJwk = publishedJwk(privateJwk);
    const kid = publicJwk.kid!;
    const [row] = await this.database.db
      .insert(signingKeys)
      .values({
        kid,
        alg,
        publicJwk,
        privateKey: this.keyRing.seal(JSON.stringify(privateJwk), `signing-key:${kid}`),
        status,
        activatedAt: status === 'current' ? new Date() : null,
      })
      .onConflictDoNothing()
      .returning();
    return row;
  }

  /** After a change: this instance reloads now, the others when the notice arrives. */
  private async changed(): Promise<void> {
    await this.reload();
    await this.database.db.execute(sql`select pg_notify(${ACCESS_CHANNEL}, ${`${KEYS_NOTICE} ${this.origin}`})`);
  }

  private assertManaged(): void {
    if (!this.managed) {
      throw problem(
        'signing_keys_unmanaged',
        this.config.jwtAlg === 'HS256' ? 'JWT_ALG is HS256: tokens are signed with JWT_SECRET, there are no keys to manage.' : 'Keys come from JWT_PRIVATE_KEYS: rotate them there.',
      );
    }
  }

  private signerFor(key: string, algorithm: JwtAlg, kid: string): Sign {
    const { jwtIssuer: iss, jwtAudience: aud } = this.config;
    // No expiresIn: fast-jwt's would override the exp that sign() sets for each token's own lifetime.
    return createSigner({ key, algorithm, kid, iss, aud });
  }

  private verifiersFor(key: string, algorithm: JwtAlg): { verify: Verify; verifyIgnoringExpiry: Verify } {
    const options = {
      key,
      // The key's own algorithm, and nothing else.
      algorithms: [algorithm],
      allowedIss: this.config.jwtIssuer,
      allowedAud: this.config.jwtAudience,
      // fast-jwt checks iss, aud and exp only when present: a token without them must not pass.
      requiredClaims: ['iss', 'aud', 'exp'],
      clockTolerance: this.config.jwtClockSkew * 1000,
    };
    return { verify: createVerifier(options), verifyIgnoringExpiry: createVerifier({ ...options, ignoreExpiration: true }) };
  }
}

function pemOf(jwk: JsonWebKey, part: 'public' | 'private'): string {
  return part === 'public'
    ? createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
    : createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function viewOf(row: SigningKeyRow): SigningKeyView {
  const { kid, alg, status, publicJwk, createdAt, activatedAt, retiredAt, revokedAt } = row;
  return { kid, alg, status, publicJwk, createdAt, activatedAt, retiredAt, revokedAt };
}
