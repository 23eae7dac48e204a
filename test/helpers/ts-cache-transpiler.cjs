/**
 * tap's TypeScript loader (ts-node, transpile-only) transpiles every module again in every test
 * process: the same few hundred files, about 90 times a run. This ts-node transpiler does exactly
 * what ts-node does by itself (its own transpileModule, with the same compiler options, so the same
 * code and source maps, and coverage sees no difference), and keeps each result on disk, keyed by
 * the file's name and text, the compiler's version and options and this file's own text.
 * TS_CACHE_DIR moves the cache (default: node_modules/.cache/gatehouse-ts, which `npm ci` removes).
 */
const { createHash, randomBytes } = require('node:crypto');
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

exports.create = function create({ service, nodeModuleEmitKind }) {
  const ts = require(service.projectLocalResolveHelper('typescript', true));
  const tsNodeDist = dirname(require.resolve('@isaacs/ts-node-temp-fork-for-pr-2009'));
  const { createTsTranspileModule } = require(join(tsNodeDist, 'ts-transpile-module.js'));
  const compilerOptions = service.config.options;
  const transpileModule = createTsTranspileModule(ts, { compilerOptions, reportDiagnostics: true });
  // ts-node's own choice for the module kind of a file it transpiles.
  const moduleKind = nodeModuleEmitKind === 'nodeesm' ? 'module' : 'commonjs';
  const dir = process.env.TS_CACHE_DIR ?? join(__dirname, '..', '..', 'node_modules', '.cache', 'gatehouse-ts');
  const salt = createHash('sha256')
    .update(JSON.stringify([ts.version, moduleKind, String(nodeModuleEmitKind), compilerOptions]))
    .update(readFileSync(__filename))
    .digest('hex');

  return {
    transpile(code, { fileName }) {
      const key = createHash('sha256').update(salt).update('\0').update(fileName).update('\0').update(code).digest('hex');
      const file = join(dir, key.slice(0, 2), `${key}.json`);
      try {
        return JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        // not cached yet (or unreadable): transpile
      }
      const result = transpileModule(code, { fileName }, moduleKind);
      // A file with diagnostics is not kept: ts-node reports them each time.
      if (!result.diagnostics || result.diagnostics.length === 0) {
        try {
          mkdirSync(dirname(file), { recursive: true });
          // Write then rename: a test process running in parallel never reads half a file.
          const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
          writeFileSync(partial, JSON.stringify({ outputText: result.outputText, sourceMapText: result.sourceMapText }));
          renameSync(partial, file);
        } catch {
          // a read-only tree: run uncached
        }
      }
      return result;
    },
  };
};
