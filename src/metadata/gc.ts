import type { Digest } from '../common/digest.ts';
import type { Logger } from '../common/log.ts';
import type { ContentReader, ContentWriter } from '../content/store.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { LeaseManager } from './leases.ts';

/** What the GC must keep: every owner of blobs and snapshots reports its roots. */
export interface GcRoots {
  /** Blobs something references (image manifests, configs, layers). */
  blobs(): Iterable<string>;
  /** Snapshot keys something uses directly (image chain tops and their ancestors, container layers). */
  snapshots(): Iterable<string>;
}

export interface GcResult {
  blobsRemoved: number;
  bytesRemoved: number;
  snapshotsRemoved: number;
}

/**
 * Mark and sweep from roots. One collection runs at a time; requests made
 * while one runs are folded into a single follow-up run.
 */
export class GarbageCollector {
  #content: ContentReader & ContentWriter;
  #snapshots: OverlaySnapshotter;
  #leases: LeaseManager;
  #roots: GcRoots[];
  #log: Logger;
  #running: Promise<GcResult> | undefined;
  #again: Promise<GcResult> | undefined;

  constructor(deps: { content: ContentReader & ContentWriter; snapshots: OverlaySnapshotter; leases: LeaseManager; roots: GcRoots[]; log: Logger }) {
    this.#content = deps.content;
    this.#snapshots = deps.snapshots;
    this.#leases = deps.leases;
    this.#roots = deps.roots;
    this.#log = deps.log;
  }

  collect(): Promise<GcResult> {
    if (!this.#running) {
      this.#running = this.#run().finally(() => (this.#running = undefined));
      return this.#running;
    }
    this.#again ??= this.#running.then(() => {
      this.#again = undefined;
      return this.collect();
    });
    return this.#again;
  }

  async #run(): Promise<GcResult> {
    const res: GcResult = { blobsRemoved: 0, bytesRemoved: 0, snapshotsRemoved: 0 };
    // Snapshots first: removing a snapshot never frees a blob, but the reverse order could race an unpack.
    const keepSnaps = new Set<string>(this.#leases.held().snapshots);
    for (const r of this.#roots) for (const k of r.snapshots()) keepSnaps.add(k);
    const all = this.#snapshots.list();
    const byKey = new Map(all.map((s) => [s.key, s]));
    for (const k of [...keepSnaps]) {
      for (let p = byKey.get(k)?.parent; p && !keepSnaps.has(p); p = byKey.get(p)?.parent) keepSnaps.add(p);
    }
    // Remove children before parents: repeat over what is left until nothing more goes.
    let doomed = all.filter((s) => !keepSnaps.has(s.key));
    while (doomed.length > 0) {
      const parents = new Set(doomed.map((s) => s.parent));
      const leaves = doomed.filter((s) => !parents.has(s.key));
      if (leaves.length === 0) break;
      for (const s of leaves) {
        await this.#snapshots.remove(s.key);
        res.snapshotsRemoved++;
      }
      const gone = new Set(leaves.map((s) => s.key));
      doomed = doomed.filter((s) => !gone.has(s.key));
    }

    // Blobs: list before marking, so a blob committed during the sweep is never in the list.
    const present: Digest[] = [];
    for await (const d of this.#content.list()) present.push(d);
    await this.#content.sweep(async (remove) => {
      // Marked inside the sweep: no commit (and so no new lease hold) can interleave.
      const keep = new Set<string>(this.#leases.held().blobs);
      for (const r of this.#roots) for (const d of r.blobs()) keep.add(d);
      for (const d of present) {
        if (keep.has(d)) continue;
        const info = await this.#content.info(d);
        await remove(d);
        res.blobsRemoved++;
        res.bytesRemoved += info?.size ?? 0;
      }
    });
    if (res.blobsRemoved || res.snapshotsRemoved) this.#log.info('gc', { ...res });
    return res;
  }
}
