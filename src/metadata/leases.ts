import { randomBytes } from 'node:crypto';

/**
 * Leases protect what an operation in flight has written (blobs, snapshots)
 * from garbage collection until the operation records it under a root, such
 * as an image. They live in memory: after a crash nothing is in flight, and
 * the start-up GC sweeps whatever a dead operation left behind.
 */
export class Lease {
  readonly id = randomBytes(8).toString('hex');
  readonly blobs = new Set<string>();
  readonly snapshots = new Set<string>();
  #release: (l: Lease) => void;

  constructor(release: (l: Lease) => void) {
    this.#release = release;
  }

  release(): void {
    this.#release(this);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

export class LeaseManager {
  #active = new Set<Lease>();

  create(): Lease {
    const l = new Lease((x) => this.#active.delete(x));
    this.#active.add(l);
    return l;
  }

  /** Everything held by any live lease. */
  held(): { blobs: Set<string>; snapshots: Set<string> } {
    const blobs = new Set<string>();
    const snapshots = new Set<string>();
    for (const l of this.#active) {
      for (const b of l.blobs) blobs.add(b);
      for (const s of l.snapshots) snapshots.add(s);
    }
    return { blobs, snapshots };
  }
}
