import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tap from 'tap';
import { ConfigError, loadConfig } from '../src/config.js';
import { parseDuration } from '../src/lib/duration.js';
import { tempDataDir } from './helpers/app.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64url');
const KEYS = `a:${KEY_A}`;

tap.test('durations accept bare seconds and s/m/h/d/w suffixes', async (t) => {
  t.equal(parseDuration('900'), 900);
  t.equal(parseDuration('15m'), 900);
  t.equal(parseDuration('7d'), 604800);
  t.equal(parseDuration('2w'), 1209600);
  t.equal(parseDuration('10s'), 10);
  t.equal(parseDuration('ten minutes'), undefined);
  t.equal(parseDuration('-5'), undefined);
});

tap.test('defaults are the documented ones', async (t) => {
  const config = loadConfig({ DATA_DIR: tempDataDir(t) }, () => {});
  t.equal(config.port, 3000);
  t.equal(config.host, '127.0.0.1');
  t.equal(config.accessTokenTtl, 15 * 60);
  t.equal(config.refreshTokenTtl, 7 * 86400);
  t.equal(config.sessionMaxAge, 90 * 86400);
  t.equal(config.refreshReuseGrace, 10);
  t.equal(config.bcryptCost, 12);
  t.equal(config.cookieSecure, true);
  t.equal(config.databaseUrl, undefined);
  t.equal(config.databasePoolSize, 3);
  t.equal(config.retentionPeriod, 30 * 86400);
});

tap.test('a bad variable stops the start with a message naming it', async (t) => {
  const cases: Record<string, string> = {
    PORT: 'eighty',
    ACCESS_TOKEN_TTL: '15 minutes',
    BCRYPT_COST: '99',
    DATABASE_URL: 'mysql://nope',
    LOG_LEVEL: 'loud',
    COOKIE_SECURE: 'maybe',
    DATABASE_POOL_SIZE: '0',
    RETENTION_PERIOD: '30m',
  };
  for (const [name, value] of Object.entries(cases)) {
    t.throws(() => loadConfig({ DATA_DIR: tempDataDir(t), [name]: value }, () => {}), {
      name: 'ConfigError',
      message: new RegExp(name),
    }, `${name}=${value}`);
  }
});

tap.test('outside production, missing secrets are generated once, kept in DATA_DIR, with a warning', async (t) => {
  const dir = tempDataDir(t);
  const warnings: string[] = [];
  const first = loadConfig({ DATA_DIR: dir }, (m) => warnings.push(m));
  t.equal(warnings.length, 3, 'one warning per generated secret');
  t.match(warnings.join('\n'), /JWT_SECRET/);
  t.match(warnings.join('\n'), /PASSWORD_PEPPER/);
  t.match(warnings.join('\n'), /ENCRYPTION_KEYS/);
  t.equal(first.encryptionKeys.length, 1, 'one generated encryption key');
  t.equal(first.encryptionKeys[0]!.key.length, 32, 'of 256 bits');
  t.ok(Buffer.byteLength(first.jwtSecret) >= 32);
  t.not(first.jwtSecret, first.passwordPepper);
  t.ok(existsSync(join(dir, 'secrets.json')));
  const again = loadConfig({ DATA_DIR: dir }, (m) => warnings.push(m));
  t.equal(again.jwtSecret, first.jwtSecret, 'the same secret on the next start');
  t.equal(again.passwordPepper, first.passwordPepper);
  t.same(again.encryptionKeys, first.encryptionKeys, 'the same encryption key');
  t.equal(warnings.length, 3, 'no new warning once stored');
  t.same(Object.keys(JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8'))).sort(), ['ENCRYPTION_KEYS', 'JWT_SECRET', 'PASSWORD_PEPPER']);
});

tap.test('a secrets.json that is there but broken stops the start, naming the file, and is left as it was', async (t) => {
  const broken = {
    'not JSON': '{"JWT_SECRET": "abc',
    'an array': '["abc"]',
    'null': 'null',
    'a number among the secrets': '{"JWT_SECRET": "abc", "PASSWORD_PEPPER": 42}',
    'an empty secret': '{"JWT_SECRET": ""}',
  };
  for (const [what, content] of Object.entries(broken)) {
    const dir = tempDataDir(t);
    const file = join(dir, 'secrets.json');
    writeFileSync(file, content);
    const warnings: string[] = [];
    t.throws(() => loadConfig({ DATA_DIR: dir }, (m) => warnings.push(m)), { name: 'ConfigError', message: file }, what);
    t.equal(readFileSync(file, 'utf8'), content, `${what}: not overwritten with new secrets`);
    t.same(warnings, [], `${what}: nothing generated`);
  }
  const unreadable = tempDataDir(t);
  mkdirSync(join(unreadable, 'secrets.json'));
  t.throws(() => loadConfig({ DATA_DIR: unreadable }, () => {}), { name: 'ConfigError', message: /secrets\.json cannot be read \(EISDIR\)/ }, 'unreadable');
  const set = loadConfig({ DATA_DIR: unreadable, JWT_SECRET: 'j', PASSWORD_PEPPER: 'p', ENCRYPTION_KEYS: KEYS }, () => {});
  t.equal(set.jwtSecret, 'j', 'with every secret set, the file is not read');
});

tap.test('in production a missing or short secret stops the start', async (t) => {
  const long = 'x'.repeat(32);
  const base = { NODE_ENV: 'production', DATA_DIR: tempDataDir(t), SMTP_URL: 'smtp://mail.example.test', ENCRYPTION_KEYS: KEYS };
  t.throws(() => loadConfig({ ...base, PASSWORD_PEPPER: long }), ConfigError);
  t.throws(() => loadConfig({ ...base, JWT_SECRET: long }), { message: /PASSWORD_PEPPER is required/ });
  t.throws(() => loadConfig({ ...base, JWT_SECRET: 'short', PASSWORD_PEPPER: long }), { message: /JWT_SECRET must be at least 32 bytes/ });
  t.ok(loadConfig({ ...base, JWT_SECRET: long, PASSWORD_PEPPER: long }));
});

tap.test('in production without SMTP_URL the start is refused unless MAIL_TRANSPORT=log asks for it', async (t) => {
  const long = 'x'.repeat(32);
  const base = { NODE_ENV: 'production', DATA_DIR: tempDataDir(t), JWT_SECRET: long, PASSWORD_PEPPER: long, ENCRYPTION_KEYS: KEYS };
  t.throws(() => loadConfig(base), { name: 'ConfigError', message: /SMTP_URL is required when NODE_ENV=production.*MAIL_TRANSPORT=log/ });
  t.throws(() => loadConfig({ ...base, MAIL_TRANSPORT: 'smtp' }), { name: 'ConfigError', message: /SMTP_URL/ });
  t.equal(loadConfig({ ...base, MAIL_TRANSPORT: 'log' }).mailTransport, 'log');
  t.equal(loadConfig({ ...base, SMTP_URL: 'smtp://mail.example.test' }).mailTransport, 'smtp');
  t.equal(loadConfig({ ...base, SMTP_URL: 'smtp://mail.example.test', MAIL_TRANSPORT: 'log' }).mailTransport, 'log', 'log when asked, even with a server');
});

tap.test('outside production mail is logged unless SMTP_URL is set', async (t) => {
  const dir = tempDataDir(t);
  t.equal(loadConfig({ DATA_DIR: dir }, () => {}).mailTransport, 'log');
  t.equal(loadConfig({ DATA_DIR: dir, SMTP_URL: 'smtps://mail.example.test' }, () => {}).mailTransport, 'smtp');
  t.throws(() => loadConfig({ DATA_DIR: dir, MAIL_TRANSPORT: 'pigeon' }, () => {}), { name: 'ConfigError', message: /MAIL_TRANSPORT/ });
  t.throws(() => loadConfig({ DATA_DIR: dir, MAIL_TRANSPORT: 'smtp' }, () => {}), { name: 'ConfigError', message: /SMTP_URL is required when MAIL_TRANSPORT=smtp/ });
});

tap.test('TRUST_PROXY takes false, true, a hop count or a list of proxies', async (t) => {
  const dir = tempDataDir(t);
  const trust = (value: string) => loadConfig({ DATA_DIR: dir, TRUST_PROXY: value }, () => {}).trustProxy;
  t.equal(trust('false'), false);
  t.equal(trust('true'), true);
  t.equal(trust('2'), 2);
  t.same(trust('10.0.0.1, 10.1.0.0/16'), ['10.0.0.1', '10.1.0.0/16']);
});

tap.test('PUBLIC_URL names where clients reach the server; by default the address it listens on', async (t) => {
  const dir = tempDataDir(t);
  const publicUrl = (env: Record<string, string>) => loadConfig({ DATA_DIR: dir, ...env }, () => {}).publicUrl;
  t.equal(publicUrl({}), 'http://127.0.0.1:3000');
  t.equal(publicUrl({ PORT: '8080' }), 'http://127.0.0.1:8080', 'the port it listens on');
  t.equal(publicUrl({ HOST: '0.0.0.0' }), 'http://127.0.0.1:3000', 'a wildcard address is reached on loopback');
  t.equal(publicUrl({ HOST: '::' }), 'http://127.0.0.1:3000');
  t.equal(publicUrl({ HOST: '::1' }), 'http://[::1]:3000', 'an IPv6 address in brackets');
  t.equal(publicUrl({ HOST: 'gatehouse.internal' }), 'http://gatehouse.internal:3000');
  t.equal(publicUrl({ PUBLIC_URL: 'https://auth.example.com/' }), 'https://auth.example.com', 'no trailing slash');
  t.equal(publicUrl({ PUBLIC_URL: 'https://example.com/api/' }), 'https://example.com/api', 'a path is kept');
  for (const bad of ['auth.example.com', 'ftp://example.com', 'https://example.com/?q=1', 'https:///x']) {
    t.throws(() => publicUrl({ PUBLIC_URL: bad }), { name: 'ConfigError', message: /PUBLIC_URL/ }, bad);
  }
});

tap.test('ENCRYPTION_KEYS: required in production, a list of id:base64 32-byte keys, the first one encrypting', async (t) => {
  const long = 'x'.repeat(32);
  const production = { NODE_ENV: 'production', DATA_DIR: tempDataDir(t), JWT_SECRET: long, PASSWORD_PEPPER: long, MAIL_TRANSPORT: 'log' };
  t.throws(() => loadConfig(production), { name: 'ConfigError', message: /ENCRYPTION_KEYS is required when NODE_ENV=production/ });
  const keys = loadConfig({ ...production, ENCRYPTION_KEYS: ` new:${KEY_B} , a:${KEY_A}` }).encryptionKeys;
  t.same(keys.map((k) => k.id), ['new', 'a'], 'in the order given: the first encrypts');
  t.same(keys[0]!.key, Buffer.alloc(32, 2), 'URL-safe base64 is read too');
  for (const bad of ['nokey', `:${KEY_A}`, 'a:short', `a:${KEY_A},a:${KEY_A}`, `bad.id:${KEY_A}`, `a:${KEY_A}!`, ',']) {
    t.throws(() => loadConfig({ ...production, ENCRYPTION_KEYS: bad }), { name: 'ConfigError', message: /ENCRYPTION_KEYS/ }, bad);
  }
  t.notMatch(
    (t.throws(() => loadConfig({ ...production, ENCRYPTION_KEYS: 'a:c2VjcmV0' })) as unknown as Error | undefined)?.message ?? '',
    /c2VjcmV0/,
    'the message does not echo the key',
  );
});

tap.test('two-factor settings: REAUTH_MAX_AGE, MFA_REQUIRED_PERMISSIONS, MFA_ENFORCE_FOR_ROLES, TOTP_ISSUER', async (t) => {
  const dir = tempDataDir(t);
  const defaults = loadConfig({ DATA_DIR: dir }, () => {});
  t.equal(defaults.reauthMaxAge, 600, 'a factor is fresh for 10 minutes');
  t.same(defaults.mfaRequiredPermissions, []);
  t.same(defaults.mfaEnforceForRoles, []);
  t.equal(defaults.totpIssuer, 'Gatehouse');
  const set = loadConfig(
    { DATA_DIR: dir, REAUTH_MAX_AGE: '5m', MFA_REQUIRED_PERMISSIONS: 'users:write, roles:assign,', MFA_ENFORCE_FOR_ROLES: 'admin', TOTP_ISSUER: 'Acme' },
    () => {},
  );
  t.equal(set.reauthMaxAge, 300);
  t.same(set.mfaRequiredPermissions, ['users:write', 'roles:assign']);
  t.same(set.mfaEnforceForRoles, ['admin']);
  t.equal(set.totpIssuer, 'Acme');
  t.throws(() => loadConfig({ DATA_DIR: dir, REAUTH_MAX_AGE: '0' }, () => {}), { name: 'ConfigError', message: /REAUTH_MAX_AGE/ });
});

tap.test('.env.example documents every variable the configuration reads', async (t) => {
  const { EnvSchema } = await import('../src/config.js');
  const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
  for (const name of Object.keys(EnvSchema.properties)) {
    t.match(example, new RegExp(`^#? ?${name}=`, 'm'), name);
  }
});
