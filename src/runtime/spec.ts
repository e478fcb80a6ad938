/**
 * Builds the OCI runtime `config.json` for a container the way Docker's daemon
 * does for runc: namespaces, standard mounts, Docker's capability set and
 * seccomp profile, masked and read-only paths, the device cgroup, resources and
 * rlimits. What the host cannot grant is left out rather than asked for:
 * capabilities are intersected with the daemon's bounding set and rlimits are
 * clamped to its hard limits (see host.ts).
 */
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { errno, invalidArgument } from '../common/errors.ts';
import { mergeCapabilities } from './capabilities.ts';
import { type DeviceMapping, defaultDeviceRules, hostDevices, parseDeviceCgroupRule, resolveDevices, splitDevT } from './devices.ts';
import { type HostFacts, RLIM_INFINITY, type RlimitValue, readHostFacts, rlimitLess } from './host.ts';
import {
  OCI_VERSION,
  type OciBlockIO,
  type OciCapabilities,
  type OciDevice,
  type OciDeviceCgroup,
  type OciMount,
  type OciNamespace,
  type OciProcess,
  type OciResources,
  type OciRlimit,
  type OciSpec,
  type OciThrottleDevice,
} from './oci-spec.ts';
import { defaultSeccomp, type OciSeccomp } from './seccomp.ts';
import type { ResolvedUser } from './user.ts';

export { resolveUser, type ResolvedUser } from './user.ts';

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Docker's /dev/shm size when none is asked for: 64 MiB. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
/** Docker's minimum for `--memory` and `--memory-reservation`: 6 MiB. */
export const MIN_MEMORY = 6 * 1024 * 1024;
/** The open-files limit Docker containers get by default (soft and hard), when the host allows it. */
export const DEFAULT_NOFILE = 1048576;
/** The CFS period `--cpus` uses: 100 ms. */
export const DEFAULT_CPU_PERIOD = 100_000;
/** Where `--init` puts its binary in the container. */
export const INIT_PATH = '/sbin/docker-init';

/** Docker 28's masked paths: read as empty (files) or an empty read-only tmpfs (directories). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Docker's read-only paths under /proc. */
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * How a namespace is had: `private` (a new one), `host` (the daemon's),
 * `{ path }` (this container's own, made beforehand, e.g. a netns the daemon
 * set up) or `{ join }` (another container's: `--network container:x`).
 */
export type NamespaceMode = 'private' | 'host' | { path: string } | { join: string };

export interface NamespaceOptions {
  /** Default private: a fresh netns with only `lo` up (runc brings it up). */
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  uts?: 'private' | 'host';
  /** Default as Docker: `host` on cgroup v1, `private` on v2. */
  cgroup?: 'private' | 'host';
}

export type Propagation = 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';

/** `-v /src:/dst[:ro]`, `--mount type=bind|volume` (a volume is a bind from its directory). */
export interface BindMountRequest {
  type: 'bind';
  source: string;
  destination: string;
  readonly?: boolean;
  /** Default `rprivate`. */
  propagation?: Propagation;
  /** `bind-nonrecursive`: a plain bind instead of `rbind`. */
  nonRecursive?: boolean;
  /** Further mount options (`nosuid`, `noexec`…). */
  options?: readonly string[];
}

/** `--tmpfs /dst[:opts]` or `--mount type=tmpfs`. */
export interface TmpfsMountRequest {
  type: 'tmpfs';
  destination: string;
  /** `--mount tmpfs-size`. */
  sizeBytes?: number;
  /** `--mount tmpfs-mode`. */
  mode?: number;
  readonly?: boolean;
  /** `--tmpfs` option text split on commas (`size=64m`, `exec`, `mode=1770`…). */
  options?: readonly string[];
}

export type MountRequest = BindMountRequest | TmpfsMountRequest;

/** HostConfig's resource fields, by Docker's names (bytes, nano-CPUs, microseconds). */
export interface ResourceOptions {
  memory?: number;
  /** Memory plus swap; -1 unlimited; 0/absent: twice `memory` (Docker's default) when swap limits work. */
  memorySwap?: number;
  memoryReservation?: number;
  /** 0–100; -1/absent leaves the kernel's. */
  memorySwappiness?: number;
  oomKillDisable?: boolean;
  /** `--cpus` × 1e9. */
  nanoCpus?: number;
  cpuShares?: number;
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuRealtimePeriod?: number;
  cpuRealtimeRuntime?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** > 0 a limit; 0 or -1 unlimited. */
  pidsLimit?: number;
  /** 10–1000; 0 unset. */
  blkioWeight?: number;
  blkioWeightDevice?: readonly { path: string; weight: number }[];
  blkioDeviceReadBps?: readonly ThrottleRequest[];
  blkioDeviceWriteBps?: readonly ThrottleRequest[];
  blkioDeviceReadIOps?: readonly ThrottleRequest[];
  blkioDeviceWriteIOps?: readonly ThrottleRequest[];
}

export interface ThrottleRequest {
  path: string;
  rate: number;
}

/** `--ulimit nofile=1024:2048`; -1 means unlimited. */
export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

export interface SpecOptions {
  /** The container ID: names the default cgroup. */
  id: string;
  /** Entrypoint + Cmd, already resolved. */
  args: readonly string[];
  /** Config.Env; PATH, HOSTNAME and (with a tty) TERM are filled in as Docker does. */
  env?: readonly string[];
  /** Config.WorkingDir; `/` by default. */
  cwd?: string;
  /** From `resolveUser()`; root by default. */
  user?: Pick<ResolvedUser, 'uid' | 'gid' | 'additionalGids'>;
  /** Process umask; runc's default (0022) when absent. */
  umask?: number;
  hostname?: string;
  domainname?: string;
  tty?: boolean;
  consoleSize?: { height: number; width: number };
  /** The mounted root filesystem (an absolute path, or relative to the bundle). */
  rootfs: string;
  readonlyRootfs?: boolean;
  mounts?: readonly MountRequest[];
  namespaces?: NamespaceOptions;
  /** Default `/berth/<id>` (cgroupfs driver: a path under every hierarchy). */
  cgroupsPath?: string;
  resources?: ResourceOptions;
  privileged?: boolean;
  capAdd?: readonly string[];
  capDrop?: readonly string[];
  noNewPrivileges?: boolean;
  /** `default` (berth's Docker-compatible profile), `unconfined`, or a materialised profile. Privileged implies unconfined. */
  seccomp?: 'default' | 'unconfined' | OciSeccomp;
  /** HostConfig.MaskedPaths / ReadonlyPaths; Docker's defaults when absent, none when privileged. */
  maskedPaths?: readonly string[];
  readonlyPaths?: readonly string[];
  /** /dev/shm: a tmpfs of this size (default 64 MiB), a bind of `source` (ipc host or shared), or none (`false`, ipc none). */
  shm?: { sizeBytes?: number } | { source: string } | false;
  devices?: readonly DeviceMapping[];
  deviceCgroupRules?: readonly string[];
  ulimits?: readonly Ulimit[];
  oomScoreAdj?: number;
  sysctls?: Readonly<Record<string, string>>;
  /** Host files bind-mounted at /etc/hosts, /etc/hostname and /etc/resolv.conf. */
  etcHosts?: string;
  etcHostname?: string;
  resolvConf?: string;
  /** An empty host file bind-mounted read-only at /.dockerenv. */
  dockerenv?: string;
  /** `--init`: a tini/catatonit binary bind-mounted at /sbin/docker-init and put in front of the args. */
  init?: string;
  annotations?: Readonly<Record<string, string>>;
  /** The host to build for; `readHostFacts()` when absent. */
  host?: HostFacts;
  /** Host devices for `--privileged`; /dev is read when absent. */
  hostDevices?: readonly OciDevice[];
}

/** The default cgroup path of a container under the cgroupfs driver: `/berth/<id>`. */
export function cgroupPath(id: string, parent = '/berth'): string {
  return posix.join('/', parent, id);
}

/**
 * Docker's container environment: PATH, HOSTNAME and (with a tty) TERM=xterm
 * first, then Config.Env replacing or appending by key.
 */
export function containerEnv(env: readonly string[] = [], hostname?: string, tty = false): string[] {
  const base = [DEFAULT_PATH_ENV];
  if (hostname) base.push(`HOSTNAME=${hostname}`);
  if (tty) base.push('TERM=xterm');
  return replaceOrAppendEnv(base, env);
}

/** Replaces `KEY=` entries of `base` by those of `over` and appends the rest; a bare `KEY` in `over` removes it. */
export function replaceOrAppendEnv(base: readonly string[], over: readonly string[]): string[] {
  const out = [...base];
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const e of over) {
    const k = key(e);
    const i = out.findIndex((x) => key(x) === k);
    if (!e.includes('=')) {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

// ---------------------------------------------------------------- validation

/**
 * Docker's checks on resource settings (daemon `verifyPlatformContainerResources`),
 * with its messages. Throws InvalidArgument.
 */
export function validateResources(r: ResourceOptions, host?: Pick<HostFacts, 'cpus'>): void {
  const mem = r.memory ?? 0;
  const swap = r.memorySwap ?? 0;
  const reservation = r.memoryReservation ?? 0;
  if (mem < 0) throw invalidArgument('Invalid value for memory limit: it can not be negative');
  if (mem !== 0 && mem < MIN_MEMORY) throw invalidArgument('Minimum memory limit allowed is 6MB');
  if (mem > 0 && swap > 0 && swap < mem) {
    throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  }
  if (mem === 0 && swap > 0) throw invalidArgument('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (r.memorySwappiness !== undefined && r.memorySwappiness !== -1 && (r.memorySwappiness < 0 || r.memorySwappiness > 100)) {
    throw invalidArgument(`Invalid value: ${r.memorySwappiness}, valid memory swappiness range is 0-100`);
  }
  if (reservation < 0) throw invalidArgument('Invalid value for memory reservation: it can not be negative');
  if (reservation !== 0 && reservation < MIN_MEMORY) throw invalidArgument('Minimum memory reservation allowed is 6MB');
  if (mem > 0 && reservation > 0 && mem < reservation) {
    throw invalidArgument('Minimum memory limit can not be less than memory reservation limit, see usage');
  }
  const nano = r.nanoCpus ?? 0;
  if (nano !== 0 && r.cpuPeriod) throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano !== 0 && r.cpuQuota) throw invalidArgument('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nano < 0) throw invalidArgument('Range of CPUs is from 0.01 to the number of CPUs available');
  if (host && nano > host.cpus * 1e9) {
    throw invalidArgument(`Range of CPUs is from 0.01 to ${host.cpus}.00, as there are only ${host.cpus} CPUs available`);
  }
  if (nano > 0 && (nano * DEFAULT_CPU_PERIOD) / 1e9 < 1000) throw invalidArgument('Range of CPUs is from 0.01 to the number of CPUs available');
  if (r.cpuPeriod && (r.cpuPeriod < 1000 || r.cpuPeriod > 1_000_000)) {
    throw invalidArgument('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  }
  if (r.cpuQuota && r.cpuQuota > 0 && r.cpuQuota < 1000) throw invalidArgument('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (r.cpuShares !== undefined && r.cpuShares < 0) throw invalidArgument('Invalid value for CPU shares: it can not be negative');
  if (r.cpusetCpus && !isCpuList(r.cpusetCpus)) throw invalidArgument(`Invalid value ${r.cpusetCpus} for cpuset cpus`);
  if (r.cpusetMems && !isCpuList(r.cpusetMems)) throw invalidArgument(`Invalid value ${r.cpusetMems} for cpuset mems`);
  if (r.blkioWeight && (r.blkioWeight < 10 || r.blkioWeight > 1000)) throw invalidArgument('Range of blkio weight is from 10 to 1000');
  for (const d of r.blkioWeightDevice ?? []) {
    if (d.weight < 10 || d.weight > 1000) throw invalidArgument(`invalid weight for device: ${d.path}: range of blkio weight is from 10 to 1000`);
  }
}

/** `0-3,5` style lists. */
function isCpuList(s: string): boolean {
  return s.split(',').every((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    return m !== null && (m[2] === undefined || Number(m[2]) >= Number(m[1]));
  });
}

/** The host-dependent defaults Docker fills in: swap twice the memory, and no swap limit when the kernel cannot. */
export function adaptResources(r: ResourceOptions, host: Pick<HostFacts, 'swapAccounting'>): { resources: ResourceOptions; warnings: string[] } {
  const out: ResourceOptions = { ...r };
  const warnings: string[] = [];
  if ((out.memory ?? 0) > 0 && !out.memorySwap) out.memorySwap = (out.memory as number) * 2;
  if (!host.swapAccounting && out.memorySwap !== undefined && out.memorySwap !== 0) {
    if (out.memorySwap > 0) warnings.push('Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.');
    out.memorySwap = -1;
  }
  return { resources: out, warnings };
}

const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/** Only namespaced sysctls, and only when the container has its own namespace for them (runc's rules). */
export function validateSysctls(sysctls: Readonly<Record<string, string>>, ns: NamespaceOptions = {}): void {
  for (const key of Object.keys(sysctls)) {
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
      if (ns.ipc === 'host') throw invalidArgument(`sysctl "${key}" not allowed in host IPC namespace`);
    } else if (key.startsWith('net.')) {
      if (ns.network === 'host') throw invalidArgument(`sysctl "${key}" not allowed in host network namespace`);
    } else if (key === 'kernel.domainname' || key === 'kernel.hostname') {
      if (ns.uts === 'host') throw invalidArgument(`sysctl "${key}" not allowed in host UTS namespace`);
    } else {
      throw invalidArgument(`sysctl "${key}" is not in a separate kernel namespace`);
    }
  }
}

// ---------------------------------------------------------------- pieces

/** Docker ulimit names → OCI rlimit types. */
const ULIMIT_TYPES: Readonly<Record<string, string>> = {
  as: 'RLIMIT_AS',
  core: 'RLIMIT_CORE',
  cpu: 'RLIMIT_CPU',
  data: 'RLIMIT_DATA',
  fsize: 'RLIMIT_FSIZE',
  locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK',
  msgqueue: 'RLIMIT_MSGQUEUE',
  nice: 'RLIMIT_NICE',
  nofile: 'RLIMIT_NOFILE',
  nproc: 'RLIMIT_NPROC',
  rss: 'RLIMIT_RSS',
  rtprio: 'RLIMIT_RTPRIO',
  rttime: 'RLIMIT_RTTIME',
  sigpending: 'RLIMIT_SIGPENDING',
  stack: 'RLIMIT_STACK',
};

const minLimit = (a: RlimitValue, b: RlimitValue): RlimitValue => (rlimitLess(b, a) ? b : a);

/**
 * The rlimits for `--ulimit`s, each clamped (soft and hard) to the host's hard
 * limit, since a process without CAP_SYS_RESOURCE cannot raise it and runc
 * would fail. Without a `nofile` ulimit, Docker's default (1048576) is set
 * only if the host allows it; otherwise the daemon's own limit is inherited.
 */
export function buildRlimits(ulimits: readonly Ulimit[], host: Pick<HostFacts, 'rlimits'>): OciRlimit[] {
  const out: OciRlimit[] = [];
  const seen = new Set<string>();
  for (const u of ulimits) {
    const type = ULIMIT_TYPES[u.name.toLowerCase()];
    if (!type) throw invalidArgument(`invalid ulimit type: ${u.name}`);
    const soft: RlimitValue = u.soft < 0 ? RLIM_INFINITY : u.soft;
    const hard: RlimitValue = u.hard < 0 ? RLIM_INFINITY : u.hard;
    if (rlimitLess(hard, soft)) throw invalidArgument(`ulimit soft limit must be less than or equal to hard limit: ${u.soft} > ${u.hard}`);
    const cap = host.rlimits[type]?.hard;
    const h = cap === undefined ? hard : minLimit(hard, cap);
    const entry = { type, soft: minLimit(soft, h), hard: h };
    const i = out.findIndex((r) => r.type === type);
    if (i >= 0) out[i] = entry;
    else out.push(entry);
    seen.add(type);
  }
  if (!seen.has('RLIMIT_NOFILE')) {
    const cap = host.rlimits.RLIMIT_NOFILE?.hard;
    if (cap === undefined || !rlimitLess(cap, DEFAULT_NOFILE)) out.push({ type: 'RLIMIT_NOFILE', soft: DEFAULT_NOFILE, hard: DEFAULT_NOFILE });
  }
  return out;
}

/** Capability sets for the process: all three of bounding/permitted/effective for root; only bounding for other users. */
export function processCapabilities(caps: readonly string[], uid: number): OciCapabilities {
  const list = [...caps];
  return uid === 0
    ? { bounding: list, effective: [...list], permitted: [...list], inheritable: [], ambient: [] }
    : { bounding: list, effective: [], permitted: [], inheritable: [], ambient: [] };
}

function deviceNumbers(path: string): { major: number; minor: number } {
  try {
    return splitDevT(statSync(path, { bigint: true }).rdev);
  } catch (e) {
    if (errno(e) === 'ENOENT') throw invalidArgument(`${path}: no such device`, e);
    throw e;
  }
}

const throttle = (list?: readonly ThrottleRequest[]): OciThrottleDevice[] | undefined =>
  list?.length ? list.map((t) => ({ ...deviceNumbers(t.path), rate: t.rate })) : undefined;

/**
 * The OCI `linux.resources` (without devices) for Docker's settings. Also what
 * `runc update` takes. Values that are unset stay out, so an update leaves them.
 */
export function resourcesToOci(r: ResourceOptions): OciResources {
  const out: OciResources = {};
  const memory: NonNullable<OciResources['memory']> = {};
  if (r.memory) memory.limit = r.memory;
  if (r.memoryReservation) memory.reservation = r.memoryReservation;
  if (r.memorySwap) memory.swap = r.memorySwap;
  if (r.memorySwappiness !== undefined && r.memorySwappiness >= 0) memory.swappiness = r.memorySwappiness;
  if (r.oomKillDisable !== undefined) memory.disableOOMKiller = r.oomKillDisable;
  if (Object.keys(memory).length) out.memory = memory;

  const cpu: NonNullable<OciResources['cpu']> = {};
  if (r.cpuShares) cpu.shares = r.cpuShares;
  if (r.nanoCpus) {
    cpu.period = DEFAULT_CPU_PERIOD;
    cpu.quota = Math.round((r.nanoCpus * DEFAULT_CPU_PERIOD) / 1e9);
  } else {
    if (r.cpuPeriod) cpu.period = r.cpuPeriod;
    if (r.cpuQuota) cpu.quota = r.cpuQuota;
  }
  if (r.cpuRealtimePeriod) cpu.realtimePeriod = r.cpuRealtimePeriod;
  if (r.cpuRealtimeRuntime) cpu.realtimeRuntime = r.cpuRealtimeRuntime;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length) out.cpu = cpu;

  if (r.pidsLimit !== undefined && r.pidsLimit !== null) out.pids = { limit: r.pidsLimit > 0 ? r.pidsLimit : -1 };

  const blkio: OciBlockIO = {};
  if (r.blkioWeight) blkio.weight = r.blkioWeight;
  if (r.blkioWeightDevice?.length) blkio.weightDevice = r.blkioWeightDevice.map((d) => ({ ...deviceNumbers(d.path), weight: d.weight }));
  const t = {
    throttleReadBpsDevice: throttle(r.blkioDeviceReadBps),
    throttleWriteBpsDevice: throttle(r.blkioDeviceWriteBps),
    throttleReadIOPSDevice: throttle(r.blkioDeviceReadIOps),
    throttleWriteIOPSDevice: throttle(r.blkioDeviceWriteIOps),
  };
  for (const [k, v] of Object.entries(t)) if (v) blkio[k as keyof typeof t] = v;
  if (Object.keys(blkio).length) out.blockIO = blkio;
  return out;
}

/** Merges Docker's default tmpfs flags with the asked ones: later flags win (`exec` undoes `noexec`), later `key=` values win. */
export function mergeTmpfsOptions(options: readonly string[]): string[] {
  const opposites: Record<string, string> = {
    exec: 'noexec', noexec: 'exec', suid: 'nosuid', nosuid: 'suid', dev: 'nodev', nodev: 'dev',
    ro: 'rw', rw: 'ro', atime: 'noatime', noatime: 'atime', diratime: 'nodiratime', nodiratime: 'diratime',
    relatime: 'norelatime', norelatime: 'relatime', strictatime: 'nostrictatime', nostrictatime: 'strictatime',
  };
  const out: string[] = [];
  for (const raw of options) {
    const o = raw.trim();
    if (!o) continue;
    const eq = o.indexOf('=');
    if (eq > 0) {
      const k = o.slice(0, eq + 1);
      const i = out.findIndex((x) => x.startsWith(k));
      if (i >= 0) out.splice(i, 1);
    } else {
      const i = out.findIndex((x) => x === o || x === opposites[o]);
      if (i >= 0) out.splice(i, 1);
    }
    out.push(o);
  }
  return out;
}

function tmpfsSizeOption(o: string): string {
  // `--tmpfs /x:size=64m` takes Docker's units; the kernel takes k/m/g too, but not `b` or `mb`.
  const m = /^size=(\d+)([kKmMgG]?)[bB]?$/.exec(o);
  return m ? `size=${m[1]}${m[2].toLowerCase()}` : o;
}

/** A clean absolute container path: `/srv/` and `/srv/./` are `/srv`. */
function cleanPath(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function userMount(m: MountRequest): OciMount {
  const destination = cleanPath(m.destination);
  if (!posix.isAbsolute(destination)) throw invalidArgument(`invalid mount config: mount path must be absolute: ${m.destination}`);
  if (m.type === 'bind') {
    const options = [m.nonRecursive ? 'bind' : 'rbind', m.propagation ?? 'rprivate', ...(m.options ?? [])];
    if (m.readonly) options.push('ro');
    return { destination, type: 'bind', source: m.source, options };
  }
  const extra: string[] = [];
  if (m.sizeBytes) extra.push(`size=${Math.ceil(m.sizeBytes / 1024)}k`);
  if (m.mode !== undefined) extra.push(`mode=${m.mode.toString(8)}`);
  if (m.readonly) extra.push('ro');
  const options = mergeTmpfsOptions(['noexec', 'nosuid', 'nodev', ...extra, ...(m.options ?? []).map(tmpfsSizeOption)]);
  return { destination, type: 'tmpfs', source: 'tmpfs', options: ['rprivate', ...options] };
}

const depth = (p: string) => cleanPath(p).split('/').filter(Boolean).length;

function namespace(type: OciNamespace['type'], mode: NamespaceMode | undefined): OciNamespace | undefined {
  if (mode === 'host') return undefined;
  if (mode === undefined || mode === 'private') return { type };
  return { type, path: 'path' in mode ? mode.path : mode.join };
}

// ---------------------------------------------------------------- the spec

/** Builds the runtime spec. Throws InvalidArgument for settings Docker refuses. */
export function buildSpec(opts: SpecOptions): OciSpec {
  if (!opts.args.length) throw invalidArgument('No command specified');
  const host = opts.host ?? readHostFacts();
  const ns = opts.namespaces ?? {};
  const privileged = opts.privileged === true;
  const user = opts.user ?? { uid: 0, gid: 0, additionalGids: [] };
  const res = adaptResources(opts.resources ?? {}, host).resources;
  validateResources(res, host);
  if (opts.sysctls) validateSysctls(opts.sysctls, ns);

  // Process
  const caps = mergeCapabilities({ add: opts.capAdd, drop: opts.capDrop, privileged }, host.capabilities);
  const args = opts.init ? [INIT_PATH, '--', ...opts.args] : [...opts.args];
  const utsPrivate = ns.uts !== 'host';
  const process: OciProcess = {
    terminal: opts.tty === true,
    user: { uid: user.uid, gid: user.gid },
    args,
    env: containerEnv(opts.env, opts.hostname, opts.tty),
    cwd: opts.cwd || '/',
    capabilities: processCapabilities(caps, user.uid),
  };
  if (opts.consoleSize && opts.tty) process.consoleSize = opts.consoleSize;
  if (user.additionalGids.length) process.user.additionalGids = [...user.additionalGids];
  if (opts.umask !== undefined) process.user.umask = opts.umask;
  const rlimits = buildRlimits(opts.ulimits ?? [], host);
  if (rlimits.length) process.rlimits = rlimits;
  if (opts.noNewPrivileges) process.noNewPrivileges = true;
  if (opts.oomScoreAdj !== undefined) {
    if (opts.oomScoreAdj < -1000 || opts.oomScoreAdj > 1000) {
      throw invalidArgument(`Invalid value ${opts.oomScoreAdj}, range for oom score adj is [-1000, 1000]`);
    }
    // Lowering the score below the daemon's needs CAP_SYS_RESOURCE.
    const canLower = host.capabilities.includes('CAP_SYS_RESOURCE');
    process.oomScoreAdj = canLower ? opts.oomScoreAdj : Math.max(opts.oomScoreAdj, host.oomScoreAdj);
  }

  // Mounts: the standard set, minus what the user mounts over.
  const userMounts = (opts.mounts ?? []).map(userMount);
  const userDest = new Set(userMounts.map((m) => m.destination));
  const overDev = userDest.has('/dev');
  const cgroupMode = ns.cgroup ?? (host.cgroupVersion === 1 ? 'host' : 'private');
  const standard: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [privileged ? 'rw' : 'ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  const shm = opts.shm ?? {};
  if (shm !== false) {
    if ('source' in shm) standard.push({ destination: '/dev/shm', type: 'bind', source: shm.source, options: ['rbind', 'rprivate'] });
    else {
      const size = shm.sizeBytes ?? DEFAULT_SHM_SIZE;
      if (size < 0) throw invalidArgument('SHM size can not be less than 0');
      standard.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${size}`] });
    }
  }
  const mounts = standard.filter((m) => !userDest.has(m.destination) && !(overDev && m.destination.startsWith('/dev/')));

  const extra: OciMount[] = [...userMounts];
  const etcOptions = ['rbind', 'rprivate', ...(opts.readonlyRootfs ? ['ro'] : [])];
  const etc: [string | undefined, string][] = [
    [opts.resolvConf, '/etc/resolv.conf'],
    [opts.etcHostname, '/etc/hostname'],
    [opts.etcHosts, '/etc/hosts'],
  ];
  for (const [source, destination] of etc) {
    if (source && !userDest.has(destination)) extra.push({ destination, type: 'bind', source, options: [...etcOptions] });
  }
  if (opts.dockerenv) extra.push({ destination: '/.dockerenv', type: 'bind', source: opts.dockerenv, options: ['rbind', 'rprivate', 'ro'] });
  if (opts.init) extra.push({ destination: INIT_PATH, type: 'bind', source: opts.init, options: ['bind', 'ro'] });
  // Parents before children, otherwise in the order given.
  extra.sort((a, b) => depth(a.destination) - depth(b.destination));
  mounts.push(...extra);

  // Namespaces
  const namespaces: OciNamespace[] = [{ type: 'mount' }];
  for (const n of [
    namespace('network', ns.network),
    namespace('uts', ns.uts),
    namespace('pid', ns.pid),
    namespace('ipc', ns.ipc),
    namespace('cgroup', cgroupMode),
  ]) {
    if (n) namespaces.push(n);
  }

  // Sysctls: Docker lets unprivileged users bind low ports and ping in a container's own network namespace.
  const sysctl: Record<string, string> = {};
  const net = ns.network ?? 'private';
  if (net === 'private' || (typeof net === 'object' && 'path' in net)) {
    sysctl['net.ipv4.ip_unprivileged_port_start'] = '0';
    sysctl['net.ipv4.ping_group_range'] = '0 2147483647';
  }
  Object.assign(sysctl, opts.sysctls ?? {});

  // Devices
  let devices: OciDevice[] = [];
  let deviceRules: OciDeviceCgroup[];
  if (privileged) {
    devices = [...(opts.hostDevices ?? hostDevices())];
    deviceRules = [{ allow: true, access: 'rwm' }];
  } else {
    deviceRules = defaultDeviceRules();
  }
  if (opts.devices?.length) {
    const requested = resolveDevices(opts.devices);
    const have = new Set(devices.map((d) => d.path));
    for (const d of requested.devices) if (!have.has(d.path)) devices.push(d);
    if (!privileged) deviceRules.push(...requested.rules);
  }
  if (!privileged) for (const r of opts.deviceCgroupRules ?? []) deviceRules.push(parseDeviceCgroupRule(r));

  const resources: OciResources = { devices: deviceRules, ...resourcesToOci(res) };

  const seccompMode = privileged ? 'unconfined' : (opts.seccomp ?? 'default');
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process,
    root: { path: opts.rootfs, readonly: opts.readonlyRootfs === true },
    mounts,
    linux: {
      namespaces,
      devices,
      cgroupsPath: opts.cgroupsPath ?? cgroupPath(opts.id),
      resources,
      maskedPaths: privileged ? [] : [...(opts.maskedPaths ?? DEFAULT_MASKED_PATHS)],
      readonlyPaths: privileged ? [] : [...(opts.readonlyPaths ?? DEFAULT_READONLY_PATHS)],
    },
  };
  if (utsPrivate && opts.hostname) spec.hostname = opts.hostname;
  if (utsPrivate && opts.domainname) spec.domainname = opts.domainname;
  if (Object.keys(sysctl).length) spec.linux.sysctl = sysctl;
  if (seccompMode === 'default') spec.linux.seccomp = defaultSeccomp(caps, host.arch, host.kernel);
  else if (seccompMode !== 'unconfined') spec.linux.seccomp = seccompMode;
  const propagations = userMounts.flatMap((m) => m.options ?? []);
  if (propagations.some((o) => o === 'shared' || o === 'rshared')) spec.linux.rootfsPropagation = 'rshared';
  else if (propagations.some((o) => o === 'slave' || o === 'rslave')) spec.linux.rootfsPropagation = 'rslave';
  if (opts.annotations) spec.annotations = { ...opts.annotations };
  return spec;
}

/** What `runc exec --process` runs: a process in a container built from its spec, as `docker exec` asks. */
export interface ExecOptions {
  args: readonly string[];
  /** Added to the container's environment (replacing by key). */
  env?: readonly string[];
  cwd?: string;
  user?: Pick<ResolvedUser, 'uid' | 'gid' | 'additionalGids'>;
  tty?: boolean;
  consoleSize?: { height: number; width: number };
  /** `docker exec --privileged`: every capability the host has. */
  privileged?: boolean;
  host?: HostFacts;
}

export function buildExecProcess(spec: OciSpec, e: ExecOptions): OciProcess {
  if (!e.args.length) throw invalidArgument('No exec command specified');
  const base = spec.process;
  const user = e.user ?? { uid: base.user.uid, gid: base.user.gid, additionalGids: base.user.additionalGids ?? [] };
  const caps = e.privileged ? mergeCapabilities({ privileged: true }, (e.host ?? readHostFacts()).capabilities) : base.capabilities.bounding;
  const env = replaceOrAppendEnv(base.env, e.tty ? ['TERM=xterm', ...(e.env ?? [])] : (e.env ?? []));
  const p: OciProcess = {
    terminal: e.tty === true,
    user: { uid: user.uid, gid: user.gid },
    args: [...e.args],
    env,
    cwd: e.cwd || base.cwd,
    capabilities: processCapabilities(caps, user.uid),
  };
  if (user.additionalGids.length) p.user.additionalGids = [...user.additionalGids];
  if (e.consoleSize && e.tty) p.consoleSize = e.consoleSize;
  if (base.rlimits) p.rlimits = base.rlimits.map((r) => ({ ...r }));
  if (base.noNewPrivileges) p.noNewPrivileges = true;
  if (base.apparmorProfile) p.apparmorProfile = base.apparmorProfile;
  return p;
}
