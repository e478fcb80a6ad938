import { monitorAlive } from './monitor-state.ts';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { errno } from '../common/errors.ts';
import type { OciSpec } from './oci-spec.ts';
import { buildExecProcess } from './spec.ts';
import { resolveUser } from './user.ts';

/** What `docker exec` asks to run, as the Engine API's exec config says it. */
export interface ExecProcessConfig {
  args: string[];
  env: string[];
  workingDir: string;
  user: string;
  tty: boolean;
  privileged: boolean;
  openStdin: boolean;
  consoleSize?: { height: number; width: number };
}

export interface ExecExit {
  exitCode: number;
  finishedAt: string;
}

/** Where one container's runc and monitor live, as the container runtime knows it. */
export interface ExecHost {
  monitorBin: string;
  runcBinary: string;
  runcRoot: string;
  containerId: string;
  /** The container's bundle config.json and mounted rootfs. */
  specPath: string;
  rootfs: string;
  /** A short per-exec state dir (unix socket paths). */
  stateDir: string;
}

/** Why an exec could not start, with Docker's exit code (126 cannot execute, 127 not found). */
export class ExecStartError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * Runs one exec under berth-monitor in exec mode: the monitor holds the
 * process's stdio (or pty), serves attach.sock/ctl.sock and writes exit.json.
 * `beforeStart` runs once the sockets listen and before the process runs.
 */
export async function startExec(h: ExecHost, cfg: ExecProcessConfig, beforeStart: () => Promise<void>): Promise<{ pid: number }> {
  const spec = JSON.parse(await readFile(h.specPath, 'utf8')) as OciSpec;
  const user = cfg.user ? await resolveUser(h.rootfs, cfg.user) : undefined;
  const proc = buildExecProcess(spec, {
    args: cfg.args, env: cfg.env, cwd: cfg.workingDir || undefined, user, tty: cfg.tty, privileged: cfg.privileged,
    consoleSize: cfg.consoleSize,
  });
  await rm(h.stateDir, { recursive: true, force: true });
  await mkdir(h.stateDir, { recursive: true, mode: 0o700 });
  const procFile = join(h.stateDir, 'process.json');
  await writeFile(procFile, JSON.stringify(proc));
  const args = ['--exec', '--process', procFile, '--id', h.containerId, '--state-dir', h.stateDir, '--runtime', h.runcBinary, '--runtime-root', h.runcRoot, '--sync-fd', '3'];
  if (cfg.tty) args.push('--tty');
  // The client's stdin ending closes the process's, except with a TTY (as in Docker, so a detach leaves a shell running).
  if (cfg.openStdin) args.push('--stdin', ...(cfg.tty ? [] : ['--stdin-once']));
  const child = spawn(h.monitorBin, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], detached: true });
  child.unref();
  let stderr = '';
  child.stderr!.on('data', (b) => (stderr += b));
  const lines = syncLines(child.stdio[3] as unknown as NodeJS.ReadableStream);
  child.once('error', (e) => lines.fail(e));
  const first = await lines.next();
  if (first !== 'ready') throw syncFailure(first, stderr);
  let started = false;
  try {
    await beforeStart();
    if (cfg.consoleSize && cfg.tty) await control(h.stateDir, `resize ${cfg.consoleSize.height} ${cfg.consoleSize.width}`).catch(() => {});
    const reply = await control(h.stateDir, 'start');
    if (reply !== 'ok') throw new Error(`berth-monitor: start: ${reply}`);
    started = true;
  } finally {
    // The monitor waits for `start`: never leave it waiting for ever.
    if (!started) await control(h.stateDir, 'start').catch(() => {});
  }
  const second = await lines.next();
  const m = /^ok (\d+)/.exec(second ?? '');
  if (m) return { pid: Number(m[1]) };
  throw syncFailure(second, stderr);
}

function syncFailure(line: string | undefined, stderr: string): Error {
  const e = /^error (\d+) ([\s\S]*)$/.exec((line ?? '').trim());
  if (!e) return new Error(`berth-monitor failed: ${stderr.trim() || line?.trim() || 'no answer'}`);
  const msg = e[2].trim().replace(/\s+/g, ' ');
  const code = /executable file not found|no such file or directory/i.test(msg) ? 127 : 126;
  return new ExecStartError(`OCI runtime exec failed: ${msg}: unknown`, code);
}

/** Lines from the monitor's sync fd, one at a time; undefined at EOF. */
function syncLines(s: NodeJS.ReadableStream): { next(): Promise<string | undefined>; fail(e: Error): void } {
  let buf = '';
  let ended = false;
  let error: Error | undefined;
  let wake: (() => void) | undefined;
  s.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    wake?.();
  });
  s.on('end', () => {
    ended = true;
    wake?.();
  });
  s.on('error', () => {
    ended = true;
    wake?.();
  });
  return {
    async next() {
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          return line;
        }
        if (error) throw error;
        if (ended) {
          const rest = buf;
          buf = '';
          return rest || undefined;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
    fail(e) {
      error = e;
      wake?.();
    },
  };
}

export function attachExec(stateDir: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(join(stateDir, 'attach.sock'));
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One ctl.sock command; resolves with the monitor's reply line. */
export function control(stateDir: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(join(stateDir, 'ctl.sock'));
    let reply = '';
    s.setEncoding('utf8');
    s.once('connect', () => s.write(`${line}\n`));
    s.on('data', (d: string) => {
      reply += d;
      if (reply.includes('\n')) {
        s.end();
        resolve(reply.trim());
      }
    });
    s.once('close', () => resolve(reply.trim()));
    s.once('error', reject);
  });
}

/** Resolves when the exec'd process has exited (exit.json), or the monitor died without saying. */
export async function execExited(stateDir: string): Promise<ExecExit> {
  const file = join(stateDir, 'exit.json');
  for (;;) {
    const text = await readFile(file, 'utf8').catch((e) => (errno(e) === 'ENOENT' ? undefined : Promise.reject(e)));
    if (text !== undefined) {
      const x = JSON.parse(text) as { exit_code: number; exited_at: string };
      return { exitCode: x.exit_code, finishedAt: x.exited_at };
    }
    if (!(await monitorAlive(stateDir))) {
      const again = await readFile(file, 'utf8').catch(() => undefined);
      if (again !== undefined) continue;
      return { exitCode: 255, finishedAt: new Date().toISOString() };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes a finished exec's state dir (process.json, exit.json, runc.log). */
export async function removeExecState(stateDir: string): Promise<void> {
  await rm(stateDir, { recursive: true, force: true });
}

