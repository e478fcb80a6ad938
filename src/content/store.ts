import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { syncDir } from '../common/atomic-file.ts';
import { type Digest, digestHex, isDigest } from '../common/digest.ts';
import { errno, invalidArgument, notFound } from '../common/errors.ts';
import { RwLock } from '../common/rwlock.ts';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** Reading side of the content store. */
export interface ContentReader {
  info(digest: Digest): Promise<BlobInfo | undefined>;
  readStream(digest: Digest, range?: { start?: number; end?: number }): Readable;
  readBytes(digest: Digest): Promise<Buffer>;
  list(): AsyncIterable<Digest>;
}

/** Writing side: streaming ingest with an atomic, verified commit. */
export interface ContentWriter {
  ingest(): Promise<Ingest>;
  writeBytes(data: Uint8Array, expected?: Digest, hold?: (d: Digest) => void): Promise<BlobInfo>;
  writeStream(source: AsyncIterable<Uint8Array>, hold?: (d: Digest) => void): Promise<BlobInfo>;
  delete(digest: Digest): Promise<void>;
  sweep<T>(fn: (remove: (d: Digest) => Promise<void>) => Promise<T>): Promise<T>;
}

/**
 * Content-addressed blobs under `<root>/blobs/sha256/<hex>`. Writes stream into
 * `<root>/ingest/`, hashing as they go; commit checks size and digest, fsyncs,
 * then renames into place. A blob that already exists is a success.
 */
export class ContentStore implements ContentReader, ContentWriter {
  readonly root: string;
  #blobs: string;
  #ingest: string;
  /** Commits hold it shared; a sweep holds it exclusively, so a delete never races a rename of the same blob. */
  #sweepLock = new RwLock();

  constructor(root: string) {
    this.root = root;
    this.#blobs = join(root, 'blobs', 'sha256');
    this.#ingest = join(root, 'ingest');
  }

  /** Creates the layout and discards ingests a crash left half-written. */
  async init(): Promise<void> {
    await mkdir(this.#blobs, { recursive: true });
    await rm(this.#ingest, { recursive: true, force: true });
    await mkdir(this.#ingest, { recursive: true });
  }

  path(digest: Digest): string {
    if (!digest.startsWith('sha256:')) throw invalidArgument(`unsupported digest algorithm: ${digest}`);
    return join(this.#blobs, digestHex(digest));
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.path(digest));
      return { digest, size: st.size };
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  readStream(digest: Digest, range: { start?: number; end?: number } = {}): Readable {
    return createReadStream(this.path(digest), { ...range, highWaterMark: 1 << 20 });
  }

  async readBytes(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.path(digest));
    } catch (e) {
      if (errno(e) === 'ENOENT') throw notFound(`content ${digest} not found`, e);
      throw e;
    }
  }

  async *list(): AsyncIterable<Digest> {
    for (const name of await readdir(this.#blobs)) {
      const d = `sha256:${name}`;
      if (isDigest(d)) yield d;
    }
  }

  async ingest(): Promise<Ingest> {
    const path = join(this.#ingest, randomBytes(12).toString('hex'));
    const fh = await open(path, 'wx', 0o644);
    return new Ingest(fh, path, (d) => this.path(d), this.#blobs, this.#sweepLock);
  }

  async writeBytes(data: Uint8Array, expected?: Digest, hold?: (d: Digest) => void): Promise<BlobInfo> {
    const ing = await this.ingest();
    try {
      await ing.write(data);
      return await ing.commit({ digest: expected, size: expected ? data.length : undefined }, hold);
    } catch (e) {
      await ing.abort();
      throw e;
    }
  }

  /** A blob from a stream of chunks (a layer tar as it is walked); nothing is kept if the stream fails. */
  async writeStream(source: AsyncIterable<Uint8Array>, hold?: (d: Digest) => void): Promise<BlobInfo> {
    const ing = await this.ingest();
    try {
      for await (const chunk of source) await ing.write(chunk);
      return await ing.commit({}, hold);
    } catch (e) {
      await ing.abort();
      throw e;
    }
  }

  /** Runs a sweep with commits held off; `remove` deletes a blob within it. */
  sweep<T>(fn: (remove: (d: Digest) => Promise<void>) => Promise<T>): Promise<T> {
    return this.#sweepLock.exclusive(() => fn((d) => this.#unlink(d)));
  }

  delete(digest: Digest): Promise<void> {
    return this.#sweepLock.exclusive(() => this.#unlink(digest));
  }

  async #unlink(digest: Digest): Promise<void> {
    await unlink(this.path(digest)).catch((e) => {
      if (errno(e) !== 'ENOENT') throw e;
    });
  }
}

/** Bytes gathered before one write call: large writes, few system calls. */
const WRITE_BATCH = 1 << 20;

/**
 * One blob being written. Chunks are hashed at once and written in batches,
 * with one batch on its way to disk while the next is gathered; `write`
 * resolves when the caller may send more, so backpressure still holds.
 * Callers must not change a chunk after passing it in.
 */
export class Ingest {
  #fh: FileHandle | undefined;
  #path: string;
  #hash: Hash = createHash('sha256');
  #size = 0;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  #inflight: Promise<void> | undefined;
  #target: (d: Digest) => string;
  #dir: string;
  #lock: RwLock;

  constructor(fh: FileHandle, path: string, target: (d: Digest) => string, dir: string, lock: RwLock) {
    this.#fh = fh;
    this.#path = path;
    this.#target = target;
    this.#dir = dir;
    this.#lock = lock;
  }

  get size(): number {
    return this.#size;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!this.#fh) throw new Error('ingest already closed');
    this.#hash.update(chunk);
    this.#size += chunk.length;
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (this.#batchBytes < WRITE_BATCH) return;
    await this.#inflight;
    this.#inflight = this.#writeBatch();
  }

  #writeBatch(): Promise<void> {
    const fh = this.#fh!;
    const bufs = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    return (async () => {
      let data = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
      while (data.length > 0) {
        const { bytesWritten } = await fh.write(data);
        data = data.subarray(bytesWritten);
      }
    })();
  }

  /** Everything written so far is on its way to the file. */
  async #drain(): Promise<void> {
    await this.#inflight;
    if (this.#batchBytes > 0) await this.#writeBatch();
    this.#inflight = undefined;
  }

  /**
   * Verifies what was written against what was expected and moves it into the
   * store. `hold` runs before the blob becomes visible, so a lease can protect it
   * from a concurrent garbage collection.
   */
  async commit(expected: { digest?: Digest; size?: number } = {}, hold?: (d: Digest) => void): Promise<BlobInfo> {
    const fh = this.#fh;
    if (!fh) throw new Error('ingest already closed');
    const digest: Digest = `sha256:${this.#hash.digest('hex')}`;
    try {
      await this.#drain();
      this.#fh = undefined;
      if (expected.size !== undefined && expected.size !== this.#size) {
        throw invalidArgument(`size mismatch for ${expected.digest ?? digest}: expected ${expected.size} bytes, got ${this.#size}`);
      }
      if (expected.digest !== undefined && expected.digest !== digest) {
        throw invalidArgument(`digest mismatch: expected ${expected.digest}, got ${digest}`);
      }
      await fh.sync();
    } catch (e) {
      this.#fh = undefined;
      await fh.close();
      await unlink(this.#path).catch(() => {});
      throw e;
    }
    await fh.close();
    await this.#lock.shared(async () => {
      hold?.(digest);
      await rename(this.#path, this.#target(digest));
    });
    await syncDir(this.#dir);
    return { digest, size: this.#size };
  }

  async abort(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await this.#inflight?.catch(() => {});
    if (fh) await fh.close().catch(() => {});
    await unlink(this.#path).catch(() => {});
  }
}
