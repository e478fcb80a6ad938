import { createHash } from 'node:crypto';
import { PassThrough, type Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Digest } from '../common/digest.ts';
import { BerthError, invalidArgument } from '../common/errors.ts';
import { readTar } from '../common/tar.ts';
import { LayerChecker } from './layer.ts';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface ScanResult {
  compression: Compression;
  /**
   * Digest of the uncompressed stream: the layer's diff ID if it is a tar.
   * Undefined for an uncompressed stream, whose diff ID is the blob's own
   * digest: the bytes are hashed once, by the content store.
   */
  diffId: Digest | undefined;
  /** Uncompressed size. */
  size: number;
  /** Set when the stream is not an acceptable layer tar (not a tar, corrupt, or hostile). */
  error?: BerthError;
  entries: number;
}

export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/**
 * Checks a blob as a layer while it streams past, without holding it: it
 * decompresses, hashes the tar (the diff ID) and runs every header through the
 * LayerChecker. Feed it with `push`, then `finish`. A stream that is not a tar
 * is not an error here; the caller decides whether this blob had to be a layer.
 */
export class LayerScanner {
  #input: PassThrough | Transform | undefined;
  #compression: Compression = 'none';
  #hash = createHash('sha256');
  #size = 0;
  #entries = 0;
  #error: BerthError | undefined;
  #done: Promise<void> | undefined;

  async push(chunk: Uint8Array): Promise<void> {
    if (!this.#input) this.#start(chunk);
    const input = this.#input!;
    if (input.destroyed) return;
    if (!input.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = () => { input.off('drain', go); input.off('close', go); resolve(); };
        input.on('drain', go);
        input.on('close', go);
      });
    }
  }

  async finish(): Promise<ScanResult> {
    if (!this.#input) this.#start(new Uint8Array(0));
    this.#input!.end();
    await this.#done;
    const diffId: Digest | undefined = this.#compression === 'none' ? undefined : `sha256:${this.#hash.digest('hex')}`;
    return { compression: this.#compression, diffId, size: this.#size, error: this.#error, entries: this.#entries };
  }

  #start(head: Uint8Array): void {
    this.#compression = detectCompression(head);
    const input =
      this.#compression === 'gzip' ? createGunzip() :
      this.#compression === 'zstd' ? createZstdDecompress() :
      new PassThrough({ highWaterMark: 1 << 20 });
    this.#input = input;
    input.on('error', (e) => {
      this.#error ??= invalidArgument(`invalid ${this.#compression} stream: ${e.message}`, e);
      input.resume();
    });
    this.#done = this.#consume(input);
  }

  async #consume(plain: AsyncIterable<Buffer>): Promise<void> {
    const it = plain[Symbol.asyncIterator]();
    // Hashes everything that passes; has no `return`, so readTar stopping early cannot close the stream.
    const tapped: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const r = await it.next();
          if (!r.done) {
            if (this.#compression !== 'none') this.#hash.update(r.value);
            this.#size += r.value.length;
          }
          return r;
        },
      }),
    };
    const checker = new LayerChecker();
    try {
      for await (const entry of readTar(tapped)) {
        checker.check(entry.header);
        this.#entries++;
      }
    } catch (e) {
      this.#error ??= e instanceof BerthError ? e : invalidArgument(String(e), e);
    }
    try {
      for await (const _ of tapped) { /* drain so the digest covers every byte */ }
    } catch { /* the decompressor's error is already recorded */ }
  }
}
