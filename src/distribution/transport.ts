// HTTP(S) to registries on node:http and node:https: keep-alive agents shared by every client in
// the process, streaming bodies, abort signals, and redirects that never carry credentials to
// another host (registries send blob GETs to object storage).
import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { http } from '../common/node-http.ts';
import { unavailable } from '../common/errors.ts';

// Loaded with require for the same reason as node:http (see common/node-http.ts).
const https: typeof Https = createRequire(import.meta.url)('node:https');

const AGENT_OPTIONS = { keepAlive: true, maxSockets: 32, maxFreeSockets: 8, scheduling: 'lifo' as const };
let agents: { http: HttpAgent; https: Https.Agent; httpsInsecure: Https.Agent } | undefined;
function agentFor(url: URL, insecure: boolean): HttpAgent {
  agents ??= {
    http: new http.Agent(AGENT_OPTIONS),
    https: new https.Agent(AGENT_OPTIONS),
    httpsInsecure: new https.Agent({ ...AGENT_OPTIONS, rejectUnauthorized: false }),
  };
  if (url.protocol === 'http:') return agents.http;
  return insecure ? agents.httpsInsecure : agents.https;
}

export const USER_AGENT = 'berth/0.1.0';

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  /** A whole body, or a stream opened per attempt (a retry needs a fresh one). */
  body?: Buffer | (() => Readable);
  /** Unverified TLS (an insecure registry). */
  insecure?: boolean;
  signal?: AbortSignal;
  /** Follow 3xx for this GET/HEAD (blob downloads). */
  followRedirects?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that finally answered (after redirects). */
  url: string;
  body: IncomingMessage;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const IDLE_TIMEOUT_MS = 120_000;
const MAX_REDIRECTS = 10;

/** Sends one request; the caller reads or discards `body`. Connection failures become Unavailable errors naming the host. */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  let url = new URL(req.url);
  let headers: Record<string, string> = { 'User-Agent': USER_AGENT, ...req.headers };
  let method = req.method;
  let body = req.body;
  for (let hop = 0; ; hop++) {
    const res = await sendOnce(method, url, headers, body, req.insecure ?? false, req.signal);
    if (!req.followRedirects || !REDIRECTS.has(res.statusCode ?? 0) || !res.headers.location) {
      return { status: res.statusCode ?? 0, headers: res.headers, url: url.toString(), body: res };
    }
    res.resume();
    if (hop >= MAX_REDIRECTS) throw unavailable(`stopped after ${MAX_REDIRECTS} redirects`);
    const next = new URL(res.headers.location, url);
    if (next.origin !== url.origin) {
      // Storage behind a redirect is another party: it gets the signed URL, never our credentials.
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    }
    if (res.statusCode === 303) {
      method = method === 'HEAD' ? 'HEAD' : 'GET';
      body = undefined;
    }
    url = next;
  }
}

function sendOnce(method: string, url: URL, headers: Record<string, string>, body: HttpRequest['body'], insecure: boolean, signal?: AbortSignal): Promise<IncomingMessage> {
  const lib = url.protocol === 'http:' ? http : https;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const h: Record<string, string> = { ...headers };
    if (Buffer.isBuffer(body)) h['Content-Length'] = String(body.length);
    else if (!body && (method === 'POST' || method === 'PUT' || method === 'PATCH')) h['Content-Length'] = '0';
    const r = lib.request(url, { method, headers: h, agent: agentFor(url, insecure), signal }, resolve);
    // A registry that stops answering (no byte for this long, body included) fails rather than hangs.
    r.setTimeout(IDLE_TIMEOUT_MS, () => r.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    r.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError') return reject(e);
      // Only the host: the URL may carry a signed query, and headers are never repeated.
      reject(unavailable(`${method} ${url.protocol}//${url.host}${url.pathname}: ${e.code ?? e.message}`, e));
    });
    if (body === undefined) r.end();
    else if (Buffer.isBuffer(body)) r.end(body);
    else {
      const src = body();
      src.once('error', (e) => r.destroy(e));
      // A registry may answer (401, an error) before reading it all: never leave the source open.
      r.once('close', () => src.destroy());
      src.pipe(r);
    }
  });
}

/** Reads a response body whole, refusing more than `limit` bytes (manifests, tokens, error bodies). */
export async function readBody(res: Readable, limit = 4 << 20): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.destroy();
      throw unavailable(`response larger than ${limit} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** Drops a body we do not need, so the socket goes back to the pool. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}
