/**
 * Device nodes and device-cgroup rules: Docker's default allow list, `--device`,
 * `--device-cgroup-rule`, and the host's devices for `--privileged`.
 */
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errno, invalidArgument, notFound } from '../common/errors.ts';
import type { OciDevice, OciDeviceCgroup } from './oci-spec.ts';

/**
 * Docker's device cgroup: deny everything, then allow the devices every
 * container has (null, zero, full, random, urandom, tty, console, ptmx and
 * /dev/pts come from runc's own list), and deny fuse explicitly.
 */
export function defaultDeviceRules(): OciDeviceCgroup[] {
  const allow = (major: number, minor: number): OciDeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    allow(1, 5), // /dev/zero
    allow(1, 3), // /dev/null
    allow(1, 9), // /dev/urandom
    allow(1, 8), // /dev/random
    allow(5, 0), // /dev/tty
    allow(5, 1), // /dev/console
    { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // /dev/fuse
  ];
}

/** The major and minor numbers of a dev_t (glibc's encoding). */
export function splitDevT(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/** The device node at `hostPath`, described for the container at `containerPath`. */
export function deviceFromPath(hostPath: string, containerPath = hostPath): OciDevice {
  let st;
  try {
    st = statSync(hostPath, { bigint: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') throw notFound(`error gathering device information while adding custom device "${hostPath}": no such file or directory`, e);
    throw e;
  }
  let type: OciDevice['type'];
  if (st.isCharacterDevice()) type = 'c';
  else if (st.isBlockDevice()) type = 'b';
  else if (st.isFIFO()) type = 'p';
  else throw invalidArgument(`error gathering device information while adding custom device "${hostPath}": not a device node`);
  const { major, minor } = splitDevT(st.rdev);
  return { type, path: containerPath, major, minor, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) };
}

/** Directories of /dev runc and Docker never copy: they are mounted fresh in every container. */
const SKIP_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/** Every device node under /dev, as `--privileged` exposes them. */
export function hostDevices(dir = '/dev'): OciDevice[] {
  const out: OciDevice[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...hostDevices(p));
      continue;
    }
    if (p === '/dev/console' || !(st.isCharacterDevice() || st.isBlockDevice())) continue;
    try {
      out.push(deviceFromPath(p));
    } catch {
      // vanished while we looked
    }
  }
  return out;
}

/** A `--device` request: `/dev/sda:/dev/xvda:rwm` parsed. */
export interface DeviceMapping {
  pathOnHost: string;
  pathInContainer?: string;
  /** Some of `r`, `w`, `m`; `rwm` when absent. */
  cgroupPermissions?: string;
}

/** Device nodes and cgroup rules for `--device` mappings. */
export function resolveDevices(mappings: readonly DeviceMapping[]): { devices: OciDevice[]; rules: OciDeviceCgroup[] } {
  const devices: OciDevice[] = [];
  const rules: OciDeviceCgroup[] = [];
  for (const m of mappings) {
    const access = m.cgroupPermissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(access)) throw invalidArgument(`invalid device mode: ${access}`);
    const dev = deviceFromPath(m.pathOnHost, m.pathInContainer || m.pathOnHost);
    devices.push(dev);
    if (dev.type === 'c' || dev.type === 'b') rules.push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access });
  }
  return { devices, rules };
}

/** Parses a `--device-cgroup-rule` such as `c 1:3 mr` or `a *:* rwm`. */
export function parseDeviceCgroupRule(rule: string): OciDeviceCgroup {
  const m = /^([acb]) (\d+|\*):(\d+|\*) ([rwm]{1,3})$/.exec(rule.trim());
  if (!m) throw invalidArgument(`invalid device cgroup format '${rule}'`);
  const out: OciDeviceCgroup = { allow: true, type: m[1] as 'a' | 'c' | 'b', access: m[4] };
  if (m[2] !== '*') out.major = Number(m[2]);
  if (m[3] !== '*') out.minor = Number(m[3]);
  return out;
}
