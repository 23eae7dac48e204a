import nodemailer, { type Transporter } from 'nodemailer';
import type { FastifyBaseLogger } from 'fastify';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The one link the message is about, for the development transport's log line. */
  link: string;
}

export interface Mailer {
  /**
   * Sends in the background and never throws: a mail failure is logged and the HTTP answer that
   * caused it is the same, and as fast, whether the mail server is up, refuses, or hangs.
   */
  send(message: MailMessage): void;
  /** Resolves when every message handed over so far has been sent or has failed. */
  idle(): Promise<void>;
  close(): void;
}

/**
 * smtp(s)://user:password@host:port as nodemailer options. (Given a `url`, nodemailer ignores every
 * other option, the timeouts included.)
 */
function smtpOptions(smtpUrl: string) {
  const url = new URL(smtpUrl);
  const secure = url.protocol === 'smtps:';
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    ...(url.username ? { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } } : {}),
  };
}

export function createMailer(options: {
  transport: 'smtp' | 'log';
  smtpUrl?: string;
  /** Whether the log transport may write a message's link (and so its token): never in production. */
  logLinks: boolean;
  timeoutSeconds: number;
  from: string;
  log: FastifyBaseLogger;
}): Mailer {
  const { smtpUrl, from, log } = options;
  // A mail server that accepts the connection and then says nothing must not pile up sockets.
  const ms = options.timeoutSeconds * 1000;
  const timeouts = { connectionTimeout: ms, greetingTimeout: ms, socketTimeout: ms };
  const transport: Transporter | undefined =
    options.transport === 'smtp' && smtpUrl ? nodemailer.createTransport({ ...smtpOptions(smtpUrl), ...timeouts }) : undefined;
  const pending = new Set<Promise<void>>();

  const deliver = async (message: MailMessage): Promise<void> => {
    if (!transport) {
      // Development: the link in the log is all a developer needs to follow the flow. In production
      // a log line is read by more people than the mailbox owner, and the link would open the account.
      const mail = options.logLinks ? { to: message.to, subject: message.subject, link: message.link } : { to: message.to, subject: message.subject };
      log.info({ mail }, 'mail (not sent: MAIL_TRANSPORT=log)');
      return;
    }
    try {
      await transport.sendMail({ from, to: message.to, subject: message.subject, text: message.text, html: message.html });
      log.info({ mail: { subject: message.subject } }, 'mail sent');
    } catch (err) {
      // Neither the address nor the link is logged here: the failure is about the server.
      log.error({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'mail failed');
    }
  };

  return {
    send(message) {
      const sending = deliver(message).finally(() => pending.delete(sending));
      pending.add(sending);
    },
    async idle() {
      await Promise.allSettled([...pending]);
    },
    close() {
      transport?.close();
    },
  };
}
