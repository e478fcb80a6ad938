import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Digest } from '../../common/digest.ts';
import { isDigest } from '../../common/digest.ts';
import { BerthError, ErrorCode, invalidArgument, isBerthError, notImplemented } from '../../common/errors.ts';
import { decodeRegistryAuth } from '../../distribution/credentials.ts';
import { type ContainerConfig, type HistoryEntry, type ImageConfig, parsePlatform } from '../../images/oci.ts';
import { familiarString, parseReference, parseStoredRef } from '../../images/reference.ts';
import type { ImageRecord, LayerRecord, RefRecord } from '../../images/store.ts';
import { type ImageService, type ImageView, createdMs } from '../../services/images.ts';
import type { PullService } from '../../services/pull.ts';
import type { PushService } from '../../services/push.ts';
import { JsonMessageWriter } from '../streams/json-messages.ts';
import { boolParam, type Route } from '../server.ts';

const V1_44 = 1044;

/** Docker's ImageSummary (GET /images/json). */
export function imageSummary(v: ImageView, version: number, containers = -1): Record<string, unknown> {
  const { tags, digests } = splitRefs(v.refs);
  const s: Record<string, unknown> = {
    Id: v.record.id, ParentId: v.record.parent, RepoTags: tags, RepoDigests: digests,
    Created: Math.floor(createdMs(v.record) / 1000), Size: v.record.size, SharedSize: -1,
    Labels: v.record.labels, Containers: containers,
  };
  if (version < V1_44) s.VirtualSize = v.record.size;
  return s;
}

function splitRefs(refs: RefRecord[]): { tags: string[]; digests: string[] } {
  const tags: string[] = [];
  const digests: string[] = [];
  for (const r of refs) (r.kind === 'tag' ? tags : digests).push(familiarString(parseStoredRef(r.ref)));
  return { tags, digests };
}

/** The config block of `docker image inspect`, with Docker's nulls for what is unset. */
function inspectConfig(c: ContainerConfig | undefined): Record<string, unknown> {
  return {
    User: c?.User ?? '', ExposedPorts: c?.ExposedPorts ?? null, Env: c?.Env ?? null, Cmd: c?.Cmd ?? null,
    Healthcheck: c?.Healthcheck, ArgsEscaped: c?.ArgsEscaped, Volumes: c?.Volumes ?? null, WorkingDir: c?.WorkingDir ?? '',
    Entrypoint: c?.Entrypoint ?? null, OnBuild: c?.OnBuild ?? null, Labels: c?.Labels ?? null, StopSignal: c?.StopSignal, Shell: c?.Shell,
  };
}

export function imageInspect(v: ImageView, config: ImageConfig, graph: Record<string, string>, version: number): Record<string, unknown> {
  const { tags, digests } = splitRefs(v.refs);
  const out: Record<string, unknown> = {
    Id: v.record.id, RepoTags: tags, RepoDigests: digests, Parent: v.record.parent, Comment: config.comment ?? '',
    Created: config.created ?? '', DockerVersion: config.docker_version ?? '', Author: config.author ?? '',
    Config: inspectConfig(config.config), Architecture: config.architecture, Variant: config.variant, Os: config.os,
    OsVersion: config['os.version'], Size: v.record.size,
    GraphDriver: { Name: 'overlayfs', Data: graph }, RootFS: { Type: 'layers', Layers: config.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
    Descriptor: { mediaType: v.record.manifestMediaType, digest: v.record.manifest, size: 0 },
  };
  if (version < V1_44) Object.assign(out, { VirtualSize: v.record.size, Container: '', ContainerConfig: inspectConfig(undefined) });
  return out;
}

export function imageHistory(rec: ImageRecord, refs: RefRecord[], config: ImageConfig, layers: LayerRecord[]): Record<string, unknown>[] {
  const history: HistoryEntry[] = config.history?.length ? config.history : layers.map(() => ({ created: config.created }));
  let li = 0;
  const rows = history.map((h) => {
    const size = h.empty_layer ? 0 : layers[li++]?.unpackedSize ?? 0;
    return { Id: '<missing>', Created: Math.floor((Date.parse(h.created ?? '') || 0) / 1000), CreatedBy: h.created_by ?? '', Tags: null as string[] | null, Size: size, Comment: h.comment ?? '' };
  });
  rows.reverse();
  if (rows.length > 0) {
    rows[0].Id = rec.id;
    rows[0].Tags = splitRefs(refs).tags;
  }
  return rows;
}

export interface ImageBackend {
  images: ImageService;
  graphDriverData(id: Digest): Record<string, string>;
  /** Registry pulls and pushes; without them those routes answer 501. */
  pull?: PullService;
  push?: PushService;
}

export function imageRoutes(b: ImageBackend): Route[] {
  const svc = b.images;
  return [
    {
      method: 'GET', path: '/images/json', handler: (ctx) => {
        // Containers stays -1 here, as in Docker: only `system df` counts them.
        return svc.list({ filters: ctx.query.get('filters') }).map((v) => imageSummary(v, ctx.version));
      },
    },
    {
      method: 'POST', path: '/images/load', handler: async (ctx) => {
        const loaded = await svc.load(ctx.req, ctx.signal);
        const out = new JsonMessageWriter(ctx.res);
        for (const l of loaded) {
          if (l.tags.length === 0) out.stream(`Loaded image ID: ${l.id}\n`);
          for (const t of l.tags) out.stream(`Loaded image: ${t}\n`);
        }
        out.end();
      },
    },
    {
      method: 'GET', path: '/images/get', handler: (ctx) => save(ctx, ctx.query.getAll('names').flatMap((n) => n.split(',')).filter(Boolean)),
    },
    { method: 'GET', path: '/images/{name*}/get', handler: (ctx) => save(ctx, [ctx.params.name]) },
    {
      method: 'POST', path: '/images/create', handler: async (ctx) => {
        const q = ctx.query;
        if (q.get('fromImage')) return pull(ctx);
        const src = q.get('fromSrc');
        if (src !== '-') throw invalidArgument(src ? `import from a URL is not supported: ${src}` : 'fromImage or fromSrc is required');
        let repo = q.get('repo') ?? '';
        const tag = q.get('tag');
        if (repo && tag) repo = `${repo}:${tag}`;
        const platform = q.get('platform') ? parsePlatform(q.get('platform')!) : undefined;
        const id = await svc.import(ctx.req, repo || undefined, {
          changes: q.getAll('changes'), message: q.get('message') ?? undefined, platform, source: '-',
        });
        const out = new JsonMessageWriter(ctx.res);
        out.status(id);
        out.end();
      },
    },
    {
      method: 'POST', path: '/images/{name*}/push', handler: async (ctx) => {
        if (!b.push) throw notImplemented('pushing to a registry is not supported by this berthd');
        let ref = parseReference(ctx.params.name);
        const tag = ctx.query.get('tag');
        if (tag) ref = { ...ref, tag };
        // Refusals (no such image) come before the stream starts, as an HTTP error.
        b.push.targets(ref, !ref.tag);
        const out = new JsonMessageWriter(ctx.res);
        await b.push.push(ref, {
          allTags: !ref.tag, credentials: registryAuth(ctx), signal: ctx.signal, progress: (m) => out.write({ ...m }),
        });
        out.end();
      },
    },
    {
      method: 'GET', path: '/distribution/{name*}/json', handler: async (ctx) => {
        if (!b.pull) throw notImplemented('registry access is not supported by this berthd');
        return b.pull.inspect(parseReference(ctx.params.name), registryAuth(ctx), ctx.signal);
      },
    },
    {
      method: 'POST', path: '/images/prune', handler: (ctx) => svc.prune({ filters: ctx.query.get('filters') }),
    },
    {
      method: 'GET', path: '/images/{name*}/json', handler: async (ctx) => {
        const { view, config } = await svc.inspect(ctx.params.name);
        return imageInspect(view, config, b.graphDriverData(view.record.id), ctx.version);
      },
    },
    {
      method: 'GET', path: '/images/{name*}/history', handler: async (ctx) => {
        const { view, config, layers } = await svc.inspect(ctx.params.name);
        return imageHistory(view.record, view.refs, config, layers);
      },
    },
    {
      method: 'POST', path: '/images/{name*}/tag', handler: (ctx) => {
        const repo = ctx.query.get('repo');
        if (!repo) throw invalidArgument('repository name must have at least one component');
        const tag = ctx.query.get('tag');
        svc.tag(ctx.params.name, tag ? `${repo}:${tag}` : repo);
        ctx.res.writeHead(201);
        ctx.res.end();
      },
    },
    {
      method: 'DELETE', path: '/images/{name*}', handler: (ctx) =>
        svc.remove(ctx.params.name, { force: boolParam(ctx.query, 'force'), noprune: boolParam(ctx.query, 'noprune') }),
    },
  ];

  /** `POST /images/create?fromImage=`: a pull, streamed as Docker's JSON progress messages. */
  async function pull(ctx: import('../server.ts').Context): Promise<void> {
    if (!b.pull) throw notImplemented('pulling from a registry is not supported by this berthd');
    const q = ctx.query;
    let ref = parseReference(q.get('fromImage')!);
    // `tag` may be a tag or a digest; with neither here nor in fromImage, every tag is pulled (as Docker's API does).
    const tag = q.get('tag');
    if (tag) ref = isDigest(tag) ? { ...ref, tag: undefined, digest: tag } : { ...ref, tag };
    const platform = q.get('platform') ? parsePlatform(q.get('platform')!) : undefined;
    const out = new JsonMessageWriter(ctx.res);
    try {
      await b.pull.pull(ref, {
        platform, allTags: !ref.tag && !ref.digest, credentials: registryAuth(ctx), signal: ctx.signal, progress: (m) => out.write({ ...m }),
      });
    } catch (e) {
      // A registry's 401 is not the daemon's: as dockerd's pull does, it goes back as a plain error, so the
      // docker CLI reports it instead of taking it for its cue to prompt for a login (which waits on stdin forever).
      if (isBerthError(e, 'Unauthorized')) throw new BerthError(ErrorCode.Internal, e.message, { cause: e });
      throw e;
    }
    out.end();
  }

  async function save(ctx: import('../server.ts').Context, names: string[]): Promise<void> {
    if (names.length === 0) throw invalidArgument('no image names given to save');
    const items = svc.saveSelection(names);
    ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    try {
      await pipeline(Readable.from(svc.save(items, ctx.signal)), ctx.res);
    } catch (e) {
      // Headers are gone; cutting the connection is how a failed archive is told apart from a good one.
      ctx.res.destroy(e as Error);
    }
  }
}

/** The credentials the client sent for the registry (the docker CLI's `X-Registry-Auth`), if any. */
function registryAuth(ctx: import('../server.ts').Context) {
  const h = ctx.req.headers['x-registry-auth'];
  return decodeRegistryAuth(Array.isArray(h) ? h[0] : h);
}
