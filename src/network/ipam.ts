/**
 * IPv4 address management: CIDR arithmetic, subnet choice and address
 * allocation. Pure functions; what is taken is the caller's (the store's)
 * to know, so an address is never handed out twice across restarts.
 */
import { invalidArgument } from '../common/errors.ts';

export interface Cidr {
  /** The network address, as a 32-bit unsigned number. */
  base: number;
  prefix: number;
}

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** `10.1.0.0/16`; a host address with a prefix (`10.1.0.1/16`) keeps its network part only when `strict` is off. */
export function parseCidr(s: string, opts: { strict?: boolean } = {}): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s);
  const ip = m ? parseIp(m[1]) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) throw invalidArgument(`invalid CIDR address: ${s}`);
  const base = (ip & mask(prefix)) >>> 0;
  if (opts.strict && base !== ip) throw invalidArgument(`invalid subnet ${s}: it should be ${formatCidr({ base, prefix })}`);
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.base) || contains(b, a.base);
}

/** The first usable host address of a subnet: Docker's default gateway. */
export function firstHost(c: Cidr): number {
  return c.prefix >= 31 ? c.base : c.base + 1;
}

/**
 * The lowest free address of `range` (the subnet, or a narrower --ip-range)
 * that is not in `taken`, the network address or the broadcast address.
 */
export function allocate(subnet: Cidr, range: Cidr, taken: ReadonlySet<number>): number | undefined {
  const broadcast = subnet.base + size(subnet) - 1;
  const end = range.base + size(range);
  for (let ip = range.base; ip < end; ip++) {
    if (ip === subnet.base || ip === broadcast || taken.has(ip)) continue;
    return ip;
  }
  return undefined;
}

/**
 * Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/16 in
 * /20s. A pool entry is `base/prefix` carved into subnets of `size`.
 */
export const DEFAULT_POOLS: readonly { base: string; size: number }[] = [
  { base: '172.17.0.0/16', size: 16 }, { base: '172.18.0.0/16', size: 16 }, { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 }, { base: '172.24.0.0/14', size: 16 }, { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** `base=10.10.0.0/16,size=24`, dockerd's --default-address-pool. */
export function parsePool(s: string): { base: string; size: number } {
  const kv = Object.fromEntries(s.split(',').map((p) => p.split('=') as [string, string]));
  if (!kv.base || !kv.size) throw invalidArgument(`invalid default address pool "${s}": want base=CIDR,size=N`);
  const base = parseCidr(kv.base, { strict: true });
  const sz = Number(kv.size);
  if (!(sz >= base.prefix && sz <= 30)) throw invalidArgument(`invalid default address pool "${s}": size must be between ${base.prefix} and 30`);
  return { base: kv.base, size: sz };
}

/** The first subnet from the pools that overlaps none of `inUse` (networks, and the host's own routes). */
export function pickSubnet(pools: readonly { base: string; size: number }[], inUse: readonly Cidr[]): Cidr | undefined {
  for (const pool of pools) {
    const p = parseCidr(pool.base);
    const step = 2 ** (32 - pool.size);
    for (let base = p.base; base < p.base + size(p); base += step) {
      const c = { base, prefix: pool.size };
      if (!inUse.some((u) => overlaps(u, c))) return c;
    }
  }
  return undefined;
}

/** Docker's MAC for an address: 02:42 and the four bytes of the IPv4 address. */
export function macFor(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
