import { Type } from '@sinclair/typebox';
import { AUDIT_EVENT_TYPES } from '../domain/audit.js';

export const AuditEventType = Type.Unsafe<(typeof AUDIT_EVENT_TYPES)[number]>({
  type: 'string',
  enum: [...AUDIT_EVENT_TYPES],
  description: 'The fixed list of security event types',
});

export const AuditEventSchema = Type.Object(
  {
    id: Type.String({ description: 'Grows with time; opaque otherwise' }),
    type: AuditEventType,
    at: Type.String({ format: 'date-time' }),
    actorId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Who acted, when authenticated' }),
    userId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The user the event is about' }),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    detail: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'AuditEvent', title: 'AuditEvent' },
);
