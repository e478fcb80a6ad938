import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { transaction } from '../metadata/db.ts';

/** A volume as berth records it. Its files live in `<root>/<name>/_data`, as Docker keeps them. */
export interface VolumeRecord {
  name: string;
  driver: string;
  /** Null when none were given, as Docker shows them. */
  labels: Record<string, string> | null;
  options: Record<string, string> | null;
  /** RFC 3339, in seconds (Docker's CreatedAt). */
  created: string;
}

/**
 * One mount of a container, resolved at create: Docker's MountPoint. A
 * container's volume mount points are what make a volume "in use".
 */
export interface MountPoint {
  type: 'volume' | 'bind';
  destination: string;
  /** The volume's name (type volume). */
  name: string;
  /** The host path (type bind). */
  source: string;
  mode: string;
  rw: boolean;
  propagation: string;
  /** No source was named (image VOLUME, `-v /path`): `rm -v` removes it. */
  anonymous: boolean;
  /** Copy the image's files into the volume the first time it is mounted empty. */
  copyData: boolean;
  /** A `-v /host:/ctr` bind whose missing host directory is made, as Docker does. */
  createSource: boolean;
}

interface VolumeRow { name: string; driver: string; labels: string; options: string; created: string }
interface MountRow {
  container_id: string; destination: string; type: 'volume' | 'bind'; name: string; source: string; mode: string; rw: number;
  propagation: string; anonymous: number; copy_data: number; create_source: number;
}

const toVolume = (r: VolumeRow): VolumeRecord => ({ name: r.name, driver: r.driver, labels: JSON.parse(r.labels), options: JSON.parse(r.options), created: r.created });
const toMount = (r: MountRow): MountPoint => ({
  type: r.type, destination: r.destination, name: r.name, source: r.source, mode: r.mode, rw: r.rw === 1, propagation: r.propagation,
  anonymous: r.anonymous === 1, copyData: r.copy_data === 1, createSource: r.create_source === 1,
});

/** Volume records and container mount points in the metadata database; volume directories under `root`. */
export class VolumeStore {
  readonly root: string;
  #db: DatabaseSync;
  #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync, root: string) {
    this.#db = db;
    this.root = root;
    this.#q = {
      get: db.prepare('SELECT * FROM volumes WHERE name = ?'),
      list: db.prepare('SELECT * FROM volumes ORDER BY name'),
      insert: db.prepare('INSERT INTO volumes (name, driver, labels, options, created) VALUES (?, ?, ?, ?, ?)'),
      delete: db.prepare('DELETE FROM volumes WHERE name = ?'),
      mounts: db.prepare('SELECT * FROM volume_mounts WHERE container_id = ? ORDER BY destination'),
      allMounts: db.prepare("SELECT * FROM volume_mounts WHERE type = 'volume'"),
      insertMount: db.prepare(`INSERT INTO volume_mounts (container_id, destination, type, name, source, mode, rw, propagation, anonymous, copy_data, create_source)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      deleteMounts: db.prepare('DELETE FROM volume_mounts WHERE container_id = ?'),
      users: db.prepare("SELECT DISTINCT container_id FROM volume_mounts WHERE type = 'volume' AND name = ? ORDER BY container_id"),
    };
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o701 });
  }

  /** The volume's own directory; its files are in `_data` below it. */
  dir(name: string): string {
    return join(this.root, name);
  }

  dataDir(name: string): string {
    return join(this.root, name, '_data');
  }

  get(name: string): VolumeRecord | undefined {
    const r = this.#q.get.get(name) as VolumeRow | undefined;
    return r && toVolume(r);
  }

  list(): VolumeRecord[] {
    return (this.#q.list.all() as unknown as VolumeRow[]).map(toVolume);
  }

  /** Records the volume, then makes its directory; a crash between leaves a row whose directory `ensureDir` makes. */
  async create(v: VolumeRecord): Promise<VolumeRecord> {
    this.#q.insert.run(v.name, v.driver, JSON.stringify(v.labels), JSON.stringify(v.options), v.created);
    await this.ensureDir(v.name);
    return v;
  }

  async ensureDir(name: string): Promise<void> {
    await mkdir(this.dir(name), { recursive: true, mode: 0o701 });
    await mkdir(this.dataDir(name), { recursive: true, mode: 0o755 });
  }

  /** Forgets the volume, then deletes its files. */
  async delete(name: string): Promise<void> {
    this.#q.delete.run(name);
    await rm(this.dir(name), { recursive: true, force: true });
  }

  mounts(containerId: string): MountPoint[] {
    return (this.#q.mounts.all(containerId) as unknown as MountRow[]).map(toMount);
  }

  /** Every volume mount point, by container: for the in-use counts of `ls`, `df` and `prune`. */
  volumeUsers(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const r of this.#q.allMounts.all() as unknown as MountRow[]) out.set(r.name, [...(out.get(r.name) ?? []), r.container_id]);
    return out;
  }

  /** The containers that mount the volume, in any state. */
  users(name: string): string[] {
    return (this.#q.users.all(name) as { container_id: string }[]).map((r) => r.container_id);
  }

  setMounts(containerId: string, mounts: readonly MountPoint[]): void {
    transaction(this.#db, () => {
      this.#q.deleteMounts.run(containerId);
      for (const m of mounts) {
        this.#q.insertMount.run(containerId, m.destination, m.type, m.name, m.source, m.mode, m.rw ? 1 : 0, m.propagation,
          m.anonymous ? 1 : 0, m.copyData ? 1 : 0, m.createSource ? 1 : 0);
      }
    });
  }

  deleteMounts(containerId: string): void {
    this.#q.deleteMounts.run(containerId);
  }
}
