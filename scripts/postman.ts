import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Converter from 'openapi-to-postmanv2';

export const POSTMAN_FILE = fileURLToPath(new URL('../openapi/gatehouse.postman_collection.json', import.meta.url));
const OPENAPI_FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

/** The auth folder in the order a session lives: each request's tests check it and pass its tokens on. */
export const WALKTHROUGH = ['register', 'login', 'getCurrentUser', 'updateCurrentUser', 'refreshTokens', 'logout'] as const;
export const WALKTHROUGH_FOLDER = 'auth';

interface Operation {
  operationId: string;
  requestBody?: { content: Record<string, { example?: unknown }> };
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
}
interface Script {
  listen: 'prerequest' | 'test';
  script: { type: 'text/javascript'; exec: string[] };
}
interface Request {
  method: string;
  url: { path: string[] };
  body?: { mode?: string; raw?: string };
}
interface Item {
  id?: string;
  name: string;
  item?: Item[];
  request?: Request;
  response?: { id?: string; code: number }[];
  event?: Script[];
}
interface Collection {
  info: { _postman_id?: string; name: string; description?: { content: string; type: string } };
  item: Item[];
  variable: { key: string; value: string }[];
  event?: Script[];
}

const script = (listen: Script['listen'], ...exec: string[]): Script => ({ listen, script: { type: 'text/javascript', exec } });

/** Stores the tokens an answer carries, for the requests after it. */
const KEEP_TOKENS = [
  'const body = pm.response.json();',
  "pm.expect(body.accessToken, 'accessToken').to.be.a('string');",
  "pm.expect(body.refreshToken, 'refreshToken').to.be.a('string');",
  "pm.collectionVariables.set('bearerToken', body.accessToken);",
  "pm.collectionVariables.set('refreshToken', body.refreshToken);",
];

/** What each walkthrough request sends (variables instead of the document's example values) and checks. */
const STEPS: Record<(typeof WALKTHROUGH)[number], { body?: Record<string, unknown>; events: Script[] }> = {
  register: {
    body: { email: '{{email}}', password: '{{password}}', name: 'Ann' },
    events: [
      script('prerequest', '// A new address at every run, so that the folder can be run again on the same server.', "pm.collectionVariables.set('email', `ann+${Date.now()}@example.com`);"),
      script('test', "pm.test('201 Created, with tokens', () => {", '  pm.response.to.have.status(201);', ...KEEP_TOKENS.map((l) => `  ${l}`), '});'),
    ],
  },
  login: {
    body: { email: '{{email}}', password: '{{password}}' },
    events: [script('test', "pm.test('200 OK, with tokens of a new session', () => {", '  pm.response.to.have.status(200);', ...KEEP_TOKENS.map((l) => `  ${l}`), '});')],
  },
  getCurrentUser: {
    events: [
      script(
        'test',
        "pm.test('200 OK: the user who logged in', () => {",
        '  pm.response.to.have.status(200);',
        "  pm.expect(pm.response.json().email).to.equal(pm.collectionVariables.get('email'));",
        '});',
      ),
    ],
  },
  updateCurrentUser: {
    events: [
      script(
        'test',
        "pm.test('200 OK: the name is changed', () => {",
        '  pm.response.to.have.status(200);',
        "  pm.expect(pm.response.json().name).to.equal(JSON.parse(pm.request.body.raw).name);",
        '});',
      ),
    ],
  },
  refreshTokens: {
    body: { refreshToken: '{{refreshToken}}' },
    events: [
      script('prerequest', "pm.collectionVariables.set('previousRefreshToken', pm.collectionVariables.get('refreshToken'));"),
      script(
        'test',
        "pm.test('200 OK, with a new refresh token', () => {",
        '  pm.response.to.have.status(200);',
        ...KEEP_TOKENS.map((l) => `  ${l}`),
        "  pm.expect(body.refreshToken).to.not.equal(pm.collectionVariables.get('previousRefreshToken'));",
        '});',
      ),
    ],
  },
  logout: {
    body: { refreshToken: '{{refreshToken}}' },
    events: [script('test', "pm.test('204 No Content: the session is revoked', () => {", '  pm.response.to.have.status(204);', '});')],
  },
};

function convert(openapi: string): Promise<Collection> {
  return new Promise((resolve, reject) => {
    Converter.convertV2(
      { type: 'string', data: openapi },
      {
        folderStrategy: 'Tags',
        // Request bodies, parameters and answers from the document's examples, not from faked values.
        parametersResolution: 'Example',
        // Optional query parameters are listed, unticked: a placeholder value would make the request a 400.
        enableOptionalParameters: false,
      },
      (err, result) => {
        const data = result?.output?.[0]?.data;
        if (err || !result?.result || !data) return reject(err ?? new Error(`openapi-to-postmanv2: ${result?.reason}`));
        resolve(data as unknown as Collection);
      },
    );
  });
}

function operationIdsByRequest(document: Document): Map<string, string> {
  const ids = new Map<string, string>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) ids.set(`${method.toUpperCase()} ${path}`, operation.operationId);
  }
  return ids;
}

function requestKey(request: Request): string {
  const path = request.url.path.map((segment) => segment.replace(/^:(.+)$/, '{$1}')).join('/');
  return `${request.method} /${path}`;
}

/**
 * The Postman collection for the OpenAPI document: openapi-to-postmanv2's conversion, then made
 * reproducible (no random ids; only success examples, which come from the document, not the
 * converter's faked error bodies), with collection variables, and the auth folder as a
 * walkthrough that stores and sends the tokens.
 */
export async function generatePostman(openapi: string): Promise<string> {
  const document = JSON.parse(openapi) as Document;
  const collection = await convert(openapi);
  const ids = operationIdsByRequest(document);

  delete collection.info._postman_id;
  collection.info.description = {
    content: `${collection.info.description?.content ?? ''}\n\nSet baseUrl to your server. Run the "${WALKTHROUGH_FOLDER}" folder first: it registers a new account, logs in, reads and updates the profile, refreshes and logs out, and its tests keep the tokens in the collection variables bearerToken and refreshToken for the other requests (log in again after it to use them).`,
    type: 'text/plain',
  };
  const byId = new Map<string, Item>();
  const tidy = (item: Item) => {
    delete item.id;
    item.item?.forEach(tidy);
    if (!item.request) return;
    item.response = (item.response ?? []).filter((response) => response.code < 300);
    for (const response of item.response) delete response.id;
    const id = ids.get(requestKey(item.request));
    if (!id) throw new Error(`postman: no operation for ${requestKey(item.request)}`);
    byId.set(id, item);
  };
  collection.item.forEach(tidy);

  for (const id of WALKTHROUGH) {
    const item = byId.get(id)!;
    const { body, events } = STEPS[id];
    if (body) item.request!.body!.raw = JSON.stringify(body, null, 2);
    item.event = events;
  }
  const folder = collection.item.find((item) => item.name === WALKTHROUGH_FOLDER);
  if (!folder?.item) throw new Error(`postman: no folder ${WALKTHROUGH_FOLDER}`);
  const order = (item: Item) => {
    const index = WALKTHROUGH.indexOf(ids.get(requestKey(item.request!)) as (typeof WALKTHROUGH)[number]);
    return index < 0 ? WALKTHROUGH.length : index;
  };
  folder.item.sort((a, b) => order(a) - order(b));

  const login = document.paths['/auth/login']?.post?.requestBody?.content['application/json']?.example as { email: string; password: string };
  collection.variable = [
    ...collection.variable.filter((v) => v.key === 'baseUrl'),
    { key: 'email', value: login.email },
    { key: 'password', value: login.password },
    { key: 'bearerToken', value: '' },
    { key: 'refreshToken', value: '' },
  ];
  return `${JSON.stringify(collection, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(POSTMAN_FILE, await generatePostman(readFileSync(OPENAPI_FILE, 'utf8')));
  console.log(`wrote ${POSTMAN_FILE}`);
}
