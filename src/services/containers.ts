import type { Digest } from '../common/digest.ts';
import { conflict, failedPrecondition, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { humanDuration } from '../common/units.ts';
import { type ContainerRecord, type ContainerState, type ContainerStore, type DockerConfig, type DockerHostConfig, ZERO_TIME, initialState } from '../metadata/containers.ts';
import type { EventBus } from './events.ts';
import { matchLabels, parseFilters } from './filters.ts';
import type { ImageService } from './images.ts';
import { mergeImageConfig, processArgs } from './container-config.ts';
import { familiarString, parseReference, withDefaultTag } from '../images/reference.ts';

/** What actually runs a container: bundle, monitor, runc. Implemented in runtime/. */
export interface ContainerRuntime {
  /** Prepares the root filesystem (snapshot) for a new container. */
  prepare(rec: ContainerRecord): Promise<void>;
  /** Starts the process; resolves once it runs, with its host pid. Rejects with the runtime's error (mapped to 126/127 codes by the caller). */
  start(rec: ContainerRecord): Promise<{ pid: number }>;
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

export interface ExitStatus {
  exitCode: number;
  oomKilled: boolean;
  finishedAt: string;
  error?: string;
}

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
  /** Exit waiters per container, resolved when its process ends. */
  #watchers = new Map<string, Promise<ExitStatus>>();

  constructor(deps: { store: ContainerStore; images: ImageService; runtime: ContainerRuntime; events: EventBus; log: Logger }) {
    this.#store = deps.store;
    this.#images = deps.images;
    this.#runtime = deps.runtime;
    this.#events = deps.events;
    this.#log = deps.log;
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

  async create(body: DockerConfig & { HostConfig?: DockerHostConfig }, name?: string): Promise<ContainerRecord> {
    const { HostConfig, NetworkingConfig: _n, ...req } = body;
    if (typeof req.Image !== 'string' || !req.Image) throw invalidArgument('Config.Image is required');
    const image = this.#images.store.find(req.Image);
    if (!image) throw notFound(`No such image: ${imageDisplay(req.Image)}`);
    const imgConfig = await this.#images.config(image.id);
    const config = mergeImageConfig(req, imgConfig.config);
    processArgs(config);
    const hostConfig = normalizeHostConfig(HostConfig ?? {});
    const rec = this.#store.create({
      name, image: req.Image, imageId: image.id, created: new Date().toISOString(),
      config: { ...config, Image: req.Image, Hostname: config.Hostname || '' }, hostConfig, state: initialState(),
    });
    if (!rec.config.Hostname) {
      rec.config.Hostname = rec.shortId;
    }
    try {
      await this.#runtime.prepare(rec);
    } catch (e) {
      this.#store.delete(rec.id);
      throw e;
    }
    this.#events.emit('container', 'create', rec.id, { image: rec.image, name: rec.name });
    return rec;
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
      if (f.has('volume') && !f.get('volume')!.some((v) => volumeNames(c).includes(v))) return false;
      return true;
    });
    if (opts.limit && opts.limit > 0) out = out.slice(0, opts.limit);
    return out;
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
    this.#store.delete(c.id);
    this.#events.emit('container', 'destroy', c.id, { image: c.image, name: c.name });
  }

  async kill(idOrName: string, signal = 'SIGKILL'): Promise<void> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Running) throw conflict(`cannot kill container: ${c.id}: container ${c.id} is not running`);
    await this.#runtime.signal(c, signal);
    this.#events.emit('container', 'kill', c.id, { image: c.image, name: c.name, signal: signalNumber(signal) });
  }

  #setState(c: ContainerRecord, patch: Partial<ContainerState>): void {
    c.state = { ...c.state, ...patch };
    this.#store.setState(c.id, c.state);
  }

  /** For the runtime glue and start: record that the process runs. */
  markRunning(c: ContainerRecord, pid: number): void {
    this.#setState(c, { Status: 'running', Running: true, Paused: false, Restarting: false, Pid: pid, ExitCode: 0, Error: '', StartedAt: new Date().toISOString(), FinishedAt: ZERO_TIME, OOMKilled: false });
  }

  failedPrecondition = failedPrecondition;
  log(): Logger {
    return this.#log;
  }
}

function normalizeHostConfig(hc: DockerHostConfig): DockerHostConfig {
  return {
    NetworkMode: 'default', RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, LogConfig: { Type: 'json-file', Config: {} },
    AutoRemove: false, Binds: null, Privileged: false, ReadonlyRootfs: false, ...hc,
  };
}

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
