/** Emails are compared and stored in one form: trimmed, NFC, the whole address lower-cased. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFC').toLowerCase();
}
