import { createHash, randomBytes } from 'node:crypto';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { Digest } from '../common/digest.ts';
import { invalidArgument, isBerthError } from '../common/errors.ts';
import type { ContentStore } from '../content/store.ts';
import type { LeaseManager } from '../metadata/leases.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import { chainIds, isGzipLayer, isZstdLayer } from './oci.ts';
import type { LayerRecord } from './store.ts';

/**
 * Unpacks image layers into committed overlay snapshots keyed by chain ID.
 * Overlay layers are independent directories, so every missing layer is
 * extracted at once; each is verified against its diff ID before it is
 * committed. Concurrent unpacks of the same layer share one extraction.
 */
export class Unpacker {
  #content: ContentStore;
  #snapshots: OverlaySnapshotter;
  #leases: LeaseManager;
  #inflight = new Map<string, Promise<void>>();

  constructor(deps: { content: ContentStore; snapshots: OverlaySnapshotter; leases: LeaseManager }) {
    this.#content = deps.content;
    this.#snapshots = deps.snapshots;
    this.#leases = deps.leases;
  }

  /** Makes sure every layer is a committed snapshot; returns the top chain ID ('' for no layers). */
  async unpack(layers: LayerRecord[], signal?: AbortSignal): Promise<string> {
    const chain = chainIds(layers.map((l) => l.diffId));
    await Promise.all(layers.map((l, i) => this.#ensure(chain[i], i > 0 ? chain[i - 1] : '', l, signal)));
    return chain.at(-1) ?? '';
  }

  #ensure(chainId: string, parent: string, layer: LayerRecord, signal?: AbortSignal): Promise<void> {
    if (this.#snapshots.stat(chainId)?.kind === 'committed') return Promise.resolve();
    let p = this.#inflight.get(chainId);
    if (!p) {
      p = this.#extract(chainId, parent, layer, signal).finally(() => this.#inflight.delete(chainId));
      this.#inflight.set(chainId, p);
    }
    return p;
  }

  async #extract(chainId: string, parent: string, layer: LayerRecord, signal?: AbortSignal): Promise<void> {
    const lease = this.#leases.create();
    const key = `extract-${randomBytes(8).toString('hex')}`;
    lease.snapshots.add(key);
    try {
      await this.#snapshots.prepare(key);
      const hash = createHash('sha256');
      const plain = decompressed(this.#content.readStream(layer.blob), layer.mediaType);
      async function* hashed() {
        for await (const c of plain) {
          hash.update(c as Buffer);
          yield c as Buffer;
        }
      }
      // Loaded on first unpack, so an idle daemon does not hold the layer code.
      const { applyLayer } = await import('../diff/layer.ts');
      const { size } = await applyLayer(this.#snapshots.fsPath(key), hashed(), { signal });
      const got: Digest = `sha256:${hash.digest('hex')}`;
      if (got !== layer.diffId) throw invalidArgument(`layer ${layer.blob} unpacked to ${got}, expected diff ID ${layer.diffId}`);
      // The parent is committed before a child is used, not before it is extracted: wait for it here.
      if (parent) await (this.#inflight.get(parent) ?? Promise.resolve());
      lease.snapshots.add(chainId);
      await this.#snapshots.commit(chainId, key, { parent, size });
    } catch (e) {
      await this.#snapshots.remove(key).catch(() => {});
      if (isBerthError(e)) throw e;
      throw invalidArgument(`failed to unpack layer ${layer.blob}: ${(e as Error).message}`, e);
    } finally {
      lease.release();
    }
  }
}

function decompressed(s: Readable, mediaType: string): Readable {
  if (isGzipLayer(mediaType)) return s.pipe(createGunzip());
  if (isZstdLayer(mediaType)) return s.pipe(createZstdDecompress());
  return s;
}
