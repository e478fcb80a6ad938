// Blob upload sessions. Bytes land in the repository's `_uploads/<id>/data`, hashed while they
// stream; a blob becomes visible only through one atomic move after its digest is checked, so a
// crash at any instant loses at most the upload in flight and never exposes half a blob.
//
// Sessions live in storage, not in memory: a session survives a restart (its status reports the
// bytes that reached the disk, so a client may resume), and any process serving the same root can
// continue it. The running hash is only a cache: when it is missing or behind the data (another
// process took a chunk, or a restart), the data written so far is hashed again from storage.
import { createHash, type Hash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../common/digest.ts';
import { registryError } from './errors.ts';
import { layout } from './layout.ts';
import type { RegistryStore } from './store.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Running hashes kept at most: a client that abandons uploads costs only this much memory. */
const HASH_CACHE_MAX = 1024;

export class Uploads {
  #store: RegistryStore;
  #hashes = new Map<string, { hash: Hash; offset: number }>();

  constructor(store: RegistryStore) {
    this.#store = store;
  }

  get #driver() {
    return this.#store.driver;
  }

  async start(name: string): Promise<string> {
    const id = randomUUID();
    await this.#driver.putContent(layout.uploadStarted(name, id), new Date().toISOString());
    return id;
  }

  /** Bytes received so far, or undefined for an unknown session. */
  async size(name: string, id: string): Promise<number | undefined> {
    if (!UUID_RE.test(id)) return undefined;
    const [data, started] = await Promise.all([this.#driver.stat(layout.uploadData(name, id)), this.#driver.stat(layout.uploadStarted(name, id))]);
    if (!started) return undefined;
    return data?.size ?? 0;
  }

  async #requireSize(name: string, id: string): Promise<number> {
    const size = await this.size(name, id);
    if (size === undefined) throw registryError('BLOB_UPLOAD_UNKNOWN', `upload ${JSON.stringify(id.slice(0, 64))} is unknown to ${name}`);
    return size;
  }

  /** The running hash over the first `size` bytes of the session's data. */
  async #hashAt(name: string, id: string, size: number): Promise<Hash> {
    const cached = this.#hashes.get(id);
    if (cached && cached.offset === size) return cached.hash;
    this.#hashes.delete(id);
    const hash = createHash('sha256');
    if (size > 0) {
      const r = await this.#driver.reader(layout.uploadData(name, id), { start: 0, end: size - 1 });
      for await (const chunk of r) hash.update(chunk as Buffer);
    }
    return hash;
  }

  #remember(id: string, hash: Hash, offset: number): void {
    this.#hashes.delete(id);
    this.#hashes.set(id, { hash, offset });
    if (this.#hashes.size > HASH_CACHE_MAX) this.#hashes.delete(this.#hashes.keys().next().value!);
  }

  /**
   * Appends a request body. `start` (from Content-Range) must be where the data ends now, and
   * `length` (from Content-Length or Content-Range) is checked before anything is written.
   * Returns the new size.
   */
  async append(name: string, id: string, body: Readable, opts: { start?: number; end?: number; length?: number } = {}): Promise<number> {
    const size = await this.#requireSize(name, id);
    if (opts.start !== undefined && opts.start !== size) {
      throw registryError('BLOB_UPLOAD_INVALID', `chunk starts at ${opts.start}, but the upload has ${size} bytes`, { status: 416, detail: { offset: size } });
    }
    if (opts.start !== undefined && opts.end !== undefined && opts.length !== undefined && opts.end - opts.start + 1 !== opts.length) {
      throw registryError('SIZE_INVALID', `Content-Range ${opts.start}-${opts.end} does not match Content-Length ${opts.length}`, { status: 416 });
    }
    const hash = await this.#hashAt(name, id, size);
    this.#hashes.delete(id);
    const w = await this.#driver.writer(layout.uploadData(name, id));
    let written = 0;
    try {
      await pipeline(body, async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          written += chunk.length;
          yield chunk;
        }
      }, w.stream);
      await w.commit();
    } catch (e) {
      await w.cancel();
      throw e;
    }
    this.#remember(id, hash, size + written);
    return size + written;
  }

  /**
   * Finishes an upload: checks the digest over everything received and moves the data into
   * place. On a mismatch the session is discarded and nothing is stored.
   */
  async finish(name: string, id: string, expected: Digest): Promise<number> {
    const size = await this.#requireSize(name, id);
    const actual = `sha256:${(await this.#hashAt(name, id, size)).copy().digest('hex')}`;
    if (actual !== expected) {
      await this.cancel(name, id);
      throw registryError('DIGEST_INVALID', `uploaded content has digest ${actual}, not ${expected}`, { detail: { digest: expected } });
    }
    if (size === 0) await this.#driver.putContent(layout.uploadData(name, id), '');
    if (await this.#store.hasBlobData(expected)) await this.#driver.delete(layout.uploadData(name, id));
    else await this.#driver.move(layout.uploadData(name, id), layout.blob(expected));
    await this.#store.linkBlob(name, expected);
    await this.cancel(name, id);
    return size;
  }

  async cancel(name: string, id: string): Promise<void> {
    this.#hashes.delete(id);
    if (UUID_RE.test(id)) await this.#driver.delete(layout.upload(name, id));
  }

  /** Deletes sessions started more than `maxAgeMs` ago in every repository; returns how many. */
  async purge(repositories: string[], maxAgeMs: number): Promise<number> {
    let n = 0;
    const now = Date.now();
    for (const name of repositories) {
      for (const id of await this.#driver.list(layout.uploads(name))) {
        const st = await this.#driver.stat(layout.uploadStarted(name, id));
        if (!st || now - st.modified.getTime() > maxAgeMs) {
          await this.#driver.delete(layout.upload(name, id));
          n++;
        }
      }
    }
    return n;
  }
}
