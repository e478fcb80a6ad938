import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { transaction } from '../metadata/db.ts';

/** A network as berth records it. */
export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'bridge' | 'host' | 'null';
  created: string;
  bridge: string;
  subnet: string;
  gateway: string;
  ipRange: string;
  internal: boolean;
  attachable: boolean;
  builtin: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
}

/** A container's membership of a network; `ip` is set while the container runs. */
export interface EndpointRecord {
  containerId: string;
  networkId: string;
  aliases: string[];
  requestedIp: string;
  endpointId: string;
  ip: string | null;
  mac: string;
  ifname: string;
  hostIfname: string;
  attachedAt: number;
}

export interface PublishedPort {
  containerId: string;
  proto: 'tcp' | 'udp' | 'sctp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

interface NetworkRow {
  id: string; name: string; driver: string; created: string; bridge: string; subnet: string; gateway: string; ip_range: string;
  internal: number; attachable: number; builtin: number; labels: string; options: string;
}
interface EndpointRow {
  container_id: string; network_id: string; aliases: string; requested_ip: string; endpoint_id: string; ip: string | null; mac: string;
  ifname: string; host_ifname: string; attached_at: number;
}
interface PortRow { container_id: string; proto: string; container_port: number; host_ip: string; host_port: number }

const toNetwork = (r: NetworkRow): NetworkRecord => ({
  id: r.id, name: r.name, driver: r.driver as NetworkRecord['driver'], created: r.created, bridge: r.bridge, subnet: r.subnet, gateway: r.gateway,
  ipRange: r.ip_range, internal: r.internal === 1, attachable: r.attachable === 1, builtin: r.builtin === 1,
  labels: JSON.parse(r.labels), options: JSON.parse(r.options),
});
const toEndpoint = (r: EndpointRow): EndpointRecord => ({
  containerId: r.container_id, networkId: r.network_id, aliases: JSON.parse(r.aliases), requestedIp: r.requested_ip, endpointId: r.endpoint_id,
  ip: r.ip, mac: r.mac, ifname: r.ifname, hostIfname: r.host_ifname, attachedAt: r.attached_at,
});
const toPort = (r: PortRow): PublishedPort => ({
  containerId: r.container_id, proto: r.proto as PublishedPort['proto'], containerPort: r.container_port, hostIp: r.host_ip, hostPort: r.host_port,
});

/** Networks, endpoints and published ports in the metadata database. */
export class NetworkStore {
  #db: DatabaseSync;
  #q: Record<string, StatementSync>;
  #order = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#q = {
      get: db.prepare('SELECT * FROM networks WHERE id = ?'),
      byName: db.prepare('SELECT * FROM networks WHERE name = ?'),
      byPrefix: db.prepare('SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2'),
      list: db.prepare('SELECT * FROM networks ORDER BY builtin DESC, created, name'),
      insert: db.prepare(`INSERT INTO networks (id, name, driver, created, bridge, subnet, gateway, ip_range, internal, attachable, builtin, labels, options)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      setSubnet: db.prepare('UPDATE networks SET subnet = ?, gateway = ?, bridge = ? WHERE id = ?'),
      delete: db.prepare('DELETE FROM networks WHERE id = ?'),
      endpoints: db.prepare('SELECT * FROM endpoints WHERE container_id = ? ORDER BY attached_at, network_id'),
      onNetwork: db.prepare('SELECT * FROM endpoints WHERE network_id = ? ORDER BY attached_at'),
      active: db.prepare('SELECT * FROM endpoints WHERE ip IS NOT NULL ORDER BY attached_at'),
      upsertEndpoint: db.prepare(`INSERT INTO endpoints (container_id, network_id, aliases, requested_ip, attached_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (container_id, network_id) DO UPDATE SET aliases = excluded.aliases, requested_ip = excluded.requested_ip`),
      bind: db.prepare('UPDATE endpoints SET endpoint_id = ?, ip = ?, mac = ?, ifname = ?, host_ifname = ? WHERE container_id = ? AND network_id = ?'),
      release: db.prepare("UPDATE endpoints SET endpoint_id = '', ip = NULL, mac = '', ifname = '', host_ifname = '' WHERE container_id = ? AND network_id = ?"),
      deleteEndpoint: db.prepare('DELETE FROM endpoints WHERE container_id = ? AND network_id = ?'),
      deleteEndpoints: db.prepare('DELETE FROM endpoints WHERE container_id = ?'),
      takenIps: db.prepare('SELECT ip FROM endpoints WHERE network_id = ? AND ip IS NOT NULL'),
      ports: db.prepare('SELECT * FROM published_ports WHERE container_id = ? ORDER BY proto, container_port, host_ip'),
      allPorts: db.prepare('SELECT * FROM published_ports ORDER BY container_id'),
      insertPort: db.prepare('INSERT INTO published_ports (container_id, proto, container_port, host_ip, host_port) VALUES (?, ?, ?, ?, ?)'),
      deletePorts: db.prepare('DELETE FROM published_ports WHERE container_id = ?'),
    };
  }

  get(id: string): NetworkRecord | undefined {
    const r = this.#q.get.get(id) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  byName(name: string): NetworkRecord | undefined {
    const r = this.#q.byName.get(name) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  /** Docker's lookup order for networks: full ID, exact name, then a unique ID prefix. */
  find(idOrName: string): NetworkRecord | 'ambiguous' | undefined {
    const exact = (this.#q.get.get(idOrName) ?? this.#q.byName.get(idOrName)) as NetworkRow | undefined;
    if (exact) return toNetwork(exact);
    if (!/^[a-f0-9]+$/.test(idOrName)) return undefined;
    const rows = this.#q.byPrefix.all(idOrName, idOrName + 'g') as unknown as NetworkRow[];
    if (rows.length > 1) return 'ambiguous';
    return rows[0] && toNetwork(rows[0]);
  }

  list(): NetworkRecord[] {
    return (this.#q.list.all() as unknown as NetworkRow[]).map(toNetwork);
  }

  insert(n: NetworkRecord): void {
    this.#q.insert.run(n.id, n.name, n.driver, n.created, n.bridge, n.subnet, n.gateway, n.ipRange, n.internal ? 1 : 0, n.attachable ? 1 : 0,
      n.builtin ? 1 : 0, JSON.stringify(n.labels), JSON.stringify(n.options));
  }

  /** The default bridge follows the daemon's --bip/--bridge from one start to the next. */
  setBridge(id: string, subnet: string, gateway: string, bridge: string): void {
    this.#q.setSubnet.run(subnet, gateway, bridge, id);
  }

  delete(id: string): void {
    this.#q.delete.run(id);
  }

  endpoints(containerId: string): EndpointRecord[] {
    return (this.#q.endpoints.all(containerId) as unknown as EndpointRow[]).map(toEndpoint);
  }

  onNetwork(networkId: string): EndpointRecord[] {
    return (this.#q.onNetwork.all(networkId) as unknown as EndpointRow[]).map(toEndpoint);
  }

  /** Every endpoint that holds an address: the containers running on berth's networks. */
  active(): EndpointRecord[] {
    return (this.#q.active.all() as unknown as EndpointRow[]).map(toEndpoint);
  }

  /** Records that the container belongs to the network (at create, or connect); keeps its address if it has one. */
  join(containerId: string, networkId: string, aliases: readonly string[], requestedIp: string): void {
    this.#q.upsertEndpoint.run(containerId, networkId, JSON.stringify(aliases), requestedIp, this.#nextOrder());
  }

  /** Increasing within the process and across restarts (the clock, then a counter within one millisecond). */
  #nextOrder(): number {
    this.#order = Math.max(this.#order + 1, Date.now() * 1000);
    return this.#order;
  }

  takenIps(networkId: string): string[] {
    return (this.#q.takenIps.all(networkId) as { ip: string }[]).map((r) => r.ip);
  }

  /**
   * Gives the endpoint its address. The (network, ip) uniqueness of the table
   * is the last word: a clash throws rather than hands an address out twice.
   */
  bind(e: Pick<EndpointRecord, 'containerId' | 'networkId' | 'endpointId' | 'ip' | 'mac' | 'ifname' | 'hostIfname'>): void {
    this.#q.bind.run(e.endpointId, e.ip, e.mac, e.ifname, e.hostIfname, e.containerId, e.networkId);
  }

  release(containerId: string, networkId: string): void {
    this.#q.release.run(containerId, networkId);
  }

  leave(containerId: string, networkId: string): void {
    this.#q.deleteEndpoint.run(containerId, networkId);
  }

  forget(containerId: string): void {
    transaction(this.#db, () => {
      this.#q.deleteEndpoints.run(containerId);
      this.#q.deletePorts.run(containerId);
    });
  }

  ports(containerId: string): PublishedPort[] {
    return (this.#q.ports.all(containerId) as unknown as PortRow[]).map(toPort);
  }

  allPorts(): PublishedPort[] {
    return (this.#q.allPorts.all() as unknown as PortRow[]).map(toPort);
  }

  setPorts(containerId: string, ports: readonly PublishedPort[]): void {
    transaction(this.#db, () => {
      this.#q.deletePorts.run(containerId);
      for (const p of ports) this.#q.insertPort.run(containerId, p.proto, p.containerPort, p.hostIp, p.hostPort);
    });
  }

  deletePorts(containerId: string): void {
    this.#q.deletePorts.run(containerId);
  }

  transaction<T>(fn: () => T): T {
    return transaction(this.#db, fn);
  }
}
