import type { MailMessage } from './mailer.js';

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function message(to: string, subject: string, intro: string, action: string, link: string, outro: string): MailMessage {
  return {
    to,
    subject,
    link,
    text: `${intro}\n\n${action}:\n${link}\n\n${outro}\n`,
    html: `<p>${escapeHtml(intro)}</p><p><a href="${escapeHtml(link)}">${escapeHtml(action)}</a></p><p>${escapeHtml(outro)}</p>`,
  };
}

/**
 * The token rides in the fragment: a browser never sends it to a server, so it stays out of the
 * front end's access logs and out of Referer headers to whatever the page loads or links to.
 */
export function linkTo(appUrl: string, path: string, token: string): string {
  return `${appUrl}/${path}#token=${encodeURIComponent(token)}`;
}

export function confirmEmailMessage(to: string, link: string, ttlHours: number): MailMessage {
  return message(
    to,
    'Confirm your email address',
    'Welcome! Please confirm that this is your email address.',
    'Confirm my email address',
    link,
    `The link works once and expires in ${ttlHours} hours. If you did not sign up, ignore this message.`,
  );
}

export function changeEmailMessage(to: string, link: string, ttlHours: number): MailMessage {
  return message(
    to,
    'Confirm your new email address',
    'You asked to use this address for your account.',
    'Confirm the new address',
    link,
    `The link works once and expires in ${ttlHours} hours. Until then your old address stays in use.`,
  );
}

export function resetPasswordMessage(to: string, link: string, ttlMinutes: number): MailMessage {
  return message(
    to,
    'Reset your password',
    'Someone, probably you, asked to reset the password of this account.',
    'Choose a new password',
    link,
    `The link works once and expires in ${ttlMinutes} minutes. If you did not ask, ignore this message: your password is unchanged.`,
  );
}

/**
 * To the current address when a change to `newEmail` is asked for. It carries no link that could
 * complete the change, and reads the same whether or not the new address could be used.
 */
export function emailChangeRequestedMessage(to: string, newEmail: string, appUrl: string): MailMessage {
  return message(
    to,
    'A change of your email address was requested',
    `Someone, probably you, asked to change the email address of your account to ${newEmail}. The change happens only when the link mailed to that address is used; until then this address stays in use.`,
    'Go to your account',
    appUrl,
    'If this was not you, reset your password now: a password reset cancels the change and signs out every session.',
  );
}

/** To the old address once an email change is done: the owner learns of it even if it was not them. */
export function emailChangedMessage(to: string, newEmail: string, appUrl: string): MailMessage {
  return message(
    to,
    'Your email address was changed',
    `The email address of your account was changed to ${newEmail}. This address no longer signs in to it.`,
    'Go to your account',
    appUrl,
    'If this was not you, contact your administrator at once: the account may have been taken over.',
  );
}

export function invitationMessage(to: string, link: string, ttlHours: number): MailMessage {
  return message(
    to,
    'You are invited',
    'You have been invited to create an account with this email address.',
    'Accept the invitation',
    link,
    `The link works once and expires in ${ttlHours} hours. If you do not expect this, ignore this message.`,
  );
}
