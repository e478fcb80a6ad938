import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { removeDaemonNetworking } from '../../src/network/teardown.ts';
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
  /** This daemon's share of the host's network: its own bridge, subnets and iptables chains. */
  readonly net: NetworkSlot;
  proc: ChildProcess | undefined;
  log = '';

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'berth-e2e-'));
    this.dataRoot = join(this.dir, 'root');
    this.socket = join(this.dir, 'berth.sock');
    this.net = claimNetworkSlot();
  }

  static async start(): Promise<TestDaemon> {
    const d = new TestDaemon();
    await d.startProcess();
    return d;
  }

  /** A daemon with `busybox:latest` imported: what most test files start from. */
  static async startWithBusybox(): Promise<TestDaemon> {
    const d = await TestDaemon.start();
    importBusybox(d);
    return d;
  }

  async startProcess(): Promise<void> {
    await mkdir(this.dataRoot, { recursive: true });
    // Containers' names are answered by berthd; any other name goes to 127.0.0.1, where nothing answers:
    // a test never sends a DNS question off this machine.
    const args = ['--data-root', this.dataRoot, '-H', `unix://${this.socket}`, '-b', this.net.bridge, '--bip', this.net.bip,
      '--default-address-pool', this.net.pool, '--dns', '127.0.0.1'];
    const proc = spawn(BERTHD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

  /** Removes the containers a test left (they outlive berthd), then the daemon and everything it made. */
  async cleanup(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      const ids = this.berth(['ps', '-aq']).stdout.trim().split('\n').filter(Boolean);
      if (ids.length) this.berth(['rm', '-f', ...ids]);
    }
    await this.stop();
    this.removeNetworking();
    await rm(this.dir, { recursive: true, force: true });
    releaseNetworkSlot(this.net);
  }

  /** Takes this daemon's bridges and iptables chains off the host (berthd leaves them, as dockerd does). */
  removeNetworking(): void {
    removeDaemonNetworking(this.net.bridge, this.dataRoot);
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

export interface NetworkSlot {
  index: number;
  bridge: string;
  /** The default bridge's gateway and prefix: 10.200.<index>.1/24. */
  bip: string;
  /** Where this daemon's user networks come from: /24s of 10.<201+index>.0.0/16. */
  pool: string;
}

const SLOTS = '/run/berth-test-slots';
const SLOT_COUNT = 50;

/**
 * Test daemons run side by side (two test files at a time): each claims a
 * slot, so bridges, subnets and chains never meet. A slot whose owner died
 * is taken over.
 */
function claimNetworkSlot(): NetworkSlot {
  mkdirSync(SLOTS, { recursive: true });
  for (let i = 0; i < SLOT_COUNT; i++) {
    const dir = join(SLOTS, String(i));
    try {
      mkdirSync(dir);
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
      } catch {
        continue; // just made by another daemon, which is about to write its pid
      }
      if (owner === process.pid || pidAlive(owner)) continue;
    }
    writeFileSync(join(dir, 'pid'), `${process.pid}\n`);
    return { index: i, bridge: `bt${i}`, bip: `10.200.${i}.1/24`, pool: `base=10.${201 + i}.0.0/16,size=24` };
  }
  throw new Error('no free test network slot');
}

function releaseNetworkSlot(s: NetworkSlot): void {
  rmSync(join(SLOTS, String(s.index)), { recursive: true, force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
