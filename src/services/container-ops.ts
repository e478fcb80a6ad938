import { execFile } from 'node:child_process';
import { totalmem } from 'node:os';
import { promisify } from 'node:util';
import { conflict, invalidArgument } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContainerRecord, ContainerStore, DockerHostConfig } from '../metadata/containers.ts';
import { readCgroupStats, systemCpuUsage } from '../runtime/cgroups.ts';
import { hostConfigResources } from '../runtime/resources.ts';
import { type ResourceOptions, validateResources } from '../runtime/spec.ts';
import { readHostFacts } from '../runtime/host.ts';
import type { EventBus } from './events.ts';

const run = promisify(execFile);

/** What `top`, `stats` and `update` need from the runtime. */
export interface OpsRuntime {
  cgroupPath(c: ContainerRecord): string;
  processes(c: ContainerRecord): Promise<number[]>;
  update(c: ContainerRecord, r: ResourceOptions): Promise<string[]>;
}

/** Docker's ContainerTopOKBody. */
export interface TopResult {
  Titles: string[];
  Processes: string[][];
}

/** The resource fields `POST /containers/{id}/update` takes (Docker's UpdateConfig). */
const UPDATABLE = ['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'CpusetCpus', 'CpusetMems', 'PidsLimit', 'BlkioWeight'] as const;

/**
 * Operations on a running container's processes and cgroup: `top`, `stats`
 * (Docker's stats JSON from the cgroup files) and `update` (runc update, then
 * the new values kept in HostConfig).
 */
export class ContainerOps {
  #store: ContainerStore;
  #runtime: OpsRuntime;
  #events: EventBus;
  #log: Logger;

  constructor(deps: { store: ContainerStore; runtime: OpsRuntime; events: EventBus; log: Logger }) {
    this.#store = deps.store;
    this.#runtime = deps.runtime;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  /** `docker top`: the host's `ps` with the given arguments, keeping only the container's processes. */
  async top(idOrName: string, psArgs = '-ef'): Promise<TopResult> {
    const c = this.#store.resolve(idOrName);
    if (!c.state.Running) throw conflict(`Container ${c.id} is not running`);
    const pids = new Set(await this.#runtime.processes(c));
    const args = psArgs.trim() ? psArgs.trim().split(/\s+/) : [];
    let stdout: string;
    try {
      ({ stdout } = await run('ps', args, { maxBuffer: 64 << 20 }));
    } catch (e) {
      throw invalidArgument(`ps: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`, e);
    }
    return parsePs(stdout, pids);
  }

  /** One sample of the container's statistics in Docker's shape; `pre` is the previous sample (for CPU %). */
  async sample(c: ContainerRecord, pre?: Record<string, any>): Promise<Record<string, any>> {
    const running = c.state.Running;
    const online = readHostFacts().cpus;
    const empty = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
    const base = {
      read: new Date().toISOString(), preread: pre?.read ?? '0001-01-01T00:00:00Z', name: `/${c.name}`, id: c.id,
      num_procs: 0, storage_stats: {}, precpu_stats: pre?.cpu_stats ?? empty,
    };
    if (!running) {
      return { ...base, pids_stats: {}, blkio_stats: emptyBlkio(), cpu_stats: empty, memory_stats: {} };
    }
    const [s, system] = await Promise.all([readCgroupStats(this.#runtime.cgroupPath(c)), systemCpuUsage()]);
    const hostMem = totalmem();
    const blk = (op: string) => s.blkio.filter((b) => b.op === op || op === '*').map((b) => ({ major: b.major, minor: b.minor, op: b.op.replace(/^./, (x) => x.toUpperCase()), value: b.value }));
    return {
      ...base,
      pids_stats: { current: s.pids.current, ...(s.pids.limit ? { limit: s.pids.limit } : {}) },
      blkio_stats: { ...emptyBlkio(), io_service_bytes_recursive: blk('*') },
      cpu_stats: {
        cpu_usage: { total_usage: s.cpu.total, ...(s.cpu.perCpu.length ? { percpu_usage: s.cpu.perCpu } : {}), usage_in_kernelmode: s.cpu.system, usage_in_usermode: s.cpu.user },
        system_cpu_usage: system, online_cpus: online,
        throttling_data: { periods: s.cpu.periods, throttled_periods: s.cpu.throttledPeriods, throttled_time: s.cpu.throttledTime },
      },
      memory_stats: {
        usage: s.memory.usage, ...(s.memory.maxUsage ? { max_usage: s.memory.maxUsage } : {}), stats: s.memory.stats,
        ...(s.memory.failcnt ? { failcnt: s.memory.failcnt } : {}),
        // No limit reads as the host's memory, as Docker reports it.
        limit: s.memory.limit > 0 && s.memory.limit < hostMem ? s.memory.limit : hostMem,
      },
    };
  }

  /**
   * `GET /containers/{id}/stats`: one sample per second while `stream`; a
   * single one otherwise (with a short first sample for CPU %, unless `oneShot`).
   */
  async *stats(idOrName: string, opts: { stream: boolean; oneShot: boolean; signal?: AbortSignal }): AsyncGenerator<Record<string, any>> {
    const id = this.#store.resolve(idOrName).id;
    const get = () => this.#store.get(id);
    if (!opts.stream) {
      let c = get()!;
      let pre: Record<string, any> | undefined;
      if (!opts.oneShot && c.state.Running) {
        pre = await this.sample(c);
        await delay(500, opts.signal);
        c = get() ?? c;
      }
      yield await this.sample(c, pre);
      return;
    }
    let pre: Record<string, any> | undefined;
    while (!opts.signal?.aborted) {
      const c = get();
      if (!c) return;
      const s = await this.sample(c, pre);
      yield s;
      pre = s;
      if (!c.state.Running) return;
      await delay(1000, opts.signal);
    }
  }

  /** `docker update`: the new limits applied with runc to a running container, then kept in HostConfig. */
  async update(idOrName: string, body: Record<string, any>): Promise<{ Warnings: string[] }> {
    const c = this.#store.resolve(idOrName);
    const hc: DockerHostConfig = { ...c.hostConfig };
    const changed: Record<string, unknown> = {};
    for (const k of UPDATABLE) {
      const v = body[k];
      if (v === undefined || v === null) continue;
      if (k === 'PidsLimit') changed[k] = v;
      else if (typeof v === 'string' ? v !== '' : v !== 0) changed[k] = v;
    }
    if (changed.Memory !== undefined && changed.MemorySwap === undefined) {
      const swap = Number(hc.MemorySwap ?? 0);
      if (swap > 0 && Number(changed.Memory) > swap) {
        throw conflict('Cannot update container: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
      }
    }
    // Docker's rules: --cpus and --cpu-quota/--cpu-period are two ways to say one thing.
    if (changed.NanoCpus !== undefined && hc.CpuQuota && changed.CpuQuota === undefined) {
      throw conflict('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
    }
    if (changed.NanoCpus !== undefined && hc.CpuPeriod && changed.CpuPeriod === undefined) {
      throw conflict('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
    }
    if (changed.CpuQuota !== undefined && hc.NanoCpus && changed.NanoCpus === undefined) {
      throw conflict('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
    }
    if (changed.CpuPeriod !== undefined && hc.NanoCpus && changed.NanoCpus === undefined) {
      throw conflict('Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
    }
    Object.assign(hc, changed);
    if (body.RestartPolicy && body.RestartPolicy.Name !== undefined && body.RestartPolicy.Name !== '') {
      const p = body.RestartPolicy as { Name: string; MaximumRetryCount?: number };
      if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(p.Name)) throw invalidArgument(`invalid restart policy '${p.Name}'`);
      if (hc.AutoRemove && p.Name !== 'no') throw conflict('Restart policy cannot be updated because AutoRemove is enabled for the container');
      if (p.Name !== 'on-failure' && p.MaximumRetryCount) throw invalidArgument(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
      hc.RestartPolicy = { Name: p.Name, MaximumRetryCount: p.MaximumRetryCount ?? 0 };
    }
    const resources = hostConfigResources(hc);
    validateResources(resources, readHostFacts());
    let warnings: string[] = [];
    const live = this.#store.get(c.id);
    if (live && (live.state.Running || live.state.Paused) && Object.keys(changed).length) {
      const update: ResourceOptions = { ...resources };
      // Only what changed goes to runc, with memory and swap together so the kernel accepts the pair.
      try {
        warnings = await this.#runtime.update(live, pick(update, changed));
      } catch (e) {
        throw invalidArgument(`Cannot update container ${c.id}: ${(e as Error).message}`, e);
      }
    }
    this.#store.setHostConfig(c.id, hc);
    this.#events.emit('container', 'update', c.id, { image: c.image, name: c.name });
    this.#log.debug('container updated', { id: c.id, changed });
    return { Warnings: warnings };
  }
}

/** The resource options that follow from the changed HostConfig fields. */
function pick(r: ResourceOptions, changed: Record<string, unknown>): ResourceOptions {
  const out: ResourceOptions = {};
  if ('Memory' in changed || 'MemorySwap' in changed) {
    out.memory = r.memory;
    out.memorySwap = r.memorySwap;
  }
  if ('MemoryReservation' in changed) out.memoryReservation = r.memoryReservation;
  if ('NanoCpus' in changed) out.nanoCpus = r.nanoCpus;
  if ('CpuQuota' in changed || 'CpuPeriod' in changed) {
    out.cpuQuota = r.cpuQuota;
    out.cpuPeriod = r.cpuPeriod;
  }
  if ('CpuShares' in changed) out.cpuShares = r.cpuShares;
  if ('CpusetCpus' in changed) out.cpusetCpus = r.cpusetCpus;
  if ('CpusetMems' in changed) out.cpusetMems = r.cpusetMems;
  if ('PidsLimit' in changed) out.pidsLimit = r.pidsLimit ?? 0;
  if ('BlkioWeight' in changed) out.blkioWeight = r.blkioWeight;
  return out;
}

function emptyBlkio(): Record<string, unknown> {
  return {
    io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
    io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
  };
}

/** Docker's parsePSOutput: the PID column finds the rows; the last column keeps its spaces. */
export function parsePs(output: string, pids: Set<number>): TopResult {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw invalidArgument('ps: no output');
  const titles = lines[0].trim().split(/\s+/);
  const pidIndex = titles.indexOf('PID');
  if (pidIndex < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
  const processes: string[][] = [];
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    const pid = Number(fields[pidIndex]);
    if (!pids.has(pid)) continue;
    processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
  }
  return { Titles: titles, Processes: processes };
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
