import bcrypt from 'bcrypt';
import tap from 'tap';
import { createPasswordHasher, limitConcurrency } from '../../src/domain/passwords.js';

const PEPPER = 'test-pepper-that-is-long-enough-0123456789';
const hasher = createPasswordHasher({ pepper: PEPPER, cost: 4 });

tap.test('two 100-character passwords that differ only in the last character are different passwords', async (t) => {
  const first = `${'a'.repeat(99)}1`;
  const second = `${'a'.repeat(99)}2`;
  t.equal(first.length, 100);
  // The premise: bcrypt alone reads only the first 72 bytes and would take one for the other.
  t.ok(await bcrypt.compare(second, await bcrypt.hash(first, 4)), 'plain bcrypt confuses them');

  const hash = await hasher.hash(first);
  t.ok(await hasher.verify(first, hash), 'the password itself verifies');
  t.notOk(await hasher.verify(second, hash), 'the other one does not');
});

tap.test('a password verifies only against its own hash', async (t) => {
  const hash = await hasher.hash('correct horse battery staple');
  t.ok(await hasher.verify('correct horse battery staple', hash));
  t.notOk(await hasher.verify('correct horse battery stapl', hash), 'one character short');
  t.notOk(await hasher.verify('Correct horse battery staple', hash), 'case matters');
  t.notOk(await hasher.verify('', hash), 'empty');
});

tap.test('a password hashed with one pepper does not verify with another', async (t) => {
  const hash = await hasher.hash('correct horse battery staple');
  const otherPepper = createPasswordHasher({ pepper: 'another-pepper-that-is-long-enough-012345', cost: 4 });
  t.notOk(await otherPepper.verify('correct horse battery staple', hash));
  t.notOk(await bcrypt.compare('correct horse battery staple', hash), 'the stored hash is not a plain bcrypt of the password');
});

tap.test('the same password typed with a composed or a decomposed accent verifies', async (t) => {
  const composed = 'caf\u00e9-au-lait-1';
  const decomposed = 'cafe\u0301-au-lait-1';
  t.not(composed, decomposed, 'the two strings differ as code points');
  t.ok(await hasher.verify(decomposed, await hasher.hash(composed)));
});

tap.test('hashes are salted bcrypt at the configured cost, and another cost asks for a rehash', async (t) => {
  const one = await hasher.hash('correct horse battery staple');
  const two = await hasher.hash('correct horse battery staple');
  t.match(one, /^\$2b\$04\$/, 'bcrypt at cost 4');
  t.not(one, two, 'the same password hashes differently each time');
  t.notOk(hasher.needsRehash(one), 'a hash at the current cost is kept');
  t.ok(createPasswordHasher({ pepper: PEPPER, cost: 5 }).needsRehash(one), 'a hash at another cost is redone');
});

tap.test('no more bcrypt operations run at once than allowed; the rest start in arrival order', async (t) => {
  const limited = limitConcurrency(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const releases: (() => void)[] = [];
  const task = (i: number, fail = false) => () => {
    started.push(i);
    most = Math.max(most, ++running);
    return new Promise<number>((resolve, reject) =>
      releases.push(() => {
        running--;
        if (fail) reject(new Error(`task ${i}`));
        else resolve(i);
      }),
    );
  };
  const results = [limited(task(0)), limited(task(1, true)), limited(task(2)), limited(task(3))].map((p) => p.catch((err: Error) => err.message));
  await new Promise((r) => setImmediate(r));
  t.same(started, [0, 1], 'two start, two wait');
  releases[1]!(); // a failing task frees its slot too
  await new Promise((r) => setImmediate(r));
  t.same(started, [0, 1, 2]);
  releases[0]!();
  await new Promise((r) => setImmediate(r));
  releases[2]!();
  releases[3]!();
  t.same(await Promise.all(results), [0, 'task 1', 2, 3]);
  t.equal(most, 2, 'never more than two at once');
});
