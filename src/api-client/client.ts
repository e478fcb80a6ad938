import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { http } from '../common/node-http.ts';
import type { Readable } from 'node:stream';

export const CLIENT_API_VERSION = '1.50';

/** An error the daemon answered with: its HTTP status and Docker's `message`. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
    this.name = 'ApiError';
  }
}

/** The daemon could not be reached at all. */
export class ConnectError extends Error {
  readonly socket: string;
  constructor(socket: string, cause: unknown) {
    super(`Cannot connect to the berth daemon at unix://${socket}. Is the berth daemon running?`, { cause });
    this.socket = socket;
    this.name = 'ConnectError';
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;            // JSON-encoded
  stream?: Readable | AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** The Docker Engine API over a unix socket, with no dependencies beyond node:http. */
export class ApiClient {
  readonly socket: string;

  constructor(socket: string) {
    this.socket = socket;
  }

  /** Sends a request and returns the response once its headers arrive; non-2xx becomes an ApiError. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) qs.append(k, x);
      else qs.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
    }
    const q = qs.toString();
    const headers: Record<string, string> = { ...opts.headers };
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    } else if (opts.stream) {
      headers['Content-Type'] ??= 'application/x-tar';
    }
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = http.request({
        socketPath: this.socket, method, path: `/v${CLIENT_API_VERSION}${path}${q ? `?${q}` : ''}`,
        headers: { Host: 'berth', 'User-Agent': 'berth-cli', ...headers }, signal: opts.signal,
      }, resolve);
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES') reject(new ConnectError(this.socket, e));
        else reject(e);
      });
      if (payload) req.end(payload);
      else if (opts.stream) pump(opts.stream, req).catch((e) => req.destroy(e));
      else req.end();
    });
    if (res.statusCode! >= 400) {
      const text = await readAll(res);
      let message = text.toString('utf8').trim();
      try {
        message = JSON.parse(message).message ?? message;
      } catch { /* plain text body */ }
      throw new ApiError(res.statusCode!, message || `HTTP ${res.statusCode}`);
    }
    return res;
  }

  /**
   * A hijacked connection (attach, exec start): `Upgrade: tcp`, as the docker
   * CLI sends, answered by 101 and then a raw two-way stream.
   */
  async upgrade(method: string, path: string, opts: RequestOptions = {}): Promise<Socket> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v === undefined) continue;
      qs.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
    }
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    return new Promise<Socket>((resolve, reject) => {
      const req = http.request({
        socketPath: this.socket, method, path: `/v${CLIENT_API_VERSION}${path}?${qs}`,
        headers: {
          Host: 'berth', Connection: 'Upgrade', Upgrade: 'tcp',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}),
        },
      });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', async (res) => {
        const text = (await readAll(res)).toString('utf8');
        let message = text.trim();
        try {
          message = JSON.parse(text).message ?? message;
        } catch { /* plain text */ }
        reject(new ApiError(res.statusCode ?? 500, message));
      });
      req.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? new ConnectError(this.socket, e) : e));
      req.end(payload);
    });
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const buf = await readAll(res);
    return (buf.length ? JSON.parse(buf.toString('utf8')) : undefined) as T;
  }

  /** Reads a stream of JSON messages (load, import, events), surfacing in-band errors. */
  async *messages<T extends Record<string, unknown>>(res: IncomingMessage): AsyncGenerator<T> {
    for await (const m of jsonLines<T>(res)) yield checkMessage(m);
  }
}

/** The JSON objects of a newline-delimited stream, in-band errors included, as they arrive. */
export async function* jsonLines<T>(res: AsyncIterable<unknown>): AsyncGenerator<T> {
  let buf = '';
  for await (const chunk of res) {
    buf += (chunk as Buffer).toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line) as T;
    }
  }
  if (buf.trim()) yield JSON.parse(buf) as T;
}

function checkMessage<T extends Record<string, unknown>>(m: T): T {
  const detail = m.errorDetail as { message?: string } | undefined;
  if (detail || m.error) throw new ApiError(500, detail?.message ?? String(m.error));
  return m;
}

async function pump(src: Readable | AsyncIterable<Uint8Array>, dst: ClientRequest): Promise<void> {
  for await (const chunk of src) {
    if (!dst.write(chunk)) await new Promise((r) => dst.once('drain', r));
  }
  dst.end();
}

export async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
