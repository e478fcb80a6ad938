import type { Duplex } from 'node:stream';
import type { Digest } from '../common/digest.ts';
import { conflict, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { humanDuration } from '../common/units.ts';
import { type ContainerRecord, type ContainerState, type ContainerStore, type DockerConfig, type DockerHostConfig, ZERO_TIME, initialState } from '../metadata/containers.ts';
import type { EventBus } from './events.ts';
import { matchLabels, parseFilters, parseTimestamp } from './filters.ts';
import type { ImageService } from './images.ts';
import type { MountJson, VolumeService } from './volumes.ts';
import { mergeImageConfig, processArgs } from './container-config.ts';
import { familiarString, parseReference, withDefaultTag } from '../images/reference.ts';
import { type Platform, formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../images/oci.ts';
import { type ExitInfo, RuntimeStartError, type StartOptions } from '../runtime/containers.ts';
import type { NetworkService } from './networks.ts';
import { hostConfigResources } from '../runtime/resources.ts';
import { validateResources } from '../runtime/spec.ts';
import { readHostFacts } from '../runtime/host.ts';

/** What actually runs a container: bundle, monitor, runc. Implemented in runtime/. */
export interface ContainerRuntime {
  /** Prepares the root filesystem (snapshot) for a new container. */
  prepare(rec: ContainerRecord): Promise<void>;
  /**
   * Starts the process and resolves once it runs, with its host pid.
   * Rejects with a RuntimeStartError carrying Docker's exit code (126, 127) when the command cannot run.
   */
  start(rec: ContainerRecord, opts: StartOptions): Promise<{ pid: number }>;
  /** The hosts and resolv.conf files a running container has (for `--network container:`). */
  networkFiles(rec: ContainerRecord): Promise<{ hosts: string; resolvConf: string }>;
  /** A connection to the running container's stdio: stdcopy frames out, raw bytes in. */
  attach(rec: ContainerRecord): Promise<Duplex>;
  closeStdin(rec: ContainerRecord): Promise<void>;
  resize(rec: ContainerRecord, rows: number, cols: number): Promise<void>;
  /** Resolves when the container's process has exited, with how it ended. */
  exited(rec: ContainerRecord): Promise<ExitStatus>;
  signal(rec: ContainerRecord, signal: string): Promise<void>;
  pause(rec: ContainerRecord): Promise<void>;
  resume(rec: ContainerRecord): Promise<void>;
  /** Tears down what start set up (runc state, mounts); keeps the container's files. */
  cleanup(rec: ContainerRecord): Promise<void>;
  /** Removes everything the container owns on disk. */
  remove(rec: ContainerRecord): Promise<void>;
  /** Whether a container the records say runs is in fact alive (after a daemon restart). */
  alive(rec: ContainerRecord): Promise<boolean>;
  logPath(rec: ContainerRecord): string;
}

export type ExitStatus = ExitInfo;

export const CONTAINER_LIST_FILTERS = ['status', 'name', 'id', 'label', 'ancestor', 'exited', 'before', 'since', 'volume', 'health', 'network', 'publish', 'expose', 'is-task'] as const;

/**
 * The container lifecycle with Docker's semantics. Every state change is
 * written to the store before it is announced, so a daemon that dies at any
 * point restarts into the truth.
 */
export class ContainerService {
  #store: ContainerStore;
  #images: ImageService;
  #runtime: ContainerRuntime;
  #events: EventBus;
  #log: Logger;
  #volumes: VolumeService | undefined;
  #networks: NetworkService | undefined;
  /** Exit waiters per container, resolved when its process ends. */
  #watchers = new Map<string, Promise<ExitStatus>>();

  constructor(deps: { store: ContainerStore; images: ImageService; runtime: ContainerRuntime; events: EventBus; log: Logger; volumes?: VolumeService; networks?: NetworkService }) {
    this.#store = deps.store;
    this.#images = deps.images;
    this.#runtime = deps.runtime;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#volumes = deps.volumes;
    this.#networks = deps.networks;
    this.#images.usage = {
      containersUsing: (id: Digest) => this.#store.usingImage(id).map((c) => ({ id: c.id, running: c.state.Running })),
    };
  }

  get store(): ContainerStore {
    return this.#store;
  }

  resolve(idOrName: string): ContainerRecord {
    return this.#store.resolve(idOrName);
  }

  async create(body: DockerConfig & { HostConfig?: DockerHostConfig }, name?: string, platform?: string): Promise<ContainerRecord & { warnings: string[] }> {
    const { HostConfig, NetworkingConfig, ...req } = body;
    if (typeof req.Image !== 'string' || !req.Image) throw invalidArgument('Config.Image is required');
    const image = platform ? await this.#images.findFor(req.Image, parsePlatform(platform)) : this.#images.store.find(req.Image);
    if (!image) throw notFound(`No such image: ${imageDisplay(req.Image)}`);
    const imgConfig = await this.#images.config(image.id);
    const have: Platform = { os: imgConfig.os, architecture: imgConfig.architecture, variant: imgConfig.variant };
    if (platform && !platformMatches(parsePlatform(platform), have)) {
      throw notFound(`image with reference ${req.Image} was found but does not match the specified platform: wanted ${formatPlatform(parsePlatform(platform))}, actual: ${formatPlatform(have)}`);
    }
    const warnings = !platform && !platformMatches(hostPlatform(), have)
      ? [`The requested image's platform (${formatPlatform(have)}) does not match the detected host platform (${formatPlatform(hostPlatform())}) and no specific platform was requested`]
      : [];
    const config = mergeImageConfig(req, imgConfig.config);
    processArgs(config);
    const hostConfig = normalizeHostConfig(HostConfig ?? {});
    // Docker refuses impossible limits at create, not at start.
    validateResources(hostConfigResources(hostConfig), readHostFacts());
    const rec = this.#store.create({
      name, image: req.Image, imageId: image.id, created: new Date().toISOString(),
      config: { ...config, Image: req.Image }, hostConfig, state: initialState(),
    });
    try {
      this.#networks?.attachContainer(rec, NetworkingConfig?.EndpointsConfig ?? {});
      await this.#volumes?.attachContainer(rec.id, rec.config, rec.hostConfig);
      await this.#runtime.prepare(rec);
    } catch (e) {
      await this.#volumes?.detachContainer(rec.id, true).catch(() => {});
      await this.#networks?.forgetContainer(rec).catch(() => {});
      this.#store.delete(rec.id);
      throw e;
    }
    this.#events.emit('container', 'create', rec.id, { image: rec.image, name: rec.name });
    return Object.assign(rec, { warnings });
  }

  list(opts: { all?: boolean; limit?: number; filters?: string | null }): ContainerRecord[] {
    const f = parseFilters(opts.filters, CONTAINER_LIST_FILTERS);
    const all = opts.all || (opts.limit ?? 0) > 0 || f.has('status') || f.has('exited');
    const created = (idOrName: string) => Date.parse(this.#store.resolve(idOrName).created);
    const before = f.get('before')?.map(created);
    const since = f.get('since')?.map(created);
    const ancestors = f.get('ancestor')?.map((a) => this.#images.store.find(a)?.id).filter((x) => x !== undefined);
    for (const s of f.get('status') ?? []) {
      if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(s)) throw invalidArgument(`invalid filter 'status=${s}'`);
    }
    let out = this.#store.list().filter((c) => {
      if (!all && !c.state.Running) return false;
      const t = Date.parse(c.created);
      if (f.has('status') && !f.get('status')!.includes(c.state.Status)) return false;
      if (f.has('name') && !f.get('name')!.some((n) => new RegExp(n).test(`/${c.name}`))) return false;
      if (f.has('id') && !f.get('id')!.some((p) => c.id.startsWith(p))) return false;
      if (!matchLabels(f.get('label'), c.config.Labels ?? {})) return false;
      if (ancestors && !ancestors.includes(c.imageId as Digest)) return false;
      if (f.has('exited') && (c.state.Status !== 'exited' || !f.get('exited')!.includes(String(c.state.ExitCode)))) return false;
      if (before && !before.every((b) => t < b)) return false;
      if (since && !since.every((s) => t > s)) return false;
      if (f.has('health') && !f.get('health')!.includes(c.state.Health?.Status ?? 'none')) return false;
      if (f.has('volume') && !f.get('volume')!.some((v) => this.#volumeKeys(c).includes(v))) return false;
      if (f.has('network') && !f.get('network')!.some((n) => this.#networkKeys(c).includes(n))) return false;
      if (f.has('publish') && !f.get('publish')!.some((p) => this.#publishKeys(c).includes(withProto(p)))) return false;
      if (f.has('expose') && !f.get('expose')!.some((p) => Object.keys(c.config.ExposedPorts ?? {}).includes(withProto(p)))) return false;
      return true;
    });
    if (opts.limit && opts.limit > 0) out = out.slice(0, opts.limit);
    return out;
  }

  /** Docker's MountPoints for inspect and ps: binds and volumes. */
  mounts(c: ContainerRecord): MountJson[] {
    return this.#volumes ? this.#volumes.mountsJson(c.id) : [];
  }

  /** What `ps --filter network=` matches: the names and IDs of the container's networks. */
  #networkKeys(c: ContainerRecord): string[] {
    return this.#networks?.networkKeys(c) ?? [];
  }

  /** What `ps --filter publish=` matches: each published host port as `port/proto`. */
  #publishKeys(c: ContainerRecord): string[] {
    return this.#networks && c.state.Running ? this.#networks.publishedPorts(c).map((p) => `${p.hostPort}/${p.proto}`) : [];
  }

  /** What `ps --filter volume=` matches: each mount's volume name or host path, and its destination. */
  #volumeKeys(c: ContainerRecord): string[] {
    if (!this.#volumes) return volumeNames(c);
    return this.#volumes.mountPoints(c.id).flatMap((m) => [m.type === 'volume' ? m.name : m.source, m.destination]);
  }

  rename(idOrName: string, newName: string): void {
    const c = this.#store.resolve(idOrName);
    const old = c.name;
    this.#store.rename(c.id, newName);
    this.#events.emit('container', 'rename', c.id, { name: newName.replace(/^\//, ''), oldName: `/${old}` });
  }

  async remove(idOrName: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (c.state.Running || c.state.Paused || c.state.Restarting) {
      if (!opts.force) {
        throw conflict(`cannot remove container "/${c.name}": container is ${c.state.Paused ? 'paused' : 'running'}: stop the container before removing or force remove`);
      }
      await this.kill(c.id, 'SIGKILL').catch(() => {});
      await this.#watchers.get(c.id);
    }
    await this.#runtime.remove(c);
    await this.#networks?.forgetContainer(c).catch((e) => this.#log.warn('releasing the network failed', { id: c.id, err: e }));
    this.#store.delete(c.id);
    await this.#volumes?.detachContainer(c.id, Boolean(opts.volumes)).catch((e) => this.#log.warn('releasing volumes failed', { id: c.id, err: e }));
    this.#events.emit('container', 'destroy', c.id, { image: c.image, name: c.name });
    const ws = this.#removeWaiters.get(c.id);
    this.#removeWaiters.delete(c.id);
    for (const w of ws ?? []) w();
  }

  /** `docker container prune`: every stopped container. */
  async prune(filters?: string | null): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const f = parseFilters(filters, ['until', 'label', 'label!']);
    const until = f.get('until')?.map((v) => parseTimestamp(v));
    const deleted: string[] = [];
    for (const c of this.#store.list()) {
      if (c.state.Running || c.state.Paused || c.state.Restarting) continue;
      if (!matchLabels(f.get('label'), c.config.Labels ?? {})) continue;
      if (f.get('label!')?.some((l) => matchLabels([l], c.config.Labels ?? {}))) continue;
      if (until && !until.every((t) => Date.parse(c.created) <= t)) continue;
      await this.remove(c.id);
      deleted.push(c.id);
    }
    this.#events.emit('container', 'prune', '', { reclaimed: '0' });
    return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: 0 };
  }

  async kill(idOrName: string, signal = 'SIGKILL'): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Running) throw conflict(`cannot kill container: ${c.id}: container ${c.id} is not running`);
    await this.#runtime.signal(c, signal);
    this.#events.emit('container', 'kill', c.id, { image: c.image, name: c.name, signal: signalNumber(signal) });
  }

  #setState(c: ContainerRecord, patch: Partial<ContainerState & { ManuallyStopped: boolean }>): void {
    c.state = { ...c.state, ...patch };
    this.#store.setState(c.id, c.state);
  }

  /** Attaches waiting for the container to start: connected to its stdio just before the command runs. */
  #pendingAttach = new Map<string, Set<(conn: Duplex) => void>>();
  #exitWaiters = new Map<string, Set<(s: ExitStatus) => void>>();
  #removeWaiters = new Map<string, Set<() => void>>();

  async start(idOrName: string): Promise<'started' | 'already'> {
    const c = this.#store.resolve(idOrName);
    if (c.state.Running) return 'already';
    if (c.state.Status === 'removing' || c.state.Status === 'dead') throw conflict(`cannot start a container in state ${c.state.Status}`);
    this.#setState(c, { ManuallyStopped: false } as Partial<ContainerState>);
    await this.#startProcess(c);
    return 'started';
  }

  async #startProcess(c: ContainerRecord): Promise<void> {
    try {
      const network = await this.#networks?.plan(c, (other) => this.#runtime.networkFiles(other));
      const { pid } = await this.#runtime.start(c, {
        network,
        beforeExec: async (pid) => {
          await this.#networks?.plug(c, pid);
          const waiting = this.#pendingAttach.get(c.id);
          this.#pendingAttach.delete(c.id);
          for (const connect of waiting ?? []) connect(await this.#runtime.attach(c));
        },
      });
      // What changed while it started stays (a stop during a restart's start, the health record).
      const fresh = this.#store.get(c.id);
      if (fresh) c.state = fresh.state;
      this.#setState(c, {
        Status: 'running', Running: true, Paused: false, Restarting: false, Pid: pid, ExitCode: 0, Error: '',
        StartedAt: new Date().toISOString(), FinishedAt: ZERO_TIME, OOMKilled: false,
      });
      if ((c.state as { ManuallyStopped?: boolean }).ManuallyStopped) {
        // Stopped while the restart policy was bringing it back: it goes down again at once, and stays down.
        this.#events.emit('container', 'start', c.id, { image: c.image, name: c.name });
        this.#watch(c);
        await this.#runtime.signal(c, 'SIGKILL').catch(() => {});
        return;
      }
    } catch (e) {
      const code = e instanceof RuntimeStartError ? e.exitCode : 128;
      this.#setState(c, { Status: c.state.Status === 'restarting' ? 'exited' : c.state.Status, Running: false, Restarting: false, ExitCode: code, Error: (e as Error).message, Pid: 0 });
      await this.#runtime.cleanup(c).catch(() => {});
      await this.#networks?.release(c).catch((err) => this.#log.warn('releasing the network failed', { id: c.id, err }));
      this.#events.emit('container', 'die', c.id, { image: c.image, name: c.name, exitCode: String(code) });
      this.#resolveExit(c, { exitCode: code, oomKilled: false, finishedAt: new Date().toISOString(), error: (e as Error).message });
      // As in Docker, --rm also covers a container that never got to run.
      if (c.hostConfig.AutoRemove) await this.remove(c.id, { volumes: true }).catch((err) => this.#log.warn('auto-remove failed', { id: c.id, err }));
      throw e instanceof RuntimeStartError ? invalidArgument(e.message, e) : e;
    }
    this.#events.emit('container', 'start', c.id, { image: c.image, name: c.name });
    this.#watch(c);
  }

  /** Follows a running container to its exit, then applies the restart policy or --rm. */
  #watch(c: ContainerRecord): void {
    const p = this.#runtime.exited(c);
    this.#watchers.set(c.id, p);
    p.then((status) => this.#onExit(c.id, status)).catch((e) => this.#log.error('exit handling failed', { id: c.id, err: e }));
  }

  async #onExit(id: string, status: ExitStatus): Promise<void> {
    const c = this.#store.get(id);
    this.#watchers.delete(id);
    if (!c) return;
    this.#setState(c, {
      Status: 'exited', Running: false, Paused: false, Restarting: false, Pid: 0, ExitCode: status.exitCode,
      OOMKilled: status.oomKilled, FinishedAt: status.finishedAt, Error: status.error ?? '',
    });
    const t0 = performance.now();
    await this.#runtime.cleanup(c).catch((e) => this.#log.warn('cleanup failed', { id, err: e }));
    const t1 = performance.now();
    await this.#networks?.release(c).catch((e) => this.#log.warn('releasing the network failed', { id, err: e }));
    this.#log.debug('container exited', { id: c.shortId, ms: { cleanup: Math.round(t1 - t0), network: Math.round(performance.now() - t1) } });
    if (status.oomKilled) this.#events.emit('container', 'oom', c.id, { image: c.image, name: c.name });
    this.#events.emit('container', 'die', c.id, { image: c.image, name: c.name, exitCode: String(status.exitCode) });
    this.#resolveExit(c, status);
    if (this.#shouldRestart(c, status.exitCode)) {
      const n = c.restartCount + 1;
      this.#store.setRestartCount(c.id, n);
      c.restartCount = n;
      this.#setState(c, { Status: 'restarting', Restarting: true });
      // Docker's back-off: 100 ms, doubling, capped at a minute.
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(n - 1, 10), 60_000)));
      const now = this.#store.get(c.id);
      if (!now || !now.state.Restarting) return;
      await this.#startProcess(now).catch((e) => this.#log.warn('restart failed', { id, err: e }));
      return;
    }
    if (c.hostConfig.AutoRemove) await this.remove(c.id, { volumes: true }).catch((e) => this.#log.warn('auto-remove failed', { id, err: e }));
  }

  #shouldRestart(c: ContainerRecord, exitCode: number): boolean {
    const policy = c.hostConfig.RestartPolicy ?? { Name: 'no' };
    if ((c.state as { ManuallyStopped?: boolean }).ManuallyStopped) return false;
    switch (policy.Name) {
      case 'always': case 'unless-stopped': return true;
      case 'on-failure': return exitCode !== 0 && (!policy.MaximumRetryCount || c.restartCount < policy.MaximumRetryCount);
      default: return false;
    }
  }

  #resolveExit(c: ContainerRecord, s: ExitStatus): void {
    const ws = this.#exitWaiters.get(c.id);
    this.#exitWaiters.delete(c.id);
    for (const w of ws ?? []) w(s);
  }

  /** `docker wait` and the CLI's run: the exit code for `not-running`, `next-exit` or `removed`. */
  async wait(idOrName: string, condition = 'not-running', signal?: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.#store.resolve(idOrName);
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw invalidArgument(`invalid condition: "${condition}"`);
    const result = (code: number, err: string) => ({ StatusCode: code, Error: err ? { Message: err } : null });
    if (condition === 'not-running' && !c.state.Running && !c.state.Restarting) return result(c.state.ExitCode, '');
    const abort = new Promise<never>((_r, reject) => signal?.addEventListener('abort', () => reject(new Error('client went away'))));
    if (condition === 'removed') {
      const exit = this.#nextExit(c.id);
      await Promise.race([new Promise<void>((r) => this.#addWaiter(this.#removeWaiters, c.id, r)), abort]);
      const s = await Promise.race([exit, Promise.resolve(undefined)]);
      return result(s?.exitCode ?? this.#store.get(c.id)?.state.ExitCode ?? c.state.ExitCode, '');
    }
    const s = await Promise.race([this.#nextExit(c.id), abort]);
    return result(s.exitCode, '');
  }

  #nextExit(id: string): Promise<ExitStatus> {
    return new Promise((r) => this.#addWaiter(this.#exitWaiters, id, r));
  }

  #addWaiter<T>(map: Map<string, Set<T>>, id: string, w: T): void {
    let set = map.get(id);
    if (!set) map.set(id, (set = new Set()));
    set.add(w);
  }

  async stop(idOrName: string, opts: { timeout?: number; signal?: string } = {}): Promise<'stopped' | 'already'> {
    const c = this.#store.resolve(idOrName);
    this.#setState(c, { ManuallyStopped: true } as Partial<ContainerState>);
    if (c.state.Restarting) {
      this.#setState(c, { Status: 'exited', Restarting: false });
      return 'stopped';
    }
    if (!c.state.Running) return 'already';
    const exit = this.#nextExit(c.id);
    const sig = opts.signal || c.config.StopSignal || 'SIGTERM';
    const timeout = opts.timeout ?? c.config.StopTimeout ?? 10;
    if (c.state.Paused) await this.#runtime.resume(c).catch(() => {});
    await this.#runtime.signal(c, sig).catch(() => {});
    const timedOut = timeout < 0 ? false : await Promise.race([exit.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeout * 1000))]);
    if (timedOut) await this.#runtime.signal(c, 'SIGKILL').catch(() => {});
    await exit;
    this.#events.emit('container', 'stop', c.id, { image: c.image, name: c.name });
    return 'stopped';
  }

  async restart(idOrName: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (c.state.Running) await this.stop(c.id, opts);
    await this.start(c.id);
    this.#events.emit('container', 'restart', c.id, { image: c.image, name: c.name });
  }

  async pause(idOrName: string): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Running) throw conflict(`Container ${c.id} is not running`);
    if (c.state.Paused) throw conflict(`Container ${c.id} is already paused`);
    await this.#runtime.pause(c);
    this.#setState(c, { Status: 'paused', Paused: true });
    this.#events.emit('container', 'pause', c.id, { image: c.image, name: c.name });
  }

  async unpause(idOrName: string): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Paused) throw conflict(`Container ${c.id} is not paused`);
    await this.#runtime.resume(c);
    this.#setState(c, { Status: 'running', Paused: false });
    this.#events.emit('container', 'unpause', c.id, { image: c.image, name: c.name });
  }

  /**
   * An attach: immediately to a running container, or held until start for a
   * created one (the way `docker run` attaches before it starts).
   */
  attach(idOrName: string): Promise<Duplex> {
    const c = this.#store.resolve(idOrName);
    if (c.state.Running) return this.#runtime.attach(c);
    return new Promise((resolve) => this.#addWaiter(this.#pendingAttach, c.id, resolve));
  }

  closeStdin(c: ContainerRecord): Promise<void> {
    return this.#runtime.closeStdin(c);
  }

  resize(idOrName: string, rows: number, cols: number): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Running) throw conflict(`cannot resize container ${c.id}: it is not running`);
    return this.#runtime.resize(c, rows, cols);
  }

  logPath(c: ContainerRecord): string {
    return this.#runtime.logPath(c);
  }

  /** Resolves when the running container exits (for log following). */
  exitOf(c: ContainerRecord): Promise<unknown> {
    return c.state.Running ? this.#nextExit(c.id) : Promise.resolve();
  }

  /**
   * After a daemon start: containers the records call running are followed
   * again if alive, or given their exit if they ended while the daemon was
   * away.
   */
  async reconcile(): Promise<void> {
    for (const c of this.#store.list()) {
      if (!c.state.Running && !c.state.Restarting) {
        // As Docker at daemon start: `always` comes back even after a stop, `unless-stopped` unless it was stopped.
        const policy = c.hostConfig.RestartPolicy?.Name;
        const stopped = (c.state as { ManuallyStopped?: boolean }).ManuallyStopped;
        if (c.state.Status === 'exited' && c.state.StartedAt !== ZERO_TIME && (policy === 'always' || (policy === 'unless-stopped' && !stopped))) {
          await this.start(c.id).catch((e) => this.#log.warn('restart at daemon start failed', { id: c.id, err: e }));
        }
        continue;
      }
      // An exit while the daemon was away goes through #onExit like any other: restart policy and --rm included.
      if (await this.#runtime.alive(c)) this.#watch(c);
      else await this.#onExit(c.id, await this.#runtime.exited(c));
    }
  }
}

function normalizeHostConfig(hc: DockerHostConfig): DockerHostConfig {
  return {
    NetworkMode: 'default', RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, LogConfig: { Type: 'json-file', Config: {} },
    AutoRemove: false, Binds: null, Privileged: false, ReadonlyRootfs: false, ...hc,
  };
}

const withProto = (port: string) => (port.includes('/') ? port : `${port}/tcp`);

function volumeNames(c: ContainerRecord): string[] {
  return (c.hostConfig.Binds ?? []).map((b: string) => b.split(':')[0]);
}

/** Docker's `ps` STATUS column. */
export function statusText(s: ContainerState, now = Date.now()): string {
  const ago = (t: string) => humanDuration(now - Date.parse(t));
  switch (s.Status) {
    case 'created': return 'Created';
    case 'running': return `Up ${ago(s.StartedAt)}${s.Health && s.Health.Status !== 'none' ? ` (${s.Health.Status === 'starting' ? 'health: starting' : s.Health.Status})` : ''}`;
    case 'paused': return `Up ${ago(s.StartedAt)} (Paused)`;
    case 'restarting': return `Restarting (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
    case 'removing': return 'Removal In Progress';
    case 'exited': return s.FinishedAt === ZERO_TIME ? `Exited (${s.ExitCode})` : `Exited (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
    case 'dead': return 'Dead';
  }
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11,
  SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21,
  SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

/** `KILL`, `SIGKILL`, `9` → 9; unknown names are InvalidArgument, as in Docker. */
export function signalNumber(sig: string): string {
  if (/^\d+$/.test(sig)) return sig;
  const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`;
  const n = SIGNALS[name];
  if (n === undefined) throw invalidArgument(`Invalid signal: ${sig}`);
  return String(n);
}

function imageDisplay(name: string): string {
  try {
    return familiarString(withDefaultTag(parseReference(name)));
  } catch {
    return name;
  }
}
