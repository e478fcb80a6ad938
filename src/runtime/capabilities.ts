/**
 * Linux capabilities: the names the kernel knows, the host's bounding set, and
 * Docker's rules for turning `--privileged`, `--cap-add` and `--cap-drop` into
 * the set a container gets. berth never grants a capability the host's
 * bounding set lacks: runc could not raise it anyway, and asking would fail.
 */
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../common/errors.ts';

/** Every capability by its number (capability.h). */
export const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Docker's default set for an unprivileged container (oci/caps defaults). */
export const DEFAULT_CAPABILITIES: readonly Capability[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const KNOWN = new Set<string>(CAPABILITIES);

export function isCapability(name: string): name is Capability {
  return KNOWN.has(name);
}

/** Decodes a capability mask (the hex of /proc/<pid>/status `CapBnd:` and friends) into names, in number order. */
export function decodeCapMask(hex: string | bigint): Capability[] {
  const mask = typeof hex === 'bigint' ? hex : BigInt('0x' + hex.trim());
  const out: Capability[] = [];
  for (let i = 0; i < CAPABILITIES.length; i++) if ((mask >> BigInt(i)) & 1n) out.push(CAPABILITIES[i]);
  return out;
}

/** The mask of a set of names (unknown names are ignored). */
export function encodeCapMask(names: Iterable<string>): bigint {
  let mask = 0n;
  for (const n of names) {
    const i = (CAPABILITIES as readonly string[]).indexOf(n);
    if (i >= 0) mask |= 1n << BigInt(i);
  }
  return mask;
}

/** Parses one `CapXxx:` line of a /proc/<pid>/status text into names. */
export function capsFromStatus(statusText: string, field: 'CapBnd' | 'CapEff' | 'CapPrm' | 'CapInh' | 'CapAmb'): Capability[] {
  const m = new RegExp(`^${field}:\\s*([0-9a-fA-F]+)\\s*$`, 'm').exec(statusText);
  if (!m) throw invalidArgument(`no ${field} line in process status`);
  return decodeCapMask(m[1]);
}

/** The capability bounding set of this process: everything a container started from here can ever hold. */
export function hostBoundingSet(statusPath = '/proc/self/status'): Capability[] {
  return capsFromStatus(readFileSync(statusPath, 'utf8'), 'CapBnd');
}

/** `sys_admin`, `SYS_ADMIN`, `cap_sys_admin` → `CAP_SYS_ADMIN`; `all` → `ALL`. */
export function normalizeCapability(name: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

export interface CapabilityRequest {
  /** HostConfig.CapAdd: names with or without `CAP_`, any case, or `ALL`. */
  add?: readonly string[];
  /** HostConfig.CapDrop, same forms. */
  drop?: readonly string[];
  privileged?: boolean;
  /** The set to start from; Docker's default when absent. */
  base?: readonly string[];
}

/**
 * The capability list a container gets, following Docker's `TweakCapabilities`:
 * privileged → every capability; `--cap-add ALL` → every capability but the
 * dropped ones; `--cap-drop ALL` → only the added ones; otherwise base − drop + add.
 * "Every capability" means every one in the host's bounding set, and the
 * result is always intersected with it. Unknown names are refused as Docker
 * does (`unknown capability: "CAP_FOO"`), and so is an explicit `--cap-add`
 * of a capability the host does not hold.
 */
export function mergeCapabilities(req: CapabilityRequest, hostCaps: readonly string[]): Capability[] {
  const host = new Set(hostCaps);
  const all = CAPABILITIES.filter((c) => host.has(c));
  if (req.privileged) return all;
  const add = normalizeList(req.add ?? []);
  const drop = normalizeList(req.drop ?? []);
  for (const c of add) {
    if (c !== 'ALL' && !host.has(c)) {
      throw invalidArgument(`capability not supported by your kernel or not available in the current environment: "${c}"`);
    }
  }
  let caps: string[];
  if (add.includes('ALL')) caps = all.filter((c) => !drop.includes(c));
  else if (drop.includes('ALL')) caps = add;
  else caps = [...(req.base ?? DEFAULT_CAPABILITIES).filter((c) => !drop.includes(c)), ...add];
  const out: Capability[] = [];
  for (const c of caps) if (isCapability(c) && host.has(c) && !out.includes(c)) out.push(c);
  return out;
}

function normalizeList(names: readonly string[]): string[] {
  return names.map((n) => {
    const c = normalizeCapability(n);
    if (c !== 'ALL' && !isCapability(c)) throw invalidArgument(`unknown capability: "${c}"`);
    return c;
  });
}
