import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { BerthError, ErrorCode, conflict, invalidArgument, isBerthError, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { MountPoint, VolumeRecord, VolumeStore } from '../volumes/store.ts';
import { copyUp, dirSize, isEmptyDir, mountDevice, needsMount, unmountDevice, validateLocalOptions } from '../volumes/local.ts';
import type { EventBus } from './events.ts';
import { boolFilter, matchLabels, parseFilters } from './filters.ts';

/** The label Docker (≥ 23) puts on anonymous volumes; `volume prune` without `all` removes only these. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

/** Docker's Volume object (GET /volumes/{name}). */
export interface VolumeJson {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

/** Docker's MountPoint as container inspect shows it. */
export interface MountJson {
  Type: 'volume' | 'bind';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** A bind or volume mount ready for the runtime. */
export interface ReadyMount {
  type: 'bind';
  source: string;
  destination: string;
  readonly: boolean;
  propagation?: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const PROPAGATIONS = ['shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate'];

/** RFC 3339 in whole seconds, as Docker shows CreatedAt. */
const nowRfc3339 = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * Volumes with Docker's semantics: the local driver (plain directories, or a
 * device mounted by options), names and labels, in-use checks through the
 * containers' mount points, anonymous volumes and copy-up from the image.
 */
export class VolumeService {
  #store: VolumeStore;
  #events: EventBus;
  #log: Logger;
  /** Containers currently running with each device-mounted volume; the device is unmounted when the last one stops. */
  #active = new Map<string, Set<string>>();
  /** Whether a container runs: after a daemon restart, the in-memory set above is empty. */
  #running: (containerId: string) => boolean;
  /** A container's ID from its name or ID, for --volumes-from (NotFound otherwise). */
  #resolveContainer: (idOrName: string) => string;

  constructor(deps: {
    store: VolumeStore; events: EventBus; log: Logger; running?: (containerId: string) => boolean; resolveContainer?: (idOrName: string) => string;
  }) {
    this.#store = deps.store;
    this.#running = deps.running ?? (() => false);
    this.#resolveContainer = deps.resolveContainer ?? ((n) => { throw notFound(`No such container: ${n}`); });
    this.#events = deps.events;
    this.#log = deps.log;
  }

  get store(): VolumeStore {
    return this.#store;
  }

  toJson(v: VolumeRecord): VolumeJson {
    return {
      CreatedAt: v.created, Driver: v.driver, Labels: v.labels, Mountpoint: this.#store.dataDir(v.name), Name: v.name,
      Options: v.options, Scope: 'local',
    };
  }

  async create(req: { Name?: string; Driver?: string; DriverOpts?: Record<string, string> | null; Labels?: Record<string, string> | null }): Promise<VolumeRecord> {
    const name = req.Name || randomBytes(32).toString('hex');
    const driver = req.Driver || 'local';
    const wrap = (e: unknown) => (isBerthError(e) ? new BerthError(e.code, `create ${name}: ${e.message}`, { cause: e }) : e);
    const existing = this.#store.get(name);
    if (existing) {
      if (existing.driver !== driver) throw conflict(`create ${name}: a volume with the name ${name} already exists with driver "${existing.driver}"`);
      return existing;
    }
    try {
      if (driver !== 'local') throw notFound(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
      if (name.length === 1) throw invalidArgument('volume name is too short, names should be at least two alphanumeric characters');
      if (!NAME_RE.test(name)) {
        throw invalidArgument(`${JSON.stringify(name)} includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
      }
      validateLocalOptions(req.DriverOpts ?? {});
    } catch (e) {
      throw wrap(e);
    }
    const rec = await this.#store.create({ name, driver, labels: req.Labels ?? null, options: req.DriverOpts ?? null, created: nowRfc3339() });
    this.#events.emit('volume', 'create', name, { driver });
    return rec;
  }

  get(name: string): VolumeRecord {
    const v = this.#store.get(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  list(filters?: string | null): { Volumes: VolumeJson[]; Warnings: string[] | null } {
    const f = parseFilters(filters, ['dangling', 'name', 'label', 'label!', 'driver']);
    const dangling = boolFilter(f, 'dangling');
    const users = this.#store.volumeUsers();
    const out = this.#store.list().filter((v) => {
      if (dangling !== undefined && dangling === users.has(v.name)) return false;
      if (f.has('name') && !f.get('name')!.some((n) => new RegExp(n).test(v.name))) return false;
      if (f.has('driver') && !f.get('driver')!.includes(v.driver)) return false;
      if (!matchLabels(f.get('label'), v.labels ?? {})) return false;
      if (f.get('label!')?.some((l) => matchLabels([l], v.labels ?? {}))) return false;
      return true;
    });
    return { Volumes: out.map((v) => this.toJson(v)), Warnings: null };
  }

  async remove(name: string, force = false): Promise<void> {
    const v = this.#store.get(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = this.#store.users(name);
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    await this.#delete(v);
  }

  async #delete(v: VolumeRecord): Promise<void> {
    // Never delete through a mount: a bind device would lose the host's files.
    await unmountDevice(this.#store.dataDir(v.name));
    this.#active.delete(v.name);
    await this.#store.delete(v.name);
    this.#events.emit('volume', 'destroy', v.name, { driver: v.driver });
  }

  /** `docker volume prune`: unused anonymous volumes, or every unused volume with the `all=true` filter. */
  async prune(filters?: string | null): Promise<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }> {
    const f = parseFilters(filters, ['label', 'label!', 'all']);
    const all = boolFilter(f, 'all') ?? false;
    const users = this.#store.volumeUsers();
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const v of this.#store.list()) {
      if (users.has(v.name)) continue;
      const labels = v.labels ?? {};
      if (!all && !(ANONYMOUS_LABEL in labels)) continue;
      if (!matchLabels(f.get('label'), labels)) continue;
      if (f.get('label!')?.some((l) => matchLabels([l], labels))) continue;
      const size = needsMount(v.options) ? 0 : await dirSize(this.#store.dataDir(v.name));
      try {
        await this.#delete(v);
      } catch (e) {
        this.#log.warn('prune: removing a volume failed', { name: v.name, err: e });
        continue;
      }
      deleted.push(v.name);
      reclaimed += size;
    }
    this.#events.emit('volume', 'prune', '', { reclaimed: String(reclaimed) });
    return { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  /** `system df`: every volume with its size and how many containers use it. */
  async diskUsage(): Promise<VolumeJson[]> {
    const users = this.#store.volumeUsers();
    const out: VolumeJson[] = [];
    for (const v of this.#store.list()) {
      const size = needsMount(v.options) ? -1 : await dirSize(this.#store.dataDir(v.name));
      out.push({ ...this.toJson(v), UsageData: { Size: size, RefCount: users.get(v.name)?.length ?? 0 } });
    }
    return out;
  }

  // ------------------------------------------------------------ containers

  /**
   * At container create: Binds, Mounts (bind and volume) and Config.Volumes
   * (the image's VOLUMEs and `-v /path`) as mount points. Named volumes that
   * do not exist yet are created and anonymous ones made, as Docker does.
   */
  async attachContainer(containerId: string, config: { Volumes?: Record<string, object> | null },
    hc: { Binds?: string[] | null; Mounts?: MountSpec[] | null; Tmpfs?: Record<string, string> | null; VolumesFrom?: string[] | null }): Promise<void> {
    let points: MountPoint[] = [];
    const seen = new Set<string>();
    // --volumes-from: the other container's mount points first; this container's own Binds and Mounts win over them.
    const inherited = new Map<string, MountPoint>();
    for (const spec of hc.VolumesFrom ?? []) {
      const [ref, mode = ''] = spec.split(':');
      if (mode && mode !== 'ro' && mode !== 'rw') throw invalidArgument(`invalid mode: ${mode}`);
      const from = this.#resolveContainer(ref);
      for (const m of this.#store.mounts(from)) inherited.set(m.destination, { ...m, rw: mode ? mode === 'rw' : m.rw, createSource: false });
    }
    const add = (m: MountPoint) => {
      if (seen.has(m.destination)) throw invalidArgument(`Duplicate mount point: ${m.destination}`);
      seen.add(m.destination);
      points.push(m);
    };
    const wanted: { point: MountPoint; options?: Record<string, string> | null; labels?: Record<string, string> | null }[] = [];
    for (const b of hc.Binds ?? []) {
      const p = parseBind(b);
      add(p);
      wanted.push({ point: p });
    }
    for (const m of hc.Mounts ?? []) {
      if (m.Type !== 'bind' && m.Type !== 'volume') continue;
      const p = parseMountSpec(m);
      add(p);
      wanted.push({ point: p, options: m.VolumeOptions?.DriverConfig?.Options ?? null, labels: m.VolumeOptions?.Labels ?? null });
    }
    for (const [dest, m] of inherited) {
      if (seen.has(dest)) continue;
      seen.add(dest);
      points.push(m);
    }
    points = points.sort((a, b) => a.destination.localeCompare(b.destination));
    const tmpfs = new Set(Object.keys(hc.Tmpfs ?? {}).map(cleanDest));
    for (const m of hc.Mounts ?? []) if (m.Type === 'tmpfs') tmpfs.add(cleanDest(m.Target));
    for (const dest of Object.keys(config.Volumes ?? {})) {
      const d = cleanDest(dest);
      if (!posix.isAbsolute(d)) throw invalidArgument(`invalid mount config for type "volume": invalid mount path: '${dest}' mount path must be absolute`);
      if (seen.has(d) || tmpfs.has(d)) continue;
      const p: MountPoint = { type: 'volume', destination: d, name: '', source: '', mode: '', rw: true, propagation: '', anonymous: true, copyData: true, createSource: false };
      seen.add(d);
      points.push(p);
      wanted.push({ point: p });
    }
    const made: string[] = [];
    try {
      for (const w of wanted) {
        const p = w.point;
        if (p.type === 'bind') {
          if (!p.createSource && !existsSync(p.source)) throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${p.source}`);
          continue;
        }
        const labels = p.anonymous ? { ...w.labels, [ANONYMOUS_LABEL]: '' } : w.labels ?? null;
        const existed = p.name !== '' && this.#store.get(p.name) !== undefined;
        const v = await this.create({ Name: p.name || undefined, Labels: labels, DriverOpts: w.options ?? null });
        if (!existed) made.push(v.name);
        p.name = v.name;
      }
      this.#store.setMounts(containerId, points);
    } catch (e) {
      for (const n of made) await this.#store.delete(n).catch(() => {});
      throw e;
    }
  }

  mountPoints(containerId: string): MountPoint[] {
    return this.#store.mounts(containerId);
  }

  /** The container's mounts as inspect shows them. */
  mountsJson(containerId: string): MountJson[] {
    return this.#store.mounts(containerId).map((m) => m.type === 'bind'
      ? { Type: 'bind', Source: m.source, Destination: m.destination, Mode: m.mode, RW: m.rw, Propagation: m.propagation || 'rprivate' }
      : { Type: 'volume', Name: m.name, Source: this.#store.dataDir(m.name), Destination: m.destination, Driver: this.#store.get(m.name)?.driver ?? 'local', Mode: m.mode, RW: m.rw, Propagation: m.propagation });
  }

  /**
   * At container start: each mount made ready. Device volumes are mounted,
   * missing `-v` bind sources made, and an empty volume gets the image's
   * files at its destination (in the container's root `rootfs`) copied up.
   */
  async mountsFor(containerId: string, rootfs: string, rec?: { config: { Volumes?: Record<string, object> | null }; hostConfig: Parameters<VolumeService['attachContainer']>[2] }): Promise<ReadyMount[]> {
    // A container made before volumes were recorded (schema 2) gets its mount points, and its copy-up, now.
    const legacy = rec !== undefined && this.#store.mounts(containerId).length === 0;
    if (legacy) {
      await this.attachContainer(containerId, rec.config, rec.hostConfig);
      await this.populate(containerId, rootfs);
    }
    const out: ReadyMount[] = [];
    for (const m of this.#store.mounts(containerId)) {
      if (m.type === 'bind') {
        if (m.createSource && !existsSync(m.source)) await mkdir(m.source, { recursive: true, mode: 0o755 });
        out.push({ type: 'bind', source: m.source, destination: m.destination, readonly: !m.rw, propagation: m.propagation || undefined });
        continue;
      }
      const v = this.#store.get(m.name);
      if (!v) throw notFound(`get ${m.name}: no such volume`);
      const data = this.#store.dataDir(v.name);
      await this.#store.ensureDir(v.name);
      if (needsMount(v.options)) {
        await mountDevice(v.options!, data);
        let set = this.#active.get(v.name);
        if (!set) this.#active.set(v.name, (set = new Set()));
        set.add(containerId);
      }
      // A device volume (a tmpfs) starts empty at each mount: it gets the image's files then.
      if (needsMount(v.options) && m.copyData && (await isEmptyDir(data))) await this.#copyUp(v.name, rootfs, m.destination);
      out.push({ type: 'bind', source: data, destination: m.destination, readonly: !m.rw, propagation: m.propagation || undefined });
      this.#events.emit('volume', 'mount', v.name, {
        container: containerId, destination: m.destination, driver: v.driver, propagation: m.propagation, 'read/write': String(m.rw),
      });
    }
    return out;
  }

  /**
   * At container create, as Docker's populateVolumes: each empty volume gets
   * the image's files at its destination (the new container's root is
   * mounted at `rootfs`). Device volumes are filled when they are mounted.
   */
  /** Whether populate() may have files to copy: a container without volumes to fill needs no mount of its root. */
  wantsPopulate(containerId: string): boolean {
    return this.#store.mounts(containerId).some((m) => m.type === 'volume' && m.copyData);
  }

  async populate(containerId: string, rootfs: string): Promise<void> {
    for (const m of this.#store.mounts(containerId)) {
      if (m.type !== 'volume' || !m.copyData) continue;
      const v = this.#store.get(m.name);
      if (!v || needsMount(v.options)) continue;
      await this.#store.ensureDir(v.name);
      if (await isEmptyDir(this.#store.dataDir(v.name))) await this.#copyUp(v.name, rootfs, m.destination);
    }
  }

  async #copyUp(name: string, rootfs: string, path: string): Promise<void> {
    if (await copyUp(rootfs, path, this.#store.dataDir(name))) this.#log.debug('copied up image files', { volume: name, path });
  }

  /** After a container stopped: device volumes no running container uses any more are unmounted. */
  async releaseContainer(containerId: string): Promise<void> {
    for (const m of this.#store.mounts(containerId)) {
      if (m.type !== 'volume') continue;
      const set = this.#active.get(m.name) ?? new Set();
      const was = set.delete(containerId);
      const v = this.#store.get(m.name);
      if (!v || !needsMount(v.options)) continue;
      if (was) this.#events.emit('volume', 'unmount', m.name, { container: containerId, driver: v.driver });
      const others = this.#store.users(m.name).some((id) => id !== containerId && (set.has(id) || this.#running(id)));
      if (!others) {
        this.#active.delete(m.name);
        await unmountDevice(this.#store.dataDir(m.name)).catch((e) => this.#log.warn('unmounting a volume failed', { name: m.name, err: e }));
      }
    }
  }

  /** At container removal: its mount points go; with `removeAnonymous` (rm -v, --rm), so do its anonymous volumes no one else uses. */
  async detachContainer(containerId: string, removeAnonymous: boolean): Promise<void> {
    await this.releaseContainer(containerId);
    const mounts = this.#store.mounts(containerId);
    this.#store.deleteMounts(containerId);
    if (!removeAnonymous) return;
    for (const m of mounts) {
      if (m.type !== 'volume' || !m.anonymous) continue;
      await this.remove(m.name).catch((e) => {
        if (!isBerthError(e, ErrorCode.Conflict) && !isBerthError(e, ErrorCode.NotFound)) this.#log.warn('removing an anonymous volume failed', { name: m.name, err: e });
      });
    }
  }
}

/** HostConfig.Mounts entries, as `--mount` and the API give them. */
export interface MountSpec {
  Type: string;
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null } | null;
}

const cleanDest = (p: string) => (p === '/' ? p : posix.normalize(p).replace(/\/+$/, ''));

function validMode(mode: string): boolean {
  if (mode === '') return true;
  const seen = { rw: 0, label: 0, prop: 0, copy: 0 };
  for (const o of mode.split(',')) {
    if (o === 'rw' || o === 'ro') seen.rw++;
    else if (o === 'z' || o === 'Z') seen.label++;
    else if (PROPAGATIONS.includes(o)) seen.prop++;
    else if (o === 'nocopy') seen.copy++;
    else return false;
  }
  return seen.rw <= 1 && seen.label <= 1 && seen.prop <= 1 && seen.copy <= 1;
}

/** Docker's `-v` grammar on Linux: `[SOURCE:]DEST[:MODE]`; an absolute source is a bind, any other a volume name. */
export function parseBind(spec: string): MountPoint {
  const bad = () => invalidArgument(`invalid volume specification: '${spec}'`);
  const arr = spec.split(':');
  let source = '';
  let target: string;
  let mode = '';
  if (arr.length === 1) target = arr[0];
  else if (arr.length === 2) {
    if (validMode(arr[1]) && arr[1] !== '') throw bad();
    [source, target] = arr;
  } else if (arr.length === 3) [source, target, mode] = arr;
  else throw bad();
  if (!target) throw bad();
  if (!validMode(mode)) throw invalidArgument(`invalid mode: ${mode}`);
  const opts = mode ? mode.split(',') : [];
  const bind = source.startsWith('/');
  const kind = bind ? 'bind' : 'volume';
  if (!posix.isAbsolute(target)) throw invalidArgument(`invalid volume specification: '${spec}': invalid mount config for type "${kind}": invalid mount path: '${target}' mount path must be absolute`);
  if (cleanDest(target) === '/') throw invalidArgument(`invalid volume specification: '${spec}': invalid mount config for type "${kind}": invalid specification: destination can't be '/'`);
  const propagation = opts.find((o) => PROPAGATIONS.includes(o)) ?? '';
  if (!bind && propagation) throw invalidArgument(`invalid volume specification: '${spec}': invalid mount config for type "volume": field BindOptions must not be specified`);
  return {
    type: kind, destination: cleanDest(target), name: bind ? '' : source, source: bind ? posix.normalize(source) : '',
    // Docker gives named local volumes mode "z" when none was asked for.
    mode: bind || mode ? mode : 'z',
    rw: !opts.includes('ro'), propagation: bind ? propagation || 'rprivate' : '', anonymous: !bind && source === '',
    // Docker makes a missing `-v` host path; berth refuses it, as the containers suite expects.
    copyData: !opts.includes('nocopy'), createSource: false,
  };
}

/** One HostConfig.Mounts entry of type bind or volume. */
export function parseMountSpec(m: MountSpec): MountPoint {
  const kind = m.Type as 'bind' | 'volume';
  const bad = (msg: string) => invalidArgument(`invalid mount config for type "${kind}": ${msg}`);
  if (!m.Target) throw bad('field Target must not be empty');
  if (!posix.isAbsolute(m.Target)) throw bad(`invalid mount path: '${m.Target}' mount path must be absolute`);
  if (kind === 'bind') {
    if (!m.Source) throw bad('field Source must not be empty');
    if (m.VolumeOptions) throw bad('field VolumeOptions must not be specified');
    return {
      type: 'bind', destination: cleanDest(m.Target), name: '', source: posix.normalize(m.Source), mode: '', rw: !m.ReadOnly,
      propagation: m.BindOptions?.Propagation || 'rprivate', anonymous: false, copyData: false, createSource: Boolean(m.BindOptions?.CreateMountpoint),
    };
  }
  if (m.BindOptions) throw bad('field BindOptions must not be specified');
  const driver = m.VolumeOptions?.DriverConfig?.Name;
  if (driver && driver !== 'local') throw notFound(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
  return {
    type: 'volume', destination: cleanDest(m.Target), name: m.Source ?? '', source: '', mode: 'z', rw: !m.ReadOnly, propagation: '',
    anonymous: !m.Source, copyData: !m.VolumeOptions?.NoCopy, createSource: false,
  };
}
