import { LruMap } from 'toad-cache';

/**
 * The part of a token its entry is found by: its last characters, which are its signature's. A
 * Map hashes every character of a key string it has not seen before, and each request brings the
 * token as a new string: hashing 500 characters of an ES256 token cost more than the rest of the
 * lookup. The entry keeps the whole token, compared on every hit, so two tokens that share an
 * ending (one forged from the other's signature) never share an entry.
 */
const KEY_LENGTH = 32;
const keyOf = (token: string) => (token.length > KEY_LENGTH ? token.slice(token.length - KEY_LENGTH) : token);

interface Entry<Claims> {
  token: string;
  claims: Claims;
  validUntilMs: number;
}

/**
 * Access tokens already verified, so a client presenting the same token on every request pays for
 * the signature and the claim checks once per token, not per request. (fast-jwt's own cache keys by
 * a SHA-256 of the token: that hash cost most of what it saved.) Only verification is remembered:
 * revocation is still decided on each request, by the authorization cache. An entry is used until
 * the token's exp (plus the allowed clock skew), then dropped so the verifier itself answers
 * "expired". Least recently used first out: with more live tokens than VERIFIED_TOKEN_CACHE_MAX,
 * those in use stay.
 */
export class VerifiedTokens<Claims extends { exp?: number }> {
  private readonly entries: LruMap<Entry<Claims>>;

  constructor(private readonly options: { maxEntries: number; clockToleranceMs: number }) {
    this.entries = new LruMap(options.maxEntries);
  }

  /** The claims of a token verified before and not yet expired; undefined means only the verifier can tell. */
  peek(token: string): Claims | undefined {
    const hit = this.entries.get(keyOf(token));
    return hit && hit.token === token && Date.now() < hit.validUntilMs ? hit.claims : undefined;
  }

  verify(token: string, verifier: (token: string) => Claims): Claims {
    const known = this.peek(token);
    if (known) return known;
    const claims = verifier(token);
    // Gatehouse requires exp; a token without one is not remembered rather than remembered forever.
    if (typeof claims.exp === 'number') {
      this.entries.set(keyOf(token), { token, claims, validUntilMs: claims.exp * 1000 + this.options.clockToleranceMs });
    }
    return claims;
  }

  /** Forgets every token: the signing keys changed, and one of them may have been revoked. */
  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
