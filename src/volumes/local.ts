/**
 * The local driver's work on disk: mounting a volume's device (`-o type=tmpfs`,
 * `-o o=bind`), copying an image's files into an empty volume, and sizes.
 */
import { execFile } from 'node:child_process';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { BerthError, ErrorCode, errno, invalidArgument } from '../common/errors.ts';
import { isMounted } from '../runtime/rootfs.ts';

const run = promisify(execFile);

/** The local driver's options, as `docker volume create -o` gives them. */
export const LOCAL_OPTIONS = ['type', 'o', 'device', 'size'] as const;

export function validateLocalOptions(opts: Record<string, string>): void {
  for (const k of Object.keys(opts)) {
    if (!(LOCAL_OPTIONS as readonly string[]).includes(k)) throw invalidArgument(`invalid option: ${JSON.stringify(k)}`);
  }
  if (opts.size !== undefined) throw invalidArgument('quota size requested but no quota support');
  if ((opts.o ?? '').split(',').includes('bind') && !opts.device) throw invalidArgument('missing required option: "device"');
}

/** Whether the volume's options ask for a mount (rather than a plain directory). */
export const needsMount = (opts: Record<string, string> | null) => Boolean(opts && (opts.type || opts.device || opts.o));

/** mount(8) of the volume's device at its `_data`, once. */
export async function mountDevice(opts: Record<string, string>, target: string): Promise<void> {
  if (await isMounted(target)) return;
  const args: string[] = [];
  if (opts.type) args.push('-t', opts.type);
  if (opts.o) args.push('-o', opts.o);
  args.push(opts.device || opts.type || 'none', target);
  try {
    await run('mount', args);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim() ?? String(e);
    throw new BerthError(ErrorCode.Internal, `error while mounting volume '${target}': failed to mount local volume: ${stderr}`, { cause: e });
  }
}

export async function unmountDevice(target: string): Promise<void> {
  while (await isMounted(target)) {
    try {
      await run('umount', [target]);
    } catch {
      await run('umount', ['-l', target]);
    }
  }
}

export async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (e) {
    if (errno(e) === 'ENOENT') return true;
    throw e;
  }
}

/**
 * The host path of `path` inside `root`, following symlinks as if `root`
 * were `/`, so an image's links can never lead out of it. Undefined when
 * the path does not exist.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  let parts = path.split('/').filter((p) => p && p !== '.');
  let resolved: string[] = [];
  let links = 0;
  while (parts.length) {
    const p = parts.shift()!;
    if (p === '..') {
      resolved.pop();
      continue;
    }
    const host = posix.join(root, ...resolved, p);
    let st;
    try {
      st = await lstat(host);
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (++links > 40) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) resolved = [];
      parts = [...target.split('/').filter((x) => x && x !== '.'), ...parts];
      continue;
    }
    resolved.push(p);
  }
  return posix.join(root, ...resolved);
}

/**
 * Docker's copy-up: the image's files at `path` (in the container's root
 * `rootfs`) into the empty volume directory `data`, with owners, modes,
 * times and xattrs, the directory's own owner and mode included.
 */
export async function copyUp(rootfs: string, path: string, data: string): Promise<boolean> {
  const src = await resolveInRoot(rootfs, path);
  if (!src) return false;
  const st = await lstat(src);
  if (!st.isDirectory()) return false;
  try {
    await run('cp', ['-a', '--', `${src}/.`, data]);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim() ?? String(e);
    throw new BerthError(ErrorCode.Internal, `copying the image's ${path} into the volume: ${stderr}`, { cause: e });
  }
  return true;
}

/** The bytes a directory tree holds (hard links once), as Docker's `system df -v` counts. */
export async function dirSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = posix.join(d, n);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) await walk(p);
      else {
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && seen.has(key)) continue;
        seen.add(key);
        total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}
