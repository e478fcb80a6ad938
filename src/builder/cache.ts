// The builder's cache: each step's result, found again by its cache key. A key is the digest of
// the step's canonical description and its parent's key (see keys.ts), so equal keys mean equal
// inputs and the stored result can stand in for running the step. Results live in the database
// and survive restarts; their layers are blobs and snapshots that the GC keeps while a record
// names them.
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Digest } from '../common/digest.ts';
import type { ImageConfig } from '../images/oci.ts';
import type { LayerRecord } from '../images/store.ts';
import { chainIds } from '../images/oci.ts';

/** An image in the making: the config (with rootfs and history) and the layers so far. */
export interface BuildState {
  config: ImageConfig;
  layers: LayerRecord[];
}

export interface CacheRecord {
  key: string;
  kind: string;
  description: string;
  state: BuildState;
  layer: string;
  size: number;
  createdAt: number;
  lastUsed: number;
  usageCount: number;
}

interface Row {
  key: string; kind: string; description: string; state: string; layer: string; size: number;
  created_at: number; last_used: number; usage_count: number;
}

const toRecord = (r: Row): CacheRecord => ({
  key: r.key, kind: r.kind, description: r.description, state: JSON.parse(r.state), layer: r.layer, size: r.size,
  createdAt: r.created_at, lastUsed: r.last_used, usageCount: r.usage_count,
});

export class BuildCache {
  #db: DatabaseSync;
  #get: StatementSync;
  #touch: StatementSync;
  #put: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#get = db.prepare('SELECT * FROM build_cache WHERE key = ?');
    this.#touch = db.prepare('UPDATE build_cache SET last_used = ?, usage_count = usage_count + 1 WHERE key = ?');
    this.#put = db.prepare(`INSERT INTO build_cache (key, kind, description, state, layer, size, created_at, last_used)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET last_used = excluded.last_used`);
  }

  /** The result stored under `key`, marked as used now. */
  lookup(key: string): BuildState | undefined {
    const row = this.#get.get(key) as Row | undefined;
    if (!row) return undefined;
    this.#touch.run(Date.now(), key);
    return JSON.parse(row.state) as BuildState;
  }

  store(key: string, kind: string, description: string, state: BuildState, layer?: LayerRecord): void {
    const now = Date.now();
    this.#put.run(key, kind, description.slice(0, 512), JSON.stringify(state), layer?.blob ?? '', layer?.unpackedSize ?? 0, now, now);
  }

  list(): CacheRecord[] {
    return (this.#db.prepare('SELECT * FROM build_cache ORDER BY created_at').all() as unknown as Row[]).map(toRecord);
  }

  remove(keys: readonly string[]): void {
    const del = this.#db.prepare('DELETE FROM build_cache WHERE key = ?');
    for (const k of keys) del.run(k);
  }

  /** GC roots: every blob and top snapshot a cached result needs. */
  *blobs(): Iterable<string> {
    for (const r of this.#db.prepare('SELECT state FROM build_cache').iterate() as Iterable<{ state: string }>) {
      const s = JSON.parse(r.state) as BuildState;
      for (const l of s.layers) yield l.blob;
    }
  }

  *snapshots(): Iterable<string> {
    for (const r of this.#db.prepare("SELECT state FROM build_cache WHERE layer != ''").iterate() as Iterable<{ state: string }>) {
      const s = JSON.parse(r.state) as BuildState;
      const top = chainIds(s.layers.map((l) => l.diffId as Digest)).at(-1);
      if (top) yield top;
    }
  }
}
