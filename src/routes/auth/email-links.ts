import { issueUserToken } from '../../domain/user-tokens.js';
import { changeEmailMessage, confirmEmailMessage, linkTo, resetPasswordMessage } from '../../mail/messages.js';
import type { Gatehouse } from '../../services.js';

/** Each of these issues a single-use token and mails its link, after the answer has left. */

export function sendConfirmation(gatehouse: Gatehouse, user: { userId: string; email: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('confirm-email', async () => {
    const token = await issueUserToken(gatehouse.db, { userId: user.userId, purpose: 'confirm_email', ttlSeconds: config.confirmTokenTtl });
    gatehouse.mailer.send(confirmEmailMessage(user.email, linkTo(config.appUrl, 'confirm-email', token), Math.round(config.confirmTokenTtl / 3600)));
  });
}

export function sendEmailChange(gatehouse: Gatehouse, input: { userId: string; newEmail: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('change-email', async () => {
    const token = await issueUserToken(gatehouse.db, {
      userId: input.userId,
      purpose: 'change_email',
      ttlSeconds: config.confirmTokenTtl,
      newEmail: input.newEmail,
    });
    gatehouse.mailer.send(changeEmailMessage(input.newEmail, linkTo(config.appUrl, 'confirm-email', token), Math.round(config.confirmTokenTtl / 3600)));
  });
}

export function sendPasswordReset(gatehouse: Gatehouse, user: { userId: string; email: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('reset-password', async () => {
    const token = await issueUserToken(gatehouse.db, { userId: user.userId, purpose: 'reset_password', ttlSeconds: config.resetTokenTtl });
    gatehouse.mailer.send(resetPasswordMessage(user.email, linkTo(config.appUrl, 'reset-password', token), Math.round(config.resetTokenTtl / 60)));
  });
}
