// What a container's writable layer holds that is not the container's own change: the mount
// points the runtime made for /proc, /sys, /dev, /.dockerenv and the bound /etc files, and the
// directories copied up only to hold them. `commit`, `diff` and the builder's layers leave them
// out, as Docker's init layer keeps them out of its images.
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { errno } from '../common/errors.ts';
import type { WalkOptions } from './tree.ts';

export const MOUNT_POINTS = new Set(['dev', 'proc', 'sys', '.dockerenv', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']);

/** The first of `lowers` (top first) that has `rel`, or undefined when none has it or a whiteout hides it. */
export async function statBelow(lowers: readonly string[], rel: string): Promise<Stats | undefined> {
  for (const l of lowers) {
    try {
      const st = await lstat(`${l}/${rel}`);
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      return st;
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
    }
  }
  return undefined;
}

/** walkTree options that leave the runtime's mount points out of an upper directory's layer. */
export function containerLayerFilter(lowers: readonly string[]): Pick<WalkOptions, 'skip' | 'prunable'> {
  return {
    skip: (rel: string, st: Stats) => MOUNT_POINTS.has(rel) && !(st.isCharacterDevice() && st.rdev === 0),
    prunable: async (rel: string, st: Stats) => {
      const b = await statBelow(lowers, rel);
      return Boolean(b?.isDirectory() && (b.mode & 0o7777) === (st.mode & 0o7777) && b.uid === st.uid && b.gid === st.gid);
    },
  };
}
