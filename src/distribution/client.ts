// The registry client: the OCI Distribution API over node:http(s) for pull, push, manifest lists,
// login and search. It knows nothing of the local store; berthd's services and `berth manifest`
// build on it. See types.ts for the contract.
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { type Digest, isDigest, sha256 } from '../common/digest.ts';
import { ErrorCode, invalidArgument, unavailable } from '../common/errors.ts';
import { type Descriptor, MediaType } from '../images/oci.ts';
import type { Reference } from '../images/reference.ts';
import { Authorizer, repositoryScope } from './auth.ts';
import { RegistryError, responseError, statusText } from './errors.ts';
import { hostEndpoints, resolveEndpoints } from './resolve.ts';
import { type HttpRequest, type HttpResponse, discard, header, readBody, send } from './transport.ts';
import type { Credentials, Endpoint, FetchedManifest, RegistryClient, RegistryOptions, Repository } from './types.ts';

/** Every manifest and index type berth reads, OCI first, as Docker's Accept list. */
export const MANIFEST_MEDIA_TYPES = [MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest] as const;
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** Manifests bigger than this are refused (distribution's own limit is 4 MiB). */
export const MANIFEST_LIMIT = 4 << 20;
/** Blobs above this go up in chunks when the caller asked for chunks but gave no size. */
const DEFAULT_CHUNK = 16 << 20;

/** A client that also lists a registry's repositories (`_catalog`), for `search` and tests. */
export interface BerthRegistryClient extends RegistryClient {
  catalog(host: string): Promise<string[]>;
  /** The first endpoint of a registry host that answers GET /v2/ (https, then http when insecure). */
  endpoint(host: string): Promise<Endpoint>;
}

export function createRegistryClient(opts: RegistryOptions): BerthRegistryClient {
  return new Client(opts);
}

class Client implements BerthRegistryClient {
  readonly #opts: RegistryOptions;
  readonly auth: Authorizer;
  /** Base URLs that answered GET /v2/. */
  readonly #answered = new Set<string>();

  constructor(opts: RegistryOptions) {
    this.#opts = opts;
    this.auth = new Authorizer({ credentials: opts.credentials, signal: opts.signal });
  }

  get signal(): AbortSignal | undefined {
    return this.#opts.signal;
  }

  resolve(ref: Reference): Endpoint[] {
    return resolveEndpoints(ref, this.#opts);
  }

  repository(ref: Reference, actions: ('pull' | 'push')[]): Repository {
    let candidates = this.resolve(ref);
    // Mirrors serve pulls only; a push goes to the registry itself.
    if (actions.includes('push')) candidates = candidates.filter((e) => !e.mirror);
    return new RemoteRepository(this, candidates, actions);
  }

  /** The first candidate that answers at all: HTTPS before plain HTTP, a mirror before Docker Hub. */
  async pick(candidates: Endpoint[]): Promise<Endpoint> {
    // Once a registry answered on one scheme, later repositories of this client go straight there.
    const known = candidates.find((c) => this.#answered.has(c.url));
    if (known) return known;
    let last: unknown;
    for (const ep of candidates) {
      try {
        await this.auth.ping(ep);
        this.#answered.add(ep.url);
        return ep;
      } catch (e) {
        if ((e as Error).name === 'AbortError') throw e;
        last = e;
      }
    }
    throw last ?? unavailable('no registry endpoint');
  }

  endpoint(host: string): Promise<Endpoint> {
    return this.pick(hostEndpoints(host, this.#opts.insecure));
  }

  /**
   * Sends a request with the auth the endpoint asks for; a 401 gets one retry with a fresh
   * token (when the registry uses tokens), then the caller sees the 401. Never more.
   */
  async request(ep: Endpoint, scopes: readonly string[], req: HttpRequest): Promise<HttpResponse> {
    const sameOrigin = new URL(req.url).origin === new URL(ep.url).origin;
    const withAuth = (authz: string | undefined): HttpRequest => ({
      ...req, insecure: ep.insecure, signal: req.signal ?? this.#opts.signal,
      headers: { ...req.headers, ...(authz && sameOrigin ? { Authorization: authz } : {}) },
    });
    const first = await this.auth.authorization(ep, scopes);
    const res = await send(withAuth(first));
    if (res.status !== 401) return res;
    const challenge = header(res, 'www-authenticate');
    if (!this.auth.renewable(challenge, first !== undefined)) return res;
    const fresh = await this.auth.authorization(ep, scopes, { challenge });
    if (fresh === undefined) return res;
    discard(res);
    return send(withAuth(fresh));
  }

  async login(host: string, creds: Credentials): Promise<{ status: string; identityToken?: string }> {
    const auth = new Authorizer({ credentials: () => creds, signal: this.#opts.signal });
    const candidates = hostEndpoints(host, this.#opts.insecure);
    let ep: Endpoint | undefined;
    let last: unknown;
    for (const c of candidates) {
      try {
        await auth.ping(c);
        ep = c;
        break;
      } catch (e) {
        last = e;
      }
    }
    if (!ep) throw last;
    const challenges = await auth.ping(ep);
    if (challenges.length === 0) return { status: 'Login Succeeded' };
    const authz = await auth.authorization(ep, []);
    const res = await send({ method: 'GET', url: `${ep.url}/v2/`, insecure: ep.insecure, signal: this.#opts.signal, headers: authz ? { Authorization: authz } : {} });
    discard(res);
    if (res.status === 200) {
      const identityToken = auth.refreshToken(ep);
      return identityToken ? { status: 'Login Succeeded', identityToken } : { status: 'Login Succeeded' };
    }
    // Docker's words for a registry that refused the credentials.
    throw new RegistryError(res.status === 401 ? ErrorCode.Unauthorized : ErrorCode.Unavailable,
      `login attempt to ${ep.url}/v2/ failed with status: ${res.status} ${statusText(res.status)}`, res.status, res.status === 401 ? 'UNAUTHORIZED' : undefined);
  }

  /**
   * A registry's search: its `/v1/search` endpoint (berth's registry has one), else the names
   * in `_catalog` that contain the term (distribution has no search).
   */
  async search(host: string, term: string, limit: number): Promise<unknown[]> {
    const ep = await this.endpoint(host);
    const url = new URL(`${ep.url}/v1/search`);
    url.searchParams.set('q', term);
    url.searchParams.set('n', String(limit));
    const res = await this.request(ep, ['registry:catalog:*'], { method: 'GET', url: url.toString(), headers: { Accept: 'application/json' } });
    if (res.status === 200) {
      const body = JSON.parse((await readBody(res.body)).toString('utf8')) as { results?: unknown[] };
      return (Array.isArray(body.results) ? body.results : []).slice(0, limit);
    }
    if (res.status !== 404 && res.status !== 405) throw await responseError(res, `GET ${url.origin}/v1/search`);
    discard(res);
    const needle = term.toLowerCase();
    return (await this.catalog(host))
      .filter((name) => name.toLowerCase().includes(needle))
      .slice(0, limit)
      .map((name) => ({ name, description: '', star_count: 0, is_official: false, is_automated: false }));
  }

  async catalog(host: string): Promise<string[]> {
    const ep = await this.endpoint(host);
    const out: string[] = [];
    for await (const page of this.pages<{ repositories?: string[] }>(ep, ['registry:catalog:*'], `${ep.url}/v2/_catalog?n=1000`)) {
      out.push(...(page.repositories ?? []));
    }
    return out;
  }

  /** Follows `Link: <…>; rel="next"` pagination, yielding each page's JSON. */
  async *pages<T>(ep: Endpoint, scopes: readonly string[], first: string): AsyncGenerator<T> {
    let url: string | undefined = first;
    for (let n = 0; url && n < 10_000; n++) {
      const res = await this.request(ep, scopes, { method: 'GET', url, headers: { Accept: 'application/json' } });
      if (res.status !== 200) throw await responseError(res, `GET ${new URL(url).origin}${new URL(url).pathname}`);
      yield JSON.parse((await readBody(res.body, 64 << 20)).toString('utf8')) as T;
      url = nextLink(header(res, 'link'), url);
    }
  }
}

/** The `rel="next"` target of a Link header, resolved against the request URL. */
export function nextLink(link: string | undefined, base: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;(.*)/.exec(part.trim());
    if (m && /rel="?next"?/.test(m[2])) return new URL(m[1], base).toString();
  }
  return undefined;
}

class RemoteRepository implements Repository {
  readonly #client: Client;
  readonly #candidates: Endpoint[];
  readonly #actions: ('pull' | 'push')[];
  #picked: Promise<Endpoint> | undefined;
  #endpoint: Endpoint;

  constructor(client: Client, candidates: Endpoint[], actions: ('pull' | 'push')[]) {
    if (candidates.length === 0) throw invalidArgument('no registry endpoint to push to');
    this.#client = client;
    this.#candidates = candidates;
    this.#actions = actions;
    this.#endpoint = candidates[0];
  }

  /** The endpoint in use: the first candidate until a request has picked one that answers. */
  get endpoint(): Endpoint {
    return this.#endpoint;
  }

  get #scopes(): string[] {
    return [repositoryScope(this.#endpoint.repository, this.#actions)];
  }

  async #ep(): Promise<Endpoint> {
    this.#picked ??= this.#client.pick(this.#candidates).then((ep) => (this.#endpoint = ep));
    this.#picked.catch(() => (this.#picked = undefined));
    return this.#picked;
  }

  #url(ep: Endpoint, rest: string): string {
    return `${ep.url}/v2/${ep.repository}/${rest}`;
  }

  /** A pull that a mirror could not serve goes to the next candidate (Docker Hub itself), as Docker falls back. */
  async #withFallback<T>(op: (ep: Endpoint) => Promise<T>): Promise<T> {
    const first = await this.#ep();
    try {
      return await op(first);
    } catch (e) {
      if (!first.mirror || (e as Error).name === 'AbortError') throw e;
      const rest = this.#candidates.slice(this.#candidates.indexOf(first) + 1);
      if (rest.length === 0) throw e;
      this.#picked = this.#client.pick(rest).then((ep) => (this.#endpoint = ep));
      return op(await this.#picked);
    }
  }

  getManifest(tagOrDigest: string): Promise<FetchedManifest> {
    return this.#withFallback(async (ep) => {
      const url = this.#url(ep, `manifests/${tagOrDigest}`);
      const res = await this.#client.request(ep, this.#scopes, { method: 'GET', url, headers: { Accept: ACCEPT } });
      if (res.status !== 200) throw await responseError(res, `GET ${url}`);
      const declared = Number(header(res, 'content-length'));
      if (declared > MANIFEST_LIMIT) {
        res.body.destroy();
        throw invalidArgument(`manifest ${tagOrDigest} is larger than ${MANIFEST_LIMIT} bytes`);
      }
      const bytes = await readBody(res.body, MANIFEST_LIMIT);
      const digest = digestOf(bytes, isDigest(tagOrDigest) ? tagOrDigest : 'sha256:');
      if (isDigest(tagOrDigest) && digest !== tagOrDigest) {
        throw new RegistryError(ErrorCode.InvalidArgument, `manifest verification failed for digest ${tagOrDigest}`, 200, 'DIGEST_INVALID');
      }
      return { bytes, mediaType: manifestMediaType(header(res, 'content-type'), bytes), digest };
    });
  }

  headManifest(tagOrDigest: string): Promise<Descriptor | undefined> {
    return this.#withFallback(async (ep) => {
      const url = this.#url(ep, `manifests/${tagOrDigest}`);
      const res = await this.#client.request(ep, this.#scopes, { method: 'HEAD', url, headers: { Accept: ACCEPT } });
      discard(res);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw await responseError(res, `HEAD ${url}`);
      const digest = header(res, 'docker-content-digest');
      const size = Number(header(res, 'content-length'));
      const mediaType = header(res, 'content-type')?.split(';')[0].trim();
      if (digest && isDigest(digest) && Number.isFinite(size) && mediaType && mediaType !== 'application/json') {
        return { mediaType, digest, size };
      }
      // A registry that leaves the digest out of HEAD: read the manifest and compute it.
      const m = await this.getManifest(tagOrDigest);
      return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    });
  }

  async putManifest(tagOrDigest: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const ep = await this.#ep();
    const digest = sha256(bytes);
    if (isDigest(tagOrDigest) && tagOrDigest !== digestOf(bytes, tagOrDigest)) {
      throw invalidArgument(`manifest bytes do not match digest ${tagOrDigest}`);
    }
    const url = this.#url(ep, `manifests/${tagOrDigest}`);
    const res = await this.#client.request(ep, this.#scopes, { method: 'PUT', url, headers: { 'Content-Type': mediaType }, body: bytes });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await responseError(res, `PUT ${url}`);
    discard(res);
    return digest;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const ep = await this.#ep();
    const url = this.#url(ep, `blobs/${digest}`);
    const res = await this.#client.request(ep, this.#scopes, { method: 'HEAD', url, followRedirects: true });
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await responseError(res, `HEAD ${url}`);
  }

  /** `size` is the whole blob's size; the stream starts at `offset`. */
  async getBlob(digest: Digest, offset = 0): Promise<{ stream: Readable; size: number }> {
    const ep = await this.#ep();
    const url = this.#url(ep, `blobs/${digest}`);
    const headers: Record<string, string> = {};
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    const res = await this.#client.request(ep, this.#scopes, { method: 'GET', url, headers, followRedirects: true });
    if (res.status === 206 && offset > 0) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header(res, 'content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        res.body.destroy();
        throw unavailable(`registry answered blob ${digest} from the wrong offset`);
      }
      const total = m[2] === '*' ? offset + Number(header(res, 'content-length')) : Number(m[2]);
      return { stream: res.body, size: total };
    }
    if (res.status !== 200) throw await responseError(res, `GET ${url}`);
    const size = Number(header(res, 'content-length') ?? NaN);
    // A registry that ignored the Range: skip what the caller already has.
    return { stream: offset > 0 ? res.body.pipe(skipBytes(offset)) : res.body, size };
  }

  async mountBlob(digest: Digest, fromRepository: string): Promise<boolean> {
    const ep = await this.#ep();
    const url = new URL(this.#url(ep, 'blobs/uploads/'));
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', fromRepository);
    const scopes = [...this.#scopes, repositoryScope(fromRepository, ['pull'])];
    const res = await this.#client.request(ep, scopes, { method: 'POST', url: url.toString() });
    discard(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      // The registry opened an upload instead: close it, the caller uploads on its own.
      const location = header(res, 'location');
      if (location) {
        const cancel = await this.#client.request(ep, this.#scopes, { method: 'DELETE', url: new URL(location, ep.url).toString() }).catch(() => undefined);
        if (cancel) discard(cancel);
      }
      return false;
    }
    throw await responseError(res, `POST ${url.origin}${url.pathname}`);
  }

  async pushBlob(desc: Descriptor, open: () => Readable, opts: { chunkSize?: number; onProgress?: (sent: number) => void } = {}): Promise<void> {
    const ep = await this.#ep();
    const start = this.#url(ep, 'blobs/uploads/');
    const res = await this.#client.request(ep, this.#scopes, { method: 'POST', url: start });
    discard(res);
    if (res.status !== 202) throw await responseError(res, `POST ${start}`);
    let location = uploadLocation(res, ep);
    if (opts.chunkSize === undefined) {
      const put = await this.#client.request(ep, this.#scopes, {
        method: 'PUT', url: withDigest(location, desc.digest),
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) },
        body: () => counted(open(), opts.onProgress),
      });
      await expectCommitted(put, desc.digest, location);
      return;
    }
    const chunkSize = opts.chunkSize > 0 ? opts.chunkSize : DEFAULT_CHUNK;
    let sent = 0;
    for await (const chunk of chunks(open(), chunkSize)) {
      const patch = await this.#client.request(ep, this.#scopes, {
        method: 'PATCH', url: location,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${sent}-${sent + chunk.length - 1}` },
        body: chunk,
      });
      discard(patch);
      if (patch.status !== 202) throw await responseError(patch, `PATCH upload of ${desc.digest}`);
      location = uploadLocation(patch, ep, location);
      sent += chunk.length;
      opts.onProgress?.(sent);
    }
    if (sent !== desc.size) throw invalidArgument(`blob ${desc.digest}: read ${sent} bytes, expected ${desc.size}`);
    const put = await this.#client.request(ep, this.#scopes, { method: 'PUT', url: withDigest(location, desc.digest) });
    await expectCommitted(put, desc.digest, location);
  }

  async listTags(): Promise<string[]> {
    const ep = await this.#ep();
    const out: string[] = [];
    for await (const page of this.#client.pages<{ tags?: string[] | null }>(ep, this.#scopes, this.#url(ep, 'tags/list?n=1000'))) {
      out.push(...(page.tags ?? []));
    }
    return out;
  }
}

function digestOf(bytes: Buffer, like: string): Digest {
  if (like.startsWith('sha512:')) return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
  return sha256(bytes);
}

/** The manifest's media type: the response's Content-Type unless it is generic, else the body's own `mediaType`. */
function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const ct = contentType?.split(';')[0].trim();
  if (ct && ct !== 'application/json' && ct !== 'text/plain' && ct !== 'application/octet-stream') return ct;
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof m.mediaType === 'string') return m.mediaType;
    return Array.isArray(m.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  } catch {
    return ct ?? MediaType.OciManifest;
  }
}

function uploadLocation(res: HttpResponse, ep: Endpoint, previous?: string): string {
  const loc = header(res, 'location');
  if (!loc) {
    if (previous) return previous;
    throw unavailable(`registry ${ep.host} started an upload without a Location`);
  }
  return new URL(loc, ep.url).toString();
}

function withDigest(location: string, digest: Digest): string {
  const u = new URL(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

async function expectCommitted(res: HttpResponse, digest: Digest, location: string): Promise<void> {
  if (res.status !== 201 && res.status !== 204 && res.status !== 200) throw await responseError(res, `PUT upload of ${digest} to ${new URL(location).host}`);
  discard(res);
  const got = header(res, 'docker-content-digest');
  if (got && isDigest(got) && got !== digest) {
    throw new RegistryError(ErrorCode.InvalidArgument, `digest invalid: registry stored ${got} for ${digest}`, res.status, 'DIGEST_INVALID');
  }
}

function counted(src: Readable, onProgress?: (sent: number) => void): Readable {
  if (!onProgress) return src;
  let sent = 0;
  src.on('data', (c: Buffer) => onProgress((sent += c.length)));
  return src;
}

/** Re-cuts a stream into chunks of exactly `size` bytes (the last one shorter). */
async function* chunks(src: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of src) {
    let buf = c as Buffer;
    while (have + buf.length >= size) {
      const take = size - have;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      have = 0;
      buf = buf.subarray(take);
    }
    if (buf.length) {
      parts.push(buf);
      have += buf.length;
    }
  }
  if (have) yield Buffer.concat(parts);
}

function skipBytes(n: number): Transform {
  let left = n;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return cb();
      }
      const out = chunk.subarray(left);
      left = 0;
      cb(null, out);
    },
  });
}


/** How berthd makes clients: one per request, since credentials come per request (`X-Registry-Auth`). */
export type RegistryClientFactory = (creds?: Credentials, signal?: AbortSignal) => BerthRegistryClient;

/**
 * A factory over the daemon's registry config. Every client it makes shares the process's
 * keep-alive connections (transport.ts) but has its own token cache, so one user's tokens never
 * serve another's request.
 */
export function registryClientFactory(config: { insecure?: readonly string[]; mirrors?: readonly string[] }): RegistryClientFactory {
  const insecure = [...(config.insecure ?? [])];
  const mirrors = [...(config.mirrors ?? [])];
  return (creds, signal) => createRegistryClient({ insecure, mirrors, credentials: () => creds, signal });
}
