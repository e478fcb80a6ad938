import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BERTH = join(ROOT, 'bin', 'berth');
export const BERTHD = join(ROOT, 'bin', 'berthd');
export const DOCKER = '/usr/local/bin/docker';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  /** Raw stdout bytes instead of text (for save). */
  binary?: boolean;
  timeoutMs?: number;
}

/** A private berthd for one test file: its own data root and socket. */
export class TestDaemon {
  readonly dir: string;
  readonly dataRoot: string;
  readonly socket: string;
  proc: ChildProcess | undefined;
  log = '';

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'berth-e2e-'));
    this.dataRoot = join(this.dir, 'root');
    this.socket = join(this.dir, 'berth.sock');
  }

  static async start(): Promise<TestDaemon> {
    const d = new TestDaemon();
    await d.startProcess();
    return d;
  }

  async startProcess(): Promise<void> {
    await mkdir(this.dataRoot, { recursive: true });
    const proc = spawn(BERTHD, ['--data-root', this.dataRoot, '-H', `unix://${this.socket}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (c) => (this.log += c));
    proc.stderr!.on('data', (c) => (this.log += c));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`berthd exited with ${proc.exitCode}:\n${this.log}`);
      if (await canConnect(this.socket)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`berthd did not start:\n${this.log}`);
  }

  get env(): Record<string, string> {
    return { BERTH_HOST: `unix://${this.socket}`, DOCKER_HOST: `unix://${this.socket}` };
  }

  berth(args: string[], opts: RunOptions = {}): RunResult {
    return run(BERTH, args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  docker(args: string[], opts: RunOptions = {}): RunResult {
    return run(DOCKER, args, { ...opts, env: { ...this.env, DOCKER_CONFIG: join(this.dir, 'docker-config'), ...opts.env } });
  }

  /** SIGTERM and wait; returns the exit code. */
  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return p?.exitCode ?? null;
    const done = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    return done;
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await done;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(cmd, args, {
    input: opts.input,
    env: { ...process.env, ...opts.env },
    encoding: opts.binary ? 'buffer' : 'utf8',
    maxBuffer: 1 << 30,
    timeout: opts.timeoutMs ?? 120_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: opts.binary ? (r.stdout as unknown as string) : String(r.stdout), stderr: String(r.stderr) };
}

function canConnect(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

const FIXTURES = join(tmpdir(), 'berth-fixtures');

/** A busybox root filesystem tarball for an architecture, built once per machine from Debian's busybox-static. */
export function busyboxRootfs(arch: 'amd64' | 'arm64' = hostArch()): string {
  const out = join(FIXTURES, `busybox-${arch}.tar`);
  if (!existsSync(out)) {
    spawnSync('mkdir', ['-p', FIXTURES]);
    const r = spawnSync(join(ROOT, 'scripts', 'busybox-rootfs'), [arch, out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`busybox-rootfs ${arch} failed: ${r.stderr}`);
  }
  return out;
}

export function hostArch(): 'amd64' | 'arm64' {
  return process.arch === 'arm64' ? 'arm64' : 'amd64';
}

/** Imports the busybox rootfs as `name` through berth; returns the image ID. */
export function importBusybox(d: TestDaemon, name = 'busybox:latest', changes: string[] = ['CMD ["sh"]']): string {
  const r = d.berth(['import', ...changes.flatMap((c) => ['--change', c]), busyboxRootfs(), name]);
  if (r.code !== 0) throw new Error(`import failed: ${r.stderr}`);
  return r.stdout.trim();
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
