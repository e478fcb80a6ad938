// What ADD does beyond COPY: a local tar archive (plain, gzip, bzip2 or xz) is unpacked at the
// destination instead of copied, and a URL is downloaded (the file gets mode 0600 and the
// server's Last-Modified time, as Docker gives it).
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { invalidArgument } from '../common/errors.ts';
import { extractInto } from '../diff/extract.ts';
import type { InlineFile } from './copy.ts';

type Compression = 'none' | 'gzip' | 'bzip2' | 'xz';

async function sniff(path: string): Promise<Compression | undefined> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Whether ADD should unpack this local file rather than copy it. */
export async function isArchive(path: string): Promise<boolean> {
  return (await sniff(path)) !== undefined;
}

function decompressor(kind: Compression, path: string): Readable {
  if (kind === 'none') return createReadStream(path);
  if (kind === 'gzip') return createReadStream(path).pipe(createGunzip());
  const child = spawn(kind === 'bzip2' ? 'bzip2' : 'xz', ['-dc', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  return child.stdout;
}

/** Unpacks a local archive into `dest` inside the mounted root, with the same checks as any layer. */
export async function extractArchive(root: string, dest: string, path: string, signal?: AbortSignal): Promise<void> {
  const kind = await sniff(path);
  if (!kind) throw invalidArgument(`${path} is not an archive`);
  const { mkdir } = await import('node:fs/promises');
  const { resolveInRoot } = await import('../diff/extract.ts');
  await mkdir(await resolveInRoot(root, dest), { recursive: true, mode: 0o755 });
  await extractInto(root, dest, decompressor(kind, path), { signal });
}

/** Downloads a URL for ADD: the whole body in memory is fine for the files ADD fetches, capped at 1 GiB. */
export async function fetchUrl(url: string, signal?: AbortSignal): Promise<InlineFile> {
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (e) {
    throw invalidArgument(`failed to fetch ${url}: ${(e as Error).message}`, e);
  }
  if (!res.ok) throw invalidArgument(`failed to fetch ${url}: ${res.status} ${res.statusText}`);
  const len = Number(res.headers.get('content-length') ?? 0);
  if (len > 1 << 30) throw invalidArgument(`failed to fetch ${url}: the file is larger than 1 GiB`);
  const content = Buffer.from(await res.arrayBuffer());
  const lastModified = res.headers.get('last-modified');
  const name = posix.basename(new URL(url).pathname) || 'index.html';
  return { name, content, mode: 0o600, ...(lastModified ? { mtime: new Date(lastModified) } : {}) };
}
