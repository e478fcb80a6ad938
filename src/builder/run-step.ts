// A RUN step's container: runc in the foreground over a mounted root, its output streamed to the
// build as it comes. No monitor, log file or container record: a build container lives exactly as
// long as its step, and a cancelled build kills it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, ErrorCode } from '../common/errors.ts';
import { encodeSpec } from '../runtime/oci-spec.ts';
import { buildSpec, type MountRequest } from '../runtime/spec.ts';
import { resolveUser } from '../runtime/user.ts';
import { runcMessage } from '../runtime/runc.ts';

export interface RunStepOptions {
  /** runc and its state root (the daemon's). */
  runc: { binary: string; root: string };
  /** A scratch directory for the bundle. */
  scratch: string;
  /** The step's mounted root filesystem. */
  rootfs: string;
  args: readonly string[];
  env: readonly string[];
  cwd: string;
  user: string;
  /** Secret files and other binds for this step only. */
  mounts?: readonly MountRequest[];
  /** `host` shares the daemon's network (the default, as BuildKit's host mode); `none` has only lo. */
  network?: 'host' | 'none';
  onOutput: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

/** Keeps the last lines of a step's output for its error message. */
class Tail {
  #buf = '';
  push(chunk: Buffer): void {
    this.#buf = (this.#buf + chunk.toString('utf8')).slice(-4096);
  }
  lines(n: number): string[] {
    return this.#buf.split('\n').filter((l) => l.trim() !== '').slice(-n);
  }
}

export class RunStepError extends BerthError {
  readonly exitCode: number;
  readonly tail: string[];
  constructor(message: string, exitCode: number, tail: string[]) {
    super(ErrorCode.InvalidArgument, message);
    this.exitCode = exitCode;
    this.tail = tail;
  }
}

/** Runs the step; resolves with its exit code (0), or throws a RunStepError naming the code. */
export async function runStep(o: RunStepOptions): Promise<void> {
  o.signal?.throwIfAborted();
  const id = `build-${randomBytes(8).toString('hex')}`;
  const bundle = join(o.scratch, id);
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  try {
    const hostsFile = join(bundle, 'hosts');
    const resolvFile = join(bundle, 'resolv.conf');
    await writeFile(hostsFile, await readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'));
    await writeFile(resolvFile, await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    const user = await resolveUser(o.rootfs, o.user);
    const spec = buildSpec({
      id, args: o.args, env: o.env, cwd: o.cwd, user, rootfs: o.rootfs,
      namespaces: { network: o.network === 'none' ? 'private' : 'host' },
      hostname: o.network === 'none' ? id.slice(6, 18) : undefined,
      mounts: o.mounts, etcHosts: hostsFile, resolvConf: resolvFile,
      cgroupsPath: `/berth/${id}`,
    });
    await writeFile(join(bundle, 'config.json'), encodeSpec(spec));
    const log = join(bundle, 'runc.log');
    const tail = new Tail();
    const child = spawn(o.runc.binary, ['--root', o.runc.root, '--log', log, '--log-format', 'json', 'run', '--bundle', bundle, id], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (c: Buffer) => {
      tail.push(c);
      o.onOutput(c);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    // runc may not have made the container yet when the build is cancelled: keep asking until runc run returns.
    let killer: NodeJS.Timeout | undefined;
    const kill = () => {
      const once = () => spawn(o.runc.binary, ['--root', o.runc.root, 'kill', id, 'KILL'], { stdio: 'ignore' }).on('error', () => {});
      once();
      killer ??= setInterval(once, 100);
    };
    o.signal?.addEventListener('abort', kill, { once: true });
    if (o.signal?.aborted) kill();
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, sig) => resolve(c ?? 128 + (sig ? 9 : 0)));
    }).finally(() => {
      o.signal?.removeEventListener('abort', kill);
      clearInterval(killer);
    });
    // runc deletes a container it ran in the foreground; a crash or a kill may leave its state behind.
    await new Promise<void>((resolve) => {
      spawn(o.runc.binary, ['--root', o.runc.root, 'delete', '--force', id], { stdio: 'ignore' }).on('close', () => resolve()).on('error', () => resolve());
    });
    o.signal?.throwIfAborted();
    const runcErr = runcMessage(await readFile(log, 'utf8').catch(() => ''));
    if (runcErr && code !== 0) throw new RunStepError(`failed to run the step: ${runcErr}`, code, tail.lines(10));
    if (code !== 0) {
      const shown = o.args.join(' ');
      throw new RunStepError(`The command '${shown}' returned a non-zero code: ${code}`, code, tail.lines(10));
    }
  } finally {
    await rm(bundle, { recursive: true, force: true });
  }
}
