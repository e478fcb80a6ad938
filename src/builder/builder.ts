// The Dockerfile executor. Each stage is a chain of steps; each step has a cache key made from its
// parent's key and its own canonical description (for COPY and ADD, the content hash of the files
// it reads), so a step whose key was seen before takes its stored result instead of running.
// Stages are memoised promises: the target's dependencies start together and build in parallel,
// and stages the target does not need never run.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Digest } from '../common/digest.ts';
import { invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContentStore } from '../content/store.ts';
import { containerLayerFilter } from '../diff/container-layer.ts';
import { layerTar } from '../diff/tree.ts';
import { type ImageConfig, type Platform, chainIds, formatPlatform, MediaType } from '../images/oci.ts';
import type { LayerRecord } from '../images/store.ts';
import { ociLayer } from '../images/oci-image.ts';
import type { Unpacker } from '../images/unpack.ts';
import type { Lease, LeaseManager } from '../metadata/leases.ts';
import { mountRootfs, unmountRootfs } from '../runtime/rootfs.ts';
import type { MountRequest } from '../runtime/spec.ts';
import { resolveUser } from '../runtime/user.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import { type BuildCache, type BuildState } from './cache.ts';
import type { BuildContext } from './context.ts';
import { copyInto, type InlineFile, resolveSources, sourcesDigest } from './copy.ts';
import { expandCommand, expandHeredoc, expandWord } from './dockerfile/expand.ts';
import { heredocForSource, parseDockerfile, parseTriggers, runInvocation } from './dockerfile/instructions.ts';
import type { Command, Dockerfile, Stage } from './dockerfile/types.ts';
import { DockerfileError } from './dockerfile/types.ts';
import { fetchUrl, isArchive, extractArchive } from './add.ts';
import { runStep } from './run-step.ts';

/** Bumped whenever what a key covers changes, so old cache entries are never misread. */
const CACHE_KEY_VERSION = 1;

/** An image a stage starts from. */
export interface BaseImage {
  id: Digest;
  config: ImageConfig;
  layers: LayerRecord[];
}

export interface BuilderDeps {
  content: ContentStore;
  snapshots: OverlaySnapshotter;
  unpacker: Unpacker;
  leases: LeaseManager;
  cache: BuildCache;
  runc: { binary: string; root: string };
  /** Scratch space for bundles and mounts. */
  scratch: string;
  /** A local image by name, pulling it when asked or missing (where pulling is possible). */
  baseImage: (name: string, platform: Platform, pull: boolean, signal?: AbortSignal) => Promise<BaseImage>;
  log: Logger;
}

export interface BuildRequest {
  context: BuildContext;
  /** The Dockerfile's text and its name as the user gave it (for messages). */
  dockerfile: string;
  dockerfileName: string;
  buildArgs: Record<string, string | null | undefined>;
  target?: string;
  labels?: Record<string, string>;
  noCache?: boolean;
  pull?: boolean;
  platform: Platform;
  /** RUN --mount=type=secret: id → content. */
  secrets?: Map<string, Buffer>;
  /** Holds what the build writes until the caller has recorded the image. */
  lease: Lease;
  signal?: AbortSignal;
}

/** What the build tells its client as it goes. `stream` is the classic builder's text. */
export interface BuildOutput {
  stream(text: string): void;
  /** Structured progress for berth's own CLI. */
  step?(e: StepEvent): void;
}

export interface StepEvent {
  id: number;
  stage: string;
  text: string;
  status: 'running' | 'cached' | 'done' | 'error';
  ms?: number;
}

export interface BuildResult {
  state: BuildState;
  warnings: string[];
}

/** Automatic platform ARGs (BuildKit's), from the target and build platforms. */
function platformArgs(target: Platform, build: Platform): Record<string, string> {
  return {
    TARGETPLATFORM: formatPlatform(target), TARGETOS: target.os, TARGETARCH: target.architecture, TARGETVARIANT: target.variant ?? '',
    BUILDPLATFORM: formatPlatform(build), BUILDOS: build.os, BUILDARCH: build.architecture, BUILDVARIANT: build.variant ?? '',
  };
}

/** Build args every Dockerfile may use without declaring them (proxies). */
const PREDEFINED_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function keyOf(parent: string, op: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify({ v: CACHE_KEY_VERSION, parent, op })).digest('hex')}`;
}

/** One stage as it runs: its state and key so far, and its ARG scope. */
interface StageRun {
  stage: Stage;
  state: BuildState;
  key: string;
  args: Map<string, string | undefined>;
  cmdSet: boolean;
  platform: Platform;
}

interface StageResult {
  state: BuildState;
  key: string;
}

export class Builder {
  #d: BuilderDeps;

  constructor(deps: BuilderDeps) {
    this.#d = deps;
  }

  async build(req: BuildRequest, out: BuildOutput): Promise<BuildResult> {
    let df: Dockerfile;
    try {
      df = parseDockerfile(req.dockerfile);
    } catch (e) {
      if (e instanceof DockerfileError) throw invalidArgument(`${req.dockerfileName}:${e.line}: ${e.message}`, e);
      throw e;
    }
    return new BuildRun(this.#d, req, out, df).run();
  }

  /**
   * `--squash`: the whole image as one layer (the merged root filesystem), its history kept with
   * every earlier entry marked as making no layer.
   */
  async squash(state: BuildState, lease: Lease, signal?: AbortSignal): Promise<BuildState> {
    const d = this.#d;
    const view = await mountView(d, state.layers, lease, signal);
    try {
      const { treeTar } = await import('../diff/tree.ts');
      const blob = await d.content.writeStream(treeTar(view.root, { signal }), (dg) => lease.blobs.add(dg));
      const layer: LayerRecord = { blob: blob.digest, diffId: blob.digest, size: blob.size, unpackedSize: blob.size, mediaType: MediaType.OciLayer };
      const config = structuredClone(state.config);
      const created = new Date().toISOString();
      config.rootfs = { type: 'layers', diff_ids: [layer.diffId] };
      config.history = [...(config.history ?? []).map((h) => ({ ...h, empty_layer: true })), { created, created_by: 'berth build --squash', comment: 'merge' }];
      config.created = created;
      return { config, layers: [layer] };
    } finally {
      await view.release();
    }
  }
}

/** A read-only mount of the root filesystem that `layers` make (for COPY --from and --squash). */
async function mountView(d: BuilderDeps, layers: LayerRecord[], lease: Lease, signal?: AbortSignal): Promise<{ root: string; release: () => Promise<void> }> {
  const top = await d.unpacker.unpack(layers, signal);
  const key = `build-view-${randomBytes(8).toString('hex')}`;
  lease.snapshots.add(key);
  const root = join(d.scratch, key);
  await mkdir(root, { recursive: true });
  const release = async () => {
    if (top) await unmountRootfs(root).catch(() => unmountRootfs(root, true)).catch(() => {});
    await rm(root, { recursive: true, force: true }).catch(() => {});
    if (d.snapshots.stat(key)) await d.snapshots.remove(key).catch(() => {});
  };
  if (!top) return { root, release };
  try {
    await mountRootfs(await d.snapshots.view(key, top), root);
  } catch (e) {
    await release();
    throw e;
  }
  return { root, release };
}

class BuildRun {
  #d: BuilderDeps;
  #req: BuildRequest;
  #out: BuildOutput;
  #df: Dockerfile;
  #escape: string;
  #stages = new Map<number, Promise<StageResult>>();
  #usedArgs = new Set<string>();
  #metaArgs = new Map<string, string | undefined>();
  #lease: Lease;
  #stepNo = 0;
  #totalSteps: number;
  #eventId = 0;
  #failed = false;
  /** Blobs this build has already found in the content store. */
  #present = new Set<string>();

  constructor(d: BuilderDeps, req: BuildRequest, out: BuildOutput, df: Dockerfile) {
    this.#d = d;
    this.#req = req;
    this.#out = out;
    this.#df = df;
    this.#escape = df.directives.escape;
    this.#lease = req.lease;
    this.#totalSteps = df.stages.reduce((n, s) => n + 1 + s.commands.length, 0);
  }

  async run(): Promise<BuildResult> {
    try {
      const auto = platformArgs(this.#req.platform, this.#req.platform);
      for (const a of this.#df.metaArgs) {
        const given = this.#buildArg(a.name);
        // An automatic platform ARG declared without a value keeps its automatic value.
        const value = given ?? (a.value === undefined ? auto[a.name] : this.#expand(a.value, (n) => this.#metaArgs.get(n) ?? auto[n]));
        this.#metaArgs.set(a.name, value);
        this.#usedArgs.add(a.name);
      }
      for (const [k, v] of Object.entries(auto)) if (!this.#metaArgs.has(k)) this.#metaArgs.set(k, v);
      const target = this.#targetStage();
      // Start every stage the target needs at once: independent ones build in parallel.
      for (const i of this.#dependencies(target)) void this.#stage(i).catch(() => {});
      const result = await this.#stage(target.index);
      const warnings: string[] = [];
      const unused = Object.keys(this.#req.buildArgs).filter((k) => !this.#usedArgs.has(k) && !PREDEFINED_ARGS.has(k));
      if (unused.length) warnings.push(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
      const state = structuredClone(result.state);
      if (this.#req.labels && Object.keys(this.#req.labels).length) {
        state.config.config = { ...state.config.config, Labels: { ...state.config.config?.Labels, ...this.#req.labels } };
      }
      state.config.created = state.config.history?.at(-1)?.created ?? state.config.created;
      return { state, warnings };
    } finally {
      // A stage still running beside a failed one stops at its next step.
      this.#failed = true;
    }
  }

  #targetStage(): Stage {
    const stages = this.#df.stages;
    if (stages.length === 0) throw invalidArgument(`${this.#req.dockerfileName}: the Dockerfile has no FROM instruction`);
    if (!this.#req.target) return stages.at(-1)!;
    const t = this.#req.target.toLowerCase();
    const s = stages.find((x) => x.name === t);
    if (!s) throw invalidArgument(`failed to reach build target ${this.#req.target} in Dockerfile`);
    return s;
  }

  /** The stage a name refers to (an AS name or an index), if it names one before `before`. */
  #stageByName(name: string, before: number): Stage | undefined {
    const lower = name.toLowerCase();
    const byName = this.#df.stages.find((s) => s.name === lower && s.index < before);
    if (byName) return byName;
    if (/^\d+$/.test(name)) {
      const i = Number(name);
      if (i < before) return this.#df.stages[i];
    }
    return undefined;
  }

  /** Every stage `s` depends on, transitively (FROM <stage>, COPY --from=<stage>). */
  #dependencies(s: Stage, seen = new Set<number>()): Set<number> {
    const refs: string[] = [this.#expandMeta(s.base)];
    for (const c of s.commands) {
      if ((c.kind === 'COPY' || c.kind === 'ADD') && c.from) refs.push(this.#expandMeta(c.from));
      if (c.kind === 'RUN') for (const m of c.mounts) if (m.options.from) refs.push(m.options.from);
    }
    for (const r of refs) {
      const dep = this.#stageByName(r, s.index);
      if (dep && !seen.has(dep.index)) {
        seen.add(dep.index);
        this.#dependencies(dep, seen);
      }
    }
    return seen;
  }

  #buildArg(name: string): string | undefined {
    const v = this.#req.buildArgs[name];
    if (v === undefined) return undefined;
    // `--build-arg NAME` with no value takes it from the client's environment; the CLI fills it, or null means unset.
    return v === null ? undefined : v;
  }

  #expand(word: string, lookup: (name: string) => string | undefined): string {
    try {
      return expandWord(word, lookup, this.#escape);
    } catch (e) {
      throw invalidArgument((e as Error).message, e);
    }
  }

  #expandMeta(word: string): string {
    return this.#expand(word, (n) => this.#metaArgs.get(n));
  }

  #stage(index: number): Promise<StageResult> {
    let p = this.#stages.get(index);
    if (!p) {
      p = this.#runStage(this.#df.stages[index]);
      this.#stages.set(index, p);
    }
    return p;
  }

  #emit(stage: string, text: string, status: StepEvent['status'], id = ++this.#eventId, ms?: number): number {
    this.#out.step?.({ id, stage, text, status, ...(ms !== undefined ? { ms } : {}) });
    return id;
  }

  async #runStage(stage: Stage): Promise<StageResult> {
    this.#req.signal?.throwIfAborted();
    const name = stage.name ?? String(stage.index);
    const baseName = this.#expandMeta(stage.base);
    const platform = stage.platform ? parsePlatformArg(this.#expandMeta(stage.platform)) : this.#req.platform;
    this.#out.stream(`Step ${++this.#stepNo}/${this.#totalSteps} : FROM ${stage.base}${stage.name ? ` AS ${stage.name}` : ''}\n`);
    const started = performance.now();
    const ev = this.#emit(name, `FROM ${baseName}`, 'running');
    let state: BuildState;
    let key: string;
    const dep = this.#stageByName(baseName, stage.index);
    if (dep) {
      const r = await this.#stage(dep.index);
      state = structuredClone(r.state);
      key = r.key;
    } else if (baseName.toLowerCase() === 'scratch') {
      state = {
        config: { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
        layers: [],
      };
      key = keyOf('', { from: 'scratch', platform: formatPlatform(platform) });
    } else {
      const img = await this.#d.baseImage(baseName, platform, this.#req.pull === true, this.#req.signal);
      state = { config: structuredClone(img.config), layers: img.layers.map(ociLayer) };
      state.config.history ??= [];
      key = keyOf('', { from: img.id });
    }
    this.#out.stream(` ---> ${short(key)}\n`);
    this.#emit(name, `FROM ${baseName}`, 'done', ev, performance.now() - started);
    const run: StageRun = { stage, state, key, args: new Map(), cmdSet: false, platform };
    // ONBUILD triggers of the base run first, then leave the image: they fire once, in the child.
    const triggers = run.state.config.config?.OnBuild ?? [];
    if (run.state.config.config) run.state.config.config.OnBuild = null;
    if (triggers.length) {
      const parsed = parseTriggers(triggers, this.#escape as '\\' | '`');
      this.#out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      for (const c of parsed) await this.#dispatch(run, c);
    }
    for (const c of stage.commands) {
      this.#req.signal?.throwIfAborted();
      if (this.#failed) throw invalidArgument('build stopped');
      this.#out.stream(`Step ${++this.#stepNo}/${this.#totalSteps} : ${c.original}\n`);
      await this.#dispatch(run, c);
    }
    return { state: run.state, key: run.key };
  }

  /** Variables for expansion in a stage: the image's ENV wins over ARGs of the same name. */
  #lookup(run: StageRun): (name: string) => string | undefined {
    return (n) => {
      const env = envValue(run.state.config.config?.Env, n);
      if (env !== undefined) return env;
      return run.args.get(n);
    };
  }

  /**
   * Runs one instruction: a step keyed by its parent and description. A cached result is taken as
   * it is, which keeps image IDs stable across rebuilds.
   */
  async #step(run: StageRun, kind: string, text: string, op: unknown, exec: (s: BuildState) => Promise<{ layer?: LayerRecord }>): Promise<void> {
    const key = keyOf(run.key, { kind, op });
    const stageName = run.stage.name ?? String(run.stage.index);
    const started = performance.now();
    if (!this.#req.noCache) {
      const hit = this.#d.cache.lookup(key);
      if (hit && (await this.#layersPresent(hit))) {
        run.state = hit;
        run.key = key;
        this.#out.stream(` ---> Using cache\n ---> ${short(key)}\n`);
        this.#emit(stageName, text, 'cached', undefined, performance.now() - started);
        return;
      }
    }
    const ev = this.#emit(stageName, text, 'running');
    const next = structuredClone(run.state);
    try {
      const { layer } = await exec(next);
      const created = new Date().toISOString();
      next.config.history = [...(next.config.history ?? []), {
        created, created_by: historyText(kind, text), comment: 'berth build', ...(layer ? {} : { empty_layer: true }),
      }];
      if (layer) {
        next.layers.push(layer);
        next.config.rootfs = { type: 'layers', diff_ids: [...next.config.rootfs.diff_ids, layer.diffId] };
      }
      this.#d.cache.store(key, kind, text, next, layer);
    } catch (e) {
      this.#emit(stageName, text, 'error', ev, performance.now() - started);
      throw e;
    }
    run.state = next;
    run.key = key;
    this.#out.stream(` ---> ${short(key)}\n`);
    this.#emit(stageName, text, 'done', ev, performance.now() - started);
  }

  /** A cached result is usable only while its layers' blobs exist (a prune may have raced it). */
  async #layersPresent(s: BuildState): Promise<boolean> {
    for (const l of s.layers) {
      // Each step's state repeats the layers before it: a blob is looked at once per build.
      if (this.#present.has(l.blob)) continue;
      if (!(await this.#d.content.info(l.blob))) return false;
      this.#present.add(l.blob);
    }
    return true;
  }

  async #dispatch(run: StageRun, c: Command): Promise<void> {
    const lookup = this.#lookup(run);
    // Words are expanded as Docker expands each instruction (and that removes their quotes).
    let e: Command;
    try {
      e = expandCommand(c, lookup, this.#escape);
    } catch (err) {
      throw invalidArgument(`${this.#req.dockerfileName}:${c.line}: ${(err as Error).message}`, err);
    }
    const cfg = (s: BuildState) => (s.config.config ??= {});
    const text = c.original;
    switch (e.kind) {
      case 'ENV': {
        const pairs = e.pairs;
        return this.#step(run, 'ENV', text, pairs, async (s) => {
          const conf = cfg(s);
          let env = conf.Env ?? [];
          for (const [k, v] of pairs) env = [...env.filter((e) => e.split('=', 1)[0] !== k), `${k}=${v}`];
          conf.Env = env;
          return {};
        });
      }
      case 'ARG': {
        for (const a of e.args) {
          const given = this.#buildArg(a.name);
          let value: string | undefined;
          if (given !== undefined) value = given;
          else if (a.value !== undefined) value = a.value;
          else if (this.#metaArgs.has(a.name)) value = this.#metaArgs.get(a.name);
          run.args.set(a.name, value);
          this.#usedArgs.add(a.name);
        }
        // An ARG changes what later steps see only through their own keys (RUN includes its args).
        this.#out.stream(` ---> ${short(run.key)}\n`);
        return;
      }
      case 'LABEL': {
        const pairs = e.pairs;
        return this.#step(run, 'LABEL', text, pairs, async (s) => {
          const conf = cfg(s);
          conf.Labels = { ...conf.Labels };
          for (const [k, v] of pairs) conf.Labels[k] = v;
          return {};
        });
      }
      case 'WORKDIR': {
        const dir = posix.resolve(cfg(run.state).WorkingDir || '/', e.value);
        return this.#step(run, 'WORKDIR', text, dir, async (s) => {
          cfg(s).WorkingDir = dir;
          // Made when missing, owned by the current user as Docker does.
          const layer = await this.#layerStep(run, s, async (root) => {
            const { resolveInRoot } = await import('../diff/extract.ts');
            const host = await resolveInRoot(root, dir);
            const { lstat, mkdir: mk, lchown } = await import('node:fs/promises');
            if (await lstat(host).catch(() => undefined)) return;
            await mk(host, { recursive: true, mode: 0o755 });
            const user = cfg(s).User;
            if (user) {
              const u = await resolveUser(root, user);
              await lchown(host, u.uid, u.gid);
            }
          }, true);
          return { layer };
        });
      }
      case 'USER': {
        const user = e.value;
        return this.#step(run, 'USER', text, user, async (s) => ((cfg(s).User = user), {}));
      }
      case 'STOPSIGNAL': {
        const sig = e.value;
        return this.#step(run, 'STOPSIGNAL', text, sig, async (s) => ((cfg(s).StopSignal = sig), {}));
      }
      case 'MAINTAINER':
        return this.#step(run, 'MAINTAINER', text, e.value, async (s) => ((s.config.author = e.value), {}));
      case 'EXPOSE': {
        const ports = e.ports.flatMap(exposedPorts);
        return this.#step(run, 'EXPOSE', text, ports, async (s) => {
          const conf = cfg(s);
          conf.ExposedPorts = { ...conf.ExposedPorts };
          for (const p of ports) conf.ExposedPorts[p] = {};
          return {};
        });
      }
      case 'VOLUME': {
        const paths = e.paths.filter((p) => p !== '');
        if (paths.length === 0) throw invalidArgument(`${this.#req.dockerfileName}:${e.line}: VOLUME specified can not be an empty string`);
        return this.#step(run, 'VOLUME', text, paths, async (s) => {
          const conf = cfg(s);
          conf.Volumes = { ...conf.Volumes };
          for (const p of paths) conf.Volumes[p] = {};
          return {};
        });
      }
      case 'SHELL':
        return this.#step(run, 'SHELL', text, e.args, async (s) => ((cfg(s).Shell = [...e.args]), {}));
      case 'CMD': {
        const args = e.shell ? [...(cfg(run.state).Shell ?? DEFAULT_SHELL), e.args[0]] : [...e.args];
        run.cmdSet = true;
        return this.#step(run, 'CMD', text, args, async (s) => {
          cfg(s).Cmd = args;
          if (e.shell) cfg(s).ArgsEscaped = true;
          return {};
        });
      }
      case 'ENTRYPOINT': {
        const args = e.shell ? [...(cfg(run.state).Shell ?? DEFAULT_SHELL), e.args[0]] : [...e.args];
        const keepCmd = run.cmdSet;
        return this.#step(run, 'ENTRYPOINT', text, { args, keepCmd }, async (s) => {
          cfg(s).Entrypoint = args;
          // A CMD inherited from the base means nothing to a new ENTRYPOINT; one set in this stage stays.
          if (!keepCmd) cfg(s).Cmd = null;
          return {};
        });
      }
      case 'HEALTHCHECK': {
        const hc = e.test[0] === 'NONE'
          ? { Test: ['NONE'] }
          : {
            Test: e.test,
            ...(e.interval ? { Interval: e.interval } : {}), ...(e.timeout ? { Timeout: e.timeout } : {}),
            ...(e.startPeriod ? { StartPeriod: e.startPeriod } : {}), ...(e.startInterval ? { StartInterval: e.startInterval } : {}),
            ...(e.retries ? { Retries: e.retries } : {}),
          };
        return this.#step(run, 'HEALTHCHECK', text, hc, async (s) => ((cfg(s).Healthcheck = hc), {}));
      }
      case 'ONBUILD':
        return this.#step(run, 'ONBUILD', text, e.expression, async (s) => {
          cfg(s).OnBuild = [...(cfg(s).OnBuild ?? []), e.expression];
          return {};
        });
      case 'RUN':
        return this.#run(run, e, text);
      case 'COPY':
      case 'ADD':
        return this.#copy(run, e);
    }
  }

  async #run(run: StageRun, c: Extract<Command, { kind: 'RUN' }>, text: string): Promise<void> {
    const conf = run.state.config.config ?? {};
    const shell = conf.Shell ?? DEFAULT_SHELL;
    let inv;
    try {
      inv = runInvocation(c);
    } catch (err) {
      throw invalidArgument(`${this.#req.dockerfileName}:${c.line}: ${(err as Error).message}`, err);
    }
    const args = inv.shell ? [...shell, inv.args[0]] : [...inv.args];
    // Build args in scope reach the command's environment (the image's ENV wins), and its key.
    const argEnv: string[] = [];
    for (const [k, v] of run.args) if (v !== undefined && envValue(conf.Env, k) === undefined) argEnv.push(`${k}=${v}`);
    for (const k of PREDEFINED_ARGS) {
      const v = this.#buildArg(k);
      if (v !== undefined && !run.args.has(k)) argEnv.push(`${k}=${v}`);
    }
    const secrets = c.mounts.filter((m) => m.type === 'secret');
    const unsupported = c.mounts.find((m) => m.type !== 'secret');
    if (unsupported) throw invalidArgument(`${this.#req.dockerfileName}:${c.line}: RUN --mount=type=${unsupported.type} is not supported by berth yet`);
    const secretIds = secrets.map((m) => m.options.id ?? posix.basename(m.options.target ?? m.options.dst ?? m.options.destination ?? ''));
    const op = { args, script: inv.script ?? null, argEnv: argEnv.filter((e) => !PREDEFINED_ARGS.has(e.split('=', 1)[0])), secrets: secretIds, network: c.network ?? '' };
    return this.#step(run, 'RUN', text, op, async (s) => {
      const env = [...(s.config.config?.Env ?? []), ...argEnv];
      if (!env.some((e) => e.startsWith('PATH='))) env.unshift(`PATH=${DEFAULT_PATH}`);
      const mounts: MountRequest[] = [];
      const secretDir = join(this.#d.scratch, `secrets-${randomBytes(6).toString('hex')}`);
      const stubs: string[] = [];
      try {
        for (const [i, m] of secrets.entries()) {
          const id = secretIds[i];
          const value = this.#req.secrets?.get(id);
          const target = m.options.target ?? m.options.dst ?? m.options.destination ?? `/run/secrets/${id}`;
          if (value === undefined) {
            if (m.options.required === 'true') throw invalidArgument(`secret ${id} not found`);
            continue;
          }
          await mkdir(secretDir, { recursive: true, mode: 0o700 });
          const file = join(secretDir, String(i));
          const { writeFile } = await import('node:fs/promises');
          await writeFile(file, value, { mode: Number.parseInt(m.options.mode ?? '0400', 8) });
          mounts.push({ type: 'bind', source: file, destination: target, readonly: true });
          stubs.push(target);
        }
        if (inv.script) {
          // A lone heredoc starting with #! runs as its own program, mounted where /dev (a tmpfs) keeps it out of the layer.
          await mkdir(secretDir, { recursive: true, mode: 0o700 });
          const { writeFile } = await import('node:fs/promises');
          const file = join(secretDir, 'script');
          await writeFile(file, inv.script.content, { mode: 0o755 });
          mounts.push({ type: 'bind', source: file, destination: inv.script.path, readonly: true });
        }
        this.#out.stream(` ---> Running in ${short(keyOf(run.key, text)).slice(0, 12)}\n`);
        const layer = await this.#layerStep(run, s, async (rootfs) => {
          const { resolveInRoot } = await import('../diff/extract.ts');
          const { lstat } = await import('node:fs/promises');
          // Mount points runc makes for secrets are removed afterwards: a secret never lands in a layer, not even as a name.
          const made: string[] = [];
          for (const t of stubs) {
            let p = t;
            while (p !== '/' && !(await lstat(await resolveInRoot(rootfs, p)).catch(() => undefined))) {
              made.push(p);
              p = posix.dirname(p);
            }
          }
          try {
            await runStep({
              runc: this.#d.runc, scratch: this.#d.scratch, rootfs, args, env, cwd: s.config.config?.WorkingDir || '/',
              user: s.config.config?.User ?? '', mounts, network: c.network === 'none' ? 'none' : 'host',
              onOutput: (chunk) => this.#out.stream(chunk.toString('utf8')), signal: this.#req.signal,
            });
          } finally {
            for (const p of made) await rm(await resolveInRoot(rootfs, p, false), { recursive: true, force: true }).catch(() => {});
          }
        });
        return { layer };
      } finally {
        await rm(secretDir, { recursive: true, force: true });
      }
    });
  }

  /** COPY and ADD, their words already expanded. */
  async #copy(run: StageRun, c: Extract<Command, { kind: 'COPY' | 'ADD' }>): Promise<void> {
    const instr = c.kind;
    const conf = run.state.config.config ?? {};
    const destRaw = c.dest;
    const dest = posix.resolve(conf.WorkingDir || '/', destRaw);
    const lookup = this.#lookup(run);
    const inline: InlineFile[] = [];
    const patterns: string[] = [];
    for (const src of c.sources) {
      const doc = heredocForSource(src, c.heredocs);
      if (doc) inline.push({ name: doc.name, mode: 0o644, content: Buffer.from(doc.expand ? expandHeredoc(doc.content, lookup) : doc.content) });
      else patterns.push(src);
    }
    const urls = instr === 'ADD' ? patterns.filter(isUrl) : [];
    const local = patterns.filter((p) => !isUrl(p));
    const chmod = c.chmod ? parseMode(c.chmod) : undefined;
    const chown = c.chown || undefined;
    const multi = c.sources.length > 1;
    let fromCtx = this.#req.context;
    let fromRoot: { root: string; release: () => Promise<void> } | undefined;
    const from = c.from || undefined;
    try {
      if (from) {
        const dep = this.#stageByName(from, run.stage.index);
        const st: BuildState = dep
          ? (await this.#stage(dep.index)).state
          : await this.#d.baseImage(from, run.platform, false, this.#req.signal).then((i) => ({ config: i.config, layers: i.layers }));
        fromRoot = await mountView(this.#d, st.layers, this.#lease, this.#req.signal);
        const { BuildContext } = await import('./context.ts');
        fromCtx = BuildContext.unfiltered(fromRoot.root);
      }
      const { sources, wildcard } = await resolveSources(fromCtx, local, instr);
      for (const u of urls) inline.push(await fetchUrl(u, this.#req.signal));
      const destIsDir = destRaw.endsWith('/') || destRaw.endsWith('/.') || destRaw === '.';
      if ((multi || wildcard) && sources.length + inline.length > 1 && !destIsDir) {
        throw invalidArgument(`When using ${instr} with more than one source file, the destination must be a directory and end with a /`);
      }
      // ADD unpacks a local tar archive instead of copying it.
      const archives = instr === 'ADD' ? await Promise.all(sources.map((s) => (s.st.isFile() ? isArchive(s.host) : false))) : [];
      const digest = await sourcesDigest(sources, inline);
      const op = { dest, destIsDir: destIsDir || multi || wildcard, chown: chown ?? '', chmod: c.chmod ?? '', from: from ?? '', digest, archives };
      await this.#step(run, instr, c.original, op, async (s) => {
        const layer = await this.#layerStep(run, s, async (rootfs) => {
          const owner = chown ? await resolveUser(rootfs, chown) : undefined;
          const plain = sources.filter((_, i) => !archives[i]);
          await copyInto(rootfs, plain, inline, { dest, destIsDir: op.destIsDir, owner, mode: chmod, signal: this.#req.signal });
          for (const [i, src] of sources.entries()) if (archives[i]) await extractArchive(rootfs, dest, src.host, this.#req.signal);
        });
        return { layer };
      });
    } finally {
      await fromRoot?.release();
    }
  }

  /**
   * Runs `mutate` on a writable root over the state's layers and turns what changed into a layer:
   * an uncompressed tar in the content store and a committed snapshot under its chain ID.
   * With `optional`, an empty change makes no layer.
   */
  async #layerStep(run: StageRun, s: BuildState, mutate: (rootfs: string) => Promise<void>, optional = false): Promise<LayerRecord | undefined> {
    const d = this.#d;
    const parentTop = await d.unpacker.unpack(s.layers, this.#req.signal);
    const key = `build-${randomBytes(8).toString('hex')}`;
    this.#lease.snapshots.add(key);
    const rootfs = join(d.scratch, key);
    let committed = false;
    try {
      const mounts = await d.snapshots.prepare(key, parentTop);
      await mountRootfs(mounts, rootfs);
      try {
        await mutate(rootfs);
      } finally {
        await unmountRootfs(rootfs).catch(() => unmountRootfs(rootfs, true));
        await rm(rootfs, { recursive: true, force: true }).catch(() => {});
      }
      const upper = d.snapshots.fsPath(key);
      const lowers = this.#lowerDirs(parentTop);
      const blob = await d.content.writeStream(layerTar(upper, { ...containerLayerFilter(lowers), signal: this.#req.signal }), (dg) => this.#lease.blobs.add(dg));
      // An empty tar is 1024 zero bytes: the step changed nothing.
      if (optional && blob.size <= 1024) return undefined;
      const layer: LayerRecord = { blob: blob.digest, diffId: blob.digest, size: blob.size, unpackedSize: blob.size, mediaType: MediaType.OciLayer };
      const chain = chainIds([...s.layers.map((l) => l.diffId), layer.diffId]).at(-1)!;
      this.#lease.snapshots.add(chain);
      if (d.snapshots.stat(chain)) {
        await d.snapshots.remove(key);
      } else {
        await d.snapshots.commit(chain, key, { parent: parentTop });
      }
      committed = true;
      return layer;
    } finally {
      if (!committed && d.snapshots.stat(key)) await d.snapshots.remove(key).catch(() => {});
    }
  }

  #lowerDirs(top: string): string[] {
    const out: string[] = [];
    for (let p = top; p; ) {
      const info = this.#d.snapshots.stat(p);
      if (!info) throw notFound(`snapshot ${p} is missing`);
      out.push(join(this.#d.snapshots.dir(info), 'fs'));
      p = info.parent;
    }
    return out;
  }
}

function envValue(env: readonly string[] | undefined, name: string): string | undefined {
  if (!env) return undefined;
  for (let i = env.length - 1; i >= 0; i--) {
    const eq = env[i].indexOf('=');
    if ((eq < 0 ? env[i] : env[i].slice(0, eq)) === name) return eq < 0 ? '' : env[i].slice(eq + 1);
  }
  return undefined;
}

/** EXPOSE 80, 80/udp, 8000-8002/tcp → Docker's port keys. */
function exposedPorts(p: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) throw invalidArgument(`invalid containerPort: ${p}`);
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let i = lo; i <= hi; i++) out.push(`${i}/${proto}`);
  return out;
}

function parseMode(s: string): number {
  if (!/^[0-7]{1,4}$/.test(s)) throw invalidArgument(`invalid chmod parameter: ${s}`);
  return Number.parseInt(s, 8);
}

function parsePlatformArg(s: string): Platform {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw invalidArgument(`invalid platform: ${s}`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

function short(key: string): string {
  return key.replace(/^sha256:/, '').slice(0, 12);
}

function historyText(kind: string, text: string): string {
  return text.startsWith(kind) ? text : `${kind} ${text}`;
}
