import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { parseDetachKeys } from '../common/detach-keys.ts';
import { conflict, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContainerRecord } from '../metadata/containers.ts';
import { type ExecExit, type ExecHost, ExecStartError, attachExec, control, execExited, removeExecState, startExec } from '../runtime/exec.ts';
import type { EventBus } from './events.ts';

/** The Engine API's exec create body (ExecConfig). */
export interface ExecConfig {
  Cmd?: string[];
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Privileged?: boolean;
  Tty?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  DetachKeys?: string;
  ConsoleSize?: [number, number] | null;
}

export interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  host?: ExecHost;
  /** Settles when the process has ended (or could not start). */
  done?: Promise<ExecExit>;
}

/** What the exec service needs from the container side. */
export interface ExecBackend {
  resolve(idOrName: string): ContainerRecord;
  execHost(c: ContainerRecord, execId: string): ExecHost;
}

/**
 * `docker exec`: exec instances created against a running container, started
 * under their own monitor, inspected for their exit code. Kept in memory, as
 * Docker does; they go when their container is removed or the daemon stops.
 */
export class ExecService {
  #backend: ExecBackend;
  #events: EventBus;
  #log: Logger;
  #execs = new Map<string, ExecRecord>();

  constructor(deps: { backend: ExecBackend; events: EventBus; log: Logger }) {
    this.#backend = deps.backend;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  create(containerIdOrName: string, cfg: ExecConfig): ExecRecord {
    const c = this.#backend.resolve(containerIdOrName);
    if (!Array.isArray(cfg.Cmd) || cfg.Cmd.length === 0) throw invalidArgument('No exec command specified');
    if (cfg.DetachKeys && !parseDetachKeys(cfg.DetachKeys)) throw invalidArgument(`Invalid detach keys (${cfg.DetachKeys}) provided`);
    this.#checkRunning(c);
    this.#prune();
    const id = randomBytes(32).toString('hex');
    const rec: ExecRecord = { id, containerId: c.id, config: { ...cfg }, running: false, started: false, exitCode: null, pid: 0 };
    this.#execs.set(id, rec);
    this.#events.emit('container', `exec_create: ${cfg.Cmd.join(' ')}`, c.id, { image: c.image, name: c.name, execID: id });
    return rec;
  }

  #checkRunning(c: ContainerRecord): void {
    if (c.state.Paused) throw conflict(`container ${c.id} is paused, unpause the container before exec`);
    if (!c.state.Running || c.state.Restarting) throw conflict(`container ${c.id} is not running`);
  }

  get(id: string): ExecRecord {
    const rec = this.#execs.get(id);
    if (!rec) throw notFound(`No such exec instance: ${id}`);
    return rec;
  }

  /**
   * Starts the exec. `attach`, if given, receives the monitor connection
   * (stdcopy frames out, stdin in) before the process runs. Resolves once it runs.
   * A command that cannot run rejects with an ExecStartError and leaves exit code 126/127.
   */
  async start(id: string, opts: { tty?: boolean; attach?: (conn: Duplex) => void }): Promise<ExecRecord> {
    const rec = this.get(id);
    if (rec.started) throw conflict(`Error: Exec command ${id} has already run`);
    const c = this.#backend.resolve(rec.containerId);
    this.#checkRunning(c);
    rec.started = true;
    const host = this.#backend.execHost(c, id);
    rec.host = host;
    const cfg = rec.config;
    const tty = opts.tty ?? Boolean(cfg.Tty);
    const size = cfg.ConsoleSize && cfg.ConsoleSize[0] > 0 && cfg.ConsoleSize[1] > 0 ? { height: cfg.ConsoleSize[0], width: cfg.ConsoleSize[1] } : undefined;
    let resolveDone!: (x: ExecExit) => void;
    rec.done = new Promise((r) => (resolveDone = r));
    try {
      const { pid } = await startExec(host, {
        args: cfg.Cmd ?? [], env: cfg.Env ?? [], workingDir: cfg.WorkingDir ?? '', user: cfg.User ?? '', tty,
        privileged: Boolean(cfg.Privileged), openStdin: Boolean(cfg.AttachStdin) && Boolean(opts.attach), consoleSize: size,
      }, async () => {
        if (opts.attach) opts.attach(await attachExec(host.stateDir));
      });
      rec.pid = pid;
      rec.running = true;
    } catch (e) {
      rec.exitCode = e instanceof ExecStartError ? e.exitCode : 126;
      removeExecState(host.stateDir).catch(() => {});
      resolveDone({ exitCode: rec.exitCode, finishedAt: new Date().toISOString() });
      throw e;
    }
    this.#events.emit('container', `exec_start: ${(cfg.Cmd ?? []).join(' ')}`, c.id, { image: c.image, name: c.name, execID: id });
    execExited(host.stateDir).then((x) => {
      rec.running = false;
      rec.exitCode = x.exitCode;
      rec.pid = 0;
      resolveDone(x);
      removeExecState(host.stateDir).catch(() => {});
      this.#events.emit('container', 'exec_die', c.id, { image: c.image, name: c.name, execID: id, exitCode: String(x.exitCode) });
    }).catch((e) => this.#log.warn('exec exit handling failed', { id, err: e }));
    return rec;
  }

  /** Resolves when the exec has ended (immediately if it never started). */
  async exited(id: string): Promise<void> {
    const rec = this.get(id);
    if (rec.done) await rec.done;
  }

  async resize(id: string, rows: number, cols: number): Promise<void> {
    const rec = this.get(id);
    if (!rec.host || !rec.running) {
      if (rec.started) return; // ended already: nothing to resize, as Docker answers
      throw conflict(`exec ${id} is not running`);
    }
    const reply = await control(rec.host.stateDir, `resize ${rows} ${cols}`).catch(() => 'ok');
    if (reply !== 'ok' && reply !== '') throw invalidArgument(`cannot resize exec ${id}: ${reply}`);
  }

  /** Docker's ExecInspect (GET /exec/{id}/json). */
  inspect(id: string): Record<string, unknown> {
    const rec = this.get(id);
    const cfg = rec.config;
    const [entrypoint, ...args] = cfg.Cmd ?? [];
    return {
      ID: rec.id, Running: rec.running, ExitCode: rec.exitCode, CanRemove: false, ContainerID: rec.containerId,
      DetachKeys: cfg.DetachKeys ?? '', OpenStdin: Boolean(cfg.AttachStdin), OpenStdout: Boolean(cfg.AttachStdout), OpenStderr: Boolean(cfg.AttachStderr),
      Pid: rec.pid,
      ProcessConfig: { tty: Boolean(cfg.Tty), entrypoint: entrypoint ?? '', arguments: args, privileged: Boolean(cfg.Privileged), user: cfg.User ?? '' },
    };
  }

  /** The exec IDs of a container (its inspect's ExecIDs). */
  ofContainer(containerId: string): string[] {
    return [...this.#execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }

  /** Drops finished execs whose container is gone. */
  #prune(): void {
    for (const [id, e] of this.#execs) {
      if (e.running) continue;
      try {
        this.#backend.resolve(e.containerId);
      } catch {
        this.#execs.delete(id);
      }
    }
  }

  /** Container inspect's ExecIDs: the container's execs that are created or running (Docker drops them at exit). */
  idsOf(containerId: string): string[] {
    return [...this.#execs.values()].filter((e) => e.containerId === containerId && (e.running || !e.started)).map((e) => e.id);
  }

  /** Forgets the execs of a container that went away. */
  forget(containerId: string): void {
    for (const [id, e] of this.#execs) if (e.containerId === containerId && !e.running) this.#execs.delete(id);
  }
}
