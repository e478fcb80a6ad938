// `docker build` and `builder prune`: the Docker semantics around the builder. Where the context
// comes from, which Dockerfile is read, the image the result becomes and its tags, and the cache's
// housekeeping.
import { isAbsolute, join } from 'node:path';
import type { Digest } from '../common/digest.ts';
import { invalidArgument, isBerthError, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { parseBytes } from '../common/units.ts';
import type { BaseImage, BuildOutput, Builder } from '../builder/builder.ts';
import type { BuildCache, BuildState } from '../builder/cache.ts';
import { BuildContext } from '../builder/context.ts';
import { type ImageConfig, type Platform, formatPlatform, hostPlatform, MediaType, normalizePlatform, parsePlatform, platformMatches } from '../images/oci.ts';
import type { GarbageCollector } from '../metadata/gc.ts';
import type { Lease, LeaseManager } from '../metadata/leases.ts';
import { parseReference, withDefaultTag } from '../images/reference.ts';
import type { EventBus } from './events.ts';
import { writeOciImage } from '../images/oci-image.ts';
import type { NewImage } from '../images/store.ts';
import { parseFilters, parseTimestamp } from './filters.ts';
import type { ImageService } from './images.ts';

export interface BuildOptions {
  /** The context: a directory on this host (berth's CLI on the daemon's machine), or an uploaded tar. */
  context: { dir: string } | { tar: AsyncIterable<Uint8Array> };
  /** The Dockerfile: a path inside the context (default `Dockerfile`), or an absolute host path with a directory context. */
  dockerfile?: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  pull: boolean;
  platform?: string;
  /** Flatten the result into one layer. */
  squash?: boolean;
  secrets?: Map<string, Buffer>;
  signal?: AbortSignal;
}

export interface BuildCacheRecordView {
  ID: string;
  Parent: string;
  Type: string;
  Description: string;
  InUse: boolean;
  Shared: boolean;
  Size: number;
  CreatedAt: string;
  LastUsedAt: string;
  UsageCount: number;
}

export interface BuildServiceDeps {
  builder: Builder;
  images: ImageService;
  cache: BuildCache;
  leases: LeaseManager;
  gc: GarbageCollector;
  scratch: string;
  events: EventBus;
  log: Logger;
}

export class BuildService {
  #d: BuildServiceDeps;
  /** Builds in flight: a stopping daemon cancels them, so no step container outlives it. */
  #active = new Set<AbortController>();
  /** Set by the daemon when pulling is available: fetches a missing base image. */
  pull?: (name: string, platform: Platform, signal?: AbortSignal) => Promise<void>;

  constructor(deps: BuildServiceDeps) {
    this.#d = deps;
  }

  /** Cancels every build in flight and waits a moment for their steps to stop. */
  async close(): Promise<void> {
    for (const a of this.#active) a.abort(new Error('the daemon is shutting down'));
    const until = Date.now() + 5000;
    while (this.#active.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** A FROM or COPY --from image: local, or pulled when asked (--pull) or missing. */
  async baseImage(name: string, platform: Platform, pull: boolean, signal?: AbortSignal): Promise<BaseImage> {
    const images = this.#d.images;
    let rec;
    try {
      rec = (await images.findFor(name, platform)) ?? images.resolve(name);
    } catch (e) {
      if (!isBerthError(e, 'NotFound') || !this.pull) {
        if (isBerthError(e, 'NotFound')) throw notFound(`pull access denied for ${name}, repository does not exist or may require 'docker login': no such image locally and no registry to pull it from`, e);
        throw e;
      }
    }
    if (this.pull && (pull || !rec)) {
      await this.pull(name, platform, signal);
      rec = (await images.findFor(name, platform)) ?? images.resolve(name);
    }
    const config: ImageConfig = await images.config(rec!.id);
    const have = normalizePlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) });
    if (!platformMatches(normalizePlatform(platform), have)) {
      throw invalidArgument(`image ${name} is ${formatPlatform(have)}, which does not match the build's platform ${formatPlatform(platform)}`);
    }
    return { id: rec!.id, config, layers: images.layers(rec!.id) };
  }

  async build(opts: BuildOptions, out: BuildOutput): Promise<{ id: Digest; warnings: string[] }> {
    const d = this.#d;
    const abort = new AbortController();
    this.#active.add(abort);
    const onAbort = () => abort.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const lease = d.leases.create();
    let ctx: BuildContext | undefined;
    try {
      ctx = 'dir' in opts.context
        ? await BuildContext.fromDirectory(opts.context.dir)
        : await BuildContext.fromTar(opts.context.tar, d.scratch, abort.signal);
      const name = opts.dockerfile || 'Dockerfile';
      let text: Buffer | undefined;
      if (isAbsolute(name) && 'dir' in opts.context) {
        const { readFile } = await import('node:fs/promises');
        text = await readFile(name).catch(() => undefined);
      } else {
        text = await ctx.readFile(name);
        // Docker also accepts a lower-case dockerfile when none was named.
        if (!text && !opts.dockerfile) text = await ctx.readFile('dockerfile');
      }
      if (!text) throw invalidArgument(`Cannot locate specified Dockerfile: ${name}`);
      const platforms = opts.platform ? [...new Set(opts.platform.split(',').map((p) => p.trim()).filter(Boolean))].map((p) => normalizePlatform(parsePlatform(p))) : [hostPlatform()];
      const members: { id: Digest; manifest: Digest; size: number; platform: Platform }[] = [];
      const warnings: string[] = [];
      // Platforms build one after another: a foreign one runs its steps under qemu, and one at a time keeps the log readable.
      for (const platform of platforms) {
        if (platforms.length > 1) out.stream(`[${formatPlatform(platform)}] building\n`);
        const result = await d.builder.build({
          context: ctx, dockerfile: text.toString('utf8'), dockerfileName: name.split('/').at(-1) ?? name,
          buildArgs: opts.buildArgs, target: opts.target, labels: opts.labels, noCache: opts.noCache, pull: opts.pull,
          platform, secrets: opts.secrets, lease, signal: abort.signal,
        }, out);
        for (const w of result.warnings) if (!warnings.includes(w)) warnings.push(w);
        const state = opts.squash ? await d.builder.squash(result.state, lease, abort.signal) : result.state;
        members.push({ ...(await this.#createImage(state, platforms.length > 1 ? [] : opts.tags)), platform });
      }
      for (const w of warnings) out.stream(`${w}\n`);
      if (members.length === 1) return { id: members[0].id, warnings };
      const index = await this.#createIndex(members, opts.tags, lease);
      out.stream(`Created image index ${index} for ${members.map((m) => formatPlatform(m.platform)).join(', ')}\n`);
      const host = members.find((m) => platformMatches(hostPlatform(), m.platform)) ?? members[0];
      return { id: host.id, warnings };
    } catch (e) {
      abort.abort(e);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      this.#active.delete(abort);
      lease.release();
      await ctx?.dispose().catch((e) => d.log.warn('removing a build context failed', { err: e }));
    }
  }

  async #createImage(state: BuildState, tags: string[]): Promise<{ id: Digest; manifest: Digest; size: number }> {
    const images = this.#d.images;
    const [first, ...rest] = tags;
    let written: { image: NewImage; manifestSize: number } | undefined;
    const id = await images.createImage(async (content, lease) => {
      written = await writeOciImage(content, state.config, state.layers, (dg) => lease.blobs.add(dg));
      return written.image;
    }, first, 'build');
    for (const t of rest) images.tag(id, t);
    return { id, manifest: written!.image.manifest, size: written!.manifestSize };
  }

  /**
   * A multi-platform result: an OCI index of the members' manifests, which each tag names (with
   * the host's member, or the first, standing for it where no platform is asked). Each member is
   * also pinned by digest in each repository, so it is never taken for a dangling image.
   */
  async #createIndex(members: { id: Digest; manifest: Digest; size: number; platform: Platform }[], tags: string[], lease: Lease): Promise<Digest> {
    const d = this.#d;
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: members.map((m) => ({
        mediaType: MediaType.OciManifest, digest: m.manifest, size: m.size,
        platform: { architecture: m.platform.architecture, os: m.platform.os, ...(m.platform.variant ? { variant: m.platform.variant } : {}) },
      })),
    };
    const { content, store } = { content: d.images.content, store: d.images.store };
    const blob = await content.writeBytes(Buffer.from(JSON.stringify(index)), undefined, (dg) => lease.blobs.add(dg));
    const host = members.find((m) => platformMatches(hostPlatform(), m.platform)) ?? members[0];
    store.batch(() => {
      for (const t of tags) {
        const ref = withDefaultTag(parseReference(t));
        store.tagIndex(host.id, ref, blob.digest, members.map((m) => m.id));
        for (const m of members) store.addDigestRef(m.id, { domain: ref.domain, path: ref.path, digest: m.manifest });
      }
    });
    return blob.digest;
  }

  /** `GET /system/df` BuildCache and `docker builder du`. */
  records(): BuildCacheRecordView[] {
    return this.#d.cache.list().filter((r) => r.layer !== '').map((r) => ({
      ID: r.key.replace(/^sha256:/, '').slice(0, 25), Parent: '', Type: 'regular', Description: r.description,
      InUse: false, Shared: false, Size: r.size, CreatedAt: new Date(r.createdAt).toISOString(),
      LastUsedAt: new Date(r.lastUsed).toISOString(), UsageCount: r.usageCount,
    }));
  }

  /**
   * `POST /build/prune`: drops cache records (all with `all`; otherwise those whose layers no
   * image uses), oldest first, until `keepStorage` bytes remain; `until` keeps the recent ones.
   */
  async prune(opts: { all?: boolean; filters?: string | null; keepStorage?: number | string }): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number }> {
    const filters = parseFilters(opts.filters ?? null, ['until', 'unused-for', 'type', 'id', 'description', 'inuse', 'shared', 'private']);
    const untilRaw = filters.get('until')?.[0] ?? filters.get('unused-for')?.[0];
    const until = untilRaw ? parseTimestamp(untilRaw) : undefined;
    const keep = opts.keepStorage === undefined || opts.keepStorage === '' ? 0 : typeof opts.keepStorage === 'number' ? opts.keepStorage : (parseBytes(String(opts.keepStorage)) ?? invalidKeep(opts.keepStorage));
    const inUse = new Set<string>();
    if (!opts.all) for (const v of this.#d.images.list()) for (const l of this.#d.images.layers(v.record.id)) inUse.add(l.blob);
    const records = this.#d.cache.list().sort((a, b) => a.lastUsed - b.lastUsed);
    let total = records.reduce((n, r) => n + r.size, 0);
    const doomed: string[] = [];
    let reclaimed = 0;
    for (const r of records) {
      if (keep > 0 && total <= keep) break;
      if (until !== undefined && r.lastUsed > until) continue;
      if (r.layer && inUse.has(r.layer)) continue;
      doomed.push(r.key);
      total -= r.size;
      reclaimed += r.size;
    }
    this.#d.cache.remove(doomed);
    const gc = await this.#d.gc.collect();
    return { CachesDeleted: doomed.map((k) => k.replace(/^sha256:/, '')), SpaceReclaimed: Math.max(reclaimed, gc.bytesRemoved) };
  }
}

export const scratchDir = (dataRoot: string) => join(dataRoot, 'tmp');

function invalidKeep(v: unknown): never {
  throw invalidArgument(`invalid keep-storage value: ${String(v)}`);
}
