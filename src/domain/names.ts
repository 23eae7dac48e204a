/** Role and permission names appear in route rules, URLs and the OpenAPI document: kept plain. */
export const NAME_PATTERN = '^[a-z0-9:_.-]{1,64}$';

/** A name listed twice counts once; order is kept for messages. */
export function uniqueNames(names: readonly string[]): string[] {
  return [...new Set(names)];
}
