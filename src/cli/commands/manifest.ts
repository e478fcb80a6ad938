// `berth manifest inspect|create|annotate|push|rm`: the docker CLI's fat-manifest workflow. Like
// docker, it talks to registries itself (no daemon) and keeps lists being made under the docker
// config dir's `manifests/`, in docker's own format, so either CLI can finish what the other began.
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { writeFileAtomic } from '../../common/atomic-file.ts';
import type { Digest } from '../../common/digest.ts';
import { errno, isBerthError } from '../../common/errors.ts';
import { createRegistryClient } from '../../distribution/client.ts';
import { CredentialStore, dockerConfigDir } from '../../distribution/credentials.ts';
import type { Repository } from '../../distribution/types.ts';
import { type Descriptor, type ImageConfig, type Manifest, MediaType, isIndexType } from '../../distribution/vocabulary.ts';
import { type Reference, formatReference, parseReference, withDefaultTag } from '../../distribution/vocabulary.ts';
import { type Command, type CommandContext, CliError, flags, requireArgs } from '../command.ts';

/** A platform as docker stores it in a manifest descriptor. */
interface StoredPlatform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}

/** docker's `types.ImageManifest`: one image of a list being made, as the CLI stores it. */
interface ImageManifest {
  Ref: string;
  Descriptor: { mediaType: string; digest: Digest; size: number; platform?: StoredPlatform };
  /** The manifest's exact bytes, base64 (Go's []byte). */
  Raw?: string;
  SchemaV2Manifest?: unknown;
  OCIManifest?: unknown;
}

// ---- the local store (docker's manifests/ layout) --------------------------------------------

/** docker's makeFilesafeName: `127.0.0.1:5000/a/b:v1` → `127.0.0.1-5000_a_b-v1`. */
const fileSafe = (ref: string) => ref.replace(/:/g, '-').replace(/\//g, '_');

class ManifestStore {
  readonly root: string;
  constructor(root = join(dockerConfigDir(), 'manifests')) {
    this.root = root;
  }

  listDir(list: Reference): string {
    return join(this.root, fileSafe(formatReference(list)));
  }

  async exists(list: Reference): Promise<boolean> {
    return stat(this.listDir(list)).then(() => true, () => false);
  }

  /** Every image of a local list, or undefined when there is no such list. */
  async getList(list: Reference): Promise<ImageManifest[] | undefined> {
    let names: string[];
    try {
      names = (await readdir(this.listDir(list))).filter((n) => !n.startsWith('.')).sort();
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    const out: ImageManifest[] = [];
    for (const n of names) out.push(JSON.parse(await readFile(join(this.listDir(list), n), 'utf8')) as ImageManifest);
    return out;
  }

  async get(list: Reference, image: Reference): Promise<ImageManifest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.listDir(list), fileSafe(formatReference(image))), 'utf8')) as ImageManifest;
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  async save(list: Reference, image: Reference, m: ImageManifest): Promise<void> {
    await mkdir(this.listDir(list), { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(this.listDir(list), fileSafe(formatReference(image))), JSON.stringify(m), 0o600);
  }

  async remove(list: Reference): Promise<boolean> {
    if (!(await this.exists(list))) return false;
    await rm(this.listDir(list), { recursive: true, force: true });
    return true;
  }
}

// ---- registry access -------------------------------------------------------------------------

function registryFor(insecure: boolean, ref: Reference) {
  const store = new CredentialStore();
  return createRegistryClient({
    insecure: insecure ? [ref.domain] : [],
    mirrors: [],
    credentials: (host) => store.get(host),
  });
}

function parseRef(s: string): Reference {
  try {
    return withDefaultTag(parseReference(s));
  } catch (e) {
    throw new CliError(isBerthError(e) ? `${e.message}` : String(e));
  }
}

/** Registry and store failures in the docker CLI's words, not stack traces. */
async function cli<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (isBerthError(e)) throw new CliError(e.message);
    throw e;
  }
}

const tagOrDigest = (r: Reference) => r.digest ?? r.tag ?? 'latest';

/**
 * JSON as the docker CLI prints it: tabs for a single manifest and for the verbose forms, three
 * spaces for a manifest list it rebuilt (docker's own inconsistency, kept so outputs compare equal).
 */
const indent = (value: unknown, by: '\t' | '   ' = '\t') => JSON.stringify(value, null, by);

function platformOf(config: ImageConfig): StoredPlatform {
  const p: StoredPlatform = { architecture: config.architecture, os: config.os };
  if (config['os.version']) p['os.version'] = config['os.version'];
  const features = config['os.features'];
  if (Array.isArray(features) && features.length) p['os.features'] = features as string[];
  if (config.variant) p.variant = config.variant;
  return p;
}

/** Fetches one single-platform image as docker's ImageManifest (its config read for the platform). */
async function fetchImageManifest(repo: Repository, ref: Reference): Promise<ImageManifest | { list: Descriptor[] }> {
  const m = await repo.getManifest(tagOrDigest(ref));
  const parsed = JSON.parse(m.bytes.toString('utf8')) as Manifest & { manifests?: Descriptor[] };
  if (isIndexType(m.mediaType) || Array.isArray(parsed.manifests)) return { list: parsed.manifests ?? [] };
  const { stream } = await repo.getBlob(parsed.config.digest);
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  const config = JSON.parse(Buffer.concat(parts).toString('utf8')) as ImageConfig;
  const out: ImageManifest = {
    Ref: formatReference(ref),
    Descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: platformOf(config) },
    Raw: m.bytes.toString('base64'),
  };
  if (m.mediaType === MediaType.OciManifest) out.OCIManifest = parsed;
  else out.SchemaV2Manifest = parsed;
  return out;
}

/** A descriptor in docker's manifest list form: mediaType, size, digest, platform (Go's field order). */
function listDescriptor(img: ImageManifest): Record<string, unknown> {
  const d = img.Descriptor;
  const out: Record<string, unknown> = { mediaType: d.mediaType, size: d.size, digest: d.digest };
  if (d.platform) {
    const p = d.platform;
    const platform: Record<string, unknown> = { architecture: p.architecture, os: p.os };
    if (p['os.version']) platform['os.version'] = p['os.version'];
    if (p['os.features']?.length) platform['os.features'] = p['os.features'];
    if (p.variant) platform.variant = p.variant;
    if (p.features?.length) platform.features = p.features;
    out.platform = platform;
  }
  return out;
}

/** The manifest list docker builds from a list's images (Docker's media type, as `docker manifest push`). */
function buildList(images: ImageManifest[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: images.map(listDescriptor) }));
}

// ---- commands --------------------------------------------------------------------------------

export const manifestInspect: Command = {
  usage: `Usage:  berth manifest inspect [OPTIONS] [MANIFEST_LIST] MANIFEST

Display an image manifest, or manifest list

Options:
      --insecure   Allow communication with an insecure registry
  -v, --verbose    Output additional info including layers and platform
`,
  description: 'Display an image manifest, or manifest list',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { insecure: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' } }, this.usage);
    requireArgs(ctx, positionals, 1, 2, this.usage);
    const store = new ManifestStore();
    if (positionals.length === 2) {
      // One image of a local list being made.
      const list = parseRef(positionals[0]);
      const img = await store.get(list, parseRef(positionals[1]));
      if (!img) throw new CliError(`No such manifest: ${positionals[1]}`);
      return printImage(ctx, img, values.verbose ?? false);
    }
    const ref = parseRef(positionals[0]);
    const local = await store.getList(ref);
    if (local) return printList(ctx, local, values.verbose ?? false);
    const repo = registryFor(values.insecure ?? false, ref).repository(ref, ['pull']);
    const m = await cli(() => repo.getManifest(tagOrDigest(ref)));
    const parsed = JSON.parse(m.bytes.toString('utf8')) as { manifests?: Descriptor[] };
    if (!isIndexType(m.mediaType) && !Array.isArray(parsed.manifests)) {
      if (!values.verbose) return void ctx.io.out(indent(parsed) + '\n');
      const img = await cli(() => fetchImageManifest(repo, ref)) as ImageManifest;
      return printImage(ctx, img, true);
    }
    // A list in the registry: its images, each fetched for the verbose form as docker does.
    const images: ImageManifest[] = [];
    for (const d of parsed.manifests ?? []) {
      if (!values.verbose) {
        images.push({ Ref: formatReference({ ...ref, digest: d.digest }), Descriptor: { mediaType: d.mediaType, digest: d.digest, size: d.size, platform: d.platform as StoredPlatform | undefined } });
        continue;
      }
      // docker names each image `repo:tag@digest`.
      const one = await cli(() => fetchImageManifest(repo, { ...ref, digest: d.digest }));
      if ('list' in one) throw new CliError(`${formatReference(ref)}@${d.digest} is a manifest list`);
      one.Descriptor.platform = (d.platform as StoredPlatform | undefined) ?? one.Descriptor.platform;
      images.push(one);
    }
    return printList(ctx, images, values.verbose ?? false);
  },
};

function printImage(ctx: CommandContext, img: ImageManifest, verbose: boolean): void {
  if (verbose) return void ctx.io.out(indent(img) + '\n');
  const raw = img.Raw ? Buffer.from(img.Raw, 'base64').toString('utf8') : JSON.stringify(img.SchemaV2Manifest ?? img.OCIManifest);
  ctx.io.out(indent(JSON.parse(raw)) + '\n');
}

function printList(ctx: CommandContext, images: ImageManifest[], verbose: boolean): void {
  if (verbose) return void ctx.io.out(indent(images) + '\n');
  ctx.io.out(indent(JSON.parse(buildList(images).toString('utf8')), '   ') + '\n');
}

export const manifestCreate: Command = {
  usage: `Usage:  berth manifest create MANIFEST_LIST MANIFEST [MANIFEST...]

Create a local manifest list for annotating and pushing to a registry

Options:
  -a, --amend      Amend an existing manifest list
      --insecure   Allow communication with an insecure registry
`,
  description: 'Create a local manifest list for annotating and pushing to a registry',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { amend: { type: 'boolean', short: 'a' }, insecure: { type: 'boolean' } }, this.usage);
    requireArgs(ctx, positionals, 2, Infinity, this.usage);
    const list = parseRef(positionals[0]);
    const store = new ManifestStore();
    if ((await store.exists(list)) && !values.amend) {
      throw new CliError(`refusing to amend an existing manifest list with no --amend flag`);
    }
    // Fetch everything before writing anything: a bad image leaves no half-made list.
    const images: [Reference, ImageManifest][] = [];
    for (const s of positionals.slice(1)) {
      const ref = parseRef(s);
      if (ref.domain !== list.domain) {
        throw new CliError(`cannot use source images from a different registry than the target image: ${ref.domain} != ${list.domain}`);
      }
      const repo = registryFor(values.insecure ?? false, ref).repository(ref, ['pull']);
      const img = await cli(() => fetchImageManifest(repo, ref));
      if ('list' in img) throw new CliError(`${formatReference(ref)} is a manifest list`);
      images.push([ref, img]);
    }
    for (const [ref, img] of images) await store.save(list, ref, img);
    ctx.io.out(`Created manifest list ${formatReference(list)}\n`);
  },
};

const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const KNOWN_ARCH = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'ppc64', 'ppc64le', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);

export const manifestAnnotate: Command = {
  usage: `Usage:  berth manifest annotate [OPTIONS] MANIFEST_LIST MANIFEST

Add additional information to a local image manifest

Options:
      --arch string           Set architecture
      --os string             Set operating system
      --os-features strings   Set operating system feature
      --os-version string     Set operating system version
      --variant string        Set architecture variant
`,
  description: 'Add additional information to a local image manifest',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      arch: { type: 'string' }, os: { type: 'string' }, 'os-features': { type: 'string', multiple: true }, 'os-version': { type: 'string' }, variant: { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    const list = parseRef(positionals[0]);
    const image = parseRef(positionals[1]);
    const store = new ManifestStore();
    const img = await store.get(list, image);
    if (!img) throw new CliError(`manifest for image ${positionals[1]} does not exist in ${positionals[0]}`);
    const p: StoredPlatform = { ...(img.Descriptor.platform ?? { architecture: '', os: '' }) };
    if (values.os) p.os = values.os;
    if (values.arch) p.architecture = values.arch;
    if (values.variant) p.variant = values.variant;
    if (values['os-version']) p['os.version'] = values['os-version'];
    if (values['os-features']?.length) p['os.features'] = values['os-features'].flatMap((f) => f.split(',')).filter(Boolean);
    if (!KNOWN_OS.has(p.os) || !KNOWN_ARCH.has(p.architecture)) {
      throw new CliError(`manifest entry for image has unsupported os/arch combination: ${p.os}/${p.architecture}`);
    }
    img.Descriptor.platform = p;
    await store.save(list, image, img);
  },
};

export const manifestPush: Command = {
  usage: `Usage:  berth manifest push [OPTIONS] MANIFEST_LIST

Push a manifest list to a repository

Options:
      --insecure   Allow push to an insecure registry
  -p, --purge      Remove the local manifest list after push
`,
  description: 'Push a manifest list to a repository',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { insecure: { type: 'boolean' }, purge: { type: 'boolean', short: 'p' } }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const list = parseRef(positionals[0]);
    const store = new ManifestStore();
    const images = await store.getList(list);
    if (!images || images.length === 0) throw new CliError(`${positionals[0]} not found`);
    for (const img of images) {
      const p = img.Descriptor.platform;
      if (!p?.architecture || !p.os) throw new CliError(`manifest ${img.Ref} must have an OS and Architecture to be pushed to a registry`);
    }
    const client = registryFor(values.insecure ?? false, list);
    const target = client.repository(list, ['pull', 'push']);
    await cli(async () => {
      // Images from other repositories of the registry: their blobs mounted across, their manifests put by digest.
      for (const img of images) {
        const src = parseRef(img.Ref);
        if (src.path === list.path) continue;
        if (await target.headManifest(img.Descriptor.digest)) continue;
        const raw = img.Raw ? Buffer.from(img.Raw, 'base64') : undefined;
        if (!raw) throw new CliError(`manifest ${img.Ref} has no stored content; create the list again`);
        const body = JSON.parse(raw.toString('utf8')) as Manifest;
        const source = client.repository(src, ['pull']);
        for (const blob of [body.config, ...body.layers]) {
          if (await target.hasBlob(blob.digest)) continue;
          if (await target.mountBlob(blob.digest, src.path)) continue;
          // No mount (the registry's policy): stream the blob through.
          await target.pushBlob(blob, () => {
            const through = new PassThrough();
            source.getBlob(blob.digest).then(({ stream }) => stream.pipe(through), (e) => through.destroy(e));
            return through;
          });
        }
        await target.putManifest(img.Descriptor.digest, raw, img.Descriptor.mediaType);
      }
      const bytes = buildList(images);
      const digest = await target.putManifest(tagOrDigest(list), bytes, MediaType.DockerManifestList);
      ctx.io.out(`${digest}\n`);
    });
    if (values.purge) await store.remove(list);
  },
};

export const manifestRm: Command = {
  usage: `Usage:  berth manifest rm MANIFEST_LIST [MANIFEST_LIST...]

Delete one or more manifest lists from local storage
`,
  description: 'Delete one or more manifest lists from local storage',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    const store = new ManifestStore();
    const missing: string[] = [];
    for (const name of positionals) {
      if (!(await store.remove(parseRef(name)))) missing.push(name);
    }
    if (missing.length) throw new CliError(missing.map((n) => `No such manifest: ${n}`).join('\n'));
  },
};
