/**
 * Reading a container's cgroup: the numbers `docker stats` shows, and the
 * freezer state. cgroup v1 (one hierarchy per controller under
 * /sys/fs/cgroup/<controller>/<path>) and v2 (one unified tree).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** Whether the host runs the unified (v2) hierarchy. */
export function cgroupV2(root = CGROUP_ROOT): boolean {
  return existsSync(join(root, 'cgroup.controllers'));
}

/** Where a controller's files of the cgroup `path` live. */
export function cgroupDir(controller: string, path: string, root = CGROUP_ROOT): string {
  return cgroupV2(root) ? join(root, path) : join(root, controller, path);
}

export interface CgroupStats {
  cpu: { total: number; perCpu: number[]; user: number; system: number; periods: number; throttledPeriods: number; throttledTime: number };
  memory: { usage: number; maxUsage: number; limit: number; failcnt: number; stats: Record<string, number> };
  pids: { current: number; limit: number };
  /** Bytes read and written per device. */
  blkio: { major: number; minor: number; op: string; value: number }[];
}

const text = (p: string) => readFile(p, 'utf8').catch(() => '');
const num = async (p: string) => {
  const t = (await text(p)).trim();
  return t === '' || t === 'max' ? 0 : Number(t);
};

function keyValues(t: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of t.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** One reading of the cgroup's counters (nanoseconds for CPU, bytes for memory and I/O). */
export async function readCgroupStats(path: string, root = CGROUP_ROOT): Promise<CgroupStats> {
  return cgroupV2(root) ? readV2(join(root, path)) : readV1(path, root);
}

async function readV1(path: string, root: string): Promise<CgroupStats> {
  const d = (c: string, f: string) => join(root, c, path, f);
  const [total, perCpuText, acctStat, throttle, usage, maxUsage, limit, failcnt, memStat, pidsCur, pidsMax, blkio] = await Promise.all([
    num(d('cpuacct', 'cpuacct.usage')), text(d('cpuacct', 'cpuacct.usage_percpu')), text(d('cpuacct', 'cpuacct.stat')), text(d('cpu', 'cpu.stat')),
    num(d('memory', 'memory.usage_in_bytes')), num(d('memory', 'memory.max_usage_in_bytes')), num(d('memory', 'memory.limit_in_bytes')),
    num(d('memory', 'memory.failcnt')), text(d('memory', 'memory.stat')), num(d('pids', 'pids.current')), text(d('pids', 'pids.max')),
    text(d('blkio', 'blkio.throttle.io_service_bytes_recursive')).then((t) => t || text(d('blkio', 'blkio.throttle.io_service_bytes'))),
  ]);
  const acct = keyValues(acctStat);
  const th = keyValues(throttle);
  const tick = 1e9 / 100; // USER_HZ
  const blk: CgroupStats['blkio'] = [];
  for (const line of blkio.split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
    if (m && m[3] !== 'Total') blk.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3].toLowerCase(), value: Number(m[4]) });
  }
  return {
    cpu: {
      total, perCpu: perCpuText.trim().split(/\s+/).filter(Boolean).map(Number), user: (acct.user ?? 0) * tick, system: (acct.system ?? 0) * tick,
      periods: th.nr_periods ?? 0, throttledPeriods: th.nr_throttled ?? 0, throttledTime: th.throttled_time ?? 0,
    },
    memory: { usage, maxUsage, limit, failcnt, stats: keyValues(memStat) },
    pids: { current: pidsCur, limit: /^\d+$/.test(pidsMax.trim()) ? Number(pidsMax.trim()) : 0 },
    blkio: blk,
  };
}

async function readV2(dir: string): Promise<CgroupStats> {
  const f = (name: string) => join(dir, name);
  const [cpuStat, usage, peak, limit, memStat, events, pidsCur, pidsMax, io] = await Promise.all([
    text(f('cpu.stat')), num(f('memory.current')), num(f('memory.peak')), num(f('memory.max')), text(f('memory.stat')), text(f('memory.events')),
    num(f('pids.current')), num(f('pids.max')), text(f('io.stat')),
  ]);
  const cpu = keyValues(cpuStat);
  const blk: CgroupStats['blkio'] = [];
  for (const line of io.split('\n')) {
    const m = /^(\d+):(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const kv = Object.fromEntries(m[3].split(' ').map((p) => p.split('=') as [string, string]));
    blk.push({ major: Number(m[1]), minor: Number(m[2]), op: 'read', value: Number(kv.rbytes ?? 0) });
    blk.push({ major: Number(m[1]), minor: Number(m[2]), op: 'write', value: Number(kv.wbytes ?? 0) });
  }
  return {
    cpu: {
      total: (cpu.usage_usec ?? 0) * 1000, perCpu: [], user: (cpu.user_usec ?? 0) * 1000, system: (cpu.system_usec ?? 0) * 1000,
      periods: cpu.nr_periods ?? 0, throttledPeriods: cpu.nr_throttled ?? 0, throttledTime: (cpu.throttled_usec ?? 0) * 1000,
    },
    memory: { usage, maxUsage: peak, limit, failcnt: keyValues(events).max ?? 0, stats: keyValues(memStat) },
    pids: { current: pidsCur, limit: pidsMax },
    blkio: blk,
  };
}

/** The host's total CPU time in nanoseconds from /proc/stat, as Docker's `system_cpu_usage`. */
export async function systemCpuUsage(): Promise<number> {
  const line = (await text('/proc/stat')).split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((a, b) => a + Number(b), 0);
  return ticks * (1e9 / 100);
}

/** `FROZEN`, `FREEZING` or `THAWED` (v1 freezer.state; v2 cgroup.freeze). */
export async function freezerState(path: string, root = CGROUP_ROOT): Promise<string> {
  if (cgroupV2(root)) return (await text(join(root, path, 'cgroup.freeze'))).trim() === '1' ? 'FROZEN' : 'THAWED';
  return (await text(join(root, 'freezer', path, 'freezer.state'))).trim();
}
