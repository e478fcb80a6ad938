/**
 * Port specs and port lists as the docker CLI handles them: `-p` and
 * `--expose` (go-connections' nat.ParsePortSpec), `ps`'s PORTS column
 * (DisplayablePorts) and `port`'s host addresses (net.JoinHostPort).
 * Parse errors are thrown as plain Errors with docker's text; callers choose the exit code.
 */

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

/** One published port: its `80/tcp` key and where it is bound. */
export interface PortMapping {
  port: string;
  binding: PortBinding;
}

/** strconv.ParseUint(s, 10, 16) with Go's error text. */
function parseUint16(s: string): number {
  if (!/^\d+$/.test(s)) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax`);
  const n = Number(s);
  if (n > 65535) throw new Error(`strconv.ParseUint: parsing ${JSON.stringify(s)}: value out of range`);
  return n;
}

/** nat.ParsePortRange: `8000` or `8000-9000` (only the first two parts of `a-b-c` count, as in Go). */
export function parsePortRange(ports: string): [number, number] {
  if (ports === '') throw new Error('empty string specified for ports');
  if (!ports.includes('-')) {
    const n = parseUint16(ports);
    return [n, n];
  }
  const parts = ports.split('-');
  const start = parseUint16(parts[0]);
  const end = parseUint16(parts[1]);
  if (end < start) throw new Error(`invalid range specified for the Port: ${ports}`);
  return [start, end];
}

/** nat.SplitProtoPort: `80/udp` → ['udp', '80']; no protocol means tcp. */
export function splitProtoPort(raw: string): [string, string] {
  const parts = raw.split('/');
  if (raw.length === 0 || parts[0].length === 0) return ['', ''];
  if (parts.length === 1) return ['tcp', raw];
  if (parts[1].length === 0) return ['tcp', parts[0]];
  return [parts[1], parts[0]];
}

/** Go's net.ParseIP acceptance: dotted IPv4 (no leading zeros) or IPv6, optionally with an IPv4 tail. */
export function isIP(s: string): boolean {
  return parseIP(s) !== undefined;
}

/** An address as its bit length and value, or undefined when Go's net.ParseIP would return nil. */
export function parseIP(s: string): { bits: 32 | 128; value: bigint } | undefined {
  const v4 = parseIPv4(s);
  if (v4 !== undefined) return { bits: 32, value: v4 };
  if (!s.includes(':')) return undefined;
  let head = s;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    // An IPv4 tail (`::ffff:1.2.3.4`) stands for the last two groups.
    const ip4 = parseIPv4(s.slice(lastColon + 1));
    if (ip4 === undefined) return undefined;
    head = `${s.slice(0, lastColon + 1)}${(ip4 >> 16n).toString(16)}:${(ip4 & 0xffffn).toString(16)}`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): bigint[] | undefined => {
    if (h === '') return [];
    const out: bigint[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(BigInt(`0x${g}`));
    }
    return out;
  };
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  if (!left || !right) return undefined;
  const given = left.length + right.length;
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  const all = [...left, ...Array(8 - given).fill(0n), ...right];
  return { bits: 128, value: all.reduce((acc, g) => (acc << 16n) | g, 0n) };
}

function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0') || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

/** convertToStandardNotation: the long `target=80,published=8080,protocol=udp` form as `8080:80/udp`. */
function standardNotation(publish: string): string {
  if (!publish.includes('=')) return publish;
  const params: Record<string, string> = { protocol: 'tcp' };
  for (const param of publish.split(',')) {
    const i = param.indexOf('=');
    if (i <= 0) throw new Error(`invalid publish opts format (should be name=value but got '${param}')`);
    params[param.slice(0, i)] = param.slice(i + 1);
  }
  if (params.target === undefined) throw new Error(`missing required 'target' field in publish option '${publish}'`);
  return `${params.published ?? ''}:${params.target}/${params.protocol}`;
}

/**
 * One `-p` value, as nat.ParsePortSpec reads it:
 * `[ip:][hostPort[-hostPortEnd]:]containerPort[-containerPortEnd][/proto]`, an IPv6 ip in brackets.
 * A container range maps pairwise onto a host range of the same length; a single container port
 * with a host range keeps the range (`8000-8010`) for the daemon to choose from.
 */
export function parsePublish(spec: string): PortMapping[] {
  const raw = standardNotation(spec);
  const parts = raw.split(':');
  const n = parts.length;
  let ip = n >= 3 ? parts.slice(0, n - 2).join(':') : '';
  let hostPort = n >= 2 ? parts[n - 2] : '';
  const [rawProto, containerPort] = splitProtoPort(parts[n - 1]);
  if (ip !== '' && ip[0] === '[') {
    // net.SplitHostPort(ip + ":"): the brackets must close right before the added colon.
    const m = /^\[([^\[\]]*)\]$/.exec(ip);
    if (!m) throw new Error(`invalid IP address ${ip}: address ${ip}:: missing ']' in address`);
    ip = m[1];
  }
  if (ip !== '' && !isIP(ip)) throw new Error(`invalid IP address: ${ip}`);
  if (containerPort === '') throw new Error(`no port specified: ${raw}<empty>`);
  let start: number, end: number;
  try {
    [start, end] = parsePortRange(containerPort);
  } catch {
    throw new Error(`invalid containerPort: ${containerPort}`);
  }
  let hostStart = 0, hostEnd = 0;
  if (hostPort !== '') {
    try {
      [hostStart, hostEnd] = parsePortRange(hostPort);
    } catch {
      throw new Error(`invalid hostPort: ${hostPort}`);
    }
    if (end - start !== hostEnd - hostStart && end !== start) {
      throw new Error(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
  }
  const proto = rawProto.toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new Error(`invalid proto: ${proto}`);
  const out: PortMapping[] = [];
  for (let i = 0; i <= end - start; i++) {
    if (hostPort !== '') hostPort = String(hostStart + i);
    if (start === end && hostStart !== hostEnd) hostPort = `${hostPort}-${hostEnd}`;
    out.push({ port: `${start + i}/${proto}`, binding: { HostIp: ip, HostPort: hostPort } });
  }
  return out;
}

/** nat.ParsePortSpecs over every `-p`: ExposedPorts and PortBindings, in the order given. */
export function parsePublishList(specs: string[]): { exposed: Record<string, object>; bindings: Record<string, PortBinding[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, PortBinding[]> = {};
  for (const spec of specs) {
    for (const { port, binding } of parsePublish(spec)) {
      exposed[port] = {};
      (bindings[port] ??= []).push(binding);
    }
  }
  return { exposed, bindings };
}

/** One `--expose` value: `80`, `80/udp` or `8000-8010[/proto]`, as the `80/tcp` keys it stands for. */
export function parseExpose(spec: string): string[] {
  if (spec.includes(':')) throw new Error(`invalid port format for --expose: ${spec}`);
  const [proto, port] = splitProtoPort(spec);
  let start: number, end: number;
  try {
    [start, end] = parsePortRange(port);
  } catch (e) {
    throw new Error(`invalid range format for --expose: ${spec}, error: ${(e as Error).message}`);
  }
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

/** Go's net.JoinHostPort: an IPv6 host goes in brackets. */
export function joinHostPort(host: string, port: string | number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An entry of the container list's `Ports`. */
export interface ListPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

/**
 * The docker CLI's DisplayablePorts, for `ps`'s PORTS column:
 * `0.0.0.0:8080->80/tcp, 9000/udp`. Unpublished ports, and ports published on
 * the same number, are collapsed into ranges (`80-82/tcp`,
 * `0.0.0.0:80-82->80-82/tcp`); other mappings are listed one by one, last.
 */
export function displayablePorts(ports: ListPort[]): string {
  const sorted = [...ports].sort((a, b) => {
    if (a.PrivatePort !== b.PrivatePort) return a.PrivatePort - b.PrivatePort;
    const ai = a.IP ?? '', bi = b.IP ?? '';
    if (ai !== bi) return ai < bi ? -1 : 1;
    if ((a.PublicPort ?? 0) !== (b.PublicPort ?? 0)) return (a.PublicPort ?? 0) - (b.PublicPort ?? 0);
    return a.Type < b.Type ? -1 : a.Type > b.Type ? 1 : 0;
  });
  const groups = new Map<string, { first: number; last: number }>();
  const result: string[] = [];
  const hostMappings: string[] = [];
  for (const p of sorted) {
    const current = p.PrivatePort;
    let key = p.Type;
    if (p.IP) {
      if ((p.PublicPort ?? 0) !== current) {
        hostMappings.push(`${joinHostPort(p.IP, p.PublicPort ?? 0)}->${p.PrivatePort}/${p.Type}`);
        continue;
      }
      key = `${p.IP}/${p.Type}`;
    }
    const group = groups.get(key);
    if (!group) {
      groups.set(key, { first: current, last: current });
      continue;
    }
    if (current === group.last + 1) {
      group.last = current;
      continue;
    }
    result.push(formGroup(key, group.first, group.last));
    // As docker: the key keeps its first place in the final listing.
    group.first = current;
    group.last = current;
  }
  for (const [key, g] of groups) result.push(formGroup(key, g.first, g.last));
  return [...result, ...hostMappings].join(', ');
}

function formGroup(key: string, first: number, last: number): string {
  const slash = key.lastIndexOf('/');
  const ip = slash < 0 ? '' : key.slice(0, slash);
  const type = slash < 0 ? key : key.slice(slash + 1);
  let group = first === last ? String(first) : `${first}-${last}`;
  if (ip) group = `${joinHostPort(ip, group)}->${group}`;
  return `${group}/${type}`;
}

/** sortorder.NaturalLess: digit runs compare as numbers, the rest bytewise. */
export function naturalLess(a: string, b: string): boolean {
  const chunks = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const ca = chunks(a), cb = chunks(b);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i], y = cb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x), dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = BigInt(x), ny = BigInt(y);
      if (nx !== ny) return nx < ny;
      return x.length < y.length;
    }
    return x < y;
  }
  return ca.length < cb.length;
}
