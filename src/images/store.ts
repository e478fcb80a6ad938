import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { type Digest, isDigest } from '../common/digest.ts';
import { invalidArgument, isBerthError, notFound } from '../common/errors.ts';
import type { ContentReader } from '../content/store.ts';
import { transaction } from '../metadata/db.ts';
import type { ImageConfig, Manifest } from './oci.ts';
import { type Reference, familiarString, formatReference, parseReference, withDefaultTag } from './reference.ts';

export interface ImageRecord {
  id: Digest;
  manifest: Digest;
  manifestMediaType: string;
  configMediaType: string;
  created: string;
  size: number;
  platform: string;
  labels: Record<string, string>;
  parent: string;
  addedAt: number;
}

export interface LayerRecord {
  blob: Digest;
  diffId: Digest;
  /** Blob size as stored (maybe compressed). */
  size: number;
  /** Size of the uncompressed tar. */
  unpackedSize: number;
  mediaType: string;
}

export interface RefRecord {
  ref: string;        // canonical
  imageId: Digest;
  kind: 'tag' | 'digest';
}

export interface NewImage {
  id: Digest;
  manifest: Digest;
  manifestMediaType: string;
  configMediaType: string;
  config: ImageConfig;
  layers: LayerRecord[];
  parent?: string;
}

interface ImageRow {
  id: string; manifest: string; manifest_media_type: string; config_media_type: string; created: string;
  size: number; platform: string; labels: string; parent: string; added_at: number;
}

const toRecord = (r: ImageRow): ImageRecord => ({
  id: r.id as Digest,
  manifest: r.manifest as Digest,
  manifestMediaType: r.manifest_media_type,
  configMediaType: r.config_media_type,
  created: r.created,
  size: r.size,
  platform: r.platform,
  labels: JSON.parse(r.labels),
  parent: r.parent,
  addedAt: r.added_at,
});

/**
 * Image records, their names and layers, in the metadata database; configs and
 * manifests are blobs in the content store. The image ID is the config digest.
 */
export class ImageStore {
  #db: DatabaseSync;
  #content: ContentReader;
  #configCache = new Map<Digest, ImageConfig>();
  #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync, content: ContentReader) {
    this.#db = db;
    this.#content = content;
    this.#q = {
      get: db.prepare('SELECT * FROM images WHERE id = ?'),
      list: db.prepare('SELECT * FROM images ORDER BY created DESC, added_at DESC'),
      byPrefix: db.prepare("SELECT * FROM images WHERE id >= ? AND id < ? LIMIT 2"),
      refs: db.prepare('SELECT ref, image_id, kind FROM image_refs WHERE image_id = ? ORDER BY created_at, ref'),
      allRefs: db.prepare('SELECT ref, image_id, kind FROM image_refs ORDER BY created_at, ref'),
      ref: db.prepare('SELECT ref, image_id, kind FROM image_refs WHERE ref = ?'),
      layers: db.prepare('SELECT blob, diff_id, size, unpacked_size, media_type FROM image_layers WHERE image_id = ? ORDER BY idx'),
      insertImage: db.prepare(`INSERT INTO images (id, manifest, manifest_media_type, config_media_type, created, size, platform, labels, parent, added_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(id) DO NOTHING`),
      insertLayer: db.prepare('INSERT OR REPLACE INTO image_layers (image_id, idx, blob, diff_id, size, unpacked_size, media_type) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      upsertRef: db.prepare(`INSERT INTO image_refs (ref, image_id, kind, created_at) VALUES (?, ?, ?, ?)
        ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at, index_digest = excluded.index_digest`),
      setIndex: db.prepare('UPDATE image_refs SET index_digest = ? WHERE ref = ?'),
      indexOf: db.prepare("SELECT index_digest FROM image_refs WHERE ref = ? AND index_digest != ''"),
      byManifest: db.prepare('SELECT * FROM images WHERE manifest = ? LIMIT 1'),
      deleteRef: db.prepare('DELETE FROM image_refs WHERE ref = ?'),
      deleteImage: db.prepare('DELETE FROM images WHERE id = ?'),
      count: db.prepare('SELECT COUNT(*) AS n FROM images'),
    };
  }

  get(id: Digest): ImageRecord | undefined {
    const row = this.#q.get.get(id) as ImageRow | undefined;
    return row && toRecord(row);
  }

  list(): ImageRecord[] {
    return (this.#q.list.all() as unknown as ImageRow[]).map(toRecord);
  }

  count(): number {
    return (this.#q.count.get() as { n: number }).n;
  }

  refs(id: Digest): RefRecord[] {
    return (this.#q.refs.all(id) as { ref: string; image_id: string; kind: 'tag' | 'digest' }[]).map((r) => ({ ref: r.ref, imageId: r.image_id as Digest, kind: r.kind }));
  }

  /** Every image's refs in one query, for listings. */
  allRefs(): Map<Digest, RefRecord[]> {
    const out = new Map<Digest, RefRecord[]>();
    for (const r of this.#q.allRefs.all() as { ref: string; image_id: Digest; kind: 'tag' | 'digest' }[]) {
      let list = out.get(r.image_id);
      if (!list) out.set(r.image_id, (list = []));
      list.push({ ref: r.ref, imageId: r.image_id, kind: r.kind });
    }
    return out;
  }

  layers(id: Digest): LayerRecord[] {
    return (this.#q.layers.all(id) as { blob: Digest; diff_id: Digest; size: number; unpacked_size: number; media_type: string }[]).map((l) => ({
      blob: l.blob, diffId: l.diff_id, size: l.size, unpackedSize: l.unpacked_size, mediaType: l.media_type,
    }));
  }

  async config(id: Digest): Promise<ImageConfig> {
    let c = this.#configCache.get(id);
    if (!c) {
      c = JSON.parse((await this.#content.readBytes(id)).toString('utf8')) as ImageConfig;
      if (this.#configCache.size > 512) this.#configCache.clear();
      this.#configCache.set(id, c);
    }
    return c;
  }

  async manifest(rec: ImageRecord): Promise<Manifest> {
    return JSON.parse((await this.#content.readBytes(rec.manifest)).toString('utf8')) as Manifest;
  }

  /**
   * Resolves a name or ID the way Docker does: a full `sha256:` ID, then a
   * reference (`busybox` is `busybox:latest`), then an ID prefix.
   */
  resolve(nameOrId: string): ImageRecord {
    const found = this.find(nameOrId);
    if (found) return found;
    throw notFound(`No such image: ${displayName(nameOrId)}`);
  }

  find(nameOrId: string): ImageRecord | undefined {
    if (isDigest(nameOrId)) return this.get(nameOrId);
    let ref: Reference | undefined;
    try {
      ref = withDefaultTag(parseReference(nameOrId));
    } catch (e) {
      if (!isBerthError(e, 'InvalidArgument') || !/^(sha256:)?[a-f0-9]+$/.test(nameOrId)) throw e;
    }
    if (ref) {
      const hit = this.#q.ref.get(formatReference(ref)) as { image_id: Digest } | undefined;
      if (hit) return this.get(hit.image_id);
      if (ref.digest) {
        // A digest pin on a different repository name still names the same content.
        const byDigest = this.#db.prepare("SELECT image_id FROM image_refs WHERE kind = 'digest' AND ref LIKE ? LIMIT 1").get(`%@${ref.digest}`) as { image_id: Digest } | undefined;
        if (byDigest) return this.get(byDigest.image_id);
      }
    }
    const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(nameOrId);
    if (m) {
      const lo = `sha256:${m[1]}`;
      const rows = this.#q.byPrefix.all(lo, lo + 'g') as unknown as ImageRow[];
      if (rows.length > 1) throw invalidArgument(`ambiguous image ID prefix: ${nameOrId} matches more than one image`);
      if (rows.length === 1) return toRecord(rows[0]);
    }
    return undefined;
  }

  /**
   * Records an image and points the given refs at it, in one transaction.
   * Returns the IDs of images that lost a ref to this one.
   */
  create(img: NewImage, refs: Reference[] = [], digestRefs: Reference[] = []): { created: boolean; retagged: Digest[] } {
    const cfg = img.config;
    return transaction(this.#db, () => {
      const res = this.#q.insertImage.run(
        img.id, img.manifest, img.manifestMediaType, img.configMediaType, cfg.created ?? '',
        img.layers.reduce((n, l) => n + l.unpackedSize, 0),
        [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/'),
        JSON.stringify(cfg.config?.Labels ?? {}), img.parent ?? '', Date.now(),
      );
      const created = Number(res.changes) > 0;
      if (created) {
        img.layers.forEach((l, i) => this.#q.insertLayer.run(img.id, i, l.blob, l.diffId, l.size, l.unpackedSize, l.mediaType));
      }
      const retagged: Digest[] = [];
      for (const r of refs) {
        const prev = this.tag(img.id, r);
        if (prev && prev !== img.id) retagged.push(prev);
      }
      for (const r of digestRefs) this.#q.upsertRef.run(formatReference(r), img.id, 'digest', Date.now());
      return { created, retagged };
    });
  }

  /** Runs several changes as one transaction. */
  batch<T>(fn: () => T): T {
    return transaction(this.#db, fn);
  }

  /** Points a tag at an image; returns the image it pointed at before, if any. */
  tag(id: Digest, ref: Reference): Digest | undefined {
    if (ref.digest) throw invalidArgument(`refusing to create a tag with a digest reference`);
    const r = withDefaultTag(ref);
    const key = formatReference(r);
    const prev = this.#q.ref.get(key) as { image_id: Digest } | undefined;
    this.#q.upsertRef.run(key, id, 'tag', Date.now());
    return prev?.image_id;
  }

  /** Records `repo@sha256:…` as a name of an image (after a push, the digest the registry knows it by). */
  addDigestRef(id: Digest, ref: Reference): void {
    if (!ref.digest || ref.tag) throw invalidArgument('a digest reference has a digest and no tag');
    this.#q.upsertRef.run(formatReference(ref), id, 'digest', Date.now());
  }

  untag(ref: string): void {
    this.#q.deleteRef.run(ref);
  }

  /** Deletes the image record (its refs and layer rows go with it). Blobs are left to GC. */
  delete(id: Digest): void {
    this.#q.deleteImage.run(id);
    this.#configCache.delete(id);
  }

  /** A layer row of any image that holds this blob: how a pull knows a layer it already has. */
  layerByBlob(blob: Digest): LayerRecord | undefined {
    const l = this.#db.prepare('SELECT blob, diff_id, size, unpacked_size, media_type FROM image_layers WHERE blob = ? LIMIT 1').get(blob) as
      { blob: Digest; diff_id: Digest; size: number; unpacked_size: number; media_type: string } | undefined;
    return l && { blob: l.blob, diffId: l.diff_id, size: l.size, unpackedSize: l.unpacked_size, mediaType: l.media_type };
  }

  /** The refs (canonical, tag or digest) of every image that holds this blob: where a push may mount it from. */
  refsWithBlob(blob: Digest): string[] {
    return (this.#db.prepare(`SELECT DISTINCT r.ref AS ref FROM image_layers l JOIN image_refs r ON r.image_id = l.image_id WHERE l.blob = ?`)
      .all(blob) as { ref: string }[]).map((r) => r.ref);
  }

  /** Blobs (manifest, config, layers) each image needs: the GC's roots. */
  referencedBlobs(): Set<Digest> {
    const out = new Set<Digest>();
    for (const r of this.#db.prepare('SELECT id, manifest FROM images').all() as { id: Digest; manifest: Digest }[]) {
      out.add(r.id);
      out.add(r.manifest);
    }
    for (const r of this.#db.prepare('SELECT DISTINCT blob FROM image_layers').all() as { blob: Digest }[]) out.add(r.blob);
    for (const r of this.#db.prepare("SELECT DISTINCT index_digest FROM image_refs WHERE index_digest != ''").all() as { index_digest: Digest }[]) out.add(r.index_digest);
    return out;
  }

  /**
   * Points a tag at a multi-platform image: `id` is the member used where no platform is asked
   * for, and the index blob (in the content store) lists every platform's manifest.
   */
  tagIndex(id: Digest, ref: Reference, index: Digest, members: readonly Digest[]): Digest | undefined {
    return transaction(this.#db, () => {
      const prev = this.tag(id, ref);
      this.#q.setIndex.run(index, formatReference(withDefaultTag(ref)));
      const add = this.#db.prepare('INSERT OR IGNORE INTO index_members (index_digest, image_id) VALUES (?, ?)');
      for (const m of members) add.run(index, m);
      return prev;
    });
  }

  /** Images that are members of an index a tag names: tagged through it, never dangling. */
  indexMembers(): Set<Digest> {
    const rows = this.#db.prepare(`SELECT DISTINCT m.image_id AS id FROM index_members m
      JOIN image_refs r ON r.index_digest = m.index_digest`).all() as { id: Digest }[];
    return new Set(rows.map((r) => r.id));
  }

  /** The index a tag names, when it names a multi-platform image. */
  indexOf(nameOrRef: string): Digest | undefined {
    let ref: Reference;
    try {
      ref = withDefaultTag(parseReference(nameOrRef));
    } catch {
      return undefined;
    }
    return (this.#q.indexOf.get(formatReference(ref)) as { index_digest: Digest } | undefined)?.index_digest;
  }

  /** The image whose manifest is this digest (a member of an index). */
  byManifest(manifest: Digest): ImageRecord | undefined {
    const row = this.#q.byManifest.get(manifest) as ImageRow | undefined;
    return row && toRecord(row);
  }

  /** Diff ID lists of every image, for the snapshot GC. */
  layerChains(): Digest[][] {
    const out = new Map<string, Digest[]>();
    for (const r of this.#db.prepare('SELECT image_id, diff_id FROM image_layers ORDER BY image_id, idx').all() as { image_id: string; diff_id: Digest }[]) {
      let l = out.get(r.image_id);
      if (!l) out.set(r.image_id, (l = []));
      l.push(r.diff_id);
    }
    return [...out.values()];
  }
}

/** How Docker names a missing image in errors: `foo:latest`, or the input as given for IDs. */
export function displayName(nameOrId: string): string {
  try {
    const r = parseReference(nameOrId);
    return familiarString(withDefaultTag(r));
  } catch {
    return nameOrId;
  }
}
