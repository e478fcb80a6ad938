import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { conflict, forbidden, invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ContainerRecord } from '../metadata/containers.ts';
import type { DnsAnswerSource } from '../network/dns.ts';
import { DnsServer } from '../network/dns.ts';
import { Firewall, type FirewallState } from '../network/firewall.ts';
import { type Cidr, DEFAULT_POOLS, allocate, contains, firstHost, formatCidr, formatIp, macFor, overlaps, parseCidr, parseIp, pickSubnet } from '../network/ipam.ts';
import { deleteLink, enableForwarding, ensureBridge, hostRoutes, linkAddresses, linkExists, plugVeth, unplugVeth } from '../network/links.ts';
import { type Proto, type Reservation, parseHostPorts, reservePort } from '../network/ports.ts';
import type { EndpointRecord, NetworkRecord, NetworkStore, PublishedPort } from '../network/store.ts';
import type { EventBus } from './events.ts';
import { matchLabels, parseFilters, parseTimestamp } from './filters.ts';

export interface NetworkOptions {
  /** The default bridge's device (dockerd's -b/--bridge). */
  bridge: string;
  /** The default bridge's gateway address and prefix (dockerd's --bip), e.g. 172.17.0.1/16; picked from the pools when absent. */
  bip?: string;
  /** Where subnets of new networks come from (dockerd's --default-address-pool). */
  pools?: { base: string; size: number }[];
  /** Name servers for containers instead of the host's (dockerd's --dns). */
  dns?: string[];
}

/** How a container's network namespace is had, and the files that describe it. */
export interface NetworkPlan {
  namespace: 'private' | 'host' | { join: string };
  hosts: string;
  resolvConf: string;
}

interface Members {
  get(id: string): ContainerRecord | undefined;
  resolve(idOrName: string): ContainerRecord;
}

export const NETWORK_LIST_FILTERS = ['driver', 'id', 'label', 'name', 'scope', 'type', 'dangling'] as const;

/**
 * Container networking with Docker's semantics: the default bridge, user
 * networks with an embedded DNS server, published ports. Addresses and ports
 * are recorded before they are used, so nothing is handed out twice, and
 * every device and rule can be rebuilt from the records after a crash.
 */
export class NetworkService {
  #store: NetworkStore;
  #containers: Members;
  #events: EventBus;
  #log: Logger;
  #opts: NetworkOptions;
  #firewall: Firewall;
  #dns: DnsServer;
  /** The sockets that hold each running container's published host ports. */
  #reservations = new Map<string, Reservation[]>();
  /** A starting container's DNAT rules, loading while runc creates it. */
  #loadingPorts = new Map<string, Promise<void>>();
  #hostResolv: { nameservers: string[]; search: string[]; options: string[] } = { nameservers: [], search: [], options: [] };

  constructor(deps: { store: NetworkStore; containers: Members; events: EventBus; log: Logger; options: NetworkOptions }) {
    this.#store = deps.store;
    this.#containers = deps.containers;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#opts = deps.options;
    this.#firewall = new Firewall(deps.options.bridge, () => this.#firewallState());
    this.#dns = new DnsServer(this.#dnsSource(), deps.log.child({ module: 'dns' }));
  }

  /** At daemon start: the built-in networks, every bridge, the rules, DNS, and the ports of containers still running. */
  async init(): Promise<void> {
    this.#hostResolv = parseResolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    if (this.#opts.dns?.length) this.#hostResolv.nameservers = this.#opts.dns;
    await this.#ensureDefaultBridge();
    for (const name of ['host', 'none']) {
      if (!this.#store.byName(name)) this.#store.insert(record({ name, driver: name === 'host' ? 'host' : 'null', builtin: true }));
    }
    await enableForwarding();
    for (const n of this.#store.list()) if (n.driver === 'bridge' && !n.builtin) await this.#bringUp(n);
    await this.#firewall.init();
    for (const c of new Set(this.#store.active().map((e) => e.containerId))) {
      const rec = this.#containers.get(c);
      if (rec?.state.Running) await this.#reservePublished(rec, this.#store.ports(c)).catch((e) => this.#log.warn('port not restored', { id: c, err: e }));
    }
  }

  async close(): Promise<void> {
    await this.#dns.closeAll();
    for (const list of this.#reservations.values()) for (const r of list) await r.release();
    this.#reservations.clear();
  }

  async #ensureDefaultBridge(): Promise<void> {
    const current = this.#store.byName('bridge');
    let gatewayCidr = this.#opts.bip;
    if (!gatewayCidr && current && current.bridge === this.#opts.bridge) gatewayCidr = `${current.gateway}/${prefixOf(current)}`;
    if (!gatewayCidr && linkExists(this.#opts.bridge)) gatewayCidr = (await linkAddresses(this.#opts.bridge))[0];
    if (!gatewayCidr) {
      const subnet = pickSubnet(this.#opts.pools ?? DEFAULT_POOLS, [...(await hostRoutes()), ...this.#subnets()]);
      if (!subnet) throw new Error('no free subnet for the default bridge; set --bip');
      gatewayCidr = `${formatIp(firstHost(subnet))}/${subnet.prefix}`;
    }
    const [gw, prefix] = gatewayCidr.split('/');
    if (parseIp(gw) === undefined || !prefix) throw invalidArgument(`invalid --bip ${gatewayCidr}: want an address with a prefix, like 172.17.0.1/16`);
    const subnet = formatCidr(parseCidr(gatewayCidr));
    await ensureBridge(this.#opts.bridge, gatewayCidr, macFor(parseIp(gw)!));
    if (current) this.#store.setBridge(current.id, subnet, gw, this.#opts.bridge);
    else this.#store.insert(record({ name: 'bridge', driver: 'bridge', builtin: true, bridge: this.#opts.bridge, subnet, gateway: gw }));
  }

  async #bringUp(n: NetworkRecord): Promise<void> {
    await ensureBridge(n.bridge, `${n.gateway}/${prefixOf(n)}`, macFor(parseIp(n.gateway)!));
    await this.#dns.listen(n.gateway).catch((e) => this.#log.warn('embedded DNS not listening', { network: n.name, err: e }));
  }

  #subnets(): Cidr[] {
    return this.#store.list().filter((n) => n.subnet).map((n) => parseCidr(n.subnet));
  }

  // ------------------------------------------------------------ the network API

  find(idOrName: string): NetworkRecord {
    const n = this.#store.find(idOrName);
    if (n === 'ambiguous') throw invalidArgument(`network ${idOrName} is ambiguous`);
    if (!n) throw notFound(`network ${idOrName} not found`);
    return n;
  }

  async create(req: {
    Name?: string; Driver?: string; Internal?: boolean; Attachable?: boolean; EnableIPv6?: boolean; Labels?: Record<string, string> | null;
    Options?: Record<string, string> | null; IPAM?: { Driver?: string; Config?: { Subnet?: string; IPRange?: string; Gateway?: string }[] | null } | null;
  }): Promise<{ Id: string; Warning: string }> {
    const name = req.Name ?? '';
    if (!name) throw invalidArgument('network name must not be empty');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw invalidArgument(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const driver = req.Driver || 'bridge';
    if (driver === 'host' || driver === 'null') throw forbidden(`only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge') throw notFound(`plugin "${driver}" not found`);
    if (this.#store.byName(name)) throw conflict(`network with name ${name} already exists`);
    if (req.EnableIPv6) throw invalidArgument('IPv6 networks are not supported by berth yet');
    const configs = req.IPAM?.Config ?? [];
    if (configs.length > 1) throw invalidArgument('berth supports one IPv4 subnet per network');
    const cfg = configs[0] ?? {};
    let subnet: Cidr;
    if (cfg.Subnet) {
      subnet = parseCidr(cfg.Subnet);
      if (this.#subnets().some((s) => overlaps(s, subnet))) throw forbidden('invalid pool request: Pool overlaps with other one on this address space');
    } else {
      if (cfg.Gateway || cfg.IPRange) throw invalidArgument('every ip-range or gateway must have a corresponding subnet');
      const picked = pickSubnet(this.#opts.pools ?? DEFAULT_POOLS, [...this.#subnets(), ...(await hostRoutes())]);
      if (!picked) throw forbidden('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
      subnet = picked;
    }
    const gateway = cfg.Gateway ? parseIp(cfg.Gateway) : firstHost(subnet);
    if (gateway === undefined || !contains(subnet, gateway)) throw invalidArgument(`invalid gateway ${cfg.Gateway}: it is not in subnet ${formatCidr(subnet)}`);
    if (cfg.IPRange) {
      const range = parseCidr(cfg.IPRange);
      if (!contains(subnet, range.base) || range.prefix < subnet.prefix) throw invalidArgument(`invalid ip-range ${cfg.IPRange}: it is not inside subnet ${formatCidr(subnet)}`);
    }
    const id = randomBytes(32).toString('hex');
    const options = req.Options ?? {};
    const bridge = options['com.docker.network.bridge.name'] || `br-${id.slice(0, 12)}`;
    if (bridge.length > 15) throw invalidArgument(`bridge name ${bridge} is longer than 15 characters`);
    if (this.#store.list().some((n) => n.bridge === bridge) || (options['com.docker.network.bridge.name'] && linkExists(bridge))) {
      throw conflict(`bridge ${bridge} is already in use`);
    }
    const n = record({
      id, name, driver: 'bridge', bridge, subnet: formatCidr(subnet), gateway: formatIp(gateway), ipRange: cfg.IPRange ?? '',
      internal: Boolean(req.Internal), attachable: Boolean(req.Attachable), labels: req.Labels ?? {}, options,
    });
    this.#store.insert(n);
    try {
      await this.#bringUp(n);
      await this.#firewall.sync();
    } catch (e) {
      this.#store.delete(n.id);
      await this.#dns.close(n.gateway).catch(() => {});
      await deleteLink(bridge).catch(() => {});
      await this.#firewall.sync().catch(() => {});
      throw e;
    }
    this.#events.emit('network', 'create', n.id, { name: n.name, type: n.driver });
    return { Id: n.id, Warning: '' };
  }

  list(filters?: string | null): NetworkRecord[] {
    const f = parseFilters(filters, NETWORK_LIST_FILTERS);
    for (const t of f.get('type') ?? []) if (t !== 'custom' && t !== 'builtin') throw invalidArgument(`invalid filter: 'type'='${t}'`);
    const dangling = f.get('dangling');
    return this.#store.list().filter((n) => {
      if (f.has('driver') && !f.get('driver')!.includes(n.driver)) return false;
      if (f.has('id') && !f.get('id')!.some((p) => n.id.startsWith(p))) return false;
      if (f.has('name') && !f.get('name')!.some((p) => n.name.includes(p))) return false;
      if (f.has('scope') && !f.get('scope')!.includes('local')) return false;
      if (f.has('type') && !f.get('type')!.includes(n.builtin ? 'builtin' : 'custom')) return false;
      if (!matchLabels(f.get('label'), n.labels)) return false;
      if (dangling && dangling.includes('true') !== (!n.builtin && this.#store.onNetwork(n.id).length === 0)) return false;
      return true;
    });
  }

  async remove(idOrName: string): Promise<void> {
    const n = this.find(idOrName);
    if (n.builtin) throw forbidden(`${n.name} is a pre-defined network and cannot be removed`);
    const active = this.#store.onNetwork(n.id).filter((e) => e.ip !== null);
    if (active.length) {
      const names = active.map((e) => this.#containers.get(e.containerId)?.name ?? e.containerId.slice(0, 12));
      throw forbidden(`error while removing network: network ${n.name} has active endpoints (${names.map((x) => `name:"${x}"`).join(', ')})`);
    }
    this.#store.delete(n.id);
    await this.#dns.close(n.gateway).catch(() => {});
    await deleteLink(n.bridge);
    await this.#firewall.sync();
    this.#events.emit('network', 'destroy', n.id, { name: n.name, type: n.driver });
  }

  async prune(filters?: string | null): Promise<{ NetworksDeleted: string[] }> {
    const f = parseFilters(filters, ['until', 'label', 'label!']);
    const until = f.get('until')?.map((t) => parseTimestamp(t));
    const deleted: string[] = [];
    for (const n of this.#store.list()) {
      if (n.builtin || this.#store.onNetwork(n.id).some((e) => e.ip !== null)) continue;
      if (until && !until.every((t) => Date.parse(n.created) < t)) continue;
      if (!matchLabels(f.get('label'), n.labels)) continue;
      if (f.get('label!')?.some((l) => matchLabels([l], n.labels))) continue;
      await this.remove(n.id);
      deleted.push(n.name);
    }
    return { NetworksDeleted: deleted };
  }

  /** Docker's network inspect body. */
  inspect(n: NetworkRecord): Record<string, unknown> {
    const containers: Record<string, unknown> = {};
    for (const e of this.#store.onNetwork(n.id)) {
      if (e.ip === null) continue;
      containers[e.containerId] = {
        Name: this.#containers.get(e.containerId)?.name ?? '', EndpointID: e.endpointId, MacAddress: e.mac,
        IPv4Address: `${e.ip}/${prefixOf(n)}`, IPv6Address: '',
      };
    }
    const options = n.driver === 'bridge' && n.builtin
      ? { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.enable_icc': 'true', 'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.bridge.name': n.bridge, 'com.docker.network.driver.mtu': '1500' }
      : n.options;
    return {
      Name: n.name, Id: n.id, Created: n.created, Scope: 'local', Driver: n.driver, EnableIPv4: true, EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: n.subnet ? [{ Subnet: n.subnet, ...(n.ipRange ? { IPRange: n.ipRange } : {}), Gateway: n.gateway }] : [] },
      Internal: n.internal, Attachable: n.attachable, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
      Containers: containers, Options: options, Labels: n.labels,
    };
  }

  // ------------------------------------------------------------ containers

  /**
   * At create: checks the container's network settings and records which
   * networks it joins. Addresses come at start.
   */
  attachContainer(c: ContainerRecord, endpointsConfig: Record<string, { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null }> = {}): void {
    const mode = networkMode(c);
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
      if (mode.startsWith('container:')) this.#containers.resolve(mode.slice('container:'.length));
      if (Object.keys(c.hostConfig.PortBindings ?? {}).length && mode !== 'host') {
        throw invalidArgument('conflicting options: port publishing and the container type network mode');
      }
      return;
    }
    const n = this.find(mode);
    if (n.driver !== 'bridge') throw invalidArgument(`container cannot be connected to network ${n.name}`);
    const ep = endpointsConfig[mode] ?? endpointsConfig[n.name] ?? endpointsConfig[n.id] ?? {};
    this.#checkEndpoint(n, ep.IPAMConfig?.IPv4Address ?? '', ep.Aliases ?? []);
    this.#store.join(c.id, n.id, ep.Aliases ?? [], ep.IPAMConfig?.IPv4Address ?? '');
  }

  #checkEndpoint(n: NetworkRecord, ip: string, aliases: readonly string[]): void {
    if (n.builtin && ip) throw invalidArgument('user specified IP address is supported on user defined networks only');
    if (n.builtin && aliases.length) throw invalidArgument('network-scoped alias is supported only for containers in user defined networks');
    if (ip) {
      const addr = parseIp(ip);
      if (addr === undefined) throw invalidArgument(`invalid IPv4 address: ${ip}`);
      if (!contains(parseCidr(n.subnet), addr)) throw invalidArgument(`no configured subnet or ip-range contain the IP address ${ip}`);
      if (ip === n.gateway) throw invalidArgument(`address ${ip} is the gateway of network ${n.name}`);
    }
  }

  /** At remove: whatever the container still holds is released, and its memberships are forgotten. */
  async forgetContainer(c: ContainerRecord): Promise<void> {
    await this.release(c);
    this.#store.forget(c.id);
  }

  /**
   * Before a start: addresses for each network the container is on, its host
   * ports reserved, and its hosts and resolv.conf.
   */
  async plan(c: ContainerRecord, readOtherFiles: (other: ContainerRecord) => Promise<{ hosts: string; resolvConf: string }>): Promise<NetworkPlan> {
    const mode = networkMode(c);
    if (mode === 'host') {
      return { namespace: 'host', hosts: await readFile('/etc/hosts', 'utf8').catch(() => ''), resolvConf: await readFile('/etc/resolv.conf', 'utf8').catch(() => '') };
    }
    if (mode.startsWith('container:')) {
      const other = this.#containers.resolve(mode.slice('container:'.length));
      if (!other.state.Running || !other.state.Pid) throw conflict(`cannot join network namespace of a non running container: ${other.id}`);
      return { namespace: { join: `/proc/${other.state.Pid}/ns/net` }, ...(await readOtherFiles(other)) };
    }
    const hostname = c.config.Hostname as string;
    if (mode === 'none') return { namespace: 'private', hosts: hostsFile([], hostname, this.#extraHosts(c)), resolvConf: this.#resolvConf(c, undefined) };
    const eps = this.#bindEndpoints(c);
    try {
      const first = eps[0];
      await this.#publish(c, first?.ip ?? undefined);
      const firstNet = first && this.#store.get(first.networkId);
      return {
        namespace: 'private',
        hosts: hostsFile(eps.map((e) => e.ip!), hostname, this.#extraHosts(c)),
        resolvConf: this.#resolvConf(c, firstNet && !firstNet.builtin ? firstNet : undefined),
      };
    } catch (e) {
      await this.release(c);
      throw e;
    }
  }

  /** Gives each endpoint of the container an address, atomically: all or none. */
  #bindEndpoints(c: ContainerRecord): EndpointRecord[] {
    return this.#store.transaction(() => {
      const out: EndpointRecord[] = [];
      for (const [i, e] of this.#store.endpoints(c.id).entries()) {
        const n = this.#store.get(e.networkId);
        if (!n) throw notFound(`network ${e.networkId} not found`);
        out.push({ ...e, ...this.#bind(e, n, `eth${i}`) });
      }
      return out;
    });
  }

  /** Gives one endpoint an address on `n`, a MAC, and its interface names, and records them (inside the caller's transaction). */
  #bind(e: Pick<EndpointRecord, 'containerId' | 'networkId' | 'requestedIp'>, n: NetworkRecord, ifname: string) {
    const ip = this.#address(n, e.requestedIp);
    const bound = {
      containerId: e.containerId, networkId: e.networkId, endpointId: randomBytes(32).toString('hex'), ip: formatIp(ip), mac: macFor(ip),
      ifname, hostIfname: `veth${randomBytes(4).toString('hex').slice(0, 7)}`,
    };
    this.#store.bind(bound);
    return bound;
  }

  #address(n: NetworkRecord, requested: string): number {
    const subnet = parseCidr(n.subnet);
    const taken = new Set(this.#store.takenIps(n.id).map((ip) => parseIp(ip)!));
    taken.add(parseIp(n.gateway)!);
    if (requested) {
      const ip = parseIp(requested)!;
      if (taken.has(ip)) throw forbidden(`Address already in use: ${requested} on network ${n.name}`);
      return ip;
    }
    const ip = allocate(subnet, n.ipRange ? parseCidr(n.ipRange) : subnet, taken);
    if (ip === undefined) throw forbidden(`no available IPv4 addresses on network ${n.name}`);
    return ip;
  }

  /** Reserves the host ports of the container's PortBindings (and of -P) and records them. */
  async #publish(c: ContainerRecord, containerIp: string | undefined): Promise<void> {
    const wanted: { proto: Proto; containerPort: number; hostIp: string; hostPort: string }[] = [];
    const bindings = (c.hostConfig.PortBindings ?? {}) as Record<string, { HostIp?: string; HostPort?: string }[] | null>;
    const keys = new Set(Object.keys(bindings));
    if (c.hostConfig.PublishAllPorts) for (const k of Object.keys(c.config.ExposedPorts ?? {})) keys.add(k);
    for (const key of keys) {
      const [port, proto = 'tcp'] = key.split('/');
      const containerPort = Number(port);
      if (!(containerPort >= 1 && containerPort <= 65535) || !['tcp', 'udp', 'sctp'].includes(proto)) throw invalidArgument(`invalid port specification: "${key}"`);
      for (const b of bindings[key]?.length ? bindings[key]! : [{}]) {
        wanted.push({ proto: proto as Proto, containerPort, hostIp: b.HostIp || '0.0.0.0', hostPort: b.HostPort ?? '' });
      }
    }
    if (!wanted.length) return;
    if (!containerIp) throw invalidArgument('port publishing needs the container on a bridge network');
    const held: Reservation[] = [];
    const ports: PublishedPort[] = [];
    try {
      for (const w of wanted) {
        if (parseIp(w.hostIp) === undefined) throw invalidArgument(`invalid host IP ${w.hostIp}: berth publishes on IPv4 addresses`);
        const r = await reservePort(w.hostIp, parseHostPorts(w.hostPort), w.proto);
        held.push(r);
        ports.push({ containerId: c.id, proto: w.proto, containerPort: w.containerPort, hostIp: r.hostIp, hostPort: r.hostPort });
      }
      this.#store.setPorts(c.id, ports);
    } catch (e) {
      for (const r of held) await r.release();
      if (e instanceof Error && /port is already allocated/.test(e.message)) {
        throw conflict(`driver failed programming external connectivity on endpoint ${c.name} (${c.id.slice(0, 12)}): ${e.message}`);
      }
      throw e;
    }
    this.#reservations.set(c.id, held);
    const loading = this.#firewall.sync(['nat']);
    loading.catch(() => {}); // awaited, and reported, in plug()
    this.#loadingPorts.set(c.id, loading);
  }

  async #reservePublished(c: ContainerRecord, ports: PublishedPort[]): Promise<void> {
    const held: Reservation[] = [];
    for (const p of ports) held.push(await reservePort(p.hostIp, { from: p.hostPort, to: p.hostPort }, p.proto));
    this.#reservations.set(c.id, held);
  }

  /** With the container created (its namespace exists) and not yet running: wires its interfaces and ports. */
  async plug(c: ContainerRecord, pid: number): Promise<void> {
    const eps = this.#store.endpoints(c.id).filter((e) => e.ip !== null);
    const publishes = this.#store.ports(c.id).length > 0;
    for (const [i, e] of eps.entries()) {
      const n = this.#store.get(e.networkId)!;
      await plugVeth({
        pid, bridge: n.bridge, hostIfname: e.hostIfname, ifname: e.ifname, address: `${e.ip}/${prefixOf(n)}`, mac: e.mac,
        gateway: i === 0 && !n.internal ? n.gateway : undefined,
        // Published ports lead to the first endpoint's address (see #firewallState).
        hairpin: i === 0 && publishes,
      });
    }
    const loading = this.#loadingPorts.get(c.id);
    this.#loadingPorts.delete(c.id);
    await loading;
  }

  /** After the container stopped (or failed to start): its addresses, ports and interfaces go. */
  async release(c: ContainerRecord): Promise<void> {
    const held = this.#reservations.get(c.id) ?? [];
    this.#reservations.delete(c.id);
    this.#loadingPorts.delete(c.id);
    for (const r of held) await r.release().catch(() => {});
    const hadPorts = this.#store.ports(c.id).length > 0;
    const eps = this.#store.endpoints(c.id).filter((e) => e.ip !== null);
    // The namespace's end of a veth goes with the namespace, but the kernel frees it lazily: take the
    // host end now so a released address is never on two interfaces.
    for (const e of eps) if (e.hostIfname && linkExists(e.hostIfname)) await deleteLink(e.hostIfname).catch(() => {});
    this.#store.transaction(() => {
      this.#store.deletePorts(c.id);
      for (const e of eps) this.#store.release(c.id, e.networkId);
    });
    if (hadPorts) await this.#firewall.sync(['nat']);
  }

  async connect(idOrName: string, containerIdOrName: string, cfg: { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null } = {}): Promise<void> {
    const n = this.find(idOrName);
    const c = this.#containers.resolve(containerIdOrName);
    const mode = networkMode(c);
    if (n.driver !== 'bridge') throw forbidden(`container cannot be disconnected from host network or connected to host network`);
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
      throw forbidden('container sharing network namespace with another container or host cannot be connected to any other network');
    }
    if (this.#store.endpoints(c.id).some((e) => e.networkId === n.id)) throw forbidden(`endpoint with name ${c.name} already exists in network ${n.name}`);
    const ip = cfg.IPAMConfig?.IPv4Address ?? '';
    this.#checkEndpoint(n, ip, cfg.Aliases ?? []);
    this.#store.join(c.id, n.id, cfg.Aliases ?? [], ip);
    if (c.state.Running && c.state.Pid) {
      try {
        const e = this.#store.transaction(() => {
          const used = new Set(this.#store.endpoints(c.id).map((x) => x.ifname));
          let k = 0;
          while (used.has(`eth${k}`)) k++;
          return this.#bind({ containerId: c.id, networkId: n.id, requestedIp: ip }, n, `eth${k}`);
        });
        await plugVeth({ pid: c.state.Pid, bridge: n.bridge, hostIfname: e.hostIfname, ifname: e.ifname, address: `${e.ip}/${prefixOf(n)}`, mac: e.mac });
      } catch (err) {
        this.#store.leave(c.id, n.id);
        throw err;
      }
    }
    this.#events.emit('network', 'connect', n.id, { container: c.id, name: n.name, type: n.driver });
  }

  async disconnect(idOrName: string, containerIdOrName: string, _force = false): Promise<void> {
    const n = this.find(idOrName);
    const c = this.#containers.resolve(containerIdOrName);
    const e = this.#store.endpoints(c.id).find((x) => x.networkId === n.id);
    if (!e) throw forbidden(`container ${c.id} is not connected to network ${n.name}`);
    if (e.ip !== null && c.state.Running && c.state.Pid) await unplugVeth(c.state.Pid, e.ifname).catch(() => {});
    if (e.hostIfname && linkExists(e.hostIfname)) await deleteLink(e.hostIfname).catch(() => {});
    this.#store.leave(c.id, n.id);
    // Published ports lead to the container's first address: if that one went, they must follow it
    // (to the next network's address, or nowhere) before the freed address goes to another container.
    if (e.ip !== null && this.#store.ports(c.id).length) await this.#firewall.sync(['nat']);
    this.#events.emit('network', 'disconnect', n.id, { container: c.id, name: n.name, type: n.driver });
  }

  /** Docker's NetworkSettings for container inspect. */
  settings(c: ContainerRecord): Record<string, unknown> {
    const running = c.state.Running;
    // The top-level address fields are the default bridge's, as in Docker.
    const top = this.#memberships(c).find((m) => m.network?.builtin && m.endpoint?.ip);
    const e = top?.endpoint;
    return {
      Bridge: '', SandboxID: running ? c.id : '', SandboxKey: running && c.state.Pid ? `/proc/${c.state.Pid}/ns/net` : '',
      Ports: running ? this.ports(c) : {}, HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: e?.endpointId ?? '', Gateway: top?.network?.gateway ?? '',
      GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: e?.ip ?? '', IPPrefixLen: top?.network ? prefixOf(top.network) : 0, IPv6Gateway: '',
      MacAddress: e?.mac ?? '', Networks: this.#networksJson(c),
    };
  }

  /** The networks a container is on: its endpoints' networks, or the host or none network of its mode. */
  #memberships(c: ContainerRecord): { name: string; id: string; network?: NetworkRecord; endpoint?: EndpointRecord }[] {
    const mode = networkMode(c);
    if (mode === 'host' || mode === 'none') return [{ name: mode, id: this.#store.byName(mode)?.id ?? '' }];
    return this.#store.endpoints(c.id).flatMap((e) => {
      const n = this.#store.get(e.networkId);
      return n ? [{ name: n.name, id: n.id, network: n, endpoint: e }] : [];
    });
  }

  /** NetworkSettings.Networks: an EndpointSettings per network. */
  #networksJson(c: ContainerRecord): Record<string, unknown> {
    return Object.fromEntries(this.#memberships(c).map((m) => [m.name, endpointJson(m.id, m.endpoint, m.network)]));
  }

  /** NetworkSettings.Ports: every exposed port, with its host bindings or null. */
  ports(c: ContainerRecord): Record<string, { HostIp: string; HostPort: string }[] | null> {
    const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    for (const k of Object.keys(c.config.ExposedPorts ?? {})) out[k] = null;
    for (const p of this.#store.ports(c.id)) (out[`${p.containerPort}/${p.proto}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
    return out;
  }

  /** ContainerSummary's Ports and NetworkSettings. */
  summary(c: ContainerRecord): { Ports: Record<string, unknown>[]; Networks: Record<string, unknown> } {
    const ports: Record<string, unknown>[] = [];
    const published = c.state.Running ? this.#store.ports(c.id) : [];
    for (const p of published) ports.push({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto });
    for (const k of Object.keys(c.config.ExposedPorts ?? {})) {
      const [port, proto = 'tcp'] = k.split('/');
      if (!published.some((p) => p.containerPort === Number(port) && p.proto === proto)) ports.push({ PrivatePort: Number(port), Type: proto });
    }
    return { Ports: ports, Networks: this.#networksJson(c) };
  }

  /** What `ps --filter network=` matches: the names and IDs of the networks the container is on. */
  networkKeys(c: ContainerRecord): string[] {
    return this.#memberships(c).flatMap((m) => [m.name, m.id]);
  }

  /** Host ports the container publishes now (ps --filter publish). */
  publishedPorts(c: ContainerRecord): PublishedPort[] {
    return this.#store.ports(c.id);
  }

  // ------------------------------------------------------------ files, rules, DNS

  #extraHosts(c: ContainerRecord): string[] {
    const bridge = this.#store.byName('bridge');
    return ((c.hostConfig.ExtraHosts ?? []) as string[]).map((h) => {
      const i = h.indexOf(':');
      if (i <= 0) throw invalidArgument(`invalid argument "${h}" for "--add-host" flag: bad format for add-host: "${h}"`);
      const ip = h.slice(i + 1) === 'host-gateway' ? (bridge?.gateway ?? '') : h.slice(i + 1);
      return `${ip}\t${h.slice(0, i)}`;
    });
  }

  /**
   * On a user network the embedded DNS server (at the gateway) answers for
   * container names and forwards the rest; on the default bridge the
   * container gets the host's servers, less the loopback ones it cannot reach.
   */
  #resolvConf(c: ContainerRecord, userNet: NetworkRecord | undefined): string {
    const dns = (c.hostConfig.Dns ?? []) as string[];
    const search = (c.hostConfig.DnsSearch ?? []) as string[];
    const options = (c.hostConfig.DnsOptions ?? []) as string[];
    const host = this.#hostResolv;
    let servers: string[];
    let opts = options.length ? options : host.options;
    if (userNet) {
      servers = [userNet.gateway];
      opts = [...new Set(['ndots:0', ...opts])];
    } else {
      servers = dns.length ? dns : host.nameservers.filter((s) => !s.startsWith('127.') && s !== '::1');
      if (!servers.length) servers = ['8.8.8.8', '8.8.4.4'];
    }
    const s = search.length ? search : host.search;
    return `${servers.map((x) => `nameserver ${x}`).join('\n')}\n${s.length ? `search ${s.join(' ')}\n` : ''}${opts.length ? `options ${opts.join(' ')}\n` : ''}`;
  }

  #firewallState(): FirewallState {
    const networks = this.#store.list().filter((n) => n.driver === 'bridge').map((n) => ({ bridge: n.bridge, subnet: n.subnet, internal: n.internal }));
    const ips = new Map<string, string>();
    for (const e of this.#store.active()) if (!ips.has(e.containerId)) ips.set(e.containerId, e.ip!);
    const ports = this.#store.allPorts().filter((p) => ips.has(p.containerId)).map((p) => ({
      proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: ips.get(p.containerId)!, containerPort: p.containerPort,
    }));
    return { networks, ports };
  }

  #dnsSource(): DnsAnswerSource {
    const networkAt = (gateway: string) => this.#store.list().find((n) => n.gateway === gateway && n.driver === 'bridge' && !n.builtin);
    return {
      lookup: (local, name, type) => {
        const n = networkAt(local);
        if (!n) return undefined;
        const wanted = name.toLowerCase().replace(new RegExp(`\\.${n.name.toLowerCase().replace(/[.]/g, '\\.')}$`), '');
        const found: string[] = [];
        for (const e of this.#store.onNetwork(n.id)) {
          if (e.ip === null) continue;
          const c = this.#containers.get(e.containerId);
          if (!c) continue;
          const names = [c.name, c.shortId, ...e.aliases].map((x) => x.toLowerCase());
          if (names.includes(wanted)) found.push(e.ip);
        }
        if (!found.length) return undefined;
        return type === 'A' ? found : [];
      },
      reverse: (local, ip) => {
        const n = networkAt(local);
        const e = n && this.#store.onNetwork(n.id).find((x) => x.ip === ip);
        const c = e && this.#containers.get(e.containerId);
        return c ? [`${c.name}.${n!.name}`] : undefined;
      },
      upstreams: (local, client) => {
        const n = networkAt(local);
        const e = n && this.#store.onNetwork(n.id).find((x) => x.ip === client);
        const own = e ? ((this.#containers.get(e.containerId)?.hostConfig.Dns ?? []) as string[]) : [];
        return own.length ? own : this.#hostResolv.nameservers;
      },
    };
  }
}

const prefixOf = (n: NetworkRecord) => Number(n.subnet.split('/')[1]);

function networkMode(c: ContainerRecord): string {
  const m = (c.hostConfig.NetworkMode as string | undefined) || 'default';
  return m === 'default' ? 'bridge' : m;
}

function record(p: Partial<NetworkRecord> & Pick<NetworkRecord, 'name' | 'driver'>): NetworkRecord {
  return {
    id: randomBytes(32).toString('hex'), created: new Date().toISOString(), bridge: '', subnet: '', gateway: '', ipRange: '',
    internal: false, attachable: false, builtin: false, labels: {}, options: {}, ...p,
  };
}

function endpointJson(networkId: string, e: EndpointRecord | undefined, n: NetworkRecord | undefined): Record<string, unknown> {
  const live = e?.ip ? e : undefined;
  return {
    IPAMConfig: e?.requestedIp ? { IPv4Address: e.requestedIp } : null, Links: null, Aliases: e?.aliases.length ? e.aliases : null,
    MacAddress: live?.mac ?? '', DriverOpts: null, NetworkID: networkId, EndpointID: live?.endpointId ?? '', Gateway: live && n ? n.gateway : '',
    IPAddress: live?.ip ?? '', IPPrefixLen: live && n ? prefixOf(n) : 0, IPv6Gateway: '', GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0, DNSNames: null,
  };
}

function hostsFile(ips: readonly string[], hostname: string, extra: readonly string[]): string {
  const base = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';
  const own = ips.length ? ips.map((ip) => `${ip}\t${hostname}\n`).join('') : `127.0.1.1\t${hostname}\n`;
  return base + extra.map((l) => `${l}\n`).join('') + own;
}

function parseResolvConf(text: string): { nameservers: string[]; search: string[]; options: string[] } {
  const out = { nameservers: [] as string[], search: [] as string[], options: [] as string[] };
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}
