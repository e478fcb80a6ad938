import { open, readFile, stat, watch } from 'node:fs/promises';
import { errno } from '../common/errors.ts';

/** One line of Docker's json-file log driver. */
export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;         // RFC 3339 with nanoseconds
}

export interface ReadOptions {
  /** Only the last N entries (of what passes since/until); undefined for all. */
  tail?: number;
  /** Nanoseconds since the epoch, inclusive bounds. */
  sinceNs?: bigint;
  untilNs?: bigint;
  /** Keep reading as the file grows, until `done` resolves or the signal aborts. */
  follow?: boolean;
  done?: Promise<unknown>;
  signal?: AbortSignal;
}

/** `2024-01-02T03:04:05.123456789Z` → nanoseconds since the epoch. */
export function timeNs(t: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return 0n;
  const base = Date.parse(`${m[1]}${m[3]}`);
  return BigInt(base) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch { /* a line cut by a crash mid-write is skipped */ }
  }
  return out;
}

/**
 * Reads a container's json-file log, rotated files first (`path.N` … `path.1`,
 * then `path`), filtered by time and tail, and with `follow` keeps yielding
 * what the monitor appends, across rotations, until the container stops.
 */
export async function* readJsonLog(path: string, maxFiles: number, opts: ReadOptions = {}): AsyncGenerator<LogEntry> {
  const inWindow = (e: LogEntry) => {
    if (opts.sinceNs === undefined && opts.untilNs === undefined) return true;
    const t = timeNs(e.time);
    return (opts.sinceNs === undefined || t >= opts.sinceNs) && (opts.untilNs === undefined || t <= opts.untilNs);
  };
  let entries: LogEntry[] = [];
  for (let i = Math.max(1, maxFiles) - 1; i >= 1; i--) entries.push(...parseLines(await readText(`${path}.${i}`)));
  const current = await readText(path);
  const consumed = Buffer.byteLength(current.slice(0, current.lastIndexOf('\n') + 1));
  entries.push(...parseLines(current.slice(0, current.lastIndexOf('\n') + 1)));
  entries = entries.filter(inWindow);
  if (opts.tail !== undefined && opts.tail >= 0) entries = opts.tail === 0 ? [] : entries.slice(-opts.tail);
  yield* entries;
  if (!opts.follow) return;
  yield* follow(path, consumed, inWindow, opts);
}

async function* follow(path: string, offset: number, inWindow: (e: LogEntry) => boolean, opts: ReadOptions): AsyncGenerator<LogEntry> {
  let pos = offset;
  let ino = await inode(path);
  let finished = false;
  opts.done?.then(() => (finished = true), () => (finished = true));
  const ac = new AbortController();
  const stop = () => ac.abort();
  opts.signal?.addEventListener('abort', stop);
  opts.done?.then(stop, stop);
  let pending = '';
  try {
    for (;;) {
      // A rotation renames the file away: finish the old one, then start the new one at 0.
      const nowIno = await inode(path);
      if (nowIno !== ino) {
        // What was appended to the old file before it was renamed to path.1 is still to be read.
        if ((await inode(`${path}.1`)) === ino) {
          pending += (await readFrom(`${path}.1`, pos, Infinity)).toString('utf8');
          for (const e of parseLines(pending)) if (inWindow(e)) yield e;
        }
        pos = 0;
        ino = nowIno;
        pending = '';
      }
      const chunk = await readFrom(path, pos);
      if (chunk.length > 0) {
        pos += chunk.length;
        pending += chunk.toString('utf8');
        const nl = pending.lastIndexOf('\n');
        if (nl >= 0) {
          for (const e of parseLines(pending.slice(0, nl + 1))) if (inWindow(e)) yield e;
          pending = pending.slice(nl + 1);
        }
        continue;
      }
      if (finished || opts.signal?.aborted) return;
      await waitForChange(path, ac.signal);
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
  }
}

async function waitForChange(path: string, signal: AbortSignal): Promise<void> {
  // fs.watch misses nothing that matters here; the timer covers a rotation racing the watch.
  const dir = path.slice(0, path.lastIndexOf('/'));
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal.addEventListener('abort', onAbort);
  const timer = setTimeout(() => ac.abort(), 250);
  try {
    for await (const _ of watch(dir, { signal: ac.signal })) break;
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return '';
    throw e;
  }
}

async function readFrom(path: string, pos: number, max = 1 << 20): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errno(e) === 'ENOENT') return Buffer.alloc(0);
    throw e;
  }
  try {
    const { size } = await fh.stat();
    if (size <= pos) return Buffer.alloc(0);
    const buf = Buffer.alloc(Math.min(size - pos, max));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function inode(path: string): Promise<number> {
  try {
    return (await stat(path)).ino;
  } catch (e) {
    if (errno(e) === 'ENOENT') return -1;
    throw e;
  }
}
