/**
 * `engines` says which Node versions Gatehouse runs on; every package the lockfile installs must
 * agree, or `npm ci` warns EBADENGINE on a version we claim (cookie@2 and content-disposition@3 say
 * Node >= 22: overrides in package.json keep their Node 20 releases).
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import tap from 'tap';

const read = (file: string) => JSON.parse(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'));
const engines: string = read('package.json').engines.node;
const lock = read('package-lock.json') as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };

/** The oldest version of each line `range` allows: ^20.19.0 || >=22.12.0 gives 20.19.0 and 22.12.0. */
function floors(range: string): string[] {
  return new semver.Range(range).set.map((comparators) => semver.minVersion(comparators.map((c) => c.value).join(' '))!.version);
}

tap.test('engines claims the Node this runs on (CI runs the Node it ships with)', async (t) => {
  t.ok(semver.satisfies(process.version, engines), `${process.version} satisfies ${engines}`);
  t.same(floors(engines), ['20.19.0', '22.12.0']);
});

tap.test('every installed package runs on the oldest Node of each line engines claims', async (t) => {
  for (const node of [...floors(engines), process.version]) {
    const refusing = Object.entries(lock.packages)
      .filter(([, pkg]) => !Array.isArray(pkg.engines) && pkg.engines?.node && !semver.satisfies(node, pkg.engines.node))
      .map(([path, pkg]) => `${path.replace(/^.*node_modules\//, '')}@${pkg.version} wants node ${(pkg.engines as { node: string }).node}`);
    t.same(refusing, [], `Node ${node}`);
  }
});
