import type { Digest } from '../common/digest.ts';
import { shortId } from '../common/digest.ts';
import { conflict, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContentStore } from '../content/store.ts';
import type { LoadedImage, SaveItem } from '../images/archive.ts';
import type { ImportOptions } from '../images/import.ts';
import { type ImageConfig, type Index, type Platform, normalizePlatform, platformMatches } from '../images/oci.ts';
import {
  type Reference, familiarRepository, familiarString, formatReference, parseReference, parseStoredRef, repositoryName, withDefaultTag,
} from '../images/reference.ts';
import { type ImageRecord, type ImageStore, type LayerRecord, type NewImage, type RefRecord, displayName } from '../images/store.ts';
import type { Unpacker } from '../images/unpack.ts';
import type { GarbageCollector } from '../metadata/gc.ts';
import type { Lease, LeaseManager } from '../metadata/leases.ts';
import type { EventBus } from './events.ts';
import { boolFilter, matchLabels, parseFilters, parseTimestamp, pathMatch } from './filters.ts';

/** Who uses an image: the containers service answers this once it exists. */
export interface ImageUsage {
  containersUsing(imageId: Digest): { id: string; running: boolean }[];
}

export interface ImageView {
  record: ImageRecord;
  refs: RefRecord[];
}

export type DeleteItem = { Untagged: string } | { Deleted: string };

/**
 * The archive and import code (tar, layer scanning, zlib) loads on first use:
 * an idle daemon does not pay its memory.
 */
const archiveModule = () => import('../images/archive.ts');
const importModule = () => import('../images/import.ts');

export const IMAGE_LIST_FILTERS = ['dangling', 'label', 'before', 'since', 'reference', 'until'] as const;
export const IMAGE_PRUNE_FILTERS = ['dangling', 'label', 'label!', 'until'] as const;

export class ImageService {
  #store: ImageStore;
  #content: ContentStore;
  #unpacker: Unpacker;
  #leases: LeaseManager;
  #gc: GarbageCollector;
  #events: EventBus;
  #log: Logger;
  usage: ImageUsage = { containersUsing: () => [] };

  constructor(deps: { store: ImageStore; content: ContentStore; unpacker: Unpacker; leases: LeaseManager; gc: GarbageCollector; events: EventBus; log: Logger }) {
    this.#store = deps.store;
    this.#content = deps.content;
    this.#unpacker = deps.unpacker;
    this.#leases = deps.leases;
    this.#gc = deps.gc;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  get content(): ContentStore {
    return this.#content;
  }

  get store(): ImageStore {
    return this.#store;
  }

  resolve(nameOrId: string): ImageRecord {
    return this.#store.resolve(nameOrId);
  }

  /** The image a name means for a platform: for a multi-platform tag, the member built for it. */
  async findFor(nameOrId: string, platform: Platform): Promise<ImageRecord | undefined> {
    const index = this.#store.indexOf(nameOrId);
    if (index) {
      const idx = JSON.parse((await this.#content.readBytes(index)).toString('utf8')) as Index;
      const want = normalizePlatform(platform);
      const desc = idx.manifests.find((m) => m.platform && platformMatches(want, normalizePlatform(m.platform)));
      const rec = desc && this.#store.byManifest(desc.digest);
      if (rec) return rec;
    }
    return this.#store.find(nameOrId);
  }

  config(id: Digest): Promise<ImageConfig> {
    return this.#store.config(id);
  }

  layers(id: Digest): LayerRecord[] {
    return this.#store.layers(id);
  }

  refs(id: Digest): RefRecord[] {
    return this.#store.refs(id);
  }

  /** `GET /images/json`: images with their refs, filtered as Docker filters them. */
  list(opts: { filters?: string | null } = {}): ImageView[] {
    const f = parseFilters(opts.filters, IMAGE_LIST_FILTERS);
    const dangling = boolFilter(f, 'dangling');
    const before = f.get('before')?.map((n) => this.#createdOf(n));
    const since = f.get('since')?.map((n) => this.#createdOf(n));
    const until = f.get('until')?.map((v) => parseTimestamp(v));
    const patterns = f.get('reference');
    const all = this.#store.allRefs();
    const members = this.#store.indexMembers();
    const out: ImageView[] = [];
    for (const record of this.#store.list()) {
      let refs = all.get(record.id) ?? [];
      const tagged = refs.some((r) => r.kind === 'tag') || members.has(record.id);
      if (dangling !== undefined && dangling === tagged) continue;
      if (!matchLabels(f.get('label'), record.labels)) continue;
      const created = createdMs(record);
      if (before && !before.every((t) => created < t)) continue;
      if (since && !since.every((t) => created > t)) continue;
      if (until && !until.every((t) => created <= t)) continue;
      if (patterns) {
        refs = refs.filter((r) => patterns.some((p) => refMatches(p, parseStoredRef(r.ref))));
        if (refs.length === 0) continue;
      }
      out.push({ record, refs });
    }
    return out;
  }

  #createdOf(nameOrId: string): number {
    return createdMs(this.#store.resolve(nameOrId));
  }

  async inspect(nameOrId: string): Promise<{ view: ImageView; config: ImageConfig; layers: LayerRecord[] }> {
    const record = this.#store.resolve(nameOrId);
    return { view: { record, refs: this.#store.refs(record.id) }, config: await this.#store.config(record.id), layers: this.#store.layers(record.id) };
  }

  tag(source: string, target: string): void {
    const rec = this.#store.resolve(source);
    const ref = parseReference(target);
    if (ref.digest) throw invalidArgument(`refusing to create a tag with a digest reference`);
    const full = withDefaultTag(ref);
    this.#store.tag(rec.id, full);
    this.#events.emit('image', 'tag', rec.id, { name: familiarString(full) });
  }

  /** `docker rmi`: untag by name, delete by ID, with Docker's conflict rules. */
  remove(nameOrId: string, opts: { force?: boolean; noprune?: boolean } = {}): DeleteItem[] {
    const rec = this.#store.resolve(nameOrId);
    const refs = this.#store.refs(rec.id);
    const users = this.#containersOf(rec.id);
    const byName = this.#namedRef(nameOrId, rec.id);
    const items: DeleteItem[] = [];
    const untag = (r: RefRecord) => {
      this.#store.untag(r.ref);
      const name = familiarString(parseStoredRef(r.ref));
      items.push({ Untagged: name });
      this.#events.emit('image', 'untag', rec.id, { name });
    };

    if (byName) {
      if (users.length > 0 && refs.length === 1 && !opts.force) {
        throw conflict(`conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${shortId(users[0].id)} is using its referenced image ${shortId(rec.id)}`);
      }
      untag(byName);
      // With the last tag of a repository gone, its digest references go too.
      const left = this.#store.refs(rec.id);
      if (byName.kind === 'tag' && !left.some((r) => r.kind === 'tag' && sameRepo(r, byName))) {
        for (const r of left) if (r.kind === 'digest' && sameRepo(r, byName)) untag(r);
      }
      if (this.#store.refs(rec.id).length > 0 || users.length > 0) return items;
    } else if (!opts.force) {
      const repos = new Set(refs.map((r) => repositoryName(parseStoredRef(r.ref))));
      if (repos.size > 1) throw conflict(`conflict: unable to delete ${shortId(rec.id)} (must be forced) - image is referenced in multiple repositories`);
    }
    const running = users.find((u) => u.running);
    if (running) throw conflict(`conflict: unable to delete ${shortId(rec.id)} (cannot be forced) - image is being used by running container ${shortId(running.id)}`);
    if (users.length > 0 && !opts.force) throw conflict(`conflict: unable to delete ${shortId(rec.id)} (must be forced) - image is being used by stopped container ${shortId(users[0].id)}`);
    this.#store.batch(() => {
      for (const r of this.#store.refs(rec.id)) untag(r);
      if (users.length === 0) {
        this.#store.delete(rec.id);
        items.push({ Deleted: rec.id });
        this.#events.emit('image', 'delete', rec.id, {});
      }
    });
    this.#collectSoon();
    return items;
  }

  /** The stored ref a user's name points at, if they named a ref of this image rather than its ID. */
  #namedRef(nameOrId: string, id: Digest): RefRecord | undefined {
    let ref: Reference;
    try {
      ref = withDefaultTag(parseReference(nameOrId));
    } catch {
      return undefined;
    }
    const key = formatReference(ref);
    return this.#store.refs(id).find((r) => r.ref === key);
  }

  #containersOf(id: Digest) {
    return this.usage.containersUsing(id);
  }

  /** `docker image prune`: dangling images, or with all=true every image no container uses. */
  async prune(opts: { filters?: string | null } = {}): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    const f = parseFilters(opts.filters, IMAGE_PRUNE_FILTERS);
    const danglingOnly = boolFilter(f, 'dangling') ?? true;
    const until = f.get('until')?.map((v) => parseTimestamp(v));
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const blobsBefore = await this.#blobBytes();
    const members = this.#store.indexMembers();
    for (const record of this.#store.list()) {
      const refs = this.#store.refs(record.id);
      if (danglingOnly && (refs.some((r) => r.kind === 'tag') || members.has(record.id))) continue;
      if (this.#containersOf(record.id).length > 0) continue;
      if (!matchLabels(f.get('label'), record.labels)) continue;
      if (f.get('label!')?.some((l) => matchLabels([l], record.labels))) continue;
      if (until && !until.every((t) => createdMs(record) <= t)) continue;
      this.#store.batch(() => {
        for (const r of refs) {
          this.#store.untag(r.ref);
          deleted.push({ Untagged: familiarString(parseStoredRef(r.ref)) });
        }
        this.#store.delete(record.id);
      });
      deleted.push({ Deleted: record.id });
      this.#events.emit('image', 'delete', record.id, {});
    }
    if (deleted.length > 0) {
      await this.#gc.collect();
      reclaimed = Math.max(0, blobsBefore - (await this.#blobBytes()));
    }
    this.#events.emit('image', 'prune', '', { reclaimed: String(reclaimed) });
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  async #blobBytes(): Promise<number> {
    let n = 0;
    for await (const d of this.#content.list()) n += (await this.#content.info(d))?.size ?? 0;
    return n;
  }

  /**
   * Runs an ingest under a lease. If it fails, what it wrote and nothing
   * references is swept before the error goes out, so refused input leaves
   * the store as it was.
   */
  async #ingest<T>(fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = this.#leases.create();
    try {
      return await fn(lease);
    } catch (e) {
      lease.release();
      await this.#gc.collect();
      throw e;
    } finally {
      lease.release();
    }
  }

  load(source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<LoadedImage[]> {
    return this.#ingest(async (lease) => {
      const { loadArchive } = await archiveModule();
      const loaded = await loadArchive(source, { content: this.#content, images: this.#store }, lease, signal);
      for (const l of loaded) this.#events.emit('image', 'load', l.id, l.tags[0] ? { name: l.tags[0] } : {});
      return loaded;
    });
  }

  /** Resolves `docker save` names: a repository without a tag means all of its tags. */
  saveSelection(names: string[]): SaveItem[] {
    const items = new Map<Digest, SaveItem>();
    const add = (image: ImageRecord, tag?: Reference) => {
      let item = items.get(image.id);
      if (!item) items.set(image.id, (item = { image, tags: [] }));
      if (tag && !item.tags.some((t) => familiarString(t) === familiarString(tag))) item.tags.push(tag);
    };
    for (const name of names) {
      let ref: Reference | undefined;
      try {
        ref = parseReference(name);
      } catch { /* an ID */ }
      if (ref && !ref.tag && !ref.digest) {
        const repo = repositoryName(ref);
        let found = false;
        for (const [id, refs] of this.#store.allRefs()) {
          for (const r of refs) {
            const parsed = parseStoredRef(r.ref);
            if (r.kind !== 'tag' || repositoryName(parsed) !== repo) continue;
            add(this.#store.get(id)!, parsed);
            found = true;
          }
        }
        if (found) continue;
      }
      const image = this.#store.find(name);
      if (!image) throw notFound(`No such image: ${displayName(name)}`);
      // Named by tag, the archive names it by that tag; named by ID or digest, it goes untagged, as in Docker.
      add(image, ref?.tag && !ref.digest ? ref : undefined);
    }
    return [...items.values()];
  }

  async *save(items: SaveItem[], signal?: AbortSignal): AsyncGenerator<Buffer> {
    for (const i of items) this.#events.emit('image', 'save', i.image.id, i.tags[0] ? { name: familiarString(i.tags[0]) } : {});
    const { saveArchive } = await archiveModule();
    yield* saveArchive(items, { content: this.#content, images: this.#store }, signal);
  }

  async import(source: AsyncIterable<Uint8Array>, target: string | undefined, opts: ImportOptions): Promise<Digest> {
    const ref = target ? withDefaultTag(parseReference(target)) : undefined;
    if (ref?.digest) throw invalidArgument('refusing to import with a digest reference');
    return this.#ingest(async (lease) => {
      const { importTarball } = await importModule();
      const img = await importTarball(source, this.#content, lease, opts);
      this.#store.create(img, ref ? [ref] : []);
      this.#events.emit('image', 'import', img.id, ref ? { name: familiarString(ref) } : {});
      return img.id;
    });
  }

  /**
   * Stores an image that `build` writes under a lease (`commit`), points
   * `target` at it and announces it as `action`. Returns the image ID.
   */
  async createImage(build: (content: ContentStore, lease: Lease) => Promise<NewImage>, target: string | undefined, action: string): Promise<Digest> {
    const ref = target ? withDefaultTag(parseReference(target)) : undefined;
    if (ref?.digest) throw invalidArgument('refusing to create a tag with a digest reference');
    return this.#ingest(async (lease) => {
      const img = await build(this.#content, lease);
      this.#store.create(img, ref ? [ref] : []);
      this.#events.emit('image', action, img.id, ref ? { name: familiarString(ref) } : {});
      return img.id;
    });
  }

  /** `GET /system/df`: every image with its container count, and the bytes of distinct layers. */
  diskUsage(): { layersSize: number; images: { view: ImageView; containers: number }[] } {
    const seen = new Set<Digest>();
    let layersSize = 0;
    const images = this.list().map((view) => {
      for (const l of this.#store.layers(view.record.id)) {
        if (seen.has(l.blob)) continue;
        seen.add(l.blob);
        layersSize += l.unpackedSize;
      }
      return { view, containers: this.#containersOf(view.record.id).length };
    });
    return { layersSize, images };
  }

  /** Makes the image's layers into snapshots; returns the top chain ID. */
  async unpack(nameOrId: string, signal?: AbortSignal): Promise<string> {
    const rec = this.#store.resolve(nameOrId);
    return this.#unpacker.unpack(this.#store.layers(rec.id), signal);
  }

  #collectSoon(): void {
    this.#gc.collect().catch((e) => this.#log.error('gc failed', { err: e }));
  }
}

export function createdMs(r: ImageRecord): number {
  const t = Date.parse(r.created);
  return Number.isNaN(t) ? 0 : t;
}

function sameRepo(a: RefRecord, b: RefRecord): boolean {
  return repositoryName(parseStoredRef(a.ref)) === repositoryName(parseStoredRef(b.ref));
}

/** Docker's reference filter: the glob against `name:tag`, then against the name alone. */
function refMatches(pattern: string, r: Reference): boolean {
  return pathMatch(pattern, familiarString(r)) || pathMatch(pattern, familiarRepository(r));
}

