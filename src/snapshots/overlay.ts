import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { alreadyExists, failedPrecondition, notFound } from '../common/errors.ts';
import { transaction } from '../metadata/db.ts';

/** A mount in OCI runtime-spec form. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export type SnapshotKind = 'committed' | 'active' | 'view';

export interface SnapshotInfo {
  key: string;
  id: number;
  parent: string;
  kind: SnapshotKind;
  size: number;
  createdAt: number;
}

interface Row { key: string; id: number; parent: string; kind: SnapshotKind; size: number; created_at: number }
const toInfo = (r: Row): SnapshotInfo => ({ key: r.key, id: r.id, parent: r.parent, kind: r.kind, size: r.size, createdAt: r.created_at });

/**
 * Overlayfs snapshots, containerd-style. Each snapshot is a directory
 * `<root>/<id>/fs` (plus `work` for active ones); committed snapshots are
 * keyed by layer chain ID and are read-only lower dirs. The snapshotter
 * returns mounts and never mounts anything itself. Short numeric directory
 * names keep long lowerdir lists under the kernel's option size limit.
 */
export class OverlaySnapshotter {
  readonly root: string;
  #db: DatabaseSync;
  #q: Record<string, StatementSync>;

  constructor(root: string, db: DatabaseSync) {
    this.root = root;
    this.#db = db;
    this.#q = {
      get: db.prepare('SELECT * FROM snapshots WHERE key = ?'),
      all: db.prepare('SELECT * FROM snapshots'),
      nextId: db.prepare('SELECT COALESCE(MAX(id), 0) + 1 AS id FROM snapshots'),
      insert: db.prepare('INSERT INTO snapshots (key, id, parent, kind, size, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM snapshots WHERE key = ?'),
      children: db.prepare('SELECT COUNT(*) AS n FROM snapshots WHERE parent = ?'),
    };
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  stat(key: string): SnapshotInfo | undefined {
    const r = this.#q.get.get(key) as Row | undefined;
    return r && toInfo(r);
  }

  list(): SnapshotInfo[] {
    return (this.#q.all.all() as unknown as Row[]).map(toInfo);
  }

  dir(info: SnapshotInfo): string {
    return join(this.root, String(info.id));
  }

  /** The directory a layer is written into for an active, parentless snapshot. */
  fsPath(key: string): string {
    return join(this.dir(this.#must(key)), 'fs');
  }

  /** A writable snapshot on top of `parent` (a committed key, or '' for none). */
  async prepare(key: string, parent = ''): Promise<Mount[]> {
    const info = await this.#create(key, parent, 'active');
    return this.mounts(info.key);
  }

  /** A read-only view of `parent`. */
  async view(key: string, parent: string): Promise<Mount[]> {
    const info = await this.#create(key, parent, 'view');
    return this.mounts(info.key);
  }

  async #create(key: string, parent: string, kind: SnapshotKind): Promise<SnapshotInfo> {
    if (parent) {
      const p = this.#must(parent);
      if (p.kind !== 'committed') throw failedPrecondition(`parent snapshot ${parent} is not committed`);
    }
    const info = transaction(this.#db, () => {
      if (this.#q.get.get(key)) throw alreadyExists(`snapshot ${key} already exists`);
      const id = (this.#q.nextId.get() as { id: number }).id;
      this.#q.insert.run(key, id, parent, kind, 0, Date.now());
      return this.#must(key);
    });
    const dir = this.dir(info);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'fs'), { recursive: true, mode: 0o755 });
    if (kind === 'active') await mkdir(join(dir, 'work'), { mode: 0o700 });
    return info;
  }

  /** Freezes an active snapshot as `name` (a chain ID), recording its parent and size. */
  async commit(name: string, key: string, opts: { parent?: string; size?: number } = {}): Promise<void> {
    transaction(this.#db, () => {
      const info = this.#must(key);
      if (info.kind !== 'active') throw failedPrecondition(`snapshot ${key} is not active`);
      if (this.#q.get.get(name)) throw alreadyExists(`snapshot ${name} already exists`);
      this.#q.remove.run(key);
      this.#q.insert.run(name, info.id, opts.parent ?? info.parent, 'committed', opts.size ?? 0, Date.now());
    });
    await rm(join(this.dir(this.#must(name)), 'work'), { recursive: true, force: true });
  }

  async remove(key: string): Promise<void> {
    const info = this.#must(key);
    if ((this.#q.children.get(key) as { n: number }).n > 0) throw failedPrecondition(`snapshot ${key} has children`);
    this.#q.remove.run(key);
    await rm(this.dir(info), { recursive: true, force: true });
  }

  /** The overlay (or bind) mounts that present snapshot `key`. */
  mounts(key: string): Mount[] {
    const info = this.#must(key);
    const lowers: string[] = [];
    for (let p = info.parent; p; ) {
      const pi = this.#must(p);
      lowers.push(join(this.dir(pi), 'fs'));
      p = pi.parent;
    }
    const fs = join(this.dir(info), 'fs');
    if (info.kind === 'active') {
      if (lowers.length === 0) return [{ type: 'bind', source: fs, options: ['rbind', 'rw'] }];
      return [{
        type: 'overlay', source: 'overlay',
        options: ['index=off', `workdir=${join(this.dir(info), 'work')}`, `upperdir=${fs}`, `lowerdir=${lowers.join(':')}`],
      }];
    }
    const ro = info.kind === 'view' ? lowers : [fs, ...lowers];
    if (ro.length === 1) return [{ type: 'bind', source: ro[0], options: ['rbind', 'ro'] }];
    return [{ type: 'overlay', source: 'overlay', options: ['index=off', `lowerdir=${ro.join(':')}`] }];
  }

  /** Removes snapshot directories that have no record (left by a crash). */
  async removeOrphanDirs(): Promise<number> {
    const known = new Set(this.list().map((s) => String(s.id)));
    let n = 0;
    for (const name of await readdir(this.root)) {
      if (!known.has(name)) {
        await rm(join(this.root, name), { recursive: true, force: true });
        n++;
      }
    }
    return n;
  }

  #must(key: string): SnapshotInfo {
    const info = this.stat(key);
    if (!info) throw notFound(`snapshot ${key} does not exist`);
    return info;
  }
}
