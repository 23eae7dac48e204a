/**
 * tap measures only the files the tests load, so a module no test imports would not lower the
 * totals. This gate closes that hole: every file under src/ must appear in the coverage report
 * tap just wrote (with the thresholds in package.json then applying to all of them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const SUMMARY = join(ROOT, '.tap', 'report', 'coverage-summary.json');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const summary = JSON.parse(readFileSync(SUMMARY, 'utf8')) as Record<string, { lines: { pct: number } }>;
const measured = new Set(Object.keys(summary).filter((key) => key !== 'total').map((key) => resolve(ROOT, key)));
const missing = sourceFiles(join(ROOT, 'src')).filter((file) => !measured.has(file));
if (missing.length > 0) {
  console.error(`coverage: no test loads ${missing.length} file(s) under src/ (they count as 0% covered):`);
  for (const file of missing) console.error(`  ${relative(ROOT, file)}`);
  process.exit(1);
}
console.log(`coverage: all ${measured.size} measured files include every file under src/`);
