/** Docker's event message shape (GET /events). */
export interface EventMessage {
  Type: 'image' | 'container' | 'volume' | 'network' | 'daemon' | 'plugin' | 'builder';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local' | 'swarm';
  time: number;
  timeNano: number;
  // Deprecated top-level fields older clients still read.
  status?: string;
  id?: string;
  from?: string;
}

const KEEP = 1024;

/**
 * Daemon events: a ring of recent events for `since` queries, and live
 * subscribers as async iterators. Like Docker's, the history lives in memory.
 */
export class EventBus {
  #ring: EventMessage[] = [];
  #subs = new Set<(e: EventMessage) => void>();

  emit(type: EventMessage['Type'], action: string, id: string, attributes: Record<string, string> = {}): EventMessage {
    const ns = process.hrtime.bigint() - HR_BASE + EPOCH_NS;
    const e: EventMessage = {
      Type: type, Action: action, Actor: { ID: id, Attributes: attributes }, scope: 'local',
      time: Number(ns / 1_000_000_000n), timeNano: Number(ns),
    };
    if (type === 'image' || type === 'container') {
      e.status = action;
      e.id = id;
      if (attributes.image) e.from = attributes.image;
    }
    this.#ring.push(e);
    if (this.#ring.length > KEEP) this.#ring.splice(0, this.#ring.length - KEEP);
    for (const s of this.#subs) s(e);
    return e;
  }

  /** Events since `sinceNs` (inclusive), then live ones until `untilNs` or abort. */
  async *subscribe(opts: { sinceNs?: bigint; untilNs?: bigint; signal?: AbortSignal }): AsyncGenerator<EventMessage> {
    const queue: EventMessage[] = [];
    let wake: (() => void) | undefined;
    const live = opts.untilNs === undefined || opts.untilNs > nowNs();
    const sub = (e: EventMessage) => {
      queue.push(e);
      wake?.();
    };
    if (live) this.#subs.add(sub);
    const onAbort = () => wake?.();
    opts.signal?.addEventListener('abort', onAbort);
    const inWindow = (e: EventMessage) =>
      (opts.sinceNs === undefined || BigInt(e.timeNano) >= opts.sinceNs) && (opts.untilNs === undefined || BigInt(e.timeNano) <= opts.untilNs);
    try {
      if (opts.sinceNs !== undefined) for (const e of this.#ring.filter(inWindow)) yield e;
      if (!live) return;
      while (!opts.signal?.aborted && (opts.untilNs === undefined || nowNs() <= opts.untilNs)) {
        if (queue.length === 0) {
          // Each wait carries its own deadline, so an `until` passing between waits is never missed.
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((r) => {
            wake = r;
            if (opts.untilNs !== undefined) timer = setTimeout(r, Number((opts.untilNs - nowNs()) / 1_000_000n) + 1);
          });
          clearTimeout(timer);
        }
        wake = undefined;
        while (queue.length > 0) {
          const e = queue.shift()!;
          if (inWindow(e)) yield e;
        }
      }
    } finally {
      this.#subs.delete(sub);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }
}

// Wall-clock nanoseconds that never step backwards within a process.
const EPOCH_NS = BigInt(Date.now()) * 1_000_000n;
const HR_BASE = process.hrtime.bigint();
export const nowNs = () => process.hrtime.bigint() - HR_BASE + EPOCH_NS;
