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

export function linkTo(appUrl: string, path: string, token: string): string {
  return `${appUrl}/${path}?token=${encodeURIComponent(token)}`;
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
