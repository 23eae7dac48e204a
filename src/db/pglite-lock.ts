import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';

/**
 * PGlite is PostgreSQL in single-user mode: two processes on one folder each believe they own it,
 * and one silently overwrites what the other acknowledged. So a process takes this lock before it
 * opens a folder, and a second one is refused at once, told who holds it.
 *
 * The lock is a file beside the folder (`<folder>.lock`; inside it, PGlite would dump it with the
 * data), created with O_EXCL and holding who took it. A lock whose process is gone (a crash, a
 * kill -9) is stale and taken over. "Gone" is only decided on this host: a lock written on another
 * host (a shared volume) is honoured, since its process cannot be checked from here.
 */
export interface FolderLock {
  /** The lock file. */
  path: string;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): void;
}

interface Holder {
  pid: number;
  hostname: string;
  /** The holder's start time as the kernel counts it (Linux): tells a reused pid from the holder. */
  startTime?: string;
  since: string;
}

export class FolderLockedError extends Error {
  override name = 'FolderLockedError';

  constructor(
    readonly folder: string,
    readonly lockPath: string,
    readonly holder?: Holder,
  ) {
    super(FolderLockedError.describe(folder, lockPath, holder));
  }

  private static describe(folder: string, lockPath: string, holder?: Holder): string {
    if (!holder) {
      return `the database folder ${folder} is locked by ${lockPath}, which names no process: if no Gatehouse process uses the folder, delete that file`;
    }
    if (holder.pid === process.pid && holder.hostname === hostname()) {
      return `the database folder ${folder} is already open in this process (pid ${holder.pid})`;
    }
    if (holder.hostname !== hostname()) {
      return `the database folder ${folder} is in use by process ${holder.pid} on host ${holder.hostname} (since ${holder.since}): stop it first; if nothing runs there any more, delete ${lockPath}`;
    }
    return `the database folder ${folder} is in use by process ${holder.pid} (since ${holder.since}): stop it first, or use another DATA_DIR (or DATABASE_URL for a database several processes can share)`;
  }
}

/** Locks taken by this process, by lock file: a second open in the same process is refused as well. */
const held = new Map<string, string>();

/** Takes the lock on `folder`, or throws FolderLockedError naming the process that holds it. */
export function lockFolder(folder: string): FolderLock {
  const dir = resolve(folder);
  const path = `${dir}.lock`;
  if (held.has(path)) throw new FolderLockedError(dir, path, JSON.parse(held.get(path)!) as Holder);
  const content = JSON.stringify({
    pid: process.pid,
    hostname: hostname(),
    startTime: startTimeOf(process.pid),
    since: new Date().toISOString(),
  } satisfies Holder);
  return acquire(dir, path, content, 1);
}

/** A stale lock taken over, or one that vanished between two looks, means another round. */
function acquire(dir: string, path: string, content: string, round: number): FolderLock {
  if (create(path, content)) return hold(path, content);
  const seen = read(path);
  if (seen === undefined && round < MAX_ROUNDS) return acquire(dir, path, content, round + 1);
  const holder = parse(seen ?? '');
  if (!holder || !isStale(holder) || round === MAX_ROUNDS) throw new FolderLockedError(dir, path, holder);
  takeOver(path, seen!);
  return acquire(dir, path, content, round + 1);
}

const MAX_ROUNDS = 3;

function hold(path: string, content: string): FolderLock {
  held.set(path, content);
  const release = () => {
    if (held.get(path) !== content) return;
    held.delete(path);
    process.off('exit', release);
    if (read(path) === content) rmSync(path, { force: true });
  };
  // A process that exits without closing its database (a shutdown deadline) leaves no lock behind.
  process.on('exit', release);
  return { path, release };
}

/** Creates the lock file with `content`, unless one exists. */
function create(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The lock file's content, or undefined when there is none. */
function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parse(content: string): Holder | undefined {
  try {
    const holder = JSON.parse(content) as Partial<Holder>;
    return Number.isInteger(holder.pid) && typeof holder.hostname === 'string' ? (holder as Holder) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the lock's process is known to be gone. */
function isStale(holder: Holder): boolean {
  if (holder.hostname !== hostname()) return false;
  // Our own pid, yet not a lock of ours: an earlier life of this container or machine.
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: alive, but another user's.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  // Alive: the holder itself, or a process that got its pid after it died.
  const now = startTimeOf(holder.pid);
  return holder.startTime !== undefined && now !== undefined && now !== holder.startTime;
}

/**
 * Removes the stale lock `seen`, unless another process replaced it in the meantime: moved aside
 * first, it is checked, and put back when it turns out to be a live one. Exported for the tests of
 * the races it settles.
 */
export function takeOver(path: string, seen: string): void {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    // Gone already: another process took it over first.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // Putting a live lock back fails only if a third process locked the folder in that instant: its
  // lock stands and the one put aside is lost, the one race this does not settle.
  if (readFileSync(aside, 'utf8') !== seen) {
    try {
      linkSync(aside, path);
    } catch {}
  }
  rmSync(aside, { force: true });
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. Linux only. */
function startTimeOf(pid: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}
