import { posix } from 'node:path';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { type Digest, isDigest, sha256 } from '../common/digest.ts';
import { invalidArgument } from '../common/errors.ts';
import { readTar, writeTar, type TarWriteEntry } from '../common/tar.ts';
import type { ContentStore } from '../content/store.ts';
import { LayerScanner, type ScanResult } from '../diff/scan.ts';
import type { Lease } from '../metadata/leases.ts';
import {
  type Descriptor, type ImageConfig, type Index, type Manifest, MediaType,
  hostPlatform, isGzipLayer, isIndexType, isZstdLayer, platformMatches,
} from './oci.ts';
import { type Reference, familiarString, formatReference, parseReference, withDefaultTag } from './reference.ts';
import type { ImageRecord, ImageStore, LayerRecord, NewImage } from './store.ts';
import { manifestBytes } from './oci-image.ts';

/** Files at an archive's root that describe it rather than hold content. */
const METADATA_FILES = new Set(['manifest.json', 'index.json', 'oci-layout', 'repositories']);
const METADATA_MAX = 16 << 20;

interface ArchiveFile { digest: Digest; size: number; scan?: ScanResult }

export interface LoadedImage { id: Digest; tags: string[] }

export interface ArchiveDeps { content: ContentStore; images: ImageStore }

/**
 * Reads a docker-archive (`docker save`, old and Docker 25+ forms) or an OCI
 * image layout tar from a stream, in one pass. Every member goes into the
 * content store under the lease, verified against its name when the name is a
 * digest, and every would-be layer is scanned as it streams (diff ID, hostile
 * entries). Images are recorded in one transaction at the end, so a failure or
 * crash before then leaves no image; the unreferenced blobs are the GC's.
 */
export async function loadArchive(source: AsyncIterable<Uint8Array>, deps: ArchiveDeps, lease: Lease, signal?: AbortSignal): Promise<LoadedImage[]> {
  const files = new Map<string, ArchiveFile>();
  // Each member's fsync and rename run while the next member streams in; all are awaited before anything is recorded.
  const committing: Promise<void>[] = [];
  const meta = new Map<string, Buffer>();
  const links = new Map<string, string>(); // archive path → archive path

  // Every commit under way settles before an error goes out, so the caller's sweep sees all this load wrote.
  let failure: unknown;
  await readMembers().catch((e) => (failure = e));
  const settled = await Promise.allSettled(committing);
  if (failure) throw failure;
  for (const s of settled) if (s.status === 'rejected') throw s.reason;

  async function readMembers(): Promise<void> {
  for await (const entry of readTar(source, { signal })) {
    const h = entry.header;
    const name = archivePath(h.name);
    switch (h.type) {
      case 'directory':
        break;
      case 'symlink': {
        if (h.linkname.startsWith('/')) throw invalidArgument(`invalid archive: symlink ${h.name} points outside the archive`);
        const target = posix.normalize(posix.join(posix.dirname(name), h.linkname));
        if (target === '..' || target.startsWith('../')) throw invalidArgument(`invalid archive: symlink ${h.name} points outside the archive`);
        links.set(name, target);
        break;
      }
      case 'hardlink':
        links.set(name, archivePath(h.linkname));
        break;
      case 'file': {
        const base = posix.basename(name);
        if (METADATA_FILES.has(name) || (name.includes('/') && !name.startsWith('blobs/') && (base === 'json' || base === 'VERSION'))) {
          if (h.size > METADATA_MAX) throw invalidArgument(`invalid archive: ${name} is too large`);
          const parts: Buffer[] = [];
          for await (const c of entry.body) parts.push(Buffer.from(c));
          meta.set(name, Buffer.concat(parts));
        } else {
          const done = (await ingestMember(name, h.size, entry.body, deps.content, lease)).commit.then((f) => void files.set(name, f));
          done.catch(() => {}); // observed below; this only keeps an early failure from being reported as unhandled
          committing.push(done);
        }
        break;
      }
      default:
        throw invalidArgument(`invalid archive: ${h.name} is a ${h.type} device, which an image archive never holds`);
    }
  }
  }

  const resolve = (p: string): ArchiveFile => {
    let path = archivePath(p);
    for (let hops = 0; links.has(path); hops++) {
      if (hops > 16) throw invalidArgument(`invalid archive: too many links at ${p}`);
      path = links.get(path)!;
    }
    const f = files.get(path);
    if (!f) throw invalidArgument(`invalid archive: ${p} is missing`);
    return f;
  };

  const pending: { img: NewImage; refs: Reference[] }[] = [];
  if (meta.has('manifest.json')) {
    const entries = parseJson<DockerArchiveEntry[]>(meta.get('manifest.json')!, 'manifest.json');
    if (!Array.isArray(entries)) throw invalidArgument('invalid archive: manifest.json is not a list');
    const ociManifests = meta.has('index.json') ? await ociManifestsByConfig(meta.get('index.json')!, resolve, deps.content) : new Map();
    for (const e of entries) {
      if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers)) throw invalidArgument('invalid archive: manifest.json entry lacks Config or Layers');
      const cfgFile = resolve(e.Config);
      const layers = e.Layers.map((p) => layerRecord(p, resolve(p)));
      const refs = (e.RepoTags ?? []).map((t) => withDefaultTag(parseReference(t)));
      const img = await imageFrom(cfgFile, layers, deps, lease, ociManifests.get(cfgFile.digest));
      pending.push({ img, refs });
    }
  } else if (meta.has('index.json')) {
    const index = parseJson<Index>(meta.get('index.json')!, 'index.json');
    for (const desc of await manifestDescriptors(index, resolve, deps.content)) {
      const manifest = parseJson<Manifest>(await deps.content.readBytes(resolve(blobPath(desc.digest)).digest), desc.digest);
      const layers = (manifest.layers ?? []).map((l) => layerRecord(blobPath(l.digest), resolve(blobPath(l.digest))));
      const img = await imageFrom(resolve(blobPath(manifest.config.digest)), layers, deps, lease, { digest: desc.digest, mediaType: desc.mediaType ?? manifest.mediaType ?? MediaType.OciManifest, manifest });
      pending.push({ img, refs: ociRefs(desc) });
    }
  } else {
    throw invalidArgument('invalid archive: it has neither manifest.json nor index.json; is this an image archive?');
  }

  deps.images.batch(() => {
    for (const p of pending) deps.images.create(p.img, p.refs);
  });
  return pending.map((p) => ({ id: p.img.id, tags: p.refs.map((r) => familiarString(r)) }));
}

interface DockerArchiveEntry { Config: string; RepoTags: string[] | null; Layers: string[] }

function archivePath(name: string): string {
  const p = posix.normalize(name.replace(/^\.\//, ''));
  if (p.startsWith('/') || p === '..' || p.startsWith('../')) throw invalidArgument(`invalid archive: entry ${name} points outside the archive`);
  return p.replace(/\/$/, '');
}

const blobPath = (d: Digest) => `blobs/${d.replace(':', '/')}`;

/** Streams one member into the store; resolves once its bytes are read, with its commit still under way. */
async function ingestMember(name: string, size: number, body: AsyncIterable<Uint8Array>, content: ContentStore, lease: Lease): Promise<{ commit: Promise<ArchiveFile> }> {
  const m = /^blobs\/(sha256)\/([a-f0-9]{64})$/.exec(name);
  const expected = m ? (`${m[1]}:${m[2]}` as Digest) : undefined;
  const ing = await content.ingest();
  let scanner: LayerScanner | undefined;
  let first = true;
  try {
    for await (const chunk of body) {
      if (first) {
        first = false;
        // JSON (configs, manifests) is never a layer; anything else might be.
        if (chunk[0] !== 0x7b) scanner = new LayerScanner();
      }
      await Promise.all([ing.write(chunk), scanner?.push(chunk)]);
    }
  } catch (e) {
    await ing.abort();
    throw e;
  }
  const commit = (async () => {
    try {
      const scan = await scanner?.finish();
      const info = await ing.commit({ digest: expected, size }, (d) => lease.blobs.add(d));
      return { digest: info.digest, size: info.size, scan };
    } catch (e) {
      await ing.abort();
      if (e instanceof Error && /mismatch/.test(e.message)) throw invalidArgument(`invalid archive: ${name}: ${e.message}`, e);
      throw e;
    }
  })();
  return { commit };
}

function layerRecord(path: string, f: ArchiveFile): LayerRecord {
  if (!f.scan) throw invalidArgument(`invalid layer ${path}: not a tar archive`);
  if (f.scan.error) throw invalidArgument(`invalid layer ${path}: ${f.scan.error.message}`, f.scan.error);
  const mediaType = f.scan.compression === 'gzip' ? MediaType.OciLayerGzip : f.scan.compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
  return { blob: f.digest, diffId: f.scan.diffId ?? f.digest, size: f.size, unpackedSize: f.scan.size, mediaType };
}

interface GivenManifest { digest: Digest; mediaType: string; manifest: Manifest }

/** Builds the image record from a config and its layers, checking they agree; writes a manifest if none came with them. */
async function imageFrom(
  cfgFile: ArchiveFile, layers: LayerRecord[], deps: ArchiveDeps, lease: Lease, given?: GivenManifest,
): Promise<NewImage> {
  const config = parseJson<ImageConfig>(await deps.content.readBytes(cfgFile.digest), `config ${cfgFile.digest}`);
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || typeof config.architecture !== 'string' || typeof config.os !== 'string') {
    throw invalidArgument(`invalid image config ${cfgFile.digest}: it lacks rootfs.diff_ids, architecture or os`);
  }
  if (diffIds.length !== layers.length) {
    throw invalidArgument(`invalid image ${cfgFile.digest}: the config names ${diffIds.length} layers but the archive has ${layers.length}`);
  }
  layers.forEach((l, i) => {
    if (l.diffId !== diffIds[i]) throw invalidArgument(`invalid image ${cfgFile.digest}: layer ${i} has diff ID ${l.diffId}, the config says ${diffIds[i]}`);
  });
  let manifestDigest: Digest;
  let manifestMediaType: string;
  if (given && sameLayers(given.manifest, cfgFile.digest, layers)) {
    manifestDigest = given.digest;
    manifestMediaType = given.mediaType;
  } else {
    const bytes = manifestBytes(cfgFile, layers, MediaType.OciConfig);
    manifestDigest = (await deps.content.writeBytes(bytes, undefined, (d) => lease.blobs.add(d))).digest;
    manifestMediaType = MediaType.OciManifest;
  }
  return {
    id: cfgFile.digest,
    manifest: manifestDigest,
    manifestMediaType,
    configMediaType: given?.manifest.config.mediaType ?? MediaType.OciConfig,
    config,
    layers,
  };
}

function sameLayers(m: Manifest, config: Digest, layers: LayerRecord[]): boolean {
  return m.config?.digest === config && Array.isArray(m.layers) && m.layers.length === layers.length && m.layers.every((l, i) => l.digest === layers[i].blob);
}

async function manifestDescriptors(index: Index, resolve: (p: string) => ArchiveFile, content: ContentStore, depth = 0): Promise<Descriptor[]> {
  if (!Array.isArray(index?.manifests)) throw invalidArgument('invalid archive: index.json has no manifests');
  if (depth > 4) throw invalidArgument('invalid archive: indexes nest too deeply');
  const out: Descriptor[] = [];
  for (const d of index.manifests) {
    if (!isDigest(d?.digest)) throw invalidArgument(`invalid archive: bad descriptor digest ${d?.digest}`);
    if (isIndexType(d.mediaType)) {
      const inner = parseJson<Index>(await content.readBytes(resolve(blobPath(d.digest)).digest), d.digest);
      const children = await manifestDescriptors(inner, resolve, content, depth + 1);
      // A multi-platform image loads as the host's platform, as Docker's classic store does.
      const host = hostPlatform();
      const pick = children.find((c) => c.platform && platformMatches(host, c.platform)) ?? (children.length === 1 ? children[0] : undefined);
      if (!pick) throw invalidArgument(`invalid archive: no manifest for platform ${host.os}/${host.architecture} in ${d.digest}`);
      out.push({ ...pick, annotations: { ...pick.annotations, ...d.annotations } });
    } else {
      out.push(d);
    }
  }
  return out;
}

async function ociManifestsByConfig(indexBytes: Buffer, resolve: (p: string) => ArchiveFile, content: ContentStore): Promise<Map<Digest, GivenManifest>> {
  const out = new Map<Digest, GivenManifest>();
  try {
    for (const d of await manifestDescriptors(parseJson<Index>(indexBytes, 'index.json'), resolve, content)) {
      const manifest = parseJson<Manifest>(await content.readBytes(resolve(blobPath(d.digest)).digest), d.digest);
      out.set(manifest.config.digest, { digest: d.digest, mediaType: d.mediaType, manifest });
    }
  } catch {
    // manifest.json is authoritative in a docker-archive; a bad index only costs the original manifest digest.
  }
  return out;
}

function ociRefs(desc: Descriptor): Reference[] {
  const a = desc.annotations ?? {};
  for (const candidate of [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']]) {
    if (!candidate || !/[:/]/.test(candidate)) continue;
    try {
      const r = parseReference(candidate);
      if (!r.digest) return [withDefaultTag(r)];
    } catch { /* a bare tag or a malformed name: load untagged */ }
  }
  return [];
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`invalid archive: ${what} is not valid JSON`, e);
  }
}

export interface SaveItem { image: ImageRecord; tags: Reference[] }

/**
 * Writes images as one tar in Docker 25's combined form: an OCI image layout
 * (index.json, oci-layout, blobs/sha256/…) that is also a docker-archive
 * (manifest.json pointing into blobs/). Layers go out uncompressed, as
 * `docker save` writes them; each blob appears once.
 */
export async function* saveArchive(items: SaveItem[], deps: ArchiveDeps, signal?: AbortSignal): AsyncGenerator<Buffer> {
  yield* writeTar(saveEntries(items, deps, signal));
}

async function* saveEntries(items: SaveItem[], deps: ArchiveDeps, signal?: AbortSignal): AsyncGenerator<TarWriteEntry> {
  const written = new Set<string>();
  const dockerManifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  const blobEntry = (d: Digest, size: number, body: Buffer | AsyncIterable<Buffer>): TarWriteEntry => ({
    header: { name: blobPath(d), type: 'file', mode: 0o644, size, mtime: 0 },
    body,
  });
  yield { header: { name: 'blobs/', type: 'directory', mode: 0o755, mtime: 0 } };
  yield { header: { name: 'blobs/sha256/', type: 'directory', mode: 0o755, mtime: 0 } };
  for (const { image, tags } of items) {
    signal?.throwIfAborted();
    const layers = deps.images.layers(image.id);
    const out: { blob: Digest; size: number; mediaType: string }[] = [];
    for (const l of layers) {
      const plain = l.mediaType === MediaType.OciLayer || l.mediaType === MediaType.DockerLayer;
      const size = l.unpackedSize;
      if (!written.has(l.diffId)) {
        written.add(l.diffId);
        yield blobEntry(l.diffId, size, plain ? deps.content.readStream(l.blob) : decompress(deps.content.readStream(l.blob), l.mediaType));
      }
      out.push({ blob: l.diffId, size, mediaType: MediaType.OciLayer });
    }
    const config = await deps.content.readBytes(image.id);
    if (!written.has(image.id)) {
      written.add(image.id);
      yield blobEntry(image.id, config.length, config);
    }
    const mbytes = manifestBytes({ digest: image.id, size: config.length }, out, image.configMediaType === MediaType.DockerConfig ? MediaType.OciConfig : image.configMediaType);
    const mdigest = sha256(mbytes);
    if (!written.has(mdigest)) {
      written.add(mdigest);
      yield blobEntry(mdigest, mbytes.length, mbytes);
    }
    const refs = tags.map((t) => familiarString(t));
    dockerManifest.push({ Config: blobPath(image.id), RepoTags: refs.length ? refs : null, Layers: out.map((l) => blobPath(l.blob)) });
    const desc = (annotations?: Record<string, string>): Descriptor => ({ mediaType: MediaType.OciManifest, digest: mdigest, size: mbytes.length, ...(annotations ? { annotations } : {}) });
    if (tags.length === 0) index.manifests.push(desc());
    for (const t of tags) index.manifests.push(desc({ 'io.containerd.image.name': formatReference(t), 'org.opencontainers.image.ref.name': t.tag ?? 'latest' }));
  }
  const json = (name: string, v: unknown): TarWriteEntry => {
    const body = Buffer.from(JSON.stringify(v) + (name.endsWith('.json') ? '\n' : ''));
    return { header: { name, type: 'file', mode: 0o644, size: body.length, mtime: 0 }, body };
  };
  yield json('index.json', index);
  yield json('manifest.json', dockerManifest);
  yield json('oci-layout', { imageLayoutVersion: '1.0.0' });
}

function decompress(s: Readable, mediaType: string): Readable {
  if (isGzipLayer(mediaType)) return s.pipe(createGunzip());
  if (isZstdLayer(mediaType)) return s.pipe(createZstdDecompress());
  throw invalidArgument(`unsupported layer media type ${mediaType}`);
}
