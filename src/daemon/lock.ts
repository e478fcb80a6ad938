import { readFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { errno, failedPrecondition } from '../common/errors.ts';

/**
 * One daemon per state directory: a pidfile created exclusively. A pidfile
 * whose process is gone (a `kill -9`) is stale and is taken over.
 */
export async function acquirePidfile(path: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        const pid = await readFile(path, 'utf8').catch(() => '');
        if (pid.trim() === String(process.pid)) await unlink(path).catch(() => {});
      };
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (pid > 0 && pid !== process.pid && alive(pid)) {
      throw failedPrecondition(`berthd is already running on this data root (pid ${pid}, pidfile ${path})`);
    }
    await unlink(path).catch(() => {});
  }
  throw failedPrecondition(`could not take the pidfile ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errno(e) === 'EPERM';
  }
  // A killed daemon whose parent has not reaped it yet still answers signal 0: a zombie holds nothing.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
