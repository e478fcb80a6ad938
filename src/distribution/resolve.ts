// Where a reference is fetched from: Docker's mapping of `docker.io` to registry-1.docker.io,
// mirrors first for Docker Hub, and which registries may be spoken to over plain HTTP.
// Pure functions: nothing here opens a connection or resolves a name.
import { isIPv4, isIPv6 } from 'node:net';
import { DEFAULT_DOMAIN, type Reference } from '../images/reference.ts';
import type { Endpoint } from './types.ts';

/** Docker Hub's API host: `docker.io` references are fetched from here. */
export const DOCKER_HUB_REGISTRY = 'https://registry-1.docker.io';

export interface ResolveOptions {
  insecure: readonly string[];
  mirrors: readonly string[];
}

/**
 * The endpoints to try for a reference, best first. docker.io: each mirror, then Docker Hub.
 * Another registry: HTTPS, then plain HTTP when the registry is insecure (loopback always is),
 * as Docker falls back.
 */
export function resolveEndpoints(ref: Pick<Reference, 'domain' | 'path'>, opts: ResolveOptions): Endpoint[] {
  if (ref.domain === DEFAULT_DOMAIN) {
    const out: Endpoint[] = [];
    for (const m of opts.mirrors) {
      const url = normaliseMirror(m);
      const host = new URL(url).host;
      const insecure = url.startsWith('http:') || isInsecureRegistry(host, opts.insecure);
      out.push({ url, host, repository: ref.path, insecure, mirror: true });
    }
    out.push({ url: DOCKER_HUB_REGISTRY, host: DEFAULT_DOMAIN, repository: ref.path, insecure: false, mirror: false });
    return out;
  }
  return hostEndpoints(ref.domain, opts.insecure).map((e) => ({ ...e, repository: ref.path }));
}

/** The endpoints of a registry host, without a repository (for login, search, _catalog). */
export function hostEndpoints(host: string, insecure: readonly string[]): Endpoint[] {
  if (host === DEFAULT_DOMAIN || host === 'index.docker.io' || host === 'registry-1.docker.io') {
    return [{ url: DOCKER_HUB_REGISTRY, host: DEFAULT_DOMAIN, repository: '', insecure: false, mirror: false }];
  }
  const https: Endpoint = { url: `https://${host}`, host, repository: '', insecure: false, mirror: false };
  if (!isInsecureRegistry(host, insecure)) return [https];
  return [{ ...https, insecure: true }, { url: `http://${host}`, host, repository: '', insecure: true, mirror: false }];
}

/** A mirror as configured (`https://m.example`, `127.0.0.1:5001`) as a base URL without a trailing slash. */
export function normaliseMirror(m: string): string {
  const withScheme = /^https?:\/\//i.test(m) ? m : `https://${m}`;
  const u = new URL(withScheme);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** Splits `host:port`, `[::1]:5000` or `::1` into the host part. */
export function hostPart(hostPort: string): string {
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    return end > 0 ? hostPort.slice(1, end) : hostPort;
  }
  if (isIPv6(hostPort)) return hostPort;
  const colon = hostPort.lastIndexOf(':');
  return colon >= 0 ? hostPort.slice(0, colon) : hostPort;
}

/**
 * Whether a registry may use plain HTTP or unverified TLS: loopback (localhost, 127.0.0.0/8,
 * ::1) always, and any `host[:port]` or CIDR the daemon was given. CIDRs match IP literals only:
 * Docker would resolve the name, berth never resolves a name to decide this.
 */
export function isInsecureRegistry(hostPort: string, insecure: readonly string[]): boolean {
  const host = hostPart(hostPort).toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  if (isIPv4(host) && host.startsWith('127.')) return true;
  for (const entry of insecure) {
    const e = entry.replace(/^https?:\/\//i, '').replace(/\/+$/, '').toLowerCase();
    if (e.includes('/')) {
      if (inCidr(host, e)) return true;
    } else if (e === hostPort.toLowerCase() || e === host) {
      return true;
    }
  }
  return false;
}

/** Whether an IP literal lies in a CIDR (v4 or v6); names never do. */
export function inCidr(ip: string, cidr: string): boolean {
  const slash = cidr.indexOf('/');
  if (slash < 0) return false;
  const net = cidr.slice(0, slash);
  const bits = Number(cidr.slice(slash + 1));
  const a = ipBytes(ip);
  const b = ipBytes(net);
  if (!a || !b || a.length !== b.length || !Number.isInteger(bits) || bits < 0 || bits > a.length * 8) return false;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((a[i >> 3] & mask) !== (b[i >> 3] & mask)) return false;
  }
  return true;
}

function ipBytes(ip: string): number[] | undefined {
  if (isIPv4(ip)) return ip.split('.').map(Number);
  if (!isIPv6(ip)) return undefined;
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    tail = v4[1].split('.').map(Number);
    s = s.slice(0, -v4[1].length) + '0:0';
  }
  const [head, rest] = s.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const groups = rest !== undefined ? [...h, ...Array(8 - h.length - r.length).fill('0'), ...r] : h;
  if (groups.length !== 8) return undefined;
  const out = groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
  if (v4) out.splice(12, 4, ...tail);
  return out;
}
