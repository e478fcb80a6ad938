/**
 * Paths inside a container root, and extracting a tar into one (`cp` in).
 *
 * A container's symlinks mean what they mean inside the container: an
 * absolute target starts at the container's root, and `..` never climbs out
 * of it. `resolveInRoot` walks a path component by component with lstat, the
 * way securejoin does, so no host path outside the root is ever reached.
 * `extractInto` runs every entry through the LayerChecker first, so a tar
 * cannot climb out, write through a symlink it made, or hard link outside.
 */
import { spawn } from 'node:child_process';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readlink, rm, symlink, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { errno, invalidArgument, notFound } from '../common/errors.ts';
import { readTar } from '../common/tar.ts';
import { LayerChecker, cleanEntryPath } from './layer.ts';

const MAX_LINKS = 255;

/**
 * The host path that `path` names inside `root`, with symlinks resolved in
 * the scope of the root. Components that do not exist are appended as they
 * are. The last component is followed only when `followLast`.
 */
export async function resolveInRoot(root: string, path: string, followLast = true): Promise<string> {
  const queue = path.split('/').filter((p) => p !== '' && p !== '.');
  const cur: string[] = [];
  let links = 0;
  let missing = false;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '.' || part === '') continue;
    if (part === '..') {
      cur.pop();
      continue;
    }
    if (missing) {
      cur.push(part);
      continue;
    }
    const abs = `${root}/${[...cur, part].join('/')}`;
    let isLink = false;
    try {
      isLink = (await lstat(abs)).isSymbolicLink();
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
      missing = true;
    }
    if (isLink && (queue.length > 0 || followLast)) {
      if (++links > MAX_LINKS) throw invalidArgument(`too many levels of symbolic links in ${JSON.stringify(path)}`);
      const target = await readlink(abs);
      if (target.startsWith('/')) cur.length = 0;
      queue.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    cur.push(part);
  }
  return cur.length ? `${root}/${cur.join('/')}` : root;
}

/** The path of `host` (a result of resolveInRoot) as seen inside the root, absolute. */
export function pathInRoot(root: string, host: string): string {
  return host === root ? '/' : host.slice(root.length);
}

export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory or the reverse (docker cp's default). */
  noOverwriteDirNonDir?: boolean;
  /** Owner of every extracted entry; the tar's own owners when unset. */
  owner?: { uid: number; gid: number };
  /** Accept a tar whose last entry lacks its padding and end blocks (the docker CLI's build context). */
  lenientEnd?: boolean;
  signal?: AbortSignal;
}

function runMkfifo(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('mkfifo', ['-m', '0600', '--', path], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(invalidArgument(`cannot create fifo ${path}`))));
  });
}

/**
 * Extracts a tar into the directory `dir` inside `root` (a container's
 * mounted root filesystem). Paths and hard links resolve inside the root;
 * missing parent directories are created; devices are refused.
 */
export async function extractInto(root: string, dir: string, source: AsyncIterable<Buffer | Uint8Array>, opts: ExtractOptions = {}): Promise<{ entries: number }> {
  const base = await resolveInRoot(root, dir);
  let st;
  try {
    st = await lstat(base);
  } catch (e) {
    if (errno(e) === 'ENOENT') throw notFound(`Could not find the file ${dir} in container`);
    throw e;
  }
  if (!st.isDirectory()) throw invalidArgument('extraction point is not a directory');
  const baseRel = pathInRoot(root, base);
  const checker = new LayerChecker();
  const dirTimes: [string, number][] = [];
  let entries = 0;
  for await (const entry of readTar(source, { signal: opts.signal, lenientEnd: opts.lenientEnd })) {
    const h = entry.header;
    checker.check(h);
    if (h.type === 'char' || h.type === 'block') throw invalidArgument(`tar entry ${JSON.stringify(h.name)} is a device; devices cannot be copied into a container`);
    const rel = cleanEntryPath(h.name);
    entries++;
    if (rel === '') continue;
    const slash = rel.lastIndexOf('/');
    const parentRel = slash < 0 ? '' : rel.slice(0, slash);
    const name = rel.slice(slash + 1);
    const parent = await resolveInRoot(root, `${baseRel}/${parentRel}`);
    await mkdir(parent, { recursive: true, mode: 0o755 });
    if (!(await lstat(parent)).isDirectory()) throw invalidArgument(`tar entry ${JSON.stringify(h.name)}: its parent is not a directory`);
    const abs = `${parent}/${name}`;
    const uid = opts.owner?.uid ?? h.uid;
    const gid = opts.owner?.gid ?? h.gid;
    let existing;
    try {
      existing = await lstat(abs);
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
    if (existing) {
      const isDir = existing.isDirectory();
      if (isDir && h.type !== 'directory') {
        if (opts.noOverwriteDirNonDir) throw invalidArgument(`cannot overwrite directory "${pathInRoot(root, abs)}" with non-directory "${h.name}"`);
        await rm(abs, { recursive: true, force: true });
      } else if (!isDir && h.type === 'directory') {
        if (opts.noOverwriteDirNonDir) throw invalidArgument(`cannot overwrite non-directory "${pathInRoot(root, abs)}" with directory "${h.name}"`);
        await unlink(abs);
      } else if (!isDir) {
        await unlink(abs);
      }
    }
    switch (h.type) {
      case 'directory':
        if (!existing?.isDirectory()) await mkdir(abs, 0o700);
        await lchown(abs, uid, gid);
        await chmod(abs, h.mode);
        dirTimes.push([abs, h.mtime]);
        break;
      case 'file': {
        // O_EXCL never opens through a symlink that appeared at this path.
        const fh = await open(abs, 'wx', 0o600);
        if (h.size > 0) await pipeline(entry.body, fh.createWriteStream(), { signal: opts.signal });
        else await fh.close();
        await lchown(abs, uid, gid);
        await chmod(abs, h.mode);
        await lutimes(abs, h.mtime, h.mtime);
        break;
      }
      case 'symlink':
        await symlink(h.linkname, abs);
        await lchown(abs, uid, gid);
        await lutimes(abs, h.mtime, h.mtime);
        break;
      case 'hardlink': {
        const target = await resolveInRoot(root, `${baseRel}/${cleanEntryPath(h.linkname)}`, false);
        await link(target, abs);
        break;
      }
      case 'fifo':
        await runMkfifo(abs);
        await lchown(abs, uid, gid);
        await chmod(abs, h.mode);
        break;
    }
  }
  // Directory times last, deepest first: creating children changed them.
  dirTimes.sort((a, b) => b[0].length - a[0].length);
  for (const [p, t] of dirTimes) await lutimes(p, t, t).catch(() => {});
  return { entries };
}
