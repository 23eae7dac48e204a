import tap from 'tap';
import { KeyRing, generateKeyRing, parseKeyRing } from '../../src/lib/encryption.js';

const OLD = { id: 'old', key: Buffer.alloc(32, 7) };
const NEW = { id: 'new', key: Buffer.alloc(32, 9) };

tap.test('a sealed value opens with its context, under any key of the ring, and says when it is stale', async (t) => {
  const ring = new KeyRing([OLD]);
  const sealed = ring.seal('JBSWY3DPEHPK3PXP', 'totp:ann');
  t.match(sealed, /^old\.[\w-]+\.[\w-]+\.[\w-]+$/, 'names its key');
  t.notMatch(sealed, /JBSWY3DPEHPK3PXP/, 'does not show the secret');
  t.not(ring.seal('JBSWY3DPEHPK3PXP', 'totp:ann'), sealed, 'a fresh IV each time');
  t.same(ring.open(sealed, 'totp:ann'), { plaintext: 'JBSWY3DPEHPK3PXP', stale: false });

  const rotated = new KeyRing([NEW, OLD]);
  t.same(rotated.open(sealed, 'totp:ann'), { plaintext: 'JBSWY3DPEHPK3PXP', stale: true }, 'the old key still opens, and says to seal again');
  const resealed = rotated.seal('JBSWY3DPEHPK3PXP', 'totp:ann');
  t.match(resealed, /^new\./, 'the first key seals');
  t.same(rotated.open(resealed, 'totp:ann'), { plaintext: 'JBSWY3DPEHPK3PXP', stale: false });
});

tap.test('a value changed, moved to another context, or sealed under a key no longer held does not open', async (t) => {
  const ring = new KeyRing([NEW, OLD]);
  const sealed = ring.seal('secret', 'totp:ann');
  const [id, iv, ciphertext, tag] = sealed.split('.') as [string, string, string, string];
  const flipped = Buffer.from(ciphertext, 'base64url');
  flipped[0]! ^= 1;
  t.throws(() => ring.open([id, iv, flipped.toString('base64url'), tag].join('.'), 'totp:ann'), 'a changed ciphertext');
  t.throws(() => ring.open(sealed, 'totp:bob'), 'another context');
  t.throws(() => new KeyRing([OLD]).open(sealed, 'totp:ann'), { message: /key new, which ENCRYPTION_KEYS no longer holds/ });
  t.throws(() => ring.open('not sealed', 'totp:ann'), { message: /not a sealed value/ });
  t.throws(() => ring.open(`${sealed}.extra`, 'totp:ann'), { message: /not a sealed value/ });
  t.throws(() => new KeyRing([]), { message: /at least one key/ });
});

tap.test('ENCRYPTION_KEYS is read as id:base64key pairs; a generated ring reads back', async (t) => {
  const generated = generateKeyRing();
  const [key] = parseKeyRing(generated);
  t.equal(key!.id, 'k1');
  t.equal(key!.key.length, 32);
  t.same(parseKeyRing(`a:${Buffer.alloc(32, 1).toString('base64')}, b:${Buffer.alloc(32, 2).toString('base64url')}`).map((k) => k.id), ['a', 'b']);
  t.throws(() => parseKeyRing(''), { message: /at least one key/ });
  t.throws(() => parseKeyRing('a'), { message: /key 1 must be id:base64key/ });
  t.throws(() => parseKeyRing(`a:${Buffer.alloc(16).toString('base64')}`), { message: /key a must be the base64 of 32 random bytes/ });
});
