// After a crash or kill -9 mid-build: the build's scratch mounts, runc state and active
// snapshots are left behind. Nothing of a build is resumable, so all of it goes at start-up;
// finished steps are safe in the cache.
import { execFile } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../common/log.ts';
import { isMounted, unmountRootfs } from '../runtime/rootfs.ts';
import type { OverlaySnapshotter } from '../snapshots/overlay.ts';

const run = promisify(execFile);

export async function cleanBuildLeftovers(o: { snapshots: OverlaySnapshotter; scratch: string; runcRoot: string; log: Logger }): Promise<void> {
  for (const name of await readdir(o.runcRoot).catch(() => [] as string[])) {
    if (name.startsWith('build-')) await run('runc', ['--root', o.runcRoot, 'delete', '--force', name]).catch(() => {});
  }
  for (const name of await readdir(o.scratch).catch(() => [] as string[])) {
    if (!name.startsWith('build-') && !name.startsWith('secrets-')) continue;
    const dir = join(o.scratch, name);
    if (await isMounted(dir)) await unmountRootfs(dir).catch(() => unmountRootfs(dir, true)).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch((e) => o.log.warn('removing build scratch failed', { dir, err: e }));
  }
  // Children before parents: a view or active build snapshot is never a parent.
  for (const s of o.snapshots.list()) {
    if (s.key.startsWith('build-') && s.kind !== 'committed') await o.snapshots.remove(s.key).catch(() => {});
  }
}
