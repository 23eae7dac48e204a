import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';

export type NotificationHandler = (payload: string) => void;

/** What a listener reports about its connection: while it is down, notifications are lost. */
export interface ListenEvents {
  /** The connection is lost: notifications sent from now on may never arrive. */
  onDown?: () => void;
  /** LISTEN is established again: notifications arrive from now on, those sent in between are lost. */
  onUp?: () => void;
}

/**
 * Waits before each attempt to reconnect: short, because an instance whose listener is down reads
 * every authorization from the database, and bounded, unlike the pool's backoff (up to 20 s).
 */
const RECONNECT_DELAYS_MS = [100, 200, 400, 800, 1000];
/** A LISTEN attempt to an address that does not answer gives up after this long, then retries. */
const CONNECT_TIMEOUT_SECONDS = 5;
/**
 * How often the listening connection is asked for a `select 1`, which must answer within as long.
 * A connection can die without closing (a network cut, a failover that leaves the old server
 * silent): only asking tells, and until then the cache would trust a listener that hears nothing.
 */
const HEARTBEAT_MS = 3000;

/**
 * LISTEN on `channel` over a connection of its own to `url`, which must reach PostgreSQL directly:
 * a pooler in transaction mode would hand the session to another client after the LISTEN. The loss
 * of that connection is reported at once (onDown), or within two heartbeats if it dies silently,
 * then it reconnects by itself until LISTEN is back (onUp). Resolves once the first LISTEN is in
 * place, and rejects if it cannot be: a start with an unreachable listener fails instead of
 * running without notifications.
 */
export async function listenDirect(
  url: string,
  channel: string,
  onMessage: NotificationHandler,
  events: ListenEvents = {},
  { heartbeatMs = HEARTBEAT_MS }: { heartbeatMs?: number } = {},
): Promise<() => Promise<void>> {
  const stopping = new AbortController();
  /** The connection listening, or being opened to listen. */
  let connection: postgres.Sql | undefined;
  let reconnecting: Promise<void> | undefined;

  const open = async (): Promise<void> => {
    let listening = false;
    let heartbeat: NodeJS.Timeout | undefined;
    /** This connection is lost: report it once and start again on a new one. */
    const lose = () => {
      // A connection that never listened is a failed attempt: whoever made it sees its error.
      if (!listening || opened !== connection) return;
      listening = false;
      clearInterval(heartbeat);
      connection = undefined;
      // A silent connection may never answer this: it is left to the operating system.
      void opened.end({ timeout: 0 });
      if (stopping.signal.aborted) return;
      events.onDown?.();
      reconnecting = reconnect();
    };
    // `onnotify` is the connection-level hook postgres.js's own listen() is built on; its types omit it.
    const options: postgres.Options<{}> & { onnotify: (channel: string, payload: string) => void } = {
      max: 1,
      // Kept for as long as the listener lives: postgres.js would otherwise recycle it after 30-60 minutes.
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: CONNECT_TIMEOUT_SECONDS,
      fetch_types: false,
      onnotice: () => {},
      onnotify: (from, payload) => {
        if (from === channel) onMessage(payload);
      },
      onclose: lose,
    };
    const opened = postgres(url, options);
    connection = opened;
    try {
      await opened.unsafe(`listen "${channel.replace(/"/g, '""')}"`);
      listening = true;
    } catch (err) {
      await opened.end({ timeout: 0 });
      throw err;
    }
    heartbeat = setInterval(() => {
      const silent = setTimeout(lose, heartbeatMs);
      opened.unsafe('select 1').then(() => clearTimeout(silent), lose);
    }, heartbeatMs);
    // The listener never keeps the process alive by itself.
    heartbeat.unref();
  };

  const reconnect = async (): Promise<void> => {
    for (let tries = 0; ; tries++) {
      try {
        await sleep(RECONNECT_DELAYS_MS[Math.min(tries, RECONNECT_DELAYS_MS.length - 1)], undefined, { signal: stopping.signal });
        await open();
        if (!stopping.signal.aborted) events.onUp?.();
        return;
      } catch {
        // Stopped, or still unreachable (refused, starting up, timed out): then try again.
        if (stopping.signal.aborted) return;
      }
    }
  };

  await open();
  return async () => {
    stopping.abort();
    // Also cuts an attempt in progress short, so stopping never waits for a connect timeout.
    await connection?.end({ timeout: 0 });
    await reconnecting;
  };
}

/**
 * Every LISTEN of one database on one connection per channel, whoever asks: the authorization
 * cache, the signing keys, a test waiting for a marker. One notification then reaches all of them
 * in the same turn, so "my marker arrived" also means "every earlier notice reached the others"
 * (separate connections would each deliver in their own time), and an instance holds one
 * listening connection, not one per subscriber.
 */
export function sharedListeners(url: string) {
  interface Subscriber {
    onMessage: NotificationHandler;
    events: ListenEvents;
  }
  interface Channel {
    subscribers: Set<Subscriber>;
    up: boolean;
    started: Promise<() => Promise<void>>;
  }
  const channels = new Map<string, Channel>();

  const open = (channel: string): Channel => {
    const entry: Channel = { subscribers: new Set(), up: true, started: Promise.resolve(async () => {}) };
    const each = (f: (s: Subscriber) => void) => [...entry.subscribers].forEach(f);
    entry.started = listenDirect(url, channel, (payload) => each((s) => s.onMessage(payload)), {
      onDown: () => {
        entry.up = false;
        each((s) => s.events.onDown?.());
      },
      onUp: () => {
        entry.up = true;
        each((s) => s.events.onUp?.());
      },
    });
    // A first LISTEN that fails leaves nothing behind: the next subscriber tries again.
    entry.started.catch(() => channels.get(channel) === entry && channels.delete(channel));
    channels.set(channel, entry);
    return entry;
  };

  const stopChannel = async (channel: string, entry: Channel) => {
    if (channels.get(channel) === entry) channels.delete(channel);
    const stop = await entry.started.catch(() => undefined);
    await stop?.();
  };

  return {
    async listen(channel: string, onMessage: NotificationHandler, events: ListenEvents = {}): Promise<() => Promise<void>> {
      const entry = channels.get(channel) ?? open(channel);
      const subscriber: Subscriber = { onMessage, events };
      entry.subscribers.add(subscriber);
      try {
        await entry.started;
      } catch (err) {
        entry.subscribers.delete(subscriber);
        throw err;
      }
      // Joining a channel whose connection is down: hear it now, and onUp when it is back.
      if (!entry.up) events.onDown?.();
      return async () => {
        if (!entry.subscribers.delete(subscriber) || entry.subscribers.size > 0) return;
        await stopChannel(channel, entry);
      };
    },
    async close(): Promise<void> {
      await Promise.all([...channels].map(([channel, entry]) => stopChannel(channel, entry)));
    },
  };
}
