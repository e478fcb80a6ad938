// The default storage driver: objects are files under one root directory.
import { randomBytes } from 'node:crypto';
import { close as closeCb, createReadStream, createWriteStream, fsync as fsyncCb, open as openCb } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { syncDir } from '../../common/atomic-file.ts';
import { errno, notFound } from '../../common/errors.ts';
import { checkPath, type StatInfo, type StorageDriver, type Writer } from './driver.ts';

const openFd = promisify(openCb);
const fsyncFd = promisify(fsyncCb);
const closeFd = promisify(closeCb);

/** Large reads, few system calls: blobs are read in 1 MiB pieces. */
const READ_CHUNK = 1 << 20;

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;

  constructor(root: string) {
    this.root = root;
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

  async putContent(path: string, data: string | Uint8Array): Promise<void> {
    const abs = this.#abs(path);
    await mkdir(dirname(abs), { recursive: true });
    const tmp = `${abs}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, abs);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async reader(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const abs = this.#abs(path);
    // Open first, so an absent object is an error here rather than on the response stream.
    const fh = await open(abs, 'r').catch((e) => {
      throw errno(e) === 'ENOENT' ? notFound(`${path} not found`, e) : e;
    });
    return createReadStream(abs, { fd: fh, autoClose: true, highWaterMark: READ_CHUNK, ...(range ?? {}) });
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
      return (await readdir(this.#abs(path))).filter((n) => !n.endsWith('.tmp'));
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
    const stream = createWriteStream(abs, { fd, autoClose: false, highWaterMark: READ_CHUNK });
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
