import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Digest } from '../common/digest.ts';
import { BerthError, ErrorCode, invalidArgument, isBerthError } from '../common/errors.ts';
import type { ContentStore, Ingest } from '../content/store.ts';
import type { Lease } from '../metadata/leases.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { Descriptor } from './oci.ts';
import { type UnpackResult, UnpackWorker } from './pull-unpack.ts';
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
 * into the content store's ingest (hashed as it is written) and to an
 * UnpackWorker, whose thread decompresses it, hashes the diff ID and applies
 * it to a fresh overlay directory. Layers are independent overlay
 * directories, so callers run many of these at once.
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
  let unpacker: UnpackWorker | undefined;
  try {
    if (opts.unpack) {
      key = `extract-${randomBytes(8).toString('hex')}`;
      lease.snapshots.add(key);
      await snapshots.prepare(key);
    }
    unpacker = new UnpackWorker(key ? snapshots.fsPath(key) : undefined);
    const u = unpacker;
    // When unpacking fails, the download still runs to its end, into the ingest alone, so a corrupt blob is told as such.
    await download(ing, open, opts, (chunk) => (u.error ? undefined : u.push(chunk)));
    let unpacked: UnpackResult | undefined;
    let unpackError: unknown;
    try {
      unpacked = await u.finish();
    } catch (e) {
      unpackError = e;
    }

    let blob;
    try {
      blob = await ing.commit({ digest: desc.digest, size: desc.size }, (d) => lease.blobs.add(d));
    } catch (e) {
      throw invalidArgument(`filesystem layer verification failed for digest ${desc.digest}: ${(e as Error).message}`, e);
    }
    if (!unpacked) {
      if (isBerthError(unpackError) || signal?.aborted) throw unpackError;
      throw invalidArgument(`failed to unpack layer ${desc.digest}: ${(unpackError as Error).message}`, unpackError);
    }
    const diffId = (unpacked.diffId || blob.digest) as Digest;
    if (diffId !== opts.diffId) {
      throw invalidArgument(`layer ${desc.digest} unpacked to ${diffId}, but the image config gives diff ID ${opts.diffId}`);
    }
    return {
      record: { blob: blob.digest, diffId, size: blob.size, unpackedSize: unpacked.size, mediaType: desc.mediaType },
      snapshotKey: key,
      appliedSize: unpacked.applied,
    };
  } catch (e) {
    await unpacker?.abort();
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
