import { spawn } from 'node:child_process';
import { existsSync, watch as watchDir } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';

import { join } from 'node:path';
import { errno, invalidArgument } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContainerRecord } from '../metadata/containers.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';
import type { ExecHost } from './exec.ts';
import { monitorAlive } from './monitor-state.ts';
import { encodeSpec } from './oci-spec.ts';
import { isMounted, mountRootfs, unmountRootfs } from './rootfs.ts';
import { Runc } from './runc.ts';
import { type MountRequest, type NamespaceMode, type ResourceOptions, type SpecOptions, adaptResources, buildExecProcess, buildSpec, cgroupPath, resourcesToOci } from './spec.ts';
import type { OciSpec } from './oci-spec.ts';
import { readHostFacts } from './host.ts';
import { resolveUser } from './user.ts';

export interface ExitInfo {
  exitCode: number;
  oomKilled: boolean;
  finishedAt: string;
  error?: string;
}

/** Why a start failed, with Docker's exit code for it (126 cannot execute, 127 not found). */
export class RuntimeStartError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** The network namespace a container gets, and the files that describe it (from the network service). */
export interface NetworkSetup {
  namespace: NamespaceMode;
  hosts: string;
  resolvConf: string;
}

export interface StartOptions {
  network?: NetworkSetup;
  /**
   * Runs once the container exists (its namespaces made, its stdio held by
   * the monitor) and before its command executes: networking is wired and
   * attaches made before start are connected, so they miss nothing.
   */
  beforeExec: (pid: number) => Promise<void>;
}

export interface RuncRuntimeOptions {
  dataRoot: string;
  snapshots: OverlaySnapshotter;
  /** Makes the image's layers into snapshots and returns the top chain ID. */
  unpack: (imageId: string) => Promise<string>;
  monitorBin: string;
  /** Absolute path of runc (the monitor runs it); found on PATH by default. */
  runcBin?: string;
  initBin?: string;
  /**
   * The container's bind and volume mounts (Binds and Mounts of those types),
   * made ready: volumes mounted and copied up from the image at `rootfs`.
   * Without it, Binds are plain host paths.
   */
  volumeMounts?: (c: ContainerRecord, rootfs: string) => Promise<MountRequest[]>;
  /** Called once the container has stopped and its mounts are gone. */
  releaseMounts?: (c: ContainerRecord) => Promise<void>;
  /**
   * At create, with the new container's root mounted at `rootfs`: Docker's copy-up of image files into its empty
   * volumes. `wanted` says whether there may be any, so a container without volumes is not mounted for nothing.
   */
  populateVolumes?: { wanted: (c: ContainerRecord) => boolean; fill: (c: ContainerRecord, rootfs: string) => Promise<void> };
  log: Logger;
}

/**
 * Runs containers with runc under berth-monitor. A container's files live in
 * `<data-root>/containers/<id>/` (bundle config.json, rootfs mount point, log,
 * hosts files); the monitor's sockets and exit file in
 * `<data-root>/run/<short-id>/`, short enough for unix socket paths.
 */
export class RuncRuntime {
  #o: RuncRuntimeOptions;
  #runc: Runc;

  constructor(o: RuncRuntimeOptions) {
    this.#o = o;
    this.#runc = new Runc({ root: join(o.dataRoot, 'runc'), binary: o.runcBin ?? findOnPath('runc') });
  }

  dir(c: ContainerRecord): string {
    return join(this.#o.dataRoot, 'containers', c.id);
  }

  runDir(c: ContainerRecord): string {
    return join(this.#o.dataRoot, 'run', c.shortId);
  }

  logPath(c: ContainerRecord): string {
    return join(this.dir(c), `${c.id}-json.log`);
  }

  async prepare(c: ContainerRecord): Promise<void> {
    const top = await this.#o.unpack(c.imageId);
    await this.#o.snapshots.prepare(c.id, top);
    const dir = this.dir(c);
    await mkdir(join(dir, 'rootfs'), { recursive: true });
    await writeFile(join(dir, 'hostname'), `${c.config.Hostname}\n`);
    await writeFile(join(dir, 'hosts'), hostsFile(c));
    await writeFile(join(dir, 'resolv.conf'), await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    await writeFile(join(dir, '.dockerenv'), '');
    if (this.#o.populateVolumes?.wanted(c)) {
      const rootfs = join(dir, 'rootfs');
      await mountRootfs(this.#o.snapshots.mounts(c.id), rootfs);
      try {
        await this.#o.populateVolumes.fill(c, rootfs);
      } finally {
        await unmountRootfs(rootfs).catch(() => unmountRootfs(rootfs, true));
      }
    }
  }

  async start(c: ContainerRecord, opts: StartOptions): Promise<{ pid: number }> {
    const dir = this.dir(c);
    const rootfs = join(dir, 'rootfs');
    // Phase times go to the debug log: where a start spends its time is the first question about speed.
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const mark = (name: string) => (phases[name] = Math.round((performance.now() - t0) * 10) / 10);
    if (!(await isMounted(rootfs))) await mountRootfs(this.#o.snapshots.mounts(c.id), rootfs);
    mark('mounted');
    try {
      // The files are bind-mounted, so they are rewritten in place, never replaced.
      await writeFile(join(dir, 'hosts'), opts.network?.hosts ?? hostsFile(c));
      if (opts.network) await writeFile(join(dir, 'resolv.conf'), opts.network.resolvConf);
      const spec = buildSpec(await this.#specOptions(c, rootfs, opts.network?.namespace));
      await writeFile(join(dir, 'config.json'), encodeSpec(spec));
      mark('spec');
      const runDir = this.runDir(c);
      await rm(runDir, { recursive: true, force: true });
      await mkdir(runDir, { recursive: true, mode: 0o700 });
      await mkdir(this.#runc.root, { recursive: true, mode: 0o700 });
      // A leftover runc state from a crash would make create fail; runc has one only if its directory exists.
      if (existsSync(join(this.#runc.root, c.id))) await this.#runc.delete(c.id, { force: true }).catch(() => {});
      const pid = await this.#spawnMonitor(c, runDir);
      mark('created');
      await opts.beforeExec(pid);
      mark('attached');
      try {
        await this.#runc.start(c.id);
      } catch (e) {
        throw startError((e as Error).message);
      }
      mark('started');
      this.#o.log.debug('container started', { id: c.shortId, ms: phases });
      return { pid };
    } catch (e) {
      await this.cleanup(c).catch(() => {});
      throw e;
    }
  }

  async #specOptions(c: ContainerRecord, rootfs: string, network: NamespaceMode | undefined): Promise<SpecOptions> {
    const hc = c.hostConfig;
    const user = await resolveUser(rootfs, c.config.User ?? '', hc.GroupAdd ?? []);
    const mounts: MountRequest[] = [];
    if (this.#o.volumeMounts) mounts.push(...(await this.#o.volumeMounts(c, rootfs)));
    else for (const b of hc.Binds ?? []) mounts.push(parseBind(b));
    for (const [dest, opts] of Object.entries((hc.Tmpfs ?? {}) as Record<string, string>)) {
      mounts.push({ type: 'tmpfs', destination: dest, options: opts ? opts.split(',') : [] });
    }
    for (const m of (hc.Mounts ?? []) as { Type: string; Source?: string; Target: string; ReadOnly?: boolean; TmpfsOptions?: { SizeBytes?: number } }[]) {
      if ((m.Type === 'bind' || m.Type === 'volume') && this.#o.volumeMounts) continue;
      if (m.Type === 'bind') mounts.push({ type: 'bind', source: m.Source!, destination: m.Target, readonly: m.ReadOnly });
      else if (m.Type === 'tmpfs') mounts.push({ type: 'tmpfs', destination: m.Target, sizeBytes: m.TmpfsOptions?.SizeBytes, readonly: m.ReadOnly });
      else throw invalidArgument(`mount type ${m.Type} is not supported yet`);
    }
    const net = { network: network ?? (hc.NetworkMode === 'host' ? 'host' as const : 'private' as const) };
    const dir = this.dir(c);
    return {
      id: c.id,
      args: [...(c.config.Entrypoint ?? []), ...(c.config.Cmd ?? [])],
      env: c.config.Env ?? [],
      cwd: c.config.WorkingDir || '/',
      user,
      hostname: c.config.Hostname,
      tty: Boolean(c.config.Tty),
      rootfs,
      readonlyRootfs: Boolean(hc.ReadonlyRootfs),
      mounts,
      namespaces: net,
      cgroupsPath: cgroupPath(c.id),
      resources: {
        memory: hc.Memory || undefined, memorySwap: hc.MemorySwap || undefined, memoryReservation: hc.MemoryReservation || undefined,
        nanoCpus: hc.NanoCpus || undefined, cpuShares: hc.CpuShares || undefined, cpusetCpus: hc.CpusetCpus || undefined,
        cpusetMems: hc.CpusetMems || undefined, pidsLimit: hc.PidsLimit ?? undefined, cpuQuota: hc.CpuQuota || undefined, cpuPeriod: hc.CpuPeriod || undefined,
      },
      privileged: Boolean(hc.Privileged),
      capAdd: hc.CapAdd ?? [],
      capDrop: hc.CapDrop ?? [],
      noNewPrivileges: (hc.SecurityOpt ?? []).some((o: string) => /^no-new-privileges(:true|=true)?$/.test(o)),
      seccomp: (hc.SecurityOpt ?? []).some((o: string) => /^seccomp[=:]unconfined$/.test(o)) ? 'unconfined' : 'default',
      shm: { sizeBytes: hc.ShmSize || undefined },
      ulimits: (hc.Ulimits ?? []).map((u: { Name: string; Soft: number; Hard: number }) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })),
      oomScoreAdj: hc.OomScoreAdj || undefined,
      sysctls: hc.Sysctls ?? {},
      etcHosts: join(dir, 'hosts'),
      etcHostname: join(dir, 'hostname'),
      resolvConf: join(dir, 'resolv.conf'),
      dockerenv: join(dir, '.dockerenv'),
      init: hc.Init ? this.#o.initBin : undefined,
    };
  }

  /** Starts berth-monitor, which runs `runc create`; resolves with the container's pid once create succeeded. */
  #spawnMonitor(c: ContainerRecord, runDir: string): Promise<number> {
    const args = [
      '--id', c.id, '--bundle', this.dir(c), '--state-dir', runDir, '--runtime', this.#runc.binary, '--runtime-root', this.#runc.root,
      '--log', this.logPath(c), '--sync-fd', '3',
    ];
    const logOpts = c.hostConfig.LogConfig?.Config ?? {};
    if (logOpts['max-size']) args.push('--log-max-size', String(parseLogSize(logOpts['max-size'])));
    if (logOpts['max-file']) args.push('--log-max-files', String(logOpts['max-file']));
    if (c.config.Tty) args.push('--tty');
    if (c.config.OpenStdin) args.push('--stdin');
    const child = spawn(this.#o.monitorBin, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], detached: true });
    child.unref();
    return new Promise((resolve, reject) => {
      let line = '';
      let stderr = '';
      child.stderr!.on('data', (b) => (stderr += b));
      const sync = child.stdio[3] as unknown as NodeJS.ReadableStream;
      sync.on('data', (b: Buffer) => (line += b.toString('utf8')));
      sync.on('end', () => {
        const m = /^ok (\d+)/.exec(line);
        if (m) return resolve(Number(m[1]));
        const e = /^error (\d+) ([\s\S]*)$/.exec(line.trim());
        reject(e ? startError(e[2]) : new Error(`berth-monitor failed: ${stderr.trim() || line.trim() || 'no answer'}`));
      });
      child.once('error', reject);
    });
  }

  /** The hosts and resolv.conf a container runs with, for another that joins its network namespace. */
  async networkFiles(c: ContainerRecord): Promise<{ hosts: string; resolvConf: string }> {
    const dir = this.dir(c);
    return { hosts: await readFile(join(dir, 'hosts'), 'utf8'), resolvConf: await readFile(join(dir, 'resolv.conf'), 'utf8') };
  }

  async exited(c: ContainerRecord): Promise<ExitInfo> {
    const dir = this.runDir(c);
    const exitFile = join(dir, 'exit.json');
    const read = () => readFile(exitFile, 'utf8').catch((e) => (errno(e) === 'ENOENT' ? undefined : Promise.reject(e)));
    // The watch starts before the first look, so an exit.json written in between is never missed.
    let wake: (() => void) | undefined;
    let changed = false;
    const watcher = existsSync(dir) ? watchDir(dir, () => { changed = true; wake?.(); }) : undefined;
    try {
      for (;;) {
        changed = false;
        let text = await read();
        // The monitor writes exit.json and then exits: a dead monitor is only a lost exit if the file is still absent after.
        if (text === undefined && !(await this.alive(c))) {
          text = await read();
          if (text === undefined) {
            return { exitCode: 255, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the container monitor died without recording an exit' };
          }
        }
        if (text !== undefined) {
          const x = JSON.parse(text) as { exit_code: number; signal: number; exited_at: string };
          return { exitCode: x.exit_code, oomKilled: await this.#oomKilled(c), finishedAt: x.exited_at };
        }
        // The timer is only a backstop (a monitor killed without a trace makes no file event).
        if (!changed) await new Promise<void>((r) => { wake = r; setTimeout(r, 1000); });
        wake = undefined;
      }
    } finally {
      watcher?.close();
    }
  }

  async #oomKilled(c: ContainerRecord): Promise<boolean> {
    const text = await readFile(join('/sys/fs/cgroup/memory', cgroupPath(c.id), 'memory.oom_control'), 'utf8').catch(() => '');
    const m = /oom_kill (\d+)/.exec(text);
    return m ? Number(m[1]) > 0 : false;
  }

  async alive(c: ContainerRecord): Promise<boolean> {
    if (existsSync(join(this.runDir(c), 'exit.json'))) return false;
    return monitorAlive(this.runDir(c));
  }

  signal(c: ContainerRecord, signal: string): Promise<void> {
    return this.#runc.kill(c.id, signal.replace(/^SIG/i, '').toUpperCase());
  }

  pause(c: ContainerRecord): Promise<void> {
    return this.#runc.pause(c.id);
  }

  resume(c: ContainerRecord): Promise<void> {
    return this.#runc.resume(c.id);
  }

  /** The cgroup path of the container (relative to each controller's root). */
  cgroupPath(c: ContainerRecord): string {
    return cgroupPath(c.id);
  }

  /** Host pids of the container's processes (`runc ps`). */
  processes(c: ContainerRecord): Promise<number[]> {
    return this.#runc.ps(c.id);
  }

  /** Changes a running container's limits in place (`runc update`); returns Docker's warnings. */
  async update(c: ContainerRecord, r: ResourceOptions): Promise<string[]> {
    const { resources, warnings } = adaptResources(r, readHostFacts());
    await this.#runc.update(c.id, resourcesToOci(resources));
    return warnings;
  }

  /**
   * Runs a command inside the running container without stdio (health checks):
   * its exit code and up to `maxOutput` bytes of stdout+stderr. Rejects with an
   * AbortError when `signal` aborts (the command is signalled through runc).
   */
  async execProbe(c: ContainerRecord, args: string[], opts: { signal?: AbortSignal; maxOutput?: number } = {}): Promise<{ exitCode: number; output: string }> {
    const spec = JSON.parse(await readFile(join(this.dir(c), 'config.json'), 'utf8')) as OciSpec;
    const proc = buildExecProcess(spec, { args });
    const r = await this.#runc.exec(c.id, proc, { signal: opts.signal });
    const out = Buffer.from(r.stdout + r.stderr).subarray(0, opts.maxOutput ?? 4096).toString('utf8');
    return { exitCode: r.exitCode, output: out };
  }

  async attach(c: ContainerRecord): Promise<Socket> {
    const s = await new Promise<Socket>((resolve, reject) => {
      const sock = connect(join(this.runDir(c), 'attach.sock'));
      sock.once('connect', () => resolve(sock));
      sock.once('error', reject);
    });
    // A connect completes when the kernel queues it, before the monitor accepts it. A ping answered
    // on the control socket means the monitor has been through its loop since, so the attach is
    // registered and no output can go out before it.
    await this.#control(c, 'ping');
    return s;
  }

  closeStdin(c: ContainerRecord): Promise<void> {
    return this.#control(c, 'close-stdin');
  }

  resize(c: ContainerRecord, rows: number, cols: number): Promise<void> {
    return this.#control(c, `resize ${rows} ${cols}`);
  }

  /** One command on the monitor's control socket; resolves with its `ok` reply. */
  #control(c: ContainerRecord, line: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect(join(this.runDir(c), 'ctl.sock'));
      let reply = '';
      s.once('connect', () => s.write(`${line}\n`));
      s.on('data', (b: Buffer) => {
        reply += b.toString('utf8');
        if (!reply.includes('\n')) return;
        s.end();
        if (reply.startsWith('ok')) resolve();
        else reject(invalidArgument(`monitor: ${reply.trim()}`));
      });
      s.once('error', reject);
      s.once('close', () => reject(new Error(`monitor closed the control socket without answering ${line}`)));
    });
  }

  /** Where an exec of this container runs under its own monitor (see runtime/exec.ts). */
  execHost(c: ContainerRecord, execId: string): ExecHost {
    const dir = this.dir(c);
    return {
      monitorBin: this.#o.monitorBin, runcBinary: this.#runc.binary, runcRoot: this.#runc.root, containerId: c.id,
      specPath: join(dir, 'config.json'), rootfs: join(dir, 'rootfs'), stateDir: join(this.runDir(c), `x${execId.slice(0, 12)}`),
    };
  }

  /** After an exit: runc's record, the cgroup and the rootfs mount go; the container's files stay. */
  async cleanup(c: ContainerRecord): Promise<void> {
    // runc keeps an exited container's record until it is deleted; a start that failed before create left none.
    if (existsSync(join(this.#runc.root, c.id))) await this.#runc.delete(c.id, { force: true }).catch(() => {});
    const rootfs = join(this.dir(c), 'rootfs');
    if (await isMounted(rootfs)) await unmountRootfs(rootfs).catch(() => unmountRootfs(rootfs, true));
    await this.#o.releaseMounts?.(c);
  }

  async remove(c: ContainerRecord): Promise<void> {
    await this.cleanup(c);
    await rm(this.runDir(c), { recursive: true, force: true });
    await rm(this.dir(c), { recursive: true, force: true });
    if (this.#o.snapshots.stat(c.id)) await this.#o.snapshots.remove(c.id);
  }
}

function startError(text: string): RuntimeStartError {
  const msg = text.trim().replace(/\s+/g, ' ');
  const code = /executable file not found|no such file or directory/i.test(msg) ? 127 : /permission denied|exec format error|is a directory/i.test(msg) ? 126 : 125;
  return new RuntimeStartError(msg, code);
}

function parseBind(spec: string): MountRequest {
  const parts = spec.split(':');
  if (parts.length < 2) throw invalidArgument(`invalid volume specification: '${spec}'`);
  const [source, destination, mode = ''] = parts;
  if (!source.startsWith('/')) throw invalidArgument(`named volumes are not supported yet: '${spec}'`);
  if (!existsSync(source)) throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
  return { type: 'bind', source, destination, readonly: mode.split(',').includes('ro') };
}

function parseLogSize(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  if (!m) throw invalidArgument(`invalid max-size: ${v}`);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as ''] ?? 1);
}

function hostsFile(c: ContainerRecord): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${c.config.Hostname}\n`;
}

/** An executable's absolute path from PATH, as the monitor needs it. */
function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return `/usr/sbin/${name}`;
}

