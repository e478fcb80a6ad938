// Docker's detach keys (`--detach-keys`, `detachKeys`, ExecConfig.DetachKeys), noticed by the CLI and the daemon alike.

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** docker's detach keys: `ctrl-p,ctrl-q`, `ctrl-a,x`, `ctrl-@`, `ctrl-[`… as bytes; undefined if invalid. */
export function parseDetachKeys(spec: string): Buffer | undefined {
  const out: number[] = [];
  for (const k of spec.split(',')) {
    const key = k.trim();
    if (key.length === 1) out.push(key.charCodeAt(0));
    else if (/^ctrl-[a-z@[\\\]^_]$/i.test(key)) {
      const ch = key.slice(5);
      out.push(/[a-z]/i.test(ch) ? ch.toLowerCase().charCodeAt(0) - 96 : ch.charCodeAt(0) - 64);
    } else return undefined;
  }
  return out.length ? Buffer.from(out) : undefined;
}

/** Holds back bytes while they could be the start of the detach sequence, as moby/term's escape proxy. */
export class EscapeMatcher {
  #keys: Buffer;
  #held = 0;

  constructor(keys: Buffer) {
    this.#keys = keys;
  }

  push(b: Buffer): { pass: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const byte of b) {
      if (byte === this.#keys[this.#held]) {
        this.#held++;
        if (this.#held === this.#keys.length) return { pass: Buffer.from(out), detached: true };
        continue;
      }
      // Not the sequence after all: what was held back goes through.
      for (let i = 0; i < this.#held; i++) out.push(this.#keys[i]);
      this.#held = 0;
      if (byte === this.#keys[0]) {
        this.#held = 1;
        if (this.#keys.length === 1) return { pass: Buffer.from(out), detached: true };
      } else out.push(byte);
    }
    return { pass: Buffer.from(out), detached: false };
  }
}
