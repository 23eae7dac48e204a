/** RFC 3339 date-time as ajv-formats reads it: `t` or a space for `T`, offsets with or without the colon. */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/;

const MIN = Date.parse('0001-01-01T00:00:00.000Z');
const MAX = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * The instant a date-time names, or undefined when there is none we can store. PostgreSQL refuses
 * year 0, and a JS Date outside years 1-9999 serializes as `+010000-...`, which it refuses too: so
 * after the offset is applied the instant must fall in 0001-9999 UTC. A leap second (`23:59:60`)
 * has no JS Date and a February 30th no day: both are undefined rather than rolled over.
 */
export function parseInstant(text: string): Date | undefined {
  const m = DATE_TIME.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = m[7] ? Number(m[7].slice(1, 4).padEnd(3, '0')) : 0;
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutes = Number(m[11] ?? 0);
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return undefined;
  // Date.UTC maps years 0-99 onto 1900-1999; setUTCFullYear does not.
  const local = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
  local.setUTCFullYear(year);
  if (local.getUTCDate() !== day) return undefined;
  const sign = m[9] === '-' ? -1 : 1;
  const instant = local.getTime() - (m[8] ? 0 : sign * (offsetHours * 60 + offsetMinutes) * 60_000);
  return instant >= MIN && instant <= MAX ? new Date(instant) : undefined;
}
