import tap from 'tap';
import { VerifiedTokens } from '../../src/plugins/verified-tokens.js';

type Claims = { sub: string; exp?: number };
const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;

/** A verifier that counts its calls and answers the claims it is given for each token. */
function countingVerifier(claimsOf: Record<string, Claims | Error>) {
  const calls: string[] = [];
  const verify = (token: string): Claims => {
    calls.push(token);
    const answer = claimsOf[token];
    if (!answer || answer instanceof Error) throw answer ?? new Error('unknown token');
    return answer;
  };
  return { calls, verify };
}

tap.test('a token is verified once, then answered from memory until it expires', async (t) => {
  const cache = new VerifiedTokens<Claims>({ maxEntries: 10, clockToleranceMs: 0 });
  const { calls, verify } = countingVerifier({ a: { sub: 'a', exp: inSeconds(60) } });
  t.same(cache.verify('a', verify), { sub: 'a', exp: inSeconds(60) });
  t.same(cache.verify('a', verify).sub, 'a');
  t.same(calls, ['a'], 'the verifier ran once');
});

tap.test('an entry past exp (and the clock tolerance) goes back to the verifier, which decides', async (t) => {
  const expired = new Error('expired');
  const answers: Record<string, Claims | Error> = { a: { sub: 'a', exp: inSeconds(-10) } };
  const { calls, verify } = countingVerifier(answers);
  const tolerant = new VerifiedTokens<Claims>({ maxEntries: 10, clockToleranceMs: 60_000 });
  tolerant.verify('a', verify);
  tolerant.verify('a', verify);
  t.equal(calls.length, 1, 'ten seconds past exp is inside a one-minute tolerance');

  const strict = new VerifiedTokens<Claims>({ maxEntries: 10, clockToleranceMs: 0 });
  strict.verify('a', verify);
  answers.a = expired;
  t.throws(() => strict.verify('a', verify), expired, 'the verifier is asked again and its error comes through');
  t.equal(calls.length, 3);
});

tap.test('failures and tokens without exp are not remembered', async (t) => {
  const cache = new VerifiedTokens<Claims>({ maxEntries: 10, clockToleranceMs: 0 });
  const { calls, verify } = countingVerifier({ forever: { sub: 'forever' } });
  cache.verify('forever', verify);
  cache.verify('forever', verify);
  t.throws(() => cache.verify('bad', verify));
  t.throws(() => cache.verify('bad', verify));
  t.same(calls, ['forever', 'forever', 'bad', 'bad']);
  t.equal(cache.size, 0);
});

tap.test('the cache holds at most maxEntries, dropping the least recently used', async (t) => {
  const cache = new VerifiedTokens<Claims>({ maxEntries: 2, clockToleranceMs: 0 });
  const { calls, verify } = countingVerifier(Object.fromEntries(['a', 'b', 'c'].map((k) => [k, { sub: k, exp: inSeconds(60) }])));
  cache.verify('a', verify);
  cache.verify('b', verify);
  cache.verify('a', verify);
  t.same(calls, ['a', 'b'], 'a answered from memory');
  cache.verify('c', verify);
  t.equal(cache.size, 2);
  cache.verify('a', verify);
  cache.verify('c', verify);
  t.same(calls, ['a', 'b', 'c'], 'a, the older but recently used, and c still remembered');
  cache.verify('b', verify);
  t.same(calls, ['a', 'b', 'c', 'b'], 'b, the least recently used, was dropped');
});

tap.test('tokens that end alike are told apart: a hit needs the whole token', async (t) => {
  const cache = new VerifiedTokens<Claims>({ maxEntries: 10, clockToleranceMs: 0 });
  const ending = 'S'.repeat(40);
  const genuine = `header.genuine.${ending}`;
  const forged = `header.forged.${ending}`;
  const { calls, verify } = countingVerifier({ [genuine]: { sub: 'genuine', exp: inSeconds(60) } });
  cache.verify(genuine, verify);
  t.equal(cache.peek(forged), undefined, 'the forged token is not answered from the genuine one\'s entry');
  t.throws(() => cache.verify(forged, verify), 'the verifier judges the forged token, and refuses it');
  t.equal(cache.peek(genuine)?.sub, 'genuine', 'the genuine token is still remembered');
  cache.verify(genuine, verify);
  t.same(calls, [genuine, forged]);
  t.equal(cache.peek('short'), undefined, 'a token shorter than the key is looked up whole');
});
