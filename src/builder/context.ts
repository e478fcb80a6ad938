// The build context: the files COPY and ADD may read. Either a directory on the daemon's machine
// (handed over by `berth build`, which then costs nothing for files no step reads) or a tar a client
// uploaded (the docker CLI always sends one), unpacked through the same checks as any layer.
// Paths resolve inside the context root; a symlink that points out of it resolves inside it too,
// so no host file outside the context can leak into an image.
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errno, invalidArgument } from '../common/errors.ts';
import { extractInto, resolveInRoot } from '../diff/extract.ts';
import { createIgnoreMatcher, parseDockerignore } from './context/dockerignore.ts';

export interface IgnoreMatcher {
  ignores(rel: string, isDir: boolean): boolean;
  canSkipDir(rel: string): boolean;
}

export class BuildContext {
  /** The context directory on this host. */
  readonly root: string;
  readonly ignore: IgnoreMatcher;
  #dispose: () => Promise<void>;

  private constructor(root: string, ignore: IgnoreMatcher, dispose: () => Promise<void>) {
    this.root = root;
    this.ignore = ignore;
    this.#dispose = dispose;
  }

  /** A directory on this machine, read in place. */
  static async fromDirectory(dir: string): Promise<BuildContext> {
    let st: Stats;
    try {
      st = await lstat(dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') throw invalidArgument(`unable to prepare context: path "${dir}" not found`);
      throw e;
    }
    if (!st.isDirectory()) throw invalidArgument(`unable to prepare context: context must be a directory: ${dir}`);
    return new BuildContext(dir, await loadIgnore(dir), async () => {});
  }

  /**
   * An uploaded tar (maybe gzip-compressed), unpacked into a scratch directory under `scratch`.
   * Every entry passes the layer checks: nothing climbs out, no devices.
   */
  static async fromTar(source: AsyncIterable<Uint8Array>, scratch: string, signal?: AbortSignal): Promise<BuildContext> {
    const dir = join(scratch, `build-context-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await extractInto(dir, '/', decompress(source), { signal, lenientEnd: true });
      return new BuildContext(dir, await loadIgnore(dir), () => rm(dir, { recursive: true, force: true }));
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      if ((e as Error).name === 'AbortError') throw e;
      throw invalidArgument(`unable to read the build context: ${(e as Error).message}`, e);
    }
  }

  /** A directory read as it is, without .dockerignore: another stage's or image's root, for COPY --from. */
  static unfiltered(dir: string): BuildContext {
    return new BuildContext(dir, { ignores: () => false, canSkipDir: () => false }, async () => {});
  }

  /** The host path of a context path, with symlinks resolved inside the context. */
  resolve(rel: string, followLast = true): Promise<string> {
    return resolveInRoot(this.root, rel, followLast);
  }

  /** A file of the context (Dockerfile, .dockerignore), or undefined when it is missing. */
  async readFile(rel: string): Promise<Buffer | undefined> {
    try {
      return await readFile(await this.resolve(rel));
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR' || errno(e) === 'EISDIR') return undefined;
      throw e;
    }
  }

  dispose(): Promise<void> {
    return this.#dispose();
  }
}

async function loadIgnore(dir: string): Promise<IgnoreMatcher> {
  let text = '';
  try {
    text = await readFile(await resolveInRoot(dir, '.dockerignore'), 'utf8');
  } catch (e) {
    if (errno(e) !== 'ENOENT' && errno(e) !== 'ENOTDIR') throw e;
  }
  return createIgnoreMatcher(parseDockerignore(text));
}

/** The docker CLI may gzip the context (`--compress`); plain tar passes through. */
async function* decompress(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const head = first.value;
  const rest = { [Symbol.asyncIterator]: () => it };
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const { createGunzip } = await import('node:zlib');
    const gunzip = createGunzip();
    const { Readable } = await import('node:stream');
    const input = Readable.from((async function* () {
      yield head;
      yield* rest;
    })());
    yield* input.pipe(gunzip);
    return;
  }
  yield head;
  yield* rest;
}
