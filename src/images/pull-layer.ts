import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Digest } from '../common/digest.ts';
import { BerthError, ErrorCode, invalidArgument, isBerthError } from '../common/errors.ts';
import type { ContentStore, Ingest } from '../content/store.ts';
import { detectCompression } from '../diff/scan.ts';
import type { Lease } from '../metadata/leases.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { Descriptor } from './oci.ts';
import type { LayerRecord } from './store.ts';

/** Where a layer's bytes come from: a registry blob, opened again at an offset to resume. */
export type OpenBlob = (offset: number) => Promise<Readable>;

export interface FetchLayerOptions {
  desc: Descriptor;
  /** The diff ID the image config promises for this layer. */
  diffId: Digest;
  /** Unpack into a new snapshot as the bytes arrive; false only downloads and verifies (the snapshot exists). */
  unpack: boolean;
  /** How many times an interrupted download is resumed (with a Range request from what arrived). */
  retries?: number;
  /** Pause before each resume, in ms (doubling). */
  retryDelayMs?: number;
  signal?: AbortSignal;
  /** Bytes of the blob received so far; called for every chunk. */
  onProgress?: (received: number) => void;
  /** A download broke and is resumed from `offset`. */
  onRetry?: (offset: number, err: unknown) => void;
}

/** A layer downloaded, verified and (if asked) unpacked; its snapshot still waits to be committed under its chain ID. */
export interface FetchedLayer {
  record: LayerRecord;
  /** The active snapshot holding the unpacked layer, or undefined when it was not unpacked. */
  snapshotKey?: string;
  /** Bytes of file content written into the snapshot. */
  appliedSize: number;
}

export interface LayerStoreDeps {
  content: ContentStore;
  snapshots: OverlaySnapshotter;
  /** Holds the blob and the snapshot key against the GC until the image is recorded. */
  lease: Lease;
}

/** Codes for which another attempt cannot help: the registry refused, or the bytes are wrong. */
const FINAL_CODES = new Set<string>([
  ErrorCode.InvalidArgument, ErrorCode.NotFound, ErrorCode.Unauthorized, ErrorCode.Forbidden, ErrorCode.NotImplemented,
]);

/**
 * Downloads one layer blob and unpacks it at the same time: each chunk goes
 * into the content store's ingest (hashed as it is written) and into the
 * decompressor that feeds `applyLayer` on a fresh overlay directory. Layers
 * are independent overlay directories, so callers run many of these at once.
 *
 * A broken connection is resumed from the bytes already received; the ingest
 * and the decompressor simply continue. At the end the blob must match its
 * digest and size and the uncompressed stream its diff ID, or nothing is
 * kept: the ingest is discarded and the snapshot removed. A blob whose bytes
 * are wrong is reported as a digest error even if unpacking failed first.
 */
export async function fetchLayer(deps: LayerStoreDeps, open: OpenBlob, opts: FetchLayerOptions): Promise<FetchedLayer> {
  const { content, snapshots, lease } = deps;
  const { desc, signal } = opts;
  const ing = await content.ingest();
  let key: string | undefined;
  const plain = new PlainTap();
  // Settles (never rejects) once the unpacking side has stopped touching the snapshot directory.
  let unpacked: Promise<number> = Promise.resolve(0);
  try {
    if (opts.unpack) {
      key = `extract-${randomBytes(8).toString('hex')}`;
      lease.snapshots.add(key);
      await snapshots.prepare(key);
    }
    const { applyLayer } = await import('../diff/layer.ts');
    const consumer = key
      ? applyLayer(snapshots.fsPath(key), plain, { signal }).then((r) => r.size)
      : drain(plain).then(() => 0);
    // When unpacking fails, the download still runs to its end, into the ingest alone, so a corrupt blob is told as such.
    let unpackError: unknown;
    unpacked = consumer.catch((e) => {
      unpackError = e;
      plain.destroy();
      return 0;
    });

    await download(ing, open, opts, (chunk) => (unpackError === undefined ? plain.push(chunk) : undefined));
    if (unpackError === undefined) plain.end();
    const appliedSize = await unpacked;

    let blob;
    try {
      blob = await ing.commit({ digest: desc.digest, size: desc.size }, (d) => lease.blobs.add(d));
    } catch (e) {
      throw invalidArgument(`filesystem layer verification failed for digest ${desc.digest}: ${(e as Error).message}`, e);
    }
    if (unpackError !== undefined) {
      if (isBerthError(unpackError) || signal?.aborted) throw unpackError;
      throw invalidArgument(`failed to unpack layer ${desc.digest}: ${(unpackError as Error).message}`, unpackError);
    }
    // An uncompressed layer is its own diff ID: the content store already hashed those bytes.
    const diffId: Digest = plain.compression === 'none' ? blob.digest : plain.digest();
    if (diffId !== opts.diffId) {
      throw invalidArgument(`layer ${desc.digest} unpacked to ${diffId}, but the image config gives diff ID ${opts.diffId}`);
    }
    return {
      record: { blob: blob.digest, diffId, size: blob.size, unpackedSize: plain.size, mediaType: desc.mediaType },
      snapshotKey: key,
      appliedSize,
    };
  } catch (e) {
    plain.destroy();
    await unpacked;
    await ing.abort();
    if (key) await snapshots.remove(key).catch(() => {});
    throw e;
  }
}

/** Streams the blob into the ingest (and `also`), resuming from what arrived when the connection breaks. */
async function download(ing: Ingest, open: OpenBlob, opts: FetchLayerOptions, also: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  const { desc, signal } = opts;
  const retries = opts.retries ?? 3;
  let delay = opts.retryDelayMs ?? 200;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      const stream = await open(ing.size);
      for await (const c of stream) {
        const chunk = c as Buffer;
        if (ing.size + chunk.length > desc.size) {
          stream.destroy();
          throw invalidArgument(`filesystem layer verification failed for digest ${desc.digest}: the registry sent more than its ${desc.size} bytes`);
        }
        await Promise.all([ing.write(chunk), also(chunk)]);
        opts.onProgress?.(ing.size);
      }
      if (ing.size === desc.size) return;
      throw new BerthError(ErrorCode.Unavailable, `download of ${desc.digest} ended after ${ing.size} of ${desc.size} bytes`);
    } catch (e) {
      const final = (isBerthError(e) && FINAL_CODES.has(e.code)) || signal?.aborted;
      if (final || attempt >= retries) throw e;
      opts.onRetry?.(ing.size, e);
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }
}

/**
 * The uncompressed side of a layer download: fed compressed chunks with
 * `push` (backpressure respected), read as an async iterable of tar bytes,
 * which it hashes (the diff ID) and counts. The compression is told from the
 * first bytes, as Docker does, rather than trusted from the media type.
 */
class PlainTap implements AsyncIterable<Buffer> {
  compression: 'none' | 'gzip' | 'zstd' = 'none';
  size = 0;
  #input: PassThrough | Transform | undefined;
  #hash = createHash('sha256');
  #waiting: ((input: PassThrough | Transform) => void)[] = [];
  #destroyed = false;

  async push(chunk: Buffer): Promise<void> {
    const input = this.#input ?? this.#start(chunk);
    if (input.destroyed || this.#destroyed) return;
    if (!input.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = () => { input.off('drain', go); input.off('close', go); resolve(); };
        input.on('drain', go);
        input.on('close', go);
      });
    }
  }

  end(): void {
    (this.#input ?? this.#start(Buffer.alloc(0))).end();
  }

  destroy(): void {
    this.#destroyed = true;
    (this.#input ?? this.#start(Buffer.alloc(0))).destroy();
  }

  digest(): Digest {
    return `sha256:${this.#hash.digest('hex')}`;
  }

  #start(head: Buffer): PassThrough | Transform {
    this.compression = detectCompression(head);
    const input = this.compression === 'gzip' ? createGunzip({ chunkSize: 1 << 18 })
      : this.compression === 'zstd' ? createZstdDecompress()
      : new PassThrough({ highWaterMark: 1 << 20 });
    this.#input = input;
    for (const w of this.#waiting.splice(0)) w(input);
    return input;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const input = this.#input ?? await new Promise<PassThrough | Transform>((r) => this.#waiting.push(r));
    const hashing = this.compression !== 'none';
    for await (const c of input) {
      const chunk = c as Buffer;
      if (hashing) this.#hash.update(chunk);
      this.size += chunk.length;
      yield chunk;
    }
  }
}

async function drain(source: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of source) { /* hashing and counting happen in the tap */ }
}
