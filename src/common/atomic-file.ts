import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a whole file crash-safely: a temporary file, fsync, rename, fsync of the directory. The
 * temporary file is a sibling unless `stagingDir` (on the same filesystem) names where half-written
 * files are looked for after a crash.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, stagingDir = dirname(path)): Promise<void> {
  const tmp = join(stagingDir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dirname(path));
}

/** fsyncs a directory so a rename into it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
