/**
 * Layer safety and applying a layer tar to an overlayfs snapshot directory.
 *
 * A layer is a tar in the Docker/OCI layer format: `.wh.<name>` deletes
 * `<name>` from the layers below, `.wh..wh..opq` hides everything below in
 * its directory. Applied to an upper/lower directory of overlayfs, a deletion
 * becomes a whiteout (a 0:0 character device) and an opaque directory gets
 * the `trusted.overlay.opaque=y` xattr.
 *
 * Hostile layers must not touch anything outside the target directory: every
 * entry goes through a LayerChecker, and the applier never follows a symlink
 * on the host (parents are checked with lstat, files are created with O_EXCL).
 */
import { spawn } from 'node:child_process';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BerthError, ErrorCode, errno, invalidArgument, isBerthError } from '../common/errors.ts';
import { readTar } from '../common/tar.ts';
import type { TarEntry, TarHeader } from '../common/tar.ts';

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE = '.wh..wh..opq';

const q = (s: string) => JSON.stringify(s);

/**
 * Normalises an entry name to a clean relative path ('' for the root).
 * Strips leading '/' and './', resolves '.' and '..'; throws InvalidArgument
 * if it climbs above the root.
 */
export function cleanEntryPath(name: string): string {
  if (name.includes('\0')) throw invalidArgument(`layer entry ${q(name)} has a NUL byte in its path`);
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw invalidArgument(`layer entry ${q(name)} escapes the layer root`);
      out.pop();
    } else out.push(part);
  }
  return out.join('/');
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/** What a whiteout-style entry name means. */
type Whiteout =
  | { kind: 'none' }
  | { kind: 'opaque'; dir: string }
  | { kind: 'meta' }
  | { kind: 'delete'; victim: string };

function classify(rel: string, name: string): Whiteout {
  const base = baseOf(rel);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE) return { kind: 'opaque', dir: parentOf(rel) };
  // Other `.wh..wh.*` names are aufs bookkeeping (e.g. `.wh..wh.plnk`); they carry nothing.
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  const victim = base.slice(WHITEOUT_PREFIX.length);
  if (victim === '' || victim === '.' || victim === '..') throw invalidArgument(`layer entry ${q(name)} is a malformed whiteout`);
  const parent = parentOf(rel);
  return { kind: 'delete', victim: parent ? `${parent}/${victim}` : victim };
}

/**
 * Stateful checker for one layer's entries, in order. Throws InvalidArgument
 * naming the entry when: its path escapes the root; a hardlink target escapes
 * the root; an entry's parent path passes through a symlink created earlier in
 * this same layer (writing through a symlink); it is a char/block device other
 * than an overlay-style whiteout (char 0:0).
 */
export class LayerChecker {
  /** Paths that are symlinks (or hardlinks to symlinks) created by this layer so far. */
  #symlinks = new Set<string>();

  check(header: TarHeader): void {
    const name = header.name;
    const rel = cleanEntryPath(name);
    this.#checkParents(rel, name, 'its path');
    const wh = classify(rel, name);
    if (wh.kind !== 'none') {
      // A whiteout is never created as what the tar says it is.
      if (wh.kind === 'delete') this.#symlinks.delete(wh.victim);
      return;
    }
    switch (header.type) {
      case 'char':
      case 'block':
        if (header.type === 'block' || header.devmajor !== 0 || header.devminor !== 0) {
          throw invalidArgument(`layer entry ${q(name)} is a ${header.type} device ${header.devmajor}:${header.devminor}; devices are not allowed in layers`);
        }
        break;
      case 'hardlink': {
        let target: string;
        try {
          target = cleanEntryPath(header.linkname);
        } catch (e) {
          throw invalidArgument(`layer entry ${q(name)} is a hardlink to ${q(header.linkname)}, outside the layer root`, e);
        }
        if (target === '') throw invalidArgument(`layer entry ${q(name)} is a hardlink to the layer root`);
        this.#checkParents(target, name, `its hardlink target ${q(header.linkname)}`);
        break;
      }
    }
    if (rel === '' && header.type !== 'directory') {
      throw invalidArgument(`layer entry ${q(name)} names the layer root but is a ${header.type}`);
    }
    const isLink = header.type === 'symlink' || (header.type === 'hardlink' && this.#symlinks.has(cleanEntryPath(header.linkname)));
    if (isLink) this.#symlinks.add(rel);
    else this.#symlinks.delete(rel);
  }

  #checkParents(rel: string, name: string, what: string): void {
    if (this.#symlinks.size === 0) return;
    let i = rel.indexOf('/');
    while (i >= 0) {
      const prefix = rel.slice(0, i);
      if (this.#symlinks.has(prefix)) {
        throw invalidArgument(`layer entry ${q(name)}: ${what} goes through ${q(prefix)}, a symlink created earlier in this layer`);
      }
      i = rel.indexOf('/', i + 1);
    }
  }
}

/** Bytes of arguments per spawned process, well under ARG_MAX. */
const ARG_BUDGET = 256 * 1024;

function run(cmd: string, args: string[], input?: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new BerthError(ErrorCode.Internal, `applying layer: cannot run ${cmd}: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else {
        const msg = Buffer.concat(err).toString().trim().split('\n').slice(0, 5).join('; ');
        reject(new BerthError(ErrorCode.Internal, `applying layer: ${cmd} failed (${signal ?? `exit ${code}`}): ${msg}`));
      }
    });
    if (input !== undefined) {
      child.stdin!.on('error', () => {}); // reported through the exit status
      child.stdin!.end(input);
    }
  });
}

/** Runs `cmd fixed... path...` over as many processes as the argument budget needs. */
async function runBatched(cmd: string, fixed: string[], paths: string[]): Promise<void> {
  let batch: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const n = Buffer.byteLength(p) + 1;
    if (batch.length > 0 && bytes + n > ARG_BUDGET) {
      await run(cmd, [...fixed, ...batch]);
      batch = [];
      bytes = 0;
    }
    batch.push(p);
    bytes += n;
  }
  if (batch.length > 0) await run(cmd, [...fixed, ...batch]);
}

/** Quotes a path or xattr name for `setfattr --restore` (it unquotes `\ooo`). */
function dumpQuote(s: string): string {
  let out = '';
  for (const b of Buffer.from(s)) {
    const safe = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2f || b === 0x2e || b === 0x5f || b === 0x2d;
    out += safe ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/** overlayfs reads these from its layers; a tar must never be able to set them. */
function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/** The state of one layer being applied to one directory. */
class Applier {
  readonly #root: string;
  readonly #signal: AbortSignal | undefined;
  /** Paths known to be real directories (relative; '' is the root). */
  #dirs = new Set<string>(['']);
  /** `.wh.` deletions, decided at the end (an entry of this same layer wins over them). */
  #whiteouts = new Set<string>();
  /** Explicit 0:0 character devices from the tar, created at the end. */
  #devices = new Set<string>();
  /** Fifos to create (Node has no mkfifo), with their headers for metadata. */
  #fifos = new Map<string, TarHeader>();
  #opaque = new Set<string>();
  #xattrs = new Map<string, Record<string, Buffer>>();
  #dirTimes = new Map<string, number>();
  size = 0;

  constructor(root: string, signal: AbortSignal | undefined) {
    this.#root = root;
    this.#signal = signal;
  }

  #abs(rel: string): string {
    return rel ? `${this.#root}/${rel}` : this.#root;
  }

  /** Something of this layer now lives at `rel`: forget what was pending there. */
  #claim(rel: string, isDir: boolean): void {
    this.#fifos.delete(rel);
    this.#devices.delete(rel);
    this.#xattrs.delete(rel);
    if (this.#whiteouts.delete(rel) && isDir) this.#opaque.add(rel);
    if (!isDir) {
      this.#opaque.delete(rel);
      this.#dirTimes.delete(rel);
      this.#dirs.delete(rel);
    }
  }

  /** Forgets everything recorded at or below `rel` (a directory that was removed). */
  #evict(rel: string): void {
    const under = rel + '/';
    const hit = (k: string) => k === rel || k.startsWith(under);
    for (const s of [this.#dirs, this.#whiteouts, this.#devices, this.#opaque]) for (const k of s) if (hit(k)) s.delete(k);
    for (const m of [this.#fifos, this.#xattrs, this.#dirTimes]) for (const k of m.keys()) if (hit(k)) m.delete(k);
  }

  /**
   * Makes sure every component of `rel` is a real directory inside the root,
   * creating missing ones (0755, root) when `create`; never follows a symlink.
   */
  async #ensureDir(rel: string, create: boolean, name: string): Promise<void> {
    if (this.#dirs.has(rel)) return;
    const parts = rel.split('/');
    let prefix = '';
    for (const part of parts) {
      prefix = prefix ? `${prefix}/${part}` : part;
      if (this.#dirs.has(prefix)) continue;
      const abs = this.#abs(prefix);
      let st;
      try {
        st = await lstat(abs);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
      }
      if (st === undefined) {
        if (!create) throw invalidArgument(`layer entry ${q(name)}: ${q(prefix)} does not exist in this layer`);
        await mkdir(abs, 0o755);
        await lchown(abs, 0, 0);
        await chmod(abs, 0o755);
        this.#claim(prefix, true);
      } else if (!st.isDirectory()) {
        const what = st.isSymbolicLink() ? 'a symlink' : 'not a directory';
        throw invalidArgument(`layer entry ${q(name)}: parent ${q(prefix)} is ${what}`);
      }
      this.#dirs.add(prefix);
    }
  }

  /** Removes whatever is at `rel` (a directory with its contents). */
  async #remove(rel: string): Promise<void> {
    const abs = this.#abs(rel);
    let st;
    try {
      st = await lstat(abs);
    } catch (e) {
      if (errno(e) === 'ENOENT') return;
      throw e;
    }
    if (st.isDirectory()) {
      await rm(abs, { recursive: true, force: true });
      this.#evict(rel);
    } else {
      await unlink(abs);
    }
  }

  /** Runs `create`, and if something is in the way, removes it and tries once more. */
  async #replace<T>(rel: string, create: () => Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
    await this.#remove(rel);
    return create();
  }

  /** Keeps the entry's xattrs for the one setfattr at the end; user.* only fit regular files and directories. */
  #recordXattrs(rel: string, header: TarHeader, regularOrDir: boolean): void {
    const keep: Record<string, Buffer> = {};
    let any = false;
    for (const [k, v] of Object.entries(header.xattrs)) {
      if (isOverlayXattr(k)) continue;
      if (!regularOrDir && k.startsWith('user.')) continue;
      if (k.includes('=') || k.includes('\0') || k === '') {
        throw invalidArgument(`layer entry ${q(header.name)} has an xattr with an unusable name ${q(k)}`);
      }
      keep[k] = v;
      any = true;
    }
    if (any) this.#xattrs.set(rel, keep);
  }

  async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    const rel = cleanEntryPath(h.name);
    const wh = classify(rel, h.name);
    if (wh.kind !== 'none') {
      await this.#ensureDir(parentOf(rel), true, h.name);
      if (wh.kind === 'opaque') this.#opaque.add(wh.dir);
      else if (wh.kind === 'delete') this.#whiteouts.add(wh.victim);
      return;
    }
    if (rel !== '') await this.#ensureDir(parentOf(rel), true, h.name);
    const abs = this.#abs(rel);
    switch (h.type) {
      case 'directory': {
        if (rel !== '') {
          await this.#replace(rel, async () => {
            try {
              await mkdir(abs, 0o700);
            } catch (e) {
              if (errno(e) !== 'EEXIST') throw e;
              // A directory over a directory only updates its metadata.
              if (!(await lstat(abs)).isDirectory()) throw e;
            }
          });
          this.#claim(rel, true);
          this.#dirs.add(rel);
        }
        await lchown(abs, h.uid, h.gid);
        await chmod(abs, h.mode);
        this.#dirTimes.set(rel, h.mtime);
        this.#recordXattrs(rel, h, true);
        return;
      }
      case 'file': {
        // O_EXCL: never opens through a symlink that might sit at this path.
        const fh: FileHandle = await this.#replace(rel, () => open(abs, 'wx', 0o600));
        // The stream closes the handle when it ends, whether it finishes or fails.
        if (h.size > 0) await pipeline(entry.body, fh.createWriteStream(), { signal: this.#signal });
        else await fh.close();
        // Ownership first: chown clears setuid/setgid, chmod then sets them.
        await lchown(abs, h.uid, h.gid);
        await chmod(abs, h.mode);
        await lutimes(abs, h.mtime, h.mtime);
        this.size += h.size;
        this.#claim(rel, false);
        this.#recordXattrs(rel, h, true);
        return;
      }
      case 'symlink': {
        await this.#replace(rel, () => symlink(h.linkname, abs));
        this.#claim(rel, false);
        await lchown(abs, h.uid, h.gid);
        await lutimes(abs, h.mtime, h.mtime);
        this.#recordXattrs(rel, h, false);
        return;
      }
      case 'hardlink': {
        const target = cleanEntryPath(h.linkname);
        if (target === rel) return;
        if (this.#fifos.has(target)) await this.#createFifos();
        await this.#ensureDir(parentOf(target), false, h.name);
        let st;
        try {
          st = await lstat(this.#abs(target));
        } catch (e) {
          if (errno(e) !== 'ENOENT') throw e;
          throw invalidArgument(`layer entry ${q(h.name)}: hardlink target ${q(h.linkname)} does not exist in this layer`);
        }
        if (st.isDirectory()) throw invalidArgument(`layer entry ${q(h.name)}: hardlink target ${q(h.linkname)} is a directory`);
        await this.#replace(rel, () => link(this.#abs(target), abs));
        this.#claim(rel, false);
        return;
      }
      case 'fifo': {
        await this.#remove(rel);
        this.#claim(rel, false);
        this.#fifos.set(rel, h);
        this.#recordXattrs(rel, h, false);
        return;
      }
      case 'char': {
        // The checker let only 0:0 through: an overlay whiteout spelled out.
        await this.#remove(rel);
        this.#claim(rel, false);
        this.#devices.add(rel);
        return;
      }
      case 'block':
        throw invalidArgument(`layer entry ${q(h.name)} is a block device`);
    }
  }

  /** Creates the pending fifos with one mkfifo per argument batch, then sets their metadata. */
  async #createFifos(): Promise<void> {
    if (this.#fifos.size === 0) return;
    const fifos = [...this.#fifos];
    this.#fifos.clear();
    await runBatched('mkfifo', ['-m', '0600', '--'], fifos.map(([rel]) => this.#abs(rel)));
    for (const [rel, h] of fifos) {
      const abs = this.#abs(rel);
      await lchown(abs, h.uid, h.gid);
      await chmod(abs, h.mode);
      await lutimes(abs, h.mtime, h.mtime);
    }
  }

  async finish(): Promise<void> {
    this.#signal?.throwIfAborted();
    await this.#createFifos();

    // Whiteouts: only where nothing of this layer took the path. A directory of
    // this layer there means "deleted below, recreated here": it turns opaque.
    const devices = [...this.#devices];
    for (const rel of this.#whiteouts) {
      try {
        const st = await lstat(this.#abs(rel));
        if (st.isDirectory()) this.#opaque.add(rel);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
        devices.push(rel);
      }
    }
    if (devices.length > 0) {
      this.#signal?.throwIfAborted();
      await runBatched(
        'sh',
        ['-c', 'rc=0; for p; do mknod -- "$p" c 0 0 || rc=1; done; exit $rc', 'sh'],
        devices.map((rel) => this.#abs(rel)),
      );
    }

    // xattrs and opaque markers: one setfattr for the whole layer, fed a dump on stdin.
    let dump = '';
    for (const [rel, xattrs] of this.#xattrs) {
      dump += `# file: ${dumpQuote(this.#abs(rel))}\n`;
      for (const [k, v] of Object.entries(xattrs)) dump += `${dumpQuote(k)}=0x${v.toString('hex')}\n`;
      dump += '\n';
    }
    for (const rel of this.#opaque) {
      if (!this.#dirs.has(rel)) continue;
      dump += `# file: ${dumpQuote(this.#abs(rel))}\ntrusted.overlay.opaque=0x79\n\n`;
    }
    if (dump) {
      this.#signal?.throwIfAborted();
      await run('setfattr', ['-h', '--restore=-'], dump);
    }

    // Directory times last, deepest first: creating children changed them.
    const depth = (rel: string) => (rel === '' ? -1 : rel.split('/').length);
    const dirs = [...this.#dirTimes].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [rel, mtime] of dirs) await lutimes(this.#abs(rel), mtime, mtime);
  }
}

/**
 * Reads a layer tar (Docker/OCI layer format with `.wh.` whiteouts) and writes
 * it into `dir`, an empty directory that becomes an overlayfs lower/upper dir.
 * Returns bytes of file content written and entry count.
 *
 * A hostile or malformed layer fails with InvalidArgument. Whatever was
 * written into `dir` before the failure stays there: the caller discards the
 * directory (it never contains anything outside it).
 *
 * `trusted.overlay.*` and `user.overlay.*` xattrs in the tar are ignored, and
 * `user.*` xattrs on symlinks and fifos (which Linux refuses) are skipped.
 */
export async function applyLayer(
  dir: string,
  source: AsyncIterable<Buffer | Uint8Array>,
  opts: { signal?: AbortSignal } = {},
): Promise<{ size: number; entries: number }> {
  const root = resolve(dir);
  const st = await lstat(root);
  if (!st.isDirectory()) throw invalidArgument(`applying layer: ${q(dir)} is not a directory`);
  const checker = new LayerChecker();
  const applier = new Applier(root, opts.signal);
  let entries = 0;
  for await (const entry of readTar(source, opts)) {
    checker.check(entry.header);
    try {
      await applier.apply(entry);
    } catch (e) {
      if (isBerthError(e) || opts.signal?.aborted) throw e;
      throw new BerthError(ErrorCode.Internal, `applying layer entry ${q(entry.header.name)}: ${(e as Error).message}`, { cause: e });
    }
    entries++;
  }
  await applier.finish();
  return { size: applier.size, entries };
}
