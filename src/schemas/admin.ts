import { Type, type Static } from '@sinclair/typebox';
import { NAME_PATTERN } from '../domain/names.js';
import type { RoleWithPermissions } from '../domain/roles.js';
import type { UserWithAccess } from '../domain/users.js';
import { USER_EXAMPLE, UserSchema, toUserView } from './user.js';

export const RoleName = Type.String({ pattern: NAME_PATTERN, description: '1-64 of a-z 0-9 : _ - .' });
export const PermissionName = RoleName;
export const UserId = Type.Object({ id: Type.String({ format: 'uuid', examples: [USER_EXAMPLE.id] }) });
export const RoleParams = Type.Object({ name: Type.String({ maxLength: 64, examples: ['editor'] }) });
export const PermissionParams = Type.Object({ name: Type.String({ maxLength: 64, examples: ['articles:publish'] }) });

/** The user as an admin sees them: /auth/me's shape plus the active flag. */
export const AdminUserSchema = Type.Composite([Type.Omit(UserSchema, []), Type.Object({ active: Type.Boolean() })], {
  $id: 'AdminUser',
  title: 'AdminUser',
});
export type AdminUserView = Static<typeof AdminUserSchema>;
export const ADMIN_USER_EXAMPLE: AdminUserView = { ...USER_EXAMPLE, active: true };

export function toAdminUserView(entry: UserWithAccess): AdminUserView {
  return { ...toUserView(entry), active: entry.user.active };
}

export const RoleSchema = Type.Object(
  {
    name: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    permissions: Type.Array(Type.String()),
    builtIn: Type.Boolean({ description: 'Built-in roles (admin, user) cannot be deleted' }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Role', title: 'Role' },
);

export const ROLE_EXAMPLE: Static<typeof RoleSchema> = {
  name: 'editor',
  description: 'Writes and edits articles',
  permissions: ['read', 'write'],
  builtIn: false,
  createdAt: '2026-01-15T09:40:00.000Z',
};

export function toRoleView(role: RoleWithPermissions): Static<typeof RoleSchema> {
  return { ...role, createdAt: role.createdAt.toISOString() };
}

export const PermissionSchema = Type.Object(
  {
    name: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Permission', title: 'Permission' },
);

export const PERMISSION_EXAMPLE: Static<typeof PermissionSchema> = {
  name: 'articles:publish',
  description: 'Publish articles',
  createdAt: '2026-01-15T09:45:00.000Z',
};

export function toPermissionView(p: { name: string; description: string | null; createdAt: Date }): Static<typeof PermissionSchema> {
  return { name: p.name, description: p.description, createdAt: p.createdAt.toISOString() };
}

export const NameList = (description: string) =>
  Type.Array(RoleName, { maxItems: 100, description: `${description}; a name listed twice counts once` });
