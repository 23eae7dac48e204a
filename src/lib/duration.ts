const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `900`, `900s`, `15m`, `12h`, `7d`, `2w` -> seconds. A bare integer means seconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^\s*(\d+)\s*([smhdw]?)\s*$/.exec(value);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] || 's';
  const seconds = amount * (UNIT_SECONDS[unit] ?? 1);
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}
