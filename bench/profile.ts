/**
 * `npx tsx bench/profile.ts <file.cpuprofile> [top]`: where a V8 CPU profile (BENCH_CPU_PROF=dir
 * npm run bench) spent its time, by function (self time) and by package (self time of everything
 * under node_modules/<package>, or node: internals, or the project's own folders).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, callersOf] = process.argv.slice(2);
if (!file) {
  console.error('usage: tsx bench/profile.ts <file.cpuprofile> [top] [function: show who calls it]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

// Self time per node from the sample stream (more precise than hitCount × interval).
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0)));
const totalUs = profile.endTime - profile.startTime;

function where(url: string): string {
  if (!url) return '(native/V8)';
  if (url.startsWith('node:')) return url.split('/')[0]!;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/(src|bench|examples)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { callFrame } = byId.get(id)!;
  const name = callFrame.functionName || '(anonymous)';
  const place = where(callFrame.url);
  const key = callFrame.url ? `${name}  ${place}:${callFrame.lineNumber + 1}` : name;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const pkg = callFrame.url ? place.replace(/^(src|bench|examples)\/.*/, '$1/') : name.startsWith('(') ? name : '(native/V8)';
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
}

const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%`;
const print = (title: string, map: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`);
  }
};
console.log(`${file}: ${(totalUs / 1e6).toFixed(1)} s profiled`);
print('self time by package', byPackage);
print('self time by function', byFunction);

if (callersOf) {
  // The call paths (innermost first, a few frames deep) that end in the named function.
  const paths = new Map<string, number>();
  for (const [id, us] of selfUs) {
    if (byId.get(id)!.callFrame.functionName !== callersOf) continue;
    const frames: string[] = [];
    for (let p = parentOf.get(id); p !== undefined && frames.length < (Number(process.env.DEPTH) || 8); p = parentOf.get(p)) {
      const { functionName, url, lineNumber } = byId.get(p)!.callFrame;
      frames.push(`${functionName || '(anonymous)'} ${where(url)}:${lineNumber + 1}`);
    }
    const key = frames.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + us);
  }
  print(`callers of ${callersOf}`, paths);
}
