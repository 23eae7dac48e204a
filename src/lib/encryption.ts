import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** One AES-256 key of ENCRYPTION_KEYS: its id is stored beside everything it seals. */
export interface EncryptionKey {
  id: string;
  key: Buffer;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;

/**
 * Reads `id:base64key,id:base64key,...` (standard or URL-safe base64 of 32 bytes each). Throws an
 * Error saying what is wrong, without echoing any key.
 */
export function parseKeyRing(text: string): EncryptionKey[] {
  const keys = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry, index) => {
      const colon = entry.indexOf(':');
      const id = entry.slice(0, colon);
      if (colon < 1 || !KEY_ID.test(id)) throw new Error(`key ${index + 1} must be id:base64key, the id 1-32 of A-Z a-z 0-9 _ -`);
      const encoded = entry.slice(colon + 1);
      const key = Buffer.from(encoded, 'base64');
      if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded) || key.length !== KEY_BYTES) {
        throw new Error(`key ${id} must be the base64 of ${KEY_BYTES} random bytes (openssl rand -base64 ${KEY_BYTES})`);
      }
      return { id, key };
    });
  if (keys.length === 0) throw new Error('at least one key is needed');
  const ids = keys.map((k) => k.id);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated) throw new Error(`key id ${repeated} is given twice`);
  return keys;
}

/** A new key ring of one random key, as ENCRYPTION_KEYS spells it. */
export function generateKeyRing(id = 'k1'): string {
  return `${id}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/**
 * Secrets at rest that must be read back (TOTP secrets; signing keys later), sealed with
 * AES-256-GCM. The first key seals; every key opens, so a key is rotated by putting a new one first
 * and keeping the old one until nothing sealed under it is left (`open` says when a value is stale:
 * the caller seals it again). A `context` (say, the owner's id) is authenticated with the value, so a
 * sealed value copied onto another row does not open.
 */
export class KeyRing {
  private readonly keys: ReadonlyMap<string, Buffer>;
  private readonly primary: EncryptionKey;

  constructor(keys: readonly EncryptionKey[]) {
    if (keys.length === 0) throw new Error('KeyRing: at least one key is needed');
    this.primary = keys[0]!;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** `<key id>.<iv>.<ciphertext>.<tag>`, each part base64url. */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.primary.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [this.primary.id, iv.toString('base64url'), ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /** The plaintext, and whether it was sealed under another key than the first (seal it again). */
  open(sealed: string, context: string): { plaintext: string; stale: boolean } {
    const [id = '', iv, ciphertext, tag, ...rest] = sealed.split('.');
    if (iv === undefined || ciphertext === undefined || tag === undefined || rest.length > 0) throw new Error('KeyRing: not a sealed value');
    const key = this.keys.get(id);
    if (!key) throw new Error(`KeyRing: sealed under key ${id}, which ENCRYPTION_KEYS no longer holds`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    // final() throws when the tag does not match: a changed value, context or key.
    const plaintext = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    return { plaintext, stale: id !== this.primary.id };
  }
}
