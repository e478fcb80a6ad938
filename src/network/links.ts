/**
 * Network devices through iproute2's `ip`: bridges on the host, veth pairs
 * into container network namespaces. Each change is one `ip -batch` run per
 * namespace, so wiring a container costs two short execs.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { type Cidr, parseCidr } from './ipam.ts';

const exec = promisify(execFile);

/** Runs `ip -batch -` (in the network namespace of `pid` when given) with one command a line. */
function ipBatch(lines: readonly string[], pid?: number): Promise<void> {
  const [cmd, args] = pid === undefined ? ['ip', ['-batch', '-']] : ['nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-batch', '-']];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args as string[], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ip: ${err.trim().replace(/\s+/g, ' ') || `exit ${code}`}`))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** The IPv4 addresses (with prefix) on a host device. */
export async function linkAddresses(name: string): Promise<string[]> {
  const { stdout } = await exec('ip', ['-j', '-4', 'addr', 'show', 'dev', name]);
  const list = JSON.parse(stdout || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[];
  return list.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/**
 * Makes the bridge if it is missing and gives it `gatewayCidr` (`172.18.0.1/16`).
 * route_localnet lets traffic to 127.0.0.1 that iptables sends to a container
 * leave through it: published ports answer on loopback without a proxy.
 *
 * The bridge's MAC address is pinned to `mac` (derived from the gateway address,
 * so it is the same from one start to the next). Left to the kernel, a bridge takes the lowest MAC of
 * its ports, so plugging or unplugging any container would change the
 * gateway's MAC under the other containers' ARP caches, and their traffic to
 * the gateway (DNS, the outside) would stall until the entries expire.
 */
export async function ensureBridge(name: string, gatewayCidr: string, mac: string): Promise<void> {
  const lines: string[] = [];
  if (!linkExists(name)) lines.push(`link add name ${name} type bridge`, `link set ${name} address ${mac}`);
  else if ((await readFile(`/sys/class/net/${name}/addr_assign_type`, 'utf8')).trim() !== NET_ADDR_SET) {
    // Not pinned yet (a bridge from before pinning, or made by hand). Its current address may be the
    // all-zero one of a bridge without ports, which no neighbour can answer: take the stable one.
    lines.push(`link set ${name} address ${mac}`);
  }
  const have = linkExists(name) ? await linkAddresses(name) : [];
  if (!have.includes(gatewayCidr)) lines.push(`addr add ${gatewayCidr} dev ${name}`);
  lines.push(`link set ${name} up`);
  await ipBatch(lines);
  await writeFile(`/proc/sys/net/ipv4/conf/${name}/route_localnet`, '1');
}

/** /sys/class/net/<dev>/addr_assign_type of an address set by hand, which the bridge then keeps. */
const NET_ADDR_SET = '3';

export async function deleteLink(name: string): Promise<void> {
  if (linkExists(name)) await ipBatch([`link del ${name}`]);
}

/** Lets the host route between container networks and the world (Docker does the same at start). */
export async function enableForwarding(): Promise<void> {
  if ((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() !== '1') await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
}

export interface VethPlug {
  /** The container's init: its network namespace is /proc/<pid>/ns/net. */
  pid: number;
  bridge: string;
  hostIfname: string;
  /** The name inside the container: eth0, eth1, ... */
  ifname: string;
  /** `172.18.0.2/16`. */
  address: string;
  mac: string;
  /** Set for the container's first network: its default route. */
  gateway?: string;
  /**
   * For the interface that published ports lead to: the container reaches its own
   * ports through the host. The DNATed frame goes back out of the bridge port it
   * came in by, which a bridge does only in hairpin mode.
   */
  hairpin?: boolean;
}

/** A veth pair: one end on the bridge, the other in the container as `ifname`, addressed and up. */
export async function plugVeth(p: VethPlug): Promise<void> {
  await ipBatch([
    `link add name ${p.hostIfname} type veth peer name ${p.ifname} address ${p.mac} netns ${p.pid}`,
    `link set ${p.hostIfname} master ${p.bridge} up`,
    ...(p.hairpin ? [`link set ${p.hostIfname} type bridge_slave hairpin on`] : []),
  ]);
  await ipBatch([
    `addr add ${p.address} dev ${p.ifname}`,
    `link set ${p.ifname} up`,
    ...(p.gateway ? [`route add default via ${p.gateway} dev ${p.ifname}`] : []),
  ], p.pid);
}

/** Takes a container's interface away (network disconnect); its host end goes with it. */
export async function unplugVeth(pid: number, ifname: string): Promise<void> {
  await ipBatch([`link del ${ifname}`], pid);
}

/** The IPv4 destinations the host already routes to: new subnets must not overlap them. */
export async function hostRoutes(): Promise<Cidr[]> {
  const { stdout } = await exec('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  const out: Cidr[] = [];
  for (const r of JSON.parse(stdout || '[]') as { dst: string; type?: string }[]) {
    if (r.dst === 'default' || (r.type && r.type !== 'unicast')) continue;
    try {
      out.push(parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`));
    } catch { /* not an IPv4 destination */ }
  }
  return out;
}
