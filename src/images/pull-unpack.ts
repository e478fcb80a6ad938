import { Worker } from 'node:worker_threads';
import { BerthError, type ErrorCode, invalidArgument } from '../common/errors.ts';
import type { Compression } from '../diff/scan.ts';
import type { FromWorker, ToWorker } from './pull-unpack-worker.ts';

/** Bytes of blob in flight between a download and the unpacking thread, per layer. */
const RING_BYTES = 8 << 20;

export interface UnpackResult {
  compression: Compression;
  /** Digest of the uncompressed stream; '' for an uncompressed blob (its own digest is its diff ID). */
  diffId: string;
  /** Bytes of uncompressed tar. */
  size: number;
  /** Bytes of file content written into the directory. */
  applied: number;
}

/**
 * The one unpacking thread, started on first use and kept (unref'd) while
 * idle: it serves every layer of every pull, so a pull pays no thread start.
 */
class UnpackThread {
  #worker: Worker | undefined;
  #jobs = new Map<number, (m: FromWorker) => void>();
  #nextId = 1;

  open(ring: SharedArrayBuffer, dir: string | undefined, onMessage: (m: FromWorker) => void): number {
    const id = this.#nextId++;
    this.#jobs.set(id, onMessage);
    if (this.#jobs.size === 1) this.#thread().ref();
    this.post({ type: 'open', id, ring, dir });
    return id;
  }

  close(id: number): void {
    if (this.#jobs.delete(id) && this.#jobs.size === 0) this.#worker?.unref();
  }

  post(m: ToWorker): void {
    this.#thread().postMessage(m);
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL('./pull-unpack-worker.ts', import.meta.url));
    w.on('message', (m: FromWorker) => this.#jobs.get(m.id)?.(m));
    const lost = (why: string) => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      // Every job in flight fails; the next pull starts a new thread.
      for (const [id, cb] of this.#jobs) cb({ type: 'error', id, message: why, lost: true });
    };
    w.on('error', (e) => lost(`the unpacking thread failed: ${e.message}`));
    w.on('exit', (code) => lost(`the unpacking thread exited (${code})`));
    this.#worker = w;
    return w;
  }
}

const thread = new UnpackThread();

/**
 * Unpacks one layer on the unpacking thread while it downloads. The download
 * (on the main thread, which also feeds the content store's ingest) copies
 * each chunk into this layer's shared ring; the thread decompresses it,
 * hashes the diff ID and applies the tar to `dir`. A pull's work thus spreads
 * over two cores instead of queueing on the event loop. Ring space frees as
 * the thread takes the bytes, which is the backpressure.
 */
export class UnpackWorker {
  #id: number;
  #ring: Uint8Array;
  #written = 0;
  #posted = 0;
  #consumed = 0;
  #spaceWaiter: (() => void) | undefined;
  #result: Promise<UnpackResult>;
  #aborted: Promise<void> | undefined;
  #onAborted: (() => void) | undefined;
  #open = true;
  #error: Error | undefined;

  /** `dir` undefined: decompress and hash only (the snapshot exists, the blob does not). */
  constructor(dir: string | undefined) {
    const sab = new SharedArrayBuffer(RING_BYTES);
    this.#ring = new Uint8Array(sab);
    let resolve!: (r: UnpackResult) => void;
    let reject!: (e: Error) => void;
    this.#result = new Promise<UnpackResult>((res, rej) => { resolve = res; reject = rej; });
    this.#result.catch(() => {});
    this.#id = thread.open(sab, dir, (m) => {
      if (m.type === 'consumed') {
        this.#consumed = m.upTo;
        this.#wake();
      } else if (m.type === 'done') {
        this.#close();
        resolve({ compression: m.compression, diffId: m.diffId, size: m.size, applied: m.applied });
      } else if (m.type === 'aborted') {
        this.#close();
        this.#onAborted?.();
      } else {
        this.#error ??= m.code ? new BerthError(m.code as ErrorCode, m.message) : invalidArgument(`failed to unpack layer: ${m.message}`);
        this.#wake();
        reject(this.#error);
        // A lost thread sends no `aborted`: nothing of this job runs any more.
        if (m.lost) {
          this.#close();
          this.#onAborted?.();
        }
      }
    });
  }

  /** Set once the thread refused the layer (hostile or corrupt): the caller stops feeding it. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Copies a chunk into the ring, waiting for space; does nothing once the layer was refused. */
  async push(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.#error) return;
      const free = this.#ring.length - (this.#written - this.#consumed);
      if (free === 0) {
        this.#post();
        await new Promise<void>((r) => (this.#spaceWaiter = r));
        continue;
      }
      const at = this.#written % this.#ring.length;
      const n = Math.min(chunk.length - off, free, this.#ring.length - at);
      this.#ring.set(chunk.subarray(off, off + n), at);
      off += n;
      this.#written += n;
    }
    this.#post();
  }

  /** Tells the thread how far the ring is filled. */
  #post(): void {
    if (this.#posted === this.#written) return;
    this.#posted = this.#written;
    thread.post({ type: 'data', id: this.#id, end: this.#written });
  }

  /** Every byte is in: resolves with what the thread found, or rejects with why it refused the layer. */
  finish(): Promise<UnpackResult> {
    if (!this.#error) thread.post({ type: 'end', id: this.#id });
    return this.#result;
  }

  /** Stops this layer's work and resolves once nothing of it touches the directory any more. */
  abort(): Promise<void> {
    if (!this.#open) return Promise.resolve();
    this.#error ??= new Error('aborted');
    this.#wake();
    this.#aborted ??= new Promise<void>((r) => {
      this.#onAborted = r;
      thread.post({ type: 'abort', id: this.#id });
    });
    return this.#aborted;
  }

  #close(): void {
    this.#open = false;
    thread.close(this.#id);
  }

  #wake(): void {
    const w = this.#spaceWaiter;
    this.#spaceWaiter = undefined;
    w?.();
  }
}
