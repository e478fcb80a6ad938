/**
 * The embedded DNS server: berthd's counterpart of Docker's 127.0.0.11. One
 * listener per user network, bound to its gateway, UDP and TCP. It answers A,
 * AAAA and PTR for the network's own names and forwards everything else, as
 * the raw query, to the upstreams the source names.
 *
 * Packets come from containers, so parsing trusts nothing: a query too short
 * for a header, or one that claims to be a response, is dropped; one whose
 * question cannot be read is answered FORMERR.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../common/log.ts';

export interface DnsAnswerSource {
  /**
   * Addresses for `name` (lower-cased, no trailing dot) asked on the listener bound to `local`.
   * undefined: not a name of that network -> forward upstream. [] : a known name with no address of that type.
   */
  lookup(local: string, name: string, type: 'A' | 'AAAA'): string[] | undefined;
  /** Names for a reverse lookup (PTR of an in-addr.arpa or ip6.arpa name) of `ip` on that listener; undefined -> forward. */
  reverse(local: string, ip: string): string[] | undefined;
  /** Upstream servers ("1.2.3.4" or "1.2.3.4:5353" or "[::1]:53") to forward other questions to, for a client at `client`. */
  upstreams(local: string, client: string): string[];
}

export interface DnsServerOptions {
  /** Per upstream, before trying the next one. */
  upstreamTimeoutMs?: number;
  tcpIdleMs?: number;
  /** Forwards in flight across all listeners; queries beyond this are dropped and the client retries. */
  maxPending?: number;
}

export const Rcode = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;
const TYPE_A = 1, TYPE_PTR = 12, TYPE_AAAA = 28, CLASS_IN = 1;
const TTL = 600; // what Docker's resolver uses
const UDP_MAX = 512; // without reading EDNS; a longer answer is truncated (TC) and the client retries over TCP

export interface Query { id: number; flags: number; name: string; type: number; qclass: number; end: number; plain: boolean }

/**
 * Reads a possibly compressed name at `start`. Every pointer must point before
 * the start of the run of labels it ends, so pointers only go backwards and loops are impossible.
 */
export function readName(msg: Buffer, start: number): { labels: string[]; end: number } | undefined {
  const labels: string[] = [];
  let off = start, floor = start, end = -1, size = 1;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off];
    if (len === 0) return { labels, end: end < 0 ? off + 1 : end };
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= msg.length) return undefined;
      const ptr = ((len & 0x3f) << 8) | msg[off + 1];
      if (ptr < 12 || ptr >= floor) return undefined;
      if (end < 0) end = off + 2;
      off = floor = ptr;
      continue;
    }
    if (len & 0xc0) return undefined; // the 0x40 and 0x80 label types were never deployed
    size += len + 1;
    if (off + 1 + len > msg.length || size > 255) return undefined;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
}

/** The header and single question of a query; undefined to drop it, an rcode to refuse it with. */
export function parseQuery(msg: Buffer): Query | number | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response: answering those invites reflection loops
  if (flags & 0x7800) return Rcode.notImp; // only standard queries
  if (msg.readUInt16BE(4) !== 1) return Rcode.formErr;
  const n = readName(msg, 12);
  if (!n || n.end + 4 > msg.length) return Rcode.formErr;
  return {
    id: msg.readUInt16BE(0), flags, name: n.labels.join('.').toLowerCase(),
    type: msg.readUInt16BE(n.end), qclass: msg.readUInt16BE(n.end + 2), end: n.end + 4,
    // A label holding a dot cannot be told apart once joined; no network name has one.
    plain: n.labels.every((l) => !l.includes('.')),
  };
}

/** Wire form of a dotted name; undefined when a label or the whole is too long. */
export function encodeName(name: string): Buffer | undefined {
  const parts = name.replace(/\.$/, '').split('.').filter((p, i, all) => p !== '' || all.length > 1);
  const out: Buffer[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'utf8');
    if (b.length === 0 || b.length > 63) return undefined;
    out.push(Buffer.from([b.length]), b);
  }
  out.push(Buffer.from([0]));
  const wire = Buffer.concat(out);
  return wire.length <= 255 ? wire : undefined;
}

function ipv6Bytes(ip: string): Buffer | undefined {
  if (!net.isIPv6(ip)) return undefined;
  let s = ip.split('%')[0];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const b = v4.slice(1).map(Number);
    s = s.slice(0, v4.index) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return undefined;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function formatIPv6(g: number[]): string {
  let best = -1, bestLen = 1; // RFC 5952: the longest run of two or more zero groups becomes ::
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  return best < 0 ? hex.join(':') : hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}

/** The address a reverse name (d.c.b.a.in-addr.arpa or 32 nibbles.ip6.arpa) stands for. */
export function reverseAddress(name: string): string | undefined {
  const labels = name.split('.');
  if (name.endsWith('.in-addr.arpa') && labels.length === 6) {
    const ip = labels.slice(0, 4).reverse().join('.');
    return net.isIPv4(ip) ? ip : undefined;
  }
  if (name.endsWith('.ip6.arpa') && labels.length === 34 && labels.slice(0, 32).every((l) => /^[0-9a-f]$/.test(l))) {
    const hex = labels.slice(0, 32).reverse().join('');
    return formatIPv6(Array.from({ length: 8 }, (_, i) => parseInt(hex.slice(i * 4, i * 4 + 4), 16)));
  }
  return undefined;
}

export function parseUpstream(s: string): { host: string; port: number } | undefined {
  let host = s, port = 53;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (m) [host, port] = [m[1], m[2] ? Number(m[2]) : 53];
  else if (!net.isIP(s)) [host, port] = [s.slice(0, s.lastIndexOf(':')), Number(s.slice(s.lastIndexOf(':') + 1))];
  return net.isIP(host) && Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : undefined;
}

function record(type: number, rdata: Buffer): Buffer {
  const rr = Buffer.alloc(12 + rdata.length);
  rr.writeUInt16BE(0xc00c, 0); // the owner name is the question's, at offset 12
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(CLASS_IN, 4);
  rr.writeUInt32BE(TTL, 6);
  rr.writeUInt16BE(rdata.length, 10);
  rdata.copy(rr, 12);
  return rr;
}

/** A reply echoing the question exactly as asked (case and all); answers that do not fit in `max` are cut and TC set. */
function reply(msg: Buffer, q: Query | undefined, rcode: number, answers: Buffer[] = [], max = 65535): Buffer {
  const question = q ? msg.subarray(12, q.end) : Buffer.alloc(0);
  let n = answers.length, size = 12 + question.length + answers.reduce((a, b) => a + b.length, 0);
  while (size > max && n > 0) size -= answers[--n].length;
  const head = Buffer.alloc(12);
  head.writeUInt16BE(msg.readUInt16BE(0), 0);
  // QR, the query's opcode and RD, RA; TC when answers were cut.
  head.writeUInt16BE(0x8080 | (msg.readUInt16BE(2) & 0x7900) | (n < answers.length ? 0x0200 : 0) | rcode, 2);
  head.writeUInt16BE(q ? 1 : 0, 4);
  head.writeUInt16BE(n, 6);
  return Buffer.concat([head, question, ...answers.slice(0, n)]);
}

interface Listener { address: string; port: number; udp: dgram.Socket; tcp: net.Server; conns: Set<net.Socket>; stop: AbortController }

export class DnsServer {
  readonly #source: DnsAnswerSource;
  readonly #log: Logger;
  readonly #timeout: number;
  readonly #idle: number;
  readonly #maxPending: number;
  readonly #listeners = new Map<string, Promise<Listener>>();
  #pending = 0;

  constructor(source: DnsAnswerSource, log: Logger, opts: DnsServerOptions = {}) {
    this.#source = source;
    this.#log = log;
    this.#timeout = opts.upstreamTimeoutMs ?? 2000;
    this.#idle = opts.tcpIdleMs ?? 10_000;
    this.#maxPending = opts.maxPending ?? 1000;
  }

  /** Listens on UDP and TCP at `address`. Already listening there: nothing to do. */
  async listen(address: string, port = 53): Promise<void> {
    const existing = this.#listeners.get(address);
    if (existing) return void (await existing);
    const opening = this.#open(address, port);
    this.#listeners.set(address, opening);
    try {
      await opening;
      this.#log.debug('dns listening', { address, port });
    } catch (err) {
      this.#listeners.delete(address);
      throw err;
    }
  }

  async close(address: string): Promise<void> {
    const opening = this.#listeners.get(address);
    if (!opening) return;
    this.#listeners.delete(address);
    const l = await opening.catch(() => undefined);
    if (!l) return;
    l.stop.abort(); // pending forwards give up rather than wait out their timeouts
    for (const c of l.conns) c.destroy();
    await Promise.all([new Promise<void>((r) => l.udp.close(() => r())), new Promise<void>((r) => l.tcp.close(() => r()))]);
    this.#log.debug('dns closed', { address });
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#listeners.keys()].map((a) => this.close(a)));
  }

  listening(): string[] {
    return [...this.#listeners.keys()];
  }

  async #open(address: string, port: number): Promise<Listener> {
    const l: Listener = {
      address, port, conns: new Set(), stop: new AbortController(),
      udp: dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4'),
      tcp: net.createServer((c) => this.#serveTcp(l, c)),
    };
    l.tcp.maxConnections = 256;
    await new Promise<void>((resolve, reject) => {
      l.udp.once('error', reject);
      l.udp.bind({ address, port }, () => (l.udp.off('error', reject), resolve()));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        l.tcp.once('error', reject);
        l.tcp.listen({ host: address, port }, () => (l.tcp.off('error', reject), resolve()));
      });
    } catch (err) {
      l.udp.close();
      throw err;
    }
    l.udp.on('error', (err) => this.#log.debug('dns udp error', { address, err }));
    l.tcp.on('error', (err) => this.#log.debug('dns tcp error', { address, err }));
    l.udp.on('message', (msg, from) => {
      void this.#handle(l, msg, from.address, false).then((res) => {
        if (!res || l.stop.signal.aborted) return;
        try { l.udp.send(res, from.port, from.address); } catch { /* closed meanwhile */ }
      });
    });
    return l;
  }

  /** Length-prefixed messages, several per connection, answered as they are ready (RFC 7766 allows any order). */
  #serveTcp(l: Listener, c: net.Socket): void {
    l.conns.add(c);
    c.on('close', () => l.conns.delete(c));
    c.on('error', () => {});
    c.setTimeout(this.#idle, () => c.destroy());
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.#handle(l, msg, c.remoteAddress ?? '', true).then((res) => {
          if (!res || c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(res.length);
          c.write(Buffer.concat([len, res]));
        });
      }
    });
  }

  /** The reply to one message, or undefined to drop it. Never throws: a container's packet must not take the daemon down. */
  async #handle(l: Listener, msg: Buffer, client: string, tcp: boolean): Promise<Buffer | undefined> {
    const q = parseQuery(msg);
    if (q === undefined) return undefined;
    if (typeof q === 'number') return reply(msg, undefined, q);
    try {
      const answers = this.#local(l.address, q);
      if (answers) return reply(msg, q, Rcode.noError, answers, tcp ? 65535 : UDP_MAX);
      return await this.#forward(l, msg, q, client, tcp);
    } catch (err) {
      this.#log.debug('dns query failed', { address: l.address, name: q.name, err });
      return reply(msg, q, Rcode.servFail);
    }
  }

  /** Answer records from the source, or undefined when the question is not the network's to answer. */
  #local(local: string, q: Query): Buffer[] | undefined {
    if (q.qclass !== CLASS_IN || !q.plain) return undefined;
    if (q.type === TYPE_A || q.type === TYPE_AAAA) {
      const v6 = q.type === TYPE_AAAA;
      const addrs = this.#source.lookup(local, q.name, v6 ? 'AAAA' : 'A');
      if (!addrs) return undefined;
      const rdata = addrs.map((a) => (v6 ? ipv6Bytes(a) : net.isIPv4(a) ? Buffer.from(a.split('.').map(Number)) : undefined));
      return rdata.filter((b) => b !== undefined).map((b) => record(q.type, b));
    }
    const ip = q.type === TYPE_PTR ? reverseAddress(q.name) : undefined;
    const names = ip ? this.#source.reverse(local, ip) : undefined;
    return names?.map(encodeName).filter((b) => b !== undefined).map((b) => record(TYPE_PTR, b));
  }

  /** Tries each upstream in turn with the raw query; the first answer other than SERVFAIL wins. */
  async #forward(l: Listener, msg: Buffer, q: Query, client: string, tcp: boolean): Promise<Buffer | undefined> {
    if (this.#pending >= this.#maxPending) {
      this.#log.debug('dns forward dropped: too many pending', { address: l.address });
      return undefined;
    }
    this.#pending++;
    try {
      for (const s of this.#source.upstreams(l.address, client)) {
        const up = parseUpstream(s);
        if (!up || (up.host === l.address && up.port === l.port)) continue; // never forward to ourselves
        const res = await (tcp ? exchangeTcp : exchangeUdp)(up.host, up.port, msg, this.#timeout, l.stop.signal);
        if (l.stop.signal.aborted) return undefined;
        if (res && (res[3] & 0x0f) !== Rcode.servFail) {
          res.writeUInt16BE(q.id, 0);
          return res;
        }
        this.#log.debug('dns upstream failed', { address: l.address, upstream: s, name: q.name });
      }
    } finally {
      this.#pending--;
    }
    return reply(msg, q, Rcode.servFail);
  }
}

/** One UDP exchange on a fresh connected socket: a random source port, and the kernel filters out other senders. */
function exchangeUdp(host: string, port: number, query: Buffer, timeout: number, signal: AbortSignal): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(), timeout);
    let finished = false;
    const done = (res?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      try { sock.close(); } catch { /* already closed */ }
      resolve(res);
    };
    const abort = () => done();
    signal.addEventListener('abort', abort);
    sock.on('error', () => done()); // ICMP unreachable, for one: move on at once
    sock.on('message', (res) => {
      if (res.length >= 12 && res[2] & 0x80 && res.readUInt16BE(0) === query.readUInt16BE(0)) done(res);
    });
    sock.connect(port, host, () => sock.send(query, (err) => err && done()));
  });
}

function exchangeTcp(host: string, port: number, query: Buffer, timeout: number, signal: AbortSignal): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => done(), timeout);
    let buf = Buffer.alloc(0);
    const done = (res?: Buffer) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      sock.destroy();
      resolve(res);
    };
    const abort = () => done();
    signal.addEventListener('abort', abort);
    sock.on('error', () => done());
    sock.on('close', () => done());
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const res = buf.subarray(2, 2 + buf.readUInt16BE(0));
      done(res.length >= 12 && res.readUInt16BE(0) === query.readUInt16BE(0) ? Buffer.from(res) : undefined);
    });
  });
}
