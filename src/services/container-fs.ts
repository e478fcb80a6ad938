/**
 * A container's filesystem: `diff` (the writable layer against the image),
 * `commit` (the writable layer as a new image layer), `export` (the merged
 * root as one tar) and `cp` (the archive API: stat, read and write a path).
 *
 * A running container's root is its mount at `<container dir>/rootfs`; a
 * stopped one is mounted for the operation at a scratch directory (read-only
 * with the writable layer as the top lower directory, or read-write for
 * `cp` in) and unmounted when the operation ends.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, mkdir, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import type { Digest } from '../common/digest.ts';
import { BerthError, ErrorCode, errno, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { extractInto, pathInRoot, resolveInRoot } from '../diff/extract.ts';
import { layerTar, treeTar, walkTree } from '../diff/tree.ts';
import { containerLayerFilter, statBelow } from '../diff/container-layer.ts';
import { applyChanges } from '../images/changes.ts';
import { type ContainerConfig, type ImageConfig, MediaType } from '../images/oci.ts';
import { ociLayer, writeOciImage } from '../images/oci-image.ts';
import type { LayerRecord } from '../images/store.ts';
import type { ContainerRecord } from '../metadata/containers.ts';
import { isMounted, mountRootfs } from '../runtime/rootfs.ts';
import { resolveUser } from '../runtime/user.ts';
import { dirSize } from '../volumes/local.ts';
import type { Mount, OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { ContainerService } from './containers.ts';
import type { EventBus } from './events.ts';
import type { ImageService } from './images.ts';

/** Docker's change kinds for GET /containers/{id}/changes. */
export const ChangeKind = { Modified: 0, Added: 1, Deleted: 2 } as const;
export interface Change { Path: string; Kind: number }

/** What `docker cp` learns about a path: the `X-Docker-Container-Path-Stat` header. */
export interface PathStat { name: string; size: number; mode: number; mtime: string; linkTarget: string }

export interface CommitOptions {
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  pause?: boolean;
  changes?: string[];
  /** Config fields from the request body; they win over the container's. */
  config?: ContainerConfig;
}

/**
 * What the runtime puts into the writable layer only to mount something on
 * it (Docker keeps these in an init layer below the container's): left out of
 * `diff` and `commit`.
 */
/** Files the runtime bind-mounts into the container, by path inside it, and their names in the container's directory. */
const BOUND_FILES = new Map([['/etc/hostname', 'hostname'], ['/etc/hosts', 'hosts'], ['/etc/resolv.conf', 'resolv.conf']]);

const exec = promisify(execFile);
const mountCmd = (args: string[]) => exec('mount', args).then(() => {}, (e) => Promise.reject(new BerthError(ErrorCode.Internal, `mount ${args.join(' ')}: ${(e as { stderr?: string }).stderr?.trim() ?? e}`, { cause: e })));
const umount = (args: string[]) => exec('umount', args).then(() => {});

/** Kernel filesystems a running container has mounted: their contents are never archived. */
const KERNEL_DIRS = ['/proc', '/sys', '/dev'];

/** The image config fields a commit keeps from the container's config. */
const IMAGE_FIELDS = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'Healthcheck', 'OnBuild', 'Shell', 'ArgsEscaped'] as const;

/** Go's os.FileMode bits, which the docker CLI decodes from the stat header. */
function goFileMode(st: Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m += 2 ** 31;
  else if (st.isSymbolicLink()) m += 2 ** 27;
  else if (st.isFIFO()) m += 2 ** 25;
  else if (st.isSocket()) m += 2 ** 24;
  else if (st.isBlockDevice()) m += 2 ** 26;
  else if (st.isCharacterDevice()) m += 2 ** 26 + 2 ** 21;
  if (st.mode & 0o4000) m += 2 ** 23;
  if (st.mode & 0o2000) m += 2 ** 22;
  if (st.mode & 0o1000) m += 2 ** 20;
  return m;
}

/** `/` + path, cleaned, keeping a trailing `/` or `/.` as Docker does (they mean "the directory itself"). */
function containerPath(path: string): string {
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  let abs = `/${parts.join('/')}`;
  if (abs !== '/' && (path.endsWith('/.') || path === '.')) abs += '/.';
  else if (abs !== '/' && path.endsWith('/')) abs += '/';
  return abs;
}

/** Go's filepath.Base: the last element, trailing slashes ignored; "/" for the root. */
function goBase(p: string): string {
  const t = p.replace(/\/+$/, '');
  if (t === '') return '/';
  return t.slice(t.lastIndexOf('/') + 1);
}

export interface ContainerFsDeps {
  containers: ContainerService;
  images: ImageService;
  snapshots: OverlaySnapshotter;
  /** Where a running container's root filesystem is mounted. */
  rootfsPath: (c: ContainerRecord) => string;
  /** The container's volumes and bind mounts (Docker's inspect `Mounts`), for a stopped container's `cp`. */
  mountsOf?: (c: ContainerRecord) => { Source: string; Destination: string; RW: boolean }[];
  /** A directory for temporary mount points. */
  scratch: string;
  events: EventBus;
  log: Logger;
}

interface Located {
  root: string;
  release: () => Promise<void>;
}

export class ContainerFsService {
  #d: ContainerFsDeps;
  /** Containers paused by operations in flight, with how many hold the pause. */
  #frozen = new Map<string, { n: number; paused: Promise<boolean> }>();

  constructor(deps: ContainerFsDeps) {
    this.#d = deps;
  }

  /**
   * Docker's SizeRw (the bytes of files in the container's writable layer)
   * and SizeRootFs (those plus its image's), for `ps -s` and `system df`.
   */
  async sizes(c: ContainerRecord): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const snap = this.#d.snapshots.stat(c.id);
    const rw = snap ? await dirSize(join(this.#d.snapshots.dir(snap), 'fs')).catch(() => 0) : 0;
    return { SizeRw: rw, SizeRootFs: rw + (this.#d.images.store.get(c.imageId as Digest)?.size ?? 0) };
  }

  /** After a crash: unmounts and removes the scratch mount points an interrupted operation left. */
  async recover(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#d.scratch);
    } catch (e) {
      if (errno(e) === 'ENOENT') return;
      throw e;
    }
    for (const n of names) {
      if (!n.startsWith('mnt-')) continue;
      const dir = join(this.#d.scratch, n);
      if (await isMounted(dir)) await umount(['-l', dir]).catch((e) => this.#d.log.warn('unmounting a leftover scratch mount failed', { dir, err: e }));
      await rmdir(dir).catch(() => {});
    }
  }

  /** The writable layer's directory and the image's layer directories, top first. */
  #layers(c: ContainerRecord): { upper: string; lowers: string[] } {
    const snaps = this.#d.snapshots;
    const info = snaps.stat(c.id);
    if (!info) throw notFound(`container ${c.id} has no writable layer`);
    const lowers: string[] = [];
    for (let p = info.parent; p; ) {
      const pi = snaps.stat(p);
      if (!pi) throw notFound(`snapshot ${p} of container ${c.id} is missing`);
      lowers.push(join(snaps.dir(pi), 'fs'));
      p = pi.parent;
    }
    return { upper: join(snaps.dir(info), 'fs'), lowers };
  }

  /**
   * The container's merged root: its live mount when running, else a
   * temporary mount. With `inside`, a running container is seen from its own
   * mount namespace (`/proc/<pid>/root`), volumes and tmpfs mounts included,
   * as `docker cp` sees it.
   */
  async #mount(c: ContainerRecord, writable: boolean, inside = false): Promise<Located> {
    if (c.state.Running) {
      // A running container is frozen while we work in its root, so it cannot swap a directory for
      // a symlink between our lstat and our open (CVE-2018-15664), as Docker pauses it for cp.
      const thaw = await this.#freeze(c);
      if (inside && c.state.Pid > 0) {
        // `/.`: the magic link itself is a symlink to lstat; its target is the container's root directory.
        const root = `/proc/${c.state.Pid}/root/.`;
        if (await lstat(root).then(() => true, () => false)) return { root, release: thaw };
      }
      const live = this.#d.rootfsPath(c);
      if (await isMounted(live)) return { root: live, release: thaw };
      await thaw();
    }
    const { upper, lowers } = this.#layers(c);
    let mounts: Mount[];
    if (writable) mounts = this.#d.snapshots.mounts(c.id);
    else if (lowers.length === 0) mounts = [{ type: 'bind', source: upper, options: ['rbind', 'ro'] }];
    else mounts = [{ type: 'overlay', source: 'overlay', options: ['ro', 'index=off', `lowerdir=${[upper, ...lowers].join(':')}`] }];
    const dir = join(this.#d.scratch, `mnt-${c.shortId}-${randomBytes(4).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const release = async () => {
      // -R: the container's volumes are mounted below the root.
      await umount(['-R', dir]).catch(() => umount(['-l', dir])).catch((e) => this.#d.log.warn('unmounting a scratch mount failed', { dir, err: e }));
      await rmdir(dir).catch((e) => this.#d.log.warn('removing a scratch mount point failed', { dir, err: e }));
    };
    try {
      await mountRootfs(mounts, dir);
      // A stopped container's volumes and binds, where it would have them, as Docker mounts them for cp.
      if (inside) await this.#mountVolumes(c, dir, writable);
    } catch (e) {
      await release();
      throw e;
    }
    return { root: dir, release };
  }

  /** Pauses a running container for the length of an operation; overlapping operations share one pause. */
  async #freeze(c: ContainerRecord): Promise<() => Promise<void>> {
    if (c.state.Paused) return async () => {};
    let f = this.#frozen.get(c.id);
    if (!f) {
      f = { n: 0, paused: this.#d.containers.pause(c.id).then(() => true, () => false) };
      this.#frozen.set(c.id, f);
    }
    const entry = f;
    entry.n++;
    const paused = await entry.paused;
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      if (--entry.n > 0) return;
      this.#frozen.delete(c.id);
      if (paused) await this.#d.containers.unpause(c.id).catch((e) => this.#d.log.warn('unpausing after a copy failed', { id: c.id, err: e }));
    };
  }

  async #mountVolumes(c: ContainerRecord, root: string, writable: boolean): Promise<void> {
    const points = (this.#d.mountsOf?.(c) ?? []).filter((m) => m.Source && m.Destination && existsSync(m.Source));
    points.sort((a, b) => a.Destination.split('/').length - b.Destination.split('/').length);
    for (const m of points) {
      const target = await resolveInRoot(root, m.Destination);
      const isDir = (await stat(m.Source)).isDirectory();
      if (!existsSync(target)) {
        if (!writable) continue;
        if (isDir) await mkdir(target, { recursive: true, mode: 0o755 });
        else {
          await mkdir(dirname(target), { recursive: true, mode: 0o755 });
          await writeFile(target, '', { flag: 'wx' });
        }
      }
      await mountCmd(['--bind', ...(writable && m.RW ? [] : ['-o', 'ro']), m.Source, target]);
    }
  }

  /** Whether `rel` exists in the image below the writable layer (a whiteout there means it does not). */
  /** `docker diff`: what the writable layer added, changed and deleted, sorted by path. */
  async changes(idOrName: string): Promise<Change[]> {
    const c = this.#d.containers.resolve(idOrName);
    const { upper, lowers } = this.#layers(c);
    const out: Change[] = [];
    const opaque: string[] = [];
    for await (const n of walkTree(upper, { layer: true, ...containerLayerFilter(lowers) })) {
      const rel = n.rel;
      if (rel === '' || rel.endsWith('/.wh..wh..opq') || rel === '.wh..wh..opq') continue;
      const path = `/${rel}`;
      if (n.whiteout) {
        out.push({ Path: path, Kind: ChangeKind.Deleted });
        continue;
      }
      if (n.opaque) opaque.push(`${rel}/`);
      const hidden = opaque.some((o) => rel.startsWith(o));
      const existed = !hidden && (await statBelow(lowers, rel)) !== undefined;
      out.push({ Path: path, Kind: existed ? ChangeKind.Modified : ChangeKind.Added });
    }
    return out.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  }

  /** `docker export`: the merged root filesystem as one tar. */
  async *export(idOrName: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
    const c = this.#d.containers.resolve(idOrName);
    const m = await this.#mount(c, false);
    try {
      yield* treeTar(m.root, { signal });
      this.#d.events.emit('container', 'export', c.id, { image: c.image, name: c.name });
    } finally {
      await m.release();
    }
  }

  async #locate(c: ContainerRecord, root: string, path: string): Promise<{ host: string; abs: string; st: Stats }> {
    if (!path) throw invalidArgument('path must not be empty');
    const abs = containerPath(path);
    const i = abs.lastIndexOf('/');
    const dirPart = abs.slice(0, i + 1);
    const base = abs.slice(i + 1);
    const dir = await resolveInRoot(root, dirPart);
    let host = base === '' || base === '.' ? dir : `${dir}/${base}`;
    // The files the runtime mounts over the root are read from where they really are.
    const bound = BOUND_FILES.get(pathInRoot(root, host));
    if (bound) host = join(dirname(this.#d.rootfsPath(c)), bound);
    try {
      return { host, abs, st: await lstat(host) };
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') throw notFound(`Could not find the file ${path} in container ${c.name}`, e);
      throw e;
    }
  }

  async #stat(root: string, loc: { host: string; abs: string; st: Stats }): Promise<PathStat> {
    const { st, abs } = loc;
    let linkTarget = '';
    if (st.isSymbolicLink()) linkTarget = pathInRoot(root, await resolveInRoot(root, abs, true));
    return { name: goBase(abs), size: st.size, mode: goFileMode(st), mtime: new Date(st.mtimeMs).toISOString(), linkTarget };
  }

  /** HEAD /containers/{id}/archive. */
  async statPath(idOrName: string, path: string): Promise<PathStat> {
    const c = this.#d.containers.resolve(idOrName);
    const m = await this.#mount(c, false, true);
    try {
      return await this.#stat(m.root, await this.#locate(c, m.root, path));
    } finally {
      await m.release();
    }
  }

  /**
   * GET /containers/{id}/archive: the stat, and a tar of the path whose
   * entries start with the path's base name (`.` for `dir/.`). The final
   * component is not followed when it is a symlink, as with Docker.
   */
  async getArchive(idOrName: string, path: string, signal?: AbortSignal): Promise<{ stat: PathStat; tar: AsyncGenerator<Buffer> }> {
    const c = this.#d.containers.resolve(idOrName);
    const m = await this.#mount(c, false, true);
    let stat: PathStat;
    let loc;
    try {
      loc = await this.#locate(c, m.root, path);
      stat = await this.#stat(m.root, loc);
    } catch (e) {
      await m.release();
      throw e;
    }
    const host = loc.host;
    // Seen from inside a running container, /proc, /sys and /dev are the kernel's: copied as empty
    // directories, as Docker's view of the container (its root and volumes) has them.
    const at = pathInRoot(m.root, host);
    const kernel = (p: string) => KERNEL_DIRS.some((k) => p.startsWith(`${k}/`));
    const touchesKernel = at === '/' || KERNEL_DIRS.some((k) => at === k) || kernel(at);
    const walk = {
      name: stat.name === '/' ? '.' : stat.name, signal,
      ...(touchesKernel ? { xattrs: false, skip: (rel: string) => kernel(at === '/' ? `/${rel}` : `${at}/${rel}`) } : {}),
    };
    this.#d.events.emit('container', 'archive-path', c.id, { image: c.image, name: c.name });
    async function* tar(): AsyncGenerator<Buffer> {
      try {
        yield* treeTar(host, walk);
      } finally {
        await m.release();
      }
    }
    return { stat, tar: tar() };
  }

  /** PUT /containers/{id}/archive: extracts a tar into a directory of the container. */
  async putArchive(idOrName: string, path: string, tar: AsyncIterable<Buffer>, opts: { noOverwriteDirNonDir?: boolean; copyUIDGID?: boolean; signal?: AbortSignal }): Promise<void> {
    const c = this.#d.containers.resolve(idOrName);
    if (!path) throw invalidArgument('path must not be empty');
    if (c.hostConfig.ReadonlyRootfs) throw invalidArgument('container rootfs is marked read-only');
    const m = await this.#mount(c, true, true);
    try {
      // -a: everything belongs to the container's user, resolved in its own /etc/passwd.
      const owner = opts.copyUIDGID ? await resolveUser(m.root, c.config.User ?? '') : undefined;
      try {
        await extractInto(m.root, containerPath(path), tar, { noOverwriteDirNonDir: opts.noOverwriteDirNonDir, owner, signal: opts.signal });
      } catch (e) {
        if ((e as { code?: string }).code === 'NotFound') throw notFound(`Could not find the file ${path} in container ${c.name}`, e);
        throw e;
      }
    } finally {
      await m.release();
    }
    this.#d.events.emit('container', 'extract-to-dir', c.id, { image: c.image, name: c.name });
  }

  /** `docker commit`: the writable layer becomes a new layer on top of the container's image. */
  async commit(idOrName: string, opts: CommitOptions = {}): Promise<Digest> {
    const svc = this.#d.containers;
    const c = svc.resolve(idOrName);
    const pause = opts.pause !== false && c.state.Running && !c.state.Paused;
    if (pause) await svc.pause(c.id);
    try {
      return await this.#commit(c, opts);
    } finally {
      if (pause) await svc.unpause(c.id).catch((e) => this.#d.log.warn('unpause after commit failed', { id: c.id, err: e }));
    }
  }

  async #commit(c: ContainerRecord, opts: CommitOptions): Promise<Digest> {
    const images = this.#d.images;
    const base = await images.config(c.imageId as Digest);
    const baseLayers = images.layers(c.imageId as Digest);
    const { upper, lowers } = this.#layers(c);
    let config: ContainerConfig = {};
    const from = c.config as Record<string, unknown>;
    for (const k of IMAGE_FIELDS) if (from[k] !== undefined && from[k] !== null) (config as Record<string, unknown>)[k] = structuredClone(from[k]);
    for (const [k, v] of Object.entries(opts.config ?? {})) {
      if (v !== undefined && v !== null && (IMAGE_FIELDS as readonly string[]).includes(k)) (config as Record<string, unknown>)[k] = v;
    }
    config = applyChanges(config, opts.changes ?? []);
    const target = opts.repo ? (opts.tag ? `${opts.repo}:${opts.tag}` : opts.repo) : undefined;
    const id = await images.createImage(async (content, lease) => {
      const blob = await content.writeStream(layerTar(upper, containerLayerFilter(lowers)), (d) => lease.blobs.add(d));
      const now = new Date().toISOString();
      const layer: LayerRecord = { blob: blob.digest, diffId: blob.digest, size: blob.size, unpackedSize: blob.size, mediaType: MediaType.OciLayer };
      const layers = [...baseLayers.map(ociLayer), layer];
      const image: ImageConfig = {
        ...base,
        created: now,
        config,
        container: c.id,
        rootfs: { type: 'layers', diff_ids: [...(base.rootfs?.diff_ids ?? []), blob.digest] },
        history: [...(base.history ?? []), {
          created: now, ...(opts.author ? { author: opts.author } : {}),
          created_by: [...(c.config.Entrypoint ?? []), ...(c.config.Cmd ?? [])].join(' '),
          ...(opts.comment ? { comment: opts.comment } : {}),
        }],
      };
      delete image.container_config;
      if (opts.author) image.author = opts.author;
      else delete image.author;
      if (opts.comment) image.comment = opts.comment;
      else delete image.comment;
      return (await writeOciImage(content, image, layers, (d) => lease.blobs.add(d), c.imageId)).image;
    }, target, 'commit');
    this.#d.events.emit('container', 'commit', c.id, { image: c.image, name: c.name, ...(opts.comment ? { comment: opts.comment } : {}) });
    return id;
  }
}
