/**
 * What the host allows a container to have. The spec builder takes these as
 * plain data (tests pass made-up hosts); `readHostFacts()` reads the real ones.
 *
 * Everything here is inherited by runc from the daemon: a container can never
 * hold a capability outside our bounding set, nor raise an rlimit above our
 * hard limit, nor (without CAP_SYS_RESOURCE) lower its OOM score below ours.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { type Capability, capsFromStatus } from './capabilities.ts';

/** Largest value of an rlimit: RLIM_INFINITY (2^64 − 1). */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** An rlimit value: a number, or a bigint when it does not fit one (RLIM_INFINITY). */
export type RlimitValue = number | bigint;

export interface HostLimit {
  soft: RlimitValue;
  hard: RlimitValue;
}

export interface HostFacts {
  /** The capability bounding set of the daemon (CapBnd). */
  capabilities: readonly Capability[];
  /** The daemon's rlimits by OCI type name (`RLIMIT_NOFILE`…). Missing types are not clamped. */
  rlimits: Readonly<Record<string, HostLimit>>;
  cgroupVersion: 1 | 2;
  /** Go architecture name: `amd64`, `arm64`… */
  arch: string;
  /** Kernel release (`uname -r`). */
  kernel: string;
  /** The daemon's own oom_score_adj; without CAP_SYS_RESOURCE a container may not go below it. */
  oomScoreAdj: number;
  /** cgroup v1 `memory.memsw.*` exists (swap limits can be set). */
  swapAccounting: boolean;
  /** CPUs the daemon may use; bounds `--cpus`. */
  cpus: number;
}

/** /proc/self/limits row names → OCI rlimit type. */
const LIMIT_ROWS: Readonly<Record<string, string>> = {
  'Max cpu time': 'RLIMIT_CPU',
  'Max file size': 'RLIMIT_FSIZE',
  'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK',
  'Max core file size': 'RLIMIT_CORE',
  'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC',
  'Max open files': 'RLIMIT_NOFILE',
  'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS',
  'Max file locks': 'RLIMIT_LOCKS',
  'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE',
  'Max nice priority': 'RLIMIT_NICE',
  'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

/** Parses the text of /proc/<pid>/limits. */
export function parseProcLimits(text: string): Record<string, HostLimit> {
  const out: Record<string, HostLimit> = {};
  for (const line of text.split('\n')) {
    for (const [row, type] of Object.entries(LIMIT_ROWS)) {
      if (!line.startsWith(row + ' ')) continue;
      const [soft, hard] = line.slice(row.length).trim().split(/\s+/);
      out[type] = { soft: parseLimit(soft), hard: parseLimit(hard) };
    }
  }
  return out;
}

function parseLimit(v: string): RlimitValue {
  if (v === 'unlimited') return RLIM_INFINITY;
  const n = BigInt(v);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/** Compares two rlimit values. */
export function rlimitLess(a: RlimitValue, b: RlimitValue): boolean {
  return BigInt(a) < BigInt(b);
}

export function detectCgroupVersion(): 1 | 2 {
  return existsSync('/sys/fs/cgroup/cgroup.controllers') ? 2 : 1;
}

let cached: HostFacts | undefined;

/** Reads the host facts once per process (they do not change while the daemon runs). */
export function readHostFacts(refresh = false): HostFacts {
  if (cached && !refresh) return cached;
  const version = detectCgroupVersion();
  cached = {
    capabilities: capsFromStatus(readFileSync('/proc/self/status', 'utf8'), 'CapBnd'),
    rlimits: parseProcLimits(readFileSync('/proc/self/limits', 'utf8')),
    cgroupVersion: version,
    arch: process.arch === 'x64' ? 'amd64' : process.arch,
    kernel: release(),
    oomScoreAdj: Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim()),
    swapAccounting: version === 2 ? true : existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
    cpus: availableParallelism(),
  };
  return cached;
}
