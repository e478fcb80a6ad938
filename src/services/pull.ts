import { createHash } from 'node:crypto';
import { type Digest, isDigest } from '../common/digest.ts';
import { invalidArgument, isBerthError, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContentStore } from '../content/store.ts';
import type { Credentials, FetchedManifest, RegistryClient, Repository } from '../distribution/types.ts';
import {
  type Descriptor, type ImageConfig, type Index, type Manifest, type Platform,
  chainIds, formatPlatform, hostPlatform, isIndexType, isManifestType, normalizePlatform, platformMatches,
} from '../images/oci.ts';
import { type FetchedLayer, fetchLayer } from '../images/pull-layer.ts';
import { type Reference, familiarRepository, familiarString, withDefaultTag } from '../images/reference.ts';
import type { ImageStore, LayerRecord, NewImage } from '../images/store.ts';
import type { Unpacker } from '../images/unpack.ts';
import type { GarbageCollector } from '../metadata/gc.ts';
import type { Lease, LeaseManager } from '../metadata/leases.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { EventBus } from './events.ts';
import { Limiter, type ProgressSink, ProgressThrottle, layerStatus, shortDigest } from './transfer.ts';

/** Makes a registry client for one operation: its credentials (from X-Registry-Auth) and its abort signal. */
export type RegistryClientFactory = (credentials?: Credentials, signal?: AbortSignal) => RegistryClient;

export interface PullOptions {
  /** The platform to pick from an index; the host's when unset. */
  platform?: Platform;
  /** Pull every tag of the repository (`docker pull -a`); the reference must have neither tag nor digest. */
  allTags?: boolean;
  credentials?: Credentials;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface PullResult {
  /** The image ID of each reference pulled. */
  images: { ref: Reference; id: Digest; repoDigest: Digest }[];
}

/** What `GET /distribution/{name}/json` answers: the top descriptor and the platforms it offers. */
export interface DistributionInfo {
  Descriptor: { mediaType: string; digest: Digest; size: number };
  Platforms: Platform[];
}

/** Configs are small JSON documents; a larger "config" is refused before it is read into memory. */
const CONFIG_MAX = 8 << 20;

/**
 * `docker pull`: resolves a reference on its registry (an index to the
 * platform wanted), then downloads every missing layer at once (bounded),
 * each streamed into the content store and unpacked into its overlay
 * snapshot as it arrives. The image is recorded, tagged and given its repo
 * digest only when every blob matched its digest and every layer its diff ID;
 * a failure or a cancel leaves the store as it was.
 */
export class PullService {
  #images: ImageStore;
  #content: ContentStore;
  #snapshots: OverlaySnapshotter;
  #unpacker: Unpacker;
  #leases: LeaseManager;
  #gc: GarbageCollector;
  #events: EventBus;
  #log: Logger;
  #registry: RegistryClientFactory;
  #concurrency: number;

  constructor(deps: {
    images: ImageStore; content: ContentStore; snapshots: OverlaySnapshotter; unpacker: Unpacker; leases: LeaseManager;
    gc: GarbageCollector; events: EventBus; log: Logger; registry: RegistryClientFactory; concurrency?: number;
  }) {
    this.#images = deps.images;
    this.#content = deps.content;
    this.#snapshots = deps.snapshots;
    this.#unpacker = deps.unpacker;
    this.#leases = deps.leases;
    this.#gc = deps.gc;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#registry = deps.registry;
    this.#concurrency = deps.concurrency ?? 6;
  }

  async pull(ref: Reference, opts: PullOptions = {}): Promise<PullResult> {
    const progress = opts.progress ?? (() => {});
    // One controller for the whole pull: a failed layer stops its siblings, and the caller's cancel stops all.
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const client = this.#registry(opts.credentials, ac.signal);
      const repo = client.repository(ref, ['pull']);
      if (!opts.allTags) {
        const one = withDefaultTag(ref);
        const r = await this.#pullOne(repo, one, opts.platform, progress, ac);
        progress({ status: `Status: ${r.updated ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarString(one)}` });
        return { images: [r] };
      }
      if (ref.tag || ref.digest) throw invalidArgument('tag can\'t be used with --all-tags/-a');
      const tags = await repo.listTags();
      if (tags.length === 0) throw notFound(`no tags found for ${familiarRepository(ref)}`);
      const images = [];
      let updated = false;
      for (const tag of tags) {
        const r = await this.#pullOne(repo, { ...ref, tag }, opts.platform, progress, ac);
        updated ||= r.updated;
        images.push(r);
      }
      progress({ status: `Status: ${updated ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarRepository(ref)}` });
      return { images };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Pulls one tag or digest; `updated` is false when nothing was downloaded and the name already pointed at this image. */
  async #pullOne(repo: Repository, ref: Reference, platform: Platform | undefined, progress: ProgressSink, ac: AbortController) {
    const tagOrDigest = ref.digest ?? ref.tag!;
    const top = await repo.getManifest(tagOrDigest);
    const resolved = await this.#resolvePlatform(repo, top, platform);
    progress({ status: `Pulling from ${repo.endpoint.repository}`, id: tagOrDigest });

    const lease = this.#leases.create();
    try {
      const r = await this.#store(repo, ref, top.digest, resolved, platform, progress, lease, ac);
      progress({ status: `Digest: ${top.digest}` });
      return r;
    } catch (e) {
      ac.abort(e);
      lease.release();
      // What this pull wrote and nothing references goes before the error does: the store is as it was.
      await this.#gc.collect().catch((err) => this.#log.error('gc after a failed pull failed', { err }));
      throw e;
    } finally {
      lease.release();
    }
  }

  /** An index becomes the manifest for the platform wanted; a manifest must be of the platform asked for, if one was. */
  async #resolvePlatform(repo: Repository, top: FetchedManifest, platform: Platform | undefined): Promise<FetchedManifest> {
    const mediaType = top.mediaType || (parseJson<{ mediaType?: string }>(top.bytes, 'manifest').mediaType ?? '');
    if (isManifestType(mediaType)) return { ...top, mediaType };
    if (!isIndexType(mediaType)) throw invalidArgument(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
    const index = parseJson<Index>(top.bytes, 'manifest list');
    const want = platform ?? hostPlatform();
    const desc = pickPlatform(index.manifests ?? [], want);
    if (!desc) throw notFound(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
    const m = await repo.getManifest(desc.digest);
    if (m.digest !== desc.digest) throw invalidArgument(`manifest verification failed for digest ${desc.digest}`);
    const mt = m.mediaType || desc.mediaType;
    if (!isManifestType(mt)) throw invalidArgument(`unsupported manifest media type ${JSON.stringify(mt)} in the manifest list`);
    return { ...m, mediaType: mt };
  }

  async #store(
    repo: Repository, ref: Reference, repoDigest: Digest, fm: FetchedManifest, platform: Platform | undefined,
    progress: ProgressSink, lease: Lease, ac: AbortController,
  ): Promise<{ ref: Reference; id: Digest; repoDigest: Digest; updated: boolean }> {
    const manifest = parseJson<Manifest>(fm.bytes, 'manifest');
    if (!manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) {
      throw invalidArgument(`manifest ${fm.digest} has no config or no layers`);
    }
    const configBytes = await this.#configBytes(repo, manifest.config, lease);
    const config = parseJson<ImageConfig>(configBytes, 'image config');
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw invalidArgument(`image config ${manifest.config.digest} lists ${diffIds.length} diff IDs for ${manifest.layers.length} layers`);
    }
    const have = normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant });
    if (platform && !platformMatches(platform, have)) {
      throw notFound(`image with reference ${familiarString(ref)} was found but does not match the specified platform: wanted ${formatPlatform(platform)}, actual: ${formatPlatform(have)}`);
    }

    const { records, downloaded } = await this.#layers(repo, manifest.layers, diffIds, progress, lease, ac);
    // Layers whose blob was here but whose snapshot was not: unpacked from the local blob.
    await this.#unpacker.unpack(records, ac.signal);
    const manifestBlob = await this.#content.writeBytes(fm.bytes, fm.digest, (d) => lease.blobs.add(d));
    const id = manifest.config.digest;
    const img: NewImage = {
      id, manifest: manifestBlob.digest, manifestMediaType: fm.mediaType, configMediaType: manifest.config.mediaType,
      config, layers: records,
    };
    const digestRef: Reference = { domain: ref.domain, path: ref.path, digest: repoDigest };
    const before = this.#images.find(familiarString(ref.digest ? digestRef : ref))?.id;
    ac.signal.throwIfAborted();
    this.#images.create(img, ref.tag && !ref.digest ? [ref] : [], [digestRef]);
    this.#events.emit('image', 'pull', familiarString(ref), { name: familiarRepository(ref) });
    return { ref, id, repoDigest, updated: downloaded > 0 || before !== id };
  }

  /** The config blob: from the store when present, else fetched whole and checked against its digest. */
  async #configBytes(repo: Repository, desc: Descriptor, lease: Lease | undefined): Promise<Buffer> {
    lease?.blobs.add(desc.digest);
    if (await this.#content.info(desc.digest)) return this.#content.readBytes(desc.digest);
    if (desc.size > CONFIG_MAX) throw invalidArgument(`image config ${desc.digest} is ${desc.size} bytes, more than a config may be`);
    const { stream } = await repo.getBlob(desc.digest);
    const parts: Buffer[] = [];
    let n = 0;
    const hash = createHash('sha256');
    for await (const c of stream) {
      n += (c as Buffer).length;
      if (n > desc.size) {
        stream.destroy();
        break;
      }
      hash.update(c as Buffer);
      parts.push(c as Buffer);
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (n !== desc.size || got !== desc.digest) throw invalidArgument(`image config verification failed for digest ${desc.digest}`);
    const bytes = Buffer.concat(parts);
    if (lease) await this.#content.writeBytes(bytes, desc.digest, (d) => lease.blobs.add(d));
    return bytes;
  }

  /**
   * Every layer at once, bounded: present ones are reused, missing ones
   * downloaded and unpacked side by side. Snapshots are committed in chain
   * order (a layer's parent first) once each is verified.
   */
  async #layers(repo: Repository, descs: Descriptor[], diffIds: Digest[], progress: ProgressSink, lease: Lease, ac: AbortController) {
    const chain = chainIds(diffIds);
    const limiter = new Limiter(this.#concurrency);
    const throttle = new ProgressThrottle(progress);
    let downloaded = 0;
    let queued = 0;
    const plans = await Promise.all(descs.map(async (desc, i) => {
      if (!isDigest(desc.digest) || typeof desc.size !== 'number' || desc.size < 0) throw invalidArgument(`manifest has an invalid layer descriptor`);
      lease.blobs.add(desc.digest);
      lease.snapshots.add(chain[i]);
      const snapshot = this.#snapshots.stat(chain[i])?.kind === 'committed';
      const known = (await this.#content.info(desc.digest)) ? this.#images.layerByBlob(desc.digest) : undefined;
      return { desc, i, snapshot, known: known && known.diffId === diffIds[i] ? { ...known, mediaType: desc.mediaType } : undefined };
    }));
    for (const p of plans) progress(layerStatus(shortDigest(p.desc.digest), p.known ? 'Already exists' : 'Pulling fs layer'));
    for (const p of plans) if (!p.known && queued++ >= this.#concurrency) progress(layerStatus(shortDigest(p.desc.digest), 'Waiting'));

    const fetched = plans.map((p) => {
      if (p.known) return Promise.resolve<FetchedLayer>({ record: p.known, appliedSize: 0 });
      const id = shortDigest(p.desc.digest);
      return limiter.run(async () => {
        const f = await fetchLayer({ content: this.#content, snapshots: this.#snapshots, lease }, async (offset) => (await repo.getBlob(p.desc.digest, offset)).stream, {
          desc: p.desc, diffId: diffIds[p.i], unpack: !p.snapshot, signal: ac.signal,
          onProgress: (n) => throttle.update(id, 'Downloading', n, p.desc.size),
          onRetry: (offset, err) => this.#log.warn('layer download interrupted; resuming', { digest: p.desc.digest, offset, err: String(err) }),
        });
        downloaded++;
        progress(layerStatus(id, 'Verifying Checksum'));
        progress(layerStatus(id, 'Download complete'));
        return f;
      });
    });
    // A failure anywhere stops the others, and everything settles before the error goes out.
    fetched.forEach((f) => f.catch((e) => ac.abort(e)));

    const committed: Promise<void>[] = [];
    plans.forEach((p, i) => {
      committed.push((async () => {
        const f = await fetched[i];
        if (i > 0) await committed[i - 1];
        if (f.snapshotKey) {
          progress({ ...layerStatus(shortDigest(p.desc.digest), 'Extracting'), progressDetail: { current: f.record.size, total: f.record.size } });
          await this.#commitSnapshot(chain[i], i > 0 ? chain[i - 1] : '', f);
        }
        if (!p.known) progress(layerStatus(shortDigest(p.desc.digest), 'Pull complete'));
      })());
    });
    const settled = await Promise.allSettled([...fetched, ...committed]);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      // The first cause, not a sibling's "aborted".
      throw ac.signal.reason instanceof Error ? ac.signal.reason : (failed as PromiseRejectedResult).reason;
    }
    const records: LayerRecord[] = await Promise.all(fetched).then((fs) => fs.map((f) => f.record));
    return { records, downloaded };
  }

  async #commitSnapshot(chainId: string, parent: string, f: FetchedLayer): Promise<void> {
    const key = f.snapshotKey!;
    if (this.#snapshots.stat(chainId)?.kind === 'committed') {
      // Another pull or unpack made the same layer meanwhile: theirs is as good as ours.
      await this.#snapshots.remove(key);
      return;
    }
    try {
      await this.#snapshots.commit(chainId, key, { parent, size: f.appliedSize });
    } catch (e) {
      // Committed by a concurrent pull between the check and now: the same verified content.
      if (!isBerthError(e, 'AlreadyExists')) throw e;
      await this.#snapshots.remove(key);
    }
  }

  /** `GET /distribution/{name}/json`: what the registry holds under a name, without pulling it. */
  async inspect(ref: Reference, credentials?: Credentials, signal?: AbortSignal): Promise<DistributionInfo> {
    const one = withDefaultTag(ref);
    const repo = this.#registry(credentials, signal).repository(one, ['pull']);
    const m = await repo.getManifest(one.digest ?? one.tag!);
    const mediaType = m.mediaType || (parseJson<{ mediaType?: string }>(m.bytes, 'manifest').mediaType ?? '');
    const Descriptor = { mediaType, digest: m.digest, size: m.bytes.length };
    if (isIndexType(mediaType)) {
      const index = parseJson<Index>(m.bytes, 'manifest list');
      const Platforms = (index.manifests ?? []).map((d) => d.platform).filter((p): p is Platform => !!p && p.os !== 'unknown');
      return { Descriptor, Platforms };
    }
    const manifest = parseJson<Manifest>(m.bytes, 'manifest');
    // Read, not stored: inspecting leaves nothing behind.
    const cfg = parseJson<ImageConfig>(await this.#configBytes(repo, manifest.config, undefined), 'image config');
    const p: Platform = { architecture: cfg.architecture, os: cfg.os };
    if (cfg.variant) p.variant = cfg.variant;
    if (cfg['os.version']) p['os.version'] = cfg['os.version'];
    return { Descriptor, Platforms: [p] };
  }
}

/** The index entry for a platform: an exact variant match first, then any that matches. Attestations (unknown/unknown) never match. */
export function pickPlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  const w = normalizePlatform(want);
  const candidates = manifests.filter((d) => d.platform && isDigest(d.digest) && platformMatches(w, d.platform));
  return candidates.find((d) => normalizePlatform(d.platform!).variant === w.variant) ?? candidates[0];
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`invalid ${what}: ${(e as Error).message}`, e);
  }
}
