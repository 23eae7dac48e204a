import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import openapiTS, { COMMENT_HEADER, astToString, type OpenAPI3 } from 'openapi-typescript';
import { OPENAPI_FILE } from './openapi.js';

export const CLIENT_TYPES_FILE = fileURLToPath(new URL('../src/client/schema.ts', import.meta.url));
export const CLIENT_ANONYMOUS_FILE = fileURLToPath(new URL('../src/client/anonymous-operations.ts', import.meta.url));

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

type Requirements = Record<string, string[]>[];

/**
 * The operations a caller may send without an access token: `security: []`, or an empty
 * requirement among the alternatives (logout takes an access token or a refresh token).
 */
function anonymousOperations(document: OpenAPI3): string {
  const anonymous: string[] = [];
  const fallback = (document as { security?: Requirements }).security ?? [];
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const [method, operation] of Object.entries(item as Record<string, { security?: Requirements }>)) {
      if (!METHODS.has(method)) continue;
      const requirements = operation.security ?? fallback;
      if (requirements.length === 0 || requirements.some((requirement) => Object.keys(requirement).length === 0)) {
        anonymous.push(`${method.toUpperCase()} ${path}`);
      }
    }
  }
  return `${COMMENT_HEADER.replace('openapi-typescript', 'scripts/client-types.ts')}/** Operations sent without an access token, as \`METHOD /path\`: those whose security allows none. */
export const ANONYMOUS_OPERATIONS: ReadonlySet<string> = new Set([
${anonymous.map((operation) => `  '${operation}',`).join('\n')}
]);
`;
}

/**
 * The client's generated files, from the committed OpenAPI document (not from the routes), so the
 * published client matches the published document exactly: file path -> content.
 */
export async function generateClientFiles(source: string = readFileSync(OPENAPI_FILE, 'utf8')): Promise<Map<string, string>> {
  const anonymous = anonymousOperations(JSON.parse(source) as OpenAPI3);
  const types = COMMENT_HEADER + astToString(await openapiTS(JSON.parse(source) as OpenAPI3, { silent: true }));
  return new Map([
    [CLIENT_TYPES_FILE, types],
    [CLIENT_ANONYMOUS_FILE, anonymous],
  ]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, content] of await generateClientFiles()) {
    writeFileSync(file, content);
    console.log(`wrote ${file}`);
  }
}
