// COPY and ADD: which context files a step uses, their content hash (the step's cache input),
// and copying them into a mounted root with Docker's rules:
// - a directory source copies its contents, not itself;
// - several sources, or a wildcard, need a destination ending in `/`;
// - a destination ending in `/`, or an existing directory, receives files under their base names;
// - new files are owned by root unless --chown says otherwise, and keep their mode unless --chmod does.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { errno, invalidArgument, notFound } from '../common/errors.ts';
import { resolveInRoot } from '../diff/extract.ts';
import type { BuildContext } from './context.ts';

/** One file, directory or symlink to copy: where it comes from and where it goes below the destination. */
interface CopyEntry {
  host: string;
  st: Stats;
  /** Path below the destination ('' is the destination itself). */
  rel: string;
}

/** What one source pattern resolved to. */
export interface ResolvedSource {
  /** The context path as matched (for messages). */
  path: string;
  host: string;
  st: Stats;
  /** For a directory: everything below it, in sorted order, .dockerignore applied. */
  children: CopyEntry[];
  /** Nothing below it was left out (ignored, or a socket or fifo): a plain recursive copy gives the same tree. */
  complete: boolean;
}

export interface InlineFile {
  /** File name (a heredoc's delimiter, or a URL's last path component). */
  name: string;
  content: Buffer;
  mode: number;
  mtime?: Date;
}

const GLOB = /[*?[]/;

/** A context path pattern as Docker cleans it: always inside the context, never above it. */
export function cleanContextPath(p: string): string {
  return posix.normalize(`/${p}`).replace(/^\/+/, '').replace(/\/+$/, '');
}

/** Go's filepath.Match for one path, as a regexp: `*` and `?` never cross a `/`. */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw invalidArgument(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Everything below `host` (a directory), sorted, leaving out what .dockerignore excludes. */
async function walk(ctx: BuildContext, host: string, ctxRel: string, rel = '', out: CopyEntry[] = [], state = { complete: true }): Promise<{ entries: CopyEntry[]; complete: boolean }> {
  const names = (await readdir(host)).sort();
  // Stat a directory's children together: one at a time, a tree of small files is all waiting.
  const stats = await Promise.all(names.map((name) => lstat(`${host}/${name}`)));
  for (const [i, name] of names.entries()) {
    const childCtx = ctxRel ? `${ctxRel}/${name}` : name;
    const childHost = `${host}/${name}`;
    const st = stats[i];
    if (ctx.ignore.ignores(childCtx, st.isDirectory())) {
      state.complete = false;
      // An ignored directory may still hold a re-included file (`!` patterns); skip it only when none can.
      if (!st.isDirectory() || ctx.ignore.canSkipDir(childCtx)) continue;
      await walk(ctx, childHost, childCtx, rel ? `${rel}/${name}` : name, out, state);
      continue;
    }
    if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) state.complete = false;
    const childRel = rel ? `${rel}/${name}` : name;
    out.push({ host: childHost, st, rel: childRel });
    if (st.isDirectory()) await walk(ctx, childHost, childCtx, childRel, out, state);
  }
  return { entries: out, complete: state.complete };
}

/** Context paths matching a wildcard pattern, in sorted order. */
async function glob(ctx: BuildContext, pattern: string): Promise<string[]> {
  const parts = pattern.split('/');
  let results = [''];
  for (const part of parts) {
    const next: string[] = [];
    for (const base of results) {
      if (!GLOB.test(part)) {
        next.push(base ? `${base}/${part}` : part);
        continue;
      }
      const host = await ctx.resolve(base);
      let names: string[];
      try {
        names = (await readdir(host)).sort();
      } catch (e) {
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') continue;
        throw e;
      }
      const re = globRegExp(part);
      for (const n of names) if (re.test(n)) next.push(base ? `${base}/${n}` : n);
    }
    results = next;
  }
  const out: string[] = [];
  for (const r of results) {
    try {
      const st = await lstat(await ctx.resolve(r));
      if (!ctx.ignore.ignores(r, st.isDirectory())) out.push(r);
    } catch (e) {
      if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
    }
  }
  return out;
}

/** Resolves COPY/ADD source patterns against the context. */
export async function resolveSources(ctx: BuildContext, patterns: readonly string[], instruction: string): Promise<{ sources: ResolvedSource[]; wildcard: boolean }> {
  const sources: ResolvedSource[] = [];
  let wildcard = false;
  for (const raw of patterns) {
    const path = cleanContextPath(raw);
    const paths = GLOB.test(path) ? await glob(ctx, path) : [path];
    if (GLOB.test(path)) {
      wildcard = true;
      if (paths.length === 0) throw notFound(`${instruction} failed: no source files were specified`);
    }
    for (const p of paths) {
      const host = await ctx.resolve(p);
      let st: Stats;
      try {
        st = await lstat(host);
      } catch (e) {
        if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
        throw notFound(`${instruction} failed: file not found in build context or excluded by .dockerignore: stat ${p || '.'}: file does not exist`);
      }
      if (p !== '' && ctx.ignore.ignores(p, st.isDirectory())) {
        throw notFound(`${instruction} failed: file not found in build context or excluded by .dockerignore: stat ${p}: file does not exist`);
      }
      const tree = st.isDirectory() ? await walk(ctx, host, p) : { entries: [], complete: true };
      sources.push({ path: p || '.', host, st, children: tree.entries, complete: tree.complete });
    }
  }
  return { sources, wildcard };
}

/** A file's content digest, remembered by inode and times so an unchanged file is read once per daemon. */
const digestMemo = new Map<string, { key: string; digest: string }>();

async function fileDigest(host: string, st: Stats): Promise<string> {
  const key = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const memo = digestMemo.get(host);
  if (memo?.key === key) return memo.digest;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(host)) h.update(chunk as Buffer);
  const digest = h.digest('hex');
  if (digestMemo.size > 200_000) digestMemo.clear();
  digestMemo.set(host, { key, digest });
  return digest;
}

async function entryLine(e: { host: string; st: Stats }, rel: string): Promise<string> {
  const mode = (e.st.mode & 0o7777).toString(8);
  if (e.st.isDirectory()) return `d ${rel} ${mode}`;
  if (e.st.isSymbolicLink()) return `l ${rel} ${await readlink(e.host)}`;
  if (e.st.isFile()) return `f ${rel} ${mode} ${e.st.size} ${await fileDigest(e.host, e.st)}`;
  return `o ${rel} ${mode}`;
}

/** The content hash of resolved sources: names, types, modes and bytes. Times and owners play no part. */
export async function sourcesDigest(sources: readonly ResolvedSource[], inline: readonly InlineFile[] = []): Promise<string> {
  const h = createHash('sha256');
  for (const s of sources) {
    // A directory source copies its contents: its own mode (a scratch directory's, for an uploaded context) plays no part.
    h.update(`source ${s.path}\n${s.st.isDirectory() ? 'd' : await entryLine(s, '')}\n`);
    const lines = await mapLimit(s.children, 32, (c) => entryLine(c, c.rel));
    for (const l of lines) h.update(`${l}\n`);
  }
  for (const f of inline) h.update(`inline ${f.name} ${f.mode.toString(8)} ${createHash('sha256').update(f.content).digest('hex')}\n`);
  return `sha256:${h.digest('hex')}`;
}

export interface CopyOptions {
  /** The destination inside the root, absolute. */
  dest: string;
  /** The destination was written with a trailing `/` (or the step has several sources). */
  destIsDir: boolean;
  owner?: { uid: number; gid: number };
  /** --chmod, applied to every file and directory copied. */
  mode?: number;
  signal?: AbortSignal;
}

/** Copies resolved sources and inline files into `root` (a mounted root filesystem). */
export async function copyInto(root: string, sources: readonly ResolvedSource[], inline: readonly InlineFile[], opts: CopyOptions): Promise<void> {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const destHost = await resolveInRoot(root, opts.dest);
  const destStat = await lstat(destHost).catch(() => undefined);
  const intoDir = opts.destIsDir || destStat?.isDirectory() === true;
  for (const s of sources) {
    opts.signal?.throwIfAborted();
    if (s.st.isDirectory()) {
      await ensureDir(root, opts.dest, owner, opts.mode);
      const base = await resolveInRoot(root, opts.dest);
      if (s.complete && (await readdir(base)).length === 0) {
        // Into an empty directory, a whole tree needs no merging and has no symlink of the image's
        // to follow: one cp does it (root-owned, modes and times kept) far faster than a call per file.
        await copyTree(s.host, base, opts.owner, opts.mode);
        continue;
      }
      await mapLimit(s.children.filter((c) => c.st.isDirectory()), 1, (c) => place(`${base}/${c.rel}`, c, owner, opts.mode));
      await mapLimit(s.children.filter((c) => !c.st.isDirectory()), 16, (c) => place(`${base}/${c.rel}`, c, owner, opts.mode));
      // Directory times last: writing into a directory changes its mtime.
      for (const c of s.children.filter((x) => x.st.isDirectory()).reverse()) await lutimes(`${base}/${c.rel}`, c.st.atime, c.st.mtime);
      continue;
    }
    const target = intoDir ? posix.join(opts.dest, posix.basename(s.path)) : opts.dest;
    await ensureDir(root, posix.dirname(target));
    await place(await resolveInRoot(root, target, false), { host: s.host, st: s.st, rel: '' }, owner, opts.mode);
  }
  for (const f of inline) {
    const target = intoDir ? posix.join(opts.dest, f.name) : opts.dest;
    await ensureDir(root, posix.dirname(target));
    const host = await resolveInRoot(root, target, false);
    await removeExisting(host, false);
    await writeFile(host, f.content);
    await chmod(host, opts.mode ?? f.mode);
    await lchown(host, owner.uid, owner.gid);
    if (f.mtime) await lutimes(host, f.mtime, f.mtime);
  }
}

const exec = promisify(execFile);

async function copyTree(src: string, dest: string, owner: { uid: number; gid: number } | undefined, mode: number | undefined): Promise<void> {
  try {
    await exec('cp', ['-R', '-P', '--preserve=mode,timestamps,links', '--no-preserve=ownership', '--', `${src}/.`, `${dest}/`]);
    if (owner) await exec('chown', ['-R', '-h', `${owner.uid}:${owner.gid}`, '--', dest]);
    if (mode !== undefined) await exec('chmod', ['-R', mode.toString(8), '--', dest]);
  } catch (e) {
    throw invalidArgument(`copying ${src}: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, e);
  }
}

/** Makes the directory `path` inside `root` and any missing parents; a new destination directory gets the copy's owner. */
async function ensureDir(root: string, path: string, owner?: { uid: number; gid: number }, mode?: number): Promise<void> {
  const host = await resolveInRoot(root, path);
  const st = await lstat(host).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) await rm(host, { recursive: true, force: true });
  await ensureDir(root, posix.dirname(path));
  await mkdir(host, { mode: 0o755 });
  await chmod(host, mode ?? 0o755);
  if (owner) await lchown(host, owner.uid, owner.gid);
}

async function removeExisting(host: string, keepDir: boolean): Promise<void> {
  const st = await lstat(host).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory() && keepDir) return;
  await rm(host, { recursive: true, force: true });
}

async function place(target: string, e: CopyEntry, owner: { uid: number; gid: number }, mode: number | undefined): Promise<void> {
  const st = e.st;
  if (st.isDirectory()) {
    await removeExisting(target, true);
    await mkdir(target, { recursive: true });
    await chmod(target, mode ?? st.mode & 0o7777);
    await lchown(target, owner.uid, owner.gid);
    return;
  }
  await removeExisting(target, false);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(e.host), target);
  } else if (st.isFile()) {
    await copyFile(e.host, target);
    await chmod(target, mode ?? st.mode & 0o7777);
  } else {
    // Sockets, fifos and devices in a context are not copied, as Docker's tar of the context leaves them out.
    return;
  }
  await lchown(target, owner.uid, owner.gid);
  await lutimes(target, st.atime, st.mtime);
}

/** Runs fn over items with at most `limit` at once, keeping the order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
