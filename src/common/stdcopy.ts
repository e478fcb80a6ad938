/**
 * Docker's stdcopy framing for non-TTY streams: an 8-byte header
 * `[stream, 0, 0, 0, size (uint32 big-endian)]` before each payload, where
 * stream is 0 stdin, 1 stdout, 2 stderr, 3 the daemon's own error.
 */
export const StdStream = { stdin: 0, stdout: 1, stderr: 2, system: 3 } as const;
export type StdStream = (typeof StdStream)[keyof typeof StdStream];

export function frame(stream: StdStream, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt32BE(0, 0);
  out[0] = stream;
  out.writeUInt32BE(payload.length, 4);
  out.set(payload, 8);
  return out;
}

/** Splits a framed byte stream back into (stream, payload) pieces, across chunk boundaries. */
export class Deframer {
  #buf = Buffer.alloc(0);

  push(chunk: Uint8Array): { stream: StdStream; payload: Buffer }[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk);
    const out: { stream: StdStream; payload: Buffer }[] = [];
    while (this.#buf.length >= 8) {
      const size = this.#buf.readUInt32BE(4);
      if (this.#buf.length < 8 + size) break;
      out.push({ stream: this.#buf[0] as StdStream, payload: this.#buf.subarray(8, 8 + size) });
      this.#buf = this.#buf.subarray(8 + size);
    }
    return out;
  }
}
