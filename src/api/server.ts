import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { http } from '../common/node-http.ts';
import { invalidArgument, notFound } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { sendError } from './errors.ts';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';

export interface Context {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The API version the client asked for (the path prefix), or the server's own. */
  version: number;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /**
   * Takes over the connection for a raw stream (attach, exec): with `Upgrade:
   * tcp` it answers 101 and hands over the socket, as Docker does; without, it
   * answers 200 and streams over the response.
   */
  hijack(): Duplex;
}

export type Handler = (ctx: Context) => Promise<unknown> | unknown;

export interface Route {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** A path like `/images/{name}/json`; `{name*}` matches across slashes. */
  path: string;
  handler: Handler;
}

interface Compiled { method: string; re: RegExp; keys: string[]; handler: Handler }

const versionNumber = (v: string) => {
  const [maj, min] = v.split('.').map(Number);
  return maj * 1000 + min;
};

/**
 * The Docker Engine API over HTTP/1.1: versioned (`/v1.NN/…`) and unversioned
 * paths, Docker's headers, JSON errors. A handler's return value is sent as
 * JSON; handlers that stream write to `ctx.res` themselves.
 */
export function createApiServer(routes: Route[], log: Logger): Server {
  const compiled: Compiled[] = routes.map((r) => {
    const keys: string[] = [];
    const src = r.path.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)(\*?)\}/g, (_m, k: string, star: string) => {
      keys.push(k);
      return star ? '(.+)' : '([^/]+)';
    });
    return { method: r.method, re: new RegExp(`^${src}$`), keys, handler: r.handler };
  });
  const max = versionNumber(API_VERSION);
  const min = versionNumber(MIN_API_VERSION);

  const dispatch = async (req: IncomingMessage, res: ServerResponse, upgrade?: { socket: Socket; head: Buffer }) => {
    res.setHeader('Api-Version', API_VERSION);
    res.setHeader('Docker-Experimental', 'false');
    res.setHeader('Ostype', 'linux');
    res.setHeader('Server', `berth/${API_VERSION} (linux)`);
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      const url = new URL(req.url ?? '/', 'http://berth');
      let path = url.pathname;
      let version = max;
      const vm = /^\/v(\d+)\.(\d+)(\/.*)$/.exec(path);
      if (vm) {
        version = Number(vm[1]) * 1000 + Number(vm[2]);
        path = vm[3];
        if (version > max) throw invalidArgument(`client version ${vm[1]}.${vm[2]} is too new. Maximum supported API version is ${API_VERSION}`);
        if (version < min) throw invalidArgument(`client version ${vm[1]}.${vm[2]} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
      }
      const method = req.method === 'HEAD' ? 'HEAD' : req.method ?? 'GET';
      let route: Compiled | undefined;
      let m: RegExpExecArray | null = null;
      let pathKnown = false;
      for (const r of compiled) {
        const hit = r.re.exec(path);
        if (!hit) continue;
        pathKnown = true;
        if (r.method === method || (method === 'HEAD' && r.method === 'GET')) {
          route = r;
          m = hit;
          break;
        }
      }
      if (!route || !m) {
        if (pathKnown) {
          res.writeHead(405, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ message: `method ${method} not allowed for ${path}` }));
          return;
        }
        throw notFound(`page not found`);
      }
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m![i + 1])));
      log.debug('request', { method, path });
      let hijacked = false;
      const hijack = (): Duplex => {
        hijacked = true;
        if (upgrade) {
          res.detachSocket(upgrade.socket);
          upgrade.socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
          if (upgrade.head.length) upgrade.socket.unshift(upgrade.head);
          upgrade.socket.on('close', () => ac.abort());
          return upgrade.socket;
        }
        res.writeHead(200, { 'Content-Type': 'application/vnd.docker.raw-stream' });
        res.flushHeaders();
        return Duplex.from({ readable: req, writable: res });
      };
      const out = await route.handler({ req, res, params, query: url.searchParams, version, signal: ac.signal, hijack });
      if (hijacked) return;
      if (res.headersSent || res.writableEnded) {
        if (!res.writableEnded) res.end();
        return;
      }
      if (out === undefined) {
        res.writeHead(204);
        res.end();
        return;
      }
      sendJson(res, 200, out);
    } catch (e) {
      // The client hung up: there is no one to tell, and nothing went wrong on our side.
      if (ac.signal.aborted) return void res.destroy();
      sendError(res, e, log);
    }
  };
  const server = http.createServer({ keepAlive: true }, (req, res) => void dispatch(req, res));
  // `Upgrade: tcp` requests (attach, exec start) arrive here with the raw socket;
  // a response object on that socket serves errors and ordinary answers alike.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const res = new http.ServerResponse(req);
    res.assignSocket(socket);
    res.on('finish', () => socket.end());
    void dispatch(req, res, { socket, head });
  });
  return server;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
}

export async function readJsonBody<T>(req: IncomingMessage, limit = 1 << 20): Promise<T | undefined> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw invalidArgument('request body too large');
    parts.push(c as Buffer);
  }
  if (n === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as T;
  } catch (e) {
    throw invalidArgument(`invalid JSON body: ${(e as Error).message}`, e);
  }
}

export const boolParam = (q: URLSearchParams, k: string): boolean => {
  const v = q.get(k);
  return v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
};
