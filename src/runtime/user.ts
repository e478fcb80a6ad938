/**
 * Resolving `--user` against the container's own /etc/passwd and /etc/group,
 * the way runc's GetExecUser does for Docker. The files are read through the
 * container root with every symlink resolved inside it, so a hostile image
 * cannot make the daemon read a host file.
 */
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errno, invalidArgument } from '../common/errors.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: those of /etc/group that list the user (when no group was given), then `--group-add`. */
  additionalGids: number[];
  /** The user's home from /etc/passwd, `/` when unknown. */
  home: string;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_ID = 2 ** 31 - 1;
const MAX_SYMLINKS = 40;

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f.length < 4 || !Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') continue;
    out.push({ name: f[0], uid, gid, home: f[5] || '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = Number(f[2]);
    if (f.length < 3 || f[2] === '' || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

/** Resolves `path` inside `root` as if `root` were `/`: symlinks (absolute or relative) never leave it. */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const todo = path.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift() as string;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    let st;
    try {
      st = await lstat(host);
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') {
        done.push(part, ...todo.filter((p) => p !== '.'));
        return join(root, ...done);
      }
      throw e;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw invalidArgument(`too many levels of symbolic links resolving ${path} in the container`);
    const target = await readlink(host);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter(Boolean));
  }
  return join(root, ...done);
}

async function readInRoot(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRoot(root, path), 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR' || errno(e) === 'EISDIR') return undefined;
    throw e;
  }
}

function numericId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  if (n > MAX_ID) throw invalidArgument(`uids and gids must be in range 0-${MAX_ID}`);
  return n;
}

/**
 * Resolves a Docker `User` string (`""`, `name`, `uid`, `uid:gid`, `name:group`, …)
 * against the container's /etc/passwd and /etc/group. The default is root. A
 * numeric id needs no entry; a name must have one.
 */
export async function resolveUser(rootfsDir: string, userSpec = '', groupAdd: readonly string[] = []): Promise<ResolvedUser> {
  const colon = userSpec.indexOf(':');
  const userArg = colon < 0 ? userSpec : userSpec.slice(0, colon);
  const groupArg = colon < 0 ? '' : userSpec.slice(colon + 1);
  const passwd = parsePasswd((await readInRoot(rootfsDir, '/etc/passwd')) ?? '');
  const needGroups = groupArg !== '' || groupAdd.length > 0 || passwd.length > 0;
  const groups = needGroups ? parseGroup((await readInRoot(rootfsDir, '/etc/group')) ?? '') : [];

  const out: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/' };
  const uidArg = numericId(userArg);
  let matched: PasswdEntry | undefined;
  if (userArg === '') matched = passwd.find((u) => u.uid === 0);
  else if (uidArg !== undefined) matched = passwd.find((u) => u.uid === uidArg);
  else {
    matched = passwd.find((u) => u.name === userArg);
    if (!matched) throw invalidArgument(`unable to find user ${userArg}: no matching entries in passwd file`);
  }
  if (matched) {
    out.uid = matched.uid;
    out.gid = matched.gid;
    out.home = matched.home;
  } else if (uidArg !== undefined) {
    out.uid = uidArg;
  }

  if (groupArg !== '') {
    out.gid = lookupGroup(groups, groupArg);
  } else if (matched) {
    for (const g of groups) if (g.members.includes(matched.name) && !out.additionalGids.includes(g.gid)) out.additionalGids.push(g.gid);
  }
  for (const g of groupAdd) {
    const gid = lookupGroup(groups, g);
    if (!out.additionalGids.includes(gid)) out.additionalGids.push(gid);
  }
  return out;
}

function lookupGroup(groups: readonly GroupEntry[], arg: string): number {
  const gid = numericId(arg);
  if (gid !== undefined) return gid;
  const g = groups.find((x) => x.name === arg);
  if (!g) throw invalidArgument(`unable to find group ${arg}: no matching entries in group file`);
  return g.gid;
}
