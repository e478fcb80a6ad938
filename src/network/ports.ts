/**
 * Host port reservations. iptables carries a published port's traffic, but
 * nothing in iptables stops two containers, or a container and a host
 * program, from claiming one port. So the daemon holds a socket bound to
 * each published port (Docker does the same when its userland proxy is
 * off): the kernel then refuses a second claim, whoever makes it, and the
 * bind that wins a race is the one that gets the port.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { conflict, invalidArgument } from '../common/errors.ts';

export type Proto = 'tcp' | 'udp' | 'sctp';

export interface Reservation {
  hostIp: string;
  hostPort: number;
  proto: Proto;
  release(): Promise<void>;
}

function bindTcp(host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((s) => s.destroy());
    server.once('error', reject);
    // Backlog 1: nothing should ever connect here, the DNAT rule takes the traffic first.
    server.listen({ host, port, exclusive: true, backlog: 1 }, () => {
      server.off('error', reject);
      server.unref();
      resolve({ port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

function bindUdp(host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock: UdpSocket = createSocket({ type: 'udp4', reuseAddr: false });
    sock.once('error', reject);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', reject);
      sock.unref();
      resolve({ port: sock.address().port, close: () => new Promise<void>((r) => sock.close(() => r())) });
    });
  });
}

/** `8080`, `8000-8010` (the first free one), or '' (any free port). */
export function parseHostPorts(spec: string): { from: number; to: number } {
  if (spec === '' || spec === '0') return { from: 0, to: 0 };
  const m = /^(\d+)(?:-(\d+))?$/.exec(spec);
  const from = m ? Number(m[1]) : NaN;
  const to = m?.[2] ? Number(m[2]) : from;
  if (!(from >= 1 && to <= 65535 && from <= to)) throw invalidArgument(`invalid port specification: "${spec}"`);
  return { from, to };
}

/**
 * Binds a host port for a published container port: `hostPort` as parsed by
 * parseHostPorts. An occupied port is Docker's "port is already allocated".
 */
export async function reservePort(hostIp: string, ports: { from: number; to: number }, proto: Proto): Promise<Reservation> {
  const host = hostIp || '0.0.0.0';
  // SCTP cannot be bound from Node; its ports are published without a reservation.
  const bind = proto === 'udp' ? bindUdp : proto === 'tcp' ? bindTcp : async (_h: string, p: number) => ({ port: p, close: async () => {} });
  let last: unknown;
  for (let p = ports.from; p <= ports.to; p++) {
    try {
      const b = await bind(host, p);
      return { hostIp: host, hostPort: b.port, proto, release: b.close };
    } catch (e) {
      last = e;
    }
  }
  const code = (last as { code?: string }).code;
  const shown = ports.from === ports.to ? `${host}:${ports.from}` : `${host}:${ports.from}-${ports.to}`;
  if (code === 'EADDRINUSE' || code === 'EACCES') throw conflict(`Bind for ${shown} failed: port is already allocated`);
  if (code === 'EADDRNOTAVAIL') throw invalidArgument(`Bind for ${shown} failed: the host has no address ${host}`);
  throw last;
}
