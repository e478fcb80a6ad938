// What pull and push share: Docker's progress messages (the JSON message
// stream `docker pull` and `docker push` draw their bars from) and a bound on
// how many layers move at once.

/** One message of Docker's JSON progress stream, as the API writes it. */
export interface ProgressMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  /** The bar as Docker's daemon renders it, for clients that print it as it is. */
  progress?: string;
  aux?: Record<string, unknown>;
}

export type ProgressSink = (m: ProgressMessage) => void;

/** A per-layer status line: `Pulling fs layer`, `Waiting`, `Pull complete`… */
export function layerStatus(id: string, status: string): ProgressMessage {
  return { status, progressDetail: {}, id };
}

/** A per-layer status with bytes moved: `Downloading`, `Extracting`, `Pushing`. */
export function layerProgress(id: string, status: string, current: number, total: number): ProgressMessage {
  return { status, progressDetail: { current, total }, progress: progressBar(current, total), id };
}

/** Docker's bar: `[=====>        ]  1.05MB/2.211MB` (50 columns, sizes in SI units with 4 digits). */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return current > 0 ? humanSize(current).padStart(8) : '';
  const filled = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  const box = `[${'='.repeat(filled)}>${' '.repeat(Math.max(0, 50 - filled))}] `;
  const numbers = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return box + numbers;
}

/** go-units' HumanSize: decimal units, four significant digits, no trailing zeros. */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

/** The 12-hex short form Docker names layers by in progress lines. */
export function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * Sends byte counts at most every `intervalMs` per layer (and always the
 * last), so a fast download does not become a flood of messages.
 */
export class ProgressThrottle {
  #last = new Map<string, number>();
  #intervalMs: number;
  #sink: ProgressSink;

  constructor(sink: ProgressSink, intervalMs = 100) {
    this.#sink = sink;
    this.#intervalMs = intervalMs;
  }

  update(id: string, status: string, current: number, total: number): void {
    const now = Date.now();
    if (current < total && now - (this.#last.get(id) ?? 0) < this.#intervalMs) return;
    this.#last.set(id, now);
    this.#sink(layerProgress(id, status, current, total));
  }
}

/** Runs at most `n` tasks at a time, in the order they were asked for. */
export class Limiter {
  #free: number;
  #queue: (() => void)[] = [];

  constructor(n: number) {
    this.#free = Math.max(1, n);
  }

  /** True when a task asked for now would have to wait. */
  get busy(): boolean {
    return this.#free === 0;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await task();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    }
  }
}
