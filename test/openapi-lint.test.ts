import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPI } from 'openapi-types';
import tap from 'tap';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REDOCLY = fileURLToPath(new URL('../node_modules/.bin/redocly', import.meta.url));
// Named here rather than imported from scripts/openapi.ts, which would load the whole app.
const OPENAPI_FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
}

tap.test('Redocly lint, recommended rules: no error and no warning in openapi/openapi.json', async (t) => {
  // From the project root, so redocly.yaml and its ignore file apply; no telemetry, no update check.
  const run = await promisify(execFile)(REDOCLY, ['lint', '--format=json', OPENAPI_FILE], {
    cwd: ROOT,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
  }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
  const report = JSON.parse(run.stdout) as LintReport;
  t.same(
    report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`),
    [],
    'no problems',
  );
  t.same(report.totals, { errors: 0, warnings: 0, ignored: 2 }, 'only the two waived problems of .redocly.lint-ignore.yaml');
});

tap.test('@apidevtools/swagger-parser validates the document', async (t) => {
  const text = readFileSync(OPENAPI_FILE, 'utf8');
  const validated = await SwaggerParser.validate(JSON.parse(text) as OpenAPI.Document);
  t.equal((validated as { openapi?: string }).openapi, '3.1.0');
  // The same validator does refuse a broken document.
  const broken = JSON.parse(text) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  broken.paths['/auth/login']!.post!.responses['200'] = { $ref: '#/components/responses/Nowhere' };
  await t.rejects(SwaggerParser.validate(broken as unknown as OpenAPI.Document), 'a dangling $ref is an error');
});
