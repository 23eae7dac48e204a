import { LruMap } from 'toad-cache';

/**
 * Access tokens already verified, keyed by the exact token string, so a client presenting the same
 * token on every request pays for the HMAC and the claim checks once per token, not per request.
 * (fast-jwt's own cache keys by a SHA-256 of the token: that hash cost most of what it saved.)
 * Only verification is remembered: revocation is still decided on each request, by the
 * authorization cache. An entry is used until the token's exp (plus the allowed clock skew), then
 * dropped so the verifier itself answers "expired". Least recently used first out: with more live
 * tokens than VERIFIED_TOKEN_CACHE_MAX, those in use stay.
 */
export class VerifiedTokens<Claims extends { exp?: number }> {
  private readonly entries: LruMap<{ claims: Claims; validUntilMs: number }>;

  constructor(private readonly options: { maxEntries: number; clockToleranceMs: number }) {
    this.entries = new LruMap(options.maxEntries);
  }

  verify(token: string, verifier: (token: string) => Claims): Claims {
    const hit = this.entries.get(token);
    if (hit) {
      if (Date.now() < hit.validUntilMs) return hit.claims;
      this.entries.delete(token);
    }
    const claims = verifier(token);
    // Gatehouse requires exp; a token without one is not remembered rather than remembered forever.
    if (typeof claims.exp === 'number') {
      this.entries.set(token, { claims, validUntilMs: claims.exp * 1000 + this.options.clockToleranceMs });
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
