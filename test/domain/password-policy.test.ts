import tap from 'tap';
import { commonPasswordCount, passwordProblem } from '../../src/domain/password-policy.js';

tap.test('ships at least 10,000 common passwords', async (t) => {
  t.ok(commonPasswordCount() >= 10_000, `${commonPasswordCount()} entries`);
});

tap.test('length is 8 to 256 code points after NFKC', async (t) => {
  t.match(passwordProblem('Sh0rt!x'), /at least 8/);
  t.equal(passwordProblem('unusual glyphs 8'), null);
  // U+FB01 (the "fi" ligature) is one code point but two after NFKC.
  t.equal([...'ﬁﬁﬁﬁ'].length, 4);
  t.equal(passwordProblem('ﬁﬁﬁﬁ'), null, '4 ligatures are 8 characters after NFKC');
  t.match(passwordProblem('z'.repeat(257)) ?? '', /at most 256/);
  t.equal(passwordProblem('\u{1F511}'.repeat(256)), null);
});

tap.test('common passwords are refused, whatever their case or compatibility form', async (t) => {
  for (const password of ['password', 'PASSWORD', 'iloveyou', 'qwertyuiop', 'ｐａｓｓｗｏｒｄ']) {
    t.match(passwordProblem(password) ?? '', /commonly used/, password);
  }
  t.equal(passwordProblem('plum kettle orbit'), null);
});

tap.test('a password containing the email local part (3+ characters) is refused', async (t) => {
  t.match(passwordProblem('my name is Annabel!', 'annabel@example.com') ?? '', /email/);
  t.match(passwordProblem('xxANNABELxx', 'Annabel@example.com') ?? '', /email/);
  t.equal(passwordProblem('my name is Al, hello', 'al@example.com'), null, 'a local part under 3 characters is not checked');
  t.equal(passwordProblem('entirely unrelated', 'annabel@example.com'), null);
});
