import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Test } from './app.js';

export interface Mailbox {
  url: string;
  messages: ParsedMail[];
  /** The next message to `to` (optionally matching a subject), waiting up to `ms`. */
  waitFor(to: string, subject?: RegExp, ms?: number): Promise<ParsedMail>;
}

/** A real SMTP server on 127.0.0.1, in the test process, that keeps what it receives. */
export async function startSmtpServer(t: Test): Promise<Mailbox> {
  const messages: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push(mail);
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.server.address() as AddressInfo;
  const taken = new Set<ParsedMail>();
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    // Mail goes out in the background, on a loaded machine slowly: the wait is generous, and only a
    // mail that never comes pays for it.
    async waitFor(to, subject, ms = 20_000) {
      const started = Date.now();
      while (Date.now() - started < ms) {
        const found = messages.find(
          (m) => !taken.has(m) && m.to && JSON.stringify(m.to).includes(to) && (!subject || subject.test(m.subject ?? '')),
        );
        if (found) {
          taken.add(found);
          return found;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no mail to ${to} within ${ms} ms`);
    },
  };
}

/** The token of the one link in a message, read from its plain-text part (links carry it as `#token=`). */
export function tokenFrom(mail: ParsedMail, path: string): string {
  const match = new RegExp(`/${path}#token=([A-Za-z0-9_-]+)`).exec(mail.text ?? '');
  if (!match) throw new Error(`no ${path} link in: ${mail.text}`);
  return match[1]!;
}

/** A TCP port that accepts connections and never says a word: a hung mail server. */
export async function startSilentServer(t: Test): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `smtp://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nothing listens on: connections are refused. */
export async function refusedSmtpUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `smtp://127.0.0.1:${port}`;
}
