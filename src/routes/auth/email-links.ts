import { requestEmailChange } from '../../domain/account.js';
import { issueUserToken } from '../../domain/user-tokens.js';
import {
  changeEmailMessage,
  confirmEmailMessage,
  emailChangedMessage,
  emailChangeRequestedMessage,
  linkTo,
  resetPasswordMessage,
} from '../../mail/messages.js';
import type { Gatehouse } from '../../services.js';

/** Each of these issues a single-use token and mails its link (or a notice), after the answer has left. */

export function sendConfirmation(gatehouse: Gatehouse, user: { userId: string; email: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('confirm-email', async () => {
    const token = await issueUserToken(gatehouse.db, { userId: user.userId, purpose: 'confirm_email', ttlSeconds: config.confirmTokenTtl });
    gatehouse.mailer.send(confirmEmailMessage(user.email, linkTo(config.appUrl, 'confirm-email', token), Math.round(config.confirmTokenTtl / 3600)));
  });
}

/**
 * The link goes to the new address only if no other account has it: otherwise nothing is mailed
 * there and nothing is stored. The current address gets a notice either way. All of it after the
 * answer, so the answer is the same for a taken address and a free one.
 */
export function sendEmailChange(gatehouse: Gatehouse, input: { userId: string; currentEmail: string; newEmail: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('change-email', async () => {
    const token = await requestEmailChange(gatehouse.db, { userId: input.userId, newEmail: input.newEmail, ttlSeconds: config.confirmTokenTtl });
    gatehouse.mailer.send(emailChangeRequestedMessage(input.currentEmail, input.newEmail, config.appUrl));
    if (token) {
      gatehouse.mailer.send(changeEmailMessage(input.newEmail, linkTo(config.appUrl, 'confirm-email', token), Math.round(config.confirmTokenTtl / 3600)));
    }
  });
}

export function sendEmailChangedNotice(gatehouse: Gatehouse, change: { previousEmail: string; newEmail: string }): void {
  gatehouse.mailer.send(emailChangedMessage(change.previousEmail, change.newEmail, gatehouse.config.appUrl));
}

export function sendPasswordReset(gatehouse: Gatehouse, user: { userId: string; email: string }): void {
  const { config } = gatehouse;
  gatehouse.background.run('reset-password', async () => {
    const token = await issueUserToken(gatehouse.db, { userId: user.userId, purpose: 'reset_password', ttlSeconds: config.resetTokenTtl });
    gatehouse.mailer.send(resetPasswordMessage(user.email, linkTo(config.appUrl, 'reset-password', token), Math.round(config.resetTokenTtl / 60)));
  });
}
