/**
 * A small driver for the runc CLI. Each daemon keeps its own `--root` (state
 * dir, ideally on tmpfs) so it never sees or touches other engines' containers.
 *
 * Commands whose output berth reads run with pipes. Commands that hand stdio to
 * a container (`create`, detached `run`/`exec`) take the caller's stdio and
 * write runc's own messages to a log file instead, because the container keeps
 * those descriptors open after runc exits. Errors carry runc's message text.
 */
import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError, type ErrorCode, ErrorCode as Codes } from '../common/errors.ts';
import { encodeSpec, type OciProcess, type OciResources } from './oci-spec.ts';

export interface RuncOptions {
  /** The state directory (`runc --root`), one per daemon. */
  root: string;
  /** The runc binary; `runc` from PATH by default. */
  binary?: string;
  /** Where process.json files and log files live briefly; the system temp dir by default. */
  tmpDir?: string;
  /** Use the systemd cgroup driver (`--systemd-cgroup`); cgroupsPath must then be `slice:prefix:name`. */
  systemdCgroup?: boolean;
}

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** `runc state` output. */
export interface RuncState {
  ociVersion: string;
  id: string;
  /** 0 once stopped. */
  pid: number;
  status: ContainerStatus;
  bundle: string;
  rootfs: string;
  created: string;
  owner?: string;
  annotations?: Record<string, string>;
}

/**
 * Where a container's stdin, stdout and stderr go: Node `spawn` stdio entries
 * that are fds, streams with an fd, 'ignore' or 'inherit' — never 'pipe', whose
 * ends would stay open in the container and keep the call waiting.
 */
export type Stdio = StdioOptions;

export interface CreateOptions {
  /** The container's stdio; /dev/null when absent (a tty container uses the console socket instead). */
  stdio?: Stdio;
  pidFile?: string;
  /** An AF_UNIX socket that receives the pty master (for `process.terminal`). */
  consoleSocket?: string;
  noPivot?: boolean;
  signal?: AbortSignal;
}

export interface RuncExecOptions {
  /** Return once the process started, leaving it running (`--detach`). */
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  /** stdio for a detached exec; ignored otherwise (output is captured). */
  stdio?: Stdio;
  /** Bytes for the process's stdin (foreground only). */
  input?: string | Uint8Array;
  preserveFds?: number;
  signal?: AbortSignal;
}

export interface RunOptions {
  input?: string | Uint8Array;
  pidFile?: string;
  noPivot?: boolean;
  signal?: AbortSignal;
}

/** A finished foreground process: its exit code (128+n when killed by signal n) and output. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A runc failure: category, runc's message, and its exit code. */
export class RuncError extends BerthError {
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(code: ErrorCode, message: string, stderr: string, exitCode: number | null, cause?: unknown) {
    super(code, message, { cause });
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** Picks the category from runc's message; runc has no error codes of its own. */
function categorise(text: string): ErrorCode {
  if (/container does not exist|container .* does not exist/i.test(text)) return Codes.NotFound;
  if (/already exists/i.test(text)) return Codes.AlreadyExists;
  if (/not running|is not paused|is paused|cannot (?:start|pause|resume|exec)|container is (?:stopped|running)|cannot delete/i.test(text)) {
    return Codes.FailedPrecondition;
  }
  return Codes.Internal;
}

/** runc's text, from JSON log lines (error level) or plain stderr. */
export function runcMessage(stderr: string): string {
  const msgs: string[] = [];
  for (const line of stderr.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    if (t.startsWith('{')) {
      try {
        const rec = JSON.parse(t) as { level?: string; msg?: string };
        if (rec.msg && (rec.level === 'error' || rec.level === 'fatal')) msgs.push(rec.msg);
        continue;
      } catch {
        // not JSON after all
      }
    }
    // logrus text lines: keep errors, drop warnings and chatter.
    const m = /level=(\w+) msg="((?:[^"\\]|\\.)*)"/.exec(t);
    if (!m) msgs.push(t);
    else if (m[1] === 'error' || m[1] === 'fatal') msgs.push(m[2].replace(/\\"/g, '"'));
  }
  return [...new Set(msgs)].join('; ');
}

interface Spawned {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const SIGNALS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

function exitStatus(r: Spawned): number {
  return r.code ?? 128 + (r.signal ? (SIGNALS[r.signal] ?? 0) : 0);
}

export class Runc {
  readonly root: string;
  readonly binary: string;
  #tmp: string;
  #systemd: boolean;

  constructor(opts: RuncOptions) {
    this.root = opts.root;
    this.binary = opts.binary ?? 'runc';
    this.#tmp = opts.tmpDir ?? tmpdir();
    this.#systemd = opts.systemdCgroup === true;
  }

  #global(): string[] {
    const g = ['--root', this.root];
    if (this.#systemd) g.push('--systemd-cgroup');
    return g;
  }

  /** Runs runc with pipes and collects everything. */
  #spawn(args: string[], input?: string | Uint8Array, signal?: AbortSignal, stdio?: Stdio, flags: string[] = []): Promise<Spawned> {
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(this.binary, [...flags, ...this.#global(), ...args], { stdio: stdio ?? ['pipe', 'pipe', 'pipe'], signal });
      } catch (e) {
        reject(e);
        return;
      }
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr?.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) =>
        reject(e.name === 'AbortError' ? e : new RuncError(Codes.Unavailable, `runc ${args[0]}: ${e.message}`, '', null, e)),
      );
      child.on('close', (code, sig) =>
        resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
      );
      if (child.stdin) {
        child.stdin.on('error', () => {}); // the process may exit before reading its input
        child.stdin.end(input ?? '');
      }
    });
  }

  /** Runs a command whose only interest is success; throws a categorised RuncError otherwise. */
  async #must(args: string[], input?: string | Uint8Array, signal?: AbortSignal): Promise<string> {
    const r = await this.#spawn(args, input, signal);
    if (r.code !== 0) throw this.#error(args[0], r.stderr, r.code);
    return r.stdout;
  }

  #error(cmd: string, stderr: string, code: number | null): RuncError {
    const msg = runcMessage(stderr) || `exit status ${code}`;
    return new RuncError(categorise(msg), `runc ${cmd}: ${msg}`, stderr, code);
  }

  /**
   * Runs a command with runc's own messages going to a JSON log file, so they
   * are never confused with the container's output: commands that hand stdio to
   * a container, or whose pipes carry a container process's output. Returns
   * runc's error text from the log ('' when it reported none).
   */
  async #logged(args: string[], stdio: Stdio, input?: string | Uint8Array, signal?: AbortSignal): Promise<Spawned & { log: string }> {
    await mkdir(this.#tmp, { recursive: true });
    const log = join(this.#tmp, `runc-${randomBytes(8).toString('hex')}.log`);
    try {
      const r = await this.#spawn(args, input, signal, stdio, ['--log', log, '--log-format', 'json']);
      const text = await readFile(log, 'utf8').catch(() => '');
      return { ...r, log: runcMessage(text) };
    } finally {
      await rm(log, { force: true });
    }
  }

  /** A logged command that only has to succeed. */
  async #mustLogged(args: string[], stdio: Stdio, signal?: AbortSignal): Promise<void> {
    const r = await this.#logged(args, stdio, undefined, signal);
    if (r.code !== 0) throw this.#error(args[0], r.log || r.stderr, r.code);
  }

  /** `runc create`: sets the container up and leaves its init waiting for `start`. */
  async create(id: string, bundle: string, opts: CreateOptions = {}): Promise<void> {
    const args = ['create', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    args.push(id);
    await this.#mustLogged(args, opts.stdio ?? 'ignore', opts.signal);
  }

  /** `runc start`: runs the user process of a created container. */
  async start(id: string): Promise<void> {
    await this.#must(['start', id]);
  }

  /**
   * `runc run` in the foreground without a tty: waits for the container to
   * exit and returns its exit code and output. (runc deletes it afterwards.)
   */
  async run(id: string, bundle: string, opts: RunOptions = {}): Promise<RunResult> {
    const args = ['run', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    if (opts.noPivot) args.push('--no-pivot');
    args.push(id);
    const stdin = opts.input === undefined ? 'ignore' : 'pipe';
    const r = await this.#logged(args, [stdin, 'pipe', 'pipe'], opts.input, opts.signal);
    if (r.log) throw this.#error('run', r.log, r.code);
    return { exitCode: exitStatus(r), stdout: r.stdout, stderr: r.stderr };
  }

  /** `runc run --detach`: create and start in one step, handing `stdio` to the container. */
  async runDetached(id: string, bundle: string, opts: CreateOptions = {}): Promise<void> {
    const args = ['run', '--detach', '--bundle', bundle];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
    if (opts.noPivot) args.push('--no-pivot');
    args.push(id);
    await this.#mustLogged(args, opts.stdio ?? 'ignore', opts.signal);
  }

  /** `runc state`; NotFound when runc does not know the container. */
  async state(id: string): Promise<RuncState> {
    return JSON.parse(await this.#must(['state', id])) as RuncState;
  }

  /** `runc list`: every container under this root. */
  async list(): Promise<RuncState[]> {
    const out = (await this.#must(['list', '--format', 'json'])).trim();
    return out && out !== 'null' ? (JSON.parse(out) as RuncState[]) : [];
  }

  /** `runc kill`: a signal name (`SIGTERM`, `TERM`, `KILL`) or number; `all` signals every process of the container. */
  async kill(id: string, signal: string | number = 'SIGTERM', all = false): Promise<void> {
    const args = ['kill'];
    if (all) args.push('--all');
    args.push(id, String(signal));
    await this.#must(args);
  }

  /** `runc delete`; `force` kills a running container first. */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const args = ['delete'];
    if (opts.force) args.push('--force');
    args.push(id);
    await this.#must(args);
  }

  async pause(id: string): Promise<void> {
    await this.#must(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.#must(['resume', id]);
  }

  /**
   * `runc update --resources -`: runc 1.1 reads memory (limit, reservation,
   * swap, kernel, kernelTCP), cpu (shares, quota, period, realtime*, cpus,
   * mems), blockIO.weight and pids.limit from it; other fields are ignored.
   */
  async update(id: string, resources: OciResources): Promise<void> {
    await this.#must(['update', '--resources', '-', id], encodeSpec(resources));
  }

  /**
   * `runc exec --process`: runs `proc` (see `buildExecProcess`) in the container. In the foreground it
   * waits and returns the exit code and output; with `detach` it returns once
   * the process has started (its pid in `pidFile`).
   */
  async exec(id: string, proc: OciProcess, opts: RuncExecOptions = {}): Promise<RunResult> {
    await mkdir(this.#tmp, { recursive: true });
    const file = join(this.#tmp, `process-${randomBytes(8).toString('hex')}.json`);
    await writeFile(file, encodeSpec(proc), { mode: 0o600 });
    try {
      const args = ['exec', '--process', file];
      if (opts.detach) args.push('--detach');
      if (opts.pidFile) args.push('--pid-file', opts.pidFile);
      if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
      if (opts.preserveFds) args.push('--preserve-fds', String(opts.preserveFds));
      args.push(id);
      if (opts.detach) {
        await this.#mustLogged(args, opts.stdio ?? 'ignore', opts.signal);
        return { exitCode: 0, stdout: '', stderr: '' };
      }
      const stdin = opts.input === undefined ? 'ignore' : 'pipe';
      const r = await this.#logged(args, [stdin, 'pipe', 'pipe'], opts.input, opts.signal);
      if (r.log) throw this.#error('exec', r.log, r.code);
      return { exitCode: exitStatus(r), stdout: r.stdout, stderr: r.stderr };
    } finally {
      await rm(file, { force: true });
    }
  }

  /** `runc ps`: the host pids of the container's processes. */
  async ps(id: string): Promise<number[]> {
    const out = (await this.#must(['ps', '--format', 'json', id])).trim();
    return out && out !== 'null' ? (JSON.parse(out) as number[]) : [];
  }

  /** `runc events --stats`: one snapshot of the container's cgroup statistics. */
  async stats(id: string): Promise<Record<string, unknown>> {
    const out = await this.#must(['events', '--stats', id]);
    const rec = JSON.parse(out) as { data?: Record<string, unknown> };
    return rec.data ?? {};
  }
}
