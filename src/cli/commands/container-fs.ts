import { createReadStream, type Stats } from 'node:fs';
import { chmod, link, lstat, lutimes, mkdir, open, readdir, readlink, realpath, stat, symlink, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ApiClient } from '../../api-client/client.ts';
import { ApiError } from '../../api-client/client.ts';
import { type TarEntryType, type TarWriteEntry, readTar, writeTar } from '../../common/tar.ts';
import { type Command, CliError, UsageError, flags, requireArgs, writeOutput } from '../command.ts';

const KIND = ['C', 'A', 'D'];

export const diff: Command = {
  usage: `Usage:  berth diff CONTAINER

Inspect changes to files or directories on a container's filesystem

Aliases:
  berth container diff, berth diff
`,
  description: "Inspect changes to files or directories on a container's filesystem",
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const changes = await ctx.client().json<{ Path: string; Kind: number }[] | null>('GET', `/containers/${encodeURIComponent(positionals[0])}/changes`);
    for (const c of changes ?? []) ctx.io.out(`${KIND[c.Kind] ?? '?'} ${c.Path}\n`);
  },
};

export const commit: Command = {
  usage: `Usage:  berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]

Create a new image from a container's changes

Aliases:
  berth container commit, berth commit

Options:
  -a, --author string    Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
  -c, --change list      Apply Dockerfile instruction to the created image
  -m, --message string   Commit message
  -p, --pause            Pause container during commit (default true)
`,
  description: "Create a new image from a container's changes",
  async run(ctx) {
    const args = ctx.args.map((a) => (a === '--pause=false' || a === '-p=false' ? '--no-pause' : a));
    const { values, positionals } = flags({ ...ctx, args }, {
      author: { type: 'string', short: 'a' }, change: { type: 'string', short: 'c', multiple: true }, message: { type: 'string', short: 'm' },
      pause: { type: 'boolean', short: 'p' }, 'no-pause': { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 2, this.usage);
    const [container, target] = positionals;
    let repo: string | undefined;
    let tag: string | undefined;
    if (target) {
      const m = /^(.*?)(?::([\w][\w.-]{0,127}))?$/.exec(target)!;
      repo = m[1];
      tag = m[2];
      if (m[2] === undefined && target.includes('@')) throw new CliError(`refusing to create a tag with a digest reference`);
    }
    const r = await ctx.client().json<{ Id: string }>('POST', '/commit', {
      query: { container, repo, tag, comment: values.message, author: values.author, pause: !values['no-pause'], changes: values.change },
      body: {},
    });
    ctx.io.out(`${r.Id}\n`);
  },
};

export const exportCmd: Command = {
  usage: `Usage:  berth export [OPTIONS] CONTAINER

Export a container's filesystem as a tar archive

Aliases:
  berth container export, berth export

Options:
  -o, --output string   Write to a file, instead of STDOUT
`,
  description: "Export a container's filesystem as a tar archive",
  async run(ctx) {
    const { values, positionals } = flags(ctx, { output: { type: 'string', short: 'o' } }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    if (!values.output && ctx.io.isTTY) throw new CliError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    const res = await ctx.client().request('GET', `/containers/${encodeURIComponent(positionals[0])}/export`);
    await writeOutput(res, values.output, ctx.io.stdout);
  },
};


// ---------------------------------------------------------------------------
// cp

interface PathStat { name: string; size: number; mode: number; mtime: string; linkTarget: string }
const GO_DIR = 2 ** 31;
const GO_SYMLINK = 2 ** 27;
const isDirMode = (m: number) => m >= GO_DIR;
const isLinkMode = (m: number) => Math.floor(m / GO_SYMLINK) % 2 === 1 && !isDirMode(m);

/** Docker's SplitPathDirEntry: the directory and last element, `.` kept for a path ending in `/.`. */
function splitDirEntry(p: string): [string, string] {
  let cleaned = p.replace(/\/+$/, '') || '/';
  cleaned = cleaned.split('/').filter((x, i) => i === 0 || (x !== '' && x !== '.')).join('/') || '/';
  if (p === '.' || p.endsWith('/.')) cleaned = `${cleaned === '/' ? '' : cleaned}/.`;
  const i = cleaned.lastIndexOf('/');
  if (i < 0) return ['.', cleaned];
  return [cleaned.slice(0, i) || '/', cleaned.slice(i + 1) || '/'];
}

/** Renames the first path component `oldBase` to `newBase` in every entry, as the archive streams. */
async function* rebase(source: AsyncIterable<Uint8Array>, oldBase: string, newBase: string): AsyncGenerator<Buffer> {
  const old = oldBase === '/' ? '' : oldBase;
  const swap = (n: string) => (n === old || n.startsWith(`${old}/`) ? newBase + n.slice(old.length) : n);
  yield* writeTar((async function* (): AsyncGenerator<TarWriteEntry> {
    for await (const e of readTar(source)) {
      const h = { ...e.header, name: swap(e.header.name) };
      if (h.type === 'hardlink') h.linkname = swap(h.linkname);
      yield { header: h, body: h.type === 'file' ? e.body : undefined };
    }
  })());
}

function localType(st: Stats): TarEntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  return undefined;
}

/** A local path as a tar whose entries start with `name`, the way docker cp packs its source. */
async function* localTar(path: string, name: string): AsyncGenerator<Buffer> {
  const links = new Map<string, string>();
  async function* walk(abs: string, entry: string): AsyncGenerator<TarWriteEntry> {
    const st = await lstat(abs);
    let type = localType(st);
    if (!type) return;
    let linkname = '';
    if (type === 'symlink') linkname = await readlink(abs);
    if (type === 'file' && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first) {
        type = 'hardlink';
        linkname = first;
      } else links.set(key, entry);
    }
    const header = { name: type === 'directory' ? `${entry}/` : entry, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), linkname, size: type === 'file' ? st.size : 0 };
    yield { header, body: type === 'file' && st.size > 0 ? createReadStream(abs, { start: 0, end: st.size - 1 }) : undefined };
    if (type === 'directory') for (const child of (await readdir(abs)).sort()) yield* walk(join(abs, child), `${entry}/${child}`);
  }
  yield* writeTar(walk(path, name));
}

/** Cleans a tar entry name to a relative path inside the extraction directory; refuses one that climbs out. */
function cleanName(name: string): string {
  const out: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (out.length === 0) throw new CliError(`invalid archive entry ${JSON.stringify(name)}: it climbs out of the destination`);
      out.pop();
    } else out.push(p);
  }
  return out.join('/');
}

/** Makes sure `rel`'s parents under `root` are real directories (never symlinks), creating missing ones. */
async function ensureParents(root: string, rel: string): Promise<void> {
  const parts = rel.split('/').slice(0, -1);
  let cur = root;
  for (const p of parts) {
    cur = `${cur}/${p}`;
    let st;
    try {
      st = await lstat(cur);
    } catch {
      await mkdir(cur, 0o755);
      continue;
    }
    if (!st.isDirectory()) throw new CliError(`cannot extract into ${cur}: it is not a directory`);
  }
}

/** Extracts a tar into a local directory as docker cp does: no ownership changes, no directory replaced by a file. */
async function untarLocal(source: AsyncIterable<Uint8Array>, root: string): Promise<void> {
  const dirTimes: [string, number][] = [];
  for await (const e of readTar(source)) {
    const h = e.header;
    const rel = cleanName(h.name);
    if (rel === '') continue;
    await ensureParents(root, rel);
    const abs = `${root}/${rel}`;
    let existing;
    try {
      existing = await lstat(abs);
    } catch { /* absent */ }
    if (existing) {
      if (existing.isDirectory() && h.type !== 'directory') throw new CliError(`cannot overwrite directory "${abs}" with non-directory "${h.name}"`);
      if (!existing.isDirectory() && h.type === 'directory') throw new CliError(`cannot overwrite non-directory "${abs}" with directory "${h.name}"`);
      if (!existing.isDirectory()) await unlink(abs);
    }
    switch (h.type) {
      case 'directory':
        if (!existing) await mkdir(abs, 0o700);
        await chmod(abs, h.mode);
        dirTimes.push([abs, h.mtime]);
        break;
      case 'file': {
        const fh = await open(abs, 'wx', 0o600);
        await pipeline(e.body, fh.createWriteStream());
        await chmod(abs, h.mode);
        await lutimes(abs, h.mtime, h.mtime);
        break;
      }
      case 'symlink':
        await symlink(h.linkname, abs);
        await lutimes(abs, h.mtime, h.mtime).catch(() => {});
        break;
      case 'hardlink':
        await link(`${root}/${cleanName(h.linkname)}`, abs);
        break;
      default:
        break; // devices and fifos are not recreated on the client
    }
  }
  dirTimes.sort((a, b) => b[0].length - a[0].length);
  for (const [p, t] of dirTimes) await lutimes(p, t, t).catch(() => {});
}

/** `container:path` or a local path (one starting with `/` or `.`, or without a colon). */
function splitArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

async function statPath(client: ApiClient, container: string, path: string): Promise<PathStat | undefined> {
  try {
    const res = await client.request('HEAD', `/containers/${encodeURIComponent(container)}/archive`, { query: { path } });
    res.resume();
    const h = res.headers['x-docker-container-path-stat'];
    return h ? (JSON.parse(Buffer.from(String(h), 'base64').toString('utf8')) as PathStat) : undefined;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return undefined;
    throw e;
  }
}

export const cp: Command = {
  usage: `Usage:  berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
	berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH

Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.

Aliases:
  berth container cp, berth cp

Options:
  -a, --archive       Archive mode (copy all uid/gid information)
  -L, --follow-link   Always follow symbol link in SRC_PATH
  -q, --quiet         Suppress progress output during copy
`,
  description: 'Copy files/folders between a container and the local filesystem',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      archive: { type: 'boolean', short: 'a' }, 'follow-link': { type: 'boolean', short: 'L' }, quiet: { type: 'boolean', short: 'q' },
    }, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    const src = splitArg(positionals[0]);
    const dst = splitArg(positionals[1]);
    if (src.container && dst.container) throw new UsageError('copying between containers is not supported');
    if (!src.container && !dst.container) throw new UsageError('must specify at least one container source');
    const client = ctx.client();
    if (src.container) {
      if (!src.path) throw new CliError('filepath can not be empty');
      await copyFrom(client, src.container, src.path, dst.path, Boolean(values['follow-link']), ctx.io.stdout);
    } else {
      if (!dst.path) throw new CliError('filepath can not be empty');
      await copyTo(client, src.path, dst.container!, dst.path, Boolean(values['follow-link']), Boolean(values.archive), ctx.io.stdin);
    }
  },
};

async function copyFrom(client: ApiClient, container: string, srcPath: string, dstPath: string, follow: boolean, stdout: NodeJS.WriteStream): Promise<void> {
  let rebaseName = '';
  let path = srcPath;
  if (follow) {
    const st = await statPath(client, container, srcPath);
    if (st && isLinkMode(st.mode)) {
      rebaseName = splitDirEntry(srcPath)[1];
      path = st.linkTarget;
    }
  }
  const res = await client.request('GET', `/containers/${encodeURIComponent(container)}/archive`, { query: { path } });
  if (dstPath === '-') {
    await pipeline(res, stdout, { end: false });
    return;
  }
  const h = res.headers['x-docker-container-path-stat'];
  const st = h ? (JSON.parse(Buffer.from(String(h), 'base64').toString('utf8')) as PathStat) : undefined;
  const srcIsDir = st ? isDirMode(st.mode) : false;
  let content: AsyncIterable<Uint8Array> = res;
  let srcBase = splitDirEntry(path)[1];
  if (rebaseName) {
    content = rebase(content, srcBase, rebaseName);
    srcBase = rebaseName;
  }
  // The destination, followed if it is a symlink.
  let dst = resolve(dstPath) + (dstPath.endsWith('/.') ? '/.' : dstPath.endsWith('/') ? '/' : '');
  let dstStat: Stats | undefined;
  try {
    dstStat = await stat(dst);
    if ((await lstat(dst.replace(/\/\.?$/, ''))).isSymbolicLink()) dst = await realpath(dst);
  } catch { /* absent */ }
  const [dstDir, dstBase] = splitDirEntry(dst);
  let target: string;
  if (dstStat?.isDirectory()) {
    target = dst.replace(/\/\.?$/, '') || '/';
  } else if (dstStat && srcIsDir) {
    res.destroy();
    throw new CliError('cannot copy a directory to a file');
  } else if (!dstStat && !srcIsDir && /\/\.?$/.test(dstPath)) {
    res.destroy();
    throw new CliError(`no such directory`);
  } else {
    const parent = await stat(dstDir).catch(() => undefined);
    if (!parent) {
      res.destroy();
      throw new CliError(`lstat ${dstDir}: no such file or directory`);
    }
    if (!parent.isDirectory()) {
      res.destroy();
      throw new CliError(`${dstDir}: not a directory`);
    }
    content = rebase(content, srcBase, dstBase);
    target = dstDir;
  }
  await untarLocal(content, target);
}

async function copyTo(client: ApiClient, srcPath: string, container: string, dstPath: string, follow: boolean, archive: boolean, stdin: AsyncIterable<Uint8Array>): Promise<void> {
  let dstInfo = { path: dstPath, exists: false, isDir: false };
  let st = await statPath(client, container, dstPath);
  if (st && isLinkMode(st.mode)) {
    let target = st.linkTarget;
    if (!target.startsWith('/')) target = join(splitDirEntry(dstPath)[0], target);
    dstInfo.path = target;
    st = await statPath(client, container, target);
  }
  if (st) dstInfo = { ...dstInfo, exists: true, isDir: isDirMode(st.mode) };
  let content: AsyncIterable<Uint8Array>;
  let resolvedDst: string;
  if (srcPath === '-') {
    if (!dstInfo.isDir) throw new CliError(`destination "${container}:${dstPath}" must be a directory`);
    content = stdin;
    resolvedDst = dstInfo.path;
  } else {
    let local = resolve(srcPath) + (srcPath.endsWith('/.') ? '/.' : '');
    let rebaseName = '';
    let lst: Stats;
    try {
      lst = await lstat(local);
    } catch {
      throw new CliError(`lstat ${resolve(srcPath)}: no such file or directory`);
    }
    if (follow && lst.isSymbolicLink()) {
      rebaseName = basename(local);
      local = await realpath(local);
      lst = await lstat(local);
    }
    const [srcDir, srcEntry] = splitDirEntry(local);
    const srcIsDir = lst.isDirectory();
    let srcBase = rebaseName || srcEntry;
    content = localTar(srcEntry === '.' ? srcDir : join(srcDir, srcEntry), srcBase);
    const [dstDir, dstBase] = splitDirEntry(dstInfo.path);
    if (dstInfo.exists && dstInfo.isDir) {
      resolvedDst = dstInfo.path;
    } else if (dstInfo.exists && srcIsDir) {
      throw new CliError('cannot copy a directory to a file');
    } else if (!dstInfo.exists && !srcIsDir && /\/\.?$/.test(dstInfo.path)) {
      throw new CliError('no such directory');
    } else {
      content = rebase(content, srcBase, dstBase);
      srcBase = dstBase;
      resolvedDst = dstDir;
    }
  }
  const res = await client.request('PUT', `/containers/${encodeURIComponent(container)}/archive`, {
    query: { path: resolvedDst, noOverwriteDirNonDir: true, copyUIDGID: archive || undefined },
    stream: content,
  });
  res.resume();
}
