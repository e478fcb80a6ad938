// The thread side of UnpackWorker (pull-unpack.ts). One thread serves every
// layer being pulled: for each job it reads the blob's bytes from that job's
// shared ring as they arrive, decompresses them (the compression told from the
// first bytes), hashes the tar (the diff ID) and, when asked, applies it to the
// snapshot directory with applyLayer, which refuses hostile entries. Errors go
// back as `{ code, message }`, since class instances do not cross threads.
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, type Transform } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { BerthError } from '../common/errors.ts';
import { applyLayer } from '../diff/layer.ts';
import { type Compression, detectCompression } from '../diff/scan.ts';

export type ToWorker =
  | { type: 'open'; id: number; ring: SharedArrayBuffer; dir?: string }
  | { type: 'data'; id: number; end: number }
  | { type: 'end'; id: number }
  | { type: 'abort'; id: number };
export type FromWorker =
  | { type: 'consumed'; id: number; upTo: number }
  | { type: 'done'; id: number; compression: Compression; diffId: string; size: number; applied: number }
  | { type: 'error'; id: number; code?: string; message: string; lost?: boolean }
  | { type: 'aborted'; id: number };

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);

class Job {
  readonly id: number;
  #ring: Uint8Array;
  #dir: string | undefined;
  #read = 0;
  #input: PassThrough | Transform | undefined;
  #compression: Compression = 'none';
  #hash: Hash = createHash('sha256');
  #size = 0;
  #consumer: Promise<number> | undefined;
  #failed = false;
  #ac = new AbortController();
  // A job's messages are handled one after another: a chunk is acknowledged (its ring space freed) once the decompressor took it.
  #queue = Promise.resolve();

  constructor(id: number, ring: SharedArrayBuffer, dir: string | undefined) {
    this.id = id;
    this.#ring = new Uint8Array(ring);
    this.#dir = dir;
  }

  handle(m: ToWorker): void {
    if (m.type === 'abort') {
      void this.#abort();
      return;
    }
    this.#queue = this.#queue.then(() => (m.type === 'data' ? this.#take(m.end) : this.#finish())).catch((e) => this.#fail(e));
  }

  #fail(e: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    const err = e as Error & { code?: string };
    send({ type: 'error', id: this.id, code: e instanceof BerthError ? err.code : undefined, message: err.message ?? String(e) });
    this.#input?.destroy();
  }

  async #abort(): Promise<void> {
    this.#failed = true;
    this.#ac.abort();
    this.#input?.destroy();
    await this.#consumer?.catch(() => {});
    jobs.delete(this.id);
    send({ type: 'aborted', id: this.id });
  }

  #start(head: Buffer): PassThrough | Transform {
    this.#compression = detectCompression(head);
    const s = this.#compression === 'gzip' ? createGunzip({ chunkSize: 1 << 20 })
      : this.#compression === 'zstd' ? createZstdDecompress()
      : new PassThrough({ highWaterMark: 1 << 20 });
    // An uncompressed layer's diff ID is its blob digest, which the ingest computes anyway.
    const hashing = this.#compression !== 'none';
    const self = this;
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const c of s) {
        const chunk = c as Buffer;
        if (hashing) self.#hash.update(chunk);
        self.#size += chunk.length;
        yield chunk;
      }
    }
    this.#consumer = this.#dir
      ? applyLayer(this.#dir, hashed(), { signal: this.#ac.signal }).then((r) => r.size)
      : (async () => { for await (const _ of hashed()) { /* hash only */ } return 0; })();
    this.#consumer.catch((e) => this.#fail(e));
    return s;
  }

  async #take(end: number): Promise<void> {
    let copied = false;
    while (this.#read < end && !this.#failed) {
      const at = this.#read % this.#ring.length;
      const n = Math.min(end - this.#read, this.#ring.length - at);
      const view = this.#ring.subarray(at, at + n);
      this.#read += n;
      const s = (this.#input ??= this.#start(Buffer.from(view)));
      let more: boolean;
      if (this.#compression === 'none') {
        // Passed-through bytes are held until the layer writes them: they must not stay in the ring.
        more = s.write(Buffer.from(view));
        copied = true;
      } else {
        // The decompressor is done with its input when the write calls back: only then is the space given back.
        const upTo = this.#read;
        more = s.write(Buffer.from(view.buffer, view.byteOffset, n), () => send({ type: 'consumed', id: this.id, upTo }));
      }
      if (!more) {
        await new Promise<void>((resolve) => {
          const go = () => { s.off('drain', go); s.off('close', go); resolve(); };
          s.on('drain', go);
          s.on('close', go);
        });
      }
    }
    if (copied) send({ type: 'consumed', id: this.id, upTo: end });
  }

  async #finish(): Promise<void> {
    if (this.#failed) return;
    (this.#input ??= this.#start(Buffer.alloc(0))).end();
    const applied = await this.#consumer!;
    if (this.#failed) return;
    jobs.delete(this.id);
    const diffId = this.#compression === 'none' ? '' : `sha256:${this.#hash.digest('hex')}`;
    send({ type: 'done', id: this.id, compression: this.#compression, diffId, size: this.#size, applied });
  }
}

const jobs = new Map<number, Job>();
port.on('message', (m: ToWorker) => {
  if (m.type === 'open') jobs.set(m.id, new Job(m.id, m.ring, m.dir));
  else jobs.get(m.id)?.handle(m);
});
