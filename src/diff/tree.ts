/**
 * Directory trees as tar entries: an overlay upper directory as an OCI layer
 * (whiteout devices become `.wh.<name>`, opaque directories get
 * `.wh..wh..opq`), or any directory (a merged root for `export`, a path for
 * `cp`) as it is.
 *
 * The walk is deterministic: names are sorted, times are whole seconds, and
 * owners are numbers only, so the same tree always gives the same bytes (and
 * a layer the same diff ID). File bodies are read lazily while the tar
 * streams; nothing is held in memory. Node has no getxattr: one `getfattr -R`
 * per walk reads the xattrs that matter (the opaque marker and file
 * capabilities).
 */
import { spawn } from 'node:child_process';
import type { Stats } from 'node:fs';
import { constants, lstat, open, readdir, readlink } from 'node:fs/promises';
import { BerthError, ErrorCode, errno } from '../common/errors.ts';
import type { TarEntryType, TarWriteEntry } from '../common/tar.ts';
import { writeTar } from '../common/tar.ts';

export const OPAQUE_MARKER = '.wh..wh..opq';
export const WHITEOUT_PREFIX = '.wh.';

/** One node of the walk: its path relative to the walked root, its tar entry, and what it means in a layer. */
export interface TreeNode {
  /** Relative path ('' for the root itself). */
  rel: string;
  entry: TarWriteEntry;
  /** Layer mode: this node is a deletion (`rel` names what was deleted). */
  whiteout?: boolean;
  /** Layer mode: this directory hides everything below it in lower layers. */
  opaque?: boolean;
}

export interface WalkOptions {
  /**
   * Name of the root's own entry; its children are named `<name>/<rel>`. With
   * '' (the default) the root has no entry and children are named `<rel>`.
   */
  name?: string;
  /** Overlay upper directory to OCI layer: whiteouts and opaque directories become `.wh.` entries. */
  layer?: boolean;
  /** Leaves a path (and everything below it) out. */
  skip?: (rel: string, st: Stats) => boolean | Promise<boolean>;
  /** A directory that is only kept when something below it is kept (copied up only to hold something skipped). */
  prunable?: (rel: string, st: Stats) => boolean | Promise<boolean>;
  /** Reads `security.capability` (and in layer mode the opaque marker) with getfattr. Default true. */
  xattrs?: boolean;
  signal?: AbortSignal;
}

const join = (a: string, b: string) => (a ? `${a}/${b}` : b);

/** Linux `major()`/`minor()` of a dev_t as Node reports it. */
function devNumbers(rdev: number): { major: number; minor: number } {
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn & 0xfffff000n);
  const minor = Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn & 0xffffff00n);
  return { major, minor };
}

function typeOf(st: Stats): TarEntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets are not archived, as with Docker
}

/** Reads exactly `size` bytes of a file, opened without following a symlink, when the tar asks for them. */
async function* fileBody(path: string, size: number): AsyncGenerator<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for await (const c of fh.createReadStream({ start: 0, end: size - 1, highWaterMark: 1 << 20, autoClose: false })) yield c as Buffer;
  } finally {
    await fh.close();
  }
}

/** Files up to this size are read whole, a directory's worth at once: a stream per small file costs more than its bytes. */
const SMALL_FILE = 256 << 10;
/** How many of a directory's children are stat'ed and read at once. */
const BATCH = 64;

/** Reads a small file whole, opened without following a symlink. */
async function readSmall(path: string, size: number): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return off === size ? buf : buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

/** Decodes getfattr's `\ooo` escapes in a dumped path. */
function unescapeDump(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(0x5c);
      i++;
    } else bytes.push(...Buffer.from(s[i]));
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * The xattrs named by `pattern` of every file under `root`, by absolute path,
 * from one `getfattr -R` (no symlinks followed).
 */
export function readXattrs(root: string, pattern: string): Promise<Map<string, Record<string, Buffer>>> {
  return new Promise((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-e', 'hex', '--absolute-names', '-m', pattern, '--', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', (e) => reject(new BerthError(ErrorCode.Internal, `reading xattrs: cannot run getfattr: ${e.message}`, { cause: e })));
    child.on('close', (code) => {
      // getfattr exits 1 when some file vanished or refused; what it printed is still right.
      if (code !== 0 && !out) {
        if (!err.trim() || /No such file/.test(err)) return resolve(new Map());
        return reject(new BerthError(ErrorCode.Internal, `reading xattrs under ${root}: ${err.trim().split('\n')[0]}`));
      }
      const map = new Map<string, Record<string, Buffer>>();
      let cur: Record<string, Buffer> | undefined;
      for (const line of out.split('\n')) {
        if (line.startsWith('# file: ')) {
          cur = {};
          map.set(unescapeDump(line.slice(8)), cur);
        } else if (cur && line.includes('=')) {
          const i = line.indexOf('=');
          const v = line.slice(i + 1);
          cur[unescapeDump(line.slice(0, i))] = v.startsWith('0x') ? Buffer.from(v.slice(2), 'hex') : Buffer.from(v.replace(/^"|"$/g, ''));
        }
      }
      resolve(map);
    });
  });
}

/**
 * Walks `root` (a directory, file or symlink; never followed) depth first in
 * sorted order, yielding one node per entry. Hard links within the walk
 * become tar hard links to the first name seen.
 */
export async function* walkTree(root: string, opts: WalkOptions = {}): AsyncGenerator<TreeNode> {
  const name = opts.name ?? '';
  const layer = Boolean(opts.layer);
  const rootSt = await lstat(root);
  const pattern = layer ? '^(security\\.capability|trusted\\.overlay\\.opaque)$' : '^security\\.capability$';
  const xattrs = opts.xattrs === false ? new Map<string, Record<string, Buffer>>() : await readXattrs(root, pattern);
  const links = new Map<string, string>();
  /** Small files' bytes, read ahead with their directory's batch. */
  const prefetched = new Map<string, Buffer>();
  /** Directories walked into but not yet emitted (prunable ones wait for a child). */
  const pending: TreeNode[] = [];

  const abs = (rel: string) => (rel ? `${root}/${rel}` : root);
  const entryName = (rel: string, dir: boolean) => {
    const n = rel ? join(name, rel) : name;
    return dir && n ? `${n}/` : n;
  };

  function node(rel: string, st: Stats, type: TarEntryType, linkname = ''): TreeNode {
    const x = { ...xattrs.get(abs(rel)) };
    delete x['trusted.overlay.opaque'];
    const dev = type === 'char' || type === 'block' ? devNumbers(st.rdev) : { major: 0, minor: 0 };
    const header: TarWriteEntry['header'] = {
      name: entryName(rel, type === 'directory'), type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid,
      mtime: Math.floor(st.mtimeMs / 1000), linkname, devmajor: dev.major, devminor: dev.minor,
      ...(type === 'file' ? { size: st.size } : {}), ...(Object.keys(x).length ? { xattrs: x } : {}),
    };
    const entry: TarWriteEntry = { header };
    if (type === 'file' && st.size > 0) entry.body = prefetched.get(rel) ?? fileBody(abs(rel), st.size);
    return { rel, entry };
  }

  function* flush(): Generator<TreeNode> {
    for (const p of pending) if (p.entry.header.name) yield p;
    pending.length = 0;
  }

  async function* visit(rel: string, st: Stats): AsyncGenerator<TreeNode> {
    opts.signal?.throwIfAborted();
    if (rel && opts.skip && (await opts.skip(rel, st))) return;
    let type = typeOf(st);
    if (!type) return;
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (layer && type === 'char' && st.rdev === 0 && rel) {
      // An overlay whiteout: a deletion, spelled `.wh.<name>` in a layer.
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
      const n = node(rel, st, 'file');
      n.entry.header = { ...n.entry.header, name: entryName(join(parent, WHITEOUT_PREFIX + base), false), mode: 0o600, size: 0, devmajor: 0, devminor: 0 };
      yield* flush();
      yield { ...n, whiteout: true };
      return;
    }
    if (type !== 'directory') {
      let linkname = '';
      if (type === 'symlink') linkname = await readlink(abs(rel));
      if (type !== 'symlink' && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          type = 'hardlink';
          linkname = first;
        } else links.set(key, entryName(rel, false));
      }
      yield* flush();
      yield node(rel, st, type, linkname);
      return;
    }
    const opaque = layer && xattrs.get(abs(rel))?.['trusted.overlay.opaque']?.toString() === 'y';
    const dirNode = { ...node(rel, st, 'directory'), ...(opaque ? { opaque: true } : {}) };
    const depth = pending.length;
    pending.push(dirNode);
    const prunable = rel !== '' && !opaque && opts.prunable ? await opts.prunable(rel, st) : false;
    if (!prunable || (rel === '' && name)) yield* flush();
    if (opaque) {
      const h = dirNode.entry.header;
      yield* flush();
      yield { rel: join(rel, OPAQUE_MARKER), entry: { header: { name: entryName(join(rel, OPAQUE_MARKER), false), type: 'file', mode: 0o600, uid: h.uid, gid: h.gid, mtime: h.mtime, size: 0 } } };
    }
    let names: string[];
    try {
      names = (await readdir(abs(rel))).sort();
    } catch (e) {
      if (errno(e) === 'ENOENT') names = [];
      else throw e;
    }
    // Children are stat'ed, and small files read, a batch at a time: one at a time, a tree of small files is all waiting.
    for (let i = 0; i < names.length; i += BATCH) {
      const batch = names.slice(i, i + BATCH).map((child) => join(rel, child));
      const stats = await Promise.all(batch.map((crel) => lstat(abs(crel)).catch((e) => {
        if (errno(e) === 'ENOENT') return undefined; // gone while we walked (a running container)
        throw e;
      })));
      const small = (st: Stats | undefined) => st?.isFile() === true && st.size > 0 && st.size <= SMALL_FILE && !(layer && st.isCharacterDevice());
      const bodies = await Promise.all(batch.map((crel, j) => (small(stats[j]) ? readSmall(abs(crel), stats[j]!.size) : undefined)));
      for (const [j, crel] of batch.entries()) {
        const cst = stats[j];
        if (!cst) continue;
        if (bodies[j]) prefetched.set(crel, bodies[j]!);
        yield* visit(crel, cst);
        prefetched.delete(crel);
      }
    }
    // Nothing below a prunable directory was kept: it goes too.
    if (pending.length > depth) pending.length = depth;
  }

  yield* visit('', rootSt);
}

/** The tar stream of a walk. */
export function treeTar(root: string, opts: WalkOptions = {}): AsyncGenerator<Buffer> {
  return writeTar((async function* () {
    for await (const n of walkTree(root, opts)) yield n.entry;
  })());
}

/**
 * An overlay upper directory as an OCI layer tar: regular entries as they
 * are, char 0:0 whiteouts as `.wh.<name>`, opaque directories with
 * `.wh..wh..opq`, overlay xattrs left out.
 */
export function layerTar(upperdir: string, opts: Omit<WalkOptions, 'layer' | 'name'> = {}): AsyncGenerator<Buffer> {
  return treeTar(upperdir, { ...opts, layer: true });
}
