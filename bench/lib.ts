// Shared helpers for the benchmarks: private daemons, wall-clock timing of
// spawned processes, statistics, report lines and cleanup. Timing uses only
// Node's own monotonic clock (process.hrtime.bigint).
import { execFileSync, spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { removeDaemonNetworking } from '../src/network/teardown.ts';

export const ROOT = resolve(import.meta.dirname, '..');
export const BERTH = join(ROOT, 'bin', 'berth');
export const BERTHD = join(ROOT, 'bin', 'berthd');
export const NODE24 = join(ROOT, 'bin', 'node24');
export const DOCKER = '/usr/local/bin/docker';

// ---------------------------------------------------------------- cleanup

const cleanups: (() => void)[] = [];

/** Registers a synchronous cleanup step; steps run last-in first-out, once. */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

export function runCleanups(): void {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup step failed: ${(e as Error).message}\n`);
    }
  }
}

process.on('exit', runCleanups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`bench: ${sig}, cleaning up\n`);
    // Daemons first (and waited for), so none writes into a tree being removed.
    void stopAllDaemons().finally(() => {
      runCleanups();
      process.exit(130);
    });
  });
}

/** A temporary directory removed at exit, after unmounting anything left mounted under it. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `berth-bench-${prefix}-`));
  onCleanup(() => removeTree(dir));
  return dir;
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => unescape(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** rm -rf, but first unmounts (and reports) whatever a daemon left mounted inside. */
export function removeTree(dir: string): void {
  for (const m of mountsUnder(dir)) {
    process.stderr.write(`bench: ${m} was still mounted; unmounting it\n`);
    spawnSync('umount', ['-l', m]);
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/** Runs the benchmark body, then cleans up; an error exits non-zero. */
export async function main(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  } finally {
    await stopAllDaemons();
    runCleanups();
  }
}

// ---------------------------------------------------------------- daemons

const running = new Set<Daemon>();

/** A private berthd: its own data root and socket under `dir`. */
let nextBridge = 0;

export class Daemon {
  readonly dir: string;
  readonly dataRoot: string;
  readonly socket: string;
  readonly bridge: string;
  readonly proc: ChildProcess;
  log = '';
  #exited: Promise<number | null>;

  private constructor(dir: string, dataRoot: string, extraNodeArgs: string[], env: Record<string, string>) {
    this.dir = dir;
    this.dataRoot = dataRoot;
    this.socket = join(dir, 'berth.sock');
    // Its own bridge and subnets, so it never meets another daemon's (the quickstart one included);
    // names that are not containers' go to 127.0.0.1, where nothing answers.
    const k = nextBridge++;
    this.bridge = `bbench${k}`;
    const args = ['--data-root', dataRoot, '-H', `unix://${this.socket}`, '-b', this.bridge, '--bip', `10.199.${k}.1/24`,
      '--default-address-pool', `base=10.198.${k * 16}.0/20,size=24`, '--dns', '127.0.0.1'];
    // bin/berthd is `exec node24 src/daemon/main.ts`, and node24 execs node, so
    // the child's PID is the daemon's own. Extra Node flags (e.g. --cpu-prof)
    // need node24 called directly.
    const opts = { stdio: ['ignore', 'pipe', 'pipe'] as StdioOptions, env: { ...process.env, ...env } };
    this.proc = extraNodeArgs.length > 0
      ? spawn(NODE24, [...extraNodeArgs, join(ROOT, 'src', 'daemon', 'main.ts'), ...args], opts)
      : spawn(BERTHD, args, opts);
    this.proc.stdout!.on('data', (c) => (this.log += c));
    this.proc.stderr!.on('data', (c) => (this.log += c));
    this.#exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
    running.add(this);
    const pid = this.proc.pid;
    onCleanup(() => {
      if (this.proc.exitCode === null && this.proc.signalCode === null && pid) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      killContainers(this.dataRoot);
      removeDaemonNetworking(this.bridge, this.dataRoot);
    });
  }

  /** Starts berthd in `dir` (data root `dir/root` unless given) and waits for its socket. */
  static async start(dir: string, opts: { dataRoot?: string; nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<Daemon> {
    const d = new Daemon(dir, opts.dataRoot ?? join(dir, 'root'), opts.nodeArgs ?? [], opts.env ?? {});
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (d.proc.exitCode !== null) throw new Error(`berthd exited with ${d.proc.exitCode}:\n${d.log}`);
      if (await canConnect(d.socket)) return d;
      await sleep(20);
    }
    await d.stop();
    throw new Error(`berthd did not start within 20 s:\n${d.log}`);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Environment pointing both berth and the docker CLI at this daemon. */
  get env(): Record<string, string> {
    return {
      BERTH_HOST: `unix://${this.socket}`,
      DOCKER_HOST: `unix://${this.socket}`,
      // The docker CLI keeps its config here, never in the user's ~/.docker.
      DOCKER_CONFIG: join(this.dir, 'docker-config'),
    };
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 15_000): Promise<number | null> {
    running.delete(this);
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}

/** Writes the busybox root filesystem tarball (from Debian's busybox-static) into `dir`; returns its path. */
export function busyboxRootfs(dir: string): string {
  const tar = join(dir, 'busybox.tar');
  execFileSync(join(ROOT, 'scripts', 'busybox-rootfs'), [process.arch === 'arm64' ? 'arm64' : 'amd64', tar]);
  return tar;
}

/** Makes `busybox:latest` in the daemon from that tarball, with `sh` as its command. */
export async function importBusybox(d: Daemon, rootfsTar: string): Promise<void> {
  await timeOk(BERTH, ['import', '--change', 'CMD ["sh"]', rootfsTar, 'busybox:latest'], { env: d.env });
}

/**
 * A Docker engine (Debian's docker.io: dockerd with its own containerd) in a
 * private directory, when dockerd is installed; undefined otherwise. It has
 * no bridge and no iptables rules (containers run with `--network none`), so
 * it never meets berth's networks, and it never pulls: images come from
 * `docker load`.
 */
export async function startDockerEngine(dir: string): Promise<{ env: Record<string, string>; version: string; stop: () => Promise<void> } | undefined> {
  if (!existsSync('/usr/sbin/dockerd')) return undefined;
  const root = join(dir, 'docker-engine');
  const socket = join(root, 'docker.sock');
  const proc = spawn('/usr/sbin/dockerd', [
    '--data-root', join(root, 'data'), '--exec-root', join(root, 'exec'), '-H', `unix://${socket}`, '--pidfile', join(root, 'dockerd.pid'),
    '--iptables=false', '--ip-forward=false', '--ip-masq=false', '--bridge=none',
  ], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  onCleanup(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(root, 'docker-config') };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) return undefined;
    const r = spawnSync(DOCKER, ['version', '--format', '{{.Server.Version}}'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    if (r.status === 0) return { env, version: r.stdout.trim(), stop };
    await sleep(200);
  }
  await stop();
  return undefined;
}

/**
 * Containers outlive their daemon by design; a benchmark that stops early must
 * not leave its own running. runc's record under the data root lists them.
 */
function killContainers(dataRoot: string): void {
  const root = join(dataRoot, 'runc');
  if (!existsSync(root)) return;
  const ids = spawnSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const id of ids) spawnSync('runc', ['--root', root, 'delete', '--force', id]);
}

function stopAllDaemons(): Promise<unknown> {
  return Promise.all([...running].map((d) => d.stop(3000)));
}

function canConnect(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------- processes

export interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Spawns a command and measures wall time from just before spawn until it has
 * exited and its output pipes have closed. Output is collected (so a command
 * that prints 1,000 rows pays for writing them, as in a terminal pipe).
 */
export function timeSpawn(cmd: string, args: string[], opts: { env?: Record<string, string>; stdio?: StdioOptions } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    p.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    p.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.once('error', reject);
    p.once('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ ms, code, stdout, stderr });
    });
  });
}

/** Like timeSpawn, but a non-zero exit is an error. */
export async function timeOk(cmd: string, args: string[], opts: { env?: Record<string, string>; stdio?: StdioOptions } = {}): Promise<Timed> {
  const r = await timeSpawn(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}: ${r.stderr.trim()}`);
  return r;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- statistics

export interface Stats {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function stats(xs: number[]): Stats {
  if (xs.length === 0) throw new Error('no samples');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { n: s.length, min: s[0], median, max: s[s.length - 1] };
}

export const fmt = (x: number, digits = 1): string => x.toFixed(digits);

/** Prints a fixed-width table: first column left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

/** One PASS/MISS line; `ok` says whether the target is met. */
export function verdict(ok: boolean, what: string): boolean {
  console.log(`${ok ? 'PASS' : 'MISS'}  ${what}`);
  return ok;
}

export function section(title: string): void {
  console.log(`\n== ${title}`);
}

// ---------------------------------------------------------------- memory

/** VmRSS and VmHWM of a process, in MiB, from /proc/PID/status. */
export function procMemory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

// ---------------------------------------------------------------- in-process HTTP

/**
 * One API request over a fresh unix-socket connection from this process, timed
 * from connect to the last body byte: the daemon's own cost for a call,
 * without any client process start.
 */
export function timeApi(socket: string, method: string, path: string): Promise<{ ms: number; status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = httpRequest({ socketPath: socket, method, path, agent: false, headers: { Host: 'berth' } }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.once('end', () => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, status: res.statusCode ?? 0, bytes }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}
