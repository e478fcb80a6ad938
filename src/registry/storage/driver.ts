// The registry's storage-driver interface: the only way the registry touches its bytes.
//
// Paths are logical, slash-separated and relative (`blobs/sha256/ab…`, `repositories/library/busybox/_manifests/tags/latest`);
// the registry builds them only from validated names and digests, and every driver refuses
// absolute paths and `..` again, so nothing is ever written outside the driver's root.
//
// The interface is shaped so an object store can implement it (docs/registry.md maps each
// method onto S3): no directories to create, no partial overwrites, no truncation. The only
// stateful write is an upload `Writer`, which appends and is finished by `commit`; making a
// finished upload visible is one `move` — a rename on a filesystem, a server-side copy plus
// delete on S3 — done only after the digest has been checked.
import type { Readable, Writable } from 'node:stream';

export interface StatInfo {
  size: number;
  modified: Date;
  isDirectory: boolean;
}

/** An append-only writer into the upload area. */
export interface Writer {
  /** The bytes; respects backpressure. Ending it does not make the data durable: `commit` does. */
  readonly stream: Writable;
  /** Flushes and makes what was written durable (fsync; the last part of a multipart upload on S3). */
  commit(): Promise<void>;
  /** Discards this writer's handle; what was already committed stays. */
  cancel(): Promise<void>;
}

export interface StorageDriver {
  /** For logs and docs: `filesystem`, `s3`. */
  readonly name: string;
  /** A small object whole (tags, links, secrets), or undefined when absent. */
  getContent(path: string): Promise<Buffer | undefined>;
  /**
   * Writes a small object atomically: readers see the old or the new content, never a mix.
   * A `secret` (the token key) is readable by the registry alone: mode 0600 on a filesystem.
   */
  putContent(path: string, data: string | Uint8Array, opts?: { secret?: boolean }): Promise<void>;
  /** Streams an object, or the inclusive byte range [start, end] of it. Throws a NotFound BerthError when absent. */
  reader(path: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Size, time and kind of an object or a prefix, or undefined when absent. */
  stat(path: string): Promise<StatInfo | undefined>;
  /** The names directly under a prefix (one level), or [] when there is none. */
  list(path: string): Promise<string[]>;
  /** Deletes an object or everything under a prefix; an absent path is not an error. */
  delete(path: string): Promise<void>;
  /** Atomically moves an object to `dst`, replacing what is there. */
  move(src: string, dst: string): Promise<void>;
  /** Opens an upload object for appending (creating it when absent). */
  writer(path: string): Promise<Writer>;
  /**
   * Optional: writes an object, or the inclusive range [start, end], into `dest` with the driver's
   * cheapest copy, resolving once every byte is handed to it. Without it the server pipes `reader`.
   * (The filesystem driver recycles a few buffers per transfer; an S3 driver could omit it.)
   */
  send?(path: string, dest: Writable, range?: { start: number; end: number }): Promise<void>;
  /**
   * Optional: clears what a crash of any process left behind below the registry's view (the
   * filesystem driver's half-written staging files; on S3, multipart uploads never completed).
   * Safe while other processes serve the same storage. Returns how many leftovers it removed.
   */
  recover?(): Promise<number>;
}

/** Refuses anything but a clean relative path: defence in depth below the registry's own name checks. */
export function checkPath(path: string): string {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) throw new Error(`storage: bad path ${JSON.stringify(path)}`);
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') throw new Error(`storage: bad path ${JSON.stringify(path)}`);
  }
  return path;
}
