import type { Digest } from '../common/digest.ts';
import { invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContentStore } from '../content/store.ts';
import type { Credentials, Repository } from '../distribution/types.ts';
import { type Descriptor, type Index, type Manifest, MediaType } from '../images/oci.ts';
import {
  type Reference, familiarRepository, familiarString, parseStoredRef, repositoryName, withDefaultTag,
} from '../images/reference.ts';
import type { ImageRecord, ImageStore } from '../images/store.ts';
import type { EventBus } from './events.ts';
import type { RegistryClientFactory } from './pull.ts';
import { Limiter, type ProgressSink, ProgressThrottle, layerStatus, shortDigest } from './transfer.ts';

export interface PushOptions {
  /** Push every tag of the repository (`docker push -a`, or the API without `tag`). */
  allTags?: boolean;
  credentials?: Credentials;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface PushResult {
  pushed: { tag: string; digest: Digest; size: number }[];
  /** Layer blobs actually uploaded (not found on the registry, not mounted). */
  uploaded: Digest[];
}

/**
 * `docker push`: for each layer, HEAD on the registry, then a cross-repository
 * mount when another repository of the same registry is known to hold it,
 * else an upload; then the config and the manifest. The manifest is the one
 * stored with the image, byte for byte, so its digest is the one `images
 * --digests` showed before the push and the same image always pushes to the
 * same digest. Layers go as they are stored: see docs/design.md.
 */
export class PushService {
  #images: ImageStore;
  #content: ContentStore;
  #events: EventBus;
  #log: Logger;
  #registry: RegistryClientFactory;
  #concurrency: number;

  constructor(deps: { images: ImageStore; content: ContentStore; events: EventBus; log: Logger; registry: RegistryClientFactory; concurrency?: number }) {
    this.#images = deps.images;
    this.#content = deps.content;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#registry = deps.registry;
    this.#concurrency = deps.concurrency ?? 5;
  }

  /** The tagged images a push sends: the one tag, or every tag of the repository. Throws before anything is sent. */
  targets(ref: Reference, allTags: boolean): { ref: Reference; image: ImageRecord }[] {
    if (ref.digest) throw invalidArgument('cannot push a digest reference');
    if (!allTags || ref.tag) {
      const one = withDefaultTag(ref);
      const image = this.#images.find(familiarString(one));
      if (!image) throw notFound(`An image does not exist locally with the tag: ${familiarString(one)}`);
      return [{ ref: one, image }];
    }
    const out: { ref: Reference; image: ImageRecord }[] = [];
    for (const [id, refs] of this.#images.allRefs()) {
      for (const r of refs) {
        const parsed = parseStoredRef(r.ref);
        if (r.kind === 'tag' && repositoryName(parsed) === repositoryName(ref)) out.push({ ref: parsed, image: this.#images.get(id)! });
      }
    }
    if (out.length === 0) throw notFound(`An image does not exist locally with the tag: ${familiarRepository(ref)}`);
    return out.sort((a, b) => a.ref.tag!.localeCompare(b.ref.tag!));
  }

  async push(ref: Reference, opts: PushOptions = {}): Promise<PushResult> {
    const progress = opts.progress ?? (() => {});
    const targets = this.targets(ref, Boolean(opts.allTags));
    progress({ status: `The push refers to repository [${repositoryName(ref)}]` });
    const repo = this.#registry(opts.credentials, opts.signal).repository(ref, ['pull', 'push']);
    const result: PushResult = { pushed: [], uploaded: [] };
    for (const t of targets) {
      const index = this.#images.indexOf(familiarString(t.ref));
      const r = index
        ? await this.#pushIndex(repo, t.ref, index, progress, result.uploaded, opts.signal)
        : await this.#pushOne(repo, t.ref, t.image, progress, result.uploaded, opts.signal);
      result.pushed.push(r);
    }
    return result;
  }

  /** A multi-platform tag: every member by digest, then the index under the tag, as `docker buildx --push` sends it. */
  async #pushIndex(repo: Repository, ref: Reference, index: Digest, progress: ProgressSink, uploaded: Digest[], signal?: AbortSignal) {
    const bytes = await this.#content.readBytes(index);
    const parsed = JSON.parse(bytes.toString('utf8')) as Index;
    for (const m of parsed.manifests) {
      const image = this.#images.byManifest(m.digest);
      if (!image) throw notFound(`the image for ${m.digest} in ${familiarString(ref)}'s index is missing from the local store`);
      await this.#pushOne(repo, { ...ref, tag: undefined, digest: m.digest }, image, progress, uploaded, signal);
    }
    const digest = await repo.putManifest(ref.tag!, bytes, parsed.mediaType ?? MediaType.OciIndex);
    progress({ status: `${ref.tag}: digest: ${digest} size: ${bytes.length}` });
    progress({ progressDetail: {}, aux: { Tag: ref.tag, Digest: digest, Size: bytes.length } });
    this.#events.emit('image', 'push', familiarString(ref), { name: familiarRepository(ref) });
    return { tag: ref.tag!, digest, size: bytes.length };
  }

  async #pushOne(repo: Repository, ref: Reference, image: ImageRecord, progress: ProgressSink, uploaded: Digest[], signal?: AbortSignal) {
    const bytes = await this.#content.readBytes(image.manifest);
    const manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    const diffIds = this.#images.layers(image.id).map((l) => l.diffId);
    // Docker names a layer by its diff ID while pushing.
    const names = manifest.layers.map((l, i) => shortDigest(diffIds[i] ?? l.digest));
    for (const n of names) progress(layerStatus(n, 'Preparing'));
    names.forEach((n, i) => i >= this.#concurrency && progress(layerStatus(n, 'Waiting')));

    const limiter = new Limiter(this.#concurrency);
    const throttle = new ProgressThrottle(progress);
    const started = new Map<Digest, Promise<string>>();
    const sendLayer = (desc: Descriptor, name: string) => {
      // A blob listed twice is sent once.
      let p = started.get(desc.digest);
      if (!p) {
        p = limiter.run(() => this.#sendBlob(repo, ref, desc, (n) => throttle.update(name, 'Pushing', n, desc.size), uploaded));
        started.set(desc.digest, p);
      }
      return p.then((status) => progress(layerStatus(name, status)));
    };
    const results = await Promise.allSettled(manifest.layers.map((l, i) => sendLayer(l, names[i])));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    signal?.throwIfAborted();
    await this.#sendBlob(repo, ref, manifest.config, () => {}, []);

    // A member of an index goes by its digest; the index's own put names the tag.
    const digest = await repo.putManifest(ref.tag ?? ref.digest!, bytes, image.manifestMediaType);
    if (!ref.tag) return { tag: '', digest, size: bytes.length };
    progress({ status: `${ref.tag}: digest: ${digest} size: ${bytes.length}` });
    progress({ progressDetail: {}, aux: { Tag: ref.tag, Digest: digest, Size: bytes.length } });
    this.#images.addDigestRef(image.id, { domain: ref.domain, path: ref.path, digest });
    this.#events.emit('image', 'push', familiarString(ref), { name: familiarRepository(ref) });
    return { tag: ref.tag!, digest, size: bytes.length };
  }

  /** Sends one blob the registry lacks; returns the status Docker prints for it. */
  async #sendBlob(repo: Repository, ref: Reference, desc: Descriptor, onProgress: (n: number) => void, uploaded: Digest[]): Promise<string> {
    if (await repo.hasBlob(desc.digest)) return 'Layer already exists';
    for (const from of this.#mountSources(ref, desc.digest)) {
      try {
        if (await repo.mountBlob(desc.digest, from)) return `Mounted from ${from}`;
        break; // the registry answered with an upload session instead: uploading is what is left
      } catch (e) {
        this.#log.debug('cross-repository mount failed; trying the next source', { digest: desc.digest, from, err: String(e) });
      }
    }
    if (!(await this.#content.info(desc.digest))) throw notFound(`blob ${desc.digest} of ${familiarString(ref)} is missing from the local store`);
    await repo.pushBlob(desc, () => this.#content.readStream(desc.digest), { onProgress });
    uploaded.push(desc.digest);
    return 'Pushed';
  }

  /** Other repositories of the same registry that hold this blob, as far as the local names tell. */
  #mountSources(ref: Reference, digest: Digest): string[] {
    const out = new Set<string>();
    for (const r of this.#images.refsWithBlob(digest)) {
      const other = parseStoredRef(r);
      if (other.domain === ref.domain && other.path !== ref.path) out.add(other.path);
    }
    return [...out].slice(0, 3);
  }
}
