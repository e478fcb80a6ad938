// The default storage driver: objects are files under one root directory.
import { close as closeCb, createReadStream, createWriteStream, fstat as fstatCb, fsync as fsyncCb, open as openCb, read as readCb } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { syncDir, writeFileAtomic } from '../../common/atomic-file.ts';
import { errno, notFound } from '../../common/errors.ts';
import { checkPath, type StatInfo, type StorageDriver, type Writer } from './driver.ts';

const openFd = promisify(openCb);
const fsyncFd = promisify(fsyncCb);
const closeFd = promisify(closeCb);
const fstatFd = promisify(fstatCb);

/**
 * `send` reads into buffers it reuses: SEND_DEPTH chunks of SEND_CHUNK per transfer, each
 * refilled only once the socket has taken it. No per-chunk allocation and no garbage: a 60 MB
 * blob costs 512 KiB while it streams, and chunks this size stay in the CPU's cache between the
 * read and the write.
 */
const SEND_CHUNK = 128 << 10;
const SEND_DEPTH = 4;
/** Free buffers kept between transfers (16 MiB at most). */
const POOL_MAX = 128;
const pool: Buffer[] = [];

function preadFd(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => readCb(fd, buf, 0, length, position, (e, n) => (e ? reject(e) : resolve(n))));
}

function writeChunk(dest: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    dest.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

/** Where small objects are staged before their rename; never a registry path (those are `blobs/…`, `repositories/…`, `auth/…`). */
const TMP_DIR = '_tmp';
/** A staged file older than this belongs to no live write: writes of small objects take milliseconds. */
const STALE_TMP_MS = 60_000;

/** An upload's writes: enough to keep the disk busy, small enough that many concurrent uploads stay cheap. */
const WRITE_CHUNK = 256 << 10;

/** Large reads, few system calls: blobs are read in 1 MiB pieces. */
const READ_CHUNK = 1 << 20;

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;

  #tmp: string;

  constructor(root: string) {
    this.root = root;
    this.#tmp = join(root, TMP_DIR);
  }

  async recover(): Promise<number> {
    let n = 0;
    const cutoff = Date.now() - STALE_TMP_MS;
    for (const name of await readdir(this.#tmp).catch(() => [] as string[])) {
      const p = join(this.#tmp, name);
      const st = await stat(p).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) {
        await rm(p, { force: true });
        n++;
      }
    }
    return n;
  }

  #abs(path: string): string {
    return join(this.root, checkPath(path));
  }

  async getContent(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.#abs(path));
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR' || errno(e) === 'EISDIR') return undefined;
      throw e;
    }
  }

  async putContent(path: string, data: string | Uint8Array, opts: { secret?: boolean } = {}): Promise<void> {
    const abs = this.#abs(path);
    await mkdir(dirname(abs), { recursive: true });
    // Staged in one directory of the same filesystem (so the rename is atomic), where `recover`
    // finds whatever a crash left half-written.
    await mkdir(this.#tmp, { recursive: true });
    await writeFileAtomic(abs, data, opts.secret ? 0o600 : 0o644, this.#tmp);
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const abs = this.#abs(path);
    // Open first, so an absent object is an error here rather than on the response stream.
    const fh = await open(abs, 'r').catch((e) => {
      throw errno(e) === 'ENOENT' ? notFound(`${path} not found`, e) : e;
    });
    return createReadStream(abs, { fd: fh, autoClose: true, highWaterMark: READ_CHUNK, ...(range ?? {}) });
  }

  async send(path: string, dest: Writable, range?: { start: number; end: number }): Promise<void> {
    const fd = await openFd(this.#abs(path), 'r').catch((e) => {
      throw errno(e) === 'ENOENT' ? notFound(`${path} not found`, e) : e;
    });
    const bufs: Buffer[] = [];
    const pending: Promise<void>[] = [];
    // Writes settle out of order; the first failure is kept and raised, none goes unhandled.
    let failure: unknown;
    try {
      let pos = range?.start ?? 0;
      const end = range ? range.end + 1 : (await fstatFd(fd)).size;
      for (let i = 0; pos < end; i++) {
        const k = i % SEND_DEPTH;
        await pending[k];
        if (failure) throw failure;
        if (dest.destroyed) throw Object.assign(new Error('destination closed'), { code: 'ERR_STREAM_DESTROYED' });
        const buf = (bufs[k] ??= pool.pop() ?? Buffer.allocUnsafeSlow(SEND_CHUNK));
        const n = await preadFd(fd, buf, Math.min(SEND_CHUNK, end - pos), pos);
        if (n === 0) throw new Error(`storage: ${path} ended at ${pos} bytes, before ${end}`);
        pos += n;
        pending[k] = writeChunk(dest, n === SEND_CHUNK ? buf : buf.subarray(0, n)).catch((e) => {
          failure ??= e;
        });
      }
      await Promise.all(pending);
      if (failure) throw failure;
    } finally {
      // A buffer goes back only when no write of it can still be in flight.
      await Promise.all(pending);
      for (const b of bufs) if (pool.length < POOL_MAX) pool.push(b);
      await closeFd(fd);
    }
  }

  async stat(path: string): Promise<StatInfo | undefined> {
    try {
      const st = await stat(this.#abs(path));
      return { size: st.size, modified: st.mtime, isDirectory: st.isDirectory() };
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async list(path: string): Promise<string[]> {
    try {
      return await readdir(this.#abs(path));
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return [];
      throw e;
    }
  }

  async delete(path: string): Promise<void> {
    await rm(this.#abs(path), { recursive: true, force: true });
  }

  async move(src: string, dst: string): Promise<void> {
    const to = this.#abs(dst);
    await mkdir(dirname(to), { recursive: true });
    await rename(this.#abs(src), to);
    await syncDir(dirname(to));
  }

  async writer(path: string): Promise<Writer> {
    const abs = this.#abs(path);
    await mkdir(dirname(abs), { recursive: true });
    // A numeric descriptor: a stream over a FileHandle keeps it busy, and its sync would wait on that.
    const fd = await openFd(abs, 'a', 0o644);
    const stream = createWriteStream(abs, { fd, autoClose: false, highWaterMark: WRITE_CHUNK });
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await closeFd(fd);
    };
    return {
      stream,
      async commit() {
        await fsyncFd(fd);
        await close();
      },
      async cancel() {
        await close().catch(() => {});
      },
    };
  }
}
