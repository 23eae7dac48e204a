import { Type, type Static } from '@sinclair/typebox';
import type { ApiKeyRow } from '../db/schema.js';
import { PermissionName } from './admin.js';
import { USER_EXAMPLE } from './user.js';

export const API_KEY_ID_EXAMPLE = '3f1c9a52-8d2e-4b7a-9c61-0e5d7f2a4b18';

export const CreateApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'What the key is for, to tell keys apart' }),
    permissions: Type.Array(PermissionName, {
      minItems: 1,
      maxItems: 100,
      description: 'What the key may do: permissions you hold yourself (403 exceeds_own_permissions otherwise)',
    }),
    expiresIn: Type.Optional(Type.Integer({ minimum: 60, maximum: 5 * 366 * 86_400, description: 'Seconds until the key stops working; omitted: never' })),
  },
  { additionalProperties: false, examples: [{ name: 'nightly export', permissions: ['users:read'], expiresIn: 2_592_000 }] },
);

/** A key as listed: never its secret, nor the hash of it. */
export const ApiKeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  prefix: Type.String({ description: 'gh_<keyId>: the start of the key, to recognize it' }),
  permissions: Type.Array(Type.String(), { description: 'As listed at creation; the key uses only those its owner still holds' }),
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'Updated at most once a minute' }),
  lastUsedIp: Type.Union([Type.String(), Type.Null()]),
});
export type ApiKeyView = Static<typeof ApiKeySchema>;

export const AdminApiKeySchema = Type.Composite([ApiKeySchema, Type.Object({ userId: Type.String({ format: 'uuid', description: 'The owner' }) })]);
export type AdminApiKeyView = Static<typeof AdminApiKeySchema>;

export const CreatedApiKeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  key: Type.String({ description: 'gh_<keyId>_<secret>: shown this once, never again. Send it as "Authorization: Bearer <key>" or "X-API-Key: <key>".' }),
  permissions: Type.Array(Type.String()),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

export const API_KEY_EXAMPLE: ApiKeyView = {
  id: API_KEY_ID_EXAMPLE,
  name: 'nightly export',
  prefix: 'gh_k7q2m4x9c3vb',
  permissions: ['users:read'],
  createdAt: '2026-01-15T09:00:00.000Z',
  expiresAt: '2026-02-14T09:00:00.000Z',
  lastUsedAt: '2026-01-16T02:00:04.000Z',
  lastUsedIp: '203.0.113.7',
};
export const ADMIN_API_KEY_EXAMPLE: AdminApiKeyView = { ...API_KEY_EXAMPLE, userId: USER_EXAMPLE.id };
export const CREATED_API_KEY_EXAMPLE: Static<typeof CreatedApiKeySchema> = {
  id: API_KEY_ID_EXAMPLE,
  name: 'nightly export',
  key: 'gh_k7q2m4x9c3vb_ZXhhbXBsZS1rZXktZm9yLXRoZS1kb2NzLW9ubHktMDA',
  permissions: ['users:read'],
  expiresAt: '2026-02-14T09:00:00.000Z',
  createdAt: '2026-01-15T09:00:00.000Z',
};

const iso = (date: Date | null) => date && date.toISOString();

export function toApiKeyView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: `gh_${row.keyId}`,
    permissions: row.permissions,
    createdAt: row.createdAt.toISOString(),
    expiresAt: iso(row.expiresAt),
    lastUsedAt: iso(row.lastUsedAt),
    lastUsedIp: row.lastUsedIp,
  };
}

export function toAdminApiKeyView(row: ApiKeyRow): AdminApiKeyView {
  return { ...toApiKeyView(row), userId: row.userId };
}
