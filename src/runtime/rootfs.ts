/**
 * Mounting a container's root filesystem from the snapshotter's mount specs
 * (the snapshotter never mounts anything itself). runc 1.1 needs `root.path`
 * to be a mounted directory, so the daemon mounts the snapshot at the bundle's
 * `rootfs` before `runc create` and unmounts it after `runc delete`. The mount
 * lives in the host mount namespace and survives a daemon restart.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { BerthError, ErrorCode } from '../common/errors.ts';
import type { Mount } from '../snapshots/overlay.ts';

const run = promisify(execFile);

/** Mounts `mounts` in order at `target` (created if missing), with mount(8). */
export async function mountRootfs(mounts: readonly Mount[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const m of mounts) {
    const args = m.type === 'bind' ? [] : ['-t', m.type];
    const options = m.type === 'bind' && !m.options.some((o) => o === 'bind' || o === 'rbind') ? ['rbind', ...m.options] : m.options;
    if (options.length) args.push('-o', options.join(','));
    args.push(m.source, target);
    try {
      await run('mount', args);
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr?.trim() ?? String(e);
      throw new BerthError(ErrorCode.Internal, `mounting the container root at ${target}: ${stderr}`, { cause: e });
    }
  }
}

/** Whether something is mounted exactly at `target`. */
export async function isMounted(target: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const escaped = target.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return text.split('\n').some((line) => line.split(' ')[4] === escaped);
}

/** Unmounts everything stacked at `target`; nothing mounted is fine. With `lazy`, detaches a busy mount (MNT_DETACH). */
export async function unmountRootfs(target: string, lazy = false): Promise<void> {
  while (await isMounted(target)) {
    try {
      await run('umount', lazy ? ['-l', target] : [target]);
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr?.trim() ?? String(e);
      throw new BerthError(ErrorCode.Internal, `unmounting the container root at ${target}: ${stderr}`, { cause: e });
    }
  }
}
