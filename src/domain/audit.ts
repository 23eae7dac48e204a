import { and, desc, eq, gte, lt, lte, type SQL } from 'drizzle-orm';
import { auditEvents, type AuditEvent } from '../db/schema.js';
import { problem } from '../errors.js';
import { parseInstant } from '../lib/instant.js';
import type { DbOrTx } from './users.js';

/** The fixed vocabulary of the audit log, published as an enum in the OpenAPI document. */
export const AUDIT_EVENT_TYPES = [
  'registered',
  'login_succeeded',
  'login_failed',
  'locked_out',
  'refresh_reused',
  'logout',
  'password_changed',
  'password_reset',
  'email_confirmed',
  'email_change_requested',
  'role_assigned',
  'role_removed',
  'role_permissions_changed',
  'user_deactivated',
  'user_reactivated',
  'user_deleted',
  'sessions_revoked',
  'grant_refused',
  'signing_key_created',
  'signing_key_activated',
  'signing_key_revoked',
  'mfa_enrolled',
  'mfa_disabled',
  'mfa_failed',
  'mfa_locked',
  'mfa_reset',
  'recovery_code_used',
  'recovery_codes_regenerated',
  'reauthenticated',
  'passkey_registered',
  'passkey_removed',
  'api_key_created',
  'api_key_revoked',
  'impersonation_started',
  'impersonated_request',
  'invitation_created',
  'invitation_revoked',
  'invitation_accepted',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEventInput {
  type: AuditEventType;
  actorId?: string | null;
  userId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  /** Small and never secret: names, ids, reasons; no passwords, tokens or hashes. */
  detail?: Record<string, unknown>;
  /** When it happened, if not now: an event written late (after an outage) keeps its time. */
  at?: Date;
}

/** Appends the events in one statement, in their order. */
export async function recordAuditEvents(db: DbOrTx, events: readonly AuditEventInput[]): Promise<void> {
  await db.insert(auditEvents).values(
    events.map((event) => ({
      type: event.type,
      actorId: event.actorId ?? null,
      userId: event.userId ?? null,
      ip: event.ip ?? null,
      userAgent: event.userAgent ?? null,
      detail: event.detail ?? {},
      ...(event.at ? { at: event.at } : {}),
    })),
  );
}

/** The route's date-time format already checked this; a caller from outside HTTP gets the same 400. */
function instantOf(text: string, field: 'from' | 'to'): Date {
  const instant = parseInstant(text);
  if (instant) return instant;
  throw problem('validation_failed', `${field} is not a date-time between years 0001 and 9999.`, {
    errors: [{ path: `querystring/${field}`, message: 'must match format "date-time"' }],
  });
}

export async function listAuditEvents(
  db: DbOrTx,
  query: { limit: number; cursor?: string; user?: string; type?: AuditEventType; from?: string; to?: string },
): Promise<{ items: AuditEvent[]; nextCursor: string | null }> {
  const conditions: SQL[] = [];
  if (query.cursor) {
    // Ids grow with every insert: "before this id" is "older than this page".
    if (!/^\d{1,18}$/.test(query.cursor)) {
      throw problem('validation_failed', 'The cursor is not one this API returned.', {
        errors: [{ path: 'querystring/cursor', message: 'is malformed' }],
      });
    }
    conditions.push(lt(auditEvents.id, Number(query.cursor)));
  }
  if (query.user) conditions.push(eq(auditEvents.userId, query.user));
  if (query.type) conditions.push(eq(auditEvents.type, query.type));
  if (query.from) conditions.push(gte(auditEvents.at, instantOf(query.from, 'from')));
  if (query.to) conditions.push(lte(auditEvents.at, instantOf(query.to, 'to')));
  const rows = await db
    .select()
    .from(auditEvents)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(auditEvents.id))
    .limit(query.limit + 1);
  const items = rows.slice(0, query.limit);
  return { items, nextCursor: rows.length > query.limit ? String(items.at(-1)!.id) : null };
}
