import type { Logger } from '../common/log.ts';
import type { ContainerRecord, ContainerState, ContainerStore } from '../metadata/containers.ts';
import type { EventBus } from './events.ts';

type Health = NonNullable<ContainerState['Health']>;

/** What the health monitor needs from the runtime: a command run inside the container, output captured. */
export interface ProbeRuntime {
  execProbe(c: ContainerRecord, args: string[], opts: { signal?: AbortSignal; maxOutput?: number }): Promise<{ exitCode: number; output: string }>;
}

/** Docker's defaults (api/types/container: DefaultHealthInterval and friends). */
export const HEALTH_DEFAULTS = { intervalNs: 30e9, timeoutNs: 30e9, retries: 3, startPeriodNs: 0 } as const;
/** Docker keeps the last five results and 4 KiB of output of each. */
const MAX_LOG = 5;
const MAX_OUTPUT = 4096;

export interface Healthcheck {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

/** The probe's argv for a Healthcheck, or undefined when there is none (absent, empty or `NONE`). */
export function probeArgs(hc: Healthcheck | null | undefined): string[] | undefined {
  const t = hc?.Test;
  if (!t || t.length === 0 || t[0] === 'NONE') return undefined;
  if (t[0] === 'CMD') return t.length > 1 ? t.slice(1) : undefined;
  if (t[0] === 'CMD-SHELL') return t.length > 1 ? ['/bin/sh', '-c', t.slice(1).join(' ')] : undefined;
  return undefined;
}

/**
 * Runs containers' health checks as Docker does: the first probe one interval
 * after start, each probe bounded by the timeout, `Retries` failures in a row
 * make the container unhealthy, failures during the start period do not
 * count, one success makes it healthy. Results go into State.Health (written
 * through to the store) and changes of status become `health_status: …`
 * events. The monitor follows the container service's `start` and `die`
 * events, and `resume` picks running containers up again after a daemon
 * restart.
 */
export class HealthMonitor {
  #store: ContainerStore;
  #runtime: ProbeRuntime;
  #events: EventBus;
  #log: Logger;
  /** Running monitors: their stop. */
  #active = new Map<string, AbortController>();
  #stop = new AbortController();

  constructor(deps: { store: ContainerStore; runtime: ProbeRuntime; events: EventBus; log: Logger }) {
    this.#store = deps.store;
    this.#runtime = deps.runtime;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  /** Follows container starts and exits on the event bus until `close`. */
  listen(): void {
    const feed = this.#events.subscribe({ signal: this.#stop.signal });
    (async () => {
      for await (const e of feed) {
        if (e.Type !== 'container') continue;
        if (e.Action === 'start') {
          const c = this.#store.get(e.Actor.ID);
          if (c) this.start(c);
        } else if (e.Action === 'die' || e.Action === 'destroy') {
          this.stop(e.Actor.ID);
        }
      }
    })().catch((err) => {
      if (!this.#stop.signal.aborted) this.#log.error('health monitor feed ended', { err });
    });
  }

  /** Starts checking a container that has just started: its health begins as `starting`. */
  start(c: ContainerRecord): void {
    if (!probeArgs(c.config.Healthcheck)) return;
    this.#patch(c.id, { Status: 'starting', FailingStreak: 0, Log: [] });
    this.#run(c.id);
  }

  /** After a daemon restart: resumes checks of a running container, keeping what its health was. */
  resume(c: ContainerRecord): void {
    if (!c.state.Running || !probeArgs(c.config.Healthcheck) || this.#active.has(c.id)) return;
    if (!c.state.Health) this.#patch(c.id, { Status: 'starting', FailingStreak: 0, Log: [] });
    this.#run(c.id);
  }

  stop(id: string): void {
    this.#active.get(id)?.abort();
    this.#active.delete(id);
  }

  close(): void {
    this.#stop.abort();
    for (const id of [...this.#active.keys()]) this.stop(id);
  }

  #run(id: string): void {
    this.stop(id);
    const ac = new AbortController();
    this.#active.set(id, ac);
    this.#loop(id, ac.signal).catch((err) => this.#log.warn('health check loop failed', { id, err })).finally(() => {
      if (this.#active.get(id)?.signal === ac.signal) this.#active.delete(id);
    });
  }

  async #loop(id: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      const c = this.#store.get(id);
      if (!c || !c.state.Running) return;
      const hc = (c.config.Healthcheck ?? {}) as Healthcheck;
      const args = probeArgs(hc);
      if (!args) return;
      const intervalMs = (hc.Interval || HEALTH_DEFAULTS.intervalNs) / 1e6;
      const timeoutMs = (hc.Timeout || HEALTH_DEFAULTS.timeoutNs) / 1e6;
      const startPeriodMs = (hc.StartPeriod || HEALTH_DEFAULTS.startPeriodNs) / 1e6;
      const inStartPeriod = Date.now() < Date.parse(c.state.StartedAt) + startPeriodMs;
      // Docker's StartInterval: quicker probes while the start period lasts.
      const wait = inStartPeriod && hc.StartInterval ? hc.StartInterval / 1e6 : intervalMs;
      if (!(await sleep(wait, signal))) return;
      const now = this.#store.get(id);
      if (!now || !now.state.Running) return;
      if (now.state.Paused) continue;
      await this.#probe(now, args, timeoutMs, startPeriodMs, signal);
      if (signal.aborted) return;
    }
  }

  async #probe(c: ContainerRecord, args: string[], timeoutMs: number, startPeriodMs: number, stop: AbortSignal): Promise<void> {
    const start = new Date().toISOString();
    const timeout = AbortSignal.timeout(timeoutMs);
    let exitCode: number;
    let output: string;
    try {
      ({ exitCode, output } = await this.#runtime.execProbe(c, args, { signal: AbortSignal.any([timeout, stop]), maxOutput: MAX_OUTPUT }));
    } catch (e) {
      if (stop.aborted) return;
      exitCode = -1;
      output = timeout.aborted ? `Health check exceeded timeout (${goDuration(timeoutMs)})` : (e as Error).message.slice(0, MAX_OUTPUT);
    }
    const fresh = this.#store.get(c.id);
    // A result from a container stopped or frozen meanwhile says nothing about its health.
    if (!fresh || !fresh.state.Running || fresh.state.Paused || stop.aborted) return;
    const old: Health = fresh.state.Health ?? { Status: 'starting', FailingStreak: 0, Log: [] };
    const log = [...old.Log, { Start: start, End: new Date().toISOString(), ExitCode: exitCode, Output: output }].slice(-MAX_LOG);
    let status = old.Status;
    let streak = old.FailingStreak;
    if (exitCode === 0) {
      streak = 0;
      status = 'healthy';
    } else if (!(Date.now() < Date.parse(fresh.state.StartedAt) + startPeriodMs)) {
      streak++;
      const retries = ((fresh.config.Healthcheck ?? {}) as Healthcheck).Retries || HEALTH_DEFAULTS.retries;
      if (streak >= retries) status = 'unhealthy';
    }
    this.#patch(c.id, { Status: status, FailingStreak: streak, Log: log });
    if (status !== old.Status) {
      this.#events.emit('container', `health_status: ${status}`, c.id, { image: c.image, name: c.name });
    }
  }

  #patch(id: string, health: Health): void {
    const c = this.#store.get(id);
    if (!c) return;
    this.#store.setState(id, { ...c.state, Health: health });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Go's time.Duration String() for whole and fractional seconds/milliseconds. */
function goDuration(ms: number): string {
  if (ms >= 1000) return `${Number((ms / 1000).toFixed(3))}s`;
  return `${ms}ms`;
}
