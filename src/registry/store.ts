// The registry's content model over a storage driver: blobs linked into repositories,
// manifests with their tags and referrers. Everything is content-addressed and immutable
// except tags, so the small in-memory manifest cache needs no invalidation.
import { type Digest, isDigest, sha256 } from '../common/digest.ts';
import { isIndexType, MediaType } from '../images/oci.ts';
import { registryError } from './errors.ts';
import { hexDigest, layout, REPOSITORIES } from './layout.ts';
import { isTag } from './names.ts';
import type { StorageDriver } from './storage/driver.ts';

/** The spec's recommended ceiling: manifests larger than this are refused. */
export const MANIFEST_MAX = 4 << 20;

export const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList]);

export interface ReferrerDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

interface DescriptorLike {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  urls?: unknown;
}

/** What the store reads out of a manifest: the parts that reference other content. */
export interface ManifestRefs {
  mediaType: string;
  /** Config and layers of an image manifest. */
  blobs: Digest[];
  /** Child manifests of an index. */
  manifests: Digest[];
  subject?: Digest;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Parses and checks a manifest's shape; MANIFEST_INVALID for anything that is not one. */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ManifestRefs {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw registryError('MANIFEST_INVALID', `manifest is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw registryError('MANIFEST_INVALID', 'manifest is not a JSON object');
  if (doc.schemaVersion !== 2) throw registryError('MANIFEST_INVALID', `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const given = contentType && MANIFEST_TYPES.has(contentType) ? contentType : undefined;
  if (declared && given && declared !== given) throw registryError('MANIFEST_INVALID', `mediaType ${declared} does not match Content-Type ${given}`);
  const mediaType = given ?? declared ?? (Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest);
  if (!MANIFEST_TYPES.has(mediaType)) throw registryError('MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`);
  const desc = (v: unknown, what: string): DescriptorLike & { digest: Digest } => {
    const d = v as DescriptorLike;
    if (typeof d !== 'object' || d === null || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number' || typeof d.mediaType !== 'string') {
      throw registryError('MANIFEST_INVALID', `${what} is not a valid descriptor`);
    }
    return d as DescriptorLike & { digest: Digest };
  };
  const refs: ManifestRefs = { mediaType, blobs: [], manifests: [] };
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw registryError('MANIFEST_INVALID', 'index has no manifests array');
    doc.manifests.forEach((m, i) => refs.manifests.push(desc(m, `manifests[${i}]`).digest));
  } else {
    const config = desc(doc.config, 'config');
    refs.blobs.push(config.digest);
    if (!Array.isArray(doc.layers)) throw registryError('MANIFEST_INVALID', 'manifest has no layers array');
    doc.layers.forEach((l, i) => {
      const d = desc(l, `layers[${i}]`);
      // Foreign layers (with urls) live elsewhere by design; the registry need not hold them.
      if (!Array.isArray(d.urls) || d.urls.length === 0) refs.blobs.push(d.digest);
    });
    if (typeof doc.artifactType !== 'string') refs.artifactType = config.mediaType as string;
  }
  if (typeof doc.artifactType === 'string') refs.artifactType = doc.artifactType;
  if (doc.subject !== undefined) refs.subject = desc(doc.subject, 'subject').digest;
  if (doc.annotations && typeof doc.annotations === 'object') refs.annotations = doc.annotations as Record<string, string>;
  return refs;
}

/** Bounded by total bytes: manifests are small and immutable by digest. */
class ManifestCache {
  #map = new Map<Digest, Buffer>();
  #bytes = 0;
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(d: Digest): Buffer | undefined {
    return this.#map.get(d);
  }
  set(d: Digest, b: Buffer): void {
    if (b.length > this.#max / 8 || this.#map.has(d)) return;
    this.#map.set(d, b);
    this.#bytes += b.length;
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.#max) break;
      this.#map.delete(k);
      this.#bytes -= v.length;
    }
  }
}

export class RegistryStore {
  readonly driver: StorageDriver;
  #manifests = new ManifestCache(32 << 20);

  constructor(driver: StorageDriver) {
    this.driver = driver;
  }

  // ---------------------------------------------------------------- blobs

  /** The blob's size when it exists and belongs to the repository (as a layer or a manifest). */
  async blobSize(name: string, d: Digest): Promise<number | undefined> {
    const linked = (await this.driver.stat(layout.layerLink(name, d))) ?? (await this.driver.stat(layout.revision(name, d)));
    if (!linked) return undefined;
    return (await this.driver.stat(layout.blob(d)))?.size;
  }

  async hasBlobData(d: Digest): Promise<boolean> {
    return (await this.driver.stat(layout.blob(d))) !== undefined;
  }

  linkBlob(name: string, d: Digest): Promise<void> {
    return this.driver.putContent(layout.layerLink(name, d), '');
  }

  /** Removes the blob from the repository; its bytes stay until gc. False when it was not there. */
  async unlinkBlob(name: string, d: Digest): Promise<boolean> {
    if (!(await this.driver.stat(layout.layerLink(name, d)))) return false;
    await this.driver.delete(layout.layerLink(name, d));
    return true;
  }

  // ---------------------------------------------------------------- manifests

  /** Resolves a tag or digest in a repository to the manifest, or undefined. */
  async getManifest(name: string, ref: string): Promise<StoredManifest | undefined> {
    let digest: Digest;
    if (isDigest(ref)) digest = ref;
    else {
      const t = await this.driver.getContent(layout.tag(name, ref));
      const s = t?.toString('utf8').trim();
      if (!s || !isDigest(s)) return undefined;
      digest = s;
    }
    const link = await this.driver.getContent(layout.revision(name, digest));
    if (!link) return undefined;
    let bytes = this.#manifests.get(digest);
    if (!bytes) {
      bytes = await this.driver.getContent(layout.blob(digest));
      if (!bytes) return undefined;
      this.#manifests.set(digest, bytes);
    }
    return { digest, mediaType: link.toString('utf8') || MediaType.OciManifest, bytes };
  }

  /**
   * Stores a manifest under a tag or its digest after checking that everything it references
   * is in the repository. Returns its digest and subject.
   */
  async putManifest(name: string, ref: string, bytes: Buffer, contentType: string | undefined): Promise<{ digest: Digest; subject?: Digest }> {
    const digest = sha256(bytes);
    if (isDigest(ref) && ref !== digest) throw registryError('DIGEST_INVALID', `manifest digest ${digest} does not match ${ref}`);
    if (!isDigest(ref) && !isTag(ref)) throw registryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(ref.slice(0, 200))}`);
    const refs = parseManifest(bytes, contentType);
    const missing: Digest[] = [];
    await Promise.all(refs.blobs.map(async (d) => {
      if ((await this.blobSize(name, d)) === undefined) missing.push(d);
    }));
    await Promise.all(refs.manifests.map(async (d) => {
      if (!(await this.driver.stat(layout.revision(name, d)))) missing.push(d);
    }));
    if (missing.length) throw registryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length === 1 ? 'a blob' : 'blobs'} unknown to the repository: ${missing.join(', ')}`, { detail: { digest: missing[0] } });
    if (!(await this.hasBlobData(digest))) await this.driver.putContent(layout.blob(digest), bytes);
    // The revision link last among the content: a manifest is visible only once its bytes are whole.
    await this.driver.putContent(layout.revision(name, digest), refs.mediaType);
    if (refs.subject) {
      const desc: ReferrerDescriptor = { mediaType: refs.mediaType, digest, size: bytes.length };
      if (refs.artifactType) desc.artifactType = refs.artifactType;
      if (refs.annotations) desc.annotations = refs.annotations;
      await this.driver.putContent(layout.referrer(name, refs.subject, digest), JSON.stringify(desc));
    }
    if (!isDigest(ref)) await this.driver.putContent(layout.tag(name, ref), digest);
    return { digest, subject: refs.subject };
  }

  /** Deletes a tag; false when there was none. */
  async deleteTag(name: string, tag: string): Promise<boolean> {
    if (!(await this.driver.stat(layout.tag(name, tag)))) return false;
    await this.driver.delete(layout.tag(name, tag));
    return true;
  }

  /** Deletes a manifest from the repository with every tag on it and its referrer entry; false when absent. */
  async deleteManifest(name: string, digest: Digest): Promise<boolean> {
    const m = await this.getManifest(name, digest);
    if (!m) return false;
    for (const tag of await this.driver.list(layout.tags(name))) {
      const t = (await this.driver.getContent(layout.tag(name, tag)))?.toString('utf8').trim();
      if (t === digest) await this.driver.delete(layout.tag(name, tag));
    }
    try {
      const refs = parseManifest(m.bytes, m.mediaType);
      if (refs.subject) await this.driver.delete(layout.referrer(name, refs.subject, digest));
    } catch {
      // A manifest that no longer parses has no referrer entry to remove.
    }
    await this.driver.delete(layout.revision(name, digest));
    return true;
  }

  // ---------------------------------------------------------------- discovery

  async repositoryExists(name: string): Promise<boolean> {
    const [m, l] = await Promise.all([this.driver.stat(`${layout.repository(name)}/_manifests`), this.driver.stat(`${layout.repository(name)}/_layers`)]);
    return Boolean(m || l);
  }

  /** The repository's tags in lexical order, or undefined when the repository is unknown. */
  async tags(name: string): Promise<string[] | undefined> {
    if (!(await this.repositoryExists(name))) return undefined;
    return (await this.driver.list(layout.tags(name))).filter(isTag).sort();
  }

  /** Every repository that holds a manifest or a blob, in lexical order. */
  async catalog(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (prefix: string, name: string): Promise<void> => {
      const children = await this.driver.list(prefix);
      if (name && (children.includes('_manifests') || children.includes('_layers'))) out.push(name);
      await Promise.all(children.filter((c) => !c.startsWith('_')).map((c) => walk(`${prefix}/${c}`, name ? `${name}/${c}` : c)));
    };
    await walk(REPOSITORIES, '');
    return out.sort();
  }

  /** Descriptors of the manifests in the repository whose subject is `subject`. */
  async referrers(name: string, subject: Digest): Promise<ReferrerDescriptor[]> {
    const dir = layout.referrers(name, subject);
    const out: ReferrerDescriptor[] = [];
    for (const hex of (await this.driver.list(dir)).sort()) {
      const d = hexDigest(hex);
      if (!isDigest(d)) continue;
      const raw = await this.driver.getContent(layout.referrer(name, subject, d));
      // The revision may have been deleted between the listing and here.
      if (raw && (await this.driver.stat(layout.revision(name, d)))) out.push(JSON.parse(raw.toString('utf8')));
    }
    return out;
  }
}
